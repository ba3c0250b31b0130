//! Disconnecting an iSCSI volume: one code path for single path and multipath.
//!
//! The plan is derived from the host's state every time (sysfs), and
//! brick keeps no state of its own, so a disconnect killed at any point and run again finishes the
//! job. The order protects data: everything is flushed first, while nothing has been removed; only
//! when every flush has succeeded (or the caller said `force`) are the map, the devices and the
//! sessions taken away.

//!
//! - `plan`: what the host shows of the volume, and the decisions the disconnect and its dry run
//!   share (which paths go before their map, which sessions are still used, which node records
//!   go);
//! - `dry_run`: the plan as the disconnect would carry it out, changing nothing;
//! - `removal`: the acts on the host (deleting disks, stopping a map's queueing, logging out).

mod dry_run;
mod plan;
mod removal;

use std::time::Duration;

use tracing::{debug, info, warn};

use crate::block::multipath::{self, DmMap};
use crate::block::scsi::{self, ScsiDisk};
use crate::device_info::DeviceInfo;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::iscsi::adm;
use crate::iscsi::props::ConnectionProperties;
use crate::iscsi::session::target_lock_name;
use crate::iscsi::session::Session;
use crate::iscsi::topology;
pub(crate) use crate::iscsi::tuning::Tuning;
use crate::iscsi::volume::find_volume;
use crate::report::DisconnectOptions;
pub(crate) use crate::report::{DisconnectReport, Failure, Outcome, Thing, Untouched};
use crate::retry::Backoff;
use crate::types::{DiskState, Iqn, Portal};

pub use dry_run::disconnect_plan;
use plan::{
    devices_left, disk_thing, map_thing, paths_to_delete_early, records_to_forget, session_thing,
    Plan,
};
use removal::{delete_disks, logout_if_unused, Logout};

/// How long a forced disconnect waits for multipathd to reload a map left open once its paths
/// are gone (see `keep_left_maps_failing`).
const RELOAD_WAIT: Duration = Duration::from_secs(5);

/// Disconnects the volume described by `props` from this host.
///
/// Finds the volume's disks on every session to its portals (also disks that never joined the
/// multipath map, and disks of its WWN on sessions the properties do not list), checks each
/// disk's WWN against the volume's (`device_info.scsi_wwn` when given, else the one WWN the
/// volume's disks agree on) and leaves alone any that differ. Then: flushes the multipath map
/// and every path (nothing is removed if a flush fails, unless `force`); removes the map
/// (device-mapper `DM_DEV_REMOVE`, in-process); deletes the disks in parallel and waits for the
/// kernel to drop them, and logs out of each session no other volume uses as soon as its own
/// disks are gone; then deletes the node records of the volume's portals that have no session.
///
/// # Errors
/// [`Error::NotTheVolume`] when the volume's LUN shows another WWN than device_info's (nothing
/// touched); [`Error::Disconnect`] with the report of what was done and what is left when the
/// disconnect stopped ([`Outcome::Refused`], [`Outcome::Stopped`]) or something failed
/// ([`Outcome::Unfinished`]; with `force` and `ignore_errors` that report is returned as `Ok`).
pub fn disconnect_volume(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
    opts: DisconnectOptions,
    tuning: &Tuning,
) -> Result<DisconnectReport> {
    let span = tracing::info_span!("disconnect", volume = %props.label(), force = opts.force);
    let _enter = span.enter();
    let mut d = Disconnect::plan(host, props, device_info, opts, tuning)?;
    // 0. A disk held by another device-mapper device than the volume's map stops a plain
    // disconnect before anything is done.
    d.refuse_foreign_holders()?;
    // 1. Flush everything while nothing has been removed.
    d.flush_all()?;
    // 1b. Paths whose session is in recovery go before their map (see delete_blocked_paths).
    d.delete_blocked_paths()?;
    // 2. The multipath maps.
    d.remove_maps()?;
    // 3. The disks, in parallel, and each session no other volume uses as soon as its own
    // disks are gone.
    d.delete_disks_and_log_out()?;
    d.remove_rebuilt_maps()?;
    d.keep_left_maps_failing();
    // 4. The node records.
    d.forget_records()?;
    // 5. Whatever of the volume's WWN is still on the host is a failure, named.
    d.check_nothing_left()?;
    d.finish()
}

/// One disconnect under way: what it acts on, its plan, and its report so far.
struct Disconnect<'a> {
    host: &'a Host,
    props: &'a ConnectionProperties,
    opts: DisconnectOptions,
    tuning: &'a Tuning,
    plan: Plan,
    report: DisconnectReport,
    /// The devices that did not flush, with the reason.
    unflushed: Vec<(String, String)>,
    /// The paths deleted before their map (step 1b).
    early: Vec<String>,
}

impl<'a> Disconnect<'a> {
    /// Reads the host and makes the plan; changes nothing. A disk held by a device-mapper
    /// device that is not the volume's map stops a plain disconnect here.
    fn plan(
        host: &'a Host,
        props: &'a ConnectionProperties,
        device_info: Option<&DeviceInfo>,
        opts: DisconnectOptions,
        tuning: &'a Tuning,
    ) -> Result<Disconnect<'a>> {
        let v = find_volume(host, props, device_info)?;
        let mut report = DisconnectReport {
            volume: props.label(),
            wwn: v.wwn.clone(),
            forced: opts.force,
            left_alone: v.left_alone,
            ..Default::default()
        };
        for d in &v.unproven {
            report.fail(
                Some(disk_thing(d)),
                format!(
                    "/dev/{} ({}) at the volume's LUN shows no WWID: it cannot be proven to be \
                     the volume's, so it was not touched",
                    d.name, d.address
                ),
            );
            report.leave(disk_thing(d));
        }
        let plan = Plan {
            wwn: v.wwn,
            sessions: v.sessions,
            disks: v.disks,
            maps: v.maps,
            foreign_holders: v.foreign_holders,
        };
        debug!(
            disks = ?plan.disks.iter().map(|d| &d.name).collect::<Vec<_>>(),
            maps = ?plan.maps.iter().map(|m| &m.dev).collect::<Vec<_>>(),
            sessions = ?plan.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
            "plan"
        );
        Ok(Disconnect {
            host,
            props,
            opts,
            tuning,
            plan,
            report,
            unflushed: Vec::new(),
            early: Vec::new(),
        })
    }

    /// Step 0: a disk of the volume held by a device-mapper device that is not the volume's map
    /// (LVM, a partition table's map built on the path) stops a plain disconnect with nothing
    /// done; forced, each is a failure and the disconnect goes on.
    fn refuse_foreign_holders(&mut self) -> Result<()> {
        if self.plan.foreign_holders.is_empty() {
            return Ok(());
        }
        if !self.opts.force {
            let held: Vec<String> = self
                .plan
                .foreign_holders
                .iter()
                .map(ToString::to_string)
                .collect();
            let message = format!(
                "{} not disconnected, nothing was removed: {}",
                self.props.label(),
                held.join("; ")
            );
            return Err(self.stop(Outcome::Refused, message));
        }
        for h in self.plan.foreign_holders.clone() {
            self.report.fail(Some(h.thing.clone()), h.to_string());
        }
        Ok(())
    }

    /// Stops the disconnect with `message`: the report, with `outcome`, goes with the error.
    fn stop(&mut self, outcome: Outcome, message: String) -> Error {
        self.report.outcome = outcome;
        Error::Disconnect {
            message,
            report: Box::new(std::mem::take(&mut self.report)),
        }
    }

    /// Step 1: flushes every map and disk of the plan at once. A device that does not flush
    /// stops a plain disconnect with nothing removed; forced, the I/O waiting on it is failed
    /// and the disconnect goes on.
    fn flush_all(&mut self) -> Result<()> {
        let (host, tuning) = (self.host, self.tuning);
        let once = Backoff {
            tries: 1,
            ..tuning.path_flush_backoff
        };
        let jobs: Vec<(&str, &Backoff, Duration)> = self
            .plan
            .maps
            .iter()
            .map(|m| (m.dev.as_str(), &once, tuning.map_sync_timeout))
            .chain(self.plan.disks.iter().map(|d| {
                (
                    d.name.as_str(),
                    &tuning.path_flush_backoff,
                    tuning.path_flush_timeout,
                )
            }))
            .collect();
        self.unflushed = crate::par::par_map(&jobs, |&(name, backoff, timeout)| {
            scsi::flush(host, name, backoff, timeout).map_err(|e| (name.to_string(), e.to_string()))
        })
        .into_iter()
        .filter_map(Result::err)
        .collect();
        if self.unflushed.is_empty() {
            return Ok(());
        }
        let reasons: Vec<String> = self.unflushed.iter().map(|(_, r)| r.clone()).collect();
        if !self.opts.force {
            for d in &self.plan.disks {
                self.report.left_behind.push(disk_thing(d));
            }
            for m in &self.plan.maps {
                self.report.left_behind.push(map_thing(m));
            }
            for (name, why) in &self.unflushed {
                self.report.failures.push(Failure {
                    thing: Some(Thing::Device { dev: name.clone() }),
                    message: why.clone(),
                });
            }
            let message = format!(
                "{} not disconnected, nothing was removed and its data is kept: {}. \
                 Retry once the paths are back, or force the disconnect (unwritten data is then lost)",
                self.props.label(),
                reasons.join("; ")
            );
            return Err(self.stop(Outcome::Refused, message));
        }
        for (name, why) in self.unflushed.clone() {
            self.report.fail(
                Some(Thing::Device { dev: name }),
                format!("{why} (forced: going on, unwritten data may be lost)"),
            );
        }
        let stuck = self.unflushed.clone();
        self.release_queued_io(&stuck);
        Ok(())
    }

    /// Forced only: makes I/O that waits for a path fail, so the map and its disks can go.
    /// Queueing is disabled on each map that did not flush, and its disks (and disks that did
    /// not flush) are set offline: with the session in recovery, I/O may sit in a disk's own
    /// queue, which the map's `fail_if_no_path` does not reach. A path that answers holds no
    /// I/O waiting for a path and stays as it is.
    fn release_queued_io(&mut self, stuck: &[(String, String)]) {
        let (host, tuning) = (self.host, self.tuning);
        let is_stuck = |name: &str| stuck.iter().any(|(n, _)| n == name);
        let mut offline: Vec<String> = Vec::new();
        for m in self.plan.maps.iter().filter(|m| is_stuck(&m.dev)) {
            stop_queueing(host, m, tuning, &mut self.report);
            offline.extend(m.slaves.iter().cloned());
        }
        offline.extend(
            self.plan
                .disks
                .iter()
                .map(|d| d.name.clone())
                .filter(|n| is_stuck(n)),
        );
        for d in self.plan.disks.iter().filter(|d| offline.contains(&d.name)) {
            if let Ok(Some(DiskState::Running)) = ScsiDisk::current_state(host, &d.name) {
                continue;
            }
            // A disk the transport has already taken offline refuses this; that is fine.
            // set_offline_checked reads its address and WWN once more right before the write.
            let wwn = self.plan.wwn.as_ref();
            if let Err(e) = scsi::set_offline_checked(host, d, wwn, tuning.delete_timeout) {
                debug!(device = %d.name, error = %e, "not set offline");
            }
        }
    }

    /// Step 1b: deletes, before a map, its paths that cannot answer now (device `blocked`: their
    /// session is in recovery, and I/O waits in them), when that map has a path that can
    /// (`running`) among its own slaves and no device-mapper device holds it. A reader caught on
    /// them (udev probes the map when a path fails) holds the map open until the session's
    /// recovery ends; deleted, their waiting I/O fails, dm-multipath sends it down the map's
    /// live path, and the map can go. Done only once everything is flushed: nothing is lost,
    /// and a failed path's writes are sent again on another path. A running disk of the volume
    /// outside the map is no live path of it, and a map held by another device (a partition,
    /// LVM) keeps all its paths.
    fn delete_blocked_paths(&mut self) -> Result<()> {
        if !self.unflushed.is_empty() {
            return Ok(());
        }
        let blocked = paths_to_delete_early(self.host, &self.plan)?;
        if blocked.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = blocked.iter().map(|d| d.name.clone()).collect();
        info!(paths = ?names, "paths whose session is in recovery go first");
        let refs: Vec<&ScsiDisk> = blocked.iter().collect();
        delete_disks(
            self.host,
            &refs,
            self.plan.wwn.as_ref(),
            self.tuning,
            &mut self.report,
        )?;
        self.early = names;
        Ok(())
    }

    /// Step 2: removes each map of the volume (in-process, with retries while it is busy). A map
    /// that stays open stops a plain disconnect with only the early paths removed; forced, see
    /// [`Disconnect::force_held_map`].
    fn remove_maps(&mut self) -> Result<()> {
        let (host, tuning) = (self.host, self.tuning);
        for m in self.plan.maps.clone() {
            let mut removed = multipath::remove_map(
                host,
                &m,
                &tuning.map_flush_backoff,
                tuning.map_flush_timeout,
            );
            let mut held_by = Vec::new();
            if removed.is_err() {
                held_by = crate::block::openers::openers(host, &m.dev, Some(m.name.as_str()));
            }
            let flushed = !self.unflushed.iter().any(|(n, _)| *n == m.dev);
            if removed.is_err() && self.opts.force && flushed {
                self.force_held_map(&m, &held_by)?;
                removed = multipath::remove_map(
                    host,
                    &m,
                    &tuning.map_flush_backoff,
                    tuning.map_flush_timeout,
                );
            }
            let held = if held_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", held_by.join(", "))
            };
            match removed {
                Ok(()) => {
                    info!(map = %m.name, dev = %m.dev, "multipath map removed");
                    self.report.removed.push(map_thing(&m));
                }
                Err(e) if !self.opts.force => {
                    let why = format!(
                        "cannot flush multipath map {} ({}): {e}{held}",
                        m.name, m.dev
                    );
                    self.report.failures.push(Failure {
                        thing: Some(map_thing(&m)),
                        message: why.clone(),
                    });
                    self.report.left_behind.push(map_thing(&m));
                    for d in &self.plan.disks {
                        if !self.early.contains(&d.name) {
                            self.report.left_behind.push(disk_thing(d));
                        }
                    }
                    let (outcome, removed) = if self.early.is_empty() {
                        (Outcome::Refused, "Nothing else was removed".to_string())
                    } else {
                        (
                            Outcome::Stopped,
                            format!(
                                "Only the paths that could not answer were removed ({})",
                                self.early.join(", ")
                            ),
                        )
                    };
                    let message = format!(
                        "{} not disconnected: {why}. {removed}; close whatever holds the map \
                         (a mount, a VM) and retry, or force the disconnect",
                        self.props.label(),
                    );
                    return Err(self.stop(outcome, message));
                }
                Err(e) => {
                    self.report.fail(
                        Some(map_thing(&m)),
                        format!(
                            "cannot flush multipath map {} ({}): {e}{held}",
                            m.name, m.dev
                        ),
                    );
                    self.report.leave(map_thing(&m));
                }
            }
        }
        Ok(())
    }

    /// Forced only: the map flushed, yet something holds it open (`held_by` names what shows).
    /// - Every path down: a writer whose I/O is queued in the map or its paths keeps it open.
    ///   That I/O is failed (queueing disabled, the paths set offline), which releases the
    ///   writer.
    /// - A path that answers (`running`): the map is healthy and merely open (a mount, a VM).
    ///   What was written since the first flush is flushed again within its deadline, so a
    ///   healthy volume keeps it; then queueing is disabled, so that its opener gets errors
    ///   rather than waiting for ever once the paths go. No running path is set offline.
    fn force_held_map(&mut self, m: &DmMap, held_by: &[String]) -> Result<()> {
        let (host, tuning) = (self.host, self.tuning);
        let mut live = false;
        for s in &m.slaves {
            live |= ScsiDisk::current_state(host, s)? == Some(DiskState::Running);
        }
        warn!(map = %m.name, dev = %m.dev, held_by = ?held_by, live, "forced: the map is held open");
        if !live {
            self.release_queued_io(&[(m.dev.clone(), "held open".to_string())]);
            return Ok(());
        }
        if let Err(e) = scsi::flush(
            host,
            &m.dev,
            &tuning.map_flush_backoff,
            tuning.map_sync_timeout,
        ) {
            self.report.fail(
                Some(map_thing(m)),
                format!("{e} (forced: going on, what was written since may be lost)"),
            );
        }
        stop_queueing(host, m, tuning, &mut self.report);
        Ok(())
    }

    /// Step 3: deletes the disks not deleted early, in parallel, and logs out of each session
    /// no other volume uses as soon as its own disks are gone (a logout waits for the target's
    /// answer; it need not wait for the other sessions' deletes). One job per session of the
    /// plan, with the disks on it; the volume's disks on no session of the plan (a disk of its
    /// WWN elsewhere) make one job with no logout.
    fn delete_disks_and_log_out(&mut self) -> Result<()> {
        let (host, props, tuning) = (self.host, self.props, self.tuning);
        let rest: Vec<&ScsiDisk> = self
            .plan
            .disks
            .iter()
            .filter(|d| !self.early.contains(&d.name))
            .collect();
        let mut jobs: Vec<(Option<&Session>, Vec<&ScsiDisk>)> = Vec::new();
        let mut placed: Vec<&str> = Vec::new();
        for s in &self.plan.sessions {
            let on_it: Vec<String> = topology::session_addresses(host, s.id)?
                .into_iter()
                .filter_map(|(_, name)| name)
                .collect();
            let disks: Vec<&ScsiDisk> = rest
                .iter()
                .copied()
                .filter(|d| on_it.contains(&d.name) && !placed.contains(&d.name.as_str()))
                .collect();
            placed.extend(disks.iter().map(|d| d.name.as_str()));
            jobs.push((Some(s), disks));
        }
        let elsewhere: Vec<&ScsiDisk> = rest
            .iter()
            .copied()
            .filter(|d| !placed.contains(&d.name.as_str()))
            .collect();
        if !elsewhere.is_empty() {
            jobs.push((None, elsewhere));
        }
        let (plan, wwn) = (&self.plan, self.plan.wwn.as_ref());
        let done = crate::par::par_map(&jobs, |(session, disks)| {
            let mut report = DisconnectReport::default();
            delete_disks(host, disks, wwn, tuning, &mut report)?;
            let logout = session
                .map(|s| logout_if_unused(host, props, plan, s, tuning))
                .transpose()?;
            Ok::<_, Error>((report, logout))
        });
        let sessions: Vec<Option<Session>> = jobs.iter().map(|(s, _)| s.cloned()).collect();
        for (session, job) in sessions.into_iter().zip(done) {
            let (report, logout) = job?;
            self.report.absorb(report);
            if let (Some(s), Some(logout)) = (session, logout) {
                self.note_logout(&s, logout);
            }
        }
        Ok(())
    }

    /// What became of session `s`, in the report.
    fn note_logout(&mut self, s: &Session, logout: Logout) {
        match logout {
            Logout::Gone => {}
            Logout::Kept(others) => self.report.kept.push(Untouched {
                thing: session_thing(s),
                why: format!("still used by {}", others.join(", ")),
            }),
            Logout::Done => self.report.removed.push(session_thing(s)),
            Logout::Failed(e) => {
                self.report.fail(
                    Some(session_thing(s)),
                    format!("cannot log out of {}: {e}", session_thing(s)),
                );
                self.report.leave(session_thing(s));
            }
        }
    }

    /// Forced only: a map left open (its paths now gone) must fail its opener's I/O, not queue
    /// it. multipathd reloads a map once it sees its paths go, and the lab showed the reload
    /// bring back its configuration's `queue_if_no_path` although queueing had been disabled
    /// (in the kernel and in multipathd) before the paths went: the opener would then wait for
    /// ever. So once the map's `slaves/` is empty (the reload done; waited for a few seconds at
    /// most: without multipathd nothing reloads it), queueing is disabled once more.
    fn keep_left_maps_failing(&mut self) {
        if !self.opts.force {
            return;
        }
        let (host, tuning) = (self.host, self.tuning);
        let left: Vec<DmMap> = self
            .plan
            .maps
            .iter()
            .filter(|m| self.report.leaves(&m.dev))
            .cloned()
            .collect();
        for m in left {
            let slaves = host.sys(format!("block/{}/slaves", m.dev));
            let deadline = host.time().now() + RELOAD_WAIT;
            let mut pause =
                crate::time::Pause::new(Duration::from_millis(5), Duration::from_millis(100));
            let watch = host.watch_uevents();
            loop {
                match host.list(&slaves) {
                    Ok(s) if !s.is_empty() && host.time().now() < deadline => {}
                    _ => break,
                }
                host.pause(watch.as_ref(), pause.take());
            }
            match multipath::disable_queueing(host, &m, tuning.command_timeout) {
                Ok(()) => debug!(map = %m.name, "queueing disabled again after the paths went"),
                Err(e) => debug!(map = %m.name, error = %e, "queueing not disabled again"),
            }
        }
    }

    /// multipathd may have rebuilt the map from a path before it went; it goes once more.
    fn remove_rebuilt_maps(&mut self) -> Result<()> {
        let (host, tuning) = (self.host, self.tuning);
        let Some(wwn) = self.plan.wwn.clone() else {
            return Ok(());
        };
        for m in multipath::maps_of(host, &wwn)? {
            if self.report.leaves(&m.dev) {
                continue;
            }
            match multipath::remove_map(
                host,
                &m,
                &tuning.map_flush_backoff,
                tuning.map_flush_timeout,
            ) {
                Ok(()) => self.report.removed.push(map_thing(&m)),
                Err(e) => {
                    self.report.fail(
                        Some(map_thing(&m)),
                        format!("cannot flush multipath map {} ({}): {e}", m.name, m.dev),
                    );
                    self.report.leave(map_thing(&m));
                }
            }
        }
        Ok(())
    }

    /// Step 4: deletes the node records of every portal of the volume with no session now.
    fn forget_records(&mut self) -> Result<()> {
        let (host, props) = (self.host, self.props);
        let kept: Vec<(Iqn, Portal)> = self
            .report
            .kept
            .iter()
            .filter_map(|u| match &u.thing {
                Thing::Session { iqn, portal, .. } => Some((iqn.clone(), *portal)),
                _ => None,
            })
            .collect();
        let plan = &self.plan;
        // Every portal of the volume with no session now (logged out above, by a concurrent
        // disconnect, or before a crash): its node record goes too, so that nothing logs in to
        // it again at boot. Checked under the target's lock, against the host as it is now. A
        // session kept above keeps its record (should another disconnect log out of it
        // meanwhile, that one deletes the record).
        for (iqn, portal) in records_to_forget(props, plan, &kept) {
            let _lock = host.lock(&target_lock_name(&iqn, &portal))?;
            if !adm::node_exists(host, &iqn, &portal)?
                || topology::find_session(host, &iqn, &portal)?.is_some()
            {
                continue;
            }
            let record = Thing::NodeRecord {
                iqn: iqn.clone(),
                portal,
            };
            match crate::iscsi::node::delete(host, &iqn, &portal) {
                Ok(_) => self.report.removed.push(record),
                Err(e) => {
                    self.report.fail(
                        Some(record.clone()),
                        format!("cannot delete the node record of {iqn} at {portal}: {e}"),
                    );
                    self.report.leave(record);
                }
            }
        }
        Ok(())
    }

    /// Step 5: whatever of the volume's WWN is still on the host (a path that came back, a map
    /// multipathd built again) and not named already is a failure, never a silent success.
    fn check_nothing_left(&mut self) -> Result<()> {
        let Some(wwn) = self.plan.wwn.clone() else {
            return Ok(());
        };
        for dev in devices_left(self.host, self.props, &self.plan)? {
            let name = dev.trim_start_matches("/dev/").to_string();
            if !self.report.leaves(&name) {
                let thing = Thing::Device { dev: name };
                self.report.fail(
                    Some(thing.clone()),
                    format!("{dev} (WWN {wwn}) is still on the host"),
                );
                self.report.leave(thing);
            }
        }
        Ok(())
    }

    /// The result: the report when the volume is gone (or `force` and `ignore_errors`), else
    /// the error with the report.
    fn finish(self) -> Result<DisconnectReport> {
        self.report.finish(self.opts.ignore_errors)
    }
}

/// Forced only: map `m` stops queueing I/O while it has no path; a failure goes in the report.
fn stop_queueing(host: &Host, m: &DmMap, tuning: &Tuning, report: &mut DisconnectReport) {
    if let Err(e) = multipath::disable_queueing(host, m, tuning.command_timeout) {
        let why = format!("cannot disable queueing on multipath map {}: {e}", m.name);
        report.fail(Some(map_thing(m)), why);
    }
}
