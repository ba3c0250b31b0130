//! open-iscsi interfaces: how a session reaches its portal. `default` is software iSCSI over TCP
//! (`iscsi_tcp`), `iser` is iSCSI Extensions for RDMA (`ib_iser`), both built into open-iscsi;
//! any other name is an iface record in the configuration folder (`ifaces/NAME`, made with
//! `iscsiadm -m iface -I NAME --op new`), which binds sessions to a network interface or a
//! hardware offload transport. os-brick's connector takes the same choice as its `transport`
//! (Nova's `iscsi_iface`), and a Cinder driver that says `driver_volume_type: iser` asks for
//! `iser`.

use crate::error::{Error, Result};
use crate::host::Host;

/// The transports an iface may use, as os-brick accepts them.
const TRANSPORTS: &[&str] = &[
    "tcp", "iser", "be2iscsi", "bnx2i", "cxgb3i", "cxgb4i", "qla4xxx", "ocs",
];

/// An interface sessions are made on: its name and its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// `default`, `iser`, or the name of an iface record.
    pub name: String,
    /// `tcp`, `iser`, or an offload transport (`iface.transport_name`).
    pub transport: String,
    /// The record's `iface.*` settings, for the node records made on it (none for the two
    /// built-in ones).
    pub settings: Vec<(String, String)>,
}

impl Default for Iface {
    fn default() -> Self {
        Iface {
            name: "default".into(),
            transport: "tcp".into(),
            settings: Vec::new(),
        }
    }
}

impl Iface {
    /// The interface called `name`: a built-in one, or the iface record of that name, which
    /// must exist and use a supported transport.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `iface`) for a malformed name, a missing record or an
    /// unsupported transport; [`Error::Io`] when the record cannot be read.
    pub fn named(host: &Host, name: &str) -> Result<Iface> {
        let name = name.trim();
        match name {
            "default" | "tcp" => return Ok(Iface::default()),
            "iser" => {
                return Ok(Iface {
                    name: "iser".into(),
                    transport: "iser".into(),
                    settings: Vec::new(),
                })
            }
            _ => {}
        }
        let well_formed = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if !well_formed {
            return Err(Error::invalid(
                "iface",
                format!("{name:?} is not an iface name (letters, digits, . _ : -)"),
            ));
        }
        let path = host.iscsi_conf(format!("ifaces/{name}"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::invalid(
                    "iface",
                    format!(
                        "no iface record {name:?} ({} is missing; make it with `iscsiadm -m \
                         iface -I {name} --op new`)",
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let settings: Vec<(String, String)> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(k, v)| k.starts_with("iface.") && !v.is_empty() && v != "<empty>")
            .collect();
        let transport = settings
            .iter()
            .find(|(k, _)| k == "iface.transport_name")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "tcp".into());
        if !TRANSPORTS.contains(&transport.as_str()) {
            return Err(Error::invalid(
                "iface",
                format!(
                    "iface {name:?} uses transport {transport:?}, which brick does not support \
                     (one of {})",
                    TRANSPORTS.join(", ")
                ),
            ));
        }
        Ok(Iface {
            name: name.to_string(),
            transport,
            settings,
        })
    }

    /// The `iface.*` keys a node record on this interface holds: its name and transport, then
    /// the record's other settings.
    pub fn record_keys(&self) -> Vec<(String, String)> {
        let mut keys = vec![
            ("iface.iscsi_ifacename".to_string(), self.name.clone()),
            ("iface.transport_name".to_string(), self.transport.clone()),
        ];
        keys.extend(
            self.settings
                .iter()
                .filter(|(k, _)| k != "iface.iscsi_ifacename" && k != "iface.transport_name")
                .cloned(),
        );
        keys
    }
}

/// The transport of a session, from its SCSI host's driver (`proc_name`): `iscsi_tcp` is
/// `tcp`, `ib_iser` is `iser`, an offload driver keeps its name.
pub fn transport_of_driver(proc_name: &str) -> String {
    match proc_name.trim() {
        "iscsi_tcp" => "tcp".into(),
        "ib_iser" => "iser".into(),
        other => other.strip_prefix("iscsi_").unwrap_or(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with_ifaces(files: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join("etc/iscsi/ifaces").join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let host = Host::with_roots(
            dir.path().join("sys"),
            dir.path().join("dev"),
            dir.path().join("etc/iscsi"),
        );
        (dir, host)
    }

    #[test]
    fn built_in_and_recorded_ifaces() {
        let (_d, host) = host_with_ifaces(&[
            (
                "eth1-iface",
                "# BEGIN RECORD 2.1.8\niface.iscsi_ifacename = eth1-iface\niface.net_ifacename = eth1\n\
                 iface.transport_name = tcp\niface.hwaddress = <empty>\n# END RECORD\n",
            ),
            ("rdma", "iface.iscsi_ifacename = rdma\niface.transport_name = iser\n"),
            ("odd", "iface.transport_name = carrier-pigeon\n"),
        ]);
        assert_eq!(Iface::named(&host, "default").unwrap(), Iface::default());
        let iser = Iface::named(&host, "iser").unwrap();
        assert_eq!(
            (iser.name.as_str(), iser.transport.as_str()),
            ("iser", "iser")
        );
        let eth1 = Iface::named(&host, "eth1-iface").unwrap();
        assert_eq!(eth1.transport, "tcp");
        assert_eq!(
            eth1.record_keys(),
            [
                (
                    "iface.iscsi_ifacename".to_string(),
                    "eth1-iface".to_string()
                ),
                ("iface.transport_name".into(), "tcp".into()),
                ("iface.net_ifacename".into(), "eth1".into()),
            ]
        );
        assert_eq!(Iface::named(&host, "rdma").unwrap().transport, "iser");
        for bad in ["missing", "../../etc/passwd", "a b", ".hidden", "odd"] {
            match Iface::named(&host, bad) {
                Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "iface", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn transports_from_the_scsi_host_driver() {
        assert_eq!(transport_of_driver("iscsi_tcp\n"), "tcp");
        assert_eq!(transport_of_driver("ib_iser"), "iser");
        assert_eq!(transport_of_driver("bnx2i"), "bnx2i");
    }
}
