//! The fake sysfs tree, laid out as the lab's kernel lays it out (sessions, SCSI disks, maps,
//! node records, udev records), and what the kernel and multipathd do to it.

use super::*;

pub(super) fn add_session(root: &Path, w: &mut World, id: u32, portal: &str, iqn: &str) {
    add_session_on(root, w, id, portal, iqn, "default", "tcp")
}

/// The interface session `id` was made on (its `ifacename`).
pub(super) fn session_iface(root: &Path, id: u32) -> String {
    fs::read_to_string(root.join(format!("sys/class/iscsi_session/session{id}/ifacename")))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "default".into())
}

/// Adds session `id` made on interface `iface` with `transport` (`tcp`: driver `iscsi_tcp`;
/// `iser`: `ib_iser`).
pub(super) fn add_session_on(
    root: &Path,
    w: &mut World,
    id: u32,
    portal: &str,
    iqn: &str,
    iface: &str,
    transport: &str,
) {
    let hostno = id + 5;
    let sys = root.join("sys");
    let hostdir = sys.join(format!("devices/platform/host{hostno}"));
    let sdir = hostdir.join(format!("session{id}"));
    let cls = sdir.join(format!("iscsi_session/session{id}"));
    write(&cls.join("targetname"), &format!("{iqn}\n"));
    write(&cls.join("tpgt"), "1\n");
    write(&cls.join("state"), "LOGGED_IN\n");
    write(&cls.join("recovery_tmo"), "120\n");
    write(&cls.join("ifacename"), &format!("{iface}\n"));
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
    let driver = match transport {
        "tcp" => "iscsi_tcp".to_string(),
        "iser" => "ib_iser".to_string(),
        other => other.to_string(),
    };
    write(&sh.join("proc_name"), &format!("{driver}\n"));
    rel_link(&sh, &sys.join(format!("class/scsi_host/host{hostno}")));
    w.sessions
        .insert(id, (hostno, portal.to_string(), iqn.to_string(), 1));
}

/// A node record as discovery makes it: `ADDRESS,PORT,TPGT/default` (brick's own records are
/// the plain file `ADDRESS,PORT`, see `iscsi::node::create`).
pub(super) fn add_node(root: &Path, iqn: &str, portal: &str) {
    let p: Portal = portal.parse().expect("a portal");
    let rec = root.join(format!(
        "etc/iscsi/nodes/{iqn}/{},{},1/default",
        p.address(),
        p.port
    ));
    write(&rec, &format!("# BEGIN RECORD 2.1.8\nnode.name = {iqn}\nnode.startup = automatic\nnode.session.scan = auto\n# END RECORD\n"));
}

/// Removes the node records of `iqn` at `portal`; returns whether there was one.
pub(super) fn remove_records(root: &Path, iqn: &str, portal: &Portal) -> bool {
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

pub(super) fn add_disk(root: &Path, hostno: u32, session: u32, lun: u64, name: &str, wwid: &str) {
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
pub(super) fn dev_t(name: &str) -> String {
    let n = name
        .strip_prefix("sd")
        .and_then(|l| l.bytes().last())
        .map_or(0, |b| u32::from(b.saturating_sub(b'a')));
    format!("8:{}", n * 16)
}

/// udev's record of a block device, as systemd-udevd writes it (the properties, `E:` lines).
pub(super) fn write_udev_record(root: &Path, name: &str, multipath_path: bool) {
    let flag = u8::from(multipath_path);
    write(
        &root.join(format!("run/udev/data/b{}", dev_t(name))),
        &format!("I:1234567\nE:ID_SERIAL=fake\nE:DM_MULTIPATH_DEVICE_PATH={flag}\nG:systemd\n"),
    );
}

/// Whether udev has a record of block device `name` (it has seen the disk).
pub(super) fn has_udev_record(root: &Path, name: &str) -> bool {
    root.join(format!("run/udev/data/b{}", dev_t(name)))
        .exists()
}

/// Whether udev's record of block device `name` gives its ID_SERIAL (what multipathd takes
/// as the WWID at its default `uid_attribute`).
pub(super) fn udev_record_has_serial(root: &Path, name: &str) -> bool {
    fs::read_to_string(root.join(format!("run/udev/data/b{}", dev_t(name))))
        .is_ok_and(|r| r.lines().any(|l| l.starts_with("E:ID_SERIAL=")))
}

pub(super) fn add_dm(root: &Path, dev: &str, name: &str, uuid: &str, slaves: &[&str]) {
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

pub(super) fn add_slave(root: &Path, dev: &str, slave: &str) {
    let sys = root.join("sys");
    let ddir = sys.join(format!("devices/virtual/block/{dev}"));
    let sdir = fs::canonicalize(sys.join(format!("block/{slave}"))).expect("slave exists");
    rel_link(&sdir, &ddir.join(format!("slaves/{slave}")));
    rel_link(&ddir, &sdir.join(format!("holders/{dev}")));
}

/// The WWID that the target of disk `name`'s session offers at the disk's LUN now (a target
/// set up with [`FakeHost::target`]), if any.
pub(super) fn current_wwid_on_target(root: &Path, w: &World, name: &str) -> Option<String> {
    let real = fs::canonicalize(root.join(format!("sys/block/{name}"))).ok()?;
    let parts: Vec<String> = real
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let sid: u32 = parts
        .iter()
        .find_map(|c| c.strip_prefix("session").and_then(|n| n.parse().ok()))?;
    let lun: u64 = parts
        .iter()
        .rev()
        .find_map(|c| c.parse::<crate::types::ScsiAddress>().ok())?
        .lun
        .0;
    let (_, portal, iqn, _) = w.sessions.get(&sid)?;
    w.targets
        .iter()
        .find(|t| &t.portal == portal && &t.iqn == iqn)?
        .luns
        .get(&lun)
        .cloned()
}

/// What the kernel does on `echo "- - L" > /sys/class/scsi_host/hostH/scan`: the LUN's disk
/// appears when the session's target has that LUN; multipathd then builds or grows the map.
pub(super) fn scan(root: &Path, w: &mut World, hostno: u32, lun: u64) {
    let Some((&sid, (_, portal, iqn, _))) = w.sessions.iter().find(|(_, s)| s.0 == hostno) else {
        return;
    };
    let state = root.join(format!("sys/class/iscsi_session/session{sid}/state"));
    if fs::read_to_string(state).is_ok_and(|s| s.trim() != "LOGGED_IN") {
        return;
    }
    let Some(at) = w
        .targets
        .iter()
        .position(|t| &t.portal == portal && &t.iqn == iqn)
    else {
        return;
    };
    if let Some(other) = w.targets[at].also_scanned.remove(&lun) {
        scan(root, w, hostno, other);
    }
    let target = &mut w.targets[at];
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
    } else if w.udev_stuck {
        write(
            &root.join(format!("run/udev/data/b{}", dev_t(&name))),
            "I:1234567\nG:systemd\n",
        );
    }
    if w.auto_multipath {
        join_map(root, &name);
    }
}

/// What multipathd does with a new path: builds the map of its WWID, or adds the path to it.
pub(super) fn join_map(root: &Path, name: &str) {
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
pub(super) fn join_waiting(root: &Path, waiting: &mut Vec<(String, String)>, map: &str) {
    let (join, keep): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(_, m)| m == map);
    *waiting = keep;
    for (p, _) in join {
        join_map(root, &p);
    }
}

/// The text of a node record entry: the file itself, or the `default` file in its folder.
pub(super) fn record_text(entry: &Path) -> Option<String> {
    if entry.is_dir() {
        fs::read_to_string(entry.join("default")).ok()
    } else {
        fs::read_to_string(entry).ok()
    }
}

/// Logs session `id` out: its disks and its sysfs entries go. Returns its (portal, IQN).
pub(super) fn remove_session(root: &Path, w: &mut World, id: u32) -> Option<(String, String)> {
    let (hostno, portal, iqn, _) = w.sessions.remove(&id)?;
    let sys = root.join("sys");
    let sdir = sys.join(format!("devices/platform/host{hostno}/session{id}"));
    for d in walk_block_names(&sdir) {
        remove_disk(root, &d, w.maps_reloaded_late);
    }
    let _ = fs::remove_dir_all(sys.join(format!("devices/platform/host{hostno}")));
    let _ = fs::remove_file(sys.join(format!("class/iscsi_session/session{id}")));
    let _ = fs::remove_file(sys.join(format!("class/scsi_host/host{hostno}")));
    Some((portal, iqn))
}

/// Removes a disk as the kernel does: its folder, its /sys/block link and (once multipathd has
/// reloaded them, at once unless `maps_reloaded_late`) its holders' slave links.
pub(super) fn remove_disk(root: &Path, name: &str, maps_reloaded_late: bool) {
    let sys = root.join("sys");
    let link = sys.join(format!("block/{name}"));
    let Ok(bdir) = fs::canonicalize(&link) else {
        return;
    };
    // The link in a holder's slaves/ goes when the holder lets the disk go (multipathd reloads
    // the map without it); until then it stays, leading to the folder removed below.
    for h in fs::read_dir(bdir.join("holders"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|_| !maps_reloaded_late)
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
pub(super) fn remove_dm(root: &Path, dev: &str) {
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

/// Whether a process holds `/dev/DEV` open (an `fd/` link of `proc/PID` leads to it).
pub(super) fn open_by_a_process(root: &Path, dev: &str) -> bool {
    let node = root.join(format!("dev/{dev}"));
    fs::read_dir(root.join("proc"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|p| {
            fs::read_dir(p.path().join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == node))
        })
}

pub(super) fn dm_by_name(root: &Path, name: &str) -> Option<String> {
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

/// The device (`dm-N`) and name of the map whose uuid is `uuid`.
pub(super) fn dm_by_uuid(root: &Path, uuid: &str) -> Option<(String, String)> {
    let sys = root.join("sys/block");
    let dev = fs::read_dir(&sys)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|d| {
            d.starts_with("dm-")
                && fs::read_to_string(sys.join(format!("{d}/dm/uuid")))
                    .is_ok_and(|u| u.trim() == uuid)
        })?;
    let name = fs::read_to_string(sys.join(format!("{dev}/dm/name"))).ok()?;
    Some((dev, name.trim().to_string()))
}
