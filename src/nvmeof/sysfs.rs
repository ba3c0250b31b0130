//! What sysfs shows of NVMe over Fabrics, as the lab's kernel (6.1) lays it out:
//!
//! - controllers: `/sys/class/nvme/nvmeN` (links to `devices/virtual/nvme-fabrics/ctl/nvmeN`), with
//!   `state`, `transport`, `address` (`traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1`),
//!   `subsysnqn`, `hostnqn`, `cntlid`, `delete_controller`, `rescan_controller`;
//! - subsystems: `/sys/class/nvme-subsystem/nvme-subsysS`, with `subsysnqn`, a link per controller
//!   (`nvmeN`) and, with native multipath, the namespace heads `nvmeSnX` (block devices with
//!   `dev`, `nsid`, `uuid`, `nguid` when not zero, `wwid`, `size`);
//! - per-controller paths of a head: `/sys/class/nvme/nvmeN/nvmeScNnX` (hidden, no `dev`), with
//!   `ana_state` and `ana_grpid`;
//! - with native multipath off, each controller's namespaces are block devices of their own,
//!   `/sys/class/nvme/nvmeN/nvmeNnX`, and the subsystem shows no head.
//!
//! Nothing here lists /dev or follows /dev/disk links.

use std::net::IpAddr;

use serde::Serialize;

use super::props::{Nqn, NvmePortal, NvmeTarget, Transport, Uuid};
use crate::error::Result;
use crate::host::Host;

/// One namespace block device: a multipath head (`nvme0n1`), a path under a controller
/// (`nvme0c1n1`), or a single-path namespace (`nvme1n1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Namespace {
    /// The kernel name.
    pub name: String,
    /// The namespace id.
    pub nsid: Option<u32>,
    /// Its UUID, when the target gives one.
    pub uuid: Option<Uuid>,
    /// Its NGUID, when not zero.
    pub nguid: Option<Uuid>,
    /// The `wwid` attribute (`uuid.…`, `eui.…`).
    pub wwid: Option<String>,
    /// Its size in bytes.
    pub size_bytes: Option<crate::types::Bytes>,
    /// The ANA state of a path (`optimized`, `non-optimized`, `inaccessible`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ana_state: Option<String>,
}

impl Namespace {
    /// Whether it is the namespace `t` names: by UUID when given, else NGUID, else nsid. With
    /// none of them, any namespace matches (the caller then needs it to be the only one).
    pub fn is(&self, t: &NvmeTarget) -> bool {
        match (&t.uuid, &t.nguid, t.nsid) {
            (Some(u), _, _) => self.uuid.as_ref() == Some(u),
            (None, Some(g), _) => self.nguid.as_ref() == Some(g),
            (None, None, Some(n)) => self.nsid == Some(n),
            (None, None, None) => true,
        }
    }

    /// Whether it shows another identity than `t`'s on a field `t` gives (UUID, NGUID): a device
    /// that certainly is not the volume's.
    pub fn contradicts(&self, t: &NvmeTarget) -> bool {
        let differs = |want: &Option<Uuid>, got: &Option<Uuid>| matches!((want, got), (Some(w), Some(g)) if w != g);
        differs(&t.uuid, &self.uuid) || differs(&t.nguid, &self.nguid)
    }
}

/// An NVMe controller (`nvmeN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Controller {
    /// `nvmeN`.
    pub name: String,
    /// `live`, `connecting`, `resetting`, `deleting`, ...
    pub state: Option<ControllerState>,
    /// `tcp`, `rdma`, `loop`, `pcie`.
    pub transport: Option<ControllerTransport>,
    /// The `address` attribute as the kernel shows it.
    pub address: Option<String>,
    /// The subsystem NQN.
    pub subsysnqn: Option<String>,
    /// The host NQN it connected as.
    pub hostnqn: Option<String>,
    /// Its namespace devices (paths of heads, or single-path namespaces).
    pub namespaces: Vec<Namespace>,
}

impl Controller {
    /// `traddr` of its address.
    pub fn traddr(&self) -> Option<IpAddr> {
        addr_field(self.address.as_deref()?, "traddr")?
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .ok()
    }

    /// `trsvcid` of its address.
    pub fn trsvcid(&self) -> Option<u16> {
        addr_field(self.address.as_deref()?, "trsvcid")?
            .parse()
            .ok()
    }

    /// Whether it is a controller of subsystem `nqn` at `portal`, connected as `hostnqn` (when
    /// the kernel shows the host NQN).
    pub fn is_at(&self, nqn: &Nqn, portal: &NvmePortal, hostnqn: &str) -> bool {
        self.subsysnqn.as_deref() == Some(nqn.as_str())
            && self.transport == Some(ControllerTransport::Fabric(portal.transport))
            && self.traddr() == Some(portal.address)
            && self.trsvcid() == Some(portal.port)
            && self.hostnqn.as_deref().is_none_or(|h| h == hostnqn)
    }

    /// Whether its state is `live`.
    pub fn is_live(&self) -> bool {
        self.state == Some(ControllerState::Live)
    }
}

/// The state of an NVMe controller, as the kernel shows it in `/sys/class/nvme/nvmeN/state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControllerState {
    /// `new`: being set up.
    New,
    /// `live`: connected; I/O flows.
    Live,
    /// `resetting`: being reset; the kernel reconnects it by itself.
    Resetting,
    /// `connecting`: reconnecting after its portal went away (until `ctrl_loss_tmo`).
    Connecting,
    /// `deleting`: being deleted.
    Deleting,
    /// `deleting (no IO)`: being deleted, its I/O already failed.
    DeletingNoIo,
    /// `dead`: removed after a failure.
    Dead,
    /// A state a newer kernel adds, in its words.
    Other(String),
}

/// How a controller reaches its subsystem, as its `transport` attribute says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControllerTransport {
    /// A fabric brick connects over: `tcp`, `rdma`.
    Fabric(Transport),
    /// Any other (`pcie`, `loop`, `fc`), in the kernel's words.
    Other(String),
}

impl ControllerTransport {
    /// The kernel's word (`tcp`, `rdma`, `pcie`, ...).
    pub fn from_kernel(s: &str) -> ControllerTransport {
        match s.trim() {
            "tcp" => ControllerTransport::Fabric(Transport::Tcp),
            "rdma" => ControllerTransport::Fabric(Transport::Rdma),
            other => ControllerTransport::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for ControllerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControllerTransport::Fabric(t) => f.write_str(t.as_str()),
            ControllerTransport::Other(s) => f.write_str(s),
        }
    }
}

impl Serialize for ControllerTransport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl ControllerState {
    /// Whether the controller is on its way out (`deleting`, `deleting (no IO)`, `dead`): the
    /// kernel reconnects it no more, and takes a new connect to its portal as no duplicate.
    pub fn is_going(&self) -> bool {
        matches!(
            self,
            ControllerState::Deleting | ControllerState::DeletingNoIo | ControllerState::Dead
        )
    }
}

impl std::str::FromStr for ControllerState {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.trim() {
            "new" => ControllerState::New,
            "live" => ControllerState::Live,
            "resetting" => ControllerState::Resetting,
            "connecting" => ControllerState::Connecting,
            "deleting" => ControllerState::Deleting,
            "deleting (no IO)" => ControllerState::DeletingNoIo,
            "dead" => ControllerState::Dead,
            other => ControllerState::Other(other.to_string()),
        })
    }
}

impl std::fmt::Display for ControllerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControllerState::New => "new",
            ControllerState::Live => "live",
            ControllerState::Resetting => "resetting",
            ControllerState::Connecting => "connecting",
            ControllerState::Deleting => "deleting",
            ControllerState::DeletingNoIo => "deleting (no IO)",
            ControllerState::Dead => "dead",
            ControllerState::Other(s) => s,
        })
    }
}

impl Serialize for ControllerState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An NVMe subsystem (`nvme-subsysS`) as this host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subsystem {
    /// `nvme-subsysS`.
    pub name: String,
    /// Its NQN.
    pub nqn: Option<String>,
    /// Its controllers on this host.
    pub controllers: Vec<Controller>,
    /// Its namespace heads (native multipath); empty when multipath is off.
    pub heads: Vec<Namespace>,
}

fn addr_field<'a>(address: &'a str, key: &str) -> Option<&'a str> {
    address.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then_some(v.trim())
    })
}

/// `nvme12`.
pub fn is_ctrl_name(n: &str) -> bool {
    n.strip_prefix("nvme")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `nvme0n1` (a head, or a single-path namespace).
pub fn is_ns_name(n: &str) -> bool {
    let Some(rest) = n.strip_prefix("nvme") else {
        return false;
    };
    let Some((a, b)) = rest.split_once('n') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(a) && digits(b)
}

/// `nvme0c1n1` (a path of a head).
pub fn is_path_name(n: &str) -> bool {
    let Some(rest) = n.strip_prefix("nvme") else {
        return false;
    };
    let Some((s, rest)) = rest.split_once('c') else {
        return false;
    };
    let Some((c, x)) = rest.split_once('n') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(s) && digits(c) && digits(x)
}

/// Whether the kernel does native NVMe multipath (`nvme_core`'s `multipath` parameter is `Y`).
pub fn native_multipath(host: &Host) -> Result<bool> {
    Ok(host
        .read_attr_opt(&host.sys("module/nvme_core/parameters/multipath"))?
        .is_some_and(|v| v.trim() == "Y"))
}

fn read_ns(host: &Host, dir: &std::path::Path, name: &str) -> Result<Namespace> {
    let attr = |a: &str| host.read_attr_opt(&dir.join(a));
    let uuid = attr("uuid")?.and_then(|u| Uuid::parse(&u).ok());
    let nguid = attr("nguid")?
        .and_then(|u| Uuid::parse(&u).ok())
        .filter(|u| !u.is_nil());
    Ok(Namespace {
        name: name.to_string(),
        nsid: attr("nsid")?.and_then(|n| n.trim().parse().ok()),
        uuid: uuid.filter(|u| !u.is_nil()),
        nguid,
        wwid: attr("wwid")?,
        size_bytes: attr("size")?
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(crate::types::Bytes::from_sectors),
        ana_state: attr("ana_state")?,
    })
}

/// Controller `name` (`nvme3`), or `None` when it is gone.
pub fn controller(host: &Host, name: &str) -> Result<Option<Controller>> {
    let dir = host.sys(format!("class/nvme/{name}"));
    if !dir.exists() {
        return Ok(None);
    }
    let attr = |a: &str| host.read_attr_opt(&dir.join(a));
    let mut namespaces = Vec::new();
    for n in host.list(&dir)? {
        if is_path_name(&n) || is_ns_name(&n) {
            namespaces.push(read_ns(host, &dir.join(&n), &n)?);
        }
    }
    Ok(Some(Controller {
        name: name.to_string(),
        state: attr("state")?.map(|t| t.parse().unwrap_or_else(|e| match e {})),
        transport: attr("transport")?.map(|t| ControllerTransport::from_kernel(&t)),
        address: attr("address")?,
        subsysnqn: attr("subsysnqn")?,
        hostnqn: attr("hostnqn")?,
        namespaces,
    }))
}

/// Every NVMe controller of the host.
pub fn controllers(host: &Host) -> Result<Vec<Controller>> {
    let mut out = Vec::new();
    for n in host.list(&host.sys("class/nvme"))? {
        if is_ctrl_name(&n) {
            if let Some(c) = controller(host, &n)? {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Every NVMe subsystem of the host, with its controllers and heads.
pub fn subsystems(host: &Host) -> Result<Vec<Subsystem>> {
    let mut out = Vec::new();
    let class = host.sys("class/nvme-subsystem");
    for s in host.list(&class)? {
        let dir = class.join(&s);
        let mut controllers = Vec::new();
        let mut heads = Vec::new();
        for n in host.list(&dir)? {
            if is_ctrl_name(&n) {
                if let Some(c) = controller(host, &n)? {
                    controllers.push(c);
                }
            } else if is_ns_name(&n) {
                heads.push(read_ns(host, &dir.join(&n), &n)?);
            }
        }
        out.push(Subsystem {
            nqn: host.read_attr_opt(&dir.join("subsysnqn"))?,
            name: s,
            controllers,
            heads,
        });
    }
    Ok(out)
}

/// The subsystem of NQN `nqn`, when this host has one.
pub fn subsystem(host: &Host, nqn: &Nqn) -> Result<Option<Subsystem>> {
    Ok(subsystems(host)?
        .into_iter()
        .find(|s| s.nqn.as_deref() == Some(nqn.as_str())))
}

/// The volume's namespace devices in `sub`: its head (multipath), or each controller's own
/// namespace device (multipath off). Also the devices the identity is not sure of: with no
/// UUID, NGUID or nsid, every namespace of the subsystem.
pub fn volume_devices(sub: &Subsystem, t: &NvmeTarget) -> Vec<Namespace> {
    let mut found: Vec<Namespace> = sub.heads.iter().filter(|n| n.is(t)).cloned().collect();
    for c in &sub.controllers {
        for n in &c.namespaces {
            if is_ns_name(&n.name) && n.is(t) {
                found.push(n.clone());
            }
        }
    }
    found
}

/// The namespaces in `sub` that are not the volume's (certainly, or unprovably), by device.
pub fn other_devices(sub: &Subsystem, t: &NvmeTarget) -> Vec<Namespace> {
    let mut found: Vec<Namespace> = sub.heads.iter().filter(|n| !n.is(t)).cloned().collect();
    for c in &sub.controllers {
        for n in &c.namespaces {
            if is_ns_name(&n.name) && !n.is(t) {
                found.push(n.clone());
            }
        }
    }
    found
}

/// The namespace ids that controller `c` serves other than the volume's (`nsid` of its path or
/// namespace devices that are not the volume's).
pub fn others_on(c: &Controller, t: &NvmeTarget) -> Vec<Namespace> {
    c.namespaces.iter().filter(|n| !n.is(t)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_ctrl_name("nvme0") && is_ctrl_name("nvme12"));
        assert!(!is_ctrl_name("nvme-subsys0") && !is_ctrl_name("nvme0n1") && !is_ctrl_name("nvme"));
        assert!(is_ns_name("nvme0n1") && is_ns_name("nvme10n22"));
        assert!(!is_ns_name("nvme0c1n1") && !is_ns_name("ng0n1") && !is_ns_name("nvme0n1p1"));
        assert!(is_path_name("nvme0c1n1") && !is_path_name("nvme0n1"));
    }

    #[test]
    fn address_fields_as_the_kernel_writes_them() {
        let c = Controller {
            name: "nvme0".into(),
            state: Some(ControllerState::Live),
            transport: Some(ControllerTransport::Fabric(Transport::Tcp)),
            address: Some("traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1".into()),
            subsysnqn: Some("nqn.2014-08.org.lab:sub1".into()),
            hostnqn: Some("nqn.2014-08.org.nvmexpress:uuid:1".into()),
            namespaces: vec![],
        };
        assert_eq!(c.traddr(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(c.trsvcid(), Some(4420));
        let p = NvmePortal {
            transport: super::super::props::Transport::Tcp,
            address: "127.0.0.1".parse().unwrap(),
            port: 4420,
        };
        let nqn: Nqn = "nqn.2014-08.org.lab:sub1".parse().unwrap();
        assert!(c.is_at(&nqn, &p, "nqn.2014-08.org.nvmexpress:uuid:1"));
        assert!(!c.is_at(&nqn, &p, "nqn.2014-08.org.nvmexpress:uuid:2"));
        let other: Nqn = "nqn.2014-08.org.lab:sub10".parse().unwrap();
        assert!(!c.is_at(&other, &p, "nqn.2014-08.org.nvmexpress:uuid:1"));
        let v6 = Controller {
            address: Some("traddr=fd00::1,trsvcid=4421".into()),
            ..c
        };
        assert_eq!(v6.traddr(), Some("fd00::1".parse().unwrap()));
    }
}
