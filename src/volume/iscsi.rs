//! iSCSI behind the seam: `crate::iscsi`'s steps with the caller's choices and the settings'
//! iSCSI tuning.

use super::{ConnectOptions, Connected, Transport};
use crate::config::Settings;
use crate::device_info::DeviceInfo;
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::props::ConnectionProperties;
use crate::report::{DisconnectOptions, DisconnectPlan, DisconnectReport};
use crate::types::Bytes;

impl Transport for ConnectionProperties {
    fn label(&self) -> String {
        ConnectionProperties::label(self)
    }

    fn connect(
        &self,
        host: &Host,
        opts: &ConnectOptions,
        settings: &Settings,
    ) -> Result<Connected> {
        // Without a choice: multipath when the properties list several portals (os-brick's
        // use_multipath comes from the caller; a lone target_portal is one path).
        let multipath = opts.multipath.unwrap_or(self.targets().len() > 1);
        let iscsi = crate::iscsi::ConnectOptions {
            multipath,
            iface: opts.iface.clone(),
        };
        let c = crate::iscsi::connect_volume(host, self, iscsi, &settings.tuning)?;
        Ok(Connected {
            device_info: c.device_info,
            paths: c.paths,
            failed_paths: c.failed_paths,
        })
    }

    fn disconnect(
        &self,
        host: &Host,
        info: Option<&DeviceInfo>,
        opts: DisconnectOptions,
        settings: &Settings,
    ) -> Result<DisconnectReport> {
        crate::iscsi::disconnect_volume(host, self, info, opts, &settings.tuning)
    }

    fn disconnect_plan(&self, host: &Host, info: Option<&DeviceInfo>) -> Result<DisconnectPlan> {
        crate::iscsi::disconnect_plan(host, self, info)
    }

    fn extend(&self, host: &Host, info: Option<&DeviceInfo>, settings: &Settings) -> Result<Bytes> {
        crate::iscsi::volume::extend_volume(host, self, info, &settings.tuning)
    }

    fn paths(&self, host: &Host, info: Option<&DeviceInfo>) -> Result<Vec<String>> {
        crate::iscsi::volume::volume_paths(host, self, info)
    }
}
