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
use crate::types::{Portal, Wwid};

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
}

#[derive(Default)]
struct World {
    targets: Vec<FakeTarget>,
    /// Build a multipath map for each new disk, as multipathd does when udev tells it.
    auto_multipath: bool,
    /// multipathd does not answer on its socket.
    multipathd_down: bool,
    /// multipathd builds maps only for WWIDs listed in etc/multipath/wwids (`find_multipaths
    /// strict`).
    find_multipaths_strict: bool,
    multipathd_cmds: Vec<String>,
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
    /// Disks a udev probe of their map is caught on (their session is in recovery): a remove of
    /// a map that holds one of them fails with EBUSY while the disk is there.
    probe_caught_on: Vec<String>,
    /// udev has described each new disk by the time brick sees it, with this
    /// DM_MULTIPATH_DEVICE_PATH (None: udev is slower than brick, no record yet).
    udev_describes_new_disks: Option<bool>,
    /// No udevd runs, and multipathd takes a path's WWID from udev's record (its default
    /// `uid_attribute`): it gets none for a disk udev never described.
    no_udevd: bool,
    /// Paths multipathd holds with no WWID (no udev record): it builds no map of them, and a
    /// second `add path` does not look again (0.9.4's cli_add_path); only a map that holds
    /// them, adopted with `add map`, gives them its WWID.
    no_wwid_paths: Vec<String>,
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
            .send_targets_client(Arc::new(FakeSendTargets {
                world: self.world.clone(),
            }))
            .run_dir(root.join("run/brick"))
            .proc_root(root.join("proc"))
            .multipath_dir(root.join("etc/multipath"))
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
        let hostno = lock(&self.world)
            .sessions
            .get(&id)
            .expect("session exists")
            .0;
        let disks: Vec<String> = fs::read_dir(self.sys().join("block"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let real = fs::canonicalize(e.path()).ok()?;
                let under = real.to_string_lossy().contains(&format!("/host{hostno}/"));
                (name.starts_with("sd") && under).then_some(name)
            })
            .collect();
        for d in &disks {
            write(
                &self.sys().join(format!("block/{d}/device/state")),
                "blocked\n",
            );
        }
        lock(&self.world).probe_caught_on.extend(disks);
        self
    }

    /// Sets session `id`'s state (`LOGGED_IN`, or `FAILED` while it is in recovery: the kernel
    /// then scans nothing through it).
    pub fn session_state(&self, id: u32, state: &str) -> &Self {
        write(
            &self
                .sys()
                .join(format!("class/iscsi_session/session{id}/state")),
            &format!("{state}\n"),
        );
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

    /// Requires CHAP with `user` and `password` on every target.
    pub fn target_chap(&self, user: &str, password: &str) -> &Self {
        for t in &mut lock(&self.world).targets {
            t.chap = Some((user.to_string(), password.to_string()));
        }
        self
    }

    /// Makes target `iqn` map LUN `lun` late: on each portal, its first `misses` scans of the LUN
    /// find nothing (as when an array maps the LUN to the initiator after the attach began).
    pub fn lun_mapped_late(&self, iqn: &str, lun: u64, misses: usize) -> &Self {
        for t in lock(&self.world)
            .targets
            .iter_mut()
            .filter(|t| t.iqn == iqn)
        {
            t.late.insert(lun, misses);
        }
        self
    }

    /// Makes `portal` dead: discovery and login there fail.
    pub fn portal_dead(&self, portal: &str) -> &Self {
        for t in lock(&self.world)
            .targets
            .iter_mut()
            .filter(|t| t.portal == portal)
        {
            t.dead = true;
        }
        self
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
        lock(&self.world).no_udevd = true;
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

    /// Makes the `delete` of disk `name` hang (it times out and the disk stays).
    pub fn stuck_delete(&self, name: &str) -> &Self {
        lock(&self.world).stuck_deletes.push(name.to_string());
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
}

fn add_session(root: &Path, w: &mut World, id: u32, portal: &str, iqn: &str) {
    let hostno = id + 5;
    let sys = root.join("sys");
    let hostdir = sys.join(format!("devices/platform/host{hostno}"));
    let sdir = hostdir.join(format!("session{id}"));
    let cls = sdir.join(format!("iscsi_session/session{id}"));
    write(&cls.join("targetname"), &format!("{iqn}\n"));
    write(&cls.join("tpgt"), "1\n");
    write(&cls.join("state"), "LOGGED_IN\n");
    write(&cls.join("recovery_tmo"), "120\n");
    rel_link(&sdir, &cls.join("device"));
    rel_link(&cls, &sys.join(format!("class/iscsi_session/session{id}")));
    let p: Portal = portal.parse().expect("a portal");
    let conn = sdir.join(format!(
        "connection{id}:0/iscsi_connection/connection{id}:0"
    ));
    write(
        &conn.join("persistent_address"),
        &format!("{}\n", p.address()),
    );
    write(&conn.join("persistent_port"), &format!("{}\n", p.port));
    let sh = hostdir.join(format!("scsi_host/host{hostno}"));
    write(&sh.join("scan"), "");
    write(&sh.join("proc_name"), "iscsi_tcp\n");
    rel_link(&sh, &sys.join(format!("class/scsi_host/host{hostno}")));
    w.sessions
        .insert(id, (hostno, portal.to_string(), iqn.to_string(), 1));
}

/// A node record as discovery makes it: `ADDRESS,PORT,TPGT/default` (brick's own records are
/// the plain file `ADDRESS,PORT`, see `iscsi::node::create`).
fn add_node(root: &Path, iqn: &str, portal: &str) {
    let p: Portal = portal.parse().expect("a portal");
    let rec = root.join(format!(
        "etc/iscsi/nodes/{iqn}/{},{},1/default",
        p.address(),
        p.port
    ));
    write(&rec, &format!("# BEGIN RECORD 2.1.8\nnode.name = {iqn}\nnode.startup = automatic\nnode.session.scan = auto\n# END RECORD\n"));
}

/// Removes the node records of `iqn` at `portal`; returns whether there was one.
fn remove_records(root: &Path, iqn: &str, portal: &Portal) -> bool {
    let dir = root.join(format!("etc/iscsi/nodes/{iqn}"));
    let mut found = false;
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        if is_record_of(&e.file_name().to_string_lossy(), portal) {
            let _ = fs::remove_dir_all(e.path());
            let _ = fs::remove_file(e.path());
            found = true;
        }
    }
    found
}

fn add_disk(root: &Path, hostno: u32, session: u32, lun: u64, name: &str, wwid: &str) {
    let sys = root.join("sys");
    let tdir = sys.join(format!(
        "devices/platform/host{hostno}/session{session}/target{hostno}:0:0"
    ));
    let ldir = tdir.join(format!("{hostno}:0:0:{lun}"));
    write(&ldir.join("wwid"), &format!("{wwid}\n"));
    write(&ldir.join("state"), "running\n");
    write(&ldir.join("delete"), "");
    write(&ldir.join("rescan"), "");
    write(&ldir.join("vendor"), "LIO-ORG \n");
    let bdir = ldir.join(format!("block/{name}"));
    write(&bdir.join("size"), "131072\n");
    write(&bdir.join("dev"), &format!("{}\n", dev_t(name)));
    write(&bdir.join("uevent"), "");
    fs::create_dir_all(bdir.join("holders")).expect("holders");
    fs::create_dir_all(bdir.join("slaves")).expect("slaves");
    rel_link(&ldir, &bdir.join("device"));
    rel_link(&bdir, &sys.join(format!("block/{name}")));
    write(&root.join(format!("dev/{name}")), "");
}

/// The device number of a fake disk: sda 8:0, sdb 8:16, and so on (as sd numbers them).
fn dev_t(name: &str) -> String {
    let n = name
        .strip_prefix("sd")
        .and_then(|l| l.bytes().last())
        .map_or(0, |b| u32::from(b.saturating_sub(b'a')));
    format!("8:{}", n * 16)
}

/// udev's record of a block device, as systemd-udevd writes it (the properties, `E:` lines).
fn write_udev_record(root: &Path, name: &str, multipath_path: bool) {
    let flag = u8::from(multipath_path);
    write(
        &root.join(format!("run/udev/data/b{}", dev_t(name))),
        &format!("I:1234567\nE:ID_SERIAL=fake\nE:DM_MULTIPATH_DEVICE_PATH={flag}\nG:systemd\n"),
    );
}

/// Whether udev has a record of block device `name`.
fn has_udev_record(root: &Path, name: &str) -> bool {
    root.join(format!("run/udev/data/b{}", dev_t(name)))
        .exists()
}

fn add_dm(root: &Path, dev: &str, name: &str, uuid: &str, slaves: &[&str]) {
    let sys = root.join("sys");
    let ddir = sys.join(format!("devices/virtual/block/{dev}"));
    write(&ddir.join("dm/name"), &format!("{name}\n"));
    write(&ddir.join("dm/uuid"), &format!("{uuid}\n"));
    write(&ddir.join("size"), "131072\n");
    fs::create_dir_all(ddir.join("holders")).expect("holders");
    fs::create_dir_all(ddir.join("slaves")).expect("slaves");
    rel_link(&ddir, &sys.join(format!("block/{dev}")));
    for s in slaves {
        add_slave(root, dev, s);
    }
    write(&root.join(format!("dev/{dev}")), "");
}

fn add_slave(root: &Path, dev: &str, slave: &str) {
    let sys = root.join("sys");
    let ddir = sys.join(format!("devices/virtual/block/{dev}"));
    let sdir = fs::canonicalize(sys.join(format!("block/{slave}"))).expect("slave exists");
    rel_link(&sdir, &ddir.join(format!("slaves/{slave}")));
    rel_link(&ddir, &sdir.join(format!("holders/{dev}")));
}

/// What the kernel does on `echo "- - L" > /sys/class/scsi_host/hostH/scan`: the LUN's disk
/// appears when the session's target has that LUN; multipathd then builds or grows the map.
fn scan(root: &Path, w: &mut World, hostno: u32, lun: u64) {
    let Some((&sid, (_, portal, iqn, _))) = w.sessions.iter().find(|(_, s)| s.0 == hostno) else {
        return;
    };
    let state = root.join(format!("sys/class/iscsi_session/session{sid}/state"));
    if fs::read_to_string(state).is_ok_and(|s| s.trim() != "LOGGED_IN") {
        return;
    }
    let Some(target) = w
        .targets
        .iter_mut()
        .find(|t| &t.portal == portal && &t.iqn == iqn)
    else {
        return;
    };
    if let Some(misses) = target.late.get_mut(&lun).filter(|m| **m > 0) {
        *misses -= 1;
        return;
    }
    let Some(wwid) = target.luns.get(&lun).cloned() else {
        return;
    };
    let name = format!("sd{}", (b'a' + (w.next_disk % 26) as u8) as char);
    w.next_disk += 1;
    add_disk(root, hostno, sid, lun, &name, &wwid);
    if let Some(said) = w.udev_describes_new_disks {
        write_udev_record(root, &name, said);
    }
    if w.auto_multipath {
        join_map(root, &name);
    }
}

/// What multipathd does with a new path: builds the map of its WWID, or adds the path to it.
fn join_map(root: &Path, name: &str) {
    let sys = root.join("sys/block");
    let Ok(raw) = fs::read_to_string(sys.join(format!("{name}/device/wwid"))) else {
        return;
    };
    if fs::read_dir(sys.join(format!("{name}/holders"))).is_ok_and(|mut d| d.next().is_some()) {
        return;
    }
    {
        let id = Wwid::from_sysfs(&raw).expect("wwid");
        let sys = root.join("sys/block");
        let existing = fs::read_dir(&sys)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|d| {
                d.starts_with("dm-")
                    && fs::read_to_string(sys.join(format!("{d}/dm/uuid")))
                        .is_ok_and(|u| u.trim() == id.mpath_uuid())
            });
        match existing {
            Some(dev) => add_slave(root, &dev, name),
            None => {
                let n = fs::read_dir(&sys)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("dm-"))
                    .count();
                add_dm(
                    root,
                    &format!("dm-{n}"),
                    id.as_str(),
                    &id.mpath_uuid(),
                    &[name],
                );
            }
        }
    }
}

/// Adds to the map `map` the paths of `waiting` that wait for it ((path, map name)), taking them
/// out of the list.
fn join_waiting(root: &Path, waiting: &mut Vec<(String, String)>, map: &str) {
    let (join, keep): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(_, m)| m == map);
    *waiting = keep;
    for (p, _) in join {
        join_map(root, &p);
    }
}

/// The text of a node record entry: the file itself, or the `default` file in its folder.
fn record_text(entry: &Path) -> Option<String> {
    if entry.is_dir() {
        fs::read_to_string(entry.join("default")).ok()
    } else {
        fs::read_to_string(entry).ok()
    }
}

/// Removes a disk as the kernel does: its folder, its /sys/block link and its holders' slave links.
/// Logs session `id` out: its disks and its sysfs entries go. Returns its (portal, IQN).
fn remove_session(root: &Path, w: &mut World, id: u32) -> Option<(String, String)> {
    let (hostno, portal, iqn, _) = w.sessions.remove(&id)?;
    let sys = root.join("sys");
    let sdir = sys.join(format!("devices/platform/host{hostno}/session{id}"));
    for d in walk_block_names(&sdir) {
        remove_disk(root, &d);
    }
    let _ = fs::remove_dir_all(sys.join(format!("devices/platform/host{hostno}")));
    let _ = fs::remove_file(sys.join(format!("class/iscsi_session/session{id}")));
    let _ = fs::remove_file(sys.join(format!("class/scsi_host/host{hostno}")));
    Some((portal, iqn))
}

fn remove_disk(root: &Path, name: &str) {
    let sys = root.join("sys");
    let link = sys.join(format!("block/{name}"));
    let Ok(bdir) = fs::canonicalize(&link) else {
        return;
    };
    for h in fs::read_dir(bdir.join("holders"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = fs::remove_file(sys.join(format!(
            "block/{}/slaves/{name}",
            h.file_name().to_string_lossy()
        )));
    }
    let ldir = bdir
        .parent()
        .and_then(Path::parent)
        .expect("H:C:T:L folder")
        .to_path_buf();
    let _ = fs::remove_dir_all(ldir);
    let _ = fs::remove_file(link);
    let _ = fs::remove_file(root.join(format!("dev/{name}")));
}

/// Removes a device-mapper device: its folder, its link and its slaves' holder links.
fn remove_dm(root: &Path, dev: &str) {
    let sys = root.join("sys");
    for s in fs::read_dir(sys.join(format!("block/{dev}/slaves")))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = fs::remove_file(sys.join(format!(
            "block/{}/holders/{dev}",
            s.file_name().to_string_lossy()
        )));
    }
    let _ = fs::remove_dir_all(sys.join(format!("devices/virtual/block/{dev}")));
    let _ = fs::remove_file(sys.join(format!("block/{dev}")));
    let _ = fs::remove_file(root.join(format!("dev/{dev}")));
}

fn dm_by_name(root: &Path, name: &str) -> Option<String> {
    let sys = root.join("sys/block");
    fs::read_dir(&sys)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|d| {
            d.starts_with("dm-")
                && fs::read_to_string(sys.join(format!("{d}/dm/name")))
                    .is_ok_and(|n| n.trim() == name)
        })
}

struct FakeRunner {
    root: PathBuf,
    world: Arc<Mutex<World>>,
}

impl FakeRunner {
    fn default_response(&self, w: &mut World, argv: &[String]) -> Result<Output, CmdError> {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        match a.as_slice() {
            // The multipath tool, without udev: it lists only the disks udev has described,
            // so it builds (or grows) the map of the device's WWID from that device alone,
            // reading the WWID from sysfs; libdevmapper must not wait for udev (DM_DISABLE_UDEV).
            ["env", "DM_DISABLE_UDEV=1", "multipath", dev] => {
                let name = Path::new(dev)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !self
                    .root
                    .join(format!("sys/block/{name}/device/wwid"))
                    .exists()
                {
                    return Ok(Output::exit(1, "", &format!("{dev}: no such device\n")));
                }
                join_map(&self.root, &name);
                Ok(Output::exit(0, "", ""))
            }
            ["iscsiadm", "-m", "session"] => {
                if w.sessions.is_empty() {
                    return Ok(Output::exit(21, "", "iscsiadm: No active sessions.\n"));
                }
                let text: String = w
                    .sessions
                    .iter()
                    .map(|(id, (_, portal, iqn, tpgt))| {
                        format!("tcp: [{id}] {portal},{tpgt} {iqn} (non-flash)\n")
                    })
                    .collect();
                Ok(Output::exit(0, &text, ""))
            }
            ["iscsiadm", "-m", "session", "-r", id, "--logout"] => {
                let id: u32 = id.parse().unwrap_or(0);
                let Some((portal, iqn)) = remove_session(&self.root, w, id) else {
                    return Ok(Output::exit(21, "", "iscsiadm: No session found.\n"));
                };
                Ok(Output::exit(
                    0,
                    &format!(
                        "Logging out of session [sid: {id}, target: {iqn}, portal: {portal}]\n"
                    ),
                    "",
                ))
            }
            ["iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--op", "delete"] => {
                let Ok(p) = portal.parse::<Portal>() else {
                    return Ok(Output::exit(7, "", "bad portal"));
                };
                if remove_records(&self.root, iqn, &p) {
                    Ok(Output::exit(0, "", ""))
                } else {
                    Ok(Output::exit(21, "", "iscsiadm: No records found\n"))
                }
            }
            ["iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--login"] => {
                let Ok(p) = portal.parse::<Portal>() else {
                    return Ok(Output::exit(7, "", "bad portal"));
                };
                let dir = self.root.join(format!("etc/iscsi/nodes/{iqn}"));
                let record = fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .find(|e| is_record_of(&e.file_name().to_string_lossy(), &p))
                    .and_then(|e| record_text(&e.path()));
                let Some(record) = record else {
                    return Ok(Output::exit(21, "", "iscsiadm: No records found\n"));
                };
                let Some(t) = w
                    .targets
                    .iter()
                    .find(|t| t.portal == *portal && t.iqn == *iqn)
                    .cloned()
                else {
                    return Ok(Output::exit(
                        8,
                        "",
                        "iscsiadm: Could not login: target not found\n",
                    ));
                };
                if t.dead {
                    return Ok(Output::exit(
                        8,
                        "",
                        "iscsiadm: Could not login: connection timed out\n",
                    ));
                }
                let key = |k: &str| {
                    record.lines().find_map(|l| {
                        l.split_once('=')
                            .filter(|(a, _)| a.trim() == k)
                            .map(|(_, v)| v.trim().to_string())
                    })
                };
                if let Some((user, pass)) = &t.chap {
                    if key("node.session.auth.username").as_ref() != Some(user)
                        || key("node.session.auth.password").as_ref() != Some(pass)
                    {
                        return Ok(Output::exit(
                            24,
                            "",
                            "iscsiadm: Login failed to authenticate\n",
                        ));
                    }
                }
                if w.sessions.values().any(|s| s.1 == *portal && s.2 == *iqn) {
                    return Ok(Output::exit(15, "", "iscsiadm: session exists\n"));
                }
                let id = w.sessions.keys().max().map_or(1, |m| m + 1);
                add_session(&self.root, w, id, portal, iqn);
                Ok(Output::exit(
                    0,
                    &format!(
                        "Login to [iface: default, target: {iqn}, portal: {portal}] successful.\n"
                    ),
                    "",
                ))
            }
            _ => Ok(Output::exit(
                127,
                "",
                &format!("fake host: no script for {}\n", argv.join(" ")),
            )),
        }
    }
}

fn walk_block_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_symlink() {
            continue;
        }
        if e.file_name() == "block" {
            out.extend(
                fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|b| b.file_name().to_string_lossy().into_owned()),
            );
        } else if p.is_dir() {
            out.extend(walk_block_names(&p));
        }
    }
    out
}

impl Runner for FakeRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        let argv = cmd.argv().to_vec();
        let mut w = lock(&self.world);
        w.calls.push(argv.clone());
        let mut i = 0;
        while i < w.scripts.len() {
            if (w.scripts[i].matches)(&argv) {
                let r = (w.scripts[i].respond)(&argv);
                if let Some(n) = w.scripts[i].uses.as_mut() {
                    *n -= 1;
                    if *n == 0 {
                        w.scripts.remove(i);
                    }
                }
                return r.map(|o| Output {
                    stdout: cmd.mask(&o.stdout),
                    stderr: cmd.mask(&o.stderr),
                    ..o
                });
            }
            i += 1;
        }
        self.default_response(&mut w, &argv)
    }
}

struct FakeMultipathd {
    root: PathBuf,
    world: Arc<Mutex<World>>,
}

impl crate::host::Multipathd for FakeMultipathd {
    fn command(&self, cmd: &str, _timeout: Duration) -> Result<String, String> {
        let mut w = lock(&self.world);
        w.multipathd_cmds.push(cmd.to_string());
        if w.multipathd_down {
            return Err("cannot reach multipathd (is it running?): Connection refused".into());
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            ["add", "path", name] => {
                let sys = self.root.join("sys/block");
                if w.no_wwid_paths.iter().any(|p| p == name) {
                    return Ok("fail".into());
                }
                if w.no_udevd && !has_udev_record(&self.root, name) {
                    w.no_wwid_paths.push(name.to_string());
                    return Ok("fail".into());
                }
                let wwid = fs::read_to_string(sys.join(format!("{name}/device/wwid")))
                    .ok()
                    .and_then(|raw| Wwid::from_sysfs(&raw).ok());
                if let Some(map) = wwid.map(|w| w.as_str().to_string()) {
                    let in_map = fs::read_dir(sys.join(format!("{name}/holders")))
                        .is_ok_and(|mut d| d.next().is_some());
                    if !in_map && w.maps_waiting_for_udev.contains(&map) {
                        w.delayed_paths.push((name.to_string(), map));
                        return Ok("ok".into());
                    }
                    let new = dm_by_name(&self.root, &map).is_none();
                    let known = fs::read_to_string(self.root.join("etc/multipath/wwids"))
                        .is_ok_and(|t| t.lines().any(|l| l.trim() == format!("/{map}/")));
                    if new && w.find_multipaths_strict && !known {
                        // Held without a map ("only one path"), until the WWID is known.
                        w.held_paths.push((name.to_string(), map));
                        return Ok("ok".into());
                    }
                    join_map(&self.root, name);
                    if new {
                        // A new map takes every held path of its WWID at once.
                        join_waiting(&self.root, &mut w.held_paths, &map);
                    }
                    if new && dm_by_name(&self.root, &map).is_some() {
                        w.maps_waiting_for_udev.push(map);
                    }
                }
                Ok("ok".into())
            }
            ["add", "map", map] => {
                let Some(dev) = dm_by_name(&self.root, map) else {
                    return Ok("fail".into());
                };
                // Adopting the map, multipathd gives its paths the map's WWID.
                let slaves: Vec<String> =
                    fs::read_dir(self.root.join(format!("sys/block/{dev}/slaves")))
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                w.no_wwid_paths.retain(|p| !slaves.contains(p));
                w.maps_waiting_for_udev.retain(|m| m != map);
                join_waiting(&self.root, &mut w.delayed_paths, map);
                Ok("ok".into())
            }
            ["resize", "map", _] => Ok("ok".into()),
            ["del", "path", name] => {
                let sys = self.root.join("sys/block");
                for h in fs::read_dir(sys.join(format!("{name}/holders")))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let dm = h.file_name().to_string_lossy().into_owned();
                    let _ = fs::remove_file(sys.join(format!("{dm}/slaves/{name}")));
                    let _ = fs::remove_file(h.path());
                }
                Ok("ok".into())
            }
            _ => Ok("fail".into()),
        }
    }
}

/// Scripted failures of a kernel operation: device -> (error, how many more fail; None: all).
type Failures = BTreeMap<String, (KernelError, Option<usize>)>;

/// The error the next operation on `name` fails with, if one is scripted (counting it down).
fn next_failure(failures: &mut Failures, name: &str) -> Option<KernelError> {
    let (e, left) = failures.get_mut(name)?;
    match left {
        None => Some(e.clone()),
        Some(0) => None,
        Some(n) => {
            *n -= 1;
            Some(e.clone())
        }
    }
}

struct FakeSendTargets {
    world: Arc<Mutex<World>>,
}

impl crate::host::SendTargets for FakeSendTargets {
    fn send_targets(
        &self,
        portal: &Portal,
        _initiator: &crate::types::Iqn,
        _timeout: Duration,
    ) -> Result<Vec<(Portal, crate::types::Iqn)>, String> {
        let mut w = lock(&self.world);
        let key = portal.to_string();
        w.discoveries.push(key.clone());
        let entries: Vec<(String, String)> = match w.discovery_answers.get(&key) {
            Some(e) => e.clone(),
            None => {
                let here: Vec<&FakeTarget> = w.targets.iter().filter(|t| t.portal == key).collect();
                if here.is_empty() || here.iter().any(|t| t.dead) {
                    return Err(format!("cannot connect to {key}: Connection refused"));
                }
                here.iter()
                    .map(|t| (t.portal.clone(), t.iqn.clone()))
                    .collect()
            }
        };
        Ok(entries
            .into_iter()
            .filter_map(|(p, i)| Some((p.parse().ok()?, i.parse().ok()?)))
            .collect())
    }
}

struct FakeKernel {
    root: PathBuf,
    world: Arc<Mutex<World>>,
}

impl Kernel for FakeKernel {
    fn dm(
        &self,
        _control: &Path,
        name: &str,
        request: DmRequest<'_>,
        _timeout: Duration,
    ) -> Result<(), KernelError> {
        let mut w = lock(&self.world);
        w.dm_calls.push((
            name.to_string(),
            match request {
                DmRequest::Remove => "remove".to_string(),
                DmRequest::Message(m) => format!("message {m}"),
            },
        ));
        if let Some(e) = next_failure(&mut w.dm_failures, name) {
            return Err(e);
        }
        let Some(dev) = dm_by_name(&self.root, name) else {
            return Err(KernelError::from_errno(libc::ENXIO));
        };
        if let DmRequest::Remove = request {
            let caught = w.probe_caught_on.iter().any(|d| {
                self.root
                    .join(format!("sys/block/{dev}/slaves/{d}"))
                    .exists()
            });
            if caught {
                return Err(KernelError::from_errno(libc::EBUSY));
            }
            let holders = self.root.join(format!("sys/block/{dev}/holders"));
            if fs::read_dir(holders).is_ok_and(|mut d| d.next().is_some()) {
                return Err(KernelError::from_errno(libc::EBUSY));
            }
            remove_dm(&self.root, &dev);
        }
        Ok(())
    }

    fn flush_buffers(&self, dev: &Path, _timeout: Duration) -> Result<(), KernelError> {
        let name = dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut w = lock(&self.world);
        w.flushes.push(name.clone());
        if let Some(e) = next_failure(&mut w.flush_failures, &name) {
            return Err(e);
        }
        if !dev.exists() {
            return Err(KernelError::Os(
                "No such file or directory (os error 2)".into(),
            ));
        }
        Ok(())
    }

    fn write_attr(&self, path: &Path, value: &str, timeout: Duration) -> Result<(), KernelError> {
        let sys = self.root.join("sys");
        let rel = path
            .strip_prefix(&sys)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string());
        let mut w = lock(&self.world);
        w.attr_writes.push((rel.clone(), value.to_string()));
        if !path.exists() {
            return Err(KernelError::Os(
                "No such file or directory (os error 2)".into(),
            ));
        }
        // block/sdX/device/delete
        let parts: Vec<&str> = rel.split('/').collect();
        if let ["block", name, "device", "delete"] = parts.as_slice() {
            if w.stuck_deletes.iter().any(|s| s == name) {
                return Err(KernelError::TimedOut(timeout));
            }
            let logout: Vec<u32> = w
                .logout_on_delete
                .iter()
                .filter(|(d, _)| d == name)
                .map(|(_, s)| *s)
                .collect();
            remove_disk(&self.root, name);
            for id in logout {
                if let Some((portal, iqn)) = remove_session(&self.root, &mut w, id) {
                    remove_records(&self.root, &iqn, &portal.parse().expect("a portal"));
                }
            }
            return Ok(());
        }
        // class/scsi_host/hostH/scan with "- - L"
        if let ["class", "scsi_host", h, "scan"] = parts.as_slice() {
            let hostno: u32 = h.trim_start_matches("host").parse().unwrap_or(u32::MAX);
            let lun = value.split_whitespace().nth(2).and_then(|l| l.parse().ok());
            if let Some(lun) = lun {
                scan(&self.root, &mut w, hostno, lun);
            }
            return Ok(());
        }
        fs::write(path, value).map_err(|e| KernelError::Os(e.to_string()))
    }
}
