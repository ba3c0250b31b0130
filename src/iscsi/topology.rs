//! What an iSCSI session holds, from sysfs alone: its SCSI host, its disks (H:C:T:L, WWID,
//! state) and the multipath maps that hold them. No link under /dev is followed and no SCSI
//! inquiry is sent.

use serde::Serialize;

use crate::error::Result;
use crate::host::Host;
use crate::iscsi::session::Session;
use crate::multipath::DmMap;
use crate::scsi::{self, ScsiDisk};

/// A session with what sysfs shows under it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionTopology {
    #[serde(flatten)]
    pub session: Session,
    /// `/sys/class/iscsi_session/sessionN/state`: `LOGGED_IN`, `FAILED`, `FREE`.
    pub state: Option<String>,
    /// The SCSI host number (H of H:C:T:L).
    pub scsi_host: Option<u32>,
    pub disks: Vec<DiskTopology>,
}

/// A disk and the map that holds it, if any.
#[derive(Debug, Clone, Serialize)]
pub struct DiskTopology {
    #[serde(flatten)]
    pub disk: ScsiDisk,
    pub map: Option<DmMap>,
}

/// The disks of session `id`: `/sys/class/iscsi_session/sessionN/device/targetH:C:T/H:C:T:L/block/sdX`.
pub fn session_disks(host: &Host, id: u32) -> Result<Vec<ScsiDisk>> {
    scsi::disks_under(
        host,
        &host.sys(format!("class/iscsi_session/session{id}/device")),
    )
}

/// Every SCSI address of session `id`, with its block device name when it has one.
pub fn session_addresses(
    host: &Host,
    id: u32,
) -> Result<Vec<(crate::types::ScsiAddress, Option<String>)>> {
    scsi::addresses_under(
        host,
        &host.sys(format!("class/iscsi_session/session{id}/device")),
    )
}

/// Finds the session to `iqn` at `portal` in sysfs (the connection's persistent address and
/// port, the session's target name), without running iscsiadm.
pub fn find_session(
    host: &Host,
    iqn: &crate::types::Iqn,
    portal: &crate::types::Portal,
) -> Result<Option<u32>> {
    for name in host.list(&host.sys("class/iscsi_session"))? {
        let Some(id) = name
            .strip_prefix("session")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = host.sys(format!("class/iscsi_session/{name}"));
        if host.read_attr_opt(&dir.join("targetname"))?.as_deref() != Some(iqn.as_str()) {
            continue;
        }
        let conn = dir.join(format!(
            "device/connection{id}:0/iscsi_connection/connection{id}:0"
        ));
        let addr = host.read_attr_opt(&conn.join("persistent_address"))?;
        let port = host.read_attr_opt(&conn.join("persistent_port"))?;
        let same_ip = addr.and_then(|a| a.parse::<std::net::IpAddr>().ok()) == Some(portal.ip);
        if same_ip && port.and_then(|p| p.parse::<u16>().ok()) == Some(portal.port) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The SCSI host number of session `id`, from the `hostH` folder its sysfs entry lives in.
pub fn scsi_host_of(host: &Host, id: u32) -> Result<Option<u32>> {
    let link = host.sys(format!("class/iscsi_session/session{id}"));
    if !link.exists() {
        return Ok(None);
    }
    let real = host.resolve(&link)?;
    Ok(real
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter_map(|c| c.strip_prefix("host"))
        .find_map(|n| n.parse().ok()))
}

/// Reads everything sysfs shows of `session`.
pub fn session_topology(host: &Host, session: &Session) -> Result<SessionTopology> {
    let mut disks = Vec::new();
    for disk in session_disks(host, session.id)? {
        let map = match disk.holders.first() {
            Some(dm) => DmMap::read(host, dm)?,
            None => None,
        };
        disks.push(DiskTopology { disk, map });
    }
    Ok(SessionTopology {
        state: host
            .read_attr_opt(&host.sys(format!("class/iscsi_session/session{}/state", session.id)))?,
        scsi_host: scsi_host_of(host, session.id)?,
        session: session.clone(),
        disks,
    })
}
