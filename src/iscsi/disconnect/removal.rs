//! The acts of a disconnect on the host: stopping a map's queueing, deleting disks and waiting
//! for the kernel to drop them, logging out of a session no other volume uses.

use tracing::{debug, info};

use crate::block::scsi::{self, ScsiDisk};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::iscsi::props::ConnectionProperties;
use crate::iscsi::session::{target_lock_name, Session};
use crate::iscsi::tuning::Tuning;
use crate::iscsi::{adm, topology};
use crate::report::{DisconnectReport, Untouched};
use crate::types::Wwid;

use super::plan::{disk_thing, session_users, Plan};

pub(super) fn delete_disks(
    host: &Host,
    disks: &[&ScsiDisk],
    wwn: Option<&Wwid>,
    tuning: &Tuning,
    report: &mut DisconnectReport,
) -> Result<()> {
    // The WWN is checked once more right before the delete: a name the kernel reused meanwhile
    // belongs to another device.
    let mut doomed = Vec::new();
    for d in disks {
        match (ScsiDisk::current_wwid(host, &d.name)?, wwn) {
            (None, _) if !scsi::exists(host, &d.name) => report.removed.push(disk_thing(d)),
            (Some(w), Some(v)) if &w == v => doomed.push(d),
            _ => report.left_alone.push(Untouched {
                thing: disk_thing(d),
                why: "changed identity before its delete".into(),
            }),
        }
    }
    let names: Vec<String> = doomed.iter().map(|d| d.name.clone()).collect();
    // delete_checked reads the disk's address and WWN once more right before the write.
    let results = crate::par::par_map(&doomed, |d| {
        scsi::delete_checked(host, d, wwn, tuning.delete_timeout)
    });
    for (d, result) in doomed.iter().zip(results) {
        if let Err(e) = result {
            report.fail(Some(disk_thing(d)), e.to_string());
        }
    }
    let deadline = host.time().now() + tuning.removal_deadline;
    let left = scsi::wait_gone(host, &names, deadline);
    for d in doomed {
        if left.contains(&d.name) {
            report.fail(
                Some(disk_thing(d)),
                format!(
                    "/dev/{} is still there {:?} after its delete",
                    d.name, tuning.removal_deadline
                ),
            );
            report.leave(disk_thing(d));
        } else {
            info!(device = %d.name, "device removed");
            report.removed.push(disk_thing(d));
        }
    }
    Ok(())
}

/// What became of one session of the volume.
pub(super) enum Logout {
    /// Already gone (another disconnect logged out first).
    Gone,
    /// Kept: other volumes use it (their devices).
    Kept(Vec<String>),
    Done,
    Failed(Error),
}

/// Logs out of session `s` unless another volume's device is on it. Decided and done under the
/// target's lock, so that a connect reusing this session cannot slip a new LUN in between.
pub(super) fn logout_if_unused(
    host: &Host,
    props: &ConnectionProperties,
    plan: &Plan,
    s: &Session,
    tuning: &Tuning,
) -> Result<Logout> {
    let _lock = host.lock(&target_lock_name(&s.iqn, &s.portal))?;
    // Another disconnect of a volume on the same session may have logged out while we waited for
    // the lock: then there is nothing left to do here (its node record went with it). The host
    // may hold several sessions to one target and portal (another tool made them): this one is
    // looked up by its own number.
    let now = topology::session_by_id(host, s.id)?;
    if !now.is_some_and(|n| n.iqn == s.iqn && n.portal == s.portal) {
        debug!(session = %s.id, "session already gone");
        return Ok(Logout::Gone);
    }
    let others = session_users(host, props, plan, s)?;
    if !others.is_empty() {
        info!(session = %s.id, "session kept: other volumes use it");
        return Ok(Logout::Kept(others));
    }
    Ok(
        match adm::logout_session(host, s.id, tuning.command_timeout) {
            Ok(()) => {
                info!(session = %s.id, portal = %s.portal, "logged out");
                Logout::Done
            }
            Err(e) => Logout::Failed(e),
        },
    )
}
