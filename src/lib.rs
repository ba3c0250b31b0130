#![warn(missing_docs)]
//! brick attaches and detaches network block volumes (iSCSI, single path and dm-multipath; NVMe
//! over Fabrics, see [`nvmeof`]) on a Linux host, without losing data and without leaving stale devices behind.
//!
//! Every operation takes a [`host::Host`]: the sysfs and /dev roots, the command runner, the
//! kernel operations and the clock. [`host::Host::real`] is this machine; tests build one on a
//! temporary directory with `testing::FakeHost` (the `testing` feature).
//!
//! The operations, all at the crate's root and the same for every transport: [`connect_volume`],
//! [`disconnect_volume`] (and its dry run, [`disconnect_plan`]), [`extend_volume`],
//! [`volume_paths`], [`inspect`] and [`connector_properties`]. They take os-brick's connection
//! properties of either transport ([`VolumeProperties::from_json`]) and give os-brick's
//! device_info ([`DeviceInfo`]); an option of another transport than the volume's is refused,
//! naming it. Each transport's own functions, with its own properties and tuning, are in
//! [`iscsi`] and [`nvmeof`].

mod block;
mod cleanup;
mod cleanup_report;
pub mod config;
mod connector;
mod device_info;
mod error;
pub mod host;
pub mod iscsi;
pub mod nvmeof;
mod par;
pub mod report;
pub mod request;
mod retry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod time;
pub mod types;
mod volume;

pub use block::multipath::DmMap;
pub use block::scsi::ScsiDisk;
pub use cleanup::{
    cleanup, cleanup_with, CleanupOptions, CleanupReport, Leftover, NvmeControllerSeen,
};
pub use connector::{connector_properties, ConnectorProperties};
pub use device_info::DeviceInfo;
pub use error::{Error, ErrorKind, NvmeNotConnected, PathError, PathFailure, PathTarget, Result};
pub use iscsi::props::{Chap, ConnectionProperties, Target};
pub use iscsi::topology::{DiskTopology, SessionTopology};
pub use iscsi::tuning::Tuning;
pub use report::{
    DisconnectOptions, DisconnectPlan, DisconnectReport, Failure, Outcome, Thing, Untouched,
};
pub use retry::Backoff;
pub use time::PROGRESS_TARGET;
pub use volume::{
    connect_volume, disconnect_plan, disconnect_volume, extend_volume, inspect, volume_paths,
    ConnectOptions, Connected, CtrlLossTmo, Inspection, Protocol, UnknownProtocol,
    VolumeProperties,
};
