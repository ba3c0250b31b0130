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
//!   whole grace period while its session is not in recovery) whose WWN has no running disk,
//!   outside any map or in a left-over map, that nothing has mounted or open;
//! - a multipath map with no path, or only such dead paths (and multipathd, when it answers,
//!   calls none of them active), that nothing holds open;
//! - a node record with `node.startup = manual` (as brick and os-brick make them) and no session;
//! - a WWID in multipath's wwids file that no disk and no map on the host has.
//!
//! What is never left over, whatever else it shows (the report names it, with why): a disk whose
//! session is in recovery (`FAILED`, within its `recovery_tmo`: its I/O waits for the portal);
//! a disk or map that anything holds, has mounted or has open (multipathd's own checker
//! descriptor on a path aside); a node record set to log in at boot (os-brick's own records,
//! `node.startup = automatic`).

use crate::block::multipath::DmMap;
use crate::cleanup_report::{CleanupOptions, CleanupReport, Leftover};
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::tuning::Tuning;
use crate::iscsi::{node, topology};
use crate::types::{Iqn, Portal, SessionId, SessionState};

mod find;
mod remove;

/// Finds what no iSCSI volume needs any more on `host` and, with `opts.apply`, removes it (the
/// iSCSI part of [`crate::cleanup::cleanup`]).
///
/// # Errors
/// [`Error::Io`] when sysfs, the node records or the wwids file cannot be read;
/// Something `apply` left in place is no error: the report says what and why
/// ([`CleanupReport::clean`]).
pub(crate) fn cleanup(host: &Host, opts: CleanupOptions, tuning: &Tuning) -> Result<CleanupReport> {
    let span = tracing::info_span!("cleanup", apply = opts.apply);
    let _enter = span.enter();
    let found = find::find(host, opts, tuning)?;
    let mut report = CleanupReport {
        found: found.found,
        left_alone: found.left_alone,
        ..CleanupReport::default()
    };
    if !opts.apply {
        return Ok(report);
    }
    report.apply_each(|l| remove::remove(host, l, tuning));
    Ok(report)
}

/// Why the blocked disks of session `id` are no leftover, if its session is in recovery: the
/// kernel gives a session that lost its connection the state `FAILED` and blocks its disks
/// (their I/O waits), until the portal answers again (`LOGGED_IN`, disks `running`) or its
/// `recovery_tmo` runs out (`FREE`, disks `transport-offline`, their I/O failed); a negative
/// `recovery_tmo` never runs out. Only then may a disk be dead: deleted before, it takes the
/// waiting I/O with it, and the LUN is gone when the session comes back.
fn in_recovery(host: &Host, id: SessionId) -> Result<Option<String>> {
    if topology::session_state(host, id)? != Some(SessionState::Failed) {
        return Ok(None);
    }
    let until = match topology::session_recovery_tmo(host, id)? {
        Some(t) if t >= 0 => format!(" or its recovery_tmo ({t} s) runs out"),
        Some(_) => " (its recovery_tmo is negative: the kernel never gives up)".to_string(),
        None => " or its recovery timeout runs out".to_string(),
    };
    Ok(Some(format!(
        "its session {id} is in recovery (FAILED): the kernel holds the disk's I/O until the \
         portal answers again{until}"
    )))
}

/// Why a node record of `iqn` at `portal` is not brick's to remove, if it is set to log in at
/// boot (`node.startup` other than `manual`): os-brick sets its volumes' records to
/// `automatic` (and back to `manual` only right before its logout, so a killed os-brick
/// leaves them so); a sendtargets discovery makes them so too. Someone may need it.
fn boot_record(host: &Host, iqn: &Iqn, portal: &Portal) -> Result<Option<String>> {
    let Some(startup) = node::get(host, iqn, portal, "node.startup")? else {
        return Ok(None);
    };
    let startup = startup.trim();
    if startup == "manual" {
        return Ok(None);
    }
    Ok(Some(format!(
        "node.startup is {startup}: it logs in at boot (os-brick sets its volumes' records so, \
         and a discovery makes them so), and brick removes only records of manual logins; \
         `iscsiadm -m node -T {iqn} -p {portal} --op delete` removes it if no volume needs it"
    )))
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

/// Whether the node record of `iqn` at `portal` logs in at boot (`node.startup` other than
/// `manual`): someone set it up to stay, so neither it nor its session is left over.
fn starts_at_boot(host: &Host, iqn: &Iqn, portal: &Portal) -> Result<bool> {
    Ok(boot_record(host, iqn, portal)?.is_some())
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
