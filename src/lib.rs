//! brick attaches and detaches network block volumes (iSCSI, single path and dm-multipath) on a
//! Linux host, without losing data and without leaving stale devices behind.
//!
//! Every operation takes a [`host::Host`]: the sysfs and /dev roots, the command runner, the
//! kernel operations and the clock. [`host::Host::real`] is this machine; tests build one on a
//! temporary directory with `testing::FakeHost` (the `testing` feature).

pub mod connector;
pub mod error;
pub mod host;
pub mod iscsi;
pub mod multipath;
pub mod openers;
mod par;
pub mod props;
pub mod report;
pub mod retry;
pub mod scsi;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod tuning;
pub mod types;

pub use error::{Error, ErrorKind, Result};
pub use iscsi::{
    connect_volume, disconnect_plan, disconnect_volume, ConnectOptions, Connected,
    DisconnectOptions,
};
pub use props::{ConnectionProperties, DeviceInfo};
pub use report::{DisconnectPlan, DisconnectReport, Failure, Outcome, Thing, Untouched};
pub use tuning::Tuning;
