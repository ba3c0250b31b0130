//! Kernel operations done in-process: flushing a block device's buffers (write-back + BLKFLSBUF) and
//! writing sysfs attributes that can block (`device/delete`, `device/state`).
//!
//! Both can sit in the kernel for minutes when every path of a device is down: a flush waits for
//! writeback that is queued, a SCSI delete sends SYNCHRONIZE CACHE. A thread stuck there would keep
//! the whole process from exiting, so each operation runs in a forked child (no exec: it makes only
//! raw system calls) that the caller waits for until a deadline. A child that misses it is left to
//! finish on its own; its work is never undone, and the caller treats it as not done.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// `BLKFLSBUF` from linux/fs.h: `_IO(0x12, 97)`.
const BLKFLSBUF: libc::c_ulong = 0x1261;

/// Why a kernel operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("{0}")]
    Os(String),
    #[error("still blocked in the kernel after {0:?} (it goes on in the background)")]
    TimedOut(Duration),
}

impl KernelError {
    fn from_errno(errno: i32) -> KernelError {
        KernelError::Os(io::Error::from_raw_os_error(errno).to_string())
    }
}

/// In-process kernel operations on block devices and sysfs. The real one is [`RealKernel`]; tests
/// use one that acts on a fake tree.
pub trait Kernel: Send + Sync {
    /// Writes back the dirty pages of the block device at `dev` and reports any write error, then
    /// drops its clean cache (BLKFLSBUF).
    ///
    /// The write-back is `sync_file_range` rather than `fsync`: fsync on a block device also sends a
    /// cache flush command to the device, which blocks on a path that is down even when the path
    /// holds no data of ours; BLKFLSBUF alone ignores write errors (Linux 6.1).
    fn flush_buffers(&self, dev: &Path, timeout: Duration) -> Result<(), KernelError>;

    /// Writes `value` to the sysfs attribute at `path`.
    fn write_attr(&self, path: &Path, value: &str, timeout: Duration) -> Result<(), KernelError>;
}

/// The running kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernel;

enum Op<'a> {
    Flush,
    Write(&'a [u8]),
}

impl Kernel for RealKernel {
    fn flush_buffers(&self, dev: &Path, timeout: Duration) -> Result<(), KernelError> {
        in_child(dev, Op::Flush, timeout)
    }

    fn write_attr(&self, path: &Path, value: &str, timeout: Duration) -> Result<(), KernelError> {
        in_child(path, Op::Write(value.as_bytes()), timeout)
    }
}

fn in_child(path: &Path, op: Op<'_>, timeout: Duration) -> Result<(), KernelError> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| KernelError::Os("path holds a NUL byte".into()))?;
    // SAFETY: the child only makes async-signal-safe system calls on memory prepared before the
    // fork (the path and the value), then leaves with _exit; it never returns into Rust code.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = unsafe { child_op(&cpath, &op) };
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Err(KernelError::Os(format!("fork failed: {e}"))),
    };
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(500);
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(WaitStatus::Exited(_, errno)) => return Err(KernelError::from_errno(errno)),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Err(KernelError::Os(format!("helper process killed by {sig}")))
            }
            Ok(_) => {}
            Err(e) => return Err(KernelError::Os(format!("waiting for helper process: {e}"))),
        }
        if Instant::now() >= deadline {
            abandon(child);
            return Err(KernelError::TimedOut(timeout));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Leaves a child blocked in the kernel to finish on its own. SIGKILL takes effect when the system
/// call returns; a thread reaps it then (a thread in `waitpid` does not keep the process alive).
fn abandon(child: Pid) {
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    std::thread::spawn(move || {
        let _ = waitpid(child, None);
    });
}

/// Runs in the forked child. Returns 0 or the errno of the first failing call.
unsafe fn child_op(path: &CString, op: &Op<'_>) -> i32 {
    // SAFETY (whole body): raw system calls on valid pointers; no allocation, no locks.
    unsafe {
        let errno = || *libc::__errno_location();
        let flags = match op {
            Op::Flush => libc::O_RDONLY,
            Op::Write(_) => libc::O_WRONLY,
        } | libc::O_CLOEXEC;
        let fd = libc::open(path.as_ptr(), flags);
        if fd < 0 {
            return errno();
        }
        let rc = match op {
            Op::Flush => {
                let all = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                let failed = libc::sync_file_range(fd, 0, 0, all) != 0
                    || libc::ioctl(fd, BLKFLSBUF as _) != 0;
                if failed {
                    errno()
                } else {
                    0
                }
            }
            Op::Write(bytes) => {
                let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
                if n < 0 {
                    errno()
                } else {
                    0
                }
            }
        };
        if libc::close(fd) != 0 && rc == 0 {
            return errno();
        }
        rc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_attr_writes_through_a_child() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state");
        std::fs::write(&f, "running").unwrap();
        RealKernel
            .write_attr(&f, "offline", Duration::from_secs(5))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "offline");
    }

    #[test]
    fn errors_carry_the_os_reason() {
        let e = RealKernel
            .write_attr(
                Path::new("/nonexistent/brick/delete"),
                "1",
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert_eq!(e, KernelError::from_errno(libc::ENOENT));
    }

    #[test]
    fn flush_of_a_file_that_is_not_a_block_device_fails_with_the_ioctl_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sdx");
        std::fs::write(&f, "data").unwrap();
        let e = RealKernel
            .flush_buffers(&f, Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(e, KernelError::from_errno(libc::ENOTTY));
    }

    #[test]
    fn blocked_operation_times_out_and_is_abandoned() {
        // Opening a FIFO for writing blocks until a reader comes: a stand-in for a stuck delete.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let t = Instant::now();
        let e = RealKernel
            .write_attr(&fifo, "1", Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(e, KernelError::TimedOut(Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
