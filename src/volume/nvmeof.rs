//! NVMe-oF behind the seam: `crate::nvmeof`'s steps with the settings' NVMe tuning, the
//! caller's choices over it.

use super::{ConnectOptions, Connected, Transport};
use crate::config::Settings;
use crate::device_info::DeviceInfo;
use crate::error::Result;
use crate::host::Host;
use crate::nvmeof::{NvmeProperties, NvmeTuning};
use crate::report::{DisconnectOptions, DisconnectPlan, DisconnectReport};
use crate::types::Bytes;

/// The settings' NVMe tuning with the caller's choices over it.
fn tuning(base: &NvmeTuning, opts: &ConnectOptions) -> NvmeTuning {
    NvmeTuning {
        ctrl_loss_tmo: opts.ctrl_loss_tmo.map_or(base.ctrl_loss_tmo, |c| c.limit()),
        reconnect_delay: opts.reconnect_delay.unwrap_or(base.reconnect_delay),
        fast_io_fail_tmo: opts.fast_io_fail_tmo.or(base.fast_io_fail_tmo),
        multipath: opts.multipath.or(base.multipath),
        ..base.clone()
    }
}

impl Transport for NvmeProperties {
    fn label(&self) -> String {
        NvmeProperties::label(self)
    }

    fn connect(
        &self,
        host: &Host,
        opts: &ConnectOptions,
        settings: &Settings,
    ) -> Result<Connected> {
        let c = crate::nvmeof::connect_volume(host, self, &tuning(&settings.nvme, opts))?;
        Ok(Connected {
            device_info: c.device_info,
            paths: c.controllers,
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
        crate::nvmeof::disconnect_volume(host, self, info, opts, &settings.nvme)
    }

    fn disconnect_plan(&self, host: &Host, info: Option<&DeviceInfo>) -> Result<DisconnectPlan> {
        crate::nvmeof::disconnect_plan(host, self, info)
    }

    /// NVMe-oF finds the volume by its namespace: device_info adds nothing.
    fn extend(&self, host: &Host, _: Option<&DeviceInfo>, settings: &Settings) -> Result<Bytes> {
        crate::nvmeof::extend_volume(host, self, &settings.nvme)
    }

    fn paths(&self, host: &Host, _: Option<&DeviceInfo>) -> Result<Vec<String>> {
        crate::nvmeof::volume_paths(host, self)
    }
}
