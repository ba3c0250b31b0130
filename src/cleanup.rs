//! `brick cleanup` for every transport: each transport finds (and, with `apply`, removes) what
//! no volume of its own needs any more, and the reports are merged into one. The NVMe-oF part
//! (`crate::nvmeof::cleanup`: md arrays with no member left, controllers with no namespace)
//! runs first, since an array sits above the namespaces; then the iSCSI part
//! (`crate::iscsi::cleanup`: maps, disks, sessions, node records, wwids). A dm-multipath map
//! with no path left is found by the iSCSI part whatever its paths were (SCSI disks or NVMe
//! namespaces): the map layer is shared.

pub use crate::cleanup_report::{CleanupOptions, CleanupReport, Leftover, NvmeControllerSeen};
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::tuning::Tuning;
use crate::nvmeof::NvmeTuning;

/// Finds what no volume needs any more on `host`, of every transport, and, with `opts.apply`,
/// removes it; one report for all.
///
/// # Errors
/// [`crate::Error::Io`] when sysfs, the node records or the wwids file cannot be read.
/// Something `apply` left in place is no error: the report says what and why
/// ([`CleanupReport::clean`]).
pub fn cleanup(host: &Host, opts: CleanupOptions, tuning: &Tuning) -> Result<CleanupReport> {
    cleanup_with(host, opts, tuning, &NvmeTuning::default())
}

/// [`cleanup`] with NVMe-oF's own deadlines (`delete_timeout`, `removal_deadline`).
///
/// # Errors
/// As [`cleanup`].
pub fn cleanup_with(
    host: &Host,
    opts: CleanupOptions,
    tuning: &Tuning,
    nvme: &NvmeTuning,
) -> Result<CleanupReport> {
    let mut report = crate::nvmeof::cleanup::cleanup(host, opts, nvme)?;
    report.absorb(crate::iscsi::cleanup::cleanup(host, opts, tuning)?);
    Ok(report)
}
