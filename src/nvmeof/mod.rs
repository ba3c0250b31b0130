//! NVMe over Fabrics (TCP; RDMA where the kernel has it): os-brick's `nvmeof` connector, with the
//! promises of the iSCSI one. Controllers are made in-process through `/dev/nvme-fabrics`, found
//! and deleted through sysfs; no `nvme` process runs.
//!
//! - `props`: os-brick's four property formats, checked field by field;
//! - `identity`: the host NQN and host ID (`/etc/nvme`);
//! - `sysfs`: subsystems, controllers and namespaces as the kernel shows them;
//! - `connect`, `disconnect`, `volume` (extend, paths, inspect).

pub(crate) mod connect;
pub(crate) mod disconnect;
pub(crate) mod identity;
pub(crate) mod props;
pub(crate) mod raid;
pub(crate) mod sysfs;
pub(crate) mod volume;

use std::time::Duration;

pub use connect::{connect_volume, NvmeConnected};
pub use disconnect::{disconnect_plan, disconnect_volume};
pub use identity::{host_identity, HostIdentity};
pub use props::{Nqn, NvmePortal, NvmeProperties, NvmeTarget, Transport, Uuid};
pub use sysfs::{Controller, Namespace, Subsystem};
pub use volume::{extend_volume, inspect, paths_of, volume_paths};

/// Deadlines and controller settings of NVMe-oF connects and disconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeTuning {
    /// How long the kernel keeps reconnecting a controller whose portal is gone before it
    /// deletes it (`ctrl_loss_tmo`). Bounded, unlike os-brick's `-l -1`: a dead portal does
    /// not keep a controller for ever. I/O queued on a volume with every path down fails when
    /// the last one is deleted.
    pub ctrl_loss_tmo: Duration,
    /// The pause between two reconnect attempts (`reconnect_delay`).
    pub reconnect_delay: Duration,
    /// When set, I/O on a reconnecting controller fails after this long (`fast_io_fail_tmo`)
    /// instead of waiting for the reconnect.
    pub fast_io_fail_tmo: Option<Duration>,
    /// Use native multipath when the kernel has it (the default); false: one path only.
    pub multipath: Option<bool>,
    /// Deadline of one connect request (the write to `/dev/nvme-fabrics`).
    pub connect_timeout: Duration,
    /// How long to wait for a reconnecting controller to come back live.
    pub live_deadline: Duration,
    /// How long to wait for the namespace to show after the controllers are live.
    pub namespace_deadline: Duration,
    /// Once the head shows, how long to wait for its path under every live controller.
    pub paths_grace: Duration,
    /// Deadline of a flush of the namespace (write-back, cache flush, BLKFLSBUF).
    pub flush_timeout: Duration,
    /// Deadline of a write to `delete_controller` or `rescan_controller`.
    pub delete_timeout: Duration,
    /// How long to wait for the kernel to drop deleted controllers and their namespaces.
    pub removal_deadline: Duration,
    /// How long an extend waits for the new size to show after the rescan.
    pub resize_deadline: Duration,
}

impl Default for NvmeTuning {
    fn default() -> Self {
        NvmeTuning {
            ctrl_loss_tmo: Duration::from_secs(600),
            reconnect_delay: Duration::from_secs(5),
            fast_io_fail_tmo: None,
            multipath: None,
            connect_timeout: Duration::from_secs(30),
            live_deadline: Duration::from_secs(20),
            namespace_deadline: Duration::from_secs(20),
            paths_grace: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(20),
            delete_timeout: Duration::from_secs(30),
            removal_deadline: Duration::from_secs(30),
            resize_deadline: Duration::from_secs(5),
        }
    }
}

/// The host-wide lock of subsystem `nqn`: connect holds it from the first controller to the
/// namespace (or the undo); disconnect holds it while it decides which controllers go and
/// deletes them. So a controller another attach just made, whose namespace has not shown yet,
/// is never taken for an unused one.
pub(crate) fn lock_name(nqn: &Nqn) -> String {
    format!("nvme-{nqn}")
}

#[cfg(test)]
mod tests;
