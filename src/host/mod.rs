//! The machine brick acts on, as a value: where sysfs, /dev and the open-iscsi configuration
//! are, how commands run, how the kernel is asked to flush or delete, and what time it is.
//!
//! Nothing in this module speaks iSCSI. Every layer above takes a `&Host`, so the same code
//! runs on a real host ([`Host::real`]), on a fake tree in a temporary directory, and in the lab.

pub mod cmd;
pub mod kernel;
pub mod multipathd;
pub mod uevent;

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::time::{Clock, FakeClock, SystemClock};
pub use cmd::{Cmd, CmdError, Output, Runner, SystemRunner};
pub use kernel::{DmRequest, Kernel, KernelError, RealKernel, READ_AT_MAX};
pub use multipathd::{Multipathd, MultipathdError, SocketMultipathd};
pub use uevent::UeventWatch;

/// A failure at the host boundary: a file of sysfs, /dev, the open-iscsi configuration or the
/// run folder that could not be read, written or locked, with its path. The crate's
/// [`crate::Error`] wraps it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// An I/O error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file or folder brick relies on for its safety (the lock folder) is not safe to use:
    /// another user could take or replace what brick keeps there.
    #[error("{path}: {why}")]
    Unsafe {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it and what to do.
        why: String,
    },
}

impl HostError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> HostError {
        HostError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the file is not there (or its device is gone).
    pub fn is_not_found(&self) -> bool {
        match self {
            HostError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            HostError::Unsafe { .. } => false,
        }
    }
}

/// What the functions of the host boundary return.
type Error = HostError;

/// How long [`Host::lock`] waits by default: longer than any one operation of brick holds a
/// lock when its host is healthy (a login, a disconnect), short enough that a lock kept by a
/// stuck process is reported rather than waited on for ever.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// Services the layers above put on a host ([`Host::with_service`]), by type.
#[derive(Clone, Default)]
struct Services(
    Arc<std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
);

/// The machine: filesystem roots and the means to act on it.
#[derive(Clone)]
pub struct Host {
    sysfs: PathBuf,
    dev: PathBuf,
    iscsi_conf: PathBuf,
    nvme_conf: PathBuf,
    multipath_dir: PathBuf,
    udev_data: PathBuf,
    run_dir: PathBuf,
    lock_timeout: Duration,
    proc: PathBuf,
    runner: Arc<dyn Runner>,
    kernel: Arc<dyn Kernel>,
    multipathd: Arc<dyn Multipathd>,
    services: Services,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("sysfs", &self.sysfs)
            .field("dev", &self.dev)
            .field("iscsi_conf", &self.iscsi_conf)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// This machine: `/sys`, `/dev`, `/etc/iscsi`, real commands, the real kernel and clock.
    pub fn real() -> Host {
        Host::with_roots("/sys", "/dev", "/etc/iscsi")
    }

    /// This machine's commands, kernel and clock, with the given roots for sysfs, /dev and the
    /// open-iscsi configuration folder (which holds `nodes/` and `initiatorname.iscsi`).
    pub fn with_roots(
        sysfs: impl Into<PathBuf>,
        dev: impl Into<PathBuf>,
        iscsi_conf: impl Into<PathBuf>,
    ) -> Host {
        Host {
            sysfs: sysfs.into(),
            dev: dev.into(),
            iscsi_conf: iscsi_conf.into(),
            nvme_conf: PathBuf::from("/etc/nvme"),
            multipath_dir: PathBuf::from("/etc/multipath"),
            udev_data: PathBuf::from("/run/udev/data"),
            run_dir: PathBuf::from("/run/brick"),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            proc: PathBuf::from("/proc"),
            runner: Arc::new(SystemRunner::default()),
            kernel: Arc::new(RealKernel),
            multipathd: Arc::new(SocketMultipathd::default()),
            services: Services::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets where brick keeps its lock files (default `/run/brick`; a tmpfs, so no lock
    /// outlives a reboot, and a lock held by a killed process is released by the kernel).
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Host {
        self.run_dir = dir.into();
        self
    }

    /// Where brick keeps its lock files (see [`Host::run_dir`]).
    pub fn run_dir_path(&self) -> &Path {
        &self.run_dir
    }

    /// Sets where multipath-tools keep their state (default `/etc/multipath`, which holds the
    /// `wwids` file).
    pub fn multipath_dir(mut self, dir: impl Into<PathBuf>) -> Host {
        self.multipath_dir = dir.into();
        self
    }

    /// Sets where nvme-cli keeps the host's NVMe identity (default `/etc/nvme`, which holds
    /// `hostnqn` and `hostid`).
    pub fn nvme_conf_dir(mut self, dir: impl Into<PathBuf>) -> Host {
        self.nvme_conf = dir.into();
        self
    }

    /// A path under the NVMe configuration folder (`/etc/nvme`).
    pub fn nvme_conf(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.nvme_conf.join(rel)
    }

    /// A path under multipath-tools' state folder.
    pub fn multipath_state(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.multipath_dir.join(rel)
    }

    /// Sets where udev keeps what it knows of each device (default `/run/udev/data`, one file per
    /// device, `b8:16` for the block device 8:16, which libudev reads).
    pub fn udev_data(mut self, dir: impl Into<PathBuf>) -> Host {
        self.udev_data = dir.into();
        self
    }

    /// udev's record of the block device `major:minor` (it may not exist: udev has not finished
    /// with the device yet, or does not run).
    pub fn udev_record(&self, dev_t: &str) -> PathBuf {
        self.udev_data.join(format!("b{dev_t}"))
    }

    /// Whether udevd runs: a process named `systemd-udevd` or `udevd` (read from procfs). Its
    /// control socket (`/run/udev/control`, which libudev asks about) is no sign: it stayed in
    /// the lab after `udevadm control --exit`. When procfs cannot be read, says it runs.
    pub fn udevd_runs(&self) -> bool {
        let Ok(pids) = self.list(&self.proc) else {
            return true;
        };
        pids.iter()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .any(|pid| {
                read_small(&self.proc(format!("{pid}/comm")))
                    .is_ok_and(|c| matches!(c.trim(), "systemd-udevd" | "udevd"))
            })
    }

    /// Sets where procfs is (default `/proc`).
    pub fn proc_root(mut self, dir: impl Into<PathBuf>) -> Host {
        self.proc = dir.into();
        self
    }

    /// A path under the procfs root.
    pub fn proc(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.proc.join(rel)
    }

    /// Sets how long [`Host::lock`] and [`Host::lock_shared`] wait for a lock (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, t: Duration) -> Host {
        self.lock_timeout = t;
        self
    }

    /// Takes the host-wide exclusive lock `name` (a file in the run folder, locked with flock),
    /// waiting for whoever holds it until the lock timeout. It is released when the guard is
    /// dropped, or by the kernel when the process dies, so a crash never leaves it held.
    pub fn lock(&self, name: &str) -> Result<HostLock, Error> {
        self.flock(name, nix::fcntl::FlockArg::LockExclusiveNonblock)
    }

    /// Takes the host-wide lock `name` shared: any number of shared holders at once, none while
    /// an exclusive holder has it. Waits until the lock timeout, as [`Host::lock`].
    pub fn lock_shared(&self, name: &str) -> Result<HostLock, Error> {
        self.flock(name, nix::fcntl::FlockArg::LockSharedNonblock)
    }

    fn flock(&self, name: &str, how: nix::fcntl::FlockArg) -> Result<HostLock, Error> {
        self.check_run_dir()?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.run_dir.join(format!("{safe}.lock"));
        // O_NOFOLLOW: a link planted in place of a lock file would have root create or lock
        // whatever it points to.
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // Real time, not the host's clock: the holder is another thread or process working in
        // real time, and a fake clock advanced by this polling would run out while it works.
        let deadline = std::time::Instant::now() + self.lock_timeout;
        let mut pause =
            crate::time::Pause::new(Duration::from_millis(2), Duration::from_millis(100));
        loop {
            match nix::fcntl::Flock::lock(file, how) {
                Ok(flock) => return Ok(HostLock { _flock: flock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR))
                    if std::time::Instant::now() < deadline =>
                {
                    file = f;
                    std::thread::sleep(pause.take());
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(Error::io(
                        &path,
                        io::Error::new(
                            io::ErrorKind::WouldBlock,
                            format!(
                                "still locked after {:?}: another brick works on the same \
                                 target or node database, or a process it left stuck in the \
                                 kernel holds the lock (`fuser -v {}` names it)",
                                self.lock_timeout,
                                path.display()
                            ),
                        ),
                    ))
                }
                Err((_, e)) => return Err(Error::io(&path, e.into())),
            }
        }
    }

    /// Makes the run folder when it is missing (0700), then checks that it is safe to keep
    /// locks in: a folder (not a link) owned by this process's effective user (root in
    /// production) that no group or other user can enter. The locks decide who may log out of
    /// a session: a lock file another user could open is a lock that user could hold or
    /// replace.
    fn check_run_dir(&self) -> Result<(), Error> {
        use std::os::unix::fs::MetadataExt;
        let dir = &self.run_dir;
        DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e))?;
        let meta = fs::symlink_metadata(dir).map_err(|e| Error::io(dir, e))?;
        let euid = nix::unistd::geteuid().as_raw();
        let mode = meta.mode() & 0o7777;
        let what = if meta.file_type().is_symlink() {
            "is a symbolic link, not a folder"
        } else if !meta.is_dir() {
            "is not a folder"
        } else if meta.uid() != euid {
            "is not owned by the user brick runs as"
        } else if mode & 0o077 != 0 {
            "is open to its group or other users"
        } else {
            return Ok(());
        };
        Err(Error::Unsafe {
            path: dir.clone(),
            why: format!(
                "brick's lock folder {what} (owner uid {}, mode {mode:04o}; brick runs as uid \
                 {euid}): another user could hold or replace brick's locks. Make it a folder \
                 of uid {euid} with mode 0700 (`chown {euid} DIR; chmod 0700 DIR`; the \
                 package's tmpfiles.d entry makes /run/brick so), or set lock_dir to one",
                meta.uid()
            ),
        })
    }

    /// Replaces the command runner.
    pub fn runner(mut self, r: Arc<dyn Runner>) -> Host {
        self.runner = r;
        self
    }

    /// Replaces the kernel operations.
    pub fn kernel(mut self, k: Arc<dyn Kernel>) -> Host {
        self.kernel = k;
        self
    }

    /// Replaces the multipathd client.
    pub fn multipathd(mut self, m: Arc<dyn Multipathd>) -> Host {
        self.multipathd = m;
        self
    }

    /// Sends a command to multipathd (see [`Multipathd::command`]).
    pub fn multipathd_cmd(
        &self,
        cmd: &str,
        timeout: std::time::Duration,
    ) -> Result<String, MultipathdError> {
        self.multipathd.command(cmd, timeout)
    }

    /// Puts a service on the host for the layers above, replacing one of the same type: how a
    /// protocol's network client is replaced by a fake in tests without this module knowing the
    /// protocol (the iSCSI layer asks for its SendTargets client with [`Host::service`]).
    pub fn with_service<T: Clone + Send + Sync + 'static>(mut self, service: T) -> Host {
        let mut map = (*self.services.0).clone();
        map.insert(std::any::TypeId::of::<T>(), Arc::new(service));
        self.services = Services(Arc::new(map));
        self
    }

    /// The service of type `T` put on the host with [`Host::with_service`], if any.
    pub fn service<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.services
            .0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|s| s.downcast_ref::<T>())
            .cloned()
    }

    /// Replaces the clock.
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Host {
        self.clock = c;
        self
    }

    /// A path under the sysfs root, from a path written as if sysfs were at `/`: `sys("block/sda")`.
    pub fn sys(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sysfs.join(rel)
    }

    /// A device node under the /dev root: `dev_node("sda")`.
    pub fn dev_node(&self, name: &str) -> PathBuf {
        self.dev.join(name)
    }

    /// A path under the open-iscsi configuration folder.
    pub fn iscsi_conf(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.iscsi_conf.join(rel)
    }

    /// Runs a command (see [`Runner::run`]).
    pub fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        self.runner.run(cmd)
    }

    /// The kernel operations.
    pub fn kern(&self) -> &dyn Kernel {
        &*self.kernel
    }

    /// The clock.
    pub fn time(&self) -> &dyn Clock {
        &*self.clock
    }

    /// A subscription to the kernel's uevents, for a wait to wake up on (see [`Host::pause`]):
    /// only on a host whose sysfs is this machine's (a fake tree's changes make none).
    pub fn watch_uevents(&self) -> Option<UeventWatch> {
        (self.sysfs == Path::new("/sys"))
            .then(UeventWatch::new)
            .flatten()
    }

    /// One pause of a wait: until the kernel announces a change (when `watch` is given) or `d`
    /// passes, whichever comes first; on the host's clock otherwise.
    pub fn pause(&self, watch: Option<&UeventWatch>, d: Duration) {
        match watch {
            Some(w) => {
                w.wait(d);
            }
            None => self.clock.sleep(d),
        }
    }

    /// Reads a sysfs attribute (or any small text file), trimmed of trailing white space.
    pub fn read_attr(&self, path: &Path) -> Result<String, Error> {
        read_small(path)
            .map(|s| s.trim_end().to_string())
            .map_err(|e| Error::io(path, e))
    }

    /// Reads an attribute, `None` when it does not exist (a device that went away meanwhile, or
    /// is going: its attributes then answer ENODEV or ENXIO).
    pub fn read_attr_opt(&self, path: &Path) -> Result<Option<String>, Error> {
        match read_small(path) {
            Ok(s) => Ok(Some(s.trim_end().to_string())),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Reads an attribute of a device-mapper device (`/sys/block/dm-N/dm/...`), `None` when the
    /// device does not exist or is being removed: the kernel then answers EINVAL (seen in the lab
    /// while another process removed the map).
    pub fn read_dm_attr(&self, path: &Path) -> Result<Option<String>, Error> {
        match read_small(path) {
            Ok(s) => Ok(Some(s.trim_end().to_string())),
            Err(e) if gone(&e) || e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The names in a folder, sorted; empty when the folder does not exist.
    pub fn list(&self, dir: &Path) -> Result<Vec<String>, Error> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort_by(|a, b| natural_cmp(a, b));
        Ok(names)
    }

    /// Where a symbolic link in sysfs leads, resolved against the link's folder.
    pub fn resolve(&self, link: &Path) -> Result<PathBuf, Error> {
        fs::canonicalize(link).map_err(|e| Error::io(link, e))
    }
}

/// A held host-wide lock (see [`Host::lock`]).
pub struct HostLock {
    _flock: nix::fcntl::Flock<fs::File>,
}

/// Orders `sdb` before `sdaa` and `session2` before `session10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| {
        let digits = s.trim_start_matches(|c: char| !c.is_ascii_digit());
        let prefix = &s[..s.len() - digits.len()];
        (
            prefix.len(),
            prefix.to_string(),
            digits.parse::<u64>().unwrap_or(0),
            s.to_string(),
        )
    };
    key(a).cmp(&key(b))
}

/// The most bytes of a sysfs attribute or other small text file brick reads: sysfs gives at
/// most a page; anything larger is not an attribute.
const SMALL_MAX: u64 = 1 << 20;

/// The most bytes brick reads of `/proc/self/mountinfo`: about 100 000 mounts of 160 bytes,
/// many times what a busy container host shows.
pub const MOUNTINFO_MAX: u64 = 16 << 20;

/// A small text file (a sysfs attribute), read with as few system calls as can be: open, read
/// until the end, close. `fs::read_to_string` asks the file's size first (one more call, whose
/// answer sysfs does not know anyway: every attribute shows 4096 bytes), and a disconnect on a
/// host with hundreds of disks reads one attribute of each.
fn read_small(path: &Path) -> io::Result<String> {
    read_bounded(path, SMALL_MAX)
}

/// Reads the text file `path`, at most `limit` bytes: past that it fails (`InvalidData`,
/// naming the limit), so a file that keeps growing, or a /proc file of a very busy host, cannot
/// make brick, running as root, take all the memory.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<String> {
    read_to_limit(&mut fs::File::open(path)?, limit)
}

/// Reads `from` to its end, at most `limit` bytes, as text (see [`read_bounded`]).
pub fn read_to_limit(from: &mut impl io::Read, limit: u64) -> io::Result<String> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 4096];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if buf.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {limit} bytes, more than brick reads of it"),
            ));
        }
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Whether a read failed because the file or its device is gone (or going).
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENXIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_another_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::with_roots("/sys", "/dev", "/etc/iscsi").run_dir(dir.path().join("run"));
        let held = host.lock("iqn.2003-01.org.x:t@127.0.0.1:3260").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h2 = host.clone();
        let t = std::thread::spawn(move || {
            let _l = h2.lock("iqn.2003-01.org.x:t@127.0.0.1:3260").unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "second holder got in"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("second holder after release");
        t.join().unwrap();
        // Other names do not wait.
        let _a = host.lock("a").unwrap();
        let _b = host.lock("b").unwrap();
    }

    #[test]
    fn the_lock_folder_is_made_for_root_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run/brick");
        let host = Host::with_roots("/sys", "/dev", "/etc/iscsi").run_dir(&run);
        drop(host.lock("a").unwrap());
        let mode = std::fs::metadata(&run).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn lock_wait_has_a_deadline_and_names_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::with_roots("/sys", "/dev", "/etc/iscsi").run_dir(dir.path().join("run"));
        let _held = host.lock("iscsi-node-db").unwrap();
        // Another thread of this process waits as another process would: flock locks belong to
        // the open file.
        let h2 = host.clone().lock_timeout(Duration::from_millis(300));
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::time::Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(h2.lock_shared("iscsi-node-db").map(|_| ()));
        });
        let e = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the wait ends")
            .unwrap_err();
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        let text = e.to_string();
        assert!(text.contains("iscsi-node-db.lock"), "{text}");
        assert!(text.contains("still locked after 300ms"), "{text}");
    }

    /// The folder's error, with nothing locked and no lock file made.
    fn refused_lock_folder(run: &Path) -> String {
        let host = Host::with_roots("/sys", "/dev", "/etc/iscsi").run_dir(run);
        let e = host.lock("a").err().expect("the lock folder is refused");
        assert!(matches!(e, HostError::Unsafe { .. }), "{e}");
        assert!(!run.join("a.lock").exists(), "a lock file was made");
        e.to_string()
    }

    #[test]
    fn lock_folder_open_to_others_is_refused_naming_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("locks");
        fs::create_dir(&run).unwrap();
        fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
        let text = refused_lock_folder(&run);
        assert!(text.contains(&run.display().to_string()), "{text}");
        assert!(text.contains("mode 0755"), "{text}");
        assert!(text.contains("0700"), "says what to do: {text}");
    }

    #[test]
    fn lock_folder_of_another_user_is_refused_naming_its_owner() {
        // Needs root (chown), as `make test` runs it: another user's folder, 0700.
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("locks");
        fs::create_dir(&run).unwrap();
        std::os::unix::fs::chown(&run, Some(54321), None)
            .expect("this test needs root: it gives the lock folder to another user");
        let text = refused_lock_folder(&run);
        assert!(text.contains("owner uid 54321"), "{text}");
    }

    #[test]
    fn lock_folder_that_is_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let run = dir.path().join("locks");
        std::os::unix::fs::symlink(&real, &run).unwrap();
        let text = refused_lock_folder(&run);
        assert!(text.contains("symbolic link"), "{text}");
        assert!(!real.join("a.lock").exists());
    }

    #[test]
    fn lock_file_that_is_a_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let host = Host::with_roots("/sys", "/dev", "/etc/iscsi").run_dir(&run);
        drop(host.lock("other").unwrap());
        let victim = dir.path().join("victim");
        std::os::unix::fs::symlink(&victim, run.join("a.lock")).unwrap();
        let e = host.lock("a").err().expect("a linked lock file is refused");
        assert!(e.to_string().contains("a.lock"), "{e}");
        assert!(!victim.exists(), "brick created the link's target");
    }

    #[test]
    fn read_bounded_fails_past_its_limit_and_reads_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, vec![b'x'; 10_000]).unwrap();
        assert_eq!(read_bounded(&f, 10_000).unwrap().len(), 10_000);
        let e = read_bounded(&f, 9_999).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("9999 bytes"), "{e}");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["session10", "session2", "sdaa", "sdb", "dm-10", "dm-2"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["dm-2", "dm-10", "sdb", "sdaa", "session2", "session10"]);
    }
}
