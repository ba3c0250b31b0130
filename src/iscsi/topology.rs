//! What an iSCSI session holds, from sysfs alone: its SCSI host, its disks (H:C:T:L, WWID,
//! state) and the multipath maps that hold them. No link under /dev is followed and no SCSI
//! inquiry is sent.

use serde::Serialize;

use crate::block::multipath::DmMap;
use crate::block::scsi::{self, ScsiDisk};
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::session::Session;
use crate::types::SessionId;
use crate::types::SessionState;

/// A session with what sysfs shows under it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionTopology {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// `/sys/class/iscsi_session/sessionN/state`: `LOGGED_IN`, `FAILED`, `FREE`.
    pub state: Option<SessionState>,
    /// The SCSI host number (H of H:C:T:L).
    pub scsi_host: Option<u32>,
    /// Its disks, each with the map that holds it.
    pub disks: Vec<DiskTopology>,
}

/// A disk and the map that holds it, if any.
#[derive(Debug, Clone, Serialize)]
pub struct DiskTopology {
    /// The disk.
    #[serde(flatten)]
    pub disk: ScsiDisk,
    /// The device-mapper device that holds it, if any.
    pub map: Option<DmMap>,
}

/// The disks of session `id`: `/sys/class/iscsi_session/sessionN/device/targetH:C:T/H:C:T:L/block/sdX`.
pub fn session_disks(host: &Host, id: SessionId) -> Result<Vec<ScsiDisk>> {
    scsi::disks_under(
        host,
        &host.sys(format!("class/iscsi_session/session{id}/device")),
    )
}

/// The disk at LUN `lun` of session `id`, reading that LUN's folder only (a session may carry
/// hundreds of LUNs; a wait polls this): `None` while it has no block device yet.
pub fn disk_at_lun(host: &Host, id: SessionId, lun: crate::types::Lun) -> Result<Option<ScsiDisk>> {
    let dir = host.sys(format!("class/iscsi_session/session{id}/device"));
    for t in host
        .list(&dir)?
        .into_iter()
        .filter(|n| n.starts_with("target"))
    {
        // targetH:C:T holds H:C:T:L for each LUN.
        let at = format!("{}:{lun}", &t["target".len()..]);
        let ldir = dir.join(&t).join(&at);
        let Ok(address) = at.parse::<crate::types::ScsiAddress>() else {
            continue;
        };
        let block = match host.list(&ldir.join("block")) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(name) = block.into_iter().next() {
            return Ok(Some(ScsiDisk::read(host, &name, address)?));
        }
    }
    Ok(None)
}

/// Every SCSI address of session `id`, with its block device name when it has one.
pub fn session_addresses(
    host: &Host,
    id: SessionId,
) -> Result<Vec<(crate::types::ScsiAddress, Option<String>)>> {
    scsi::addresses_under(
        host,
        &host.sys(format!("class/iscsi_session/session{id}/device")),
    )
}

/// Every iSCSI session of this host, read from sysfs as `iscsiadm -m session` reads it (without
/// starting it): `/sys/class/iscsi_session/sessionN/{targetname,tpgt}`, the portal from its
/// connection's `persistent_address` and `persistent_port`, the transport from its SCSI host's
/// `proc_name` (`iscsi_tcp`). A session whose connection is not (or no longer) in sysfs is
/// skipped: it has no portal to match.
pub fn list_sessions(host: &Host) -> Result<Vec<Session>> {
    sessions_to(host, None)
}

/// The sessions to the targets and portals of `targets` only. Every other session of the host
/// costs one read (its `targetname`): a host may hold hundreds of sessions, and a connect or
/// disconnect of one volume needs only its own.
pub fn sessions_of(
    host: &Host,
    targets: &[(&crate::types::Iqn, &crate::types::Portal)],
) -> Result<Vec<Session>> {
    Ok(
        sessions_matching(host, &|iqn| targets.iter().any(|(t, _)| *t == iqn))?
            .into_iter()
            .filter(|s| targets.iter().any(|(t, p)| **t == s.iqn && **p == s.portal))
            .collect(),
    )
}

/// The sessions (to target `iqn` only, when given: the others are skipped after one read).
fn sessions_to(host: &Host, iqn: Option<&crate::types::Iqn>) -> Result<Vec<Session>> {
    sessions_matching(host, &|t| iqn.is_none_or(|w| w == t))
}

/// The sessions whose target `want` accepts; the others are skipped after one read.
fn sessions_matching(
    host: &Host,
    want: &dyn Fn(&crate::types::Iqn) -> bool,
) -> Result<Vec<Session>> {
    let mut sessions = Vec::new();
    for name in host.list(&host.sys("class/iscsi_session"))? {
        let Some(id) = name
            .strip_prefix("session")
            .and_then(|n| n.parse::<u32>().ok())
            .map(SessionId)
        else {
            continue;
        };
        if let Some(s) = read_session(host, id, want)? {
            sessions.push(s);
        }
    }
    sessions.sort_by_key(|s| s.id);
    Ok(sessions)
}

fn read_session(
    host: &Host,
    id: SessionId,
    want: &dyn Fn(&crate::types::Iqn) -> bool,
) -> Result<Option<Session>> {
    let dir = host.sys(format!("class/iscsi_session/session{id}"));
    let Some(iqn) = host
        .read_attr_opt(&dir.join("targetname"))?
        .and_then(|t| t.parse::<crate::types::Iqn>().ok())
    else {
        return Ok(None);
    };
    if !want(&iqn) {
        return Ok(None);
    }
    let tpgt = host
        .read_attr_opt(&dir.join("tpgt"))?
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let Some(conn) = host
        .list(&dir.join("device"))?
        .into_iter()
        .find(|c| c.starts_with(&format!("connection{id}:")))
    else {
        return Ok(None);
    };
    let conn = dir.join(format!("device/{conn}/iscsi_connection/{conn}"));
    let addr = host
        .read_attr_opt(&conn.join("persistent_address"))?
        .and_then(|a| a.parse::<std::net::IpAddr>().ok());
    let port = host
        .read_attr_opt(&conn.join("persistent_port"))?
        .and_then(|p| p.parse::<u16>().ok());
    let (Some(ip), Some(port)) = (addr, port) else {
        return Ok(None);
    };
    let transport = match scsi_host_of(host, id)? {
        Some(h) => host
            .read_attr_opt(&host.sys(format!("class/scsi_host/host{h}/proc_name")))?
            .map(|n| crate::iscsi::iface::transport_of_driver(&n)),
        None => None,
    };
    let iface = host
        .read_attr_opt(&dir.join("ifacename"))?
        .filter(|n| !n.is_empty() && n != "<NULL>")
        .unwrap_or_else(|| "default".into());
    Ok(Some(Session {
        id,
        transport: transport.unwrap_or_else(|| "tcp".into()),
        iface,
        portal: crate::types::Portal { ip, port },
        tpgt,
        iqn,
    }))
}

/// Session `id` as sysfs shows it now, `None` when it is gone (the kernel may give its number to
/// a new session later: compare its target and portal).
pub fn session_by_id(host: &Host, id: SessionId) -> Result<Option<Session>> {
    read_session(host, id, &|_| true)
}

/// Finds the session to `iqn` at `portal` in sysfs (see [`list_sessions`]); the first one when
/// the host has several (another tool made them).
pub fn find_session(
    host: &Host,
    iqn: &crate::types::Iqn,
    portal: &crate::types::Portal,
) -> Result<Option<SessionId>> {
    Ok(sessions_to(host, Some(iqn))?
        .into_iter()
        .find(|s| &s.portal == portal)
        .map(|s| s.id))
}

/// Like [`find_session`], among the sessions made on interface `iface` only: a session of the
/// same target and portal on another interface (another network path, or TCP where iSER was
/// asked for) is not this connect's to reuse.
pub fn find_session_on(
    host: &Host,
    iqn: &crate::types::Iqn,
    portal: &crate::types::Portal,
    iface: &str,
) -> Result<Option<SessionId>> {
    Ok(sessions_to(host, Some(iqn))?
        .into_iter()
        .find(|s| &s.portal == portal && s.iface == iface)
        .map(|s| s.id))
}

/// The SCSI host number of session `id`, from the `hostH` folder its sysfs entry lives in.
pub fn scsi_host_of(host: &Host, id: SessionId) -> Result<Option<u32>> {
    let link = host.sys(format!("class/iscsi_session/session{id}"));
    // Gone, or going while we look (a concurrent logout): no SCSI host.
    let real = match host.resolve(&link) {
        Ok(real) => real,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(real
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter_map(|c| c.strip_prefix("host"))
        .find_map(|n| n.parse().ok()))
}

/// The state of session `id` (`/sys/class/iscsi_session/sessionN/state`: `LOGGED_IN`, `FAILED`
/// while it is in recovery, `FREE`), if the session is there.
pub fn session_state(host: &Host, id: SessionId) -> Result<Option<SessionState>> {
    Ok(host
        .read_attr_opt(&host.sys(format!("class/iscsi_session/session{id}/state")))?
        .map(|s| s.parse().unwrap_or_else(|never| match never {})))
}

/// How long the kernel keeps session `id`'s I/O waiting once it lost its connection before it
/// fails it (`/sys/class/iscsi_session/sessionN/recovery_tmo`, seconds; negative: for ever),
/// if the session is there and shows it.
pub fn session_recovery_tmo(host: &Host, id: SessionId) -> Result<Option<i64>> {
    Ok(host
        .read_attr_opt(&host.sys(format!("class/iscsi_session/session{id}/recovery_tmo")))?
        .and_then(|s| s.trim().parse().ok()))
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
        state: session_state(host, session.id)?,
        scsi_host: scsi_host_of(host, session.id)?,
        session: session.clone(),
        disks,
    })
}

/// How many disks' WWIDs one thread of [`disks_with_wwid`] reads.
const WWID_READS_PER_THREAD: usize = 64;

/// Every SCSI disk of this host whose WWID is `wwid`, with the iSCSI session it sits on (`None`
/// for a disk of another transport), wherever it is: on a session to a portal or target the
/// connection properties do not list, at another LUN number. Reads each disk's `device/wwid`
/// (`/sys/block/sd*`) and, for the matches only, where `/sys/block/sdX` leads
/// (`.../hostH/sessionN/targetH:C:T/H:C:T:L/block/sdX`).
pub fn disks_with_wwid(
    host: &Host,
    wwid: &crate::types::Wwid,
) -> Result<Vec<(Option<SessionId>, ScsiDisk)>> {
    let names: Vec<String> = host
        .list(&host.sys("block"))?
        .into_iter()
        .filter(|n| n.starts_with("sd"))
        .collect();
    // One read per disk, and a host may hold hundreds: the reads are shared out over a few
    // threads (each takes a run of names, so that a thread costs less than it saves).
    let runs: Vec<&[String]> = names.chunks(WWID_READS_PER_THREAD).collect();
    let matched = crate::par::par_map(&runs, |run| -> Result<Vec<String>> {
        let mut hits = Vec::new();
        for name in run.iter() {
            if ScsiDisk::current_wwid(host, name)?.as_ref() == Some(wwid) {
                hits.push(name.clone());
            }
        }
        Ok(hits)
    });
    let mut found = Vec::new();
    for name in matched.into_iter().collect::<Result<Vec<_>>>()?.concat() {
        let Some(disk) = scsi::disk_by_name(host, &name)? else {
            continue;
        };
        // Gone meanwhile: nothing to find.
        let Ok(real) = host.resolve(&host.sys(format!("block/{name}"))) else {
            continue;
        };
        let session = real
            .components()
            .filter_map(|c| c.as_os_str().to_str())
            .filter_map(|c| c.strip_prefix("session"))
            .find_map(|n| n.parse().ok());
        found.push((session, disk));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;
    use crate::types::Lun;

    #[test]
    fn disks_of_a_wwid_are_found_among_hundreds_in_the_host_order() {
        const OWN: &str = "naa.6001405deadbeef00010000000000000";
        // sda..sdz, sdaa..: the kernel's names
        let name = |i: usize| {
            let mut s = String::new();
            let mut n = i + 1;
            while n > 0 {
                n -= 1;
                s.insert(0, (b'a' + (n % 26) as u8) as char);
                n /= 26;
            }
            format!("sd{s}")
        };
        let f = FakeHost::new();
        f.session(1, "127.0.0.1:3260", "iqn.2003-01.org.linux-iscsi.lab:a")
            .session(2, "127.0.0.2:3260", "iqn.2003-01.org.linux-iscsi.lab:a");
        // more disks than one thread reads; the volume's WWN in the first, a middle and the
        // last run of names
        let own = [
            3,
            2 * WWID_READS_PER_THREAD + 5,
            3 * WWID_READS_PER_THREAD + 9,
        ];
        let total = 3 * WWID_READS_PER_THREAD + 10;
        for i in 0..total {
            let wwid = if own.contains(&i) {
                OWN.to_string()
            } else {
                format!("naa.6001405deadbeef{i:05}0000000000000")
            };
            f.disk(1 + (i % 2) as u32, i as u64, &name(i), &wwid);
        }
        let host = f.host();
        let found = disks_with_wwid(&host, &OWN.parse().unwrap()).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|(s, d)| (s.map(|s| s.0), d.name.clone()))
                .collect::<Vec<_>>(),
            own.iter()
                .map(|&i| (Some(1 + (i % 2) as u32), name(i)))
                .collect::<Vec<_>>()
        );
        // a disk that cannot be read fails the search (it could be the volume's)
        f.unreadable(&format!(
            "sys/block/{}/device/wwid",
            name(WWID_READS_PER_THREAD + 1)
        ));
        assert!(disks_with_wwid(&host, &OWN.parse().unwrap()).is_err());
    }

    #[test]
    fn sessions_of_reads_only_the_target_name_of_other_sessions() {
        let f = FakeHost::new();
        let (a, b) = (
            "iqn.2003-01.org.linux-iscsi.lab:a",
            "iqn.2003-01.org.linux-iscsi.lab:b",
        );
        f.session(1, "127.0.0.1:3260", a)
            .session(2, "127.0.0.2:3260", a)
            .session(3, "127.0.0.1:3260", b)
            .session(4, "127.0.0.2:3260", b);
        // the other target's sessions: only their targetname may be read
        f.unreadable("sys/class/iscsi_session/session3/tpgt")
            .unreadable("sys/class/iscsi_session/session4/ifacename");
        let host = f.host();
        assert!(
            list_sessions(&host).is_err(),
            "the broken attributes are read by a full list"
        );
        let iqn: crate::types::Iqn = a.parse().unwrap();
        let p2: crate::types::Portal = "127.0.0.2:3260".parse().unwrap();
        let found = sessions_of(&host, &[(&iqn, &p2)]).unwrap();
        assert_eq!(
            found.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![SessionId(2)]
        );
        let p1: crate::types::Portal = "127.0.0.1:3260".parse().unwrap();
        let both = sessions_of(&host, &[(&iqn, &p1), (&iqn, &p2)]).unwrap();
        assert_eq!(
            both.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![SessionId(1), SessionId(2)]
        );
        assert!(sessions_of(&host, &[]).unwrap().is_empty());
    }

    #[test]
    fn the_disk_at_one_lun_of_a_session() {
        let f = FakeHost::new();
        f.session(1, "127.0.0.1:3260", "iqn.2003-01.org.linux-iscsi.lab:t")
            .disk(1, 1, "sda", "naa.6001405deadbeef00010000000000000")
            .disk(1, 2, "sdb", "naa.6001405deadbeef00020000000000000")
            .disk(1, 12, "sdc", "naa.6001405deadbeef00030000000000000");
        let host = f.host();
        let d = disk_at_lun(&host, SessionId(1), Lun(2)).unwrap().unwrap();
        assert_eq!((d.name.as_str(), d.address.lun), ("sdb", Lun(2)));
        assert_eq!(
            disk_at_lun(&host, SessionId(1), Lun(12))
                .unwrap()
                .unwrap()
                .name,
            "sdc"
        );
        assert!(disk_at_lun(&host, SessionId(1), Lun(9)).unwrap().is_none());
        assert!(disk_at_lun(&host, SessionId(1), Lun(0)).unwrap().is_none());
    }
}
