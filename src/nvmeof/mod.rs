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

use crate::block::flush::{flush_devices, Depth};
use crate::host::{Host, KernelError};
use crate::retry::{Backoff, Retried};

pub use connect::NvmeConnected;
pub use identity::{host_identity, HostIdentity};
pub use props::{Nqn, NvmePortal, NvmeProperties, NvmeTarget, Transport, Uuid};
pub use sysfs::{Controller, ControllerState, ControllerTransport, Namespace, Subsystem};
pub use volume::{extend_volume, inspect, paths_of, volume_paths};

/// Attaches the volume `props` names: controllers to its portals, then its namespace.
///
/// With native NVMe multipath (the kernel's default), every portal gets a controller at once
/// and the device is the namespace's head (`nvmeSnX`) over all of them; with it off (or
/// `tuning.multipath` false), the portals are tried in turn until one gives a controller. The
/// device is the head whenever the kernel's native multipath is on, also over one controller;
/// with it off, the controller's own namespace device (`nvmeCnX`).
///
/// With `volume_replicas` and an `alias`, every replica is attached and the volume is their md
/// RAID1 (`/dev/mdN`), assembled or created with `mdadm` (see `raid`).
///
/// # Errors
/// [`crate::Error::InvalidInput`] for properties that name no namespace in a subsystem with several; [`crate::Error::NvmeConnect`] when no controller came up
/// or the namespace did not show before the deadline (the controllers made were deleted).
pub fn connect_volume(
    host: &crate::host::Host,
    props: &NvmeProperties,
    tuning: &NvmeTuning,
) -> crate::error::Result<NvmeConnected> {
    let span = tracing::info_span!("nvme_connect", volume = %props.label());
    let _enter = span.enter();
    if props.alias.is_none() {
        return connect::connect_one(host, props, tuning);
    }
    raid::connect_replicated_volume(host, props, tuning)
}

/// What a disconnect of the NVMe-oF volume would do now (`brick disconnect --dry-run`), from
/// the code the disconnect runs; changes nothing.
///
/// # Errors
/// As [`disconnect_volume`] before it changes anything.
pub fn disconnect_plan(
    host: &crate::host::Host,
    props: &NvmeProperties,
    device_info: Option<&crate::device_info::DeviceInfo>,
) -> crate::error::Result<crate::report::DisconnectPlan> {
    if props.replicated {
        return raid::replicated_plan(host, props);
    }
    disconnect::plan_single(host, props, device_info)
}

/// Detaches the NVMe-oF volume `props` names from this host (see the module's text).
///
/// # Errors
/// [`crate::Error::NotTheVolume`] when the properties name no namespace and the subsystem shows
/// several; [`crate::Error::Disconnect`] with the report when a flush failed or a device of the
/// volume is held or open (outcome `refused`, nothing removed) or something is left (`unfinished`; with `force` and `ignore_errors` the
/// report is returned as `Ok`).
pub fn disconnect_volume(
    host: &crate::host::Host,
    props: &NvmeProperties,
    device_info: Option<&crate::device_info::DeviceInfo>,
    opts: crate::report::DisconnectOptions,
    tuning: &NvmeTuning,
) -> crate::error::Result<crate::report::DisconnectReport> {
    let span = tracing::info_span!("nvme_disconnect", volume = %props.label(), force = opts.force);
    let _enter = span.enter();
    if props.alias.is_some() {
        return raid::disconnect_replicated(host, props, opts, tuning);
    }
    disconnect::disconnect_one(host, props, device_info, opts, tuning)
}

/// Deadlines and controller settings of NVMe-oF connects and disconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeTuning {
    /// How long the kernel keeps reconnecting a controller whose portal is gone before it
    /// deletes it (`ctrl_loss_tmo`); `None` (the default, os-brick's `-l -1`): for ever, so
    /// that I/O queued on a volume with every path down waits for the target however long the
    /// outage lasts, until it comes back or a disconnect decides (`--force` fails it), as
    /// iSCSI's `queue_if_no_path` does. Once the last controller of a volume is deleted, its
    /// queued I/O fails and dirty pages are lost: a bound is a choice to lose data after it.
    /// A dead portal at connect time is bounded by `connect_timeout` all the same: the kernel
    /// makes no controller when the first connect fails, and a failed connect deletes what it
    /// made. At least one second (the kernel takes whole seconds; 0 would give up at once).
    pub ctrl_loss_tmo: Option<Duration>,
    /// The pause between two reconnect attempts (`reconnect_delay`).
    pub reconnect_delay: Duration,
    /// When set, I/O on a reconnecting controller fails after this long (`fast_io_fail_tmo`)
    /// instead of waiting for the reconnect.
    pub fast_io_fail_tmo: Option<Duration>,
    /// Use native multipath when the kernel has it (the default); false: one path only (one
    /// controller; the device is still the head while the kernel's native multipath is on).
    pub multipath: Option<bool>,
    /// Deadline of one connect request (the write to `/dev/nvme-fabrics`).
    pub connect_timeout: Duration,
    /// How long to wait for a reconnecting controller to come back live.
    pub live_deadline: Duration,
    /// How long to wait for the namespace to show after the controllers are live.
    pub namespace_deadline: Duration,
    /// Once the head shows, how long to wait for its path under every live controller.
    pub paths_grace: Duration,
    /// Deadline of each attempt to flush the namespace or array (write-back, cache flush,
    /// BLKFLSBUF).
    pub flush_timeout: Duration,
    /// Attempts at that flush, and the waits between them, for an error the kernel returned;
    /// an attempt that times out is not repeated (it is still in the kernel: every path down).
    pub flush_backoff: Backoff,
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
            ctrl_loss_tmo: None,
            reconnect_delay: Duration::from_secs(5),
            fast_io_fail_tmo: None,
            multipath: None,
            connect_timeout: Duration::from_secs(30),
            live_deadline: Duration::from_secs(20),
            namespace_deadline: Duration::from_secs(20),
            paths_grace: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(20),
            flush_backoff: Backoff {
                tries: 4,
                first: Duration::from_millis(250),
                factor: 2,
                max_delay: Duration::from_secs(2),
            },
            delete_timeout: Duration::from_secs(30),
            removal_deadline: Duration::from_secs(30),
            resize_deadline: Duration::from_secs(5),
        }
    }
}

/// Flushes `/dev/NAME`, a namespace's head or a replicated volume's array: write-back, cache
/// flush and BLKFLSBUF, in a forked child bounded by `flush_timeout`. An error the kernel
/// returns is retried with `flush_backoff` (only the final failure is reported); an attempt
/// that times out is not, since it is still blocked in the kernel.
pub(crate) fn flush(
    host: &Host,
    name: &str,
    tuning: &NvmeTuning,
) -> std::result::Result<(), Retried<KernelError>> {
    let head = || vec![name.to_string()];
    let (backoff, timeout) = (&tuning.flush_backoff, tuning.flush_timeout);
    flush_devices(host, name, head, Depth::Stable, backoff, timeout).map_err(|r| Retried {
        attempts: r.attempts,
        error: r.error.reason,
    })
}

/// The host-wide lock of subsystem `nqn`: connect holds it from the first controller to the
/// namespace (or the undo); disconnect holds it while it decides which controllers go and
/// deletes them. So a controller another attach just made, whose namespace has not shown yet,
/// is never taken for an unused one.
pub(crate) fn lock_name(nqn: &Nqn) -> String {
    format!("nvme-{nqn}")
}
