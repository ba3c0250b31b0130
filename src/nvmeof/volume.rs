//! Extend, paths and inspect for NVMe-oF volumes: read from sysfs; extend also rescans.

use std::time::Duration;

use super::props::NvmeProperties;
use super::sysfs::{self, Namespace, Subsystem};
use super::NvmeTuning;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::time::Pause;
use crate::types::Bytes;

/// The volume's namespace devices on this host (`/dev/nvme0n1`: the head, or each single-path
/// namespace), from sysfs.
///
/// # Errors
/// A sysfs file that cannot be read.
pub fn volume_paths(host: &Host, props: &NvmeProperties) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if props.alias.is_some() {
        // A replicated volume is its md array, when one holds the replicas.
        let heads: Vec<String> = heads_of(host, props)?;
        if let Some(md) = super::raid::holder_of(host, &props.label(), &heads)? {
            return Ok(vec![format!("/dev/{md}")]);
        }
    }
    for t in &props.targets {
        if let Some(sub) = sysfs::subsystem(host, &t.nqn)? {
            for d in sysfs::volume_devices(&sub, t) {
                if !d.contradicts(t) {
                    out.push(format!("/dev/{}", d.name));
                }
            }
        }
    }
    Ok(out)
}

/// Makes the host see the volume's new size: rescans every live controller of its subsystem,
/// then waits (up to `tuning.resize_deadline`) for the namespace's size to change. Returns the
/// size in bytes.
///
/// # Errors
/// [`Error::NvmeConnect`] when the volume is not on this host.
pub fn extend_volume(host: &Host, props: &NvmeProperties, tuning: &NvmeTuning) -> Result<Bytes> {
    if props.alias.is_some() {
        let heads = heads_of(host, props)?;
        if let Some(md) = super::raid::holder_of(host, &props.label(), &heads)? {
            // Every replica first, then the array (os-brick: mdadm --grow --size max).
            for i in 0..props.targets.len() {
                let one = NvmeProperties {
                    targets: vec![props.targets[i].clone()],
                    volume_id: None,
                    alias: None,
                    replicated: false,
                };
                extend_volume(host, &one, tuning)?;
            }
            return crate::block::md::grow(
                host,
                &md,
                tuning.connect_timeout,
                tuning.resize_deadline,
            );
        }
    }
    let t = &props.targets[0];
    let not_here = || Error::NvmeConnect {
        volume: props.label(),
        reason: crate::error::NvmeNotConnected::NotOnHost(
            "the volume's namespace is not on this host".into(),
        ),
    };
    let sub = sysfs::subsystem(host, &t.nqn)?.ok_or_else(not_here)?;
    let dev = sysfs::volume_devices(&sub, t)
        .into_iter()
        .find(|d| !d.contradicts(t))
        .ok_or_else(not_here)?;
    let before = dev.size_bytes;
    for c in sub.controllers.iter().filter(|c| c.is_live()) {
        let path = host.sys(format!("class/nvme/{}/rescan_controller", c.name));
        host.kern()
            .write_attr(&path, "1", tuning.delete_timeout)
            .map_err(|e| Error::io(&path, std::io::Error::other(e.to_string())))?;
    }
    let size_path = host.sys(format!("block/{}/size", dev.name));
    let clock = host.time();
    let end = clock.now() + tuning.resize_deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(250));
    loop {
        let now = host
            .read_attr_opt(&size_path)?
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Bytes::from_sectors);
        if now != before || clock.now() >= end {
            return now.ok_or_else(not_here);
        }
        clock.sleep(pause.take());
    }
}

/// Every NVMe subsystem of this host with its controllers (transport, address, state), their
/// paths' ANA states, and its namespaces, as `brick inspect` shows them. Reads sysfs only.
///
/// # Errors
/// A sysfs file that cannot be read.
pub fn inspect(host: &Host) -> Result<Vec<Subsystem>> {
    sysfs::subsystems(host)
}

/// The paths (per-controller devices) of head `h` in `sub`, with the controller of each.
pub fn paths_of<'a>(sub: &'a Subsystem, h: &Namespace) -> Vec<(&'a str, &'a Namespace)> {
    let mut out = Vec::new();
    for c in &sub.controllers {
        for n in &c.namespaces {
            if sysfs::is_path_name(&n.name) && n.nsid == h.nsid {
                out.push((c.name.as_str(), n));
            }
        }
    }
    out
}

/// The namespace devices of every target of `props` that show no other identity.
fn heads_of(host: &Host, props: &NvmeProperties) -> Result<Vec<String>> {
    let mut heads = Vec::new();
    for t in &props.targets {
        if let Some(sub) = sysfs::subsystem(host, &t.nqn)? {
            heads.extend(
                sysfs::volume_devices(&sub, t)
                    .into_iter()
                    .filter(|d| !d.contradicts(t))
                    .map(|d| d.name),
            );
        }
    }
    Ok(heads)
}
