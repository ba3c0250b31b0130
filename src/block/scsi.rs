//! SCSI disk devices through sysfs: what a device is (address, WWID, state, holders), flushing
//! it, deleting it and waiting for the kernel to drop it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::{Host, KernelError};
use crate::retry::{Backoff, Pause, Retried};
use crate::types::{Bytes, DiskState, ScsiAddress, Wwid};

use super::flush::{flush_devices, Depth};
use super::multipath::partition_maps;

/// Why brick did not act on a SCSI disk, naming it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The kernel refused a write to one of the disk's sysfs attributes (or it did not return
    /// in time).
    #[error("cannot {action} {name} through {}: {source}", attr.display())]
    Write {
        /// The disk, `sdX`.
        name: String,
        /// What brick tried: `delete`, `set offline`.
        action: &'static str,
        /// The attribute written.
        attr: PathBuf,
        /// What the kernel said.
        #[source]
        source: KernelError,
    },
    /// The disk could not be read again right before the action.
    #[error("cannot check /dev/{name} again: {source}")]
    Recheck {
        /// The disk, `sdX`.
        name: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Another device took the name since brick read it: left alone.
    #[error(
        "/dev/{name} is now {now} with wwn {} (expected {was} with wwn {}): another device took \
         the name, left alone",
        now_wwid.as_ref().map_or("none", |w| w.as_str()),
        was_wwid.as_ref().map_or("none", |w| w.as_str())
    )]
    Replaced {
        /// The disk's name, `sdX`.
        name: String,
        /// The address the name has now.
        now: ScsiAddress,
        /// The WWN the name has now.
        now_wwid: Option<Wwid>,
        /// The address brick read.
        was: ScsiAddress,
        /// The WWN brick expected.
        was_wwid: Option<Wwid>,
    },
}

/// A SCSI disk as sysfs shows it under `/sys/block/sdX`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScsiDisk {
    /// The kernel name, `sdX`.
    pub name: String,
    /// H:C:T:L, from the folder its sysfs entry lives in.
    pub address: ScsiAddress,
    /// From `device/wwid`; `None` when the kernel shows none.
    pub wwid: Option<Wwid>,
    /// `device/state`: `running`, `offline`, `transport-offline`, `blocked`, ...
    pub state: Option<DiskState>,
    /// The device-mapper devices that hold it (`dm-N`), from `holders/`.
    pub holders: Vec<String>,
    /// Size in bytes, from `size` (512-byte sectors).
    pub size_bytes: Option<Bytes>,
}

impl ScsiDisk {
    /// Reads the disk `name` (`sdX`) whose SCSI address is `address`.
    pub fn read(host: &Host, name: &str, address: ScsiAddress) -> Result<ScsiDisk> {
        let size_bytes = host
            .read_attr_opt(&host.sys(format!("block/{name}/size")))?
            .and_then(|s| s.parse::<u64>().ok())
            .map(Bytes::from_sectors);
        Ok(ScsiDisk {
            name: name.to_string(),
            address,
            wwid: Self::current_wwid(host, name)?,
            state: Self::current_state(host, name)?,
            holders: host.list(&host.sys(format!("block/{name}/holders")))?,
            size_bytes,
        })
    }

    /// The current WWID of the disk called `name`, read again from sysfs.
    pub fn current_wwid(host: &Host, name: &str) -> Result<Option<Wwid>> {
        Ok(host
            .read_attr_opt(&host.sys(format!("block/{name}/device/wwid")))?
            .and_then(|raw| Wwid::from_sysfs(&raw).ok()))
    }

    /// The current SCSI device state of the disk called `name` (`running`, `blocked` while its
    /// session is in recovery, `transport-offline`, ...), read again from sysfs.
    pub fn current_state(host: &Host, name: &str) -> Result<Option<DiskState>> {
        Ok(host
            .read_attr_opt(&host.sys(format!("block/{name}/device/state")))?
            .map(|s| s.parse().unwrap_or_else(|never| match never {})))
    }
}

/// Whether the kernel still has the block device `name`.
pub fn exists(host: &Host, name: &str) -> bool {
    host.sys(format!("block/{name}")).exists()
}

/// The SCSI disks found under a SCSI target folder layout: `DIR/targetH:C:T/H:C:T:L/block/sdX`.
/// Addresses with no block device (no disk attached yet, or a controller LUN) are skipped.
pub fn disks_under(host: &Host, dir: &std::path::Path) -> Result<Vec<ScsiDisk>> {
    let mut disks = Vec::new();
    for (address, name) in addresses_under(host, dir)? {
        if let Some(name) = name {
            disks.push(ScsiDisk::read(host, &name, address)?);
        }
    }
    Ok(disks)
}

/// Every SCSI address under a session folder, with its block device name when it has one (a
/// LUN whose scan is still under way has none yet).
pub fn addresses_under(
    host: &Host,
    dir: &std::path::Path,
) -> Result<Vec<(ScsiAddress, Option<String>)>> {
    let mut out = Vec::new();
    for t in host
        .list(dir)?
        .into_iter()
        .filter(|n| n.starts_with("target"))
    {
        let tdir = dir.join(&t);
        for l in host.list(&tdir)? {
            let Ok(address) = l.parse::<ScsiAddress>() else {
                continue;
            };
            out.push((
                address,
                host.list(&tdir.join(&l).join("block"))?.into_iter().next(),
            ));
        }
    }
    Ok(out)
}

pub use super::flush::FlushError;

/// Writes back the dirty pages of `/dev/NAME` and drops its cache, retrying errors with `backoff`;
/// each attempt may block up to `timeout` (a device whose paths are down blocks), and an attempt
/// that times out is not retried: it is still in the kernel.
///
/// A device-mapper map (`dm-N`) also gets a cache flush (fsync) after its write-back, so that
/// what the target holds in a write-back cache is stable, and its partition maps
/// (`partN-<map uuid>`, made by kpartx, each with a page cache of its own) are flushed first the
/// same way; all of it within `timeout` per attempt. A path (`sdX`) gets no cache flush: it would
/// block on a path that is down even when that path holds nothing of ours.
pub fn flush(
    host: &Host,
    name: &str,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<(), Retried<FlushError>> {
    if !name.starts_with("dm-") {
        let path = || vec![name.to_string()];
        return flush_devices(host, name, path, Depth::PageCache, backoff, timeout);
    }
    let map_and_partitions = || {
        let mut devs = partition_maps(host, name);
        devs.push(name.to_string());
        devs
    };
    flush_devices(
        host,
        name,
        map_and_partitions,
        Depth::Stable,
        backoff,
        timeout,
    )
}

/// Asks the kernel to remove the SCSI disk `name` (`device/delete`). The write can block while the
/// kernel syncs the device's cache; after `timeout` it goes on in the background. Checks nothing:
/// see [`delete_checked`].
pub fn delete(host: &Host, name: &str, timeout: Duration) -> Result<(), DiskError> {
    let attr = host.sys(format!("block/{name}/device/delete"));
    match host.kern().write_attr(&attr, "1", timeout) {
        Ok(()) => Ok(()),
        // Gone already: what we wanted.
        Err(_) if !exists(host, name) => Ok(()),
        Err(source) => Err(DiskError::Write {
            name: name.to_string(),
            action: "delete",
            attr,
            source,
        }),
    }
}

/// Whether the device called `disk.name` now is still `disk`: the same SCSI address (H:C:T:L)
/// and the WWN `wwid`. A name the kernel gave to another device meanwhile fails either check (the
/// same volume seen through another session has another address). `Ok(false)` when the device
/// is gone.
fn still_the_same(host: &Host, disk: &ScsiDisk, wwid: Option<&Wwid>) -> Result<bool, DiskError> {
    let name = &disk.name;
    let current = match disk_by_name(host, name) {
        Ok(Some(d)) => d,
        Ok(None) => return Ok(false),
        Err(e) => {
            return Err(DiskError::Recheck {
                name: name.clone(),
                source: Box::new(e),
            })
        }
    };
    if current.address != disk.address || current.wwid.as_ref() != wwid {
        return Err(DiskError::Replaced {
            name: name.clone(),
            now: current.address,
            now_wwid: current.wwid,
            was: disk.address,
            was_wwid: wwid.cloned(),
        });
    }
    Ok(true)
}

/// Deletes the SCSI disk `disk` (see [`delete`]) after checking, right before, that its name
/// still belongs to it: the same H:C:T:L and the WWN `wwid`. A disk gone already is not an error.
pub fn delete_checked(
    host: &Host,
    disk: &ScsiDisk,
    wwid: Option<&Wwid>,
    timeout: Duration,
) -> Result<(), DiskError> {
    if_still_the_same(host, disk, wwid, |name| delete(host, name, timeout))
}

/// Sets the SCSI disk `disk` offline (see [`set_offline`]) after checking, right before, that its
/// name still belongs to it: the same H:C:T:L and the WWN `wwid`. A disk gone already is not an
/// error.
pub fn set_offline_checked(
    host: &Host,
    disk: &ScsiDisk,
    wwid: Option<&Wwid>,
    timeout: Duration,
) -> Result<(), DiskError> {
    if_still_the_same(host, disk, wwid, |name| set_offline(host, name, timeout))
}

/// Runs `act` on the disk's name when the name still belongs to it (see `still_the_same`).
fn if_still_the_same(
    host: &Host,
    disk: &ScsiDisk,
    wwid: Option<&Wwid>,
    act: impl FnOnce(&str) -> Result<(), DiskError>,
) -> Result<(), DiskError> {
    if !still_the_same(host, disk, wwid)? {
        return Ok(());
    }
    act(&disk.name)
}

/// Sets the SCSI disk offline so that I/O queued on it fails at once instead of waiting for the
/// transport (used by a forced disconnect only). Checks nothing: see [`set_offline_checked`].
pub fn set_offline(host: &Host, name: &str, timeout: Duration) -> Result<(), DiskError> {
    let attr = host.sys(format!("block/{name}/device/state"));
    host.kern()
        .write_attr(&attr, "offline", timeout)
        .map_err(|source| DiskError::Write {
            name: name.to_string(),
            action: "set offline",
            attr,
            source,
        })
}

/// Waits until none of `names` exists any more, polling sysfs until `deadline`. Returns those
/// still there at the deadline.
pub fn wait_gone(host: &Host, names: &[String], deadline: Instant) -> Vec<String> {
    let mut pause = Pause::new(Duration::from_millis(5), Duration::from_millis(100));
    let start = host.time().now();
    let watch = host.watch_uevents();
    let mut progress = crate::time::Progress::new(
        format!("the kernel to drop {}", names.join(", ")),
        start,
        Some(deadline.saturating_duration_since(start)),
    );
    loop {
        progress.tick(host.time().now());
        let left: Vec<String> = names.iter().filter(|n| exists(host, n)).cloned().collect();
        if left.is_empty() || host.time().now() >= deadline {
            return left;
        }
        host.pause(watch.as_ref(), pause.take());
    }
}

/// Reads the disk `name` where only its name is known: its address is the name of the folder
/// that `/sys/block/NAME/device` leads to.
pub fn disk_by_name(host: &Host, name: &str) -> Result<Option<ScsiDisk>> {
    let link = host.sys(format!("block/{name}/device"));
    // Gone, or going while we look: no disk.
    let target = match host.resolve(&link) {
        Ok(target) => target,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let address = target
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse::<ScsiAddress>().ok())
        .ok_or_else(|| {
            Error::invalid(
                format!("{}", link.display()),
                "does not lead to a SCSI device H:C:T:L",
            )
        })?;
    ScsiDisk::read(host, name, address).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:t";
    const W1: &str = "naa.6001405deadbeef00010000000000000";
    const W2: &str = "naa.6001405deadbeef00020000000000000";

    /// sdb of session 1 (6:0:0:1) as planned, then deleted and its name given to `wwid` at
    /// LUN 1 of session 2 (7:0:0:1).
    fn name_reused(wwid: &str) -> (FakeHost, ScsiDisk, Wwid) {
        let fake = FakeHost::new();
        fake.session(1, "127.0.0.1:3260", IQN)
            .session(2, "127.0.0.2:3260", IQN)
            .disk(1, 1, "sdb", W1);
        let host = fake.host();
        let planned = disk_by_name(&host, "sdb").unwrap().unwrap();
        let w = planned.wwid.clone().unwrap();
        delete(&host, "sdb", Duration::from_secs(1)).unwrap();
        fake.disk(2, 1, "sdb", wwid);
        (fake, planned, w)
    }

    #[test]
    fn delete_checked_leaves_a_device_that_took_the_name_with_the_same_wwn_elsewhere() {
        // The same volume, attached again through another session meanwhile: same WWN, another
        // H:C:T:L. Deleting it would break that attachment.
        let (fake, planned, w) = name_reused(W1);
        let host = fake.host();
        let e = delete_checked(&host, &planned, Some(&w), Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(&e, DiskError::Replaced { now, was, .. }
                if now.to_string() == "7:0:0:1" && was.to_string() == "6:0:0:1"),
            "{e}"
        );
        assert!(fake.has_block("sdb"));
        // The real one is deleted.
        let now = disk_by_name(&host, "sdb").unwrap().unwrap();
        delete_checked(&host, &now, Some(&w), Duration::from_secs(1)).unwrap();
        assert!(!fake.has_block("sdb"));
        // Gone already: nothing to do.
        delete_checked(&host, &now, Some(&w), Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn a_map_and_its_partition_maps_get_a_cache_flush_and_a_path_does_not() {
        let fake = FakeHost::new();
        fake.session(1, "127.0.0.1:3260", IQN)
            .disk(1, 1, "sdb", W1)
            .map("dm-0", &["sdb"]);
        let host = fake.host();
        let uuid = disk_by_name(&host, "sdb")
            .unwrap()
            .unwrap()
            .wwid
            .unwrap()
            .mpath_uuid();
        fake.dm("dm-1", "mpatha1", &format!("part1-{uuid}"), &["dm-0"])
            // An LVM volume on the map is no partition map: the caller's layer, not brick's.
            .dm("dm-2", "vg-lv", "LVM-abc", &["dm-0"]);
        let once = Backoff {
            tries: 1,
            first: Duration::ZERO,
            factor: 1,
            max_delay: Duration::ZERO,
        };
        flush(&host, "sdb", &once, Duration::from_secs(1)).unwrap();
        assert_eq!(fake.syncs(), Vec::<String>::new());
        flush(&host, "dm-0", &once, Duration::from_secs(1)).unwrap();
        assert_eq!(fake.syncs(), ["dm-1", "dm-0"]);
        assert_eq!(fake.flushes(), ["sdb", "dm-1", "dm-0"]);
    }

    #[test]
    fn set_offline_checked_leaves_another_volumes_disk_running() {
        let (fake, planned, w) = name_reused(W2);
        let host = fake.host();
        let before = fake.attr_writes().len();
        let e = set_offline_checked(&host, &planned, Some(&w), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, DiskError::Replaced { .. }), "{e}");
        assert!(
            e.to_string().contains("another device took the name"),
            "{e}"
        );
        assert_eq!(fake.attr_writes().len(), before, "{:?}", fake.attr_writes());
        assert_eq!(
            ScsiDisk::current_state(&host, "sdb").unwrap(),
            Some(DiskState::Running)
        );
    }
}
