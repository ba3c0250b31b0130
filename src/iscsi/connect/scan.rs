//! The volume's LUN on a session: scanned alone (the node record says `scan = manual`), rescanned
//! when its disk was there already, and waited for in sysfs.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::block::scsi::ScsiDisk;
use crate::error::PathError;
use crate::host::Host;
use crate::iscsi::props::Target;
use crate::iscsi::topology;
use crate::iscsi::tuning::Tuning;
use crate::retry::Pause;
use crate::time::Progress;
use crate::types::SessionId;
use crate::types::{Lun, SessionState};

/// Asks the session's SCSI host to scan only `t.lun` (the node record says `scan = manual`, so
/// the kernel scans nothing by itself).
pub(super) fn scan_lun(
    host: &Host,
    sid: SessionId,
    t: &Target,
    tuning: &Tuning,
) -> std::result::Result<(), PathError> {
    let h = topology::scsi_host_of(host, sid)
        .map_err(PathError::host)?
        .ok_or_else(|| PathError::Scan(format!("session {sid} has no SCSI host in sysfs")))?;
    let attr = host.sys(format!("class/scsi_host/host{h}/scan"));
    host.kern()
        .write_attr(&attr, &format!("- - {}", t.lun), tuning.scan_timeout)
        .map_err(|e| {
            PathError::Scan(format!(
                "scan of LUN {} through {} failed: {e}",
                t.lun,
                attr.display()
            ))
        })
}

/// Asks the kernel to read the identity of the LUN's disk again (`device/rescan`) when the disk
/// was there before this connect (a reused session): an array that gave the LUN number to
/// another volume since would otherwise hand back the old volume's WWID, which the kernel keeps
/// from the disk's first scan. Skipped on a session in recovery, where the rescan would wait
/// for the portal (the path then fails on the state later, or serves as it is). A rescan that
/// fails fails the path: the disk's identity cannot be trusted.
pub(super) fn rescan_present_disk(
    host: &Host,
    sid: SessionId,
    t: &Target,
    tuning: &Tuning,
) -> std::result::Result<(), PathError> {
    let state = topology::session_state(host, sid).map_err(PathError::host)?;
    if state != Some(SessionState::LoggedIn) {
        return Ok(());
    }
    let addresses = topology::session_addresses(host, sid).map_err(PathError::host)?;
    let Some(name) = addresses
        .into_iter()
        .find(|(a, _)| a.lun == t.lun)
        .and_then(|(_, n)| n)
    else {
        return Ok(());
    };
    let attr = host.sys(format!("block/{name}/device/rescan"));
    host.kern()
        .write_attr(&attr, "1", tuning.scan_timeout)
        .map_err(|e| {
            PathError::Scan(format!(
                "cannot read the identity of /dev/{name} (LUN {}) again through {}: {e}",
                t.lun,
                attr.display()
            ))
        })?;
    debug!(device = %name, "identity read again");
    Ok(())
}

/// Whether the kernel shows a SCSI device of LUN `lun` on session `sid` (with or without its
/// block device yet).
pub(super) fn lun_on_session(
    host: &Host,
    sid: SessionId,
    lun: Lun,
) -> std::result::Result<bool, PathError> {
    Ok(topology::session_addresses(host, sid)
        .map_err(PathError::host)?
        .iter()
        .any(|(a, _)| a.lun == lun))
}

/// Scans session `sid` for the volume's LUN until the kernel shows its SCSI device, or until
/// `deadline`. A scan through sysfs returns when the kernel has probed the LUN, so the device is
/// there at once, unless the target does not offer the LUN: not yet (some arrays map a LUN
/// to the initiator a few seconds after the attach was asked for, which os-brick's rescans
/// also allow for), or not at all (a wrong `target_lun`, a missing LUN mapping). So it scans
/// again, 1 s, 2 s, then 4 s apart. A scan of a LUN the target does not offer creates nothing.
///
/// The kernel scans nothing through a session in recovery (its portal stopped answering): the
/// scan returns at once and finds nothing, and so would every rescan until the session is back.
/// Such a session fails the path at once, saying so, rather than after the deadline as a LUN the
/// target does not offer: a multipath volume is then attached on its other paths without delay.
pub(super) fn scan_until_present(
    host: &Host,
    sid: SessionId,
    t: &Target,
    deadline: Instant,
    tuning: &Tuning,
) -> std::result::Result<(), PathError> {
    let start = host.time().now();
    let mut pause = Pause::new(Duration::from_secs(1), Duration::from_secs(4));
    let mut scans = 0u32;
    let mut progress = Progress::new(
        format!("LUN {} on session {sid} ({} at {})", t.lun, t.iqn, t.portal),
        start,
        Some(deadline.saturating_duration_since(start)),
    );
    loop {
        progress.tick(host.time().now());
        let state = topology::session_state(host, sid).map_err(PathError::host)?;
        if let Some(state) = state.filter(|s| *s != SessionState::LoggedIn) {
            return Err(PathError::SessionInRecovery {
                session: sid,
                state,
            });
        }
        scans += 1;
        scan_lun(host, sid, t, tuning)?;
        if lun_on_session(host, sid, t.lun)? {
            if scans > 1 {
                debug!(scans, "LUN appeared on a later scan");
            }
            return Ok(());
        }
        let now = host.time().now();
        if now >= deadline {
            return Err(PathError::LunNotOffered {
                lun: t.lun,
                session: sid,
                scans,
                waited: now - start,
            });
        }
        host.time().sleep(pause.take().min(deadline - now));
    }
}

pub(super) fn wait_for_disk(
    host: &Host,
    sid: SessionId,
    t: &Target,
    deadline: Instant,
    tuning: &Tuning,
) -> std::result::Result<ScsiDisk, PathError> {
    let mut pause = Pause::new(Duration::from_millis(5), Duration::from_millis(50));
    let start = host.time().now();
    // Subscribed before the first look: a disk that shows after it wakes the wait at once.
    let watch = host.watch_uevents();
    let mut progress = Progress::new(
        format!("the disk of LUN {} on session {sid}", t.lun),
        start,
        Some(deadline.saturating_duration_since(start)),
    );
    loop {
        progress.tick(host.time().now());
        let disk = topology::disk_at_lun(host, sid, t.lun).map_err(PathError::host)?;
        if let Some(d) = disk.filter(|d| d.wwid.is_some()) {
            return Ok(d);
        }
        if host.time().now() >= deadline {
            return Err(PathError::Scan(format!(
                "LUN {} did not appear on session {sid} within {:?}",
                t.lun, tuning.device_deadline
            )));
        }
        host.pause(watch.as_ref(), pause.take());
    }
}
