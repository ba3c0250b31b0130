//! Replicated NVMe-oF volumes (os-brick's `volume_replicas`): each replica is a namespace of its
//! own subsystem, and the volume is an md RAID1 over them, named by the properties' `alias`.
//!
//! Connect attaches every replica it can, then uses the md array that already holds them (udev's
//! incremental assembly may have built it), assembles one from replicas that carry an md
//! superblock (`mdadm --assemble --run`), or creates it when none does and every replica is
//! there (`mdadm --create`, os-brick's options). mdadm is the one program brick runs for this,
//! as an argv with a deadline. The array is found in sysfs (`/sys/block/NAME/holders/mdN`),
//! never through /dev/md links.
//!
//! Disconnect flushes the array, stops it in-process (`clear` to `md/array_state`, which the
//! kernel refuses while it is open), then disconnects every replica as a plain volume.

use std::time::Duration;

use tracing::{info, warn};

use super::props::NvmeProperties;
use super::sysfs;
use super::NvmeTuning;
use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::iscsi::DisconnectOptions;
use crate::props::DeviceInfo;
use crate::report::{DisconnectReport, Outcome, Thing};
use crate::time::Pause;

/// Replica `i` of `props` as a volume of its own.
fn replica(props: &NvmeProperties, i: usize) -> NvmeProperties {
    NvmeProperties {
        targets: vec![props.targets[i].clone()],
        volume_id: props.targets[i].uuid.map(|u| u.to_string()),
        alias: None,
        replicated: false,
    }
}

/// The md array (`md127`) that holds any of `devs`, from their `holders` in sysfs.
pub(crate) fn md_holding(host: &Host, devs: &[String]) -> Result<Option<String>> {
    for d in devs {
        for h in host.list(&host.sys(format!("block/{d}/holders")))? {
            if h.starts_with("md") {
                return Ok(Some(h));
            }
        }
    }
    Ok(None)
}

fn mdadm(host: &Host, args: &[&str], timeout: Duration) -> Result<crate::host::Output> {
    let cmd = Cmd::new("mdadm")
        .args(args.iter().copied())
        .timeout(timeout);
    Ok(host.run(&cmd)?)
}

fn mdadm_ok(host: &Host, args: &[&str], timeout: Duration) -> Result<()> {
    let out = mdadm(host, args, timeout)?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            cmd: format!("mdadm {}", args.join(" ")),
            code: out.code,
            detail: out.tail(),
        })
    }
}

/// Whether `/dev/DEV` carries an md superblock (`mdadm --examine` exits 0).
fn is_member(host: &Host, dev: &str, timeout: Duration) -> Result<bool> {
    Ok(mdadm(host, &["--examine", &format!("/dev/{dev}")], timeout)?.success())
}

/// Whether array `md` is running (its `array_state` is not `inactive` or `clear`).
fn md_running(host: &Host, md: &str) -> Result<bool> {
    Ok(host
        .read_attr_opt(&host.sys(format!("block/{md}/md/array_state")))?
        .is_some_and(|s| !matches!(s.trim(), "inactive" | "clear")))
}

/// Stops array `md` in-process (`clear` to its `array_state`), then waits for it to go.
fn stop_md(host: &Host, md: &str, tuning: &NvmeTuning) -> std::result::Result<(), String> {
    let state = host.sys(format!("block/{md}/md/array_state"));
    host.kern()
        .write_attr(&state, "clear", tuning.delete_timeout)
        .map_err(|e| format!("cannot stop /dev/{md}: {e}"))?;
    let clock = host.time();
    let end = clock.now() + tuning.removal_deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(500));
    while host.sys(format!("block/{md}/md")).exists() && clock.now() < end {
        clock.sleep(pause.take());
    }
    Ok(())
}

/// Grows array `md` to its members' size (`mdadm --grow --size max`) and returns its size in
/// bytes, once sysfs shows it.
pub(crate) fn grow(host: &Host, md: &str, tuning: &NvmeTuning) -> Result<u64> {
    let size_path = host.sys(format!("block/{md}/size"));
    let read = || -> Result<Option<u64>> {
        Ok(host
            .read_attr_opt(&size_path)?
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| s * 512))
    };
    let before = read()?;
    mdadm_ok(
        host,
        &["--grow", &format!("/dev/{md}"), "--size", "max"],
        tuning.connect_timeout,
    )?;
    let clock = host.time();
    let end = clock.now() + tuning.resize_deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(250));
    loop {
        let now = read()?;
        if now != before || clock.now() >= end {
            return now.ok_or_else(|| Error::io(&size_path, std::io::ErrorKind::NotFound.into()));
        }
        clock.sleep(pause.take());
    }
}

/// Attaches a volume in the replicated format: every replica, then its md RAID1. Returns the
/// device_info (`/dev/mdN`) and the array.
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
            detail: "no replica's namespace shows any more".into(),
        })?,
        controllers,
        failed_portals: Vec::new(),
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
    let mut failures = Vec::new();
    for i in 0..props.targets.len() {
        match super::connect::connect_one(host, &replica(props, i), tuning) {
            Ok(c) => devs.push(c.namespace.name),
            Err(e) => {
                warn!(replica = i, "replica not attached: {e}");
                failures.push(format!("replica {i}: {e}"));
            }
        }
    }
    let fail = |detail: String| Error::NvmeConnect {
        volume: props.label(),
        detail,
    };
    if devs.is_empty() {
        return Err(fail(failures.join("; ")));
    }
    let t = tuning.connect_timeout;
    let result = (|| -> Result<String> {
        if let Some(md) = md_holding(host, &devs)? {
            if md_running(host, &md)? {
                info!(md = %md, "the replicas' array is running");
                return Ok(md);
            }
            // An incremental assembly waiting for members that will not come: stopped, then
            // assembled with what is there.
            stop_md(host, &md, tuning).map_err(fail)?;
        }
        let mut members = Vec::new();
        for d in &devs {
            if is_member(host, d, t)? {
                members.push(d.clone());
            }
        }
        let paths: Vec<String> = devs.iter().map(|d| format!("/dev/{d}")).collect();
        let md_path = format!("/dev/md/{alias}");
        let raid_devices = format!("--raid-devices={}", devs.len());
        let mut args: Vec<&str>;
        if members.is_empty() && props.targets.len() == 1 {
            // One replica that was never in an array: the namespace itself, as os-brick does.
            return Ok(devs[0].clone());
        }
        if !members.is_empty() {
            args = vec!["--assemble", "--run", &md_path];
        } else if props.targets.len() > devs.len() {
            return Err(fail(format!(
                "cannot create the RAID1 {alias}: only {} of its {} replicas attached ({})",
                devs.len(),
                props.targets.len(),
                failures.join("; ")
            )));
        } else {
            args = vec![
                "--create",
                &md_path,
                "--run",
                "--name",
                alias,
                "--level=1",
                "--bitmap=internal",
                "--homehost=any",
                "--failfast",
                "--assume-clean",
                "--metadata=1.2",
            ];
            args.push(&raid_devices);
        }
        args.extend(paths.iter().map(String::as_str));
        if let Err(e) = mdadm_ok(host, &args, t) {
            // udev's incremental assembly (mdadm's own rules) may have taken the members
            // meanwhile: use its array once it runs, or stop it and assemble once more.
            host.time().sleep(Duration::from_secs(1));
            match md_holding(host, &devs)? {
                Some(md) if md_running(host, &md)? => return Ok(md),
                Some(md) => {
                    stop_md(host, &md, tuning).map_err(fail)?;
                    mdadm_ok(host, &args, t)?;
                }
                None => return Err(e),
            }
        }
        let clock = host.time();
        let end = clock.now() + tuning.namespace_deadline;
        let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(500));
        loop {
            if let Some(md) = md_holding(host, &devs)? {
                if md_running(host, &md)? {
                    return Ok(md);
                }
            }
            if clock.now() >= end {
                return Err(fail(format!("the RAID1 {alias} did not show in sysfs")));
            }
            clock.sleep(pause.take());
        }
    })();
    match result {
        Ok(md) => Ok(DeviceInfo {
            kind: "block".into(),
            path: Some(format!("/dev/{md}")),
            ..Default::default()
        }),
        Err(e) => {
            // Undo: the array if one shows, then every replica.
            if let Ok(Some(md)) = md_holding(host, &devs) {
                let _ = stop_md(host, &md, tuning);
            }
            for i in 0..props.targets.len() {
                let _ = super::disconnect::disconnect_one(
                    host,
                    &replica(props, i),
                    None,
                    DisconnectOptions::default(),
                    tuning,
                );
            }
            Err(e)
        }
    }
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
    if let Some(md) = md_holding(host, &devs)? {
        let thing = Thing::Device { dev: md.clone() };
        plan.flush.push(thing.clone());
        plan.remove.push(thing);
        let open = crate::openers::openers(host, &md, None);
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
    if let Some(md) = md_holding(host, &devs)? {
        let thing = Thing::Device { dev: md.clone() };
        let flushed = host
            .kern()
            .flush_and_sync(&host.dev_node(&md), tuning.flush_timeout);
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
        match stop_md(host, &md, tuning) {
            Ok(()) if !host.sys(format!("block/{md}/md")).exists() => report.removed.push(thing),
            Ok(()) => report.leave(thing),
            Err(why) => {
                report.fail(Some(thing.clone()), why);
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
                report.leave(Thing::Device { dev: md.clone() });
            }
        }
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
    if report.clean() {
        report.outcome = Outcome::Gone;
        return Ok(report);
    }
    report.outcome = Outcome::Unfinished;
    if opts.force && opts.ignore_errors {
        return Ok(report);
    }
    Err(Error::Disconnect {
        message: format!(
            "{}: {}",
            props.label(),
            report
                .failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        report: Box::new(report),
    })
}
