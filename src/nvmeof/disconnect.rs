//! Disconnecting an NVMe-oF volume, one code path for native multipath and single path:
//!
//! 1. find the volume's namespace devices in sysfs (its subsystem by NQN, the namespace by UUID,
//!    NGUID or nsid); a device the device_info names that is not the volume's is left alone;
//! 2. flush each (write-back, cache flush, BLKFLSBUF, in a forked child with a deadline) while
//!    nothing has been removed; a flush that fails or does not finish stops a plain disconnect:
//!    nothing removed, the kernel keeps the data;
//! 3. under the subsystem's lock (which connect takes): properties with no namespace identity
//!    are checked again against the subsystem's namespaces; a device of the volume that is held
//!    or open (a stacked device, a mount, a process: `crate::block::openers`) stops a plain disconnect
//!    with nothing removed, naming the holder; then delete each controller of the subsystem
//!    that serves no other namespace (`delete_controller`); a controller that serves another
//!    volume's namespace stays, and with it the volume's namespace until the target unmaps it;
//! 4. wait (bounded) for the kernel to drop them; whatever of the volume is left is named.
//!
//! Deleting the last controller of a head fails the I/O queued on it: that is how `force`
//! releases a writer blocked with every path down. No state is kept: a disconnect killed at any
//! point and run again reads the host again and finishes.

use std::time::Duration;

use tracing::{debug, info};

use super::props::{NvmeProperties, NvmeTarget};
use super::sysfs::{self, Controller, Namespace, Subsystem};
use super::{lock_name, NvmeTuning};
use crate::block::multipath::{self, DmMap};
use crate::device_info::DeviceInfo;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::report::DisconnectOptions;
use crate::report::{DisconnectPlan, DisconnectReport, Outcome, Thing, Untouched};
use crate::time::Pause;

fn ns_thing(n: &Namespace) -> Thing {
    Thing::NvmeNamespace {
        dev: n.name.clone(),
        nsid: n.nsid,
        id: n
            .uuid
            .map(|u| format!("uuid {u}"))
            .or(n.nguid.map(|g| format!("nguid {g}"))),
    }
}

fn ctrl_thing(c: &Controller) -> Thing {
    let transport = c.transport.as_ref().map(ToString::to_string);
    let portal = match (transport, c.traddr(), c.trsvcid()) {
        (Some(t), Some(std::net::IpAddr::V6(a)), Some(p)) => format!("{t} [{a}]:{p}"),
        (Some(t), Some(a), Some(p)) => format!("{t} {a}:{p}"),
        _ => c.address.clone().unwrap_or_default(),
    };
    Thing::NvmeController {
        name: c.name.clone(),
        nqn: c.subsysnqn.clone().unwrap_or_default(),
        portal,
    }
}

/// This host's NQN as written in /etc/nvme (not made here: a disconnect writes nothing there).
fn our_hostnqn(host: &Host, t: &NvmeTarget) -> Option<String> {
    t.host_nqn.as_ref().map(|n| n.to_string()).or_else(|| {
        host.read_attr_opt(&host.nvme_conf("hostnqn"))
            .ok()
            .flatten()
            .map(|s| s.trim().to_string())
    })
}

/// The controllers of `sub` this host connected as `hostnqn` (all, when it is unknown).
fn ours<'a>(sub: &'a Subsystem, hostnqn: Option<&'a str>) -> impl Iterator<Item = &'a Controller> {
    sub.controllers
        .iter()
        .filter(move |c| match (hostnqn, c.hostnqn.as_deref()) {
            (Some(h), Some(ch)) => h == ch,
            _ => true,
        })
}

/// What the host shows of the volume: its namespace devices, and a device the device_info
/// names that is not one of them (left alone). Changes nothing.
struct Found<'p> {
    target: &'p NvmeTarget,
    hostnqn: Option<String>,
    devices: Vec<Namespace>,
    left_alone: Vec<Untouched>,
}

fn find<'p>(
    host: &Host,
    props: &'p NvmeProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<Found<'p>> {
    let mut left_alone = Vec::new();
    if props.replicated {
        return Err(Error::invalid(
            "volume_replicas",
            "the dry run of a replicated volume is not available",
        ));
    }
    let target = &props.targets[0];
    let hostnqn = our_hostnqn(host, target);
    let sub = sysfs::subsystem(host, &target.nqn)?;
    let devices = match &sub {
        Some(s) => {
            let devs = sysfs::volume_devices(s, target);
            only_namespace(props, target, &devs)?;
            devs
        }
        None => Vec::new(),
    };
    // A device the device_info names that is not one of the volume's is never touched.
    if let Some(name) = device_info.and_then(|d| d.device_name().ok().flatten()) {
        if !devices.iter().any(|d| d.name == name) && name.starts_with("nvme") {
            let shown = sysfs::subsystems(host)?
                .iter()
                .flat_map(|s| {
                    s.heads
                        .iter()
                        .cloned()
                        .chain(s.controllers.iter().flat_map(|c| c.namespaces.clone()))
                })
                .find(|n| n.name == name);
            if let Some(n) = shown {
                left_alone.push(Untouched {
                    thing: ns_thing(&n),
                    why: format!(
                        "device_info names it, but it is not the volume's namespace ({} in {})",
                        target.identity(),
                        target.nqn
                    ),
                });
            }
        }
    }
    Ok(Found {
        target,
        hostnqn,
        devices,
        left_alone,
    })
}

/// Properties with no uuid, nguid or nsid name the subsystem's namespace only while it shows
/// one: with several, none can be proven to be the volume's.
fn only_namespace(props: &NvmeProperties, target: &NvmeTarget, devs: &[Namespace]) -> Result<()> {
    let anon = target.uuid.is_none() && target.nguid.is_none() && target.nsid.is_none();
    if !anon || devs.len() <= 1 {
        return Ok(());
    }
    Err(Error::NotTheVolume {
        volume: props.label(),
        detail: format!(
            "the properties give no vol_uuid, volume_nguid or ns_id, and subsystem {} shows \
             several namespaces ({}): none can be proven to be the volume's; nothing was removed",
            target.nqn,
            devs.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// What holds each of the volume's devices open (`held by md0`, `mounted at /srv`, `open in
/// process 812 (qemu-kvm)`), the same reading as iSCSI's, multipathd's path checker aside (it
/// reads and writes no data). A device opened for a moment (udev's probe after a writer closed
/// it) is looked at again for up to two seconds.
fn in_use(host: &Host, devices: &[Namespace]) -> Vec<(Namespace, Vec<String>)> {
    let clock = host.time();
    let end = clock.now() + Duration::from_secs(2);
    let mut pause = Pause::new(Duration::from_millis(100), Duration::from_millis(500));
    loop {
        let open: Vec<(Namespace, Vec<String>)> = devices
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    crate::block::openers::disk_openers(host, &d.name),
                )
            })
            .filter(|(_, o)| !o.is_empty())
            .collect();
        if open.is_empty() || clock.now() >= end {
            return open;
        }
        clock.sleep(pause.take());
    }
}

/// The dm-multipath maps stacked on the volume's namespaces whose every path is one of them:
/// with the kernel's native NVMe multipath off, multipathd may build one over a namespace (as
/// it does over an iSCSI volume's disks), and it is the volume's own multipath layer, not
/// another user. Each that nobody holds open is flushed and removed in-process, as iSCSI's map
/// is; one that is open, or will not go, stays, and its namespace is then in use (a plain
/// disconnect refuses, naming it).
fn remove_multipath_maps(
    host: &Host,
    devices: &[Namespace],
    tuning: &NvmeTuning,
    report: &mut DisconnectReport,
) {
    let ours: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
    let mut maps: Vec<DmMap> = Vec::new();
    for d in devices {
        for h in host
            .list(&host.sys(format!("block/{}/holders", d.name)))
            .unwrap_or_default()
        {
            let Ok(Some(m)) = DmMap::read(host, &h) else {
                continue;
            };
            let all_ours = m.slaves.iter().all(|s| ours.contains(&s.as_str()));
            if m.uuid.starts_with("mpath-") && all_ours && !maps.contains(&m) {
                maps.push(m);
            }
        }
    }
    for m in maps {
        let thing = Thing::map(&m.dev, m.name.as_str());
        if !crate::block::openers::openers(host, &m.dev, Some(m.name.as_str())).is_empty() {
            continue;
        }
        let removed = super::flush(host, &m.dev, tuning)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                multipath::remove_map(host, &m, &tuning.flush_backoff, tuning.delete_timeout)
                    .map_err(|e| e.to_string())
            });
        match removed {
            Ok(()) => {
                info!(map = %m.dev, "multipath map over the namespace removed");
                report.removed.push(thing);
            }
            Err(e) => debug!(map = %m.dev, "multipath map stays: {e}"),
        }
    }
}

/// Refuses a plain disconnect of a volume whose device is open (deleting its controllers would
/// fail its I/O from under the opener); forced, each opener is a failure and the controllers go.
fn refuse_if_open(
    host: &Host,
    props: &NvmeProperties,
    devices: &[Namespace],
    opts: DisconnectOptions,
    report: &mut DisconnectReport,
) -> Result<()> {
    let open = in_use(host, devices);
    if open.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = open
        .iter()
        .map(|(d, o)| format!("/dev/{} is in use ({})", d.name, o.join(", ")))
        .collect();
    if opts.force {
        for (d, o) in &open {
            report.fail(
                Some(ns_thing(d)),
                format!(
                    "/dev/{} was in use ({}): its controllers were deleted from under it, and \
                     its opener gets I/O errors",
                    d.name,
                    o.join(", ")
                ),
            );
        }
        return Ok(());
    }
    for (d, o) in &open {
        report.failures.push(crate::report::Failure {
            thing: Some(ns_thing(d)),
            message: format!("/dev/{} is in use ({})", d.name, o.join(", ")),
        });
    }
    report.outcome = Outcome::Refused;
    Err(Error::Disconnect {
        message: format!(
            "{} not disconnected, nothing was removed: {}; close it (unmount, stop the process \
             or the device stacked on it) and retry, or force the disconnect",
            props.label(),
            what.join("; ")
        ),
        report: Box::new(std::mem::take(report)),
    })
}

/// Which of the subsystem's controllers (this host's) go: those that serve no namespace but the
/// volume's; the others are kept, with what else they serve.
fn decide(
    sub: Option<&Subsystem>,
    target: &NvmeTarget,
    hostnqn: Option<&str>,
) -> (Vec<Controller>, Vec<Untouched>) {
    let mut delete = Vec::new();
    let mut kept = Vec::new();
    let Some(sub) = sub else {
        return (delete, kept);
    };
    for c in ours(sub, hostnqn) {
        let others = sysfs::others_on(c, target);
        if others.is_empty() {
            delete.push(c.clone());
        } else {
            let names: Vec<String> = others
                .iter()
                .map(|n| match n.nsid {
                    Some(id) => format!("{} (nsid {id})", n.name),
                    None => n.name.clone(),
                })
                .collect();
            kept.push(Untouched {
                thing: ctrl_thing(c),
                why: format!("it also serves {}", names.join(", ")),
            });
        }
    }
    (delete, kept)
}

/// The plan of one (not replicated) volume: see [`super::disconnect_plan`].
pub(crate) fn plan_one(
    host: &Host,
    props: &NvmeProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<DisconnectPlan> {
    let f = find(host, props, device_info)?;
    let sub = sysfs::subsystem(host, &f.target.nqn)?;
    let (delete, keep) = decide(sub.as_ref(), f.target, f.hostnqn.as_deref());
    let mut plan = DisconnectPlan {
        volume: props.label(),
        flush: f.devices.iter().map(ns_thing).collect(),
        remove: delete.iter().map(ctrl_thing).collect(),
        keep,
        left_alone: f.left_alone,
        ..Default::default()
    };
    let down: Vec<&str> = delete
        .iter()
        .filter(|c| !c.is_live())
        .map(|c| c.name.as_str())
        .collect();
    if !f.devices.is_empty() && !down.is_empty() && down.len() == delete.len() {
        plan.problems.push(format!(
            "no controller of the volume is live ({}): the flush will likely not finish, and a \
             plain disconnect stops with nothing removed",
            down.join(", ")
        ));
        plan.if_forced.push(
            "deletes the controllers after the failed flush: the queued I/O fails and the \
             data not yet on the target is lost"
                .into(),
        );
    }
    Ok(plan)
}

/// The plan of one volume on its own (not a replica under its array, which the array's own
/// plan stops first): [`plan_one`], and what holds its devices open.
pub(crate) fn plan_single(
    host: &Host,
    props: &NvmeProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<DisconnectPlan> {
    let mut plan = plan_one(host, props, device_info)?;
    let f = find(host, props, device_info)?;
    for d in &f.devices {
        let open = crate::block::openers::openers(host, &d.name, None);
        if !open.is_empty() {
            plan.problems.push(format!(
                "/dev/{} is in use ({}): a plain disconnect stops with nothing removed",
                d.name,
                open.join(", ")
            ));
            plan.if_forced.push(format!(
                "deletes the controllers from under the opener of /dev/{}, which gets I/O errors",
                d.name
            ));
        }
    }
    Ok(plan)
}

/// Detaches one (not replicated) volume: see [`super::disconnect_volume`].
pub(crate) fn disconnect_one(
    host: &Host,
    props: &NvmeProperties,
    device_info: Option<&DeviceInfo>,
    opts: DisconnectOptions,
    tuning: &NvmeTuning,
) -> Result<DisconnectReport> {
    // 1. The volume's devices, from the kernel's state.
    let found = find(host, props, device_info)?;
    let mut d = Detach {
        host,
        props,
        opts,
        tuning,
        target: found.target,
        hostnqn: found.hostnqn,
        devices: found.devices,
        report: DisconnectReport {
            volume: props.label(),
            forced: opts.force,
            left_alone: found.left_alone,
            ..Default::default()
        },
    };
    let unflushed = d.flush()?;
    d.remove(&unflushed)?;
    d.finish()
}

/// One disconnect of an NVMe-oF volume under way: what it found, and its report.
struct Detach<'a> {
    host: &'a Host,
    props: &'a NvmeProperties,
    opts: DisconnectOptions,
    tuning: &'a NvmeTuning,
    target: &'a NvmeTarget,
    hostnqn: Option<String>,
    devices: Vec<Namespace>,
    report: DisconnectReport,
}

impl Detach<'_> {
    /// Step 2: flushes every device while nothing has been removed; returns those that did not
    /// flush. A plain disconnect stops there, nothing removed, when one did not.
    fn flush(&mut self) -> Result<Vec<Namespace>> {
        let (host, tuning) = (self.host, self.tuning);
        let results = crate::par::par_map(&self.devices, |d| super::flush(host, &d.name, tuning));
        let mut unflushed = Vec::new();
        for (d, r) in self.devices.iter().zip(results) {
            if let Err(e) = r {
                let why = format!("cannot flush /dev/{}: {e}", d.name);
                self.report.fail(Some(ns_thing(d)), why);
                unflushed.push(d.clone());
            }
        }
        if unflushed.is_empty() || self.opts.force {
            return Ok(unflushed);
        }
        self.report.outcome = Outcome::Refused;
        let names: Vec<String> = unflushed
            .iter()
            .map(|d| format!("/dev/{}", d.name))
            .collect();
        Err(Error::Disconnect {
            message: format!(
                "{}: {} did not flush (every path down?); nothing was removed and the kernel \
                 keeps the data; retry once a portal is back, or use --force to lose it",
                self.props.label(),
                names.join(", ")
            ),
            report: Box::new(std::mem::take(&mut self.report)),
        })
    }

    /// Step 3, under the subsystem's lock: the namespace counted again (another attach may have
    /// mapped one meanwhile), a dm map multipathd built over it removed, no device of the volume
    /// open, then the controllers no other volume uses deleted and waited for.
    fn remove(&mut self, unflushed: &[Namespace]) -> Result<()> {
        let (host, props, target) = (self.host, self.props, self.target);
        let _lock = host.lock(&lock_name(&target.nqn))?;
        let sub = sysfs::subsystem(host, &target.nqn)?;
        if let Some(s) = &sub {
            only_namespace(props, target, &sysfs::volume_devices(s, target))?;
        }
        remove_multipath_maps(host, &self.devices, self.tuning, &mut self.report);
        refuse_if_open(host, props, &self.devices, self.opts, &mut self.report)?;
        let (delete, kept) = decide(sub.as_ref(), target, self.hostnqn.as_deref());
        self.report.kept.extend(kept);
        self.delete_controllers(&delete)?;
        self.account_gone(&delete);
        if !self.report.kept.is_empty() && !unflushed.is_empty() {
            self.report.fail(
                None,
                "I/O queued on the volume's namespace was not failed: its controllers also \
                 serve other volumes' namespaces and were kept"
                    .into(),
            );
        }
        Ok(())
    }

    /// Deletes the controllers `delete` in parallel through sysfs.
    fn delete_controllers(&mut self, delete: &[Controller]) -> Result<()> {
        let (host, timeout) = (self.host, self.tuning.delete_timeout);
        let results = crate::par::par_map(delete, |c| {
            let path = host.sys(format!("class/nvme/{}/delete_controller", c.name));
            host.kern().write_attr(&path, "1", timeout)
        });
        for (c, r) in delete.iter().zip(results) {
            match r {
                Ok(()) => {
                    info!(controller = %c.name, "controller deleted");
                    self.report.removed.push(ctrl_thing(c));
                }
                Err(e) if sysfs::controller(host, &c.name)?.is_none() => {
                    debug!(controller = %c.name, "gone meanwhile: {e}");
                    self.report.removed.push(ctrl_thing(c));
                }
                Err(e) => {
                    let why = format!("cannot delete controller {}: {e}", c.name);
                    self.report.fail(Some(ctrl_thing(c)), why);
                }
            }
        }
        Ok(())
    }

    /// Step 4: waits for the kernel to drop the deleted controllers and the volume's devices,
    /// and says of each whether it went, stays (controllers kept), or is left behind.
    fn account_gone(&mut self, delete: &[Controller]) {
        // With a controller kept, the volume's namespace stays: only the deleted controllers
        // are waited for.
        let report = &mut self.report;
        let wait_devs: &[Namespace] = if report.kept.is_empty() {
            &self.devices
        } else {
            &[]
        };
        let gone = wait_gone(self.host, delete, wait_devs, self.tuning.removal_deadline);
        for c in delete {
            if !gone.0.contains(&c.name) {
                report.leave(ctrl_thing(c));
            }
        }
        for d in &self.devices {
            if gone.1.contains(&d.name) {
                report.removed.insert(0, ns_thing(d));
            } else if report.kept.is_empty() {
                report.leave(ns_thing(d));
            } else {
                report.kept.push(Untouched {
                    thing: ns_thing(d),
                    why: "it stays while the controllers kept serve the subsystem; it goes \
                          when the target unmaps it"
                        .into(),
                });
            }
        }
    }

    /// Step 5: the report, and the outcome every transport's disconnect gives.
    fn finish(mut self) -> Result<DisconnectReport> {
        let report = &mut self.report;
        if !report.left_behind.is_empty() && report.failures.is_empty() {
            let what: Vec<String> = report.left_behind.iter().map(ToString::to_string).collect();
            report.fail(None, format!("still on the host: {}", what.join(", ")));
        }
        self.report.finish(self.opts.ignore_errors)
    }
}

/// Waits until the controllers and namespace devices are gone, or the deadline; returns those
/// that are gone.
fn wait_gone(
    host: &Host,
    ctrls: &[Controller],
    devs: &[Namespace],
    deadline: Duration,
) -> (Vec<String>, Vec<String>) {
    let clock = host.time();
    let end = clock.now() + deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(500));
    loop {
        let c_gone: Vec<String> = ctrls
            .iter()
            .filter(|c| !host.sys(format!("class/nvme/{}", c.name)).exists())
            .map(|c| c.name.clone())
            .collect();
        let d_gone: Vec<String> = devs
            .iter()
            .filter(|d| !host.sys(format!("block/{}", d.name)).exists())
            .map(|d| d.name.clone())
            .collect();
        let all = c_gone.len() == ctrls.len() && d_gone.len() == devs.len();
        if all || clock.now() >= end {
            return (c_gone, d_gone);
        }
        clock.sleep(pause.take());
    }
}
