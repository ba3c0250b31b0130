//! Finding a volume's devices on this host from sysfs alone: its disks
//! on every session to its portals (also those that never joined the map), checked against the
//! volume's WWN, and the multipath maps that hold them.

use std::collections::BTreeSet;

use tracing::warn;

use crate::error::{Error, Result};
use crate::host::Host;
use crate::iscsi::session::Session;
use crate::iscsi::topology;
use crate::multipath::{self, DmMap};
use crate::props::{ConnectionProperties, DeviceInfo};
use crate::scsi::{self, ScsiDisk};
use crate::types::Wwid;
use crate::Tuning;

/// The volume's devices on this host.
#[derive(Debug, Clone, Default)]
pub struct VolumeDevices {
    /// The volume's WWN: `device_info.scsi_wwn` when given, else the one WWN its disks agree on.
    pub wwn: Option<Wwid>,
    /// The sessions to the volume's portals and targets.
    pub sessions: Vec<Session>,
    /// The volume's disks, each with the volume's WWN.
    pub disks: Vec<ScsiDisk>,
    /// The volume's multipath maps (normally none or one).
    pub maps: Vec<DmMap>,
    /// Devices at the volume's LUN (or named by device_info) that are not the volume's.
    pub left_alone: Vec<String>,
    /// The volume's disks held by a device-mapper device that is not its multipath map.
    pub foreign_holders: Vec<String>,
}

/// Finds the volume described by `props` (and `device_info`, when given) on this host. Changes
/// nothing. Fails before anything is touched when the volume's disks disagree on their WWN and
/// no device_info says which is right.
pub fn find_volume(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<VolumeDevices> {
    let mut left_alone: Vec<String> = Vec::new();
    let mut foreign_holders: Vec<String> = Vec::new();
    let claimed = match device_info {
        Some(d) => d.wwn()?,
        None => None,
    };
    let all_sessions = topology::list_sessions(host)?;
    let sessions: Vec<Session> = all_sessions
        .into_iter()
        .filter(|s| {
            props
                .targets
                .iter()
                .any(|t| t.iqn == s.iqn && t.portal == s.portal)
        })
        .collect();

    // The volume's LUN on each of its sessions.
    let mut candidates: Vec<ScsiDisk> = Vec::new();
    for s in &sessions {
        let luns = props.luns_at(&s.iqn, &s.portal);
        // Only the disks at the volume's LUN are read: a session to a shared target holds
        // every other volume's disks too.
        for (address, name) in topology::session_addresses(host, s.id)? {
            let Some(name) = name.filter(|_| luns.contains(&address.lun)) else {
                continue;
            };
            if !candidates.iter().any(|c| c.name == name) {
                candidates.push(ScsiDisk::read(host, &name, address)?);
            }
        }
    }

    // The volume is what the kernel shows at its LUN on its sessions. device_info only breaks a
    // tie between disagreeing disks; a device_info that names another volume (a stale one) is
    // ignored, never followed.
    let seen: BTreeSet<&Wwid> = candidates.iter().filter_map(|d| d.wwid.as_ref()).collect();
    let wwn = match (seen.len(), claimed) {
        (0, _) => None,
        (1, claimed) => {
            let own = seen.into_iter().next().cloned();
            if let Some(c) = claimed.filter(|c| Some(c) != own.as_ref()) {
                warn!(
                    device_info_wwn = %c,
                    "device_info names another WWN than the volume's disks show; it is ignored"
                );
                left_alone.push(format!(
                    "device_info (scsi_wwn {c}): not this volume's WWN, ignored"
                ));
            }
            own
        }
        (_, Some(c)) if seen.contains(&c) => Some(c),
        _ => {
            let list: Vec<String> = candidates
                .iter()
                .map(|d| format!("{}={}", d.name, d.wwid.as_ref().map_or("?", |w| w.as_str())))
                .collect();
            return Err(Error::invalid(
                "device_info",
                format!(
                    "the volume's LUN shows devices with different WWNs ({}); give the device_info \
                     that connect returned (its scsi_wwn says which is the volume's)",
                    list.join(", ")
                ),
            ));
        }
    };

    let mut disks = Vec::new();
    for d in candidates {
        match (&d.wwid, &wwn) {
            (Some(w), Some(v)) if w == v => disks.push(d),
            (Some(w), Some(v)) => left_alone.push(format!(
                "/dev/{} ({}): its WWN {w} is not the volume's {v}",
                d.name, d.address
            )),
            _ => left_alone.push(format!(
                "/dev/{} ({}): the kernel shows no WWID, so it cannot be proven to be the volume's",
                d.name, d.address
            )),
        }
    }
    for line in &left_alone {
        warn!(device = %line, "not the volume's device, left alone");
    }

    // A device_info path that is not one of the volume's devices is a stale hint: never acted on.
    if let Some(name) = device_info
        .map(DeviceInfo::device_name)
        .transpose()?
        .flatten()
    {
        let known = disks.iter().any(|d| d.name == name);
        if !known {
            let belongs = match (name.starts_with("dm-"), &wwn) {
                (true, Some(w)) => DmMap::read(host, &name)?.is_some_and(|m| m.is_multipath_of(w)),
                _ => false,
            };
            if !belongs && scsi::exists(host, &name) {
                let line =
                    format!("/dev/{name} (named by device_info): not a device of this volume");
                warn!(device = %name, "device_info names a device that is not the volume's; left alone");
                left_alone.push(line);
            }
        }
    }

    // The maps that hold the volume's disks, and any other map of its WWN (a rerun, a map whose
    // paths are gone).
    let mut maps: Vec<DmMap> = Vec::new();
    for d in &disks {
        for h in &d.holders {
            let Some(m) = DmMap::read(host, h)? else {
                continue;
            };
            let ours = wwn.as_ref().is_some_and(|w| m.is_multipath_of(w));
            if !ours {
                let msg = format!(
                    "/dev/{} is held by {} ({}, uuid {:?}), which is not the volume's multipath map",
                    d.name, m.dev, m.name, m.uuid
                );
                foreign_holders.push(msg);
                continue;
            }
            if !maps.iter().any(|x| x.dev == m.dev) {
                maps.push(m);
            }
        }
    }
    if let Some(w) = &wwn {
        for m in multipath::maps_of(host, w)? {
            if !maps.iter().any(|x| x.dev == m.dev) {
                maps.push(m);
            }
        }
    }
    Ok(VolumeDevices {
        wwn,
        sessions,
        disks,
        maps,
        left_alone,
        foreign_holders,
    })
}

/// The block devices of the volume: its disks (`/dev/sdX`) and, when it has one, its multipath
/// map (`/dev/dm-N`) first.
pub fn volume_paths(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<Vec<String>> {
    let v = find_volume(host, props, device_info)?;
    Ok(v.maps
        .iter()
        .map(|m| format!("/dev/{}", m.dev))
        .chain(v.disks.iter().map(|d| format!("/dev/{}", d.name)))
        .collect())
}

/// Makes the host see the volume's new size after it grew on the target: rescans each of its
/// disks (`device/rescan`), resizes its multipath map (`multipathd resize map NAME`), and returns
/// the new size in bytes (of the map when there is one, else of the largest disk).
pub fn extend_volume(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
    tuning: &Tuning,
) -> Result<u64> {
    let span = tracing::info_span!("extend", volume = %props.label());
    let _enter = span.enter();
    let v = find_volume(host, props, device_info)?;
    if v.disks.is_empty() {
        return Err(Error::invalid(
            "connection properties",
            format!(
                "{} has no device on this host (is it connected?)",
                props.label()
            ),
        ));
    }
    for d in &v.disks {
        let attr = host.sys(format!("block/{}/device/rescan", d.name));
        host.kern()
            .write_attr(&attr, "1", tuning.scan_timeout)
            .map_err(|e| Error::io(&attr, std::io::Error::other(e.to_string())))?;
    }
    let size_of = |dev: &str| -> Result<u64> {
        let p = host.sys(format!("block/{dev}/size"));
        let sectors = host.read_attr(&p)?;
        sectors
            .parse::<u64>()
            .map(|s| s * 512)
            .map_err(|_| Error::io(&p, std::io::Error::other("not a number")))
    };
    let mut disk_size = 0;
    for d in &v.disks {
        disk_size = disk_size.max(size_of(&d.name)?);
    }
    let Some(map) = v.maps.first() else {
        tracing::info!(bytes = disk_size, "volume extended");
        return Ok(disk_size);
    };
    let cmd = format!("resize map {}", map.name);
    let reply = host
        .multipathd_cmd(&cmd, tuning.command_timeout)
        .map_err(|e| Error::CommandFailed {
            cmd: format!("multipathd {cmd}"),
            code: None,
            detail: e,
        })?;
    if reply.trim() != "ok" {
        return Err(Error::CommandFailed {
            cmd: format!("multipathd {cmd}"),
            code: None,
            detail: reply,
        });
    }
    let size = size_of(&map.dev)?;
    tracing::info!(bytes = size, map = %map.dev, "volume extended");
    Ok(size)
}
