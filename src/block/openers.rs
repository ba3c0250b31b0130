//! Who holds a block device open: the device-mapper devices stacked on it
//! (`/sys/block/NAME/holders`), the file systems mounted from it (`/proc/self/mountinfo`) and
//! the processes that have it open (`/proc/PID/fd`). A disconnect reads it only when a removal
//! was refused, for its message; cleanup reads it for each thing it would remove, which must
//! have none.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crate::host::Host;

/// What holds the block device `dev` (`dm-3`, `sdb`; `name` is its device-mapper name, if any)
/// open, one phrase each: `held by dm-5`, `mounted at /srv`, `open in process 812 (qemu-kvm)`.
/// Empty when nothing shows: an opener that came and went, or one in another mount namespace.
pub fn openers(host: &Host, dev: &str, name: Option<&str>) -> Vec<String> {
    let mut found = holders(host, dev);
    found.extend(users(host, dev, name, &[]));
    found
}

/// What holds the SCSI disk `dev` (`sdb`) open, as [`openers`], except multipathd: it keeps
/// every path it monitors open for its path checker (until the path leaves its map), which
/// reads no data of the disk and writes none.
pub fn disk_openers(host: &Host, dev: &str) -> Vec<String> {
    let mut found = holders(host, dev);
    found.extend(disk_users(host, dev));
    found
}

/// The file systems and processes (multipathd aside, see [`disk_openers`]) that have the SCSI
/// disk `dev` mounted or open; the devices stacked on it are not counted.
pub fn disk_users(host: &Host, dev: &str) -> Vec<String> {
    users(host, dev, None, &["multipathd"])
}

/// The devices stacked on `dev`: `held by dm-5`.
fn holders(host: &Host, dev: &str) -> Vec<String> {
    host.list(&host.sys(format!("block/{dev}/holders")))
        .unwrap_or_default()
        .into_iter()
        .map(|h| format!("held by {h}"))
        .collect()
}

/// The mounts of `dev` and the processes with it open, but those whose name is in `ignored`.
fn users(host: &Host, dev: &str, name: Option<&str>, ignored: &[&str]) -> Vec<String> {
    let dev_t = host
        .read_attr_opt(&host.sys(format!("block/{dev}/dev")))
        .ok()
        .flatten();
    let mut found = Vec::new();
    if let Some(dev_t) = &dev_t {
        found.extend(mounts_of(host, dev_t));
    }
    found.extend(processes_with(host, dev, name, dev_t.as_deref(), ignored));
    found
}

/// The mount points of the device numbered `dev_t` (`253:3`).
fn mounts_of(host: &Host, dev_t: &str) -> Vec<String> {
    let Ok(text) =
        crate::host::read_bounded(&host.proc("self/mountinfo"), crate::host::MOUNTINFO_MAX)
    else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let number = f.nth(2)?;
            let point = f.nth(1)?;
            (number == dev_t).then(|| format!("mounted at {point}"))
        })
        .collect()
}

/// The processes with an open descriptor on the device: by its device number, or by its path;
/// but those whose name (`comm`) is in `ignored`.
fn processes_with(
    host: &Host,
    dev: &str,
    name: Option<&str>,
    dev_t: Option<&str>,
    ignored: &[&str],
) -> Vec<String> {
    let paths: Vec<String> = std::iter::once(format!("/dev/{dev}"))
        .chain(name.map(|n| format!("/dev/mapper/{n}")))
        .collect();
    let rdev = dev_t.and_then(|t| {
        let (major, minor) = t.split_once(':')?;
        Some(libc::makedev(major.parse().ok()?, minor.parse().ok()?))
    });
    let mut found = Vec::new();
    for pid in host
        .list(&host.proc(""))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        let fds = host
            .list(&host.proc(format!("{pid}/fd")))
            .unwrap_or_default();
        let open = fds.iter().any(|fd| {
            let link = host.proc(format!("{pid}/fd/{fd}"));
            let by_path = std::fs::read_link(&link).is_ok_and(|t| {
                let t = t.to_string_lossy();
                paths.iter().any(|p| t.ends_with(p.as_str()))
            });
            let by_number = rdev.is_some_and(|r| {
                std::fs::metadata(&link)
                    .is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == r)
            });
            by_path || by_number
        });
        if open {
            let comm = host
                .read_attr_opt(&host.proc(format!("{pid}/comm")))
                .ok()
                .flatten()
                .unwrap_or_default();
            if !ignored.contains(&comm.trim()) {
                found.push(format!("open in process {pid} ({comm})"));
            }
        }
    }
    found
}
