//! What the host shows of a volume before a disconnect changes anything, and the decisions the
//! disconnect and its dry run share.

use crate::block::multipath::{self, DmMap};
use crate::block::scsi::ScsiDisk;
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::props::ConnectionProperties;
use crate::iscsi::session::Session;
use crate::iscsi::topology;
use crate::report::{Thing, Untouched};
use crate::types::{DiskState, Iqn, Portal, Wwid};

/// What the host shows of the volume, before anything is changed.
pub(super) struct Plan {
    pub(super) wwn: Option<Wwid>,
    pub(super) sessions: Vec<Session>,
    pub(super) disks: Vec<ScsiDisk>,
    pub(super) maps: Vec<DmMap>,
    /// The volume's disks held by a device-mapper device that is not its map.
    pub(super) foreign_holders: Vec<Untouched>,
}

pub(super) fn disk_thing(d: &ScsiDisk) -> Thing {
    Thing::disk(&d.name, Some(d.address))
}

pub(super) fn map_thing(m: &DmMap) -> Thing {
    Thing::map(&m.dev, m.name.as_str())
}

pub(super) fn session_thing(s: &Session) -> Thing {
    Thing::Session {
        id: s.id,
        iqn: s.iqn.clone(),
        portal: s.portal,
    }
}

/// The paths that step 1b deletes before their map: blocked paths of a map that has a running
/// path among its own slaves and no device-mapper device stacked on it.
pub(super) fn paths_to_delete_early(host: &Host, plan: &Plan) -> Result<Vec<ScsiDisk>> {
    let mut blocked: Vec<ScsiDisk> = Vec::new();
    for m in &plan.maps {
        if !host
            .list(&host.sys(format!("block/{}/holders", m.dev)))?
            .is_empty()
        {
            continue;
        }
        let mut live = false;
        let mut waiting = Vec::new();
        for name in &m.slaves {
            match ScsiDisk::current_state(host, name)? {
                Some(DiskState::Running) => live = true,
                Some(DiskState::Blocked) => {
                    waiting.extend(plan.disks.iter().find(|d| &d.name == name))
                }
                _ => {}
            }
        }
        if live {
            for d in waiting {
                if !blocked.iter().any(|b| b.name == d.name) {
                    blocked.push(d.clone());
                }
            }
        }
    }
    Ok(blocked)
}

/// The node records step 4 deletes once the sessions it logs out are gone: of every target and
/// portal of the volume and of its sessions, except those of a session kept.
pub(super) fn records_to_forget(
    props: &ConnectionProperties,
    plan: &Plan,
    kept: &[(Iqn, Portal)],
) -> Vec<(Iqn, Portal)> {
    let mut forget: Vec<(Iqn, Portal)> = Vec::new();
    let keys = props
        .targets
        .iter()
        .map(|t| (t.iqn.clone(), t.portal))
        .chain(plan.sessions.iter().map(|s| (s.iqn.clone(), s.portal)));
    for key in keys {
        if !forget.contains(&key) && !kept.contains(&key) {
            forget.push(key);
        }
    }
    forget
}

/// What else uses session `s`: its devices that are not the volume's. A device is the
/// volume's only if it shows the volume's WWN (else a new volume took the LUN). On a session to
/// one of the volume's targets and portals, a device at another LUN is another volume's and its
/// WWN is not even read; on a session the properties do not list (it held a disk of the
/// volume's WWN), the volume's disk may sit at any LUN. A LUN whose scan is under way (no disk
/// yet) is another attach's.
pub(super) fn session_users(
    host: &Host,
    props: &ConnectionProperties,
    plan: &Plan,
    s: &Session,
) -> Result<Vec<String>> {
    let luns = props.luns_at(&s.iqn, &s.portal);
    let listed = !luns.is_empty();
    let mut others = Vec::new();
    for (address, name) in topology::session_addresses(host, s.id)? {
        let ours = match &name {
            Some(n) if !listed || luns.contains(&address.lun) => {
                ScsiDisk::current_wwid(host, n)?.is_some_and(|w| Some(&w) == plan.wwn.as_ref())
            }
            _ => false,
        };
        if !ours {
            others.push(format!(
                "{} (LUN {})",
                name.as_deref().unwrap_or("a device being scanned"),
                address.lun
            ));
        }
    }
    Ok(others)
}

/// What of the volume the host still shows, as `/dev/NAME` (maps first): its map (asked of
/// device-mapper by its uuid) and the map's paths, the planned disks still there, and the disks
/// at its LUN on its sessions that remain (a path that came back, a LUN scanned again). Each
/// disk counts only while it shows the volume's WWN. Only the volume's own devices and sessions
/// are read, not every disk of the host: on a host with hundreds of volumes that is most of a
/// disconnect's reading.
pub(super) fn devices_left(
    host: &Host,
    props: &ConnectionProperties,
    plan: &Plan,
) -> Result<Vec<String>> {
    let Some(wwn) = &plan.wwn else {
        return Ok(Vec::new());
    };
    let mut left = Vec::new();
    let mut disks: Vec<String> = Vec::new();
    for m in multipath::maps_of(host, wwn)? {
        left.push(format!("/dev/{}", m.dev));
        disks.extend(m.slaves);
    }
    disks.extend(plan.disks.iter().map(|d| d.name.clone()));
    for s in &plan.sessions {
        if !host
            .sys(format!("class/iscsi_session/session{}", s.id))
            .exists()
        {
            continue;
        }
        let luns = props.luns_at(&s.iqn, &s.portal);
        for (address, name) in topology::session_addresses(host, s.id)? {
            disks.extend(name.filter(|_| luns.is_empty() || luns.contains(&address.lun)));
        }
    }
    let mut seen: Vec<&String> = Vec::new();
    for d in &disks {
        if seen.contains(&d) {
            continue;
        }
        seen.push(d);
        if ScsiDisk::current_wwid(host, d)?.as_ref() == Some(wwn) {
            left.push(format!("/dev/{d}"));
        }
    }
    Ok(left)
}
