//! This host's iSCSI initiator name.

use crate::error::Result;
use crate::host::Host;

/// This host's initiator name (`InitiatorName=` in `initiatorname.iscsi`), if set.
pub fn initiator_name(host: &Host) -> Result<Option<String>> {
    Ok(host
        .read_attr_opt(&host.iscsi_conf("initiatorname.iscsi"))?
        .and_then(|text| {
            text.lines().find_map(|l| {
                let l = l.trim();
                (!l.starts_with('#'))
                    .then(|| {
                        l.strip_prefix("InitiatorName=")
                            .map(|v| v.trim().to_string())
                    })
                    .flatten()
            })
        })
        .filter(|v| !v.is_empty()))
}
