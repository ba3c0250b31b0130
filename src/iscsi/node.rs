//! open-iscsi's node records (`nodes/IQN/ADDRESS,PORT,TPGT/IFACE` under the configuration
//! folder), read and edited in-process.
//!
//! brick writes the record of a portal it logs in to itself, as `iscsiadm -m node --op new`
//! would (the defaults of `iscsid.conf`, then the portal's own keys), and sets keys by rewriting
//! the record file rather than with one `iscsiadm --op update` process per key. That is several
//! processes fewer per portal, and it keeps CHAP secrets off every command line: an argv is
//! world-readable in /proc, a record file is root's alone (0600).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::types::{Iqn, Portal};

/// Whether an entry of `nodes/IQN/` is a record of `portal`: `ADDRESS,PORT,TPGT/` (a folder of
/// one file per interface, as discovery makes them) or `ADDRESS,PORT` (a plain file, as
/// `iscsiadm -m node --op new` makes it without a portal group tag).
pub fn is_record_of(entry: &str, portal: &Portal) -> bool {
    let base = format!("{},{}", portal.address(), portal.port);
    entry == base
        || entry
            .strip_prefix(&base)
            .is_some_and(|rest| rest.starts_with(','))
}

/// The record files of `iqn` at `portal` (one per iSCSI interface, usually `default`).
pub fn record_files(host: &Host, iqn: &Iqn, portal: &Portal) -> Result<Vec<PathBuf>> {
    let dir = host.iscsi_conf(format!("nodes/{iqn}"));
    let mut files = Vec::new();
    for entry in host
        .list(&dir)?
        .into_iter()
        .filter(|n| is_record_of(n, portal))
    {
        let p = dir.join(&entry);
        if p.is_dir() {
            files.extend(host.list(&p)?.into_iter().map(|f| p.join(f)));
        } else {
            // The old flat layout: the record is the file itself.
            files.push(p);
        }
    }
    Ok(files)
}

/// The host-wide lock over open-iscsi's node database. iscsiadm walks every record of the
/// database even to touch one, and fails ("iface iter could not stat", exit 6) when a record
/// vanishes under it: seen in the lab with concurrent disconnects of different targets. Deletes
/// take it exclusive. Logins take it shared, and so do creates and edits: they only make a
/// record appear or replace one whole (a rename), from a temporary file outside the database, so
/// nothing vanishes under a walk. (Taken exclusive, a create waited for every login in progress:
/// the logins of one volume's portals ran one after the other.)
pub const DB_LOCK: &str = "iscsi-node-db";

/// Deletes every record of `iqn` at `portal` in-process (no iscsiadm walk of the database, no
/// process), and the target's folder when it is left empty. Returns whether one existed.
pub fn delete(host: &Host, iqn: &Iqn, portal: &Portal) -> Result<bool> {
    let _lock = host.lock(DB_LOCK)?;
    let dir = host.iscsi_conf(format!("nodes/{iqn}"));
    let mut found = false;
    for entry in host
        .list(&dir)?
        .into_iter()
        .filter(|n| is_record_of(n, portal))
    {
        let p = dir.join(&entry);
        let r = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        match r {
            Ok(()) => found = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    if found && host.list(&dir)?.is_empty() {
        let _ = fs::remove_dir(&dir);
    }
    Ok(found)
}

/// Creates the node record of `iqn` at `portal`, with `keys` (name, value) set in it (the
/// interface's `iface.*` keys among them; `default` and `tcp` when they are not), as
/// `iscsiadm -m node -T IQN -p PORTAL --interface IFACE --op new` followed
/// by updates would: the `node.*` settings of `iscsid.conf` (the administrator's defaults), then
/// the record's identity, then `keys`, each overriding what came before (iscsiadm reads a record
/// over its built-in defaults, a later line winning). Like iscsiadm without a portal group tag, it
/// is the flat file `nodes/IQN/ADDRESS,PORT`. Fails when a record exists already.
pub fn create(host: &Host, iqn: &Iqn, portal: &Portal, keys: &[(&str, &str)]) -> Result<()> {
    let conf = host.iscsi_conf("iscsid.conf");
    let defaults = match fs::read_to_string(&conf) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&conf, e)),
    };
    let address = portal.address();
    let port = portal.port.to_string();
    let identity: [(&str, &str); 5] = [
        ("node.name", iqn.as_str()),
        ("node.tpgt", "-1"),
        ("node.discovery_type", "static"),
        ("node.conn[0].address", &address),
        ("node.conn[0].port", &port),
    ];
    let mine: Vec<&str> = identity.iter().chain(keys).map(|(k, _)| *k).collect();
    let mut text = String::from("# BEGIN RECORD (written by brick)\n");
    for line in defaults.lines().map(str::trim) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.starts_with("node.") && !line.starts_with('#') && !mine.contains(&k) {
            text.push_str(&format!("{k} = {}\n", v.trim()));
        }
    }
    let no_iface = !keys.iter().any(|(k, _)| *k == "iface.iscsi_ifacename");
    let default_iface = [
        ("iface.iscsi_ifacename", "default"),
        ("iface.transport_name", "tcp"),
    ];
    let iface: &[(&str, &str)] = if no_iface { &default_iface } else { &[] };
    for (k, v) in identity.iter().chain(iface).chain(keys) {
        text.push_str(&format!("{k} = {v}\n"));
    }
    text.push_str("# END RECORD\n");

    let _lock = host.lock_shared(DB_LOCK)?;
    if !record_files(host, iqn, portal)?.is_empty() {
        return Err(Error::invalid(
            "node record",
            format!("a node record of {iqn} at {portal} exists already"),
        ));
    }
    let dir = host.iscsi_conf(format!("nodes/{iqn}"));
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    write_private(host, &dir.join(format!("{address},{port}")), &text)
}

/// Sets `keys` (name, value) in every record of `iqn` at `portal`. Fails when there is no record.
pub fn set(host: &Host, iqn: &Iqn, portal: &Portal, keys: &[(&str, &str)]) -> Result<()> {
    let _lock = host.lock_shared(DB_LOCK)?;
    let files = record_files(host, iqn, portal)?;
    if files.is_empty() {
        return Err(Error::invalid(
            "node record",
            format!("no node record of {iqn} at {portal}"),
        ));
    }
    for f in files {
        let text = fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
        write_private(host, &f, &set_keys(&text, keys))?;
    }
    Ok(())
}

/// Reads key `name` from the first record of `iqn` at `portal`.
pub fn get(host: &Host, iqn: &Iqn, portal: &Portal, name: &str) -> Result<Option<String>> {
    let Some(f) = record_files(host, iqn, portal)?.into_iter().next() else {
        return Ok(None);
    };
    let text = fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
    Ok(text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_string())
    }))
}

/// Returns `text` with each key set: an existing `name = value` line is replaced, a missing one
/// is added before `# END RECORD` (or at the end).
pub fn set_keys(text: &str, keys: &[(&str, &str)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (name, value) in keys {
        let line = format!("{name} = {value}");
        let found = lines
            .iter()
            .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == *name));
        match found {
            Some(i) => lines[i] = line,
            None => {
                let end = lines
                    .iter()
                    .position(|l| l.starts_with("# END RECORD"))
                    .unwrap_or(lines.len());
                lines.insert(end, line);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// What brick's temporary files in the open-iscsi folders start with.
const TMP_PREFIX: &str = ".brick-tmp-";

/// How old a temporary file of brick's must be to be a leftover: a write takes milliseconds.
const STALE_TMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Replaces `path` (a file of the node or discovery database, which may hold CHAP secrets)
/// atomically with `text`, readable by root only (0600, whatever mode the old file had). The
/// temporary file is created new (`O_EXCL`, 0600) in the configuration folder, outside the
/// database that iscsiadm walks (beside `path` only when that folder is on another filesystem),
/// and is removed when anything fails. A crash can still leave one: temporary files of brick's
/// older than a minute are removed before each write.
pub fn write_private(host: &Host, path: &Path, text: &str) -> Result<()> {
    remove_stale_temporaries(host);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = format!(
        "{TMP_PREFIX}{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
    .replace(
        |c: char| !(c.is_ascii_alphanumeric() || ".,-_".contains(c)),
        "_",
    );
    let tmp = host.iscsi_conf(&unique);
    write_new_private(&tmp, text)?;
    match fs::rename(&tmp, path) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let _ = fs::remove_file(&tmp);
            let beside = path.with_file_name(&unique);
            write_new_private(&beside, text)?;
            fs::rename(&beside, path).map_err(|e| {
                let _ = fs::remove_file(&beside);
                Error::io(path, e)
            })?;
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(path, e));
        }
    }
    // The rename itself reaches the disk.
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes `text` to the new file `tmp` (0600, `O_EXCL`: never into a file or link that is there
/// already) and syncs it; removes it when that fails.
fn write_new_private(tmp: &Path, text: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(|e| Error::io(tmp, e))?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = fs::remove_file(tmp);
        return Err(Error::io(tmp, e));
    }
    Ok(())
}

/// Removes brick's temporary files that a crash left in the configuration folder (they may hold
/// a CHAP secret). Best effort: a file it cannot remove is left for the next time.
fn remove_stale_temporaries(host: &Host) {
    let dir = host.iscsi_conf("");
    let Ok(names) = host.list(&dir) else {
        return;
    };
    for n in names.iter().filter(|n| n.starts_with(TMP_PREFIX)) {
        let p = dir.join(n);
        let old = fs::symlink_metadata(&p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if old {
            match fs::remove_file(&p) {
                Ok(()) => tracing::info!(file = %p.display(), "removed a leftover temporary file"),
                Err(e) => tracing::debug!(file = %p.display(), error = %e, "leftover not removed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = "# BEGIN RECORD 2.1.8\nnode.name = iqn.2003-01.org.x:t\nnode.startup = automatic\nnode.session.scan = auto\n# END RECORD\n";

    #[test]
    fn record_names_table() {
        let p: Portal = "127.0.0.1:3260".parse().unwrap();
        let v6: Portal = "[fd00::1]:3260".parse().unwrap();
        let cases = [
            ("127.0.0.1,3260", &p, true),
            ("127.0.0.1,3260,1", &p, true),
            ("127.0.0.1,3260,-1", &p, true),
            ("127.0.0.1,32600", &p, false),
            ("127.0.0.10,3260,1", &p, false),
            ("fd00::1,3260,1", &v6, true),
        ];
        for (name, portal, want) in cases {
            assert_eq!(is_record_of(name, portal), want, "{name}");
        }
    }

    #[test]
    fn set_keys_replaces_and_adds() {
        let out = set_keys(
            RECORD,
            &[
                ("node.startup", "manual"),
                ("node.session.auth.authmethod", "CHAP"),
            ],
        );
        assert_eq!(
            out,
            "# BEGIN RECORD 2.1.8\nnode.name = iqn.2003-01.org.x:t\nnode.startup = manual\nnode.session.scan = auto\nnode.session.auth.authmethod = CHAP\n# END RECORD\n"
        );
        // A key that only starts like another is not confused with it.
        let out = set_keys("node.startup.x = 1\n", &[("node.startup", "manual")]);
        assert_eq!(out, "node.startup.x = 1\nnode.startup = manual\n");
    }

    #[test]
    fn set_edits_every_record_file_privately() {
        let f = crate::testing::FakeHost::new();
        let iqn: Iqn = "iqn.2003-01.org.x:t".parse().unwrap();
        let portal: Portal = "127.0.0.1:3260".parse().unwrap();
        f.node(iqn.as_str(), "127.0.0.1:3260");
        let host = f.host();
        set(
            &host,
            &iqn,
            &portal,
            &[("node.session.auth.password", "pw")],
        )
        .unwrap();
        assert_eq!(
            get(&host, &iqn, &portal, "node.session.auth.password")
                .unwrap()
                .as_deref(),
            Some("pw")
        );
        let file = &record_files(&host, &iqn, &portal).unwrap()[0];
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let other: Portal = "127.0.0.2:3260".parse().unwrap();
        assert!(set(&host, &iqn, &other, &[("a", "b")]).is_err());
    }

    #[test]
    fn create_writes_what_iscsiadm_op_new_would_with_the_conf_defaults_first() {
        let f = crate::testing::FakeHost::new();
        let host = f.host();
        fs::create_dir_all(host.iscsi_conf("")).unwrap();
        fs::write(
            host.iscsi_conf("iscsid.conf"),
            "# a comment\nnode.startup = automatic\n# node.session.auth.password = x\n\
             node.session.timeo.replacement_timeout = 120\niscsid.startup = /bin/true\n\
             node.session.scan=auto\n",
        )
        .unwrap();
        let iqn: Iqn = "iqn.2003-01.org.x:t".parse().unwrap();
        let portal: Portal = "127.0.0.1:3260".parse().unwrap();
        create(
            &host,
            &iqn,
            &portal,
            &[("node.startup", "manual"), ("node.session.scan", "manual")],
        )
        .unwrap();
        let file = host.iscsi_conf(format!("nodes/{iqn}/127.0.0.1,3260"));
        let text = fs::read_to_string(&file).unwrap();
        let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            keys,
            [
                "node.session.timeo.replacement_timeout = 120",
                "node.name = iqn.2003-01.org.x:t",
                "node.tpgt = -1",
                "node.discovery_type = static",
                "node.conn[0].address = 127.0.0.1",
                "node.conn[0].port = 3260",
                "iface.iscsi_ifacename = default",
                "iface.transport_name = tcp",
                "node.startup = manual",
                "node.session.scan = manual",
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(record_files(&host, &iqn, &portal).unwrap(), [file]);
        assert!(create(&host, &iqn, &portal, &[]).is_err(), "exists already");
    }

    #[test]
    fn create_and_set_do_not_wait_for_logins_and_leave_no_temporary_file() {
        let f = crate::testing::FakeHost::new();
        let host = f.host();
        let iqn: Iqn = "iqn.2003-01.org.x:t".parse().unwrap();
        let portal: Portal = "127.0.0.2:3260".parse().unwrap();
        // A login of another portal holds the database shared meanwhile.
        let _login = host.lock_shared(DB_LOCK).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = host.clone();
        let (i, p) = (iqn.clone(), portal);
        std::thread::spawn(move || {
            let r = create(&h, &i, &p, &[("node.startup", "manual")])
                .and_then(|()| set(&h, &i, &p, &[("node.session.scan", "manual")]));
            tx.send(r.is_ok()).unwrap();
        });
        let done = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(done, Ok(true), "create/set waited for a login");
        let mut left: Vec<String> = Vec::new();
        for dir in [host.iscsi_conf(""), host.iscsi_conf(format!("nodes/{iqn}"))] {
            left.extend(host.list(&dir).unwrap());
        }
        assert!(left.iter().all(|n| !n.contains("brick")), "{left:?}");
        assert_eq!(
            get(&host, &iqn, &portal, "node.session.scan")
                .unwrap()
                .as_deref(),
            Some("manual")
        );
    }

    #[test]
    fn private_writes_are_0600_whatever_the_old_mode_and_clear_leftovers_of_a_crash() {
        use std::os::unix::fs::PermissionsExt;
        let f = crate::testing::FakeHost::new();
        let host = f.host();
        // A discovery record as iscsiadm left it, world-readable.
        let dir = host.iscsi_conf("send_targets/127.0.0.1,3260");
        fs::create_dir_all(&dir).unwrap();
        let st = dir.join("st_config");
        fs::write(&st, "discovery.sendtargets.address = 127.0.0.1\n").unwrap();
        fs::set_permissions(&st, fs::Permissions::from_mode(0o644)).unwrap();
        // What a crash two minutes ago left, and what another brick is writing right now.
        let stale = host.iscsi_conf(format!("{TMP_PREFIX}999-0-st_config"));
        let fresh = host.iscsi_conf(format!("{TMP_PREFIX}998-0-st_config"));
        for t in [&stale, &fresh] {
            fs::write(t, "discovery.sendtargets.auth.password = old-secret\n").unwrap();
        }
        let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(two_minutes_ago)
            .unwrap();
        let text = set_keys(
            &fs::read_to_string(&st).unwrap(),
            &[("discovery.sendtargets.auth.password", "s3cret")],
        );
        write_private(&host, &st, &text).unwrap();
        assert_eq!(fs::read_to_string(&st).unwrap(), text);
        assert_eq!(
            fs::metadata(&st).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!stale.exists(), "a crash's leftover stays");
        assert!(fresh.exists(), "another write in progress lost its file");
        let left: Vec<String> = host
            .list(&host.iscsi_conf(""))
            .unwrap()
            .into_iter()
            .chain(host.list(&dir).unwrap())
            .filter(|n| n.contains("brick") && !fresh.ends_with(n))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn delete_removes_flat_and_folder_records_and_the_empty_target_folder() {
        let f = crate::testing::FakeHost::new();
        let host = f.host();
        let iqn: Iqn = "iqn.2003-01.org.x:t".parse().unwrap();
        let p1: Portal = "127.0.0.1:3260".parse().unwrap();
        let p2: Portal = "127.0.0.2:3260".parse().unwrap();
        f.node(iqn.as_str(), "127.0.0.1:3260");
        let flat = host.iscsi_conf(format!("nodes/{iqn}/127.0.0.2,3260"));
        fs::write(&flat, "node.name = x\n").unwrap();
        assert!(delete(&host, &iqn, &p1).unwrap());
        assert!(!f.has_node(iqn.as_str(), "127.0.0.1:3260"));
        assert!(flat.exists(), "another portal's record stays");
        assert!(delete(&host, &iqn, &p2).unwrap());
        assert!(!host.iscsi_conf(format!("nodes/{iqn}")).exists());
        assert!(
            !delete(&host, &iqn, &p2).unwrap(),
            "nothing to delete is not an error"
        );
    }
}
