//! Which connector a volume's properties are for: a whole `connection_info` says it in
//! `driver_volume_type` (`iscsi` or `nvmeof`); bare properties are told apart by their keys
//! (`target_nqn`, `nqn` or `volume_replicas` are NVMe-oF's), unless the caller names the protocol.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::iscsi::props::ConnectionProperties;
use crate::nvmeof::NvmeProperties;

/// A volume protocol brick attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// iSCSI (`driver_volume_type: iscsi`).
    Iscsi,
    /// NVMe over Fabrics (`driver_volume_type: nvmeof`).
    Nvmeof,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Protocol, String> {
        match s.to_ascii_lowercase().as_str() {
            // iSER is iSCSI over RDMA: the iSCSI connector, on the iser interface.
            "iscsi" | "iser" => Ok(Protocol::Iscsi),
            "nvmeof" | "nvme" | "nvme-of" | "nvme-tcp" => Ok(Protocol::Nvmeof),
            _ => Err(format!(
                "{s:?} is not a protocol brick knows (iscsi, iser, nvmeof)"
            )),
        }
    }
}

/// Connection properties of either protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeProperties {
    /// An iSCSI volume.
    Iscsi(ConnectionProperties),
    /// An NVMe-oF volume.
    Nvmeof(NvmeProperties),
}

impl VolumeProperties {
    /// Parses properties or a whole `connection_info`, for `protocol` when the caller names one
    /// (a `driver_volume_type` that disagrees is refused).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn from_json(text: &str, protocol: Option<Protocol>) -> Result<VolumeProperties> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::invalid("JSON", e))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::invalid("connection properties", "expected a JSON object"))?;
        let said = match obj.get("driver_volume_type") {
            None => None,
            Some(k) => Some(
                k.as_str()
                    .unwrap_or_default()
                    .parse::<Protocol>()
                    .map_err(|e| Error::invalid("driver_volume_type", e))?,
            ),
        };
        let guessed = if ["target_nqn", "nqn", "volume_replicas"]
            .iter()
            .any(|k| obj.contains_key(*k))
        {
            Protocol::Nvmeof
        } else {
            Protocol::Iscsi
        };
        let which = match (protocol, said) {
            (Some(p), Some(s)) if p != s => {
                return Err(Error::invalid(
                    "driver_volume_type",
                    format!("says {s:?}, but the protocol asked for is {p:?}"),
                ))
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => guessed,
        };
        Ok(match which {
            Protocol::Iscsi => VolumeProperties::Iscsi(ConnectionProperties::from_value(&v)?),
            Protocol::Nvmeof => VolumeProperties::Nvmeof(NvmeProperties::from_value(&v)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NV: &str = r#"{"target_nqn": "nqn.2014-08.org.lab:s", "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d", "portals": [["127.0.0.1", 4420, "tcp"]]}"#;
    const IS: &str = r#"{"target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2003-01.org.x:t", "target_lun": 1}"#;

    #[test]
    fn driver_volume_type_picks_the_connector() {
        let ci = format!(r#"{{"driver_volume_type": "nvmeof", "data": {NV}}}"#);
        assert!(matches!(
            VolumeProperties::from_json(&ci, None),
            Ok(VolumeProperties::Nvmeof(_))
        ));
        let ci = format!(r#"{{"driver_volume_type": "iscsi", "data": {IS}}}"#);
        assert!(matches!(
            VolumeProperties::from_json(&ci, None),
            Ok(VolumeProperties::Iscsi(_))
        ));
        let e = VolumeProperties::from_json(&ci, Some(Protocol::Nvmeof)).unwrap_err();
        assert_eq!(e.field(), Some("driver_volume_type"));
        let ci = format!(r#"{{"driver_volume_type": "iser", "data": {IS}}}"#);
        assert!(matches!(
            VolumeProperties::from_json(&ci, None),
            Ok(VolumeProperties::Iscsi(p)) if p.iser
        ));
        let ci = format!(r#"{{"driver_volume_type": "rbd", "data": {IS}}}"#);
        assert_eq!(
            VolumeProperties::from_json(&ci, None).unwrap_err().field(),
            Some("driver_volume_type")
        );
    }

    #[test]
    fn bare_properties_by_their_keys_or_the_flag() {
        assert!(matches!(
            VolumeProperties::from_json(NV, None),
            Ok(VolumeProperties::Nvmeof(_))
        ));
        assert!(matches!(
            VolumeProperties::from_json(IS, None),
            Ok(VolumeProperties::Iscsi(_))
        ));
        // The flag wins over the guess: iSCSI properties read as NVMe-oF lack its fields.
        let e = VolumeProperties::from_json(IS, Some(Protocol::Nvmeof)).unwrap_err();
        assert_eq!(e.field(), Some("target_nqn"));
    }
}
