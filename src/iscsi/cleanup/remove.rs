//! Removing one leftover, after checking again that it still is one, with the disconnect's
//! safety: flushed first, never while anything holds it, has it mounted or open.

use std::time::Duration;

use tracing::debug;

use super::{in_recovery, starts_at_boot, Leftover};
use crate::block::multipath::{self, DmMap};
use crate::block::openers;
use crate::block::scsi::{self, ScsiDisk};
use crate::cleanup_report::Done;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::iscsi::session::{target_lock_name, Session};
use crate::iscsi::tuning::Tuning;
use crate::iscsi::{adm, node, topology};
use crate::retry::Backoff;
use crate::types::{DiskState, Iqn, Portal, SessionId, SessionState, Wwid};

/// Removes one leftover after checking again that it still is one.
pub(super) fn remove(host: &Host, l: &Leftover, tuning: &Tuning) -> Result<Done> {
    match l {
        Leftover::Map { map } => remove_map(host, map, tuning),
        Leftover::Disk { disk } => remove_disk(host, disk, tuning),
        Leftover::Session { session } => remove_session(host, session, tuning),
        Leftover::NodeRecord { iqn, portal } => remove_record(host, iqn, portal),
        Leftover::Wwid { wwid } => remove_wwid(host, wwid, tuning),
        _ => Ok(Done::Kept("not an iSCSI leftover".into())),
    }
}

/// An I/O error on `/dev/NAME` that says what failed.
fn failed_on(host: &Host, name: &str, what: String) -> Error {
    Error::io(&host.dev_node(name), std::io::Error::other(what))
}

fn remove_map(host: &Host, map: &DmMap, tuning: &Tuning) -> Result<Done> {
    let Some(now) = DmMap::read(host, &map.dev)?.filter(|m| m.uuid == map.uuid) else {
        return Ok(Done::Removed);
    };
    if now.slaves.iter().any(|p| !map.slaves.contains(p)) {
        return Ok(Done::Kept(format!(
            "a new path joined it: {}",
            now.slaves.join(" ")
        )));
    }
    let open = openers::openers(host, &now.dev, Some(now.name.as_str()));
    if !open.is_empty() {
        return Ok(Done::Kept(format!("in use: {}", open.join(", "))));
    }
    // The page cache only (no cache flush: it would queue on a map with no path).
    host.kern()
        .flush_buffers(&host.dev_node(&now.dev), tuning.map_sync_timeout)
        .map_err(|e| {
            failed_on(
                host,
                &now.dev,
                format!("flush failed, so it may hold unwritten data: {e}"),
            )
        })?;
    multipath::remove_map(
        host,
        &now,
        &tuning.map_flush_backoff,
        tuning.map_flush_timeout,
    )
    .map_err(|e| failed_on(host, &now.dev, e.to_string()))?;
    Ok(Done::Removed)
}

/// Why disk `now` (as read again) must stay, if it must: it is another disk now, it answers
/// again, its session is in recovery, or anything holds it, has it mounted or open.
fn disk_must_stay(host: &Host, was: &ScsiDisk, now: &ScsiDisk) -> Result<Option<String>> {
    if now.address != was.address || now.wwid != was.wwid {
        return Ok(Some("another device has the name now".into()));
    }
    if now.state == Some(DiskState::Running) {
        return Ok(Some("running again".into()));
    }
    if now.state == Some(DiskState::Blocked) {
        if let Some(sid) = session_of(host, now)? {
            if let Some(why) = in_recovery(host, sid)? {
                return Ok(Some(why));
            }
        }
    }
    let open = openers::disk_openers(host, &now.name);
    if !open.is_empty() {
        return Ok(Some(format!("in use: {}", open.join(", "))));
    }
    Ok(None)
}

/// The session whose SCSI host carries `disk` (one SCSI host per iSCSI session).
fn session_of(host: &Host, disk: &ScsiDisk) -> Result<Option<SessionId>> {
    for s in topology::list_sessions(host)? {
        if topology::scsi_host_of(host, s.id)? == Some(disk.address.host) {
            return Ok(Some(s.id));
        }
    }
    Ok(None)
}

fn remove_disk(host: &Host, disk: &ScsiDisk, tuning: &Tuning) -> Result<Done> {
    let Some(now) = scsi::disk_by_name(host, &disk.name)? else {
        return Ok(Done::Removed);
    };
    if let Some(why) = disk_must_stay(host, disk, &now)? {
        return Ok(Done::Kept(why));
    }
    let once = Backoff {
        tries: 1,
        first: Duration::ZERO,
        factor: 1,
        max_delay: Duration::ZERO,
    };
    // A disk the transport gave up on cannot be opened (ENXIO): no writer can reach its
    // page cache, and nothing could reach the target; that is no failed flush.
    match scsi::flush(host, &now.name, &once, tuning.path_flush_timeout) {
        Ok(()) => {}
        Err(e) if e.error.reason.is_missing() && now.state != Some(DiskState::Blocked) => {
            debug!(disk = %now.name, "the dead disk cannot be opened: nothing to flush");
        }
        Err(e) => {
            return Err(failed_on(
                host,
                &now.name,
                format!("flush failed, so it may hold unwritten data: {e}"),
            ))
        }
    }
    scsi::delete_checked(host, &now, now.wwid.as_ref(), tuning.delete_timeout)
        .map_err(|e| failed_on(host, &now.name, e.to_string()))?;
    let deadline = host.time().now() + tuning.removal_deadline;
    let left = scsi::wait_gone(host, std::slice::from_ref(&now.name), deadline);
    if left.is_empty() {
        Ok(Done::Removed)
    } else {
        Err(failed_on(
            host,
            &now.name,
            "still there after its delete".into(),
        ))
    }
}

fn remove_session(host: &Host, s: &Session, tuning: &Tuning) -> Result<Done> {
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

fn remove_record(host: &Host, iqn: &Iqn, portal: &Portal) -> Result<Done> {
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

fn remove_wwid(host: &Host, wwid: &str, tuning: &Tuning) -> Result<Done> {
    let Ok(w) = wwid.parse::<Wwid>() else {
        return Ok(Done::Kept("not a WWID brick can check".into()));
    };
    if !topology::disks_with_wwid(host, &w)?.is_empty() || !multipath::maps_of(host, &w)?.is_empty()
    {
        return Ok(Done::Kept("a device has it now".into()));
    }
    multipath::forget_wwid(host, &w, tuning.command_timeout)?;
    Ok(Done::Removed)
}
