//! What is left over, read from sysfs, multipathd, the node records and the wwids file; and what
//! looks left over but is not, with why.

use std::time::Duration;

use tracing::debug;

use super::{boot_record, in_recovery, multipath_maps, node_records, CleanupOptions, Leftover};
use crate::block::multipath::{self, DmMap};
use crate::block::openers;
use crate::block::scsi::ScsiDisk;
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::session::Session;
use crate::iscsi::topology;
use crate::iscsi::tuning::Tuning;
use crate::types::{DiskState, SessionId, Wwid};

/// What a look at the host found.
#[derive(Default)]
pub(super) struct Findings {
    /// Left over, in the order it can be removed.
    pub(super) found: Vec<Leftover>,
    /// Not left over though it looks so, and why.
    pub(super) left_alone: Vec<(Leftover, String)>,
}

impl Findings {
    fn leave(&mut self, l: Leftover, why: String) {
        debug!(leftover = %l, why, "not left over");
        self.left_alone.push((l, why));
    }
}

/// Everything left over, in the order it can be removed, and what is left alone.
pub(super) fn find(host: &Host, opts: CleanupOptions, tuning: &Tuning) -> Result<Findings> {
    let sessions = topology::list_sessions(host)?;
    let mut disks = Vec::new();
    for s in &sessions {
        for d in topology::session_disks(host, s.id)? {
            disks.push((s.id, d));
        }
    }
    let maps = multipath_maps(host)?;
    let mut out = Findings::default();
    let dead = dead_disks(host, &disks, opts.grace, &mut out)?;
    let live_wwids: Vec<&Wwid> = disks
        .iter()
        .map(|(_, d)| d)
        .filter(|d| !dead.iter().any(|x| x.name == d.name))
        .filter_map(|d| d.wwid.as_ref())
        .collect();
    let states = multipathd_path_states(host, tuning.multipathd_query_timeout);
    let map_paths = find_maps(host, &maps, &dead, &live_wwids, &states, &mut out);
    find_disks(host, &dead, &map_paths, &live_wwids, &mut out);
    find_sessions_and_records(host, &sessions, &mut out)?;
    let disks: Vec<ScsiDisk> = disks.into_iter().map(|(_, d)| d).collect();
    find_wwids(host, &disks, &maps, &mut out)?;
    Ok(out)
}

/// The disks the transport gave up on (`transport-offline`, `offline`). A `blocked` disk whose
/// session is in recovery is not one (left alone, with why); another blocked disk counts only
/// when it is still blocked, its session still not in recovery, after `grace`.
fn dead_disks(
    host: &Host,
    disks: &[(SessionId, ScsiDisk)],
    grace: Duration,
    out: &mut Findings,
) -> Result<Vec<ScsiDisk>> {
    let mut dead = Vec::new();
    let mut blocked = Vec::new();
    for (sid, d) in disks {
        match d.state {
            Some(DiskState::TransportOffline | DiskState::Offline) => dead.push(d.clone()),
            Some(DiskState::Blocked) => match in_recovery(host, *sid)? {
                Some(why) => out.leave(Leftover::Disk { disk: d.clone() }, why),
                None => blocked.push((*sid, d)),
            },
            _ => {}
        }
    }
    if blocked.is_empty() {
        return Ok(dead);
    }
    // A blocked disk of a session not (yet) in recovery: dead only if still blocked later.
    host.time().sleep(grace);
    for (sid, d) in blocked {
        let still = ScsiDisk::current_state(host, &d.name)
            .ok()
            .flatten()
            .is_some_and(|s| s == DiskState::Blocked);
        if !still {
            continue;
        }
        match in_recovery(host, sid)? {
            Some(why) => out.leave(Leftover::Disk { disk: d.clone() }, why),
            None => dead.push(d.clone()),
        }
    }
    Ok(dead)
}

/// The maps with no path, or only dead ones, that nothing holds, multipathd calls no path of
/// active, and whose WWID no live disk has; returns their paths.
fn find_maps(
    host: &Host,
    maps: &[DmMap],
    dead: &[ScsiDisk],
    live_wwids: &[&Wwid],
    multipathd_paths: &[(String, String, String)],
    out: &mut Findings,
) -> Vec<String> {
    let mut map_paths: Vec<String> = Vec::new();
    for m in maps {
        let all_dead = m.slaves.iter().all(|p| dead.iter().any(|d| &d.name == p));
        let wwid_live = m.multipath_wwid().is_some_and(|w| live_wwids.contains(&&w));
        let active_in_multipathd = multipathd_paths.iter().any(|(dev, map, dm_state)| {
            m.slaves.contains(dev) && map == m.name.as_str() && dm_state == "active"
        });
        if !all_dead || wwid_live || active_in_multipathd {
            continue;
        }
        let open = openers::openers(host, &m.dev, Some(m.name.as_str()));
        if !open.is_empty() {
            let why = format!("no live path, but in use: {}", open.join(", "));
            out.leave(Leftover::Map { map: m.clone() }, why);
            continue;
        }
        map_paths.extend(m.slaves.iter().cloned());
        out.found.push(Leftover::Map { map: m.clone() });
    }
    map_paths
}

/// The dead disks outside any map (or in a left-over one) whose WWN no live disk has and that
/// nothing has mounted or open.
fn find_disks(
    host: &Host,
    dead: &[ScsiDisk],
    map_paths: &[String],
    live_wwids: &[&Wwid],
    out: &mut Findings,
) {
    for d in dead {
        let why = if !d.holders.is_empty() && !map_paths.contains(&d.name) {
            Some(format!("held by {}", d.holders.join(" ")))
        } else if let Some(w) = d.wwid.as_ref().filter(|w| live_wwids.contains(w)) {
            Some(format!("its WWID {w} is on a disk that is not dead"))
        } else {
            let users = openers::disk_users(host, &d.name);
            (!users.is_empty()).then(|| format!("in use: {}", users.join(", ")))
        };
        let l = Leftover::Disk { disk: d.clone() };
        match why {
            Some(why) => out.leave(l, why),
            None => out.found.push(l),
        }
    }
}

/// The sessions with no device, and the node records of manual logins with no session; the
/// records set to log in at boot are left alone (also one whose idle session goes).
fn find_sessions_and_records(host: &Host, sessions: &[Session], out: &mut Findings) -> Result<()> {
    for s in sessions {
        if topology::session_addresses(host, s.id)?.is_empty() {
            out.found.push(Leftover::Session { session: s.clone() });
            if let Some(why) = boot_record(host, &s.iqn, &s.portal)? {
                let l = Leftover::NodeRecord {
                    iqn: s.iqn.clone(),
                    portal: s.portal,
                };
                out.leave(l, format!("kept when its idle session goes: {why}"));
            }
        }
    }
    for (iqn, portal) in node_records(host)? {
        if sessions.iter().any(|s| s.iqn == iqn && s.portal == portal) {
            continue;
        }
        match boot_record(host, &iqn, &portal)? {
            Some(why) => out.leave(Leftover::NodeRecord { iqn, portal }, why),
            None => out.found.push(Leftover::NodeRecord { iqn, portal }),
        }
    }
    Ok(())
}

/// The WWIDs of the wwids file that no disk and no map has.
fn find_wwids(host: &Host, disks: &[ScsiDisk], maps: &[DmMap], out: &mut Findings) -> Result<()> {
    for w in multipath::listed_wwids(host)? {
        let on_disk = disks
            .iter()
            .any(|d| d.wwid.as_ref().is_some_and(|x| x.as_str() == w));
        let on_map = maps
            .iter()
            .any(|m| m.uuid == format!("mpath-{w}") || m.name.as_str() == w);
        if !on_disk && !on_map {
            out.found.push(Leftover::Wwid { wwid: w });
        }
    }
    Ok(())
}

/// multipathd's view of its paths: (device, map, device-mapper state `active`/`failed`). Empty
/// when multipathd does not answer within `timeout` (sysfs alone decides then).
fn multipathd_path_states(host: &Host, timeout: Duration) -> Vec<(String, String, String)> {
    match host.multipathd_cmd("show paths raw format \"%d %m %t\"", timeout) {
        Ok(text) => text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((
                    w.next()?.to_string(),
                    w.next()?.to_string(),
                    w.next()?.to_string(),
                ))
            })
            .collect(),
        Err(e) => {
            debug!(error = %e, ?timeout, "multipathd's view of the paths not read");
            Vec::new()
        }
    }
}
