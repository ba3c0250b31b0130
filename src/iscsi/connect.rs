//! Connecting an iSCSI volume: node records with manual startup and manual scans, bounded logins
//! to every portal in parallel, a scan of only the volume's LUN, and waiting in sysfs for the
//! disk and its multipath map. A failed connect removes what it created.

use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::iscsi::disconnect::target_lock_name;
use crate::iscsi::session::ISCSI_ERR_NO_OBJS_FOUND;
use crate::iscsi::{adm, node, topology};
use crate::multipath::{self, DmMap};
use crate::props::{ConnectionProperties, DeviceInfo, Target};
use crate::retry::Pause;
use crate::scsi::{self, ScsiDisk};
use crate::types::{Iqn, Lun, Portal};
use crate::Tuning;

/// iscsiadm's exit code when the session exists already.
const ISCSI_ERR_SESS_EXISTS: i32 = 15;
/// iscsiadm's exit codes for a login the target refused for good, and for refused credentials.
const ISCSI_ERR_FATAL_LOGIN: i32 = 19;
const ISCSI_ERR_LOGIN_AUTH_FAILED: i32 = 24;

/// How to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Log in to every portal and wait for the multipath map; without it, portals are tried in
    /// turn until one works and the volume is the bare disk.
    pub multipath: bool,
}

/// A connected volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connected {
    /// What os-brick's `connect_volume` returns; give it back to disconnect.
    pub device_info: DeviceInfo,
    /// The disks of the volume (`sdX`).
    pub paths: Vec<String>,
    /// The portals that did not work, with the reason.
    pub failed_paths: Vec<String>,
}

/// What one portal's attempt created, to undo it if the connect fails.
#[derive(Debug, Default)]
struct Created {
    node_record: bool,
    session: Option<u32>,
    disk: Option<String>,
}

struct PathAttempt {
    target: Target,
    created: Created,
    result: std::result::Result<(u32, ScsiDisk), String>,
}

/// Connects the volume described by `props` and returns its `device_info`.
///
/// For each portal (all at once with `multipath`): reuses the session to the target if there is
/// one; else checks with a sendtargets discovery that the portal offers the target (unless
/// `target_discovered`; discovery stores no node record), creates the node record with manual
/// startup and manual scan, sets CHAP and bounded login retries in it, and logs in. Then scans
/// only the volume's LUN (again, with growing pauses, while the target does not offer it, up to
/// `device_deadline`) and waits for its disk in sysfs; with `multipath`, registers the
/// volume's WWID in multipath's wwids file, hands the paths to multipathd and waits for the map
/// that holds them. Succeeds when at least one path works; whatever the failed paths created
/// (node records, sessions, disks) is removed, and a connect that fails altogether leaves the
/// host as it was (the WWID it registered goes too, unless a map of it remains).
pub fn connect_volume(
    host: &Host,
    props: &ConnectionProperties,
    opts: ConnectOptions,
    tuning: &Tuning,
) -> Result<Connected> {
    let span = tracing::info_span!("connect", volume = %props.label(), multipath = opts.multipath);
    let _enter = span.enter();

    // The sendtargets check runs beside the logins and the wait for the map rather than before
    // them: it only confirms what a login finds out anyway, and under load it takes longer than
    // both. A path whose portal does not offer the target fails (and is undone, out of the map
    // first) whatever its login said.
    let (offered, mut attempts, wwid, map, registered) = std::thread::scope(|s| {
        let span = tracing::Span::current();
        let check = (!props.discovered)
            .then(|| s.spawn(move || span.in_scope(|| check_offered(host, props, tuning))));
        let mut attempts = attach_paths(host, props, opts, tuning);
        let wwid = volume_wwid(&mut attempts);
        let paths = up_paths(&attempts);
        let mut registered = false;
        let map = match &wwid {
            Some(w) if opts.multipath => {
                registered = register_wwid(host, w, tuning);
                match hand_paths_to_multipathd(host, w, &paths, tuning) {
                    Some(built_from) => {
                        let map = wait_for_map(host, w, &paths, tuning);
                        if let Ok(Some(m)) = &map {
                            tell_udev_of_the_map(host, m, &built_from, registered);
                        }
                        map
                    }
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        };
        let offered = match check.map(|h| h.join().expect("discovery thread does not panic")) {
            None => vec![Ok(()); props.targets.len()],
            Some(Ok(offered)) => offered,
            Some(Err(e)) => vec![Err(format!("sendtargets discovery: {e}")); props.targets.len()],
        };
        (offered, attempts, wwid, map, registered)
    });
    let mut map = map?;
    for a in &mut attempts {
        let i = props
            .targets
            .iter()
            .position(|t| *t == a.target)
            .expect("an attempt is for one of the volume's targets");
        let Err(why) = &offered[i] else {
            continue;
        };
        a.result = match &a.result {
            Ok((_, disk)) => {
                if map.as_ref().is_some_and(|m| m.slaves.contains(&disk.name)) {
                    let cmd = format!("del path {}", disk.name);
                    if let Err(e) = host.multipathd_cmd(&cmd, tuning.command_timeout) {
                        warn!(path = %disk.name, error = %e, "multipathd not told to drop the path");
                    }
                }
                Err(why.clone())
            }
            Err(e) => Err(format!("{why}; {e}")),
        };
    }

    let failed: Vec<String> = attempts
        .iter()
        .filter_map(|a| {
            a.result
                .as_ref()
                .err()
                .map(|e| format!("{} ({}): {e}", a.target.portal, a.target.iqn))
        })
        .collect();
    let paths = up_paths(&attempts);
    let Some(wwid) = wwid.clone().filter(|_| !paths.is_empty()) else {
        if let Some(m) = map.take() {
            if let Err(e) = multipath::remove_map(
                host,
                &m,
                &tuning.map_flush_backoff,
                tuning.map_flush_timeout,
            ) {
                warn!(map = %m.name, error = %e, "map of a failed connect left behind");
            }
        }
        // The WWID this connect registered goes again, unless a map of it is still there (in
        // use by a concurrent attach of the same volume, which needs it).
        if let Some(w) = wwid.as_ref().filter(|_| registered) {
            let unused = multipath::maps_of(host, w).is_ok_and(|maps| maps.is_empty());
            if !unused {
                warn!(wwn = %w, "a map of the volume remains: its WWID stays in multipath's wwids file");
            } else if let Err(e) = multipath::forget_wwid(host, w, tuning.command_timeout) {
                warn!(wwn = %w, error = %e, "WWID of a failed connect left in multipath's wwids file");
            }
        }
        for a in &attempts {
            undo(host, a, tuning);
        }
        return Err(Error::Connect {
            volume: props.label(),
            detail: failed.join("; "),
        });
    };
    for a in attempts.iter().filter(|a| a.result.is_err()) {
        warn!(portal = %a.target.portal, reason = %a.result.as_ref().err().map_or("", |e| e.as_str()), "path not attached");
        undo(host, a, tuning);
    }

    let path = match &map {
        Some(m) => format!("/dev/{}", m.dev),
        None => {
            if opts.multipath {
                warn!(wwn = %wwid, "no multipath map appeared; using the single path /dev/{}", paths[0]);
            }
            format!("/dev/{}", paths[0])
        }
    };
    info!(%path, wwn = %wwid, paths = ?paths, "volume connected");
    Ok(Connected {
        device_info: DeviceInfo {
            kind: "block".into(),
            path: Some(path),
            scsi_wwn: Some(wwid.to_string()),
            multipath_id: map.map(|m| m.name),
        },
        paths,
        failed_paths: failed,
    })
}

/// The volume's WWN: that of the first path up. A path showing another (or none) is not the
/// volume: its attempt fails.
fn volume_wwid(attempts: &mut [PathAttempt]) -> Option<crate::types::Wwid> {
    let wwid = attempts
        .iter()
        .find_map(|a| a.result.as_ref().ok().and_then(|(_, d)| d.wwid.clone()));
    for a in attempts.iter_mut() {
        if let Ok((_, d)) = &a.result {
            if d.wwid.is_none() || d.wwid != wwid {
                let msg = format!(
                    "{} at {} LUN {} shows WWN {}, not the volume's",
                    a.target.iqn,
                    a.target.portal,
                    a.target.lun,
                    d.wwid.as_ref().map_or("none", |w| w.as_str())
                );
                a.result = Err(msg);
            }
        }
    }
    wwid
}

/// The disks (`sdX`) of the attempts that worked.
fn up_paths(attempts: &[PathAttempt]) -> Vec<String> {
    attempts
        .iter()
        .filter_map(|a| a.result.as_ref().ok().map(|(_, d)| d.name.clone()))
        .collect()
}

/// With `multipath`, every path at once; else one portal after the other until one works.
fn attach_paths(
    host: &Host,
    props: &ConnectionProperties,
    opts: ConnectOptions,
    tuning: &Tuning,
) -> Vec<PathAttempt> {
    if opts.multipath {
        return crate::par::par_map(&props.targets, |t| connect_path(host, props, t, tuning));
    }
    let mut attempts = Vec::new();
    for t in &props.targets {
        let a = connect_path(host, props, t, tuning);
        let done = a.result.is_ok();
        attempts.push(a);
        if done {
            break;
        }
    }
    attempts
}

fn connect_path(
    host: &Host,
    props: &ConnectionProperties,
    target: &Target,
    tuning: &Tuning,
) -> PathAttempt {
    let mut created = Created::default();
    let result = attach_path(host, props, target, tuning, &mut created);
    PathAttempt {
        target: target.clone(),
        created,
        result,
    }
}

fn attach_path(
    host: &Host,
    props: &ConnectionProperties,
    t: &Target,
    tuning: &Tuning,
    created: &mut Created,
) -> std::result::Result<(u32, ScsiDisk), String> {
    let span = tracing::debug_span!("path", portal = %t.portal, iqn = %t.iqn, lun = %t.lun);
    let _enter = span.enter();
    let sid = {
        // Held until the LUN's SCSI device exists, so that a disconnect of another volume on the
        // same session cannot log out in between.
        let _lock = host
            .lock(&target_lock_name(&t.iqn, &t.portal))
            .map_err(|e| e.to_string())?;
        let sid =
            match topology::find_session(host, &t.iqn, &t.portal).map_err(|e| e.to_string())? {
                Some(sid) => {
                    debug!(session = sid, "reusing session");
                    sid
                }
                None => login(host, props, t, tuning, created)?,
            };
        // The device deadline counts from the session, not from the wait for the lock or the
        // login.
        let deadline = host.time().now() + tuning.device_deadline;
        let present = lun_on_session(host, sid, t.lun)?;
        if !present {
            scan_until_present(host, sid, t, deadline, tuning)?;
        }
        (sid, !present, deadline)
    };
    let (sid, scanned, deadline) = sid;
    let disk = wait_for_disk(host, sid, t, deadline, tuning)?;
    // A disk that was there before this connect (another attach of the same volume) is not ours
    // to remove if the connect fails; one we scanned, or found on a session we made, is.
    if scanned || created.session.is_some() {
        created.disk = Some(disk.name.clone());
    }
    Ok((sid, disk))
}

fn login(
    host: &Host,
    props: &ConnectionProperties,
    t: &Target,
    tuning: &Tuning,
    created: &mut Created,
) -> std::result::Result<u32, String> {
    let retries = tuning.login_retries.to_string();
    let login_timeout = tuning.login_timeout.as_secs().max(1).to_string();
    let mut keys: Vec<(&str, &str)> = vec![
        ("node.startup", "manual"),
        ("node.conn[0].startup", "manual"),
        ("node.session.scan", "manual"),
        ("node.session.initial_login_retry_max", &retries),
        ("node.conn[0].timeo.login_timeout", &login_timeout),
    ];
    match &props.auth {
        Some(chap) => {
            keys.push(("node.session.auth.authmethod", "CHAP"));
            keys.push(("node.session.auth.username", &chap.username));
            keys.push(("node.session.auth.password", chap.password.expose()));
            if let Some(rev) = &props.auth_reverse {
                keys.push(("node.session.auth.username_in", &rev.username));
                keys.push(("node.session.auth.password_in", rev.password.expose()));
            }
        }
        None => keys.push(("node.session.auth.authmethod", "None")),
    }
    if adm::node_exists(host, &t.iqn, &t.portal).map_err(|e| e.to_string())? {
        node::set(host, &t.iqn, &t.portal, &keys).map_err(|e| e.to_string())?;
    } else {
        node::create(host, &t.iqn, &t.portal, &keys).map_err(|e| e.to_string())?;
        created.node_record = true;
    }

    let cmd = Cmd::new("iscsiadm")
        .args([
            "-m",
            "node",
            "-T",
            t.iqn.as_str(),
            "-p",
            &t.portal.to_string(),
            "--login",
        ])
        .timeout(tuning.login_deadline);
    let outcome = {
        let _db = host.lock_shared(node::DB_LOCK).map_err(|e| e.to_string())?;
        host.run(&cmd)
    };
    // Whatever happened, a session may exist now: note it, so a failure removes it.
    let sid = topology::find_session(host, &t.iqn, &t.portal).map_err(|e| e.to_string())?;
    created.session = sid;
    let out = outcome.map_err(|e| e.to_string())?;
    match (out.code, sid) {
        (Some(0) | Some(ISCSI_ERR_SESS_EXISTS), Some(sid)) => {
            info!(session = sid, "logged in");
            Ok(sid)
        }
        (Some(0) | Some(ISCSI_ERR_SESS_EXISTS), None) => {
            Err(format!("`{cmd}` succeeded but no session shows in sysfs"))
        }
        (code, _) => Err(format!(
            "login failed ({}): {}",
            match (code, login_hint(code, props)) {
                (Some(c), Some(hint)) => format!("exit code {c}: {hint}"),
                (Some(c), None) => format!("exit code {c}"),
                (None, _) => "no exit code".into(),
            },
            out.tail()
        )),
    }
}

/// What a failed login's exit code most likely means for the user, where iscsiadm's own words
/// do not say it.
fn login_hint(code: Option<i32>, props: &ConnectionProperties) -> Option<&'static str> {
    match code? {
        ISCSI_ERR_LOGIN_AUTH_FAILED => {
            Some("the target refused the CHAP credentials (auth_username, auth_password)")
        }
        ISCSI_ERR_FATAL_LOGIN if props.auth_reverse.is_some() => Some(
            "the target refused the login for good, or could not prove itself with the \
             mutual CHAP credentials (auth_reverse_username, auth_reverse_password)",
        ),
        ISCSI_ERR_FATAL_LOGIN => {
            Some("the target refused the login for good (is this host's initiator name allowed?)")
        }
        _ => None,
    }
}

/// Asks `t.portal` with a sendtargets discovery which targets it offers, as (portal, IQN). The
/// discovery stores no node record (in-process; with discovery CHAP, `--op nonpersistent` and
/// the discovery record deleted after), so targets we did not ask for leave no trace.
fn discover(
    host: &Host,
    props: &ConnectionProperties,
    t: &Target,
    tuning: &Tuning,
) -> std::result::Result<Vec<(Portal, Iqn)>, String> {
    let portal = t.portal.to_string();
    let out = match &props.discovery_auth {
        None => {
            // In-process: no process, no node database, a few milliseconds.
            let initiator = crate::connector::initiator_name(host)
                .map_err(|e| e.to_string())?
                .ok_or("no InitiatorName in initiatorname.iscsi")?;
            let initiator: Iqn = initiator
                .parse()
                .map_err(|e| format!("the host's initiator name {initiator:?}: {e}"))?;
            return host
                .send_targets(&t.portal, &initiator, tuning.discovery_timeout)
                .map_err(|e| format!("sendtargets discovery on {portal} failed: {e}"));
        }
        Some(chap) => {
            // Discovery CHAP lives in a discovery record: create it, set the secret in it (never
            // on a command line), discover, and delete the record again.
            let base = ["-m", "discoverydb", "-t", "sendtargets", "-p", &portal];
            let new = Cmd::new("iscsiadm")
                .args(base)
                .args(["--op", "new"])
                .timeout(tuning.command_timeout);
            let out = host.run(&new).map_err(|e| e.to_string())?;
            if !out.success() {
                return Err(format!("`{new}` failed: {}", out.tail()));
            }
            let result = set_discovery_chap(host, t, chap).and_then(|()| {
                let cmd = Cmd::new("iscsiadm")
                    .args(base)
                    .args(["--discover", "--op", "nonpersistent"])
                    .timeout(tuning.discovery_timeout);
                host.run(&cmd).map_err(|e| e.to_string())
            });
            let del = Cmd::new("iscsiadm")
                .args(base)
                .args(["--op", "delete"])
                .timeout(tuning.command_timeout);
            if let Err(e) = host.run(&del) {
                warn!(portal = %t.portal, error = %e, "discovery record not deleted");
            }
            result?
        }
    };
    if !out.success() && out.code != Some(ISCSI_ERR_NO_OBJS_FOUND) {
        return Err(format!(
            "sendtargets discovery on {portal} failed: {}",
            out.tail()
        ));
    }
    // Lines look like `127.0.0.1:3260,1 iqn.2003-01.org.linux-iscsi.lab:tgt1`.
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let portal = w.next()?.rsplit_once(',')?.0.parse().ok()?;
            Some((portal, w.next()?.parse().ok()?))
        })
        .collect())
}

/// Checks, before any login, that each portal of the volume offers its target: one sendtargets
/// discovery lists every portal of a target, so a portal already listed is not asked again.
/// Discoveries are serialised host-wide: LIO drops a discovery session when the same initiator
/// opens another one to the same target at the same time (seen in the lab: exit code 11, "iSCSI
/// PDU timed out"). Portals that already have a session to the target need no discovery.
fn check_offered(
    host: &Host,
    props: &ConnectionProperties,
    tuning: &Tuning,
) -> Result<Vec<std::result::Result<(), String>>> {
    let mut known: Vec<(Portal, Iqn)> = Vec::new();
    let mut asked: Vec<Portal> = Vec::new();
    let mut results = Vec::new();
    let mut lock = None;
    for t in &props.targets {
        if topology::find_session(host, &t.iqn, &t.portal)?.is_some()
            || known.iter().any(|(p, i)| *p == t.portal && *i == t.iqn)
        {
            results.push(Ok(()));
            continue;
        }
        if asked.contains(&t.portal) {
            results.push(Err(format!(
                "portal {} does not offer target {} (sendtargets discovery)",
                t.portal, t.iqn
            )));
            continue;
        }
        // Discovery CHAP goes through a discovery record in open-iscsi's database, which
        // concurrent connects must not share; the in-process discovery touches nothing.
        if lock.is_none() && props.discovery_auth.is_some() {
            lock = Some(host.lock("iscsi-discovery")?);
        }
        asked.push(t.portal);
        match discover(host, props, t, tuning) {
            Ok(found) => {
                let offered = found.iter().any(|(p, i)| *p == t.portal && *i == t.iqn);
                known.extend(found);
                results.push(if offered {
                    Ok(())
                } else {
                    Err(format!(
                        "portal {} does not offer target {} (sendtargets discovery)",
                        t.portal, t.iqn
                    ))
                });
            }
            Err(e) => results.push(Err(e)),
        }
    }
    Ok(results)
}

fn set_discovery_chap(
    host: &Host,
    t: &Target,
    chap: &crate::props::Chap,
) -> std::result::Result<(), String> {
    let dir = host.iscsi_conf(format!(
        "send_targets/{},{}",
        t.portal.address(),
        t.portal.port
    ));
    let file = dir.join("st_config");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let text = node::set_keys(
        &text,
        &[
            ("discovery.sendtargets.auth.authmethod", "CHAP"),
            ("discovery.sendtargets.auth.username", &chap.username),
            (
                "discovery.sendtargets.auth.password",
                chap.password.expose(),
            ),
        ],
    );
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Asks the session's SCSI host to scan only `t.lun` (the node record says `scan = manual`, so
/// the kernel scans nothing by itself).
fn scan_lun(host: &Host, sid: u32, t: &Target, tuning: &Tuning) -> std::result::Result<(), String> {
    let h = topology::scsi_host_of(host, sid)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("session {sid} has no SCSI host in sysfs"))?;
    let attr = host.sys(format!("class/scsi_host/host{h}/scan"));
    host.kern()
        .write_attr(&attr, &format!("- - {}", t.lun), tuning.scan_timeout)
        .map_err(|e| {
            format!(
                "scan of LUN {} through {} failed: {e}",
                t.lun,
                attr.display()
            )
        })
}

/// Whether the kernel shows a SCSI device of LUN `lun` on session `sid` (with or without its
/// block device yet).
fn lun_on_session(host: &Host, sid: u32, lun: Lun) -> std::result::Result<bool, String> {
    Ok(topology::session_addresses(host, sid)
        .map_err(|e| e.to_string())?
        .iter()
        .any(|(a, _)| a.lun == lun))
}

/// Scans session `sid` for the volume's LUN until the kernel shows its SCSI device, or until
/// `deadline`. A scan through sysfs returns when the kernel has probed the LUN, so the device is
/// there at once, unless the target does not offer the LUN: not yet (some arrays map a LUN
/// to the initiator a few seconds after the attach was asked for, which os-brick's rescans
/// also allow for), or not at all (a wrong `target_lun`, a missing LUN mapping). So it scans
/// again, 1 s, 2 s, then 4 s apart. A scan of a LUN the target does not offer creates nothing.
///
/// The kernel scans nothing through a session in recovery (its portal stopped answering): the
/// scan returns at once and finds nothing, and so would every rescan until the session is back.
/// Such a session fails the path at once, saying so, rather than after the deadline as a LUN the
/// target does not offer: a multipath volume is then attached on its other paths without delay.
fn scan_until_present(
    host: &Host,
    sid: u32,
    t: &Target,
    deadline: Instant,
    tuning: &Tuning,
) -> std::result::Result<(), String> {
    let start = host.time().now();
    let mut pause = Pause::new(Duration::from_secs(1), Duration::from_secs(4));
    let mut scans = 0u32;
    loop {
        let state = topology::session_state(host, sid).map_err(|e| e.to_string())?;
        if let Some(state) = state.filter(|s| s != "LOGGED_IN") {
            return Err(format!(
                "session {sid} is {state} (in recovery: the portal does not answer), and the \
                 kernel scans no LUN through it; retry once the portal is back"
            ));
        }
        scans += 1;
        scan_lun(host, sid, t, tuning)?;
        if lun_on_session(host, sid, t.lun)? {
            if scans > 1 {
                debug!(scans, "LUN appeared on a later scan");
            }
            return Ok(());
        }
        let now = host.time().now();
        if now >= deadline {
            return Err(format!(
                "the target offers no LUN {} on session {sid} ({} scans in {:.0?}): check \
                 target_lun and that the target maps that LUN to this initiator",
                t.lun,
                scans,
                now - start
            ));
        }
        host.time().sleep(pause.take().min(deadline - now));
    }
}

fn wait_for_disk(
    host: &Host,
    sid: u32,
    t: &Target,
    deadline: Instant,
    tuning: &Tuning,
) -> std::result::Result<ScsiDisk, String> {
    let mut pause = Pause::new(Duration::from_millis(5), Duration::from_millis(50));
    loop {
        let disks = topology::session_disks(host, sid).map_err(|e| e.to_string())?;
        if let Some(d) = disks
            .into_iter()
            .find(|d| d.address.lun == t.lun && d.wwid.is_some())
        {
            return Ok(d);
        }
        if host.time().now() >= deadline {
            return Err(format!(
                "LUN {} did not appear on session {sid} within {:?}",
                t.lun, tuning.device_deadline
            ));
        }
        host.time().sleep(pause.take());
    }
}

/// Registers the volume's WWID with multipath-tools before any path is handed over, as
/// `multipath -a` (and os-brick) would: multipathd then builds the map whatever `find_multipaths`
/// says, and does not send a "change" uevent on the path it builds it from (udev would run every
/// disk rule on it again, about 0.65 s of CPU per volume in the lab); brick sends one where it is
/// needed ([`tell_udev_of_the_map`]). Returns whether brick added it (a connect that fails takes
/// it out again). A failure is logged, not fatal: with
/// `find_multipaths no` or `greedy` the map comes anyway.
fn register_wwid(host: &Host, wwid: &crate::types::Wwid, tuning: &Tuning) -> bool {
    match multipath::remember_wwid(host, wwid, tuning.command_timeout) {
        Ok(added) => {
            debug!(wwn = %wwid, added, "WWID registered in multipath's wwids file");
            added
        }
        Err(e) => {
            warn!(wwn = %wwid, error = %e, "WWID not registered with multipath: with find_multipaths strict or yes, no map may come");
            false
        }
    }
}

/// Tells multipathd about each new path (`add path sdX` on its control socket) instead of waiting
/// for it to learn of them from udev: it is faster, and works where udev is slow or absent. A path
/// multipathd knows already is not harmed. Returns the paths multipathd built the map from: those
/// in the map of `wwid` right after it took the first path (a new map takes every path of the
/// WWID multipathd holds already), or that path alone when no map shows yet. `None` when no map
/// will come: multipathd is unreachable or blacklists every path.
fn hand_paths_to_multipathd(
    host: &Host,
    wwid: &crate::types::Wwid,
    paths: &[String],
    tuning: &Tuning,
) -> Option<Vec<String>> {
    let mut built_from = None;
    let mut no_wwid = Vec::new();
    for p in paths {
        match host.multipathd_cmd(&format!("add path {p}"), tuning.command_timeout) {
            Ok(reply) if reply.contains("blacklisted") => {
                debug!(path = %p, "multipathd blacklists the path")
            }
            // Without udevd, multipathd finds no WWID for the path (see build_map_without_udev).
            Ok(reply) if reply == "fail" && !host.udevd_runs() => {
                no_wwid.push(p.clone());
            }
            Ok(_) if built_from.is_none() => {
                let map = multipath::maps_of(host, wwid)
                    .ok()
                    .and_then(|m| m.into_iter().next());
                built_from = Some(match map {
                    Some(m) if m.slaves.contains(p) => m.slaves,
                    _ => vec![p.clone()],
                });
            }
            Ok(_) => {}
            // Without multipathd no map comes: the volume is the bare disk.
            Err(e) => warn!(path = %p, error = %e, "multipathd not told of the path"),
        }
    }
    let built = (!no_wwid.is_empty())
        .then(|| multipath::build_map_without_udev(host, wwid, paths, tuning.command_timeout));
    match built {
        Some(Ok(Some(map))) => Some(map.slaves),
        Some(Ok(None)) => built_from,
        Some(Err(e)) => {
            warn!(error = %e, "no udevd, and multipath did not build the map");
            built_from
        }
        None => built_from,
    }
}

/// Makes sure udev knows the map's paths as paths of a map: its rules leave such a disk to the
/// map (no file system or LVM scan of it, no /dev/disk links to it instead of the map), and they
/// learn it from `multipath -u`, which says so only once the WWID is registered or the map
/// exists. multipathd asks udev to look again ("change") at each path it adds to a map that
/// exists, unless udev calls it a path of a map already, and at the paths of a map it builds for
/// a WWID it records itself. brick records the WWID, so the paths the map was built from
/// (`built_from`) are brick's to ask about: one udev called no path of a map, and one udev has
/// not finished with yet when brick registered the WWID just now (its `multipath -u` may have
/// run before). Nothing else: each look costs every disk rule once more (about 0.65 s of CPU in
/// the lab). Failures are logged, not fatal.
fn tell_udev_of_the_map(host: &Host, map: &DmMap, built_from: &[String], registered: bool) {
    for p in map.slaves.iter().filter(|p| built_from.contains(p)) {
        let ask = match multipath::udev_calls_it_a_path(host, p) {
            Ok(Some(said)) => !said,
            Ok(None) => registered,
            Err(e) => {
                debug!(path = %p, error = %e, "udev's record of the path not read");
                false
            }
        };
        if ask {
            match multipath::ask_udev_to_look_again(host, p) {
                Ok(()) => debug!(path = %p, map = %map.dev, "udev asked to look at the path again"),
                Err(e) => {
                    warn!(path = %p, error = %e, "udev not asked to look at the path again: it may not know the disk is a path of a map")
                }
            }
        }
    }
}

/// Waits for the multipath map of `wwid`, then briefly for every path to join it.
fn wait_for_map(
    host: &Host,
    wwid: &crate::types::Wwid,
    paths: &[String],
    tuning: &Tuning,
) -> Result<Option<DmMap>> {
    let deadline = host.time().now() + tuning.map_deadline;
    let mut pause = Pause::new(Duration::from_millis(5), Duration::from_millis(50));
    let mut grace_end = None;
    loop {
        let map = multipath::maps_of(host, wwid)?.into_iter().next();
        let now = host.time().now();
        if let Some(m) = &map {
            if paths.iter().all(|p| m.slaves.contains(p)) {
                return Ok(map);
            }
            if grace_end.is_none() {
                // multipathd built the map from the first path it saw, and holds the others back
                // until udev has announced the new map (under TCG with udevd, 1-2 s later).
                // `add map NAME` is that announcement: multipathd then does its delayed actions
                // at once (adds the held-back paths), as its own timeout would much later. The
                // held-back paths are not handed over again: multipathd answers each `add path`
                // of a path it holds with a "change" uevent on it (udev has not described the
                // path yet), and udev then runs every disk rule once more (about 0.9 s of CPU
                // per volume in the lab).
                if let Err(e) =
                    host.multipathd_cmd(&format!("add map {}", m.name), tuning.command_timeout)
                {
                    debug!(map = %m.name, error = %e, "multipathd not told of the map");
                }
            }
            let end = *grace_end.get_or_insert(now + tuning.map_paths_grace);
            if now >= end || now >= deadline {
                debug!(map = %m.dev, slaves = ?m.slaves, "not every path joined the map yet");
                return Ok(map);
            }
        } else if now >= deadline {
            return Ok(None);
        }
        host.time().sleep(pause.take());
    }
}

/// Removes what a failed path attempt created: the disk it scanned, the session it logged in,
/// the node record it made.
fn undo(host: &Host, a: &PathAttempt, tuning: &Tuning) {
    let t = &a.target;
    let _lock = match host.lock(&target_lock_name(&t.iqn, &t.portal)) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(error = %e, "cleaning up without the target lock");
            None
        }
    };
    if let Some(d) = &a.created.disk {
        if let Err(e) = scsi::delete(host, d, tuning.delete_timeout) {
            warn!(device = %d, error = %e, "disk of a failed path left behind");
        }
        let left = scsi::wait_gone(
            host,
            std::slice::from_ref(d),
            host.time().now() + tuning.removal_deadline,
        );
        if !left.is_empty() {
            warn!(device = %d, "disk of a failed path still present");
        }
    }
    if let Some(sid) = a.created.session {
        if let Err(e) = adm::logout_session(host, sid, tuning.command_timeout) {
            warn!(session = sid, error = %e, "session of a failed path left behind");
        }
    }
    if a.created.node_record {
        if let Err(e) = node::delete(host, &t.iqn, &t.portal) {
            warn!(portal = %t.portal, error = %e, "node record of a failed path left behind");
        }
    }
}
