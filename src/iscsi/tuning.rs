//! Deadlines and retry policies of connect and disconnect, in one place.

use std::time::Duration;

use crate::retry::Backoff;

/// Every deadline and retry policy brick uses. The defaults suit a flaky network: every wait is
/// bounded, and a dead portal costs seconds, not minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Deadline of each iscsiadm call that does not log in or discover.
    pub command_timeout: Duration,
    /// How long the write-back of a multipath map may take; with every path down it never ends.
    pub map_sync_timeout: Duration,
    /// Deadline of each attempt to flush a path device, and the retries of failed attempts.
    pub path_flush_timeout: Duration,
    /// The retries of a path flush that failed.
    pub path_flush_backoff: Backoff,
    /// Deadline of each removal of a multipath map (device-mapper `DM_DEV_REMOVE`), and the
    /// retries of one the kernel refuses as in use.
    pub map_flush_timeout: Duration,
    /// The retries of a map removal the kernel refused as in use.
    pub map_flush_backoff: Backoff,
    /// How long a device's `delete` may block, and how long to wait for the kernel to drop it.
    pub delete_timeout: Duration,
    /// How long to wait for the kernel to drop deleted devices.
    pub removal_deadline: Duration,
    /// Login bounds written into each node record (`node.session.initial_login_retry_max`,
    /// `node.conn[0].timeo.login_timeout`): iscsid itself gives up on a dead portal, so no
    /// session appears later by itself.
    pub login_retries: u32,
    /// The login timeout written into each node record.
    pub login_timeout: Duration,
    /// Deadline of the `iscsiadm --login` process (above what the bounds above allow).
    pub login_deadline: Duration,
    /// Deadline of a sendtargets discovery.
    pub discovery_timeout: Duration,
    /// How long a LUN scan may block, and how long to wait for the disk to show (scanning again
    /// while the target does not offer the LUN).
    pub scan_timeout: Duration,
    /// How long to wait for the LUN's disk, from the session on.
    pub device_deadline: Duration,
    /// How long to wait for the multipath map, and then for every path to join it.
    pub map_deadline: Duration,
    /// How long, once the map shows, to wait for every path to join it.
    pub map_paths_grace: Duration,
    /// Deadline of cleanup's question to multipathd (which paths it calls active); unanswered,
    /// sysfs alone decides which paths are dead.
    pub multipathd_query_timeout: Duration,
    /// How long to wait for multipathd to build the map from what udev tells it (well inside
    /// `map_deadline`); then brick builds it itself, with the WWID it read from sysfs.
    pub map_udev_wait: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            command_timeout: Duration::from_secs(30),
            map_sync_timeout: Duration::from_secs(20),
            path_flush_timeout: Duration::from_secs(10),
            path_flush_backoff: Backoff {
                tries: 4,
                first: Duration::from_millis(250),
                factor: 2,
                max_delay: Duration::from_secs(2),
            },
            map_flush_timeout: Duration::from_secs(30),
            map_flush_backoff: Backoff {
                tries: 4,
                first: Duration::from_millis(500),
                factor: 2,
                max_delay: Duration::from_secs(4),
            },
            delete_timeout: Duration::from_secs(20),
            removal_deadline: Duration::from_secs(30),
            login_retries: 1,
            login_timeout: Duration::from_secs(5),
            login_deadline: Duration::from_secs(30),
            discovery_timeout: Duration::from_secs(15),
            scan_timeout: Duration::from_secs(20),
            device_deadline: Duration::from_secs(20),
            map_deadline: Duration::from_secs(20),
            map_paths_grace: Duration::from_secs(5),
            multipathd_query_timeout: Duration::from_secs(5),
            map_udev_wait: Duration::from_secs(6),
        }
    }
}
