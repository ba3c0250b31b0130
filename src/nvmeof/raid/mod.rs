//! Replicated NVMe-oF volumes (os-brick's `volume_replicas`): each replica is a namespace of its
//! own subsystem, and the volume is an md RAID1 over them, named by the properties' `alias`.
//!
//! Connect attaches every replica it can, then uses the md array that already holds them (udev's
//! incremental assembly may have built it), assembles one from replicas that carry an md
//! superblock (`mdadm --assemble --run`, those replicas only), or creates it when none does and
//! every replica is there (`mdadm --create`, os-brick's options). mdadm is the one program brick
//! runs for this, as an argv with a deadline. The array is found in sysfs
//! (`/sys/block/NAME/holders/mdN`), never through /dev/md links.
//!
//! Never over data, never another volume's array (see `legs`): a create needs every replica
//! read in-process with no md superblock and no other signature, and mdadm's own "No md
//! superblock detected"; a replica that cannot be read, or that holds a file system, LVM, LUKS
//! or a partition table, stops the connect with nothing written. An array is used or assembled
//! only when the name in its members' superblocks is the alias, they are of one array, and it
//! holds no device that is not one of the replicas (a clone's replica carries the same
//! superblock). A failed connect stops only an array it made and detaches only the replicas it
//! attached: a replica that showed before it (another attach uses it) is left as it was.
//!
//! Disconnect flushes the array, stops it in-process (`clear` to `md/array_state`, which the
//! kernel refuses while it is open), then disconnects every replica as a plain volume; an array
//! holding a device that is not a replica is refused, nothing flushed or stopped.

use std::time::Duration;

use tracing::{info, warn};

use super::props::{NvmeProperties, NvmeTarget};
use super::sysfs;
use super::NvmeTuning;
use crate::block::md;
use crate::device_info::DeviceInfo;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::report::DisconnectOptions;
use crate::report::{DisconnectReport, Outcome, Thing};

mod legs;
use crate::time::Pause;
pub(crate) use legs::holder_of;
use legs::{array_of, check_blank, check_members, classify, refused, Leg};

/// Replica `i` of `props` as a volume of its own.
fn replica(props: &NvmeProperties, i: usize) -> NvmeProperties {
    NvmeProperties {
        targets: vec![props.targets[i].clone()],
        volume_id: props.targets[i].uuid.map(|u| u.to_string()),
        alias: None,
        replicated: false,
    }
}

/// Whether array `md`, whose stop was just refused, runs within two seconds (udev's incremental
/// assembly starting it as brick tried to stop it).
fn started_meanwhile(host: &Host, md: &str) -> Result<bool> {
    let clock = host.time();
    let end = clock.now() + Duration::from_secs(2);
    let mut pause = Pause::new(Duration::from_millis(50), Duration::from_millis(500));
    loop {
        if md::running(host, md)? {
            return Ok(true);
        }
        if clock.now() >= end {
            return Ok(false);
        }
        clock.sleep(pause.take());
    }
}

/// Connects a volume in the replicated format (one replica or several) and describes it: the md
/// RAID1, or the one namespace.
pub(crate) fn connect_replicated_volume(
    host: &Host,
    props: &NvmeProperties,
    tuning: &NvmeTuning,
) -> Result<super::NvmeConnected> {
    // The replicated format (one replica or several): the md RAID1, or the one namespace.
    let device_info = connect_replicated(host, props, tuning)?;
    let mut controllers = Vec::new();
    let mut namespace = None;
    for t in &props.targets {
        if let Some(sub) = sysfs::subsystem(host, &t.nqn)? {
            controllers.extend(sub.controllers.iter().map(|c| c.name.clone()));
            namespace = namespace.or(sysfs::volume_devices(&sub, t).into_iter().next());
        }
    }
    Ok(super::NvmeConnected {
        device_info,
        namespace: namespace.ok_or_else(|| Error::NvmeConnect {
            volume: props.label(),
            reason: crate::error::NvmeNotConnected::NotOnHost(
                "no replica's namespace shows any more".into(),
            ),
        })?,
        controllers,
        failed_paths: Vec::new(),
    })
}

pub(crate) fn connect_replicated(
    host: &Host,
    props: &NvmeProperties,
    tuning: &NvmeTuning,
) -> Result<DeviceInfo> {
    let alias = props
        .alias
        .as_deref()
        .ok_or_else(|| Error::invalid("alias", "a replicated volume needs its md name"))?;
    let mut devs = Vec::new();
    // The replicas this call attached (their namespace was not on the host before): the only
    // ones a failure detaches again.
    let mut attached = Vec::new();
    let mut failures = Vec::new();
    for (i, t) in props.targets.iter().enumerate() {
        let before = replica_shown(host, t)?;
        match super::connect::connect_one(host, &replica(props, i), tuning) {
            Ok(c) => {
                if !before {
                    attached.push((i, c.namespace.name.clone()));
                }
                devs.push(c.namespace.name);
            }
            Err(e) => {
                warn!(replica = i, "replica not attached: {e}");
                failures.push(format!("replica {i}: {e}"));
            }
        }
    }
    if devs.is_empty() {
        return Err(Error::NvmeConnect {
            volume: props.label(),
            reason: crate::error::NvmeNotConnected::Replicas(failures.join("; ")),
        });
    }
    let mut made_array = false;
    match use_array(
        host,
        props,
        alias,
        &devs,
        &failures,
        tuning,
        &mut made_array,
    ) {
        Ok(md) => Ok(DeviceInfo {
            kind: "block".into(),
            path: Some(format!("/dev/{md}")),
            ..Default::default()
        }),
        Err(e) => {
            undo(host, props, &devs, &attached, made_array, tuning);
            Err(e)
        }
    }
}

/// Whether replica `t`'s namespace shows on the host (attached before, by anyone).
fn replica_shown(host: &Host, t: &NvmeTarget) -> Result<bool> {
    Ok(sysfs::subsystem(host, &t.nqn)?.is_some_and(|sub| {
        sysfs::volume_devices(&sub, t)
            .iter()
            .any(|d| !d.contradicts(t))
    }))
}

/// Undoes a failed replicated connect: the array if this call assembled or created it (and it
/// holds nothing but the replicas), then each replica this call attached that no array holds.
fn undo(
    host: &Host,
    props: &NvmeProperties,
    devs: &[String],
    attached: &[(usize, String)],
    made_array: bool,
    tuning: &NvmeTuning,
) {
    if made_array {
        if let Ok(Some(md)) = holder_of(host, &props.label(), devs) {
            let _ = md::stop(host, &md, tuning.delete_timeout, tuning.removal_deadline);
        }
    }
    for (i, dev) in attached {
        if let Ok(Some(md)) = md::holding(host, std::slice::from_ref(dev)) {
            warn!(replica = i, device = %dev, array = %md, "replica left attached: an array this connect did not make holds it");
            continue;
        }
        let _ = super::disconnect::disconnect_one(
            host,
            &replica(props, *i),
            None,
            DisconnectOptions::default(),
            tuning,
        );
    }
}

/// The array the volume's replicas `devs` make: the one running already (once proven the
/// volume's), else assembled from the replicas with an md superblock, else created when every
/// replica is there and none holds anything. `made` is set once this call runs mdadm to make
/// one.
fn use_array(
    host: &Host,
    props: &NvmeProperties,
    alias: &str,
    devs: &[String],
    failures: &[String],
    tuning: &NvmeTuning,
    made: &mut bool,
) -> Result<String> {
    let legs = devs
        .iter()
        .map(|d| Ok((d.clone(), classify(host, d, tuning.connect_timeout)?)))
        .collect::<Result<Vec<_>>>()?;
    if let Some(md) = running_array(host, props, alias, &legs, tuning)? {
        return Ok(md);
    }
    let members: Vec<String> = legs
        .iter()
        .filter(|(_, l)| matches!(l, Leg::Member(_)))
        .map(|(d, _)| format!("/dev/{d}"))
        .collect();
    if members.is_empty() && props.targets.len() == 1 {
        // One replica that was never in an array: the namespace itself, as os-brick does;
        // unless it cannot be read, when it could be an array's member.
        return match &legs[0].1 {
            Leg::Unknown(why) => Err(refused(
                props,
                &devs[0],
                format!("whether it is an md member is unknown: {why}"),
            )),
            _ => Ok(devs[0].clone()),
        };
    }
    let args = if members.is_empty() {
        create_args(props, alias, devs, &legs, failures)?
    } else {
        check_members(props, alias, &legs)?;
        for (d, l) in legs.iter().filter(|(_, l)| !matches!(l, Leg::Member(_))) {
            warn!(device = %d, "replica not in the array: it holds {l}");
        }
        let mut args = vec![
            "--assemble".to_string(),
            "--run".into(),
            format!("/dev/md/{alias}"),
        ];
        args.extend(members);
        args
    };
    *made = true;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assemble_and_wait(host, props, alias, devs, &args, tuning)
}

/// The array that holds the replicas `legs`, proven the volume's, when it runs (or udev's
/// incremental assembly starts it as brick stops it); an array waiting for members that will
/// not come is stopped, to be assembled with what is there.
fn running_array(
    host: &Host,
    props: &NvmeProperties,
    alias: &str,
    legs: &[(String, Leg)],
    tuning: &NvmeTuning,
) -> Result<Option<String>> {
    let Some(md) = array_of(host, props, alias, legs)? else {
        return Ok(None);
    };
    if md::running(host, &md)? {
        info!(md = %md, "the replicas' array is running");
        return Ok(Some(md));
    }
    // The kernel refuses the stop (EBUSY) while udev's incremental assembly is starting it:
    // then it runs, and is the volume's (array_of).
    if let Err(d) = md::stop(host, &md, tuning.delete_timeout, tuning.removal_deadline) {
        if !started_meanwhile(host, &md)? {
            return Err(nvme_fail(props, d.to_string()));
        }
        info!(md = %md, "the replicas' array started meanwhile");
        return Ok(Some(md));
    }
    Ok(None)
}

/// mdadm's arguments to create the volume's RAID1 over every replica (os-brick's options), once
/// every replica is attached and none holds anything.
fn create_args(
    props: &NvmeProperties,
    alias: &str,
    devs: &[String],
    legs: &[(String, Leg)],
    failures: &[String],
) -> Result<Vec<String>> {
    if props.targets.len() > devs.len() {
        return Err(nvme_fail(
            props,
            format!(
                "cannot create the RAID1 {alias}: only {} of its {} replicas attached ({})",
                devs.len(),
                props.targets.len(),
                failures.join("; ")
            ),
        ));
    }
    check_blank(props, legs)?;
    let mut args: Vec<String> = [
        "--create",
        &format!("/dev/md/{alias}"),
        "--run",
        "--name",
        alias,
        "--level=1",
        "--bitmap=internal",
        "--homehost=any",
        "--failfast",
        "--assume-clean",
        "--metadata=1.2",
        &format!("--raid-devices={}", devs.len()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(devs.iter().map(|d| format!("/dev/{d}")));
    Ok(args)
}

fn nvme_fail(props: &NvmeProperties, detail: String) -> Error {
    Error::NvmeConnect {
        volume: props.label(),
        reason: crate::error::NvmeNotConnected::Replicas(detail),
    }
}

/// Runs mdadm (`args`: an assembly or a create), then waits for the array over the replicas
/// to run, and checks that it holds nothing but them.
fn assemble_and_wait(
    host: &Host,
    props: &NvmeProperties,
    alias: &str,
    devs: &[String],
    args: &[&str],
    tuning: &NvmeTuning,
) -> Result<String> {
    let t = tuning.connect_timeout;
    let label = props.label();
    if let Err(e) = md::mdadm_ok(host, args, t) {
        // udev's incremental assembly (mdadm's own rules) may have taken the members
        // meanwhile: use its array once it runs, or stop it and assemble once more.
        host.time().sleep(Duration::from_secs(1));
        match holder_of(host, &label, devs)? {
            Some(md) if md::running(host, &md)? => return Ok(md),
            Some(md) => {
                md::stop(host, &md, tuning.delete_timeout, tuning.removal_deadline)
                    .map_err(|d| nvme_fail(props, d.to_string()))?;
                md::mdadm_ok(host, args, t)?;
            }
            None => return Err(e),
        }
    }
    let clock = host.time();
    let end = clock.now() + tuning.namespace_deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(500));
    loop {
        if let Some(md) = holder_of(host, &label, devs)? {
            if md::running(host, &md)? {
                return Ok(md);
            }
        }
        if clock.now() >= end {
            return Err(nvme_fail(
                props,
                format!("the RAID1 {alias} did not show in sysfs"),
            ));
        }
        clock.sleep(pause.take());
    }
}

/// The block devices of the replicas on the host now (the heads, or single-path namespaces),
/// each proven by its target's identity: the array's candidate members.
fn replica_devices(host: &Host, props: &NvmeProperties) -> Result<Vec<String>> {
    let mut devs = Vec::new();
    for t in &props.targets {
        if let Some(sub) = sysfs::subsystem(host, &t.nqn)? {
            devs.extend(
                sysfs::volume_devices(&sub, t)
                    .into_iter()
                    .filter(|d| !d.contradicts(t))
                    .map(|d| d.name),
            );
        }
    }
    Ok(devs)
}

/// The dry run of a replicated volume's disconnect, from the code's own steps: the md array is
/// flushed and stopped first (a plain disconnect stops if it is open), then each replica is
/// detached as a plain volume (its own plan, merged).
pub(crate) fn replicated_plan(
    host: &Host,
    props: &NvmeProperties,
) -> Result<crate::report::DisconnectPlan> {
    let mut plan = crate::report::DisconnectPlan {
        volume: props.label(),
        ..Default::default()
    };
    let devs = replica_devices(host, props)?;
    let array = match holder_of(host, &props.label(), &devs) {
        Ok(a) => a,
        Err(e) => {
            plan.problems.push(e.to_string());
            None
        }
    };
    if let Some(md) = array {
        let thing = Thing::Device { dev: md.clone() };
        plan.flush.push(thing.clone());
        plan.remove.push(thing);
        let open = crate::block::openers::openers(host, &md, None);
        if !open.is_empty() {
            plan.problems.push(format!(
                "/dev/{md} is in use ({}): a plain disconnect stops before removing anything",
                open.join(", ")
            ));
            plan.if_forced.push(format!(
                "--force stops /dev/{md} if the kernel lets it, then detaches the replicas"
            ));
        }
    }
    for i in 0..props.targets.len() {
        let p = super::disconnect::plan_one(host, &replica(props, i), None)?;
        plan.flush.extend(p.flush);
        plan.remove.extend(p.remove);
        plan.keep.extend(p.keep);
        plan.left_alone.extend(p.left_alone);
        plan.problems.extend(p.problems);
        plan.if_forced.extend(p.if_forced);
    }
    Ok(plan)
}

/// Detaches a replicated volume: flushes and stops its md array, then disconnects every
/// replica; one report for all.
pub(crate) fn disconnect_replicated(
    host: &Host,
    props: &NvmeProperties,
    opts: DisconnectOptions,
    tuning: &NvmeTuning,
) -> Result<DisconnectReport> {
    let mut report = DisconnectReport {
        volume: props.label(),
        forced: opts.force,
        ..Default::default()
    };
    let devs = replica_devices(host, props)?;
    // An array with a member that is not one of the replicas (a clone's) is not the volume's:
    // refused, before anything is flushed or stopped.
    match holder_of(host, &props.label(), &devs) {
        Ok(Some(md)) => report = stop_array(host, props, &md, opts, tuning, report)?,
        Ok(None) => {}
        Err(Error::RaidRefused { device, detail, .. }) => {
            let thing = Thing::Device {
                dev: device.trim_start_matches("/dev/").to_string(),
            };
            report.fail(Some(thing), format!("{device}: {detail}"));
            report.outcome = Outcome::Refused;
            return Err(Error::Disconnect {
                message: format!("{}: {device}: {detail}", props.label()),
                report: Box::new(report),
            });
        }
        Err(e) => return Err(e),
    }
    for i in 0..props.targets.len() {
        let r =
            match super::disconnect::disconnect_one(host, &replica(props, i), None, opts, tuning) {
                Ok(r) => r,
                Err(Error::Disconnect { report, .. }) => *report,
                Err(e) => {
                    report.fail(None, format!("replica {i}: {e}"));
                    continue;
                }
            };
        report.absorb(r);
    }
    report.finish(opts.ignore_errors)
}

/// Flushes array `md` and stops it; a plain disconnect stops (refused, nothing removed) when
/// the flush fails or the kernel refuses the stop.
fn stop_array(
    host: &Host,
    props: &NvmeProperties,
    md: &str,
    opts: DisconnectOptions,
    tuning: &NvmeTuning,
    mut report: DisconnectReport,
) -> Result<DisconnectReport> {
    let thing = Thing::Device {
        dev: md.to_string(),
    };
    let flushed = super::flush(host, md, tuning);
    if let Err(e) = flushed {
        report.fail(Some(thing.clone()), format!("cannot flush /dev/{md}: {e}"));
        if !opts.force {
            report.outcome = Outcome::Refused;
            return Err(Error::Disconnect {
                message: format!(
                    "{}: /dev/{md} did not flush; nothing was removed and the kernel keeps \
                     the data",
                    props.label()
                ),
                report: Box::new(report),
            });
        }
    }
    match md::stop(host, md, tuning.delete_timeout, tuning.removal_deadline) {
        Ok(()) if !host.sys(format!("block/{md}/md")).exists() => report.removed.push(thing),
        Ok(()) => report.leave(thing),
        Err(why) => {
            report.fail(Some(thing.clone()), why.to_string());
            if !opts.force {
                report.outcome = Outcome::Refused;
                return Err(Error::Disconnect {
                    message: format!(
                        "{}: /dev/{md} cannot be stopped (open?); the replicas were kept",
                        props.label()
                    ),
                    report: Box::new(report),
                });
            }
            report.leave(Thing::Device {
                dev: md.to_string(),
            });
        }
    }
    Ok(report)
}
