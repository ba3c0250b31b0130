//! dm-multipath maps through sysfs (`/sys/block/dm-N/dm/{name,uuid}`, `slaves/`), and the
//! commands that flush them. `multipath -l` is never used: it is slow on flaky links and fails on
//! a device whose path is down.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
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
        let Some(name) = host.read_attr_opt(&dir.join("name"))? else {
            return Ok(None);
        };
        Ok(Some(DmMap {
            dev: dev.to_string(),
            name,
            uuid: host.read_attr_opt(&dir.join("uuid"))?.unwrap_or_default(),
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

/// Every device-mapper device of the host.
pub fn all_maps(host: &Host) -> Result<Vec<DmMap>> {
    let mut maps = Vec::new();
    for dev in host
        .list(&host.sys("block"))?
        .into_iter()
        .filter(|n| n.starts_with("dm-"))
    {
        if let Some(m) = DmMap::read(host, &dev)? {
            maps.push(m);
        }
    }
    Ok(maps)
}

/// The multipath maps of `wwid` (normally none or one).
pub fn maps_of(host: &Host, wwid: &Wwid) -> Result<Vec<DmMap>> {
    Ok(all_maps(host)?
        .into_iter()
        .filter(|m| m.is_multipath_of(wwid))
        .collect())
}

/// Flushes and removes the multipath map `name` with `multipath -f`, retrying failures (a map
/// briefly held open by udev or blkid says "in use") with `backoff`. Each call has `timeout`.
pub fn flush_map(
    host: &Host,
    name: &str,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<(), Retried<Error>> {
    let cmd = Cmd::new("multipath").args(["-f", name]).timeout(timeout);
    retry(
        host.time(),
        backoff,
        &cmd.to_string(),
        |e: &Error| matches!(e, Error::CommandFailed { .. }),
        || {
            let out = host.run(&cmd)?;
            if out.success() {
                Ok(())
            } else {
                Err(Error::CommandFailed {
                    cmd: cmd.to_string(),
                    code: out.code,
                    detail: out.tail(),
                })
            }
        },
    )
}

/// Stops a multipath map from queueing I/O while it has no path (`fail_if_no_path`), so that
/// I/O waiting on it fails and the map can go. Used by a forced disconnect only: queued data is
/// lost.
pub fn disable_queueing(host: &Host, name: &str, timeout: Duration) -> Result<()> {
    let cmd = Cmd::new("dmsetup")
        .args(["message", name, "0", "fail_if_no_path"])
        .timeout(timeout);
    let out = host.run(&cmd)?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            cmd: cmd.to_string(),
            code: out.code,
            detail: out.tail(),
        })
    }
}
