//! A fake host for tests: a temporary directory laid out as the real kernel lays out sysfs for
//! iSCSI sessions, SCSI disks and multipath maps (see `lab-notes.md`), a scripted command runner
//! that plays iscsiadm against that tree, kernel operations that act on it (a `delete` removes
//! the disk, a device-mapper remove the map, as the kernel would), and a multipathd.
//!
//! ```
//! use brick::testing::FakeHost;
//! let fake = FakeHost::new();
//! fake.session(1, "127.0.0.1:3260", "iqn.2003-01.org.linux-iscsi.lab:tgt1");
//! fake.disk(1, 1, "sda", "naa.6001405deadbeef00010000000000000");
//! let host = fake.host();
//! assert!(host.sys("block/sda/device/wwid").exists());
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::host::{
    Clock, Cmd, CmdError, DmRequest, FakeClock, Host, Kernel, KernelError, Output, Runner,
};
use crate::iscsi::node::is_record_of;
use crate::types::{Portal, SessionId, Wwid};

mod iscsiadm;
mod kernel;
mod multipathd;
mod nvme;
mod sendtargets;
mod tree;

use iscsiadm::*;
use kernel::*;
use multipathd::*;
use sendtargets::*;
use tree::*;

pub use crate::block::signature::md12_superblock;

type Matcher = Box<dyn Fn(&[String]) -> bool + Send + Sync>;
type Responder = Box<dyn Fn(&[String]) -> Result<Output, CmdError> + Send + Sync>;

struct Script {
    matches: Matcher,
    respond: Responder,
    /// How many more calls it answers; `None` for all.
    uses: Option<usize>,
}

/// A target the fake initiator can discover and log in to.
#[derive(Clone, Default)]
struct FakeTarget {
    portal: String,
    iqn: String,
    /// LUN -> the kernel's wwid text
    luns: BTreeMap<u64, String>,
    /// CHAP (username, password) the target requires
    chap: Option<(String, String)>,
    /// Nothing answers on the portal.
    dead: bool,
    /// LUN -> how many more scans find nothing: the target maps the LUN late.
    late: BTreeMap<u64, usize>,
    /// LUN a -> LUN b: the next scan of a on a session also finds b's disk there, as when
    /// another attach scanned b on the same session meanwhile.
    also_scanned: BTreeMap<u64, u64>,
}

#[derive(Default)]
struct World {
    targets: Vec<FakeTarget>,
    /// Build a multipath map for each new disk, as multipathd does when udev tells it.
    auto_multipath: bool,
    /// multipathd does not answer on its socket.
    multipathd_down: bool,
    /// iscsid answers logouts on its management socket (else brick falls back to iscsiadm).
    iscsid_answers: bool,
    /// iscsid takes logouts but answers none in time; `Some(true)`: it logs out all the same.
    iscsid_answers_late: Option<bool>,
    /// Paths multipathd calls active whatever their state in sysfs.
    multipathd_active: Vec<String>,
    /// multipathd takes paths but builds no map (it cannot get their WWID: no udev).
    multipathd_builds_no_maps: bool,
    /// multipathd builds maps only for WWIDs listed in etc/multipath/wwids (`find_multipaths
    /// strict`).
    find_multipaths_strict: bool,
    multipathd_cmds: Vec<String>,
    /// The timeout of each command sent to multipathd: (command, timeout).
    multipathd_timeouts: Vec<(String, Duration)>,
    /// Portals asked with SendTargets, in order.
    discoveries: Vec<String>,
    /// portal -> what its SendTargets answer lists instead of the targets set up: (portal, IQN)
    discovery_answers: BTreeMap<String, Vec<(String, String)>>,
    /// Maps multipathd created and whose udev event it has not seen yet (their name): as the
    /// real one does, it delays adding other paths to them until then, or until `add map NAME`.
    maps_waiting_for_udev: Vec<String>,
    /// Paths multipathd holds back until their map's udev event: (path, map name).
    delayed_paths: Vec<(String, String)>,
    /// Paths multipathd holds without a map (find_multipaths strict, WWID unknown): (path, WWID).
    held_paths: Vec<(String, String)>,
    next_disk: usize,
    /// session id -> (SCSI host number, portal, IQN, tpgt)
    sessions: BTreeMap<u32, (u32, String, String, u32)>,
    scripts: Vec<Script>,
    calls: Vec<Vec<String>>,
    flushes: Vec<String>,
    /// Devices flushed with a cache flush too (`flush_and_sync`), in order.
    syncs: Vec<String>,
    flush_failures: Failures,
    stuck_deletes: Vec<String>,
    /// device-mapper requests made: (map name, "remove" or "message TEXT")
    dm_calls: Vec<(String, String)>,
    /// by map name
    dm_failures: Failures,
    /// (disk, session): the delete of the disk also logs the session out, as a concurrent
    /// disconnect of another volume on that session would.
    logout_on_delete: Vec<(String, u32)>,
    attr_writes: Vec<(String, String)>,
    /// What the host saw happen, in order: `flush NAME`, `dm remove NAME`, `dm message NAME`,
    /// `delete NAME`, `logout SID`.
    events: Vec<String>,
    /// Disks a udev probe of their map is caught on (their session is in recovery): a remove of
    /// a map that holds one of them fails with EBUSY while the disk is there.
    probe_caught_on: Vec<String>,
    /// udev has described each new disk by the time brick sees it, with this
    /// DM_MULTIPATH_DEVICE_PATH (None: udev is slower than brick, no record yet).
    udev_describes_new_disks: Option<bool>,
    /// multipathd takes a path's WWID from udev's record (its default `uid_attribute`), and
    /// udev gives new disks none (no udevd, or one whose SCSI rules are slow or failing): it
    /// gets none for a disk whose record has no ID_SERIAL.
    udev_gives_no_uid: bool,
    /// udevd runs but its SCSI rules fail: each new disk gets a record with no ID_SERIAL.
    udev_stuck: bool,
    /// Paths multipathd holds with no WWID (no udev record): it builds no map of them, and a
    /// second `add path` does not look again (0.9.4's cli_add_path); only a map that holds
    /// them, adopted with `add map`, gives them its WWID.
    no_wwid_paths: Vec<String>,
    /// multipathd has not reloaded the maps yet when a disk goes: the disk's link in its map's
    /// `slaves/` stays, leading to the folder the kernel removed.
    maps_reloaded_late: bool,
    /// NVMe-oF targets and what the fake fabrics device was asked.
    nvme: nvme::NvmeWorld,
    /// Portals whose login waits until a path has been handed to multipathd.
    held_logins: Vec<String>,
    /// Whether the held-back login saw a path handed to multipathd before it went on.
    held_login_saw_a_handed_path: Option<bool>,
    /// How many device-mapper status requests (a map looked up by its uuid) were made.
    dm_status_asked: usize,
    /// (disk, session, LUN, new disk, its WWID): the delete of the disk is followed by a new
    /// disk at that LUN of that session, as a rescan by someone else would make.
    rescan_on_delete: Vec<(String, u32, u64, String, String)>,
    /// Disks whose delete waits until a session has been logged out.
    held_deletes: Vec<String>,
    /// Whether the held-back delete saw a logout before it went on.
    held_delete_saw_a_logout: Option<bool>,
}

/// A fake host that owns its temporary directory.
pub struct FakeHost {
    dir: tempfile::TempDir,
    world: Arc<Mutex<World>>,
    clock: Arc<FakeClock>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// A link at `link` to `target` (both absolute), written relative as sysfs writes its links.
fn rel_link(target: &Path, link: &Path) {
    let from = link.parent().expect("a link has a folder");
    let t: Vec<Component> = target.components().collect();
    let f: Vec<Component> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    fs::create_dir_all(from).expect("create link folder");
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(rel, link).expect("create link");
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a file has a folder")).expect("create folder");
    fs::write(path, text).expect("write file");
}

impl FakeHost {
    /// An empty host: no session, no disk, no map.
    pub fn new() -> FakeHost {
        let dir = tempfile::tempdir().expect("temporary directory");
        for d in [
            "sys/block",
            "sys/class/iscsi_session",
            "sys/class/scsi_host",
            "sys/devices/virtual/block",
            "dev",
            "etc/iscsi/nodes",
        ] {
            fs::create_dir_all(dir.path().join(d)).expect("create fake tree");
        }
        write(
            &dir.path().join("etc/iscsi/initiatorname.iscsi"),
            "InitiatorName=iqn.1993-08.org.debian:01:fakehost\n",
        );
        // udevd runs.
        write(&dir.path().join("proc/100/comm"), "systemd-udevd\n");
        FakeHost {
            dir,
            world: Arc::new(Mutex::new(World::default())),
            clock: Arc::new(FakeClock::default()),
        }
    }

    /// The root of the fake tree.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A [`Host`] on this tree with the scripted runner, the fake kernel and the fake clock.
    pub fn host(&self) -> Host {
        let root = self.dir.path();
        Host::with_roots(root.join("sys"), root.join("dev"), root.join("etc/iscsi"))
            .runner(Arc::new(FakeRunner {
                root: root.to_path_buf(),
                world: self.world.clone(),
            }))
            .kernel(Arc::new(FakeKernel {
                root: root.to_path_buf(),
                world: self.world.clone(),
            }))
            .clock(self.clock.clone() as Arc<dyn Clock>)
            .multipathd(Arc::new(FakeMultipathd {
                root: root.to_path_buf(),
                world: self.world.clone(),
            }))
            .with_service(Arc::new(FakeSendTargets {
                world: self.world.clone(),
            })
                as Arc<dyn crate::iscsi::sendtargets::SendTargets>)
            .with_service(Arc::new(FakeIscsid {
                root: root.to_path_buf(),
                world: self.world.clone(),
            }) as Arc<dyn crate::iscsi::iscsid::Iscsid>)
            .run_dir(root.join("run/brick"))
            .proc_root(root.join("proc"))
            .multipath_dir(root.join("etc/multipath"))
            .nvme_conf_dir(root.join("etc/nvme"))
            .udev_data(root.join("run/udev/data"))
    }

    /// The fake clock (every sleep the code under test made).
    pub fn clock(&self) -> &FakeClock {
        &self.clock
    }

    fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    /// Adds session `id` to `portal` and target `iqn` (tpgt 1), on SCSI host `id + 5`, with its
    /// node record, as a login leaves them.
    pub fn session(&self, id: u32, portal: &str, iqn: &str) -> &Self {
        add_session(self.root(), &mut lock(&self.world), id, portal, iqn);
        self.node(iqn, portal)
    }

    /// Session `id` goes into recovery with its portal down, as the kernel shows it: the session
    /// `FAILED`, its disks `blocked`; and udev's probe of the map that holds them (it probes a
    /// map when a path fails) is caught on them: the map is busy until they are deleted.
    pub fn session_in_recovery(&self, id: u32) -> &Self {
        self.session_state(id, "FAILED");
        let disks = self.session_disk_names(id);
        for d in &disks {
            self.disk_state(d, "blocked");
        }
        lock(&self.world).probe_caught_on.extend(disks);
        self
    }

    /// Session `id`'s `recovery_tmo` ran out with its portal still down, as the kernel shows it
    /// then: the session `FREE`, its disks `transport-offline` (their I/O failed). iscsid may
    /// still log in again later; the session stays until someone logs it out.
    pub fn session_recovery_timed_out(&self, id: u32) -> &Self {
        self.session_state(id, "FREE");
        for d in self.session_disk_names(id) {
            self.disk_state(&d, "transport-offline");
        }
        self
    }

    /// Sets session `id`'s `recovery_tmo` (seconds; iscsid writes the node record's
    /// `replacement_timeout` there, 120 by default; negative: the kernel never gives up).
    pub fn recovery_tmo(&self, id: u32, secs: i64) -> &Self {
        write(
            &self
                .sys()
                .join(format!("class/iscsi_session/session{id}/recovery_tmo")),
            &format!("{secs}\n"),
        );
        self
    }

    /// The disks (`sdX`) of session `id`.
    fn session_disk_names(&self, id: u32) -> Vec<String> {
        let hostno = lock(&self.world)
            .sessions
            .get(&id)
            .expect("session exists")
            .0;
        fs::read_dir(self.sys().join("block"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let real = fs::canonicalize(e.path()).ok()?;
                let under = real.to_string_lossy().contains(&format!("/host{hostno}/"));
                (name.starts_with("sd") && under).then_some(name)
            })
            .collect()
    }

    /// Sets session `id`'s state (`LOGGED_IN`, or `FAILED` while it is in recovery: the kernel
    /// then scans nothing through it).
    pub fn session_state(&self, id: impl Into<SessionId>, state: &str) -> &Self {
        let id = id.into();
        write(
            &self
                .sys()
                .join(format!("class/iscsi_session/session{id}/state")),
            &format!("{state}\n"),
        );
        self
    }

    /// Sets `node.startup` in the node record of `iqn` at `portal` (`manual`, as brick makes
    /// them and os-brick leaves them before its logout; `automatic`, as a discovery makes them).
    pub fn node_startup(&self, iqn: &str, portal: &str, value: &str) -> &Self {
        let p: Portal = portal.parse().expect("a portal");
        let rec = self.root().join(format!(
            "etc/iscsi/nodes/{iqn}/{},{},1/default",
            p.address(),
            p.port
        ));
        let text = fs::read_to_string(&rec).expect("a node record");
        let text = crate::iscsi::node::set_keys(&text, &[("node.startup", value)]);
        write(&rec, &text);
        self
    }

    /// iscsid answers logouts on its management socket, as on a host whose open-iscsi release
    /// brick knows: a disconnect then starts no iscsiadm.
    pub fn iscsid_answers(&self) -> &Self {
        lock(&self.world).iscsid_answers = true;
        self
    }

    /// iscsid takes each logout on its management socket but answers none before brick's
    /// timeout (its loop busy elsewhere); with `logs_out` the session goes all the same.
    pub fn iscsid_answers_too_late(&self, logs_out: bool) -> &Self {
        lock(&self.world).iscsid_answers_late = Some(logs_out);
        self
    }

    /// multipathd calls path `name` active (its checker saw it answer), whatever sysfs says.
    pub fn multipathd_calls_active(&self, name: &str) -> &Self {
        lock(&self.world).multipathd_active.push(name.to_string());
        self
    }

    /// Writes multipath's wwids file with `wwids` (as multipath-tools write it).
    pub fn wwids_file(&self, wwids: &[&str]) -> &Self {
        let mut text = String::from("# Multipath wwids, Version : 1.0\n");
        for w in wwids {
            text.push_str(&format!("/{w}/\n"));
        }
        write(&self.root().join("etc/multipath/wwids"), &text);
        self
    }

    /// Adds an open-iscsi node record of `iqn` at `portal` (tpgt 1).
    pub fn node(&self, iqn: &str, portal: &str) -> &Self {
        add_node(self.root(), iqn, portal);
        self
    }

    /// Adds disk `name` (`sdX`) at LUN `lun` of session `session`, with the kernel's `wwid` text
    /// (`naa.6001405...`), in state `running`.
    pub fn disk(&self, session: u32, lun: u64, name: &str, wwid: &str) -> &Self {
        let hostno = lock(&self.world)
            .sessions
            .get(&session)
            .expect("session exists")
            .0;
        add_disk(self.root(), hostno, session, lun, name, wwid);
        self
    }

    /// Adds multipath map `dev` (`dm-N`) over `slaves`, named and identified after the WWID of
    /// the first slave, as multipathd builds it.
    pub fn map(&self, dev: &str, slaves: &[&str]) -> &Self {
        let raw = fs::read_to_string(self.sys().join(format!("block/{}/device/wwid", slaves[0])))
            .expect("slave wwid");
        let wwid = Wwid::from_sysfs(&raw).expect("wwid");
        self.dm(dev, wwid.as_str(), &wwid.mpath_uuid(), slaves)
    }

    /// Makes attribute `path` (relative to the fake root, e.g. `sys/block/dm-1/dm/uuid`)
    /// unreadable: a folder where the file was. Whatever reads it fails, so a lookup that
    /// succeeds did not read it.
    pub fn unreadable(&self, path: &str) -> &Self {
        let p = self.root().join(path);
        let p = fs::canonicalize(&p).unwrap_or(p);
        fs::remove_file(&p).expect("the attribute exists");
        fs::create_dir(&p).expect("a folder in its place");
        self
    }

    /// Adds any device-mapper device `dev` with a name, a uuid and slaves.
    pub fn dm(&self, dev: &str, name: &str, uuid: &str, slaves: &[&str]) -> &Self {
        add_dm(self.root(), dev, name, uuid, slaves);
        self
    }

    /// Offers target `iqn` at `portal` with `luns` (LUN, kernel wwid text), for discovery and
    /// login. A login scans nothing; a write to the SCSI host's `scan` makes the LUN's disk appear.
    pub fn target(&self, portal: &str, iqn: &str, luns: &[(u64, &str)]) -> &Self {
        let t = FakeTarget {
            portal: portal.to_string(),
            iqn: iqn.to_string(),
            luns: luns.iter().map(|(l, w)| (*l, w.to_string())).collect(),
            ..Default::default()
        };
        lock(&self.world).targets.push(t);
        self
    }

    /// Changes, with `change`, every target set up so far that `which` picks.
    fn each_target(
        &self,
        which: impl Fn(&FakeTarget) -> bool,
        mut change: impl FnMut(&mut FakeTarget),
    ) -> &Self {
        for t in lock(&self.world).targets.iter_mut().filter(|t| which(t)) {
            change(t);
        }
        self
    }

    /// Requires CHAP with `user` and `password` on every target.
    pub fn target_chap(&self, user: &str, password: &str) -> &Self {
        self.each_target(
            |_| true,
            |t| t.chap = Some((user.to_string(), password.to_string())),
        )
    }

    /// Makes target `iqn` map LUN `lun` late: on each portal, its first `misses` scans of the LUN
    /// find nothing (as when an array maps the LUN to the initiator after the attach began).
    pub fn lun_mapped_late(&self, iqn: &str, lun: u64, misses: usize) -> &Self {
        self.each_target(
            |t| t.iqn == iqn,
            |t| {
                t.late.insert(lun, misses);
            },
        )
    }

    /// Holds a login to `portal` back until a path has been handed to multipathd (up to 5 s of
    /// real time), as a slow portal's login outlasts another portal's whole attach.
    pub fn login_waits_for_a_handed_path(&self, portal: &str) -> &Self {
        lock(&self.world).held_logins.push(portal.to_string());
        self
    }

    /// Whether the login held back by [`FakeHost::login_waits_for_a_handed_path`] saw a path
    /// handed to multipathd before it went on (`None`: no such login ran).
    pub fn held_login_saw_a_handed_path(&self) -> Option<bool> {
        lock(&self.world).held_login_saw_a_handed_path
    }

    /// Makes `portal` dead: discovery and login there fail.
    pub fn portal_dead(&self, portal: &str) -> &Self {
        self.each_target(|t| t.portal == portal, |t| t.dead = true)
    }

    /// Builds a multipath map for every disk that appears from now on, as multipathd would.
    pub fn auto_multipath(&self) -> &Self {
        lock(&self.world).auto_multipath = true;
        self
    }

    /// Makes udev describe each new disk before brick looks at it, saying whether
    /// `multipath -u` called it a path of a map (`DM_MULTIPATH_DEVICE_PATH`).
    pub fn udev_describes_new_disks(&self, multipath_path: bool) -> &Self {
        lock(&self.world).udev_describes_new_disks = Some(multipath_path);
        self
    }

    /// Writes udev's record of an existing disk, as above.
    pub fn udev_record(&self, name: &str, multipath_path: bool) -> &Self {
        write_udev_record(self.root(), name, multipath_path);
        self
    }

    /// The "change" uevents asked for: the devices whose `uevent` attribute was written.
    pub fn uevents_asked(&self) -> Vec<String> {
        let sys = self.root().join("sys/block");
        let mut asked = Vec::new();
        for disk in fs::read_dir(&sys).into_iter().flatten().flatten() {
            let dir = disk.path();
            let parts = fs::read_dir(&dir).into_iter().flatten().flatten();
            let devices = std::iter::once(dir.clone()).chain(
                parts
                    .map(|e| e.path())
                    .filter(|p| p.join("partition").exists()),
            );
            for d in devices {
                if fs::read_to_string(d.join("uevent")).is_ok_and(|t| t == "change") {
                    asked.push(d.file_name().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        asked.sort();
        asked
    }

    /// Makes multipathd build maps only for WWIDs in its wwids file, as with `find_multipaths
    /// strict`.
    pub fn find_multipaths_strict(&self) -> &Self {
        lock(&self.world).find_multipaths_strict = true;
        self
    }

    /// Stops udevd, with multipathd left at its default `uid_attribute` (ID_SERIAL from udev's
    /// record): its process goes, no new disk gets a udev record, and multipathd answers
    /// `add path` of a disk udev never described with "fail" and builds no map of it, as 0.9.4
    /// does (pathinfo finds no WWID; the sysfs fallback waits for retriggers udev never answers).
    /// `multipath DEVNODE` still builds the map (the tool reads the WWID from sysfs).
    pub fn without_udevd(&self) -> &Self {
        let _ = fs::remove_dir_all(self.root().join("proc/100"));
        lock(&self.world).udev_gives_no_uid = true;
        self
    }

    /// udevd runs, but its SCSI rules are slow or failing (issue 26): new disks get a udev
    /// record with no ID_SERIAL, so multipathd at its default `uid_attribute` answers `add
    /// path` with "fail" and builds no map of them (0.9.4 falls back to sysfs only after three
    /// retriggers, some 30 s); `multipath DEVNODE` still builds the map (the tool reads the WWID
    /// from sysfs).
    pub fn udevd_stuck(&self) -> &Self {
        let mut w = lock(&self.world);
        w.udev_gives_no_uid = true;
        w.udev_stuck = true;
        drop(w);
        self
    }

    /// Makes multipathd unreachable.
    pub fn multipathd_down(&self) -> &Self {
        lock(&self.world).multipathd_down = true;
        self
    }

    /// Every command sent to multipathd's socket so far.
    pub fn multipathd_cmds(&self) -> Vec<String> {
        lock(&self.world).multipathd_cmds.clone()
    }

    /// Sets the size of block device `name` in bytes.
    pub fn set_size(&self, name: &str, bytes: u64) -> &Self {
        let dir =
            fs::canonicalize(self.sys().join(format!("block/{name}"))).expect("device exists");
        write(&dir.join("size"), &format!("{}\n", bytes / 512));
        self
    }

    /// The text of the first node record of `iqn` at `portal`, if any.
    pub fn node_record(&self, iqn: &str, portal: &str) -> Option<String> {
        let p: Portal = portal.parse().expect("a portal");
        let dir = self.root().join(format!("etc/iscsi/nodes/{iqn}"));
        let entry = fs::read_dir(dir)
            .ok()?
            .flatten()
            .find(|e| is_record_of(&e.file_name().to_string_lossy(), &p))?;
        record_text(&entry.path())
    }

    /// Answers commands for which `matches` is true with `respond`, `uses` times (`None`: always),
    /// before the fake's default behaviour.
    pub fn script(
        &self,
        matches: impl Fn(&[String]) -> bool + Send + Sync + 'static,
        respond: impl Fn(&[String]) -> Result<Output, CmdError> + Send + Sync + 'static,
        uses: Option<usize>,
    ) -> &Self {
        lock(&self.world).scripts.push(Script {
            matches: Box::new(matches),
            respond: Box::new(respond),
            uses,
        });
        self
    }

    /// Makes every flush of `/dev/NAME` fail with `error`.
    pub fn fail_flush(&self, name: &str, error: KernelError) -> &Self {
        lock(&self.world)
            .flush_failures
            .insert(name.to_string(), (error, None));
        self
    }

    /// Makes the next `times` flushes of `/dev/NAME` fail with `error`.
    pub fn fail_flush_times(&self, name: &str, error: KernelError, times: usize) -> &Self {
        lock(&self.world)
            .flush_failures
            .insert(name.to_string(), (error, Some(times)));
        self
    }

    /// Makes every device-mapper request on the map `name` fail with `error`.
    pub fn fail_dm(&self, name: &str, error: KernelError) -> &Self {
        lock(&self.world)
            .dm_failures
            .insert(name.to_string(), (error, None));
        self
    }

    /// Makes the next `times` device-mapper requests on the map `name` fail with `error`.
    pub fn fail_dm_times(&self, name: &str, error: KernelError, times: usize) -> &Self {
        lock(&self.world)
            .dm_failures
            .insert(name.to_string(), (error, Some(times)));
        self
    }

    /// The device-mapper requests made so far: (map name, `remove` or `message TEXT`).
    pub fn dm_calls(&self) -> Vec<(String, String)> {
        lock(&self.world).dm_calls.clone()
    }

    /// Holds the `delete` of disk `name` back until a session has been logged out (up to 5 s of
    /// real time), as a slow device's removal outlasts another session's whole teardown.
    pub fn delete_waits_for_a_logout(&self, name: &str) -> &Self {
        lock(&self.world).held_deletes.push(name.to_string());
        self
    }

    /// Whether the delete held back by [`FakeHost::delete_waits_for_a_logout`] saw a logout
    /// before it went on (`None`: no such delete ran).
    pub fn held_delete_saw_a_logout(&self) -> Option<bool> {
        lock(&self.world).held_delete_saw_a_logout
    }

    /// Makes the `delete` of disk `name` hang (it times out and the disk stays).
    pub fn stuck_delete(&self, name: &str) -> &Self {
        lock(&self.world).stuck_deletes.push(name.to_string());
        self
    }

    /// When disk `name` is deleted, disk `new` with `wwid` shows at `lun` of `session`, as a
    /// rescan by someone else while the disconnect runs would make it.
    pub fn rescan_on_delete(
        &self,
        name: &str,
        session: u32,
        lun: u64,
        new: &str,
        wwid: &str,
    ) -> &Self {
        lock(&self.world).rescan_on_delete.push((
            name.to_string(),
            session,
            lun,
            new.to_string(),
            wwid.to_string(),
        ));
        self
    }

    /// When disk `name` is deleted, session `session` is logged out and its node record deleted
    /// at once, as a concurrent disconnect of another volume on that session would.
    pub fn logout_on_delete(&self, name: &str, session: u32) -> &Self {
        lock(&self.world)
            .logout_on_delete
            .push((name.to_string(), session));
        self
    }

    /// Makes `portal`'s SendTargets answer list `entries` (portal, IQN), whatever targets it has.
    pub fn discovery_answer(&self, portal: &str, entries: &[(&str, &str)]) -> &Self {
        lock(&self.world).discovery_answers.insert(
            portal.to_string(),
            entries
                .iter()
                .map(|(p, i)| (p.to_string(), i.to_string()))
                .collect(),
        );
        self
    }

    /// The portals asked with SendTargets so far (in-process discovery).
    pub fn discoveries(&self) -> Vec<String> {
        lock(&self.world).discoveries.clone()
    }

    /// Every command run so far, as argv.
    pub fn calls(&self) -> Vec<Vec<String>> {
        lock(&self.world).calls.clone()
    }

    /// Every device flushed so far (`sda`, `dm-0`), in order.
    pub fn flushes(&self) -> Vec<String> {
        lock(&self.world).flushes.clone()
    }

    /// Every sysfs attribute write so far, as (path under sys/, value).
    pub fn attr_writes(&self) -> Vec<(String, String)> {
        lock(&self.world).attr_writes.clone()
    }

    /// Whether block device `name` (`sdX`, `dm-N`) exists.
    pub fn has_block(&self, name: &str) -> bool {
        self.sys().join(format!("block/{name}")).exists()
    }

    /// The ids of the sessions that exist.
    pub fn session_ids(&self) -> Vec<u32> {
        lock(&self.world).sessions.keys().copied().collect()
    }

    /// Whether a node record of `iqn` at `portal` exists.
    pub fn has_node(&self, iqn: &str, portal: &str) -> bool {
        self.node_record(iqn, portal).is_some()
    }

    /// multipathd takes the paths handed to it but builds no map, as when it cannot get their
    /// WWID (no udev, and its sysfs fallback not yet due), and the `multipath` tool builds none
    /// either.
    pub fn multipathd_builds_no_maps(&self) -> &Self {
        lock(&self.world).multipathd_builds_no_maps = true;
        self
    }

    /// What happened on the host, in order: `flush NAME`, `dm remove NAME`, `dm message NAME`,
    /// `delete NAME`, `logout SID`.
    pub fn events(&self) -> Vec<String> {
        lock(&self.world).events.clone()
    }

    /// Sets disk `name`'s SCSI device state (`running`, `blocked` while its session is in
    /// recovery, `transport-offline` once the session gave up, `offline`).
    pub fn disk_state(&self, name: &str, state: &str) -> &Self {
        write(
            &self.sys().join(format!("block/{name}/device/state")),
            &format!("{state}\n"),
        );
        self
    }

    /// Disk `name` shows no WWID (`device/wwid` missing: the device gave no usable
    /// identification page).
    pub fn disk_without_wwid(&self, name: &str) -> &Self {
        fs::remove_file(self.sys().join(format!("block/{name}/device/wwid"))).expect("wwid");
        self
    }

    /// Process `pid` (`comm`) has block device `dev` open, as /proc shows it: `PID/comm`, and a
    /// descriptor in `PID/fd` that leads to `/dev/DEV`. The fake kernel then refuses to remove
    /// it if it is a device-mapper device (EBUSY), as the kernel does, until
    /// [`FakeHost::closed_by`].
    pub fn opened_by(&self, pid: u32, comm: &str, dev: &str) -> &Self {
        let dir = self.root().join(format!("proc/{pid}"));
        write(&dir.join("comm"), &format!("{comm}\n"));
        fs::create_dir_all(dir.join("fd")).expect("fd");
        std::os::unix::fs::symlink(self.root().join(format!("dev/{dev}")), dir.join("fd/3"))
            .expect("fd link");
        self
    }

    /// Process `pid` exits: what it held open is closed.
    pub fn closed_by(&self, pid: u32) -> &Self {
        let _ = fs::remove_dir_all(self.root().join(format!("proc/{pid}")));
        self
    }

    /// Block device `dev` is mounted at `point`, as `/proc/self/mountinfo` shows it (a line
    /// naming its device number).
    pub fn mounted(&self, dev: &str, point: &str) -> &Self {
        let number = fs::read_to_string(self.sys().join(format!("block/{dev}/dev")))
            .expect("the device has a number");
        let path = self.root().join("proc/self/mountinfo");
        let mut text = fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!(
            "36 25 {} / {point} rw,relatime shared:1 - ext4 /dev/{dev} rw\n",
            number.trim()
        ));
        write(&path, &text);
        self
    }

    /// The timeout brick gave each command it sent to multipathd so far, with the command.
    pub fn multipathd_timeouts(&self) -> Vec<(String, Duration)> {
        lock(&self.world).multipathd_timeouts.clone()
    }

    /// multipathd reloads a map only some time after one of its paths went, as the lab showed
    /// right after a forced disconnect deleted the paths of a map held open: until then the
    /// kernel leaves each deleted disk's link in the map's `slaves/`, leading to the folder it
    /// removed (and the table still names the disk's device number).
    pub fn maps_reloaded_late(&self) -> &Self {
        lock(&self.world).maps_reloaded_late = true;
        self
    }

    /// On target `iqn`, the next scan of LUN `scanned` on a session also finds LUN `other`'s
    /// disk there, as when another attach scanned `other` on the same session meanwhile.
    pub fn another_attach_scans(&self, iqn: &str, scanned: u64, other: u64) -> &Self {
        self.each_target(
            |t| t.iqn == iqn,
            |t| {
                t.also_scanned.insert(scanned, other);
            },
        )
    }

    /// The devices flushed with a cache flush too (device-mapper maps), in order.
    pub fn syncs(&self) -> Vec<String> {
        lock(&self.world).syncs.clone()
    }
}
