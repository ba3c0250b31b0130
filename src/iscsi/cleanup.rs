//! `brick cleanup`: what no volume needs any more, found from sysfs, the node records and the
//! wwids file, and removed (with `apply`) with the disconnect's own safety: each thing is
//! checked again right before it goes (under the target's lock for sessions and records, which
//! a connect holds from its node record to its disk), flushed first, never removed while open or
//! while its WWN is on a live disk or map.
//!
//! What counts as left over:
//! - a session with no SCSI device (logged out; its node record goes too unless it is set to
//!   start at boot, as os-brick sets the records of its sessions);
//! - a disk the transport gave up on (`transport-offline`, `offline`, or `blocked` through the
//!   whole grace period) whose WWN has no running disk, outside any map or in a left-over map;
//! - a multipath map with no path, or only such dead paths (and multipathd, when it answers,
//!   calls none of them active), that nothing holds open;
//! - a node record with `node.startup = manual` (as brick and os-brick make them) and no session;
//! - a WWID in multipath's wwids file that no disk and no map on the host has.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::iscsi::session::{target_lock_name, Session};
use crate::iscsi::{adm, node, topology};
use crate::multipath::{self, DmMap};
use crate::retry::Backoff;
use crate::scsi::{self, ScsiDisk};
use crate::tuning::Tuning;
use crate::types::{DiskState, Iqn, Portal, SessionState, Wwid};

/// What `cleanup` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Remove what was found (else only list it).
    pub apply: bool,
    /// How long a `blocked` disk must stay blocked to count as dead (its session in recovery
    /// may yet come back).
    pub grace: Duration,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        CleanupOptions {
            apply: false,
            grace: Duration::from_secs(5),
        }
    }
}

/// One thing no volume needs any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Leftover {
    /// A multipath map with no path, or only dead ones, that nothing holds open.
    Map {
        /// The map.
        map: DmMap,
    },
    /// A disk the transport gave up on, of a WWN no running disk has.
    Disk {
        /// The disk.
        disk: ScsiDisk,
    },
    /// A session with no SCSI device.
    Session {
        /// The session.
        session: Session,
    },
    /// A node record for a manual login with no session.
    NodeRecord {
        /// The target.
        iqn: Iqn,
        /// The portal.
        portal: Portal,
    },
    /// A WWID in multipath's wwids file that nothing on the host has.
    Wwid {
        /// The WWID, as the file lists it.
        wwid: String,
    },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::Map { map } => write!(
                f,
                "multipath map /dev/{} ({}), paths: {}",
                map.dev,
                map.name,
                if map.slaves.is_empty() {
                    "none".to_string()
                } else {
                    map.slaves.join(" ")
                }
            ),
            Leftover::Disk { disk } => write!(
                f,
                "disk /dev/{} ({}) [{}] wwn {}",
                disk.name,
                disk.address,
                disk.state
                    .as_ref()
                    .map_or("?".to_string(), ToString::to_string),
                disk.wwid.as_ref().map_or("?", |w| w.as_str())
            ),
            Leftover::Session { session: s } => write!(
                f,
                "session {} to {} at {} with no device",
                s.id, s.iqn, s.portal
            ),
            Leftover::NodeRecord { iqn, portal } => {
                write!(f, "node record of {iqn} at {portal} with no session")
            }
            Leftover::Wwid { wwid } => write!(f, "wwids entry {wwid} of no device"),
        }
    }
}

/// What `cleanup` found and, with `apply`, what became of each thing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Everything found, in the order it is removed (maps, disks, sessions, records, WWIDs).
    pub found: Vec<Leftover>,
    /// What was removed.
    pub removed: Vec<Leftover>,
    /// What was left in place when checked again, and why (in use now, or no longer left over).
    pub kept: Vec<(Leftover, String)>,
    /// What could not be removed, and why.
    pub failed: Vec<(Leftover, String)>,
}

impl CleanupReport {
    /// Whether every thing found was removed, or, without `apply`, nothing was found.
    pub fn clean(&self) -> bool {
        self.kept.is_empty() && self.failed.is_empty()
    }
}

impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.found.is_empty() {
            return writeln!(f, "nothing left over");
        }
        let applied = !self.removed.is_empty() || !self.kept.is_empty() || !self.failed.is_empty();
        if !applied {
            writeln!(f, "left over (brick cleanup --apply removes them):")?;
            for l in &self.found {
                writeln!(f, "  {l}")?;
            }
            return Ok(());
        }
        for l in &self.removed {
            writeln!(f, "removed: {l}")?;
        }
        for (l, why) in &self.kept {
            writeln!(f, "kept: {l}: {why}")?;
        }
        for (l, why) in &self.failed {
            writeln!(f, "failed: {l}: {why}")?;
        }
        Ok(())
    }
}

/// Finds what no volume needs any more on `host` and, with `opts.apply`, removes it.
///
/// # Errors
/// [`Error::Io`] when sysfs, the node records or the wwids file cannot be read;
/// Something `apply` left in place is no error: the report says what and why
/// ([`CleanupReport::clean`]).
pub fn cleanup(host: &Host, opts: CleanupOptions, tuning: &Tuning) -> Result<CleanupReport> {
    let span = tracing::info_span!("cleanup", apply = opts.apply);
    let _enter = span.enter();
    let mut report = CleanupReport {
        found: find(host, opts)?,
        ..CleanupReport::default()
    };
    if !opts.apply {
        return Ok(report);
    }
    for l in report.found.clone() {
        match remove(host, &l, tuning) {
            Ok(Done::Removed) => {
                info!(leftover = %l, "removed");
                report.removed.push(l);
            }
            Ok(Done::Kept(why)) => {
                info!(leftover = %l, why, "kept");
                report.kept.push((l, why));
            }
            Err(e) => {
                tracing::warn!(leftover = %l, error = %e, "not removed");
                report.failed.push((l, e.to_string()));
            }
        }
    }
    Ok(report)
}

/// Everything left over, in the order it can be removed.
fn find(host: &Host, opts: CleanupOptions) -> Result<Vec<Leftover>> {
    let sessions = topology::list_sessions(host)?;
    let mut disks = Vec::new();
    for s in &sessions {
        disks.extend(topology::session_disks(host, s.id)?);
    }
    let maps = multipath_maps(host)?;
    let mut dead: Vec<ScsiDisk> = disks.iter().filter(|d| gave_up(d)).cloned().collect();
    if dead.iter().any(|d| d.state == Some(DiskState::Blocked)) {
        // A blocked disk waits for its session to recover: dead only if still blocked later.
        host.time().sleep(opts.grace);
        dead.retain(|d| {
            d.state != Some(DiskState::Blocked)
                || ScsiDisk::current_state(host, &d.name)
                    .ok()
                    .flatten()
                    .is_some_and(|s| s == DiskState::Blocked)
        });
    }
    let live_wwids: Vec<&Wwid> = disks
        .iter()
        .filter(|d| !dead.iter().any(|x| x.name == d.name))
        .filter_map(|d| d.wwid.as_ref())
        .collect();
    let mut found = Vec::new();
    let multipathd_paths = multipathd_path_states(host, Duration::from_secs(5));
    let mut map_paths: Vec<String> = Vec::new();
    for m in &maps {
        let all_dead = m.slaves.iter().all(|p| dead.iter().any(|d| &d.name == p));
        let wwid_live = m.multipath_wwid().is_some_and(|w| live_wwids.contains(&&w));
        let active_in_multipathd = multipathd_paths.iter().any(|(dev, map, dm_state)| {
            m.slaves.contains(dev) && map == m.name.as_str() && dm_state == "active"
        });
        if !all_dead || wwid_live || active_in_multipathd {
            continue;
        }
        if !crate::openers::openers(host, &m.dev, Some(m.name.as_str())).is_empty() {
            debug!(map = %m.dev, "a map with no live path, but open: not left over");
            continue;
        }
        map_paths.extend(m.slaves.iter().cloned());
        found.push(Leftover::Map { map: m.clone() });
    }
    for d in &dead {
        let in_kept_map = !d.holders.is_empty() && !map_paths.contains(&d.name);
        let wwid_live = d.wwid.as_ref().is_some_and(|w| live_wwids.contains(&w));
        if in_kept_map || wwid_live {
            continue;
        }
        found.push(Leftover::Disk { disk: d.clone() });
    }
    for s in &sessions {
        if topology::session_addresses(host, s.id)?.is_empty() {
            found.push(Leftover::Session { session: s.clone() });
        }
    }
    for (iqn, portal) in node_records(host)? {
        let has_session = sessions.iter().any(|s| s.iqn == iqn && s.portal == portal);
        if !has_session && !starts_at_boot(host, &iqn, &portal)? {
            found.push(Leftover::NodeRecord { iqn, portal });
        }
    }
    for w in multipath::listed_wwids(host)? {
        let on_disk = disks
            .iter()
            .any(|d| d.wwid.as_ref().is_some_and(|x| x.as_str() == w));
        let on_map = maps
            .iter()
            .any(|m| m.uuid == format!("mpath-{w}") || m.name.as_str() == w);
        if !on_disk && !on_map {
            found.push(Leftover::Wwid { wwid: w });
        }
    }
    Ok(found)
}

/// Whether the transport gave up on the disk (or it is in recovery: see the grace period).
fn gave_up(d: &ScsiDisk) -> bool {
    matches!(
        d.state,
        Some(DiskState::TransportOffline | DiskState::Offline | DiskState::Blocked)
    )
}

/// Every multipath map (uuid `mpath-...`) on the host.
fn multipath_maps(host: &Host) -> Result<Vec<DmMap>> {
    let mut maps = Vec::new();
    for dev in host
        .list(&host.sys("block"))?
        .into_iter()
        .filter(|n| n.starts_with("dm-"))
    {
        if let Some(m) = DmMap::read(host, &dev)?.filter(|m| m.uuid.starts_with("mpath-")) {
            maps.push(m);
        }
    }
    Ok(maps)
}

/// multipathd's view of its paths: (device, map, device-mapper state `active`/`failed`). Empty
/// when multipathd does not answer (sysfs alone decides then).
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
            debug!(error = %e, "multipathd's view of the paths not read");
            Vec::new()
        }
    }
}

/// Whether the node record of `iqn` at `portal` logs in at boot (`node.startup` other than
/// `manual`): someone set it up to stay, so neither it nor its session is left over.
fn starts_at_boot(host: &Host, iqn: &Iqn, portal: &Portal) -> Result<bool> {
    Ok(node::get(host, iqn, portal, "node.startup")?.is_some_and(|v| v.trim() != "manual"))
}

/// Every node record, as (target, portal).
fn node_records(host: &Host) -> Result<Vec<(Iqn, Portal)>> {
    let nodes = host.iscsi_conf("nodes");
    let mut out = Vec::new();
    let targets = match host.list(&nodes) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for t in targets {
        let Ok(iqn) = t.parse::<Iqn>() else { continue };
        for entry in host.list(&nodes.join(&t)).unwrap_or_default() {
            // ADDRESS,PORT[,TPGT]
            let mut parts = entry.rsplitn(3, ',').collect::<Vec<_>>();
            parts.reverse();
            let (addr, port) = match parts.as_slice() {
                [a, p, _] | [a, p] => (*a, *p),
                _ => continue,
            };
            let text = if addr.contains(':') {
                format!("[{addr}]:{port}")
            } else {
                format!("{addr}:{port}")
            };
            if let Ok(portal) = text.parse::<Portal>() {
                if !out.contains(&(iqn.clone(), portal)) {
                    out.push((iqn.clone(), portal));
                }
            }
        }
    }
    Ok(out)
}

enum Done {
    Removed,
    Kept(String),
}

/// Removes one leftover after checking again that it still is one.
fn remove(host: &Host, l: &Leftover, tuning: &Tuning) -> Result<Done> {
    let once = Backoff {
        tries: 1,
        first: Duration::ZERO,
        factor: 1,
        max_delay: Duration::ZERO,
    };
    match l {
        Leftover::Map { map } => {
            let Some(now) = DmMap::read(host, &map.dev)?.filter(|m| m.uuid == map.uuid) else {
                return Ok(Done::Removed);
            };
            if now.slaves.iter().any(|p| !map.slaves.contains(p)) {
                return Ok(Done::Kept(format!(
                    "a new path joined it: {}",
                    now.slaves.join(" ")
                )));
            }
            let open = crate::openers::openers(host, &now.dev, Some(now.name.as_str()));
            if !open.is_empty() {
                return Ok(Done::Kept(format!("in use: {}", open.join(", "))));
            }
            // The page cache only (no cache flush: it would queue on a map with no path).
            host.kern()
                .flush_buffers(&host.dev_node(&now.dev), tuning.map_sync_timeout)
                .map_err(|e| {
                    Error::io(
                        &host.dev_node(&now.dev),
                        std::io::Error::other(format!(
                            "flush failed, so it may hold unwritten data: {e}"
                        )),
                    )
                })?;
            multipath::remove_map(
                host,
                &now,
                &tuning.map_flush_backoff,
                tuning.map_flush_timeout,
            )
            .map_err(|e| {
                Error::io(
                    &host.dev_node(&now.dev),
                    std::io::Error::other(e.to_string()),
                )
            })?;
            Ok(Done::Removed)
        }
        Leftover::Disk { disk } => {
            let Some(now) = scsi::disk_by_name(host, &disk.name)? else {
                return Ok(Done::Removed);
            };
            if now.address != disk.address || now.wwid != disk.wwid {
                return Ok(Done::Kept("another device has the name now".into()));
            }
            if now.state == Some(DiskState::Running) {
                return Ok(Done::Kept("running again".into()));
            }
            if !now.holders.is_empty() {
                return Ok(Done::Kept(format!("held by {}", now.holders.join(" "))));
            }
            // A disk the transport gave up on cannot be opened (ENXIO): no writer can reach its
            // page cache, and nothing could reach the target; that is no failed flush.
            match scsi::flush(host, &now.name, &once, tuning.path_flush_timeout) {
                Ok(()) => {}
                Err(e) if e.error.reason.is_missing() && now.state != Some(DiskState::Blocked) => {
                    debug!(disk = %now.name, "the dead disk cannot be opened: nothing to flush");
                }
                Err(e) => {
                    return Err(Error::io(
                        &host.dev_node(&now.name),
                        std::io::Error::other(format!(
                            "flush failed, so it may hold unwritten data: {e}"
                        )),
                    ))
                }
            }
            scsi::delete_checked(host, &now, now.wwid.as_ref(), tuning.delete_timeout).map_err(
                |e| {
                    Error::io(
                        &host.dev_node(&now.name),
                        std::io::Error::other(e.to_string()),
                    )
                },
            )?;
            let deadline = host.time().now() + tuning.removal_deadline;
            let left = scsi::wait_gone(host, std::slice::from_ref(&now.name), deadline);
            if left.is_empty() {
                Ok(Done::Removed)
            } else {
                Err(Error::io(
                    &host.dev_node(&now.name),
                    std::io::Error::other("still there after its delete"),
                ))
            }
        }
        Leftover::Session { session: s } => {
            let _lock = host.lock(&target_lock_name(&s.iqn, &s.portal))?;
            let Some(now) = topology::session_by_id(host, s.id)? else {
                return Ok(Done::Removed);
            };
            if now.iqn != s.iqn || now.portal != s.portal {
                return Ok(Done::Kept("another session has the number now".into()));
            }
            if !topology::session_addresses(host, s.id)?.is_empty() {
                return Ok(Done::Kept("it has a device now".into()));
            }
            if topology::session_state(host, s.id)? == Some(SessionState::LoggedIn) {
                debug!(session = %s.id, "logging out of an idle session");
            }
            adm::logout_session(host, s.id, tuning.command_timeout)?;
            if !starts_at_boot(host, &s.iqn, &s.portal)? {
                node::delete(host, &s.iqn, &s.portal)?;
            }
            Ok(Done::Removed)
        }
        Leftover::NodeRecord { iqn, portal } => {
            let _lock = host.lock(&target_lock_name(iqn, portal))?;
            if topology::find_session(host, iqn, portal)?.is_some() {
                return Ok(Done::Kept("it has a session now".into()));
            }
            if starts_at_boot(host, iqn, portal)? {
                return Ok(Done::Kept("it is set to start at boot now".into()));
            }
            node::delete(host, iqn, portal)?;
            Ok(Done::Removed)
        }
        Leftover::Wwid { wwid } => {
            let Ok(w) = wwid.parse::<Wwid>() else {
                return Ok(Done::Kept("not a WWID brick can check".into()));
            };
            if !topology::disks_with_wwid(host, &w)?.is_empty()
                || !multipath::maps_of(host, &w)?.is_empty()
            {
                return Ok(Done::Kept("a device has it now".into()));
            }
            multipath::forget_wwid(host, &w, tuning.command_timeout)?;
            Ok(Done::Removed)
        }
    }
}
