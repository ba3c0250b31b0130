//! os-brick's `device_info`: what a connect of any transport returns and a disconnect may be
//! given back.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::Wwid;

/// What a connect returns and a disconnect may be given back: os-brick's `device_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `type`: `block`.
    #[serde(rename = "type", default = "block")]
    pub kind: String,
    /// `/dev/dm-N` for a multipath volume, `/dev/sdX` for a single path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The volume's WWN, as multipath names it (`36001405...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scsi_wwn: Option<String>,
    /// The multipath map's name, when the volume has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath_id: Option<String>,
}

fn block() -> String {
    "block".to_string()
}

impl DeviceInfo {
    /// Parses and validates a device_info JSON text.
    pub fn from_json(text: &str) -> Result<DeviceInfo> {
        let info: DeviceInfo =
            serde_json::from_str(text).map_err(|e| Error::invalid("device_info", e))?;
        info.wwn()?;
        info.device_name()?;
        Ok(info)
    }

    /// The WWN the device_info claims for the volume: `scsi_wwn`, else `multipath_id`.
    pub fn wwn(&self) -> Result<Option<Wwid>> {
        for (field, v) in [
            ("device_info.scsi_wwn", &self.scsi_wwn),
            ("device_info.multipath_id", &self.multipath_id),
        ] {
            if let Some(s) = v.as_deref().filter(|s| !s.is_empty()) {
                return s.parse().map(Some).map_err(|e| Error::invalid(field, e));
            }
        }
        Ok(None)
    }

    /// The kernel name of the device in `path` (`sdc`, `dm-3`), if it names one directly under
    /// /dev. Links such as /dev/disk/by-path are not followed: brick does not trust them.
    pub fn device_name(&self) -> Result<Option<String>> {
        let Some(p) = self.path.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let name = p.strip_prefix("/dev/").unwrap_or("");
        let plain =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if plain {
            Ok(Some(name.to_string()))
        } else {
            // A /dev/disk/by-* or /dev/mapper link may be a leftover; it is only ever a hint.
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_info_round_trip_and_checks() {
        let d = DeviceInfo::from_json(r#"{"type":"block","path":"/dev/dm-0","scsi_wwn":"36001405deadbeef00010000000000000","multipath_id":"36001405deadbeef00010000000000000"}"#).unwrap();
        assert_eq!(d.device_name().unwrap().as_deref(), Some("dm-0"));
        assert_eq!(
            d.wwn().unwrap().unwrap().as_str(),
            "36001405deadbeef00010000000000000"
        );
        let by_path = DeviceInfo {
            path: Some("/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-x-lun-1".into()),
            ..Default::default()
        };
        assert_eq!(by_path.device_name().unwrap(), None);
        assert!(DeviceInfo::from_json(r#"{"scsi_wwn":"bad wwn"}"#).is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(DeviceInfo::from_json(&json).unwrap(), d);
    }
}
