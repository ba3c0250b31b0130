//! Finding a volume's devices on this host from sysfs alone: its disks
//! on every session to its portals (also those that never joined the map), checked against the
//! volume's WWN, and the multipath maps that hold them.

use std::collections::BTreeSet;

use tracing::{info, warn};

use crate::block::multipath::{self, DmMap};
use crate::block::scsi::{self, ScsiDisk};
use crate::device_info::DeviceInfo;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::iscsi::props::ConnectionProperties;
use crate::iscsi::session::Session;
use crate::iscsi::topology;
use crate::iscsi::tuning::Tuning;
use crate::report::{Thing, Untouched};
use crate::types::SessionId;
use crate::types::Wwid;

/// The volume's devices on this host.
#[derive(Debug, Clone, Default)]
pub struct VolumeDevices {
    /// The volume's WWN: `device_info.scsi_wwn` when given (checked against what the volume's
    /// LUN shows), else the one WWN the disks at its LUN agree on.
    pub wwn: Option<Wwid>,
    /// The sessions to the volume's portals and targets, then the sessions that hold a disk of
    /// the volume's WWN elsewhere (a portal the properties do not list).
    pub sessions: Vec<Session>,
    /// The volume's disks, each with the volume's WWN: at its LUN on its sessions, and any other
    /// disk of the host with that WWN.
    pub disks: Vec<ScsiDisk>,
    /// The volume's multipath maps (normally none or one).
    pub maps: Vec<DmMap>,
    /// Disks at the volume's LUN whose WWID the kernel does not show: they may be the volume's,
    /// and cannot be proven to be. Never touched; a disconnect that leaves them fails.
    pub unproven: Vec<ScsiDisk>,
    /// Devices at the volume's LUN (or named by device_info) that are not the volume's.
    pub left_alone: Vec<Untouched>,
    /// The volume's disks held by a device-mapper device that is not its multipath map.
    pub foreign_holders: Vec<Untouched>,
}

/// Finds the volume described by `props` (and `device_info`, when given) on this host. Changes
/// nothing.
///
/// The volume is what its LUN shows on the sessions to its targets and portals (IQNs compare
/// case-insensitively), and its identity is its WWN: the one device_info gives, or else the one
/// the disks at the LUN agree on. Once the WWN is proven by the LUN, every disk and map of the
/// host with that WWN is the volume's. Fails before anything is touched when:
/// - device_info gives a WWN and the LUN shows another one only (the array gave the LUN number
///   to another volume): [`Error::NotTheVolume`], naming both;
/// - device_info gives a WWN the LUN does not show, and that WWN is on other devices of the host
///   (stale or mixed-up properties: they are not proven to be this volume's):
///   [`Error::NotTheVolume`];
/// - the disks at the LUN disagree on their WWN and no device_info says which is right.
pub fn find_volume(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<VolumeDevices> {
    let claimed = match device_info {
        Some(d) => d.wwn()?,
        None => None,
    };
    // The sessions of the volume's targets and portals only: a host may hold hundreds.
    let targets: Vec<_> = props.targets.iter().map(|t| (&t.iqn, &t.portal)).collect();
    let sessions = topology::sessions_of(host, &targets)?;
    let candidates = disks_at_lun(host, props, &sessions)?;
    let wwn = volume_wwn(host, props, &candidates, claimed)?;

    let mut v = VolumeDevices {
        wwn: wwn.clone(),
        sessions,
        ..Default::default()
    };
    for d in candidates {
        match (&d.wwid, &wwn) {
            (Some(w), Some(own)) if w == own => v.disks.push(d),
            (Some(w), Some(own)) => v.left_alone.push(Untouched {
                thing: Thing::disk(&d.name, Some(d.address)),
                why: format!("its WWN {w} is not the volume's {own}"),
            }),
            // No WWID shown (a disk with one always gives the volume its WWN).
            _ => v.unproven.push(d),
        }
    }
    for line in &v.left_alone {
        warn!(device = %line, "not the volume's device, left alone");
    }
    if let Some(own) = wwn.as_ref().filter(|_| !v.disks.is_empty()) {
        add_disks_elsewhere(host, own, &mut v)?;
    }
    note_stale_device_info(host, device_info, &mut v)?;
    find_maps(host, &mut v)?;
    Ok(v)
}

/// The disks at the volume's LUN on each of its sessions. Only the disks at the volume's LUN
/// are read: a session to a shared target holds every other volume's disks too.
fn disks_at_lun(
    host: &Host,
    props: &ConnectionProperties,
    sessions: &[Session],
) -> Result<Vec<ScsiDisk>> {
    let mut candidates: Vec<ScsiDisk> = Vec::new();
    for s in sessions {
        let luns = props.luns_at(&s.iqn, &s.portal);
        for (address, name) in topology::session_addresses(host, s.id)? {
            let Some(name) = name.filter(|_| luns.contains(&address.lun)) else {
                continue;
            };
            if !candidates.iter().any(|c| c.name == name) {
                candidates.push(ScsiDisk::read(host, &name, address)?);
            }
        }
    }
    Ok(candidates)
}

/// The volume's WWN, from device_info's claim and what the disks at its LUN show.
fn volume_wwn(
    host: &Host,
    props: &ConnectionProperties,
    candidates: &[ScsiDisk],
    claimed: Option<Wwid>,
) -> Result<Option<Wwid>> {
    let seen: BTreeSet<&Wwid> = candidates.iter().filter_map(|d| d.wwid.as_ref()).collect();
    let shown = || {
        candidates
            .iter()
            .map(|d| {
                format!(
                    "/dev/{} ({}) {}",
                    d.name,
                    d.address,
                    d.wwid.as_ref().map_or("no WWN", |w| w.as_str())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match claimed {
        // The WWN that connect returned is the volume's identity: a LUN that shows only other
        // WWNs now holds another volume, and nothing there is the volume's, under force too.
        Some(c) if !seen.is_empty() && !seen.contains(&c) => Err(Error::NotTheVolume {
            volume: props.label(),
            detail: format!(
                "device_info gives its WWN as {c}, but its LUN shows {}: the LUN number now \
                 belongs to another volume. Nothing was touched; the volume itself is not at \
                 this LUN any more (check the connection properties)",
                shown()
            ),
        }),
        Some(c) if seen.is_empty() => {
            // Nothing at the LUN proves that device_info's WWN is this volume's: disks of that
            // WWN elsewhere, and maps built on them, may be another volume's (a stale or
            // mixed-up device_info). A map of that WWN with no path left and no disk of it
            // anywhere is what an earlier disconnect of this volume left (a map held open when
            // its paths went): the volume's, to clean. Its `slaves/` may still name the deleted
            // paths until multipathd reloads it (a rerun right after a forced disconnect): those
            // links lead nowhere and are no paths (see `DmMap::slaves`). A map with a path the
            // kernel still has is refused, as is any disk of that WWN.
            let disks = topology::disks_with_wwid(host, &c)?;
            let maps = multipath::maps_of(host, &c)?;
            if disks.is_empty() && maps.iter().all(|m| m.slaves.is_empty()) {
                return Ok(Some(c));
            }
            let elsewhere = device_paths(&maps, &disks);
            Err(Error::NotTheVolume {
                volume: props.label(),
                detail: format!(
                    "device_info gives its WWN as {c}, which is on {} but not at the volume's \
                     LUN on its targets and portals. Nothing was touched: check target_iqn, \
                     target_portal and target_lun, or give the device_info this volume's \
                     connect returned",
                    elsewhere.join(", ")
                ),
            })
        }
        Some(c) => Ok(Some(c)),
        None if seen.len() <= 1 => Ok(seen.into_iter().next().cloned()),
        None => Err(Error::invalid(
            "device_info",
            format!(
                "the volume's LUN shows devices with different WWNs ({}); give the device_info \
                 that connect returned (its scsi_wwn says which is the volume's)",
                shown()
            ),
        )),
    }
}

/// `/dev/NAME` of each map, then of each disk.
fn device_paths(maps: &[DmMap], disks: &[(Option<SessionId>, ScsiDisk)]) -> Vec<String> {
    maps.iter()
        .map(|m| format!("/dev/{}", m.dev))
        .chain(disks.iter().map(|(_, d)| format!("/dev/{}", d.name)))
        .collect()
}

/// The disks of the volume's WWN that are not at its LUN on its sessions (a portal the
/// properties do not list), and their sessions.
fn add_disks_elsewhere(host: &Host, wwn: &Wwid, v: &mut VolumeDevices) -> Result<()> {
    let mut extra_sessions = Vec::new();
    for (sid, d) in topology::disks_with_wwid(host, wwn)? {
        if v.disks.iter().any(|x| x.name == d.name) {
            continue;
        }
        info!(device = %d.name, address = %d.address, session = ?sid, "a disk of the volume on a session its properties do not list");
        if let Some(sid) = sid.filter(|id| !v.sessions.iter().any(|s| s.id == *id)) {
            if !extra_sessions.contains(&sid) {
                extra_sessions.push(sid);
            }
        }
        v.disks.push(d);
    }
    // Only those sessions are read (the disk's path names its session).
    for sid in extra_sessions {
        if let Some(s) = topology::session_by_id(host, sid)? {
            v.sessions.push(s);
        }
    }
    Ok(())
}

/// A device_info path that is not one of the volume's devices is a stale hint: never acted on.
fn note_stale_device_info(
    host: &Host,
    device_info: Option<&DeviceInfo>,
    v: &mut VolumeDevices,
) -> Result<()> {
    let Some(name) = device_info
        .map(DeviceInfo::device_name)
        .transpose()?
        .flatten()
    else {
        return Ok(());
    };
    if v.disks.iter().any(|d| d.name == name) {
        return Ok(());
    }
    let belongs = match (name.starts_with("dm-"), &v.wwn) {
        (true, Some(w)) => DmMap::read(host, &name)?.is_some_and(|m| m.is_multipath_of(w)),
        _ => false,
    };
    if !belongs && scsi::exists(host, &name) {
        warn!(device = %name, "device_info names a device that is not the volume's; left alone");
        v.left_alone.push(Untouched {
            thing: Thing::Device { dev: name },
            why: "named by device_info, but not a device of this volume".into(),
        });
    }
    Ok(())
}

/// The maps that hold the volume's disks, and any other map of its WWN (a rerun, a map whose
/// paths are gone).
fn find_maps(host: &Host, v: &mut VolumeDevices) -> Result<()> {
    for d in &v.disks {
        for h in &d.holders {
            let Some(m) = DmMap::read(host, h)? else {
                continue;
            };
            if !v.wwn.as_ref().is_some_and(|w| m.is_multipath_of(w)) {
                v.foreign_holders.push(Untouched {
                    thing: Thing::disk(&d.name, Some(d.address)),
                    why: format!(
                        "held by {} ({}, uuid {:?}), which is not the volume's multipath map",
                        m.dev, m.name, m.uuid
                    ),
                });
                continue;
            }
            if !v.maps.iter().any(|x| x.dev == m.dev) {
                v.maps.push(m);
            }
        }
    }
    // A map of the WWN found through the disks' holders is the only one: device-mapper keeps
    // each uuid unique (`mpath-WWID`). Without one, every map's uuid is read (a rerun, a map
    // whose paths are gone).
    if let Some(w) = v.wwn.as_ref().filter(|_| v.maps.is_empty()) {
        for m in multipath::maps_of(host, w)? {
            if !v.maps.iter().any(|x| x.dev == m.dev) {
                v.maps.push(m);
            }
        }
    }
    Ok(())
}

/// The block devices of the volume: its disks (`/dev/sdX`) and, when it has one, its multipath
/// map (`/dev/dm-N`) first. Reads sysfs only.
///
/// # Errors
/// As the disconnect before it changes anything: [`Error::NotTheVolume`] when device_info's WWN
/// is not what the volume's LUN shows, [`Error::InvalidInput`] when the LUN's disks disagree and
/// no device_info says which is right, [`Error::Io`] when sysfs cannot be read.
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
///
/// # Errors
/// As [`volume_paths`]; [`Error::InvalidInput`] when the volume has no device on this host;
/// [`Error::Io`] when a rescan fails; [`Error::CommandFailed`] when multipathd does not resize the
/// map.
pub fn extend_volume(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
    tuning: &Tuning,
) -> Result<crate::types::Bytes> {
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
    let size_of = |dev: &str| -> Result<crate::types::Bytes> {
        let p = host.sys(format!("block/{dev}/size"));
        let sectors = host.read_attr(&p)?;
        sectors
            .parse::<u64>()
            .map(crate::types::Bytes::from_sectors)
            .map_err(|_| Error::io(&p, std::io::Error::other("not a number")))
    };
    let mut disk_size = crate::types::Bytes(0);
    for d in &v.disks {
        disk_size = disk_size.max(size_of(&d.name)?);
    }
    let Some(map) = v.maps.first() else {
        tracing::info!(size = %disk_size, "volume extended");
        return Ok(disk_size);
    };
    let cmd = format!("resize map {}", map.name);
    let reply = host.multipathd_cmd(&cmd, tuning.command_timeout)?;
    if reply.trim() != "ok" {
        return Err(Error::CommandFailed {
            cmd: format!("multipathd {cmd}"),
            code: None,
            detail: reply,
        });
    }
    let size = size_of(&map.dev)?;
    tracing::info!(size = %size, map = %map.dev, "volume extended");
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    const T: &str = "iqn.2003-01.org.linux-iscsi.lab:vol";
    const OTHER: &str = "iqn.2003-01.org.linux-iscsi.lab:other";
    const W: &str = "naa.6001405deadbeef00010000000000000";

    fn props() -> ConnectionProperties {
        ConnectionProperties::from_value(&serde_json::json!({
            "target_iqns": [T, T],
            "target_portals": ["127.0.0.1:3260", "127.0.0.2:3260"],
            "target_luns": [1, 1],
        }))
        .unwrap()
    }

    /// A host with the volume (two paths, its map) beside another target's sessions, disks and
    /// maps.
    fn host_with_others() -> FakeHost {
        let f = FakeHost::new();
        f.session(1, "127.0.0.1:3260", T)
            .session(2, "127.0.0.2:3260", T)
            .disk(1, 1, "sda", W)
            .disk(2, 1, "sdb", W)
            .map("dm-0", &["sda", "sdb"])
            .session(3, "127.0.0.1:3260", OTHER)
            .session(4, "127.0.0.2:3260", OTHER)
            .disk(3, 1, "sdc", "naa.6001405deadbeef00020000000000000")
            .disk(4, 1, "sdd", "naa.6001405deadbeef00020000000000000")
            .map("dm-1", &["sdc", "sdd"]);
        f
    }

    #[test]
    fn a_volume_is_found_without_reading_other_sessions_or_maps() {
        let f = host_with_others();
        // another target's session and another volume's map: reading them fails
        f.unreadable("sys/class/iscsi_session/session3/tpgt")
            .unreadable("sys/block/dm-1/dm/uuid");
        let host = f.host();
        let v = find_volume(&host, &props(), None).unwrap();
        assert!(v.wwn.is_some());
        assert_eq!(v.wwn, v.disks[0].wwid);
        assert_eq!(
            v.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![SessionId(1), SessionId(2)]
        );
        let disks: Vec<&str> = v.disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(disks, vec!["sda", "sdb"]);
        assert_eq!(
            v.maps.iter().map(|m| m.dev.as_str()).collect::<Vec<_>>(),
            vec!["dm-0"]
        );
    }

    #[test]
    fn a_disk_of_the_volume_elsewhere_is_found_with_its_session() {
        let f = host_with_others();
        // the volume's WWN at LUN 7 of a session the properties do not list, in no map
        f.session(5, "127.0.0.3:3260", OTHER).disk(5, 7, "sde", W);
        let host = f.host();
        let v = find_volume(&host, &props(), None).unwrap();
        let disks: Vec<&str> = v.disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(disks, vec!["sda", "sdb", "sde"]);
        assert_eq!(
            v.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![SessionId(1), SessionId(2), SessionId(5)]
        );
        assert_eq!(
            v.maps.iter().map(|m| m.dev.as_str()).collect::<Vec<_>>(),
            vec!["dm-0"]
        );
    }

    #[test]
    fn a_pathless_map_of_the_volume_is_found_by_its_uuid() {
        let f = host_with_others();
        // the volume's paths are gone; its map stays with none (a rerun)
        let host = f.host();
        let v0 = find_volume(&host, &props(), None).unwrap();
        let wwn = v0.wwn.clone().unwrap();
        let f = FakeHost::new();
        f.session(1, "127.0.0.1:3260", T)
            .session(2, "127.0.0.2:3260", T)
            .dm("dm-4", wwn.as_str(), &wwn.mpath_uuid(), &[]);
        let host = f.host();
        let di: DeviceInfo =
            serde_json::from_value(serde_json::json!({"scsi_wwn": wwn.as_str(), "type": "block"}))
                .unwrap();
        let v = find_volume(&host, &props(), Some(&di)).unwrap();
        assert!(v.disks.is_empty());
        assert_eq!(
            v.maps.iter().map(|m| m.dev.as_str()).collect::<Vec<_>>(),
            vec!["dm-4"]
        );
    }
}
