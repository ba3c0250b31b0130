//! Which transport a volume's properties are for: a whole `connection_info` says it in
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

impl Protocol {
    /// The protocol's name in messages: `iSCSI`, `NVMe-oF`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Iscsi => "iSCSI",
            Protocol::Nvmeof => "NVMe-oF",
        }
    }
}

/// A protocol name brick does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a protocol brick knows (iscsi, iser, nvmeof)")]
pub struct UnknownProtocol(pub String);

impl std::str::FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> std::result::Result<Protocol, UnknownProtocol> {
        match s.to_ascii_lowercase().as_str() {
            // iSER is iSCSI over RDMA: the iSCSI connector, on the iser interface.
            "iscsi" | "iser" => Ok(Protocol::Iscsi),
            "nvmeof" | "nvme" | "nvme-of" | "nvme-tcp" => Ok(Protocol::Nvmeof),
            _ => Err(UnknownProtocol(s.to_string())),
        }
    }
}

/// Connection properties of either protocol: the one parse every entry (command line,
/// `brick request`, the Python package, the bench) goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeProperties {
    /// An iSCSI volume.
    Iscsi(ConnectionProperties),
    /// An NVMe-oF volume.
    Nvmeof(NvmeProperties),
}

impl VolumeProperties {
    /// Parses properties or a whole `connection_info` (JSON text); see [`Self::from_value`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn from_json(text: &str, protocol: Option<Protocol>) -> Result<VolumeProperties> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::invalid("JSON", e))?;
        VolumeProperties::from_value(&v, protocol)
    }

    /// Parses properties or a whole `connection_info`, for `protocol` when the caller names one
    /// (a `driver_volume_type` that disagrees is refused).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn from_value(v: &Value, protocol: Option<Protocol>) -> Result<VolumeProperties> {
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
            Protocol::Iscsi => VolumeProperties::Iscsi(ConnectionProperties::from_value(v)?),
            Protocol::Nvmeof => VolumeProperties::Nvmeof(NvmeProperties::from_value(v)?),
        })
    }

    /// The volume's protocol.
    pub fn protocol(&self) -> Protocol {
        match self {
            VolumeProperties::Iscsi(_) => Protocol::Iscsi,
            VolumeProperties::Nvmeof(_) => Protocol::Nvmeof,
        }
    }
}
