//! dm-multipath maps through sysfs (`/sys/block/dm-N/dm/{name,uuid}`, `slaves/`), and their
//! removal through device-mapper's control device, in-process. `multipath -l` is never used: it is slow on flaky links and fails on
//! a device whose path is down.

use std::collections::BTreeSet;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::{Cmd, DmRequest, Host, KernelError};
use crate::retry::{retry, Backoff, Pause, Retried};
use crate::types::{DmName, Wwid};

/// A device-mapper device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmMap {
    /// The kernel name, `dm-N`.
    pub dev: String,
    /// The map's name (`dm/name`); for multipath, the WWID.
    pub name: DmName,
    /// The map's uuid (`dm/uuid`); `mpath-<wwid>` for a multipath map.
    pub uuid: String,
    /// The devices it is built on that the kernel still has (`slaves/`). A device deleted while
    /// the map's table still uses it leaves its link in `slaves/`, pointing at the folder the
    /// kernel removed, until the table is reloaded without it (multipathd does that once it
    /// has seen the device go; the lab showed the dangling links right after a forced disconnect
    /// deleted the paths of a map held open): such a link is no path of the map, and is not
    /// listed.
    pub slaves: Vec<String>,
}

impl DmMap {
    /// Reads `dm-N`; `None` when it does not exist (any more).
    pub fn read(host: &Host, dev: &str) -> Result<Option<DmMap>> {
        let dir = host.sys(format!("block/{dev}/dm"));
        let Some(name) = host.read_dm_attr(&dir.join("name"))? else {
            return Ok(None);
        };
        let Some(uuid) = host.read_dm_attr(&dir.join("uuid"))? else {
            return Ok(None);
        };
        Ok(Some(DmMap {
            dev: dev.to_string(),
            name: DmName::new(name),
            uuid,
            slaves: live_slaves(host, dev)?,
        }))
    }

    /// Whether this is the multipath map of the device with `wwid`.
    pub fn is_multipath_of(&self, wwid: &Wwid) -> bool {
        self.uuid == wwid.mpath_uuid()
    }

    /// The WWID of a multipath map, from its uuid.
    pub fn multipath_wwid(&self) -> Option<Wwid> {
        self.uuid
            .strip_prefix("mpath-")
            .and_then(|w| w.parse().ok())
    }
}

/// The entries of `dm-N/slaves/` whose link leads to a device the kernel still has (see
/// [`DmMap::slaves`]).
fn live_slaves(host: &Host, dev: &str) -> Result<Vec<String>> {
    let dir = host.sys(format!("block/{dev}/slaves"));
    let mut live = Vec::new();
    for name in host.list(&dir)? {
        if dir.join(&name).exists() {
            live.push(name);
        } else {
            tracing::debug!(map = %dev, device = %name, "a slaves/ link to a deleted device: no path of the map");
        }
    }
    Ok(live)
}

/// The multipath map of `wwid` that holds one of `paths`, read from those paths' holders only
/// (a host may have hundreds of maps; a wait polls this). `None` when none of them is in it.
pub fn map_holding(host: &Host, wwid: &Wwid, paths: &[String]) -> Result<Option<DmMap>> {
    for p in paths {
        let holders = match host.list(&host.sys(format!("block/{p}/holders"))) {
            Ok(h) => h,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        for dev in holders.into_iter().filter(|h| h.starts_with("dm-")) {
            if let Some(m) = read_if_map_of(host, &dev, wwid)? {
                return Ok(Some(m));
            }
        }
    }
    Ok(None)
}

/// The multipath maps of `wwid`: none or one, since device-mapper keeps a uuid unique. Asked of
/// device-mapper by the map's uuid (one request, however many maps the host has); where its
/// control device cannot be used, every map's uuid is read from sysfs.
pub fn maps_of(host: &Host, wwid: &Wwid) -> Result<Vec<DmMap>> {
    let uuid = wwid.mpath_uuid();
    match host
        .kern()
        .dm_dev_of_uuid(&host.dev_node("mapper/control"), &uuid)
    {
        Ok(None) => return Ok(Vec::new()),
        Ok(Some(dev)) => {
            // Gone meanwhile, or its uuid changed hands: looked for again below.
            if let Some(m) = DmMap::read(host, &dev)?.filter(|m| m.is_multipath_of(wwid)) {
                return Ok(vec![m]);
            }
        }
        Err(e) => tracing::debug!(error = %e, "device-mapper not asked; reading every map"),
    }
    // Each map's uuid first: the rest is read only for the one that matches.
    let mut maps = Vec::new();
    for dev in host
        .list(&host.sys("block"))?
        .into_iter()
        .filter(|n| n.starts_with("dm-"))
    {
        maps.extend(read_if_map_of(host, &dev, wwid)?);
    }
    Ok(maps)
}

/// The device-mapper device `dev` when it is the multipath map of `wwid`: its uuid is read
/// first, the rest only for the map that matches.
fn read_if_map_of(host: &Host, dev: &str, wwid: &Wwid) -> Result<Option<DmMap>> {
    let attr = host.sys(format!("block/{dev}/dm/uuid"));
    if host.read_dm_attr(&attr)?.as_deref() != Some(wwid.mpath_uuid().as_str()) {
        return Ok(None);
    }
    Ok(DmMap::read(host, dev)?.filter(|m| m.is_multipath_of(wwid)))
}

/// Removes the multipath map `m` in-process, as `multipath -f` does without starting it: its
/// partition maps first (`partN-mpath-WWID`, made by kpartx), then the map, each with
/// device-mapper's `DM_DEV_REMOVE` addressed by its uuid (never by its name, which another map
/// may have taken meanwhile), which the kernel refuses (EBUSY) while the device is open or
/// held. "In use" is retried with `backoff` (udev or blkid may hold a map briefly); a map already
/// gone is not an error. Each request has `timeout`.
pub fn remove_map(
    host: &Host,
    m: &DmMap,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<(), Retried<KernelError>> {
    for h in host
        .list(&host.sys(format!("block/{}/holders", m.dev)))
        .unwrap_or_default()
    {
        let Ok(Some(part)) = DmMap::read(host, &h) else {
            continue;
        };
        if is_partition_of(&part.uuid, &m.uuid) {
            remove_dm(host, &part, backoff, timeout)?;
        }
    }
    remove_dm(host, m, backoff, timeout)
}

/// The partition maps of the map `dev` (`dm-N`): the device-mapper devices holding it whose uuid
/// is `partN-` followed by its own (see [`is_partition_of`]).
pub(crate) fn partition_maps(host: &Host, dev: &str) -> Vec<String> {
    let uuid_of = |d: &str| {
        host.read_dm_attr(&host.sys(format!("block/{d}/dm/uuid")))
            .ok()
            .flatten()
    };
    let Some(uuid) = uuid_of(dev) else {
        return Vec::new();
    };
    host.list(&host.sys(format!("block/{dev}/holders")))
        .unwrap_or_default()
        .into_iter()
        .filter(|h| uuid_of(h).is_some_and(|u| is_partition_of(&u, &uuid)))
        .collect()
}

/// Whether the device-mapper uuid `uuid` is that of a partition map kpartx made on the map of
/// uuid `map_uuid`: `partN-<map_uuid>`, N a number.
fn is_partition_of(uuid: &str, map_uuid: &str) -> bool {
    uuid.strip_suffix(map_uuid)
        .and_then(|p| p.strip_suffix('-'))
        .and_then(|p| p.strip_prefix("part"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn remove_dm(
    host: &Host,
    m: &DmMap,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<(), Retried<KernelError>> {
    let control = host.dev_node("mapper/control");
    let name = &m.name;
    let what = format!("removal of device-mapper device {name}");
    retry(
        host.time(),
        backoff,
        &what,
        KernelError::is_busy,
        || match host
            .kern()
            .dm(&control, &m.uuid, DmRequest::Remove, timeout)
        {
            Err(e) if e.is_missing() => Ok(()),
            other => other,
        },
    )
    .map_err(|r| Retried {
        attempts: r.attempts,
        error: if r.error.is_busy() {
            KernelError::Os(format!("{name} is in use: open, or held by another device"))
        } else {
            r.error
        },
    })
}

/// Stops a multipath map from queueing I/O while it has no path, so that I/O waiting on it fails
/// and the map can go: at once in the kernel (the target message `fail_if_no_path`, in-process,
/// the map addressed by its uuid), and for multipathd too (`disablequeueing map NAME`):
/// multipathd reloads a map when one of its paths goes, and a reload restores the features of
/// its configuration (`queue_if_no_path`), which would make the opener of a map whose paths are
/// gone wait for ever. multipathd not answering is logged, not a failure: the map may not be one
/// multipathd knows. Used by a forced disconnect only: queued data is lost.
pub fn disable_queueing(host: &Host, m: &DmMap, timeout: Duration) -> Result<(), KernelError> {
    host.kern().dm(
        &host.dev_node("mapper/control"),
        &m.uuid,
        DmRequest::Message("fail_if_no_path"),
        timeout,
    )?;
    match host.multipathd_cmd(&format!("disablequeueing map {}", m.name), timeout) {
        Ok(reply) if reply.trim() == "ok" => {}
        Ok(reply) => {
            tracing::debug!(map = %m.name, reply = %reply.trim(), "multipathd did not disable queueing")
        }
        Err(e) => {
            tracing::debug!(map = %m.name, error = %e, "multipathd not told to disable queueing")
        }
    }
    Ok(())
}

/// Registers `wwid` in multipath-tools' wwids file (`wwids` in [`Host::multipath_state`]), in
/// process, as `multipath -a` does and as os-brick does before it hands paths to multipathd.
/// multipathd then builds a map for the device whatever `find_multipaths` says (with `strict`
/// or `yes` it builds none for a WWID it does not know), and builds it without asking udev to
/// look at the paths once more (it sends a "change" uevent on the paths of every map whose WWID
/// it records itself): whoever registers the WWID has that duty ([`udev_calls_it_a_path`],
/// [`ask_udev_to_look_again`]). Takes a write lock on the whole file, which excludes
/// multipath-tools (they take a POSIX one) and brick's other threads, waiting at most `timeout`. Returns whether the WWID was added (`false`: it
/// was listed already).
pub fn remember_wwid(host: &Host, wwid: &Wwid, timeout: Duration) -> Result<bool> {
    let mut f = WwidsFile::open(host, true, timeout)?.expect("made when missing");
    if f.text
        .lines()
        .any(|l| listed_wwid(l) == Some(wwid.as_str()))
    {
        return Ok(false);
    }
    let mut add = String::new();
    if f.text.is_empty() {
        add.push_str(WWIDS_HEADER);
    } else if !f.text.ends_with('\n') {
        add.push('\n');
    }
    add.push_str(&format!("/{}/\n", wwid.as_str()));
    // O_APPEND: the line goes to the end of the file as it is at the write, never over a line
    // another writer added since the read.
    let end = f.file.seek(SeekFrom::End(0)).map_err(|e| f.err(e))?;
    if let Err(e) = f
        .file
        .write_all(add.as_bytes())
        .and_then(|()| f.file.sync_data())
    {
        // A half-written line would be read as another WWID.
        let _ = f.file.set_len(end);
        return Err(f.err(e));
    }
    Ok(true)
}

/// Takes `wwid` out of the wwids file again (as `multipath -w` does): for a connect that failed
/// after [`remember_wwid`] added it. Returns whether it was listed.
pub fn forget_wwid(host: &Host, wwid: &Wwid, timeout: Duration) -> Result<bool> {
    let Some(mut f) = WwidsFile::open(host, false, timeout)? else {
        return Ok(false);
    };
    let kept: String = f
        .text
        .split_inclusive('\n')
        .filter(|l| listed_wwid(l) != Some(wwid.as_str()))
        .collect();
    if kept.len() == f.text.len() {
        return Ok(false);
    }
    f.file
        .seek(SeekFrom::Start(0))
        .and_then(|_| f.file.write_all(kept.as_bytes()))
        .and_then(|()| f.file.set_len(kept.len() as u64))
        .and_then(|()| f.file.sync_data())
        .map_err(|e| f.err(e))?;
    Ok(true)
}

/// Builds the multipath map of `disk`'s WWID with multipath-tools' own `multipath DEVNODE`, for
/// when multipathd cannot: without udevd, multipathd (0.9.4, default `uid_attribute`) takes a
/// path's WWID only from udev's record, which a disk that appeared since udevd stopped does not
/// have, and it reads sysfs instead only after udev has failed to answer three "change" uevents
/// (`retrigger_tries`), which without udevd never happens; `add path` then answers "fail" and no
/// map ever comes. The `multipath` tool reads the WWID from sysfs at once (it allows that
/// fallback from the first try) and builds the map with the host's own configuration (features,
/// hardware handler, path grouping, name), taking every disk of the WWID. `add map NAME` then
/// has multipathd adopt the map, which gives the paths the map's WWID. Returns the map.
pub fn build_map_without_udev(
    host: &Host,
    wwid: &Wwid,
    disks: &[String],
    timeout: Duration,
) -> Result<Option<DmMap>> {
    // The tool lists only the disks udev has described: it takes the one it is given (and the
    // map's own paths, and the disks udev has seen, with a udevd that runs but gives no WWID),
    // so it runs once per path until the map holds them all. With udevd gone its control socket
    // may stay, and libdevmapper would wait for udev for ever after creating the map:
    // DM_DISABLE_UDEV.
    for disk in disks {
        let built = maps_of(host, wwid)?.into_iter().next();
        if built.is_some_and(|m| disks.iter().all(|d| m.slaves.contains(d))) {
            break;
        }
        let node = host.dev_node(disk);
        let cmd = Cmd::new("env")
            .args(["DM_DISABLE_UDEV=1", "multipath"])
            .arg(node.to_string_lossy().into_owned())
            .timeout(timeout);
        let out = host.run(&cmd)?;
        if !out.success() {
            tracing::warn!(path = %disk, output = %out.tail(), "multipath did not take the path");
        }
    }
    let Some(map) = maps_of(host, wwid)?.into_iter().next() else {
        return Ok(None);
    };
    if let Err(e) = host.multipathd_cmd(&format!("add map {}", map.name), timeout) {
        tracing::warn!(map = %map.name, error = %e, "multipathd not told of the map multipath built: it does not watch its paths");
    }
    Ok(Some(map))
}

/// What udev concluded about `disk` when it last ran its rules on it: whether multipath-tools'
/// rule (`multipath -u`) called it a path of a multipath map (`DM_MULTIPATH_DEVICE_PATH=1` in
/// udev's record of the device). `None` when udev has no record of the disk: its rules are still
/// at work on the disk's "add", or udev does not run.
pub fn udev_calls_it_a_path(host: &Host, disk: &str) -> Result<Option<bool>> {
    let dev_t = host.read_attr(&host.sys(format!("block/{disk}/dev")))?;
    let Some(record) = host.read_attr_opt(&host.udev_record(&dev_t))? else {
        return Ok(None);
    };
    Ok(Some(
        record
            .lines()
            .any(|l| l.trim_end() == "E:DM_MULTIPATH_DEVICE_PATH=1"),
    ))
}

/// Asks udev to run its rules again on `disk` and on its partitions (a "change" uevent on each,
/// written to its `uevent` attribute), as multipathd does on the paths of a map it builds for a
/// WWID it records itself: `multipath -u` then finds the WWID registered and the disk in a map,
/// and the other rules leave the disk to the map (no file system or LVM scan, no /dev/disk
/// links to it rather than to the map). The write only queues an event: it does not block.
pub fn ask_udev_to_look_again(host: &Host, disk: &str) -> Result<()> {
    let dir = host.sys(format!("block/{disk}"));
    let mut devices = vec![dir.join("uevent")];
    for name in host.list(&dir)? {
        if dir.join(&name).join("partition").exists() {
            devices.push(dir.join(name).join("uevent"));
        }
    }
    for uevent in devices {
        std::fs::write(&uevent, "change").map_err(|e| Error::io(&uevent, e))?;
    }
    Ok(())
}

/// multipath-tools' wwids file, open for reading and writing under their lock and brick's
/// process-wide one (both held until it is dropped), with the text it had when they were taken.
struct WwidsFile {
    path: PathBuf,
    // Declared before the guard: the file (and its lock) is closed before another thread of
    // this process may open it.
    file: File,
    text: String,
    _in_process: InProcessTurn,
}

/// The wwids files (by path) a thread of this process is working on. The threads of one
/// process take turns on a file here before they take its file lock: the POSIX lock brick took
/// before was the process's, so every thread "held" it at once.
static WWIDS_IN_USE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// A thread's turn on a wwids file (see [`WWIDS_IN_USE`]), given back when dropped.
struct InProcessTurn(PathBuf);

impl Drop for InProcessTurn {
    fn drop(&mut self) {
        in_use().remove(&self.0);
    }
}

fn in_use() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    // The set stays consistent whatever a panicking holder did: inserts and removes are whole.
    WWIDS_IN_USE.lock().unwrap_or_else(|e| e.into_inner())
}

impl WwidsFile {
    /// Opens and locks the file, waiting at most `timeout` for the lock. With `create`, makes it
    /// (and its folder, as multipath-tools do: mode 0700, file 0600) when missing; without,
    /// returns `None` when it is missing.
    fn open(host: &Host, create: bool, timeout: Duration) -> Result<Option<WwidsFile>> {
        let path = host.multipath_state("wwids");
        let deadline = host.time().now() + timeout;
        let in_process = lock_in_process(host, &path, deadline, timeout)?;
        if create {
            if let Some(dir) = path.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| Error::io(dir, e))?;
            }
        }
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            // A create is for an append (remember); a forget rewrites the file in place.
            .append(create)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        lock_whole(host, &file, &path, deadline, timeout)?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Some(WwidsFile {
            path,
            file,
            text,
            _in_process: in_process,
        }))
    }

    fn err(&self, e: io::Error) -> Error {
        Error::io(&self.path, e)
    }
}

/// The first lines of a wwids file brick creates (the format multipath-tools read: `#` comments,
/// then one `/WWID/` per line).
const WWIDS_HEADER: &str = "# Multipath wwids, Version : 1.0\n\
    # Kept by multipath, multipathd and brick: one /WWID/ per line.\n";

/// The WWIDs multipath's wwids file lists (none when there is no file), read without a lock:
/// for a list, not for a change.
pub fn listed_wwids(host: &Host) -> Result<Vec<String>> {
    let path = host.multipath_state("wwids");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(listed_wwid)
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// The WWID a line of the wwids file lists, if any.
fn listed_wwid(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('/')?;
    rest.split_once('/').map(|(w, _)| w)
}

/// Takes this thread's turn on the wwids file at `path` among brick's threads, waiting until
/// `deadline`.
fn lock_in_process(
    host: &Host,
    path: &Path,
    deadline: std::time::Instant,
    timeout: Duration,
) -> Result<InProcessTurn> {
    let mut pause = Pause::new(Duration::from_millis(1), Duration::from_millis(20));
    loop {
        if in_use().insert(path.to_path_buf()) {
            return Ok(InProcessTurn(path.to_path_buf()));
        }
        if host.time().now() >= deadline {
            return Err(Error::io(
                path,
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("used by another thread of brick for {timeout:?}"),
                ),
            ));
        }
        host.time().sleep(pause.take());
    }
}

/// A write lock on the whole of `file`, as multipath-tools take on their state files, tried
/// until `deadline`. It is an open file description (OFD) lock: it belongs to this open of the
/// file, not to the process as a POSIX lock does (of which a second thread would "take" its own
/// copy, and any close of the file by the process would drop it), and it conflicts with the
/// POSIX locks of multipath-tools all the same. Released when `file` is closed.
fn lock_whole(
    host: &Host,
    file: &File,
    path: &Path,
    deadline: std::time::Instant,
    timeout: Duration,
) -> Result<()> {
    let mut pause = Pause::new(Duration::from_millis(5), Duration::from_millis(50));
    let whole = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        // The kernel requires 0 for an OFD lock.
        l_pid: 0,
    };
    loop {
        // SAFETY: fcntl on an open descriptor with a valid, initialised struct flock.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &whole) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EACCES | libc::EAGAIN) if host.time().now() < deadline => {
                host.time().sleep(pause.take());
            }
            Some(libc::EACCES | libc::EAGAIN) => {
                return Err(Error::io(
                    path,
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("locked by another process for {timeout:?}"),
                    ),
                ))
            }
            _ => return Err(Error::io(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    fn wwid(s: &str) -> Wwid {
        s.parse().unwrap()
    }

    #[test]
    fn the_map_holding_a_path_is_found_from_its_holders() {
        let f = FakeHost::new();
        f.session(1, "127.0.0.1:3260", "iqn.2003-01.org.linux-iscsi.lab:t")
            .disk(1, 1, "sda", "naa.6001405deadbeef00010000000000000")
            .disk(1, 2, "sdb", "naa.6001405deadbeef00010000000000000")
            .disk(1, 3, "sdc", "naa.6001405deadbeef00020000000000000")
            .map("dm-0", &["sda", "sdb"])
            .map("dm-1", &["sdc"]);
        let host = f.host();
        let w1 = wwid("36001405deadbeef00010000000000000");
        let w2 = wwid("36001405deadbeef00020000000000000");
        let paths = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let m = map_holding(&host, &w1, &paths(&["sdx", "sdb"]))
            .unwrap()
            .unwrap();
        assert_eq!(m.dev, "dm-0");
        assert!(map_holding(&host, &w1, &paths(&["sdc"])).unwrap().is_none());
        assert!(map_holding(&host, &w2, &paths(&["sda"])).unwrap().is_none());
        assert_eq!(
            map_holding(&host, &w2, &paths(&["sdc"]))
                .unwrap()
                .unwrap()
                .dev,
            "dm-1"
        );
    }

    #[test]
    fn udev_record_says_whether_the_disk_is_a_path_of_a_map() {
        let fake = FakeHost::new();
        fake.session(1, "127.0.0.1:3260", "iqn.2003-01.org.linux-iscsi.lab:t")
            .disk(1, 1, "sdb", "naa.6001405deadbeef00010000000000000")
            .disk(1, 2, "sdc", "naa.6001405deadbeef00020000000000000");
        let host = fake.host();
        assert_eq!(udev_calls_it_a_path(&host, "sdb").unwrap(), None);
        fake.udev_record("sdb", false).udev_record("sdc", true);
        assert_eq!(udev_calls_it_a_path(&host, "sdb").unwrap(), Some(false));
        assert_eq!(udev_calls_it_a_path(&host, "sdc").unwrap(), Some(true));
        // The record is udev's file for the disk's device number (sdb is 8:16).
        let record = host.udev_record("8:16");
        assert!(std::fs::read_to_string(record)
            .unwrap()
            .contains("E:DM_MULTIPATH_DEVICE_PATH=0"));
    }

    #[test]
    fn only_kpartx_partition_maps_of_the_map_count_as_its_partitions() {
        let map = "mpath-36001405deadbeef";
        for (uuid, is) in [
            ("part1-mpath-36001405deadbeef", true),
            ("part12-mpath-36001405deadbeef", true),
            ("part-mpath-36001405deadbeef", false),
            ("partx-mpath-36001405deadbeef", false),
            ("part1-mpath-36001405deadbeef0", false),
            ("part1-mpath-16001405deadbeef", false),
            ("LVM-abc-mpath-36001405deadbeef", false),
            ("mpath-36001405deadbeef", false),
        ] {
            assert_eq!(is_partition_of(uuid, map), is, "{uuid}");
        }
    }

    #[test]
    fn udev_is_asked_about_the_disk_and_its_partitions_only() {
        let fake = FakeHost::new();
        fake.session(1, "127.0.0.1:3260", "iqn.2003-01.org.linux-iscsi.lab:t")
            .disk(1, 1, "sdb", "naa.6001405deadbeef00010000000000000");
        let host = fake.host();
        let dir = host.sys("block/sdb");
        for part in ["sdb1", "sdb2"] {
            std::fs::create_dir_all(dir.join(part)).unwrap();
            std::fs::write(dir.join(part).join("partition"), "1\n").unwrap();
            std::fs::write(dir.join(part).join("uevent"), "").unwrap();
        }
        // A folder that is no partition (the disk's queue) is left alone.
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        std::fs::write(dir.join("queue/uevent"), "").unwrap();
        ask_udev_to_look_again(&host, "sdb").unwrap();
        assert_eq!(fake.uevents_asked(), ["sdb", "sdb1", "sdb2"]);
        assert_eq!(
            std::fs::read_to_string(dir.join("queue/uevent")).unwrap(),
            ""
        );
    }

    #[test]
    fn a_map_is_removed_and_messaged_by_its_uuid_never_by_a_name_another_map_took() {
        // user_friendly_names: the map's name "mpatha" goes to another volume's map the moment
        // the first one is gone. A remove or message from a plan read before must not touch it.
        let fake = FakeHost::new();
        fake.dm("dm-0", "mpatha", "mpath-3600a0980aaa", &[]);
        let host = fake.host();
        let m = DmMap::read(&host, "dm-0").unwrap().unwrap();
        let quick = Backoff {
            tries: 1,
            first: Duration::ZERO,
            factor: 1,
            max_delay: Duration::ZERO,
        };
        remove_map(&host, &m, &quick, Duration::from_secs(1)).unwrap();
        assert!(!fake.has_block("dm-0"));
        fake.dm("dm-1", "mpatha", "mpath-3600a0980bbb", &[]);
        // Gone already: not an error, and the other map stays.
        remove_map(&host, &m, &quick, Duration::from_secs(1)).unwrap();
        assert!(fake.has_block("dm-1"), "another volume's map was removed");
        assert!(disable_queueing(&host, &m, Duration::from_secs(1))
            .unwrap_err()
            .is_missing());
        let other = DmMap::read(&host, "dm-1").unwrap().unwrap();
        disable_queueing(&host, &other, Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn remember_creates_the_file_and_adds_each_wwid_once() {
        let fake = FakeHost::new();
        let host = fake.host();
        let w = wwid("36001405b51c000100010000000000000");
        assert!(remember_wwid(&host, &w, Duration::from_secs(1)).unwrap());
        assert!(!remember_wwid(&host, &w, Duration::from_secs(1)).unwrap());
        let text = std::fs::read_to_string(host.multipath_state("wwids")).unwrap();
        assert!(text.starts_with("# Multipath wwids"), "{text}");
        let listed: Vec<_> = text.lines().filter_map(listed_wwid).collect();
        assert_eq!(listed, [w.as_str()]);
    }

    #[test]
    fn remember_keeps_what_multipath_wrote_and_ends_its_last_line() {
        let fake = FakeHost::new();
        let host = fake.host();
        let path = host.multipath_state("wwids");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // multipath's own file, whose last line someone left without a newline
        std::fs::write(&path, "# Valid WWIDs:\n/3600a0980aaa/\n  /3600a0980bbb/").unwrap();
        assert!(!remember_wwid(&host, &wwid("3600a0980bbb"), Duration::from_secs(1)).unwrap());
        assert!(remember_wwid(&host, &wwid("3600a0980ccc"), Duration::from_secs(1)).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# Valid WWIDs:\n/3600a0980aaa/\n  /3600a0980bbb/\n/3600a0980ccc/\n"
        );
    }

    #[test]
    fn forget_removes_only_that_wwid() {
        let fake = FakeHost::new();
        let host = fake.host();
        let (a, b) = (wwid("3600a0980aaa"), wwid("3600a0980bbb"));
        assert!(
            !forget_wwid(&host, &a, Duration::from_secs(1)).unwrap(),
            "no file yet"
        );
        remember_wwid(&host, &a, Duration::from_secs(1)).unwrap();
        remember_wwid(&host, &b, Duration::from_secs(1)).unwrap();
        assert!(forget_wwid(&host, &a, Duration::from_secs(1)).unwrap());
        assert!(!forget_wwid(&host, &a, Duration::from_secs(1)).unwrap());
        let text = std::fs::read_to_string(host.multipath_state("wwids")).unwrap();
        let listed: Vec<_> = text.lines().filter_map(listed_wwid).collect();
        assert_eq!(listed, [b.as_str()]);
        assert!(text.starts_with("# Multipath wwids"), "{text}");
    }

    #[test]
    fn concurrent_remember_and_forget_in_one_process_keep_the_file_whole() {
        // Threads of one process (a library user attaching volumes at once): each registers its
        // own WWIDs and takes every other one out again. A POSIX lock is the process's, so it
        // kept none of them from another: lines were overwritten, headers doubled, and a forget
        // wrote back what it had read before another thread's append.
        let fake = FakeHost::new();
        // Real time: the fake clock, advanced by every waiting thread, would run out at once.
        let host = fake
            .host()
            .clock(std::sync::Arc::new(crate::host::SystemClock));
        let threads = 12;
        let per = 12;
        let name = |t: usize, i: usize| wwid(&format!("3600a0980{t:03x}{i:04x}"));
        std::thread::scope(|s| {
            for t in 0..threads {
                let host = &host;
                s.spawn(move || {
                    for i in 0..per {
                        let w = name(t, i);
                        assert!(remember_wwid(host, &w, Duration::from_secs(30)).unwrap());
                        if i % 2 == 1 {
                            assert!(forget_wwid(host, &w, Duration::from_secs(30)).unwrap());
                        }
                    }
                });
            }
        });
        let text = std::fs::read_to_string(host.multipath_state("wwids")).unwrap();
        let headers = text
            .lines()
            .filter(|l| l.starts_with("# Multipath"))
            .count();
        assert_eq!(headers, 1, "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                listed_wwid(line).is_some(),
                "malformed line {line:?} in\n{text}"
            );
        }
        let listed: Vec<&str> = text.lines().filter_map(listed_wwid).collect();
        for t in 0..threads {
            for i in 0..per {
                let w = name(t, i);
                let n = listed.iter().filter(|l| **l == w.as_str()).count();
                assert_eq!(
                    n,
                    usize::from(i % 2 == 0),
                    "{w} listed {n} times in\n{text}"
                );
            }
        }
    }

    #[test]
    fn remember_waits_for_the_lock_then_gives_up() {
        let fake = FakeHost::new();
        let host = fake.host();
        let w = wwid("3600a0980aaa");
        remember_wwid(&host, &w, Duration::from_secs(1)).unwrap();
        // Another process holds multipath's lock: POSIX locks are per process, so take it
        // in a child.
        let path = host.multipath_state("wwids");
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
            ])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let err = remember_wwid(&host, &wwid("3600a0980bbb"), Duration::from_secs(2)).unwrap_err();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        assert!(fake.clock().sleeps().iter().sum::<Duration>() >= Duration::from_secs(2));
    }
}
