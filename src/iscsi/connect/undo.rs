//! Undoing what a failed path (or a failed connect) made, under the target's lock.

use tracing::{info, warn};

use crate::block::multipath::{self, DmMap};
use crate::block::scsi;
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::props::Target;
use crate::iscsi::session::target_lock_name;
use crate::iscsi::tuning::Tuning;
use crate::iscsi::{adm, node, topology};
use crate::types::SessionId;

use super::PathAttempt;

/// Removes the maps of `wwid` that have no path left (no slave that is still a block device)
/// after a failed connect's paths went: multipathd may have built one late, from a path that is
/// gone now. A map with a path is another attach's. Failures are logged: the connect has failed
/// already.
pub(super) fn remove_pathless_maps(host: &Host, wwid: &crate::types::Wwid, tuning: &Tuning) {
    for m in multipath::maps_of(host, wwid).unwrap_or_default() {
        if m.slaves.iter().any(|s| scsi::exists(host, s)) {
            continue;
        }
        remove_map_of_failed_connect(host, &m, tuning);
    }
}

/// Removes map `m` of a connect that failed; a failure is logged (the connect has failed
/// already, and says so).
pub(super) fn remove_map_of_failed_connect(host: &Host, m: &DmMap, tuning: &Tuning) {
    if let Err(e) =
        multipath::remove_map(host, m, &tuning.map_flush_backoff, tuning.map_flush_timeout)
    {
        warn!(map = %m.name, error = %e, "map of a failed connect left behind");
    }
}

/// Removes what a failed path attempt created: the disk it scanned, the session it logged in,
/// the node record it made. All under the target's lock, with the disconnect's rule: between the
/// attempt and its undo, another connect may have started using the session (a LUN of another
/// volume, or a scan under way), and then the session and its node record stay.
pub(super) fn undo(host: &Host, a: &PathAttempt, tuning: &Tuning) {
    let t = &a.target;
    let _lock = match host.lock(&target_lock_name(&t.iqn, &t.portal)) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(error = %e, "cleaning up without the target lock");
            None
        }
    };
    if let Some(d) = &a.created.disk {
        if let Err(e) = scsi::delete(host, d, tuning.delete_timeout) {
            warn!(device = %d, error = %e, "disk of a failed path left behind");
        }
        let left = scsi::wait_gone(
            host,
            std::slice::from_ref(d),
            host.time().now() + tuning.removal_deadline,
        );
        if !left.is_empty() {
            warn!(device = %d, "disk of a failed path still present");
        }
    }
    let Some(sid) = a.created.session else {
        if a.created.node_record {
            forget_node(host, t);
        }
        return;
    };
    match session_in_use(host, sid) {
        Ok(others) if !others.is_empty() => {
            info!(session = %sid, used_by = ?others, "session of a failed path kept: another attach uses it now");
            return;
        }
        Ok(_) => {}
        Err(e) => {
            warn!(session = %sid, error = %e, "session of a failed path kept: cannot tell whether another attach uses it");
            return;
        }
    }
    if let Err(e) = adm::logout_session(host, sid, tuning.command_timeout) {
        warn!(session = %sid, error = %e, "session of a failed path left behind");
    }
    if a.created.node_record {
        forget_node(host, t);
    }
}

/// What is on session `sid` once a failed path's own disk is gone, for its undo: another
/// volume's LUN, a LUN whose scan is under way (no disk yet), or a disk of the volume's LUN that
/// another attach of the same volume made. Any of them keeps the session.
pub(super) fn session_in_use(host: &Host, sid: SessionId) -> Result<Vec<String>> {
    Ok(topology::session_addresses(host, sid)?
        .into_iter()
        .map(|(address, name)| {
            format!(
                "{} (LUN {})",
                name.as_deref().unwrap_or("a device being scanned"),
                address.lun
            )
        })
        .collect())
}

pub(super) fn forget_node(host: &Host, t: &Target) {
    if topology::find_session(host, &t.iqn, &t.portal).is_ok_and(|s| s.is_some()) {
        return;
    }
    if let Err(e) = node::delete(host, &t.iqn, &t.portal) {
        warn!(portal = %t.portal, error = %e, "node record of a failed path left behind");
    }
}
