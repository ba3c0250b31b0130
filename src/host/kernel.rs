//! Kernel operations done in-process: flushing a block device's buffers (write-back + BLKFLSBUF),
//! writing sysfs attributes that can block (`device/delete`, `device/state`), and device-mapper
//! requests (removing a map, sending a message to its target) through `/dev/mapper/control`,
//! and reading a few blocks of a device (its superblocks and signatures).
//!
//! Each can sit in the kernel for minutes when every path of a device is down: a flush waits for
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

use crate::time::{Pause, Progress};

/// `BLKFLSBUF` from linux/fs.h: `_IO(0x12, 97)`.
const BLKFLSBUF: libc::c_ulong = 0x1261;

/// Why a kernel operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// Anything else, in words (the helper process could not be made, a path with a NUL).
    #[error("{0}")]
    Os(String),
    /// A system call failed with this errno.
    #[error("{}", io::Error::from_raw_os_error(*.0))]
    Errno(i32),
    /// Still blocked in the kernel at the deadline; it goes on in the background.
    #[error("still blocked in the kernel after {0:?} (it goes on in the background)")]
    TimedOut(Duration),
}

impl KernelError {
    /// The error of a system call that failed with `errno`.
    pub fn from_errno(errno: i32) -> KernelError {
        KernelError::Errno(errno)
    }

    /// Whether the device was busy (EBUSY): open, or held by another device.
    pub fn is_busy(&self) -> bool {
        *self == KernelError::Errno(libc::EBUSY)
    }

    /// Whether the device does not exist (ENXIO, ENODEV, ENOENT).
    pub fn is_missing(&self) -> bool {
        matches!(self, KernelError::Errno(e) if [libc::ENXIO, libc::ENODEV, libc::ENOENT].contains(e))
    }
}

/// A device-mapper request on one device, addressed by its uuid (`mpath-WWID` for a multipath
/// map): a name can be given to another map the moment the first one goes, a uuid names one
/// device for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmRequest<'a> {
    /// Removes the device (`DM_DEV_REMOVE`); fails with EBUSY while it is open or held.
    Remove,
    /// Sends a message to the device's target at sector 0 (`DM_TARGET_MSG`), as `dmsetup
    /// message -u UUID 0 MSG` does: `fail_if_no_path` for multipath.
    Message(&'a str),
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

    /// As [`Kernel::flush_buffers`], and between the write-back and BLKFLSBUF, `fsync`, which
    /// also sends a cache flush to the device: data the device holds in a volatile write-back
    /// cache reaches stable storage. For device-mapper maps, where dm sends the flush down a path
    /// that works (a path that is down would block it). A kernel with no such cache (a fake) may
    /// leave the default, the plain flush.
    fn flush_and_sync(&self, dev: &Path, timeout: Duration) -> Result<(), KernelError> {
        self.flush_buffers(dev, timeout)
    }

    /// Writes `value` to the sysfs attribute at `path`.
    fn write_attr(&self, path: &Path, value: &str, timeout: Duration) -> Result<(), KernelError>;

    /// Sends `request` for the device-mapper device whose uuid is `uuid` through the control
    /// device at `control` (`/dev/mapper/control`).
    fn dm(
        &self,
        control: &Path,
        uuid: &str,
        request: DmRequest<'_>,
        timeout: Duration,
    ) -> Result<(), KernelError>;

    /// The device-mapper device whose uuid is `uuid`, as its kernel name (`dm-N`), asked of
    /// the control device at `control` (`DM_DEV_STATUS`): one request, however many devices the
    /// host has. `None` when no device has that uuid.
    fn dm_dev_of_uuid(&self, control: &Path, uuid: &str) -> Result<Option<String>, KernelError>;

    /// Reads the byte ranges `ranges` (offset, length) of the block device at `dev`, in that
    /// order, and returns them one after the other. Direct I/O where the device takes it (what
    /// the device holds, not a page cache udev filled earlier); a read that fails or comes back
    /// short is an error, never zeros. A device with every path down blocks the read: it runs
    /// in a forked child with a deadline. At most [`READ_AT_MAX`] bytes in all.
    fn read_at(
        &self,
        dev: &Path,
        ranges: &[(u64, usize)],
        timeout: Duration,
    ) -> Result<Vec<u8>, KernelError> {
        let _ = (dev, ranges, timeout);
        Err(KernelError::Os(
            "this kernel interface cannot read block devices".into(),
        ))
    }

    /// Writes an NVMe over Fabrics connect request, the option string `options`
    /// (`nqn=...,transport=tcp,traddr=...`), to the fabrics device at `dev`
    /// (`/dev/nvme-fabrics`), and reads back the kernel's answer from the same descriptor
    /// (`instance=N,cntlid=M`): what `nvme connect` does, without a process. The kernel
    /// creates the controller before the write returns.
    fn fabrics_connect(
        &self,
        dev: &Path,
        options: &str,
        timeout: Duration,
    ) -> Result<String, KernelError> {
        let _ = (dev, options, timeout);
        Err(KernelError::Os(
            "this kernel interface cannot connect NVMe-oF controllers".into(),
        ))
    }
}

/// The running kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernel;

enum Op<'a> {
    Flush,
    FlushAndSync,
    Write(&'a [u8]),
    /// An ioctl on the device-mapper control device with this request number and buffer (a
    /// `struct dm_ioctl` and its payload).
    /// The buffer stays alive in the caller until the child is done.
    Dm(libc::c_ulong, *mut libc::c_void),
}

impl Kernel for RealKernel {
    fn flush_buffers(&self, dev: &Path, timeout: Duration) -> Result<(), KernelError> {
        in_child(dev, Op::Flush, timeout)
    }

    fn flush_and_sync(&self, dev: &Path, timeout: Duration) -> Result<(), KernelError> {
        in_child(dev, Op::FlushAndSync, timeout)
    }

    fn write_attr(&self, path: &Path, value: &str, timeout: Duration) -> Result<(), KernelError> {
        in_child(path, Op::Write(value.as_bytes()), timeout)
    }

    fn dm(
        &self,
        control: &Path,
        uuid: &str,
        request: DmRequest<'_>,
        timeout: Duration,
    ) -> Result<(), KernelError> {
        let (nr, mut buf) = dm_ioctl::request(uuid, request)?;
        in_child(control, Op::Dm(nr, buf.as_mut_ptr().cast()), timeout)
    }

    fn dm_dev_of_uuid(&self, control: &Path, uuid: &str) -> Result<Option<String>, KernelError> {
        // A status request does no I/O and cannot hang: it is made here, not in a child.
        let (nr, mut buf) = dm_ioctl::status_request(uuid)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(control)
            .map_err(|e| KernelError::Os(format!("{}: {e}", control.display())))?;
        // SAFETY: `buf` is a whole `struct dm_ioctl` with its data_size set to its length; the
        // kernel writes no further than that.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                nr as _,
                buf.as_mut_ptr(),
            )
        };
        if rc != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return match errno {
                libc::ENXIO => Ok(None),
                e => Err(KernelError::from_errno(e)),
            };
        }
        Ok(Some(format!("dm-{}", dm_ioctl::minor_of(&buf))))
    }

    fn fabrics_connect(
        &self,
        dev: &Path,
        options: &str,
        timeout: Duration,
    ) -> Result<String, KernelError> {
        fabrics_in_child(dev, options.as_bytes(), timeout)
    }

    fn read_at(
        &self,
        dev: &Path,
        ranges: &[(u64, usize)],
        timeout: Duration,
    ) -> Result<Vec<u8>, KernelError> {
        read_in_child(dev, ranges, timeout)
    }
}

/// The most [`Kernel::read_at`] reads in one call: what the pipe back from the child holds
/// without a reader (the parent reads once the child is done).
pub const READ_AT_MAX: usize = 60 * 1024;

/// Alignment of the read buffer and of each range for direct I/O (the largest logical block
/// size).
const DIRECT_ALIGN: usize = 4096;

/// Reads `ranges` of `dev` in a forked child that hands the bytes back through a pipe. The
/// buffer is made before the fork, aligned for O_DIRECT; the child falls back to a buffered
/// read where the file refuses O_DIRECT (a regular file on tmpfs).
fn read_in_child(
    dev: &Path,
    ranges: &[(u64, usize)],
    timeout: Duration,
) -> Result<Vec<u8>, KernelError> {
    let total: usize = ranges.iter().map(|r| r.1).sum();
    if total > READ_AT_MAX {
        return Err(KernelError::Os(format!(
            "{total} bytes asked, at most {READ_AT_MAX} in one read"
        )));
    }
    let mut buf = vec![0u8; total + DIRECT_ALIGN];
    let skip = buf.as_ptr().align_offset(DIRECT_ALIGN);
    let out = buf[skip..].as_mut_ptr();
    // SAFETY: read_child makes only system calls on `out`, made before the fork.
    let bytes = unsafe { answer_from_child(dev, timeout, |path| read_child(path, ranges, out)) }?;
    if bytes.len() != total {
        return Err(KernelError::from_errno(libc::EIO));
    }
    Ok(bytes)
}

/// Waits for `child` to exit until `timeout`: Ok when it exited 0, its exit code as the errno
/// otherwise; a child still running at the deadline is abandoned. `tick` is called at every
/// look (a progress line).
fn wait_child(
    child: Pid,
    timeout: Duration,
    mut tick: impl FnMut(Instant),
) -> Result<(), KernelError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Pause::new(Duration::from_micros(500), Duration::from_millis(10));
    loop {
        tick(Instant::now());
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
        std::thread::sleep(pause.take());
    }
}

/// Runs in the forked child: open (direct I/O if the file takes it), read each range into
/// `out` exactly, write it all to standard output (the pipe).
unsafe fn read_child(path: &CString, ranges: &[(u64, usize)], out: *mut u8) -> i32 {
    // SAFETY (whole body): raw system calls on the buffer the parent made before the fork,
    // which holds every range.
    unsafe {
        let errno = || *libc::__errno_location();
        let mut fd = libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECT | libc::O_CLOEXEC,
        );
        if fd < 0 && errno() == libc::EINVAL {
            fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        }
        if fd < 0 {
            return errno();
        }
        let mut at = 0usize;
        for &(offset, len) in ranges {
            let mut done = 0usize;
            while done < len {
                let n = libc::pread(
                    fd,
                    out.add(at + done).cast(),
                    len - done,
                    (offset + done as u64) as libc::off_t,
                );
                if n < 0 {
                    return errno();
                }
                if n == 0 {
                    // Past the device's end: the range was not there.
                    return libc::ENXIO;
                }
                done += n as usize;
            }
            at += len;
        }
        let mut sent = 0usize;
        while sent < at {
            let n = libc::write(1, out.add(sent).cast(), at - sent);
            if n < 0 {
                return errno();
            }
            sent += n as usize;
        }
        libc::close(fd);
        0
    }
}

/// The answer of `/dev/nvme-fabrics` is one short line (`instance=12,cntlid=3`).
const FABRICS_ANSWER_MAX: usize = 256;

/// A connect to a portal can block in the kernel (the TCP connect, the admin queue's connect
/// command) for as long as the transport's own timeouts allow: the request runs in a forked
/// child, as the other operations do, and its answer comes back through a pipe.
fn fabrics_in_child(dev: &Path, options: &[u8], timeout: Duration) -> Result<String, KernelError> {
    // SAFETY: fabrics_child makes only system calls on `options` and its own stack.
    let answer = unsafe { answer_from_child(dev, timeout, |path| fabrics_child(path, options)) }?;
    Ok(String::from_utf8_lossy(&answer).trim().to_string())
}

/// Runs `body` on `dev`'s path in a forked child whose standard output is a pipe (every other
/// descriptor closed), waits for it until `timeout`, and returns what it wrote there.
///
/// `body` returns the errno to exit with (0 for success).
///
/// # Safety
/// `body` runs in the child of a fork of a process with other threads: it must make only
/// async-signal-safe system calls on memory made before the fork (no allocation, no lock).
unsafe fn answer_from_child(
    dev: &Path,
    timeout: Duration,
    body: impl FnOnce(&CString) -> i32,
) -> Result<Vec<u8>, KernelError> {
    let cpath = c_path(dev)?;
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| KernelError::Os(format!("pipe failed: {e}")))?;
    let wr_fd = std::os::fd::AsRawFd::as_raw_fd(&wr);
    // SAFETY: `body` keeps to what fork_child asks (the caller's promise).
    let child = unsafe { fork_child(Some(wr_fd), || body(&cpath)) }?;
    drop(wr);
    wait_child(child, timeout, |_| {})?;
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(rd), &mut answer)
        .map_err(|e| KernelError::Os(format!("reading the helper's answer: {e}")))?;
    Ok(answer)
}

/// `path` for a system call.
fn c_path(path: &Path) -> Result<CString, KernelError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| KernelError::Os("path holds a NUL byte".into()))
}

/// Runs in the forked child: open, write the options, read the answer, hand it on.
unsafe fn fabrics_child(path: &CString, options: &[u8]) -> i32 {
    // SAFETY (whole body): raw system calls on valid pointers and a stack buffer.
    unsafe {
        let errno = || *libc::__errno_location();
        let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return errno();
        }
        if libc::write(fd, options.as_ptr().cast(), options.len()) < 0 {
            return errno();
        }
        let mut buf = [0u8; FABRICS_ANSWER_MAX];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n < 0 {
            return errno();
        }
        if libc::write(1, buf.as_ptr().cast(), n as usize) < 0 {
            return errno();
        }
        libc::close(fd);
        0
    }
}

fn in_child(path: &Path, op: Op<'_>, timeout: Duration) -> Result<(), KernelError> {
    let cpath = c_path(path)?;
    // SAFETY: child_op makes only system calls on the path and the value, made before the fork.
    let child = unsafe { fork_child(None, || child_op(&cpath, &op)) }?;
    let start = Instant::now();
    let what = match op {
        Op::Flush | Op::FlushAndSync => format!("the flush of {}", path.display()),
        Op::Write(v) => format!(
            "the kernel to take {:?} in {}",
            String::from_utf8_lossy(v).trim(),
            path.display()
        ),
        Op::Dm(..) => "a device-mapper request".to_string(),
    };
    let mut progress = Progress::new(what, start, Some(timeout));
    wait_child(child, timeout, |now| progress.tick(now))
}

/// Forks a child that points its standard output at `stdout` (when given), closes every other
/// descriptor it inherited, runs `body` and exits with what `body` returns (an errno, 0 for
/// success). It never returns into Rust code.
///
/// # Safety
/// `body` runs in the child of a fork of a process with other threads: it must make only
/// async-signal-safe system calls on memory made before the fork (no allocation, no lock).
unsafe fn fork_child(
    stdout: Option<libc::c_int>,
    body: impl FnOnce() -> i32,
) -> Result<Pid, KernelError> {
    // Read before the fork: the child closes every descriptor up to it if close_range is missing.
    let max_fd = max_fd();
    // SAFETY: the child only makes async-signal-safe system calls (the caller's promise for
    // `body`), then leaves with _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: only system calls, then _exit.
            unsafe {
                if let Some(fd) = stdout {
                    if libc::dup2(fd, 1) < 0 {
                        libc::_exit(*libc::__errno_location());
                    }
                }
                close_inherited(max_fd);
                libc::_exit(body())
            }
        }
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(KernelError::Os(format!("fork failed: {e}"))),
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

/// The highest descriptor a forked child may have inherited, read before the fork: the child
/// closes every one up to it where `close_range` is missing.
fn max_fd() -> libc::c_int {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_OPEN_MAX) } {
        n if n > 0 => n.min(1 << 20) as libc::c_int,
        _ => 1 << 16,
    }
}

/// Closes, in the forked child, every descriptor it inherited above standard error. A fork
/// copies them all, whatever their close-on-exec flag (there is no exec): another thread's open
/// lock file (whose flock the child would then hold for as long as it is stuck in the kernel,
/// after brick is gone, and every later `Host::lock` would wait for it) and the write end of a
/// running command's output pipe (whose reader would then wait for the stuck child).
/// `close_range` (Linux 5.9) in one call; before it, one `close` per possible descriptor.
unsafe fn close_inherited(max_fd: libc::c_int) {
    // SAFETY (whole body): raw system calls on plain integers; async-signal-safe.
    unsafe {
        let rc = libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0,
        );
        if rc != 0 {
            for fd in 3..max_fd {
                libc::close(fd);
            }
        }
    }
}

/// Runs in the forked child. Returns 0 or the errno of the first failing call.
unsafe fn child_op(path: &CString, op: &Op<'_>) -> i32 {
    // SAFETY (whole body): raw system calls on valid pointers; no allocation, no locks.
    unsafe {
        let errno = || *libc::__errno_location();
        let flags = match op {
            Op::Flush | Op::FlushAndSync => libc::O_RDONLY,
            Op::Write(_) => libc::O_WRONLY,
            Op::Dm(..) => libc::O_RDWR,
        } | libc::O_CLOEXEC;
        let fd = libc::open(path.as_ptr(), flags);
        if fd < 0 {
            return errno();
        }
        let rc = match op {
            Op::Flush | Op::FlushAndSync => {
                let all = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                let failed = libc::sync_file_range(fd, 0, 0, all) != 0
                    || (matches!(op, Op::FlushAndSync) && libc::fsync(fd) != 0)
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
            Op::Dm(nr, buf) => {
                // The kernel writes its answer into the child's own copy of the buffer.
                if libc::ioctl(fd, *nr as _, *buf) != 0 {
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

/// The device-mapper ioctl interface (linux/dm-ioctl.h), version 4: a `struct dm_ioctl` header,
/// then the request's payload. Written by hand for the two requests brick sends: the
/// `devicemapper` crate needs bindgen and libclang at build time for them.
mod dm_ioctl {
    use super::{DmRequest, KernelError};

    /// `sizeof(struct dm_ioctl)`.
    const HEADER: usize = 312;
    /// Where `name[DM_NAME_LEN]` (128) ends and `uuid[DM_UUID_LEN]` starts in the header.
    const UUID_AT: usize = 48 + 128;
    /// `DM_UUID_LEN`.
    const UUID_LEN: usize = 129;
    const DM_DEV_REMOVE_CMD: libc::c_ulong = 4;
    const DM_DEV_STATUS_CMD: libc::c_ulong = 7;
    const DM_TARGET_MSG_CMD: libc::c_ulong = 14;
    /// Where `dev` (a `__u64`, the kernel's `huge_encode_dev` of the device number) is.
    const DEV_AT: usize = 40;

    /// The request number and buffer for a `DM_DEV_STATUS` of the device whose uuid is `uuid`.
    pub(super) fn status_request(uuid: &str) -> Result<(libc::c_ulong, Vec<u8>), KernelError> {
        let (_, buf) = request(uuid, DmRequest::Remove)?;
        Ok((iowr(DM_DEV_STATUS_CMD), buf))
    }

    /// The minor number (N of `dm-N`) in a status answer: `huge_encode_dev` puts the minor's
    /// low 8 bits in bits 0-7 and its other bits from bit 20 up.
    pub(super) fn minor_of(buf: &[u8]) -> u64 {
        let mut dev = [0u8; 8];
        dev.copy_from_slice(&buf[DEV_AT..DEV_AT + 8]);
        let dev = u64::from_ne_bytes(dev);
        (dev & 0xff) | ((dev >> 12) & 0x000f_ff00)
    }

    /// `_IOWR(DM_IOCTL, cmd, struct dm_ioctl)`.
    fn iowr(cmd: libc::c_ulong) -> libc::c_ulong {
        const READ_WRITE: libc::c_ulong = 3;
        (READ_WRITE << 30) | ((HEADER as libc::c_ulong) << 16) | (0xfd << 8) | cmd
    }

    /// The request number and buffer for `request` on the map whose uuid is `uuid`. The name
    /// stays empty: the kernel looks a device up by its uuid only when no name is given.
    pub(super) fn request(
        uuid: &str,
        request: DmRequest<'_>,
    ) -> Result<(libc::c_ulong, Vec<u8>), KernelError> {
        if uuid.is_empty() || uuid.len() >= UUID_LEN || uuid.contains('\0') {
            return Err(KernelError::Os(format!(
                "{uuid:?} is not a device-mapper uuid"
            )));
        }
        let (cmd, payload) = match request {
            DmRequest::Remove => (DM_DEV_REMOVE_CMD, Vec::new()),
            DmRequest::Message(msg) => {
                if msg.contains('\0') {
                    return Err(KernelError::Os("message holds a NUL byte".into()));
                }
                // struct dm_target_msg: the sector (0), then the NUL-terminated message.
                let mut p = 0u64.to_ne_bytes().to_vec();
                p.extend_from_slice(msg.as_bytes());
                p.push(0);
                (DM_TARGET_MSG_CMD, p)
            }
        };
        // The kernel wants room for its answer; 8-byte alignment of the total.
        let size = (HEADER + payload.len()).div_ceil(8) * 8;
        let mut buf = vec![0u8; size.max(HEADER + 8)];
        let put =
            |buf: &mut [u8], at: usize, v: u32| buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        // version 4.0.0: the kernel accepts any minor of major 4.
        put(&mut buf, 0, 4);
        let total = buf.len() as u32;
        put(&mut buf, 12, total); // data_size
        put(&mut buf, 16, HEADER as u32); // data_start
        buf[UUID_AT..UUID_AT + uuid.len()].copy_from_slice(uuid.as_bytes()); // uuid
        buf[HEADER..HEADER + payload.len()].copy_from_slice(&payload);
        Ok((iowr(cmd), buf))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn status_answer_gives_the_minor_number() {
            let (nr, mut buf) = status_request("mpath-36001405abc").unwrap();
            assert_eq!(nr, 0xc138_fd07, "DM_DEV_STATUS");
            // dm-3 (253:3) and dm-300 (253:300), as huge_encode_dev encodes them.
            for (minor, dev) in [
                (3u64, (253u64 << 8) | 3),
                (300, (253 << 8) | 44 | (1 << 20)),
            ] {
                buf[DEV_AT..DEV_AT + 8].copy_from_slice(&dev.to_ne_bytes());
                assert_eq!(minor_of(&buf), minor);
            }
        }

        #[test]
        fn request_numbers_are_those_of_linux_dm_ioctl_h() {
            // DM_DEV_REMOVE and DM_TARGET_MSG as the kernel headers compute them.
            assert_eq!(iowr(DM_DEV_REMOVE_CMD), 0xc138_fd04);
            assert_eq!(iowr(DM_TARGET_MSG_CMD), 0xc138_fd0e);
        }

        #[test]
        fn message_buffer_layout() {
            let (nr, buf) =
                request("mpath-36001405abc", DmRequest::Message("fail_if_no_path")).unwrap();
            assert_eq!(nr, 0xc138_fd0e);
            assert_eq!(buf.len() % 8, 0);
            assert_eq!(&buf[0..4], &4u32.to_ne_bytes());
            assert_eq!(&buf[12..16], &(buf.len() as u32).to_ne_bytes());
            assert_eq!(&buf[16..20], &312u32.to_ne_bytes());
            // name[128] at 48 stays empty: the kernel then looks the device up by uuid.
            assert_eq!(&buf[48..176], &[0; 128]);
            // uuid[129] at 176, NUL-terminated.
            assert_eq!(&buf[176..193], b"mpath-36001405abc");
            assert_eq!(&buf[193..305], &[0; 112]);
            assert_eq!(&buf[312..320], &[0; 8]);
            assert_eq!(&buf[320..335], b"fail_if_no_path");
            assert_eq!(buf[335], 0);
        }

        #[test]
        fn remove_addresses_the_map_by_uuid_only() {
            let (nr, buf) = request("part1-mpath-36001405abc", DmRequest::Remove).unwrap();
            assert_eq!(nr, 0xc138_fd04);
            assert_eq!(&buf[48..176], &[0; 128]);
            assert_eq!(&buf[176..199], b"part1-mpath-36001405abc");
            assert_eq!(buf[199], 0);
        }

        #[test]
        fn uuids_the_kernel_would_refuse_are_refused_here() {
            assert!(request("", DmRequest::Remove).is_err());
            assert!(request(&"x".repeat(129), DmRequest::Remove).is_err());
            assert!(request(&"x".repeat(128), DmRequest::Remove).is_ok());
            assert!(request("a\0b", DmRequest::Remove).is_err());
        }
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
    fn a_child_stuck_in_the_kernel_holds_no_lock_of_the_parent() {
        // A lock file held (flock) by another thread while a kernel operation forks, then closed
        // without an unlock, as when brick exits, while the child is still blocked: another
        // process must be able to take the lock at once.
        use std::os::unix::io::IntoRawFd;
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("iscsi-node-db.lock");
        let fd = std::fs::File::create(&lockfile).unwrap().into_raw_fd();
        // SAFETY: flock and close on a descriptor this test owns.
        assert_eq!(unsafe { libc::flock(fd, libc::LOCK_EX) }, 0);
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let f = fifo.clone();
        let op =
            std::thread::spawn(move || RealKernel.write_attr(&f, "1", Duration::from_secs(10)));
        // Let the child fork and block in its open of the FIFO.
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::close(fd) }, 0);
        let taken = std::process::Command::new("flock")
            .args(["--nonblock", "--exclusive"])
            .arg(&lockfile)
            .arg("true")
            .status()
            .expect("flock(1) runs");
        // Unblock the child: open the FIFO for reading.
        let mut reader = std::fs::File::open(&fifo).unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut reader, &mut got).unwrap();
        op.join().unwrap().unwrap();
        assert_eq!(got, "1");
        assert!(
            taken.success(),
            "the lock was still held (by the child): {taken}"
        );
    }

    #[test]
    fn fabrics_connect_writes_the_options_and_reads_the_answer_back() {
        // A regular file stands in for /dev/nvme-fabrics: the read after the write returns
        // what follows the options in the file (at the file offset the write left).
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nvme-fabrics");
        std::fs::write(&f, "").unwrap();
        let opts = "nqn=nqn.2014-08.org.lab:x,transport=tcp";
        // Prepare the file so the answer follows the options' bytes.
        std::fs::write(&f, format!("{opts}instance=7,cntlid=2\n")).unwrap();
        let answer = RealKernel
            .fabrics_connect(&f, opts, Duration::from_secs(5))
            .unwrap();
        assert_eq!(answer, "instance=7,cntlid=2");
        let e = RealKernel
            .fabrics_connect(
                Path::new("/nonexistent/nvme-fabrics"),
                opts,
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert_eq!(e, KernelError::from_errno(libc::ENOENT));
    }

    #[test]
    fn read_at_gives_back_each_range_and_fails_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nvme0n1");
        let mut data = vec![0u8; 16384];
        data[4096..4100].copy_from_slice(&[0xfc, 0x4e, 0x2b, 0xa9]);
        data[12288] = 7;
        std::fs::write(&f, &data).unwrap();
        let got = RealKernel
            .read_at(&f, &[(4096, 4096), (12288, 4096)], Duration::from_secs(5))
            .unwrap();
        assert_eq!(got.len(), 8192);
        assert_eq!(&got[..4], &[0xfc, 0x4e, 0x2b, 0xa9]);
        assert_eq!(got[4096], 7);
        let e = RealKernel
            .read_at(&f, &[(16384, 4096)], Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(e, KernelError::from_errno(libc::ENXIO));
        let e = RealKernel
            .read_at(
                Path::new("/nonexistent/nvme9n9"),
                &[(0, 4096)],
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert_eq!(e, KernelError::from_errno(libc::ENOENT));
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
