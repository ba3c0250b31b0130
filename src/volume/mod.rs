//! The transport seam: one volume lifecycle for every transport, and the one dispatch the
//! command line, `brick request` (the Python package) and the bench go through.
//!
//! - [`VolumeProperties`] is the parsed volume, one variant per transport ([`Protocol`] names
//!   them): `driver_volume_type`, the caller's protocol or the properties' keys pick it.
//! - `Transport` is the steps every transport offers (connect, disconnect, its dry run,
//!   extend, paths), with the same arguments and results for each; `iscsi.rs` and `nvmeof.rs`
//!   here implement it over `crate::iscsi` and `crate::nvmeof`, which know nothing of it.
//! - The functions of this module (re-exported at the crate's root) check the caller's
//!   [`ConnectOptions`] against the volume's transport, then run the step of that transport.
//!
//! A new transport (Fibre Channel): its folder `src/fc/`, one variant of [`VolumeProperties`]
//! and [`Protocol`], a `fc.rs` here implementing `Transport`; the compiler then lists every
//! `match` that needs its arm.

mod iscsi;
mod nvmeof;
mod options;
mod props;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::config::Settings;
use crate::device_info::DeviceInfo;
use crate::error::{PathFailure, Result};
use crate::host::Host;
use crate::report::{DisconnectOptions, DisconnectPlan, DisconnectReport};
use crate::types::Bytes;

pub use options::{ConnectOptions, CtrlLossTmo};
pub use props::{Protocol, UnknownProtocol, VolumeProperties};

/// The steps of a volume's life, as every transport offers them. Each transport's own
/// functions keep their own arguments (its properties, its tuning); its implementation here
/// takes the caller's choices and brick's settings as they come and gives the common results.
trait Transport {
    /// The volume in messages (its target and LUN or namespace).
    fn label(&self) -> String;

    /// Attaches the volume (the options were checked against the transport).
    fn connect(&self, host: &Host, opts: &ConnectOptions, settings: &Settings)
        -> Result<Connected>;

    /// Detaches the volume.
    fn disconnect(
        &self,
        host: &Host,
        info: Option<&DeviceInfo>,
        opts: DisconnectOptions,
        settings: &Settings,
    ) -> Result<DisconnectReport>;

    /// What [`Transport::disconnect`] would do now; changes nothing.
    fn disconnect_plan(&self, host: &Host, info: Option<&DeviceInfo>) -> Result<DisconnectPlan>;

    /// Makes the host see the volume's new size; gives it.
    fn extend(&self, host: &Host, info: Option<&DeviceInfo>, settings: &Settings) -> Result<Bytes>;

    /// The volume's block devices on this host (the one to use first).
    fn paths(&self, host: &Host, info: Option<&DeviceInfo>) -> Result<Vec<String>>;
}

impl VolumeProperties {
    /// The transport of this volume: the one `match` the steps are dispatched through.
    fn transport(&self) -> &dyn Transport {
        match self {
            VolumeProperties::Iscsi(p) => p,
            VolumeProperties::Nvmeof(p) => p,
        }
    }

    /// The volume in messages: its target and LUN (iSCSI) or namespace (NVMe-oF).
    pub fn label(&self) -> String {
        self.transport().label()
    }
}

/// A connected volume, whatever its transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connected {
    /// What os-brick's `connect_volume` returns; give it back to disconnect.
    pub device_info: DeviceInfo,
    /// The volume's paths: its disks (`sdX`, iSCSI) or the controllers that serve it (`nvmeN`,
    /// NVMe-oF).
    pub paths: Vec<String>,
    /// The paths that did not attach, with the reason.
    pub failed_paths: Vec<PathFailure>,
}

/// Attaches the volume `props` names, with the caller's choices `opts` and the tunings of
/// `settings` (its lock folder is the host's: see [`Settings::apply`]).
///
/// # Errors
/// [`crate::Error::InvalidInput`] naming the option (a field of [`ConnectOptions`]) when one
/// that the volume's transport does not take was given, before anything is done; else the
/// transport's errors (`brick::iscsi::connect_volume`, `brick::nvmeof::connect_volume`).
pub fn connect_volume(
    host: &Host,
    props: &VolumeProperties,
    opts: &ConnectOptions,
    settings: &Settings,
) -> Result<Connected> {
    opts.refuse_other_transport(props.protocol())?;
    props.transport().connect(host, opts, settings)
}

/// Detaches the volume `props` names: flushes and removes its devices, then logs out of or
/// disconnects from what no other volume uses. `device_info` (what connect gave) pins its
/// identity.
///
/// # Errors
/// The transport's (`brick::iscsi::disconnect_volume`, `brick::nvmeof::disconnect_volume`):
/// [`crate::Error::Disconnect`] with the report when something was refused or left.
pub fn disconnect_volume(
    host: &Host,
    props: &VolumeProperties,
    device_info: Option<&DeviceInfo>,
    opts: DisconnectOptions,
    settings: &Settings,
) -> Result<DisconnectReport> {
    props
        .transport()
        .disconnect(host, device_info, opts, settings)
}

/// What [`disconnect_volume`] would do now (`brick disconnect --dry-run`), from the code the
/// disconnect runs; changes nothing.
///
/// # Errors
/// As [`disconnect_volume`] before it changes anything.
pub fn disconnect_plan(
    host: &Host,
    props: &VolumeProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<DisconnectPlan> {
    props.transport().disconnect_plan(host, device_info)
}

/// Makes the host see the volume's new size after it grew on the target; gives it.
///
/// # Errors
/// The transport's (`brick::iscsi::extend_volume`, `brick::nvmeof::extend_volume`).
pub fn extend_volume(
    host: &Host,
    props: &VolumeProperties,
    device_info: Option<&DeviceInfo>,
    settings: &Settings,
) -> Result<Bytes> {
    props.transport().extend(host, device_info, settings)
}

/// The volume's block devices on this host, the one to use first (iSCSI: the multipath map,
/// then the disks; NVMe-oF: the namespace's head or the md array). Reads sysfs only.
///
/// # Errors
/// The transport's (`brick::iscsi::volume_paths`, `brick::nvmeof::volume_paths`).
pub fn volume_paths(
    host: &Host,
    props: &VolumeProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<Vec<String>> {
    props.transport().paths(host, device_info)
}

/// What `brick inspect` shows: each transport's state on this host, for the transports asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inspection {
    /// Every iSCSI session with its disks and maps (`None`: not asked).
    pub iscsi: Option<Vec<crate::iscsi::topology::SessionTopology>>,
    /// Every NVMe subsystem with its controllers and namespaces (`None`: not asked).
    pub nvmeof: Option<Vec<crate::nvmeof::Subsystem>>,
}

/// Reads this host's state of the transport `only`, or of every transport. Changes nothing.
///
/// # Errors
/// A sysfs file that cannot be read ([`crate::Error::Io`]).
pub fn inspect(host: &Host, only: Option<Protocol>) -> Result<Inspection> {
    let wants = |p: Protocol| only.is_none_or(|o| o == p);
    Ok(Inspection {
        iscsi: wants(Protocol::Iscsi)
            .then(|| crate::iscsi::inspect(host))
            .transpose()?,
        nvmeof: wants(Protocol::Nvmeof)
            .then(|| crate::nvmeof::inspect(host))
            .transpose()?,
    })
}
