//! dm-multipath maps through sysfs (`/sys/block/dm-N/dm/{name,uuid}`, `slaves/`), and their
//! removal through device-mapper's control device, in-process. `multipath -l` is never used: it is slow on flaky links and fails on
//! a device whose path is down.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::host::{DmRequest, Host, KernelError};
use crate::retry::{retry, Backoff, Retried};
use crate::types::Wwid;

/// A device-mapper device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmMap {
    /// The kernel name, `dm-N`.
    pub dev: String,
    /// The map's name (`dm/name`); for multipath, the WWID.
    pub name: String,
    /// The map's uuid (`dm/uuid`); `mpath-<wwid>` for a multipath map.
    pub uuid: String,
    /// The devices it is built on (`slaves/`).
    pub slaves: Vec<String>,
}

impl DmMap {
    /// Reads `dm-N`; `None` when it does not exist (any more).
    pub fn read(host: &Host, dev: &str) -> Result<Option<DmMap>> {
        let dir = host.sys(format!("block/{dev}/dm"));
        let Some(name) = host.read_dm_attr(&dir.join("name"))? else {
            return Ok(None);
        };
        let Some(uuid) = host.read_dm_attr(&dir.join("uuid"))? else {
            return Ok(None);
        };
        Ok(Some(DmMap {
            dev: dev.to_string(),
            name,
            uuid,
            slaves: host.list(&host.sys(format!("block/{dev}/slaves")))?,
        }))
    }

    /// Whether this is the multipath map of the device with `wwid`.
    pub fn is_multipath_of(&self, wwid: &Wwid) -> bool {
        self.uuid == wwid.mpath_uuid()
    }

    /// The WWID of a multipath map, from its uuid.
    pub fn multipath_wwid(&self) -> Option<Wwid> {
        self.uuid
            .strip_prefix("mpath-")
            .and_then(|w| w.parse().ok())
    }
}

/// The multipath maps of `wwid` (normally none or one).
pub fn maps_of(host: &Host, wwid: &Wwid) -> Result<Vec<DmMap>> {
    // Each map's uuid first: the rest is read only for the one that matches.
    let uuid = wwid.mpath_uuid();
    let mut maps = Vec::new();
    for dev in host
        .list(&host.sys("block"))?
        .into_iter()
        .filter(|n| n.starts_with("dm-"))
    {
        let attr = host.sys(format!("block/{dev}/dm/uuid"));
        if host.read_dm_attr(&attr)?.as_deref() != Some(uuid.as_str()) {
            continue;
        }
        if let Some(m) = DmMap::read(host, &dev)?.filter(|m| m.is_multipath_of(wwid)) {
            maps.push(m);
        }
    }
    Ok(maps)
}

/// Removes the multipath map `m` in-process, as `multipath -f` does without starting it: its
/// partition maps first (`partN-mpath-WWID`, made by kpartx), then the map, each with
/// device-mapper's `DM_DEV_REMOVE`, which the kernel refuses (EBUSY) while the device is open or
/// held. "In use" is retried with `backoff` (udev or blkid may hold a map briefly); a map already
/// gone is not an error. Each request has `timeout`.
pub fn remove_map(
    host: &Host,
    m: &DmMap,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<(), Retried<KernelError>> {
    for h in host
        .list(&host.sys(format!("block/{}/holders", m.dev)))
        .unwrap_or_default()
    {
        let Ok(Some(part)) = DmMap::read(host, &h) else {
            continue;
        };
        let is_partition =
            part.uuid.starts_with("part") && part.uuid.ends_with(&format!("-{}", m.uuid));
        if is_partition {
            remove_dm(host, &part.name, backoff, timeout)?;
        }
    }
    remove_dm(host, &m.name, backoff, timeout)
}

fn remove_dm(
    host: &Host,
    name: &str,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<(), Retried<KernelError>> {
    let control = host.dev_node("mapper/control");
    let what = format!("removal of device-mapper device {name}");
    retry(
        host.time(),
        backoff,
        &what,
        KernelError::is_busy,
        || match host.kern().dm(&control, name, DmRequest::Remove, timeout) {
            Err(e) if e.is_missing() => Ok(()),
            other => other,
        },
    )
    .map_err(|r| Retried {
        attempts: r.attempts,
        error: if r.error.is_busy() {
            KernelError::Os(format!("{name} is in use: open, or held by another device"))
        } else {
            r.error
        },
    })
}

/// Stops a multipath map from queueing I/O while it has no path (the target message
/// `fail_if_no_path`, in-process), so that I/O waiting on it fails and the map can go. Used by a
/// forced disconnect only: queued data is lost.
pub fn disable_queueing(host: &Host, name: &str, timeout: Duration) -> Result<(), KernelError> {
    host.kern().dm(
        &host.dev_node("mapper/control"),
        name,
        DmRequest::Message("fail_if_no_path"),
        timeout,
    )
}
