//! What this host offers as an iSCSI initiator, in the shape of os-brick's
//! `get_connector_properties`.

use serde::Serialize;

use crate::error::Result;
use crate::host::Host;

/// The connector properties a volume service needs to export a volume to this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectorProperties {
    /// The machine's architecture (`x86_64`), as os-brick's `platform`.
    pub platform: String,
    /// The operating system (`linux`).
    pub os_type: String,
    /// The address the caller gave (os-brick's `my_ip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The host name.
    pub host: String,
    /// Whether multipathd is running.
    pub multipath: bool,
    /// Whether the caller asked to enforce multipath (os-brick's `enforce_multipath`).
    pub enforce_multipath: bool,
    /// The initiator IQN, from `initiatorname.iscsi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Always false: brick attaches on this host (os-brick's `do_local_attach`).
    pub do_local_attach: bool,
    /// The NVMe host NQN, from `/etc/nvme/hostnqn` (made when missing), as os-brick's `nqn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nqn: Option<String>,
    /// The NVMe host ID, from `/etc/nvme/hostid` (made when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvme_hostid: Option<String>,
    /// The UUID of the file system mounted at `/` (os-brick's NVMe-oF `uuid`), when udev has
    /// described its device; none for an overlay or a host without udevd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The machine's DMI product UUID (os-brick's `system uuid`).
    #[serde(rename = "system uuid", skip_serializing_if = "Option::is_none")]
    pub system_uuid: Option<String>,
    /// Whether the kernel does native NVMe multipath (`nvme_core` `multipath=Y`).
    pub nvme_native_multipath: bool,
}

/// Reads this host's connector properties: the initiator name from
/// `/etc/iscsi/initiatorname.iscsi`, the host name, and whether multipathd runs (from /proc).
///
/// # Errors
/// [`crate::Error::Io`] when `initiatorname.iscsi` exists but cannot be read.
pub fn connector_properties(host: &Host, ip: Option<String>) -> Result<ConnectorProperties> {
    let initiator = crate::iscsi::initiator_name(host)?;
    // os-brick makes the NVMe identity files when they are missing; a host where they cannot
    // be written still reports its iSCSI properties.
    let nvme = match crate::nvmeof::host_identity(host) {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!("no NVMe host identity: {e}");
            None
        }
    };
    let hostname = host
        .read_attr_opt(&host.proc("sys/kernel/hostname"))?
        .unwrap_or_default();
    Ok(ConnectorProperties {
        platform: std::env::consts::ARCH.to_string(),
        os_type: "linux".to_string(),
        ip,
        host: hostname,
        multipath: multipathd_running(host)?,
        enforce_multipath: false,
        initiator,
        do_local_attach: false,
        nqn: nvme.as_ref().map(|i| i.nqn.to_string()),
        nvme_hostid: nvme.as_ref().map(|i| i.id.to_string()),
        system_uuid: nvme.and_then(|i| i.system_uuid),
        uuid: root_fs_uuid(host),
        nvme_native_multipath: crate::nvmeof::sysfs::native_multipath(host)?,
    })
}

/// The UUID of the file system mounted at `/`, as os-brick finds it with `findmnt` and `blkid`,
/// without either: the device number of `/` from `/proc/self/mountinfo`, then `ID_FS_UUID` in
/// udev's record of that device. `None` for a file system on no block device (an overlay, a
/// tmpfs: major 0) or a device udev has not described.
pub fn root_fs_uuid(host: &Host) -> Option<String> {
    let text =
        crate::host::read_bounded(&host.proc("self/mountinfo"), crate::host::MOUNTINFO_MAX).ok()?;
    // Fields: id parent MAJ:MIN root mount-point ...; the last mount at / is the one in use.
    let dev_t = text.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&"/")).then(|| f.get(2).map(|d| d.to_string()))?
    })?;
    if dev_t.starts_with("0:") {
        return None;
    }
    let record = host.read_attr_opt(&host.udev_record(&dev_t)).ok()??;
    record
        .lines()
        .find_map(|l| l.strip_prefix("E:ID_FS_UUID="))
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
}

/// Whether a process named `multipathd` runs (read from /proc, no process started).
pub fn multipathd_running(host: &Host) -> Result<bool> {
    let proc_dir = host.proc("");
    for pid in host
        .list(&proc_dir)?
        .into_iter()
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
    {
        let comm = host.proc(format!("{pid}/comm"));
        // None: a process that ended meanwhile.
        if host
            .read_attr_opt(&comm)?
            .is_some_and(|c| c.trim() == "multipathd")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_initiator_hostname_and_multipathd() {
        let f = crate::testing::FakeHost::new();
        let root = f.root();
        std::fs::write(
            root.join("etc/iscsi/initiatorname.iscsi"),
            "## generated\nInitiatorName=iqn.1993-08.org.debian:01:abc\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        std::fs::write(root.join("proc/sys/kernel/hostname"), "compute-1\n").unwrap();
        std::fs::create_dir_all(root.join("proc/1")).unwrap();
        std::fs::write(root.join("proc/1/comm"), "init\n").unwrap();
        let host = f.host();
        let p = connector_properties(&host, Some("127.0.0.1".into())).unwrap();
        assert_eq!(
            p.initiator.as_deref(),
            Some("iqn.1993-08.org.debian:01:abc")
        );
        assert_eq!(p.host, "compute-1");
        assert!(!p.multipath);
        std::fs::create_dir_all(root.join("proc/77")).unwrap();
        std::fs::write(root.join("proc/77/comm"), "multipathd\n").unwrap();
        assert!(connector_properties(&host, None).unwrap().multipath);
    }

    #[test]
    fn the_root_file_systems_uuid_comes_from_mountinfo_and_udev() {
        let f = crate::testing::FakeHost::new();
        let root = f.root();
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(
            root.join("proc/self/mountinfo"),
            "1 0 0:21 / / rw - rootfs rootfs rw\n\
             25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
             26 25 0:5 / /dev rw - devtmpfs udev rw\n",
        )
        .unwrap();
        let host = f.host();
        assert_eq!(root_fs_uuid(&host), None, "no udev record of 254:1");
        std::fs::create_dir_all(root.join("run/udev/data")).unwrap();
        std::fs::write(
            root.join("run/udev/data/b254:1"),
            "S:disk/by-uuid/2f3c...\nE:ID_FS_TYPE=ext4\nE:ID_FS_UUID=2f3c6e1a-9d0b-4d8e-8f55-0c1e2b3a4d5e\n",
        )
        .unwrap();
        assert_eq!(
            root_fs_uuid(&host).as_deref(),
            Some("2f3c6e1a-9d0b-4d8e-8f55-0c1e2b3a4d5e")
        );
        assert_eq!(
            connector_properties(&host, None).unwrap().uuid.as_deref(),
            Some("2f3c6e1a-9d0b-4d8e-8f55-0c1e2b3a4d5e")
        );
        // An overlay (a container's root): none.
        std::fs::write(
            root.join("proc/self/mountinfo"),
            "300 1 0:52 / / rw - overlay overlay rw\n",
        )
        .unwrap();
        assert_eq!(root_fs_uuid(&host), None);
    }

    #[test]
    fn reports_the_nvme_identity_as_os_brick_does() {
        let f = crate::testing::FakeHost::new();
        let root = f.root();
        std::fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
        std::fs::write(
            root.join("sys/class/dmi/id/product_uuid"),
            "4c4c4544-0033-3010-8044-b4c04f4e3032\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("sys/module/nvme_core/parameters")).unwrap();
        std::fs::write(
            root.join("sys/module/nvme_core/parameters/multipath"),
            "Y\n",
        )
        .unwrap();
        let p = connector_properties(&f.host(), None).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v["nqn"],
            "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0033-3010-8044-b4c04f4e3032"
        );
        assert_eq!(v["nvme_hostid"], "4c4c4544-0033-3010-8044-b4c04f4e3032");
        assert_eq!(v["system uuid"], "4c4c4544-0033-3010-8044-b4c04f4e3032");
        assert_eq!(v["nvme_native_multipath"], true);
        assert!(root.join("etc/nvme/hostid").exists());
    }
}
