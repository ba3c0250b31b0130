//! Flushing a block device before it goes, for every transport: its page cache written back and
//! dropped (BLKFLSBUF) and, where the target may hold a write-back cache, that cache flushed too;
//! all in-process through the host's kernel, retried with a backoff, never after a timeout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::host::{Host, KernelError};
use crate::retry::{retry, Backoff, Retried};

/// How a device flush failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot flush {device}: {reason}")]
pub struct FlushError {
    /// The device node that did not flush.
    pub device: PathBuf,
    /// What the kernel said, or the deadline.
    pub reason: KernelError,
}

/// How deep a flush goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// Write-back and BLKFLSBUF only. For a SCSI path: a cache flush would block on a path that
    /// is down even when that path holds nothing of ours.
    PageCache,
    /// Write-back, a cache flush (fsync) so that what the target holds in a write-back cache is
    /// stable, then BLKFLSBUF. For a multipath map, an NVMe head, an md array.
    Stable,
}

/// Flushes the devices `devices` names (kernel names, re-read at each attempt), in order, as one
/// attempt of at most `timeout` in all. An error the kernel returns makes the whole attempt run
/// again with `backoff`; one that timed out does not, since it is still blocked in the kernel.
/// The log names the attempt after `name`, the device the caller flushes.
pub(crate) fn flush_devices(
    host: &Host,
    name: &str,
    devices: impl Fn() -> Vec<String>,
    depth: Depth,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<(), Retried<FlushError>> {
    retry(
        host.time(),
        backoff,
        &format!("flush {}", host.dev_node(name).display()),
        |e: &FlushError| !matches!(e.reason, KernelError::TimedOut(_)),
        || {
            let deadline = Instant::now() + timeout;
            devices()
                .iter()
                .try_for_each(|dev| flush_one(host, dev, depth, deadline, timeout))
        },
    )
}

/// One device of an attempt that ends at `deadline` (`timeout` after it began).
fn flush_one(
    host: &Host,
    dev: &str,
    depth: Depth,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), FlushError> {
    let device = host.dev_node(dev);
    let left = deadline.saturating_duration_since(Instant::now());
    let done = if left.is_zero() {
        Err(KernelError::TimedOut(timeout))
    } else {
        match depth {
            Depth::PageCache => host.kern().flush_buffers(&device, left),
            Depth::Stable => host.kern().flush_and_sync(&device, left),
        }
    };
    done.map_err(|reason| FlushError { device, reason })
}
