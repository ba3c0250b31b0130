//! The NVMe over Fabrics part of the fake host: targets (subsystems with namespaces, offered on
//! portals) that a write to the fake `/dev/nvme-fabrics` connects to, and the sysfs tree the lab's
//! kernel (6.1, native multipath on) shows for them:
//!
//! - `sys/devices/virtual/nvme-fabrics/ctl/nvmeN/` (`state`, `transport`, `address`,
//!   `subsysnqn`, `hostnqn`, `hostid`, `ctrl_loss_tmo`, `reconnect_delay`, `delete_controller`,
//!   `rescan_controller`), linked from `sys/class/nvme/nvmeN`;
//! - `sys/devices/virtual/nvme-subsystem/nvme-subsysS/` (`subsysnqn`, a link per controller, the
//!   heads `nvmeSnX` with `nsid`, `uuid`, `nguid` when set, `wwid`, `size`, `dev`), linked from
//!   `sys/class/nvme-subsystem/`;
//! - each head's path under each controller, `ctl/nvmeN/nvmeScNnX` (`ana_state`, `ana_grpid`, no
//!   `dev`); with multipath off, `ctl/nvmeN/nvmeNnX` block devices instead of heads;
//! - `sys/block/NAME` links, and `dev/NAME` nodes (plain files) for the block devices.

use super::*;

/// A namespace of a fake NVMe target.
#[derive(Clone)]
pub(super) struct FakeNs {
    nsid: u32,
    uuid: String,
    nguid: Option<String>,
    sectors: u64,
}

/// An NVMe subsystem a fake target offers on its portals.
#[derive(Clone)]
pub(super) struct FakeNvmeTarget {
    nqn: String,
    /// `addr:port`
    portals: Vec<String>,
    namespaces: Vec<FakeNs>,
}

#[derive(Default)]
pub(super) struct NvmeWorld {
    targets: Vec<FakeNvmeTarget>,
    /// Portals (`addr:port`) where nothing answers: a connect there is refused.
    dead: Vec<String>,
    /// Every option string written to the fabrics device, in order.
    connects: Vec<String>,
    /// Deleted controllers, in order.
    deleted: Vec<String>,
    /// Delete requests that hang (a controller stuck in the kernel), by controller.
    stuck_deletes: Vec<String>,
    /// Namespace UUIDs whose reads fail with EIO (a path error, an ANA transition).
    unreadable: Vec<String>,
    /// md arrays the fake mdadm created, for a UUID of their own.
    md_created: u8,
    /// md arrays held open (their stop is refused with EBUSY).
    md_open: Vec<String>,
    /// Inactive md arrays that udev's incremental assembly starts while brick looks: the first
    /// stop is refused (EBUSY) and the array is running from then on.
    md_starting: Vec<String>,
    /// Portals whose connect request outlives its deadline: the caller sees a timeout, and the
    /// kernel makes the controller all the same (still `connecting`).
    slow: Vec<String>,
    /// A namespace `(nqn, nsid, uuid)` the target maps, and the host shows, at the next flush
    /// (another volume's namespace appearing while a disconnect runs).
    map_on_flush: Option<(String, u32, String)>,
}

fn ctl_dir(root: &Path, name: &str) -> PathBuf {
    root.join(format!("sys/devices/virtual/nvme-fabrics/ctl/{name}"))
}

fn subsys_dir(root: &Path, s: u32) -> PathBuf {
    root.join(format!("sys/devices/virtual/nvme-subsystem/nvme-subsys{s}"))
}

fn multipath_on(root: &Path) -> bool {
    fs::read_to_string(root.join("sys/module/nvme_core/parameters/multipath"))
        .is_ok_and(|v| v.trim() == "Y")
}

fn free_number(dir: &Path, prefix: &str) -> u32 {
    (0..)
        .find(|n| !dir.join(format!("{prefix}{n}")).exists())
        .expect("a free number")
}

/// The subsystem number of `nqn`, made when missing.
fn subsystem_of(root: &Path, nqn: &str) -> u32 {
    let class = root.join("sys/class/nvme-subsystem");
    for e in fs::read_dir(&class).into_iter().flatten().flatten() {
        if fs::read_to_string(e.path().join("subsysnqn")).is_ok_and(|t| t.trim() == nqn) {
            let name = e.file_name().to_string_lossy().into_owned();
            return name
                .trim_start_matches("nvme-subsys")
                .parse()
                .expect("subsys number");
        }
    }
    let s = free_number(&class, "nvme-subsys");
    let dir = subsys_dir(root, s);
    write(&dir.join("subsysnqn"), &format!("{nqn}\n"));
    write(&dir.join("iopolicy"), "numa\n");
    rel_link(&dir, &class.join(format!("nvme-subsys{s}")));
    s
}

fn write_ns(dir: &Path, ns: &FakeNs, dev: Option<&str>, ana: Option<&str>) {
    write(&dir.join("nsid"), &format!("{}\n", ns.nsid));
    write(&dir.join("uuid"), &format!("{}\n", ns.uuid));
    if let Some(g) = &ns.nguid {
        write(&dir.join("nguid"), &format!("{g}\n"));
    }
    write(&dir.join("wwid"), &format!("uuid.{}\n", ns.uuid));
    write(&dir.join("size"), &format!("{}\n", ns.sectors));
    if let Some(d) = dev {
        write(&dir.join("dev"), &format!("{d}\n"));
    }
    if let Some(a) = ana {
        write(&dir.join("ana_state"), &format!("{a}\n"));
        write(&dir.join("ana_grpid"), "1\n");
    }
    fs::create_dir_all(dir.join("holders")).expect("holders");
}

/// Shows `t`'s namespaces through controller `ctrl` (instance `c`) of subsystem `s`.
fn show_namespaces(root: &Path, t: &FakeNvmeTarget, s: u32, ctrl: &str) {
    let c: u32 = ctrl.trim_start_matches("nvme").parse().expect("instance");
    let cdir = ctl_dir(root, ctrl);
    for ns in &t.namespaces {
        if multipath_on(root) {
            let head = format!("nvme{s}n{}", ns.nsid);
            let hdir = subsys_dir(root, s).join(&head);
            if !hdir.exists() {
                write_ns(&hdir, ns, Some(&format!("259:{}", s * 100 + ns.nsid)), None);
                rel_link(&hdir, &root.join(format!("sys/block/{head}")));
                write(&root.join(format!("dev/{head}")), "");
            }
            let path = format!("nvme{s}c{c}n{}", ns.nsid);
            let pdir = cdir.join(&path);
            if !pdir.exists() {
                write_ns(&pdir, ns, None, Some("optimized"));
                rel_link(&pdir, &root.join(format!("sys/block/{path}")));
            }
        } else {
            let name = format!("nvme{c}n{}", ns.nsid);
            let ndir = cdir.join(&name);
            if !ndir.exists() {
                write_ns(&ndir, ns, Some(&format!("259:{}", c * 100 + ns.nsid)), None);
                rel_link(&ndir, &root.join(format!("sys/block/{name}")));
                write(&root.join(format!("dev/{name}")), "");
            }
        }
    }
}

fn opt<'a>(options: &'a str, key: &str) -> Option<&'a str> {
    options.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// A write of `options` to the fabrics device: a new controller, or the kernel's errno.
pub(super) fn fabrics_connect(
    root: &Path,
    w: &mut World,
    options: &str,
) -> Result<String, KernelError> {
    w.nvme.connects.push(options.to_string());
    w.events.push(format!("nvme connect {options}"));
    let (Some(nqn), Some(addr), Some(port), Some(transport)) = (
        opt(options, "nqn"),
        opt(options, "traddr"),
        opt(options, "trsvcid"),
        opt(options, "transport"),
    ) else {
        return Err(KernelError::from_errno(libc::EINVAL));
    };
    let hostnqn = opt(options, "hostnqn").unwrap_or("nqn.2014-08.org.nvmexpress:uuid:default");
    let portal = format!("{addr}:{port}");
    if w.nvme.dead.contains(&portal) {
        return Err(KernelError::from_errno(libc::ECONNREFUSED));
    }
    let Some(t) = w
        .nvme
        .targets
        .iter()
        .find(|t| t.nqn == nqn && t.portals.contains(&portal))
        .cloned()
    else {
        // The port answers, the subsystem is not there: the kernel's connect command fails.
        return Err(KernelError::from_errno(libc::EIO));
    };
    if w.nvme.slow.contains(&portal) {
        w.nvme.slow.retain(|p| *p != portal);
        let options = options.to_string();
        let answer = fabrics_connect(root, w, &options)?;
        let name = format!(
            "nvme{}",
            answer
                .trim_start_matches("instance=")
                .split(',')
                .next()
                .expect("instance")
        );
        write(&ctl_dir(root, &name).join("state"), "connecting\n");
        return Err(KernelError::TimedOut(Duration::from_secs(30)));
    }
    let address = format!("traddr={addr},trsvcid={port},src_addr={addr}");
    for e in fs::read_dir(root.join("sys/class/nvme"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let d = e.path();
        let same = |a: &str, v: &str| fs::read_to_string(d.join(a)).is_ok_and(|t| t.trim() == v);
        // As the kernel (nvmf_ctlr_matches_baseopts): a controller being deleted or dead is no
        // duplicate.
        let going = ["deleting", "deleting (no IO)", "dead"]
            .iter()
            .any(|s| same("state", s));
        if !going && same("subsysnqn", nqn) && same("address", &address) && same("hostnqn", hostnqn)
        {
            return Err(KernelError::from_errno(libc::EALREADY));
        }
    }
    let class = root.join("sys/class/nvme");
    fs::create_dir_all(&class).expect("class/nvme");
    let n = free_number(&class, "nvme");
    let name = format!("nvme{n}");
    let dir = ctl_dir(root, &name);
    for (a, v) in [
        ("state", "live"),
        ("transport", transport),
        ("address", &address),
        ("subsysnqn", nqn),
        ("hostnqn", hostnqn),
        ("hostid", opt(options, "hostid").unwrap_or("")),
        ("cntlid", &(n + 1).to_string()),
        // As the kernel shows it: `off` for -1 (reconnect for ever).
        (
            "ctrl_loss_tmo",
            match opt(options, "ctrl_loss_tmo") {
                Some("-1") => "off",
                Some(v) => v,
                None => "600",
            },
        ),
        (
            "reconnect_delay",
            opt(options, "reconnect_delay").unwrap_or("10"),
        ),
        (
            "fast_io_fail_tmo",
            opt(options, "fast_io_fail_tmo").unwrap_or("off"),
        ),
        ("delete_controller", ""),
        ("rescan_controller", ""),
    ] {
        write(&dir.join(a), &format!("{v}\n"));
    }
    rel_link(&dir, &class.join(&name));
    let s = subsystem_of(root, nqn);
    rel_link(&dir, &subsys_dir(root, s).join(&name));
    show_namespaces(root, &t, s, &name);
    Ok(format!("instance={n},cntlid={}\n", n + 1))
}

/// After a flush: the namespace scripted with [`FakeHost::nvme_maps_at_next_flush`] appears.
pub(super) fn after_flush(root: &Path, w: &mut World) {
    let Some((nqn, nsid, uuid)) = w.nvme.map_on_flush.take() else {
        return;
    };
    let Some(t) = w.nvme.targets.iter_mut().find(|t| t.nqn == nqn) else {
        return;
    };
    t.namespaces.push(FakeNs {
        nsid,
        uuid,
        nguid: None,
        sectors: 65536,
    });
    let t = t.clone();
    let s = subsystem_of(root, &nqn);
    for e in fs::read_dir(subsys_dir(root, s))
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if crate::nvmeof::sysfs::is_ctrl_name(&n) {
            show_namespaces(root, &t, s, &n);
        }
    }
}

/// Removes controller `name` as the kernel does after `delete_controller`: its paths, the heads
/// left without a path, the subsystem left without a controller.
fn delete_ctrl(root: &Path, name: &str) {
    let dir = ctl_dir(root, name);
    let real_subsys = fs::read_dir(root.join("sys/class/nvme-subsystem"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| fs::canonicalize(e.path()).expect("subsystem"))
        .find(|s| s.join(name).exists());
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("nvme") {
            let _ = fs::remove_file(root.join(format!("sys/block/{n}")));
            let _ = fs::remove_file(root.join(format!("dev/{n}")));
        }
    }
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(root.join(format!("sys/class/nvme/{name}")));
    let Some(sdir) = real_subsys else { return };
    let _ = fs::remove_file(sdir.join(name));
    let entries: Vec<String> = fs::read_dir(&sdir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let ctrls: Vec<&String> = entries
        .iter()
        .filter(|n| crate::nvmeof::sysfs::is_ctrl_name(n))
        .collect();
    for head in entries
        .iter()
        .filter(|n| crate::nvmeof::sysfs::is_ns_name(n))
    {
        let nsid = fs::read_to_string(sdir.join(head).join("nsid")).unwrap_or_default();
        let has_path = ctrls.iter().any(|c| {
            fs::read_dir(sdir.join(c))
                .into_iter()
                .flatten()
                .flatten()
                .any(|p| {
                    let pn = p.file_name().to_string_lossy().into_owned();
                    crate::nvmeof::sysfs::is_path_name(&pn)
                        && fs::read_to_string(p.path().join("nsid")).unwrap_or_default() == nsid
                })
        });
        if !has_path {
            let _ = fs::remove_dir_all(sdir.join(head));
            let _ = fs::remove_file(root.join(format!("sys/block/{head}")));
            let _ = fs::remove_file(root.join(format!("dev/{head}")));
        }
    }
    if ctrls.is_empty() {
        let s = sdir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let _ = fs::remove_dir_all(&sdir);
        let _ = fs::remove_file(root.join(format!("sys/class/nvme-subsystem/{s}")));
    }
}

fn uuid_of(root: &Path, dev: &str) -> Option<String> {
    fs::read_to_string(root.join(format!("sys/block/{dev}/uuid")))
        .ok()
        .map(|u| u.trim().to_string())
}

/// Builds md array `mdN` over `devs` as the kernel shows it: `md/array_state`, `slaves`, and a
/// `holders` entry in each member.
fn build_md(root: &Path, devs: &[String]) -> String {
    let n = (0..128u32)
        .rev()
        .find(|n| !root.join(format!("sys/block/md{n}")).exists())
        .expect("a free md number");
    let md = format!("md{n}");
    let dir = root.join(format!("sys/devices/virtual/block/{md}"));
    write(&dir.join("md/array_state"), "clean\n");
    let smallest = devs
        .iter()
        .filter_map(|d| fs::read_to_string(root.join(format!("sys/block/{d}/size"))).ok())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .min()
        .unwrap_or(0);
    write(
        &dir.join("size"),
        &format!("{}\n", smallest.saturating_sub(2048)),
    );
    write(&dir.join("dev"), &format!("9:{n}\n"));
    rel_link(&dir, &root.join(format!("sys/block/{md}")));
    write(&root.join(format!("dev/{md}")), "");
    for d in devs {
        let real = fs::canonicalize(root.join(format!("sys/block/{d}"))).expect("member");
        rel_link(&real, &dir.join(format!("slaves/{d}")));
        rel_link(&real, &dir.join(format!("md/dev-{d}/block")));
        write(&dir.join(format!("md/dev-{d}/offset")), "2048\n");
        rel_link(&dir, &real.join(format!("holders/{md}")));
    }
    md
}

/// Where namespace `uuid`'s data lives (the target's backing file, sparse).
fn image(root: &Path, uuid: &str) -> PathBuf {
    root.join(format!("targets/nvme/{uuid}.img"))
}

/// Reads `ranges` of block device `dev` as the kernel would: a namespace's from its target's
/// backing file, any other device from its node; EIO for a namespace made unreadable.
pub(super) fn read_device(
    root: &Path,
    w: &mut World,
    dev: &Path,
    ranges: &[(u64, usize)],
) -> Result<Vec<u8>, KernelError> {
    use std::io::{Read, Seek};
    let name = dev
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    w.events.push(format!("read {name}"));
    if !dev.exists() {
        return Err(KernelError::from_errno(libc::ENOENT));
    }
    let uuid = uuid_of(root, &name);
    if uuid.as_ref().is_some_and(|u| w.nvme.unreadable.contains(u)) {
        return Err(KernelError::from_errno(libc::EIO));
    }
    let path = uuid
        .map(|u| image(root, &u))
        .filter(|p| p.exists())
        .unwrap_or_else(|| dev.to_path_buf());
    let mut f = fs::File::open(&path).map_err(|e| KernelError::Os(e.to_string()))?;
    let mut out = Vec::new();
    for &(at, len) in ranges {
        let mut b = vec![0u8; len];
        f.seek(std::io::SeekFrom::Start(at))
            .map_err(|e| KernelError::Os(e.to_string()))?;
        let mut got = 0;
        while got < len {
            match f.read(&mut b[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(KernelError::Os(e.to_string())),
            }
        }
        out.extend(b);
    }
    Ok(out)
}

/// Writes `bytes` at `at` in namespace `uuid`'s backing file.
fn write_image(root: &Path, uuid: &str, at: u64, bytes: &[u8]) {
    use std::io::{Seek, Write};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(image(root, uuid))
        .expect("the namespace's backing file");
    f.seek(std::io::SeekFrom::Start(at)).expect("seek");
    f.write_all(bytes).expect("write");
}

/// Whether device `dev` reads as an md member (an md 1.2 superblock at 4 KiB) to the fake
/// mdadm: a device it cannot read has none, as mdadm 4.2 reports (its `guess_super` takes a
/// failed read for no superblock).
fn md_member(root: &Path, w: &mut World, dev: &str) -> bool {
    read_device(root, w, &root.join(format!("dev/{dev}")), &[(4096, 8)])
        .is_ok_and(|b| b[..4] == [0xfc, 0x4e, 0x2b, 0xa9] && b[4..8] == [1, 0, 0, 0])
}

fn remove_md(root: &Path, md: &str) {
    let dir = root.join(format!("sys/devices/virtual/block/{md}"));
    for e in fs::read_dir(dir.join("slaves"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(real) = fs::canonicalize(e.path()) {
            let _ = fs::remove_file(real.join(format!("holders/{md}")));
        }
    }
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(root.join(format!("sys/block/{md}")));
    let _ = fs::remove_file(root.join(format!("dev/{md}")));
}

/// mdadm as brick runs it: `--examine DEV`, `--create MD ... DEVS`, `--assemble --run MD DEVS`.
pub(super) fn fake_mdadm(root: &Path, w: &mut World, argv: &[String]) -> Output {
    let devs: Vec<String> = argv
        .iter()
        .skip(1)
        .filter_map(|a| a.strip_prefix("/dev/"))
        .filter(|a| !a.starts_with("md/"))
        .map(ToString::to_string)
        .collect();
    match argv.get(1).map(String::as_str) {
        Some("--examine") => {
            let dev = devs.first().map_or("", |d| d.as_str());
            if md_member(root, w, dev) {
                Output::exit(0, &format!("/dev/{dev}:\n          Magic : a92b4efc\n"), "")
            } else {
                Output::exit(
                    1,
                    "",
                    &format!("mdadm: No md superblock detected on /dev/{dev}.\n"),
                )
            }
        }
        Some("--create") => {
            // mdadm --create writes its superblock over whatever the devices hold.
            let arg = |k: &str| {
                argv.iter()
                    .position(|a| a == k)
                    .and_then(|i| argv.get(i + 1))
                    .cloned()
            };
            let home = argv
                .iter()
                .find_map(|a| a.strip_prefix("--homehost="))
                .unwrap_or("lab");
            let name = format!("{home}:{}", arg("--name").unwrap_or_default());
            w.nvme.md_created += 1;
            let sb = crate::block::signature::md12_superblock([w.nvme.md_created; 16], &name);
            for d in &devs {
                if let Some(u) = uuid_of(root, d) {
                    write_image(root, &u, 4096, &sb);
                }
            }
            w.events.push(format!("mdadm create {}", devs.join(" ")));
            build_md(root, &devs);
            Output::exit(0, "", "mdadm: array /dev/md/x started.\n")
        }
        Some("--assemble") => {
            let members: Vec<String> = devs
                .iter()
                .filter(|d| md_member(root, w, d))
                .cloned()
                .collect();
            w.events
                .push(format!("mdadm assemble {}", members.join(" ")));
            if members.is_empty() {
                return Output::exit(1, "", "mdadm: no devices found\n");
            }
            build_md(root, &members);
            Output::exit(0, "", "")
        }
        Some("--grow") => {
            // The array takes its smallest member's size, less the superblock's 1 MiB.
            let md = argv[2].trim_start_matches("/dev/");
            let dir = root.join(format!("sys/block/{md}"));
            let smallest = fs::read_dir(dir.join("slaves"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| fs::read_to_string(e.path().join("size")).ok())
                .filter_map(|s| s.trim().parse::<u64>().ok())
                .min()
                .unwrap_or(0);
            write(
                &dir.join("size"),
                &format!("{}\n", smallest.saturating_sub(2048)),
            );
            w.events.push(format!("mdadm grow {md}"));
            Output::exit(0, "", "")
        }
        _ => Output::exit(2, "", "fake mdadm: unexpected arguments\n"),
    }
}

/// A write to an NVMe controller's sysfs attribute, if `rel` is one: `Some(result)`.
pub(super) fn write_ctrl_attr(
    root: &Path,
    w: &mut World,
    rel: &str,
    timeout: Duration,
) -> Option<Result<(), KernelError>> {
    let parts: Vec<&str> = rel.split('/').collect();
    if let ["block", md, "md", "array_state"] = parts.as_slice() {
        w.events.push(format!("stop {md}"));
        if let Some(i) = w.nvme.md_starting.iter().position(|m| m == md) {
            w.nvme.md_starting.remove(i);
            write(&root.join(format!("sys/{rel}")), "clean\n");
            return Some(Err(KernelError::from_errno(libc::EBUSY)));
        }
        if w.nvme.md_open.iter().any(|m| m == md) {
            return Some(Err(KernelError::from_errno(libc::EBUSY)));
        }
        remove_md(root, md);
        return Some(Ok(()));
    }
    let ["class", "nvme", name, attr] = parts.as_slice() else {
        return None;
    };
    if !root.join(format!("sys/class/nvme/{name}")).exists() {
        return Some(Err(KernelError::from_errno(libc::ENOENT)));
    }
    match *attr {
        "delete_controller" => {
            w.events.push(format!("delete controller {name}"));
            if w.nvme.stuck_deletes.iter().any(|s| s == name) {
                return Some(Err(KernelError::TimedOut(timeout)));
            }
            delete_ctrl(root, name);
            w.nvme.deleted.push(name.to_string());
            Some(Ok(()))
        }
        "rescan_controller" => {
            w.events.push(format!("rescan controller {name}"));
            let dir = ctl_dir(root, name);
            let nqn = fs::read_to_string(dir.join("subsysnqn")).unwrap_or_default();
            if let Some(t) = w.nvme.targets.iter().find(|t| t.nqn == nqn.trim()).cloned() {
                let s = subsystem_of(root, &t.nqn);
                show_namespaces(root, &t, s, name);
                // Sizes are read again.
                for ns in &t.namespaces {
                    for e in fs::read_dir(root.join("sys/block"))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let p = e.path();
                        if fs::read_to_string(p.join("uuid")).is_ok_and(|u| u.trim() == ns.uuid) {
                            write(&p.join("size"), &format!("{}\n", ns.sectors));
                        }
                    }
                }
            }
            Some(Ok(()))
        }
        _ => None,
    }
}

impl FakeHost {
    /// Sets whether the kernel does native NVMe multipath (`nvme_core` `multipath`).
    pub fn nvme_multipath(&self, on: bool) -> &Self {
        write(
            &self
                .root()
                .join("sys/module/nvme_core/parameters/multipath"),
            if on { "Y\n" } else { "N\n" },
        );
        self
    }

    /// Offers NVMe subsystem `nqn` on `portals` (`127.0.0.1:4420`) with namespaces `(nsid,
    /// uuid)` of 32 MiB. Native multipath is on unless [`FakeHost::nvme_multipath`] says
    /// otherwise.
    pub fn nvme_target(&self, nqn: &str, portals: &[&str], namespaces: &[(u32, &str)]) -> &Self {
        if !self
            .root()
            .join("sys/module/nvme_core/parameters/multipath")
            .exists()
        {
            self.nvme_multipath(true);
        }
        fs::create_dir_all(self.root().join("sys/class/nvme")).expect("class");
        fs::create_dir_all(self.root().join("sys/class/nvme-subsystem")).expect("class");
        write(
            &self.root().join("etc/nvme/hostnqn"),
            "nqn.2014-08.org.nvmexpress:uuid:f00dcafe-0000-4000-8000-000000000001\n",
        );
        write(
            &self.root().join("etc/nvme/hostid"),
            "f00dcafe-0000-4000-8000-000000000001\n",
        );
        for (_, u) in namespaces {
            let img = image(self.root(), u);
            fs::create_dir_all(img.parent().expect("folder")).expect("targets");
            fs::File::create(&img)
                .and_then(|f| f.set_len(65536 * 512))
                .expect("backing file");
        }
        lock(&self.world).nvme.targets.push(FakeNvmeTarget {
            nqn: nqn.to_string(),
            portals: portals.iter().map(ToString::to_string).collect(),
            namespaces: namespaces
                .iter()
                .map(|(n, u)| FakeNs {
                    nsid: *n,
                    uuid: u.to_string(),
                    nguid: None,
                    sectors: 65536,
                })
                .collect(),
        });
        self
    }

    /// Gives namespace `nsid` of `nqn` this size (for an extend; seen after a rescan).
    pub fn nvme_resize(&self, nqn: &str, nsid: u32, bytes: u64) -> &Self {
        for t in lock(&self.world)
            .nvme
            .targets
            .iter_mut()
            .filter(|t| t.nqn == nqn)
        {
            for ns in t.namespaces.iter_mut().filter(|n| n.nsid == nsid) {
                ns.sectors = bytes / 512;
            }
        }
        self
    }

    /// The target stops exporting namespace `nsid` of `nqn` (Cinder's terminate_connection):
    /// its devices go from every controller, as the kernel drops them on the target's
    /// namespace-changed event.
    pub fn nvme_unmap(&self, nqn: &str, nsid: u32) -> &Self {
        for t in lock(&self.world)
            .nvme
            .targets
            .iter_mut()
            .filter(|t| t.nqn == nqn)
        {
            t.namespaces.retain(|n| n.nsid != nsid);
        }
        let root = self.root();
        let block = root.join("sys/block");
        for e in fs::read_dir(&block).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let real = fs::canonicalize(e.path()).expect("device");
            let of_nqn = |dir: &Path| {
                fs::read_to_string(dir.join("subsysnqn")).is_ok_and(|t| t.trim() == nqn)
            };
            let parent = real.parent().expect("parent");
            let ours = fs::read_to_string(real.join("nsid"))
                .is_ok_and(|n| n.trim() == nsid.to_string())
                && (of_nqn(parent));
            if ours {
                let _ = fs::remove_dir_all(&real);
                let _ = fs::remove_file(e.path());
                let _ = fs::remove_file(root.join(format!("dev/{name}")));
            }
        }
        self
    }

    /// Nothing answers at `portal` any more: connects there are refused.
    pub fn nvme_portal_dead(&self, portal: &str) -> &Self {
        lock(&self.world).nvme.dead.push(portal.to_string());
        self
    }

    /// A controller as another attach (or an earlier brick) left it: connected to `nqn` at
    /// `portal` as this host. Returns nothing; see [`FakeHost::nvme_controllers`].
    pub fn nvme_connected(&self, nqn: &str, portal: &str) -> &Self {
        let hostnqn = fs::read_to_string(self.root().join("etc/nvme/hostnqn")).expect("hostnqn");
        let (addr, port) = portal.rsplit_once(':').expect("addr:port");
        let options = format!(
            "nqn={nqn},transport=tcp,traddr={addr},trsvcid={port},hostnqn={}",
            hostnqn.trim()
        );
        let mut w = lock(&self.world);
        fabrics_connect(self.root(), &mut w, &options).expect("fake connect");
        w.nvme.connects.clear();
        w.events.clear();
        self
    }

    /// Sets controller `name`'s state (`connecting` while its portal is gone).
    pub fn nvme_ctrl_state(&self, name: &str, state: &str) -> &Self {
        write(
            &ctl_dir(self.root(), name).join("state"),
            &format!("{state}\n"),
        );
        self
    }

    /// Makes a `delete_controller` of `name` hang (it times out).
    pub fn nvme_stuck_delete(&self, name: &str) -> &Self {
        lock(&self.world).nvme.stuck_deletes.push(name.to_string());
        self
    }

    /// Namespace `uuid` carries the md 1.2 superblock of array `name` (as brick's `mdadm
    /// --create --homehost=any --name NAME` writes it: `any:NAME`; the array's UUID comes
    /// from the name, so the replicas of one array share it).
    pub fn nvme_md_member(&self, uuid: &str, name: &str) -> &Self {
        let mut set = [0u8; 16];
        for (i, b) in name.bytes().enumerate() {
            set[i % 16] ^= b;
        }
        let sb = crate::block::signature::md12_superblock(set, &format!("any:{name}"));
        write_image(self.root(), uuid, 4096, &sb);
        self
    }

    /// Writes `bytes` at byte `at` of namespace `uuid` (on its target: seen through every
    /// device of it), as a file system or a previous user would have left them.
    pub fn nvme_ns_write(&self, uuid: &str, at: u64, bytes: &[u8]) -> &Self {
        write_image(self.root(), uuid, at, bytes);
        self
    }

    /// Bytes `at..at+len` of namespace `uuid` on its target.
    pub fn nvme_ns_read(&self, uuid: &str, at: u64, len: usize) -> Vec<u8> {
        use std::io::{Read, Seek};
        let mut f = fs::File::open(image(self.root(), uuid)).expect("backing file");
        f.seek(std::io::SeekFrom::Start(at)).expect("seek");
        let mut b = vec![0u8; len];
        f.read_exact(&mut b).expect("read");
        b
    }

    /// Reads of namespace `uuid` fail with EIO on every device of it (a path error, an ANA
    /// transition the kernel gave up on).
    pub fn nvme_ns_unreadable(&self, uuid: &str) -> &Self {
        lock(&self.world).nvme.unreadable.push(uuid.to_string());
        self
    }

    /// An md array over `devs` (running), as udev's incremental assembly builds one from the
    /// devices that carry its superblock; returns its name (`md127`).
    pub fn md_array(&self, devs: &[&str]) -> String {
        let devs: Vec<String> = devs.iter().map(ToString::to_string).collect();
        build_md(self.root(), &devs)
    }

    /// The next connect request to `portal` outlives its deadline: the caller sees a timeout,
    /// and the kernel makes the controller all the same (left `connecting`).
    pub fn nvme_connect_times_out(&self, portal: &str) -> &Self {
        lock(&self.world).nvme.slow.push(portal.to_string());
        self
    }

    /// At the next flush, the target maps namespace `(nsid, uuid)` of `nqn` and the host shows
    /// it on the subsystem's controllers (another volume's namespace, while a disconnect runs).
    pub fn nvme_maps_at_next_flush(&self, nqn: &str, nsid: u32, uuid: &str) -> &Self {
        lock(&self.world).nvme.map_on_flush = Some((nqn.to_string(), nsid, uuid.to_string()));
        self
    }

    /// Array `md` shows `inactive` (udev's incremental assembly has not started it yet), and
    /// starts as brick tries to stop it: that stop is refused (EBUSY), and the array runs.
    pub fn md_starting(&self, md: &str) -> &Self {
        write(
            &self.root().join(format!("sys/block/{md}/md/array_state")),
            "inactive\n",
        );
        lock(&self.world).nvme.md_starting.push(md.to_string());
        self
    }

    /// Holds md array `md` open: stopping it is refused (EBUSY).
    pub fn md_open(&self, md: &str) -> &Self {
        lock(&self.world).nvme.md_open.push(md.to_string());
        self
    }

    /// The host's controllers now (`nvme0`, ...).
    pub fn nvme_controllers(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root().join("sys/class/nvme"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Every option string written to the fabrics device, in order.
    pub fn nvme_connects(&self) -> Vec<String> {
        lock(&self.world).nvme.connects.clone()
    }

    /// The controllers deleted, in order.
    pub fn nvme_deleted(&self) -> Vec<String> {
        lock(&self.world).nvme.deleted.clone()
    }
}
