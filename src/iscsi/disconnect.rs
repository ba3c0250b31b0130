//! Disconnecting an iSCSI volume: one code path for single path and multipath.
//!
//! The plan is derived from the host's state every time (sysfs), and
//! brick keeps no state of its own, so a disconnect killed at any point and run again finishes the
//! job. The order protects data: everything is flushed first, while nothing has been removed; only
//! when every flush has succeeded (or the caller said `force`) are the map, the devices and the
//! sessions taken away.

use std::time::Duration;

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::iscsi::session::Session;
use crate::iscsi::volume::find_volume;
use crate::iscsi::{adm, topology};
use crate::multipath::{self, DmMap};
use crate::props::{ConnectionProperties, DeviceInfo};
use crate::retry::Backoff;
use crate::scsi::{self, ScsiDisk};
pub use crate::tuning::Tuning;
use crate::types::Wwid;

/// What the caller accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisconnectOptions {
    /// A clean host matters more than the data: go on through every step whatever fails, and
    /// report every failure at the end.
    pub force: bool,
    /// With `force`: return success even when something failed (each failure is still logged
    /// as a warning and listed in the report).
    pub ignore_errors: bool,
}

/// What a disconnect did and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DisconnectReport {
    /// The volume (its `volume_id`, or the first target and LUN).
    pub volume: String,
    /// The volume's WWN, when known.
    pub wwn: Option<Wwid>,
    pub maps_removed: Vec<String>,
    pub devices_removed: Vec<String>,
    pub sessions_logged_out: Vec<String>,
    pub node_records_deleted: Vec<String>,
    /// Sessions kept because another volume still uses them.
    pub sessions_kept: Vec<String>,
    /// Devices that do not belong to the volume (or could not be proven to), never touched.
    pub left_alone: Vec<String>,
    /// The volume's own things that may still be on the host.
    pub left_behind: Vec<String>,
    /// Every failure, in order.
    pub failures: Vec<String>,
}

impl DisconnectReport {
    /// Whether the volume is gone from the host.
    pub fn clean(&self) -> bool {
        self.left_behind.is_empty() && self.failures.is_empty()
    }

    fn fail(&mut self, what: String) {
        warn!("{what}");
        self.failures.push(what);
    }

    fn leave(&mut self, what: String) {
        warn!(leftover = %what, "may be left on the host");
        self.left_behind.push(what);
    }
}

/// What the host shows of the volume, before anything is changed.
struct Plan {
    wwn: Option<Wwid>,
    sessions: Vec<Session>,
    disks: Vec<ScsiDisk>,
    maps: Vec<DmMap>,
}

/// Disconnects the volume described by `props` from this host.
///
/// Finds the volume's disks on every session to its portals (also disks that never joined the
/// multipath map), checks each disk's WWN against the volume's (`device_info.scsi_wwn` when
/// given, else the one WWN the volume's disks agree on) and leaves alone any that differ. Then:
/// flushes the multipath map and every path (nothing is removed if a flush fails, unless
/// `force`); removes the map (device-mapper `DM_DEV_REMOVE`, in-process); deletes the disks in parallel and waits for the
/// kernel to drop them; logs out of each session no other volume uses and deletes its node
/// record, and deletes the node records of the volume's portals that have no session.
///
/// Returns the report when the volume is gone (or `force` and `ignore_errors` were given), else
/// [`Error::Disconnect`] with the report of what was done and what is left.
pub fn disconnect_volume(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
    opts: DisconnectOptions,
    tuning: &Tuning,
) -> Result<DisconnectReport> {
    let span = tracing::info_span!("disconnect", volume = %props.label(), force = opts.force);
    let _enter = span.enter();
    let mut report = DisconnectReport {
        volume: props.label(),
        ..Default::default()
    };

    let plan = make_plan(host, props, device_info, opts, &mut report)?;
    report.wwn = plan.wwn.clone();
    debug!(
        disks = ?plan.disks.iter().map(|d| &d.name).collect::<Vec<_>>(),
        maps = ?plan.maps.iter().map(|m| &m.dev).collect::<Vec<_>>(),
        sessions = ?plan.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
        "plan"
    );

    // 1. Flush everything while nothing has been removed.
    let unflushed = flush_all(host, &plan, tuning);
    if !unflushed.is_empty() {
        let reasons: Vec<String> = unflushed.iter().map(|(_, r)| r.clone()).collect();
        if !opts.force {
            for d in &plan.disks {
                report
                    .left_behind
                    .push(format!("/dev/{} ({})", d.name, d.address));
            }
            for m in &plan.maps {
                report
                    .left_behind
                    .push(format!("/dev/{} (map {})", m.dev, m.name));
            }
            report.failures.extend(reasons.iter().cloned());
            return Err(Error::Disconnect {
                message: format!(
                    "{} not disconnected, nothing was removed and its data is kept: {}. \
                     Retry once the paths are back, or force the disconnect (unwritten data is then lost)",
                    props.label(),
                    reasons.join("; ")
                ),
                report: Box::new(report),
            });
        }
        for r in reasons {
            report.fail(format!(
                "{r} (forced: going on, unwritten data may be lost)"
            ));
        }
        release_queued_io(host, &plan, &unflushed, tuning, &mut report);
    }

    // 1b. Paths whose session is in recovery go before the map (see delete_blocked_paths).
    let early = if unflushed.is_empty() {
        delete_blocked_paths(host, &plan, tuning, &mut report)?
    } else {
        Vec::new()
    };
    let went_early = |d: &ScsiDisk| early.iter().any(|e| e.name == d.name);

    // 2. The multipath map.
    for m in &plan.maps {
        let mut removed =
            multipath::remove_map(host, m, &tuning.map_flush_backoff, tuning.map_flush_timeout);
        if removed.is_err() && opts.force && !unflushed.iter().any(|(n, _)| *n == m.dev) {
            // The map flushed (nothing dirty in its cache) yet is held: a writer whose I/O is
            // queued in the map or its paths (all paths down) keeps it open. Forced: fail that
            // I/O, which releases the writer, and try once more.
            let held = [(m.dev.clone(), "held open".to_string())];
            release_queued_io(host, &plan, &held, tuning, &mut report);
            removed =
                multipath::remove_map(host, m, &tuning.map_flush_backoff, tuning.map_flush_timeout);
        }
        match removed {
            Ok(()) => {
                info!(map = %m.name, dev = %m.dev, "multipath map removed");
                report.maps_removed.push(format!("{} ({})", m.dev, m.name));
            }
            Err(e) if !opts.force => {
                report.failures.push(format!(
                    "cannot flush multipath map {} ({}): {e}",
                    m.name, m.dev
                ));
                report
                    .left_behind
                    .push(format!("/dev/{} (map {})", m.dev, m.name));
                for d in plan.disks.iter().filter(|d| !went_early(d)) {
                    report
                        .left_behind
                        .push(format!("/dev/{} ({})", d.name, d.address));
                }
                let removed = if early.is_empty() {
                    "Nothing else was removed".to_string()
                } else {
                    let names: Vec<&str> = early.iter().map(|d| d.name.as_str()).collect();
                    format!(
                        "Only the paths that could not answer were removed ({})",
                        names.join(", ")
                    )
                };
                return Err(Error::Disconnect {
                    message: format!(
                        "{} not disconnected: cannot flush multipath map {} ({}): {e}. {removed}; \
                         close whatever holds the map (a mount, a VM) and retry, or force the disconnect",
                        props.label(),
                        m.name,
                        m.dev
                    ),
                    report: Box::new(report),
                });
            }
            Err(e) => {
                report.fail(format!(
                    "cannot flush multipath map {} ({}): {e}",
                    m.name, m.dev
                ));
                report.leave(format!("/dev/{} (map {})", m.dev, m.name));
            }
        }
    }

    // 3. The disks, in parallel.
    let rest: Vec<&ScsiDisk> = plan.disks.iter().filter(|d| !went_early(d)).collect();
    delete_disks(host, &rest, plan.wwn.as_ref(), tuning, &mut report)?;

    // multipathd may have rebuilt the map from a path before it went; flush it once more.
    if let Some(wwn) = &plan.wwn {
        for m in multipath::maps_of(host, wwn)? {
            if report
                .left_behind
                .iter()
                .any(|l| l.starts_with(&format!("/dev/{} ", m.dev)))
            {
                continue;
            }
            match multipath::remove_map(
                host,
                &m,
                &tuning.map_flush_backoff,
                tuning.map_flush_timeout,
            ) {
                Ok(()) => report.maps_removed.push(format!("{} ({})", m.dev, m.name)),
                Err(e) => {
                    report.fail(format!(
                        "cannot flush multipath map {} ({}): {e}",
                        m.name, m.dev
                    ));
                    report.leave(format!("/dev/{} (map {})", m.dev, m.name));
                }
            }
        }
    }

    // 4. Sessions no other volume uses, and node records.
    logout_and_forget(host, props, &plan, tuning, &mut report)?;

    if report.failures.is_empty() {
        info!("volume disconnected");
        return Ok(report);
    }
    if opts.force && opts.ignore_errors {
        warn!(
            failures = report.failures.len(),
            "disconnect finished with errors, ignored as asked"
        );
        return Ok(report);
    }
    Err(Error::Disconnect {
        message: format!(
            "{} disconnected with errors: {}",
            props.label(),
            report.failures.join("; ")
        ),
        report: Box::new(report),
    })
}

fn make_plan(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
    opts: DisconnectOptions,
    report: &mut DisconnectReport,
) -> Result<Plan> {
    let v = find_volume(host, props, device_info)?;
    report.left_alone.extend(v.left_alone.iter().cloned());
    if !v.foreign_holders.is_empty() {
        if !opts.force {
            return Err(Error::Disconnect {
                message: format!(
                    "{} not disconnected, nothing was removed: {}",
                    props.label(),
                    v.foreign_holders.join("; ")
                ),
                report: Box::new(std::mem::take(report)),
            });
        }
        for h in &v.foreign_holders {
            report.fail(h.clone());
        }
    }
    Ok(Plan {
        wwn: v.wwn,
        sessions: v.sessions,
        disks: v.disks,
        maps: v.maps,
    })
}

/// Flushes every map and disk of the plan at once. Returns the devices that did not flush, with
/// the reason.
fn flush_all(host: &Host, plan: &Plan, tuning: &Tuning) -> Vec<(String, String)> {
    let once = Backoff {
        tries: 1,
        ..tuning.path_flush_backoff
    };
    let jobs: Vec<(&str, &Backoff, Duration)> = plan
        .maps
        .iter()
        .map(|m| (m.dev.as_str(), &once, tuning.map_sync_timeout))
        .chain(plan.disks.iter().map(|d| {
            (
                d.name.as_str(),
                &tuning.path_flush_backoff,
                tuning.path_flush_timeout,
            )
        }))
        .collect();
    crate::par::par_map(&jobs, |&(name, backoff, timeout)| {
        scsi::flush(host, name, backoff, timeout).map_err(|e| (name.to_string(), e.to_string()))
    })
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// Forced only: makes I/O that waits for a path fail, so the map and its disks can go. Queueing
/// is disabled on each map that did not flush, and its disks (and disks that did not flush) are
/// set offline: with the session in recovery, I/O may sit in a disk's own queue, which the map's
/// `fail_if_no_path` does not reach.
fn release_queued_io(
    host: &Host,
    plan: &Plan,
    unflushed: &[(String, String)],
    tuning: &Tuning,
    report: &mut DisconnectReport,
) {
    let stuck = |name: &str| unflushed.iter().any(|(n, _)| n == name);
    let mut offline: Vec<&str> = Vec::new();
    for m in plan.maps.iter().filter(|m| stuck(&m.dev)) {
        if let Err(e) = multipath::disable_queueing(host, m, tuning.command_timeout) {
            report.fail(format!(
                "cannot disable queueing on multipath map {}: {e}",
                m.name
            ));
        }
        offline.extend(m.slaves.iter().map(String::as_str));
    }
    offline.extend(
        plan.disks
            .iter()
            .map(|d| d.name.as_str())
            .filter(|n| stuck(n)),
    );
    for d in plan
        .disks
        .iter()
        .filter(|d| offline.contains(&d.name.as_str()))
    {
        // A disk the transport has already taken offline refuses this; that is fine.
        let name = d.name.as_str();
        if let Err(e) = scsi::set_offline_checked(host, d, plan.wwn.as_ref(), tuning.delete_timeout)
        {
            debug!(device = name, error = %e, "not set offline");
        }
    }
}

/// Deletes, before the map, the volume's paths that cannot answer now (device `blocked`: their
/// session is in recovery, and I/O waits in them), when the map has a path that can (`running`).
/// A reader caught on them (udev probes the map when a path fails) holds the map open until the
/// session's recovery ends; deleted, their waiting I/O fails, dm-multipath sends it down a live
/// path, and the map can go. Called only once everything is flushed: nothing is lost, and a
/// failed path's writes are sent again on another path. Returns the paths it deleted.
fn delete_blocked_paths<'p>(
    host: &Host,
    plan: &'p Plan,
    tuning: &Tuning,
    report: &mut DisconnectReport,
) -> Result<Vec<&'p ScsiDisk>> {
    let mut blocked = Vec::new();
    let mut live = false;
    for d in &plan.disks {
        match ScsiDisk::current_state(host, &d.name)?.as_deref() {
            Some("running") => live = true,
            Some("blocked") => blocked.push(d),
            _ => {}
        }
    }
    if !live || blocked.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = blocked.iter().map(|d| d.name.as_str()).collect();
    info!(paths = ?names, "paths whose session is in recovery go first");
    delete_disks(host, &blocked, plan.wwn.as_ref(), tuning, report)?;
    Ok(blocked)
}

fn delete_disks(
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
            (None, _) if !scsi::exists(host, &d.name) => {
                report.devices_removed.push(d.name.clone())
            }
            (Some(w), Some(v)) if &w == v => doomed.push(d.name.clone()),
            _ => report.left_alone.push(format!(
                "/dev/{}: changed identity before its delete",
                d.name
            )),
        }
    }
    let errors: Vec<String> = crate::par::par_map(
        &disks
            .iter()
            .filter(|d| doomed.contains(&d.name))
            .collect::<Vec<_>>(),
        |d| scsi::delete_checked(host, d, wwn, tuning.delete_timeout),
    )
    .into_iter()
    .filter_map(Result::err)
    .collect();
    for e in errors {
        report.fail(e);
    }
    let deadline = host.time().now() + tuning.removal_deadline;
    let left = scsi::wait_gone(host, &doomed, deadline);
    for n in &doomed {
        if left.contains(n) {
            report.fail(format!(
                "/dev/{n} is still there {:?} after its delete",
                tuning.removal_deadline
            ));
            report.leave(format!("/dev/{n}"));
        } else {
            info!(device = %n, "device removed");
            report.devices_removed.push(n.clone());
        }
    }
    Ok(())
}

/// The name of the host-wide lock that serialises session changes of `iqn` at `portal`.
pub fn target_lock_name(iqn: &crate::types::Iqn, portal: &crate::types::Portal) -> String {
    format!("iscsi-{iqn}-{portal}")
}

/// What became of one session of the volume.
enum Logout {
    /// Already gone (another disconnect logged out first).
    Gone,
    /// Kept: other volumes use it (their devices).
    Kept(Vec<String>),
    Done,
    Failed(Error),
}

/// Logs out of session `s` unless another volume's device is on it. Decided and done under the
/// target's lock, so that a connect reusing this session cannot slip a new LUN in between.
fn logout_if_unused(
    host: &Host,
    props: &ConnectionProperties,
    plan: &Plan,
    s: &Session,
    tuning: &Tuning,
) -> Result<Logout> {
    let _lock = host.lock(&target_lock_name(&s.iqn, &s.portal))?;
    // Another disconnect of a volume on the same session may have logged out while we waited for
    // the lock: then there is nothing left to do here (its node record went with it).
    if topology::find_session(host, &s.iqn, &s.portal)? != Some(s.id) {
        debug!(session = s.id, "session already gone");
        return Ok(Logout::Gone);
    }
    // A device at another LUN is another volume's; one at the volume's LUN is the volume's
    // only if it shows the volume's WWN (else a new volume took the LUN).
    let luns = props.luns_at(&s.iqn, &s.portal);
    let mut others = Vec::new();
    for (address, name) in topology::session_addresses(host, s.id)? {
        let ours = match &name {
            Some(n) if luns.contains(&address.lun) => {
                ScsiDisk::current_wwid(host, n)?.is_some_and(|w| Some(&w) == plan.wwn.as_ref())
            }
            _ => false,
        };
        if !ours {
            others.push(format!(
                "{} (LUN {})",
                name.as_deref().unwrap_or("a device being scanned"),
                address.lun
            ));
        }
    }
    if !others.is_empty() {
        info!(session = s.id, "session kept: other volumes use it");
        return Ok(Logout::Kept(others));
    }
    Ok(
        match adm::logout_session(host, s.id, tuning.command_timeout) {
            Ok(()) => {
                info!(session = s.id, portal = %s.portal, "logged out");
                Logout::Done
            }
            Err(e) => Logout::Failed(e),
        },
    )
}

fn logout_and_forget(
    host: &Host,
    props: &ConnectionProperties,
    plan: &Plan,
    tuning: &Tuning,
    report: &mut DisconnectReport,
) -> Result<()> {
    // Each session on its own thread: a logout waits for the target's answer, and sessions of
    // one volume (its portals) do not depend on each other.
    let outcomes: Vec<Result<Logout>> = crate::par::par_map(&plan.sessions, |s| {
        logout_if_unused(host, props, plan, s, tuning)
    });
    let mut kept = Vec::new();
    for (s, outcome) in plan.sessions.iter().zip(outcomes) {
        let label = format!("session {} ({} at {})", s.id, s.iqn, s.portal);
        match outcome? {
            Logout::Gone => {}
            Logout::Kept(others) => {
                kept.push((s.iqn.clone(), s.portal));
                report
                    .sessions_kept
                    .push(format!("{label}: still used by {}", others.join(", ")))
            }
            Logout::Done => report.sessions_logged_out.push(label),
            Logout::Failed(e) => {
                report.fail(format!("cannot log out of {label}: {e}"));
                report.leave(label);
            }
        }
    }
    // Every portal of the volume with no session now (logged out above, by a concurrent
    // disconnect, or before a crash): its node record goes too, so that nothing logs in to it
    // again at boot. Checked under the target's lock, against the host as it is now. A session
    // kept above keeps its record (should another disconnect log out of it meanwhile, that one
    // deletes the record).
    let mut forget: Vec<(crate::types::Iqn, crate::types::Portal)> = Vec::new();
    for t in &props.targets {
        let key = (t.iqn.clone(), t.portal);
        if !forget.contains(&key) && !kept.contains(&key) {
            forget.push(key);
        }
    }
    for (iqn, portal) in forget {
        let _lock = host.lock(&target_lock_name(&iqn, &portal))?;
        if !adm::node_exists(host, &iqn, &portal)?
            || topology::find_session(host, &iqn, &portal)?.is_some()
        {
            continue;
        }
        match crate::iscsi::node::delete(host, &iqn, &portal) {
            Ok(_) => report
                .node_records_deleted
                .push(format!("{iqn} at {portal}")),
            Err(e) => {
                report.fail(format!(
                    "cannot delete the node record of {iqn} at {portal}: {e}"
                ));
                report.leave(format!("node record {iqn} at {portal}"));
            }
        }
    }
    Ok(())
}
