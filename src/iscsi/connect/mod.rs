//! Connecting an iSCSI volume: node records with manual startup and manual scans, bounded logins
//! to every portal in parallel, a scan of only the volume's LUN, and waiting in sysfs for the
//! disk and its multipath map. A failed connect removes what it created.

mod discovery;
mod login;
mod map;
mod scan;
mod undo;

use discovery::check_offered;
use map::{hand_paths_to_multipathd, register_wwid, tell_udev_of_the_map, wait_or_build_map};
use scan::{lun_on_session, rescan_present_disk, scan_until_present, wait_for_disk};
use undo::{remove_map_of_failed_connect, remove_pathless_maps, undo};

use std::time::Instant;

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::block::multipath::{self, DmMap};
use crate::block::scsi::ScsiDisk;
use crate::device_info::DeviceInfo;
use crate::error::{Error, PathError, PathFailure, Result};
use crate::host::Host;
use crate::iscsi::iface::Iface;
use crate::iscsi::props::{ConnectionProperties, Target};
use crate::iscsi::session::target_lock_name;
use crate::iscsi::topology;
use crate::iscsi::tuning::Tuning;
use crate::types::SessionId;
use crate::types::{Iqn, Portal};

/// How to connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Log in to every portal and wait for the multipath map; without it, portals are tried in
    /// turn until one works and the volume is the bare disk.
    pub multipath: bool,
    /// The open-iscsi interface to make sessions on (os-brick's `transport`): `default` (TCP),
    /// `iser`, or an iface record's name. `None`: `iser` for a `driver_volume_type: iser`
    /// volume, else `default`.
    pub iface: Option<String>,
}

/// A connected volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connected {
    /// What os-brick's `connect_volume` returns; give it back to disconnect.
    pub device_info: DeviceInfo,
    /// The disks of the volume (`sdX`).
    pub paths: Vec<String>,
    /// The paths that did not attach, with the reason.
    pub failed_paths: Vec<PathFailure>,
    /// The portals a multipath connect found by a sendtargets discovery on the one portal the
    /// properties gave (os-brick's behaviour without `target_portals`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discovered_portals: Vec<Portal>,
}

/// What one portal's attempt created, to undo it if the connect fails.
#[derive(Debug, Default)]
struct Created {
    node_record: bool,
    session: Option<SessionId>,
    disk: Option<String>,
}

struct PathAttempt {
    target: Target,
    created: Created,
    result: std::result::Result<(SessionId, ScsiDisk), PathError>,
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
///
/// # Errors
/// [`Error::Prerequisite`] when multipath is asked for and multipathd does not answer (before
/// anything changes); [`Error::Connect`] when no path attached, or no multipath map came, with
/// every path's reason (what the connect made is undone); [`Error::Io`] when sysfs or the node
/// records cannot be read.
pub fn connect_volume(
    host: &Host,
    props: &ConnectionProperties,
    opts: ConnectOptions,
    tuning: &Tuning,
) -> Result<Connected> {
    // The interface first: a bad one is bad input, before anything changes.
    let iface = match opts.iface.as_deref() {
        Some(name) => Iface::named(host, name)?,
        None if props.iser => Iface::named(host, "iser")?,
        None => Iface::default(),
    };
    let span = tracing::info_span!("connect", volume = %props.label(), multipath = opts.multipath);
    let _enter = span.enter();
    if opts.multipath {
        need_multipathd(host, props, tuning)?;
    }
    // 0b. One portal given and multipath asked: the others come from a discovery on it.
    let discovered = opts
        .multipath
        .then(|| discovery::with_portals_by_discovery(host, props, tuning))
        .flatten();
    let (props, discovered_portals) = match &discovered {
        Some((p, more)) => (p, more.clone()),
        None => (props, Vec::new()),
    };
    // The sessions to the volume's targets that exist before any login of this connect.
    let sessions_before = sessions_now(host, props)?;
    // 1. The paths and the map, with the sendtargets check beside them rather than before:
    // it only confirms what a login finds out anyway, and under load it takes longer than
    // both. A path whose portal does not offer the target fails (and is undone, out of the
    // map first) whatever its login said.
    let (mut c, offered) = std::thread::scope(|s| {
        let span = tracing::Span::current();
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let check = (!props.discovered).then(|| {
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    span.in_scope(|| check_offered(host, props, &sessions_before, tuning))
                })
            })
        });
        let handoff = Handoff::new(host, tuning, opts.multipath);
        let attach = Attach {
            host,
            props,
            iface: &iface,
            tuning,
        };
        let mut c = Connect {
            host,
            props,
            tuning,
            attempts: attach.paths(opts.multipath, &handoff),
            wwid: None,
            map: None,
            registered: false,
        };
        let handed = handoff.into_state();
        c.wwid = volume_wwid(&mut c.attempts, handed.wwid.clone());
        // 2. A multipath connect returns a map or fails: a bare path handed out now could be
        // taken by a map later, and a caller writing to it would bypass that map.
        if opts.multipath {
            if let Err(why) = c.build_map(handed) {
                c.fail_every_path(&why);
            }
        }
        let checked = check.map(|h| h.join().expect("discovery thread does not panic"));
        (c, per_path(checked, props.targets.len()))
    });
    // 3. Paths whose portal does not offer the target go.
    c.apply_discovery(&offered);
    // 4. Done, or undone.
    let mut connected = c.finish()?;
    connected.discovered_portals = discovered_portals;
    Ok(connected)
}

/// Step 0: a multipath connect needs multipathd: without it no map can come, so say so before
/// any login rather than after every path was attached and undone.
fn need_multipathd(host: &Host, props: &ConnectionProperties, tuning: &Tuning) -> Result<()> {
    match host.multipathd_cmd("show daemon", tuning.command_timeout) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Prerequisite {
            what: format!(
                "{} not connected, nothing was changed: multipathd does not answer ({e}); a \
                 multipath connect needs it: start multipathd, or connect with --single-path",
                props.label()
            ),
        }),
    }
}

/// The sessions to the volume's targets there are now, as (IQN, portal).
fn sessions_now(host: &Host, props: &ConnectionProperties) -> Result<Vec<(Iqn, Portal)>> {
    let targets: Vec<_> = props.targets.iter().map(|t| (&t.iqn, &t.portal)).collect();
    Ok(topology::sessions_of(host, &targets)?
        .into_iter()
        .map(|s| (s.iqn, s.portal))
        .collect())
}

/// The sendtargets check's answer for each of `n` paths: none asked (every path offered), each
/// path's, or the check's own failure for every path.
fn per_path(
    checked: Option<Result<Vec<std::result::Result<(), PathError>>>>,
    n: usize,
) -> Vec<std::result::Result<(), PathError>> {
    match checked {
        None => vec![Ok(()); n],
        Some(Ok(offered)) => offered,
        Some(Err(e)) => {
            let e = PathError::Discovery(format!("sendtargets discovery: {e}"));
            vec![Err(e); n]
        }
    }
}

/// One connect under way: its path attempts, the volume's WWN and its map.
struct Connect<'a> {
    host: &'a Host,
    props: &'a ConnectionProperties,
    tuning: &'a Tuning,
    attempts: Vec<PathAttempt>,
    /// The volume's WWN (that of the first path up).
    wwid: Option<crate::types::Wwid>,
    map: Option<DmMap>,
    /// Whether this connect added the WWID to multipath's wwids file.
    registered: bool,
}

impl Connect<'_> {
    /// Registers the volume's WWID and hands multipathd the paths that were not handed over as
    /// their disks showed (see [`Handoff`]), then waits for the map. `Err` says why no map came.
    fn build_map(&mut self, handed: Handed) -> std::result::Result<(), PathError> {
        let (host, tuning) = (self.host, self.tuning);
        let Some(w) = self.wwid.clone() else {
            return Ok(());
        };
        let paths = up_paths(&self.attempts);
        let early = handed.wwid.as_ref() == Some(&w);
        self.registered = if early {
            handed.registered
        } else {
            register_wwid(host, &w, tuning)
        };
        let rest: Vec<String> = paths
            .iter()
            .filter(|p| !(early && handed.paths.contains(p)))
            .cloned()
            .collect();
        let built_from = match handed.built_from.filter(|_| early) {
            Some(b) => {
                if !rest.is_empty() {
                    hand_paths_to_multipathd(host, &w, &rest, tuning);
                }
                Some(b)
            }
            None if rest.is_empty() => None,
            None => hand_paths_to_multipathd(host, &w, &rest, tuning),
        };
        let Some(mut built_from) = built_from else {
            return Err(PathError::NoMap(format!(
                "multipathd took none of the paths of WWN {w} (is multipathd running? does it \
                 blacklist the device?); connect with a single path (--single-path) to use the \
                 bare disk"
            )));
        };
        match wait_or_build_map(host, &w, &paths, &mut built_from, tuning) {
            Ok(Some(m)) => {
                tell_udev_of_the_map(host, &m, &built_from, self.registered);
                self.map = Some(m);
                Ok(())
            }
            Ok(None) => Err(PathError::NoMap(format!(
                "multipathd built no map of WWN {w} within {:?}, nor did multipath after {:?} \
                 (does the multipath configuration blacklist the device?)",
                tuning.map_deadline, tuning.map_udev_wait
            ))),
            Err(e) => Err(PathError::NoMap(format!(
                "cannot look for the map of WWN {w}: {e}"
            ))),
        }
    }

    fn fail_every_path(&mut self, why: &PathError) {
        for a in self.attempts.iter_mut().filter(|a| a.result.is_ok()) {
            a.result = Err(why.clone());
        }
    }

    /// Fails the paths whose portal does not offer the target (sendtargets), out of the map
    /// first.
    fn apply_discovery(&mut self, offered: &[std::result::Result<(), PathError>]) {
        let (host, tuning) = (self.host, self.tuning);
        for a in &mut self.attempts {
            let i = self
                .props
                .targets
                .iter()
                .position(|t| *t == a.target)
                .expect("an attempt is for one of the volume's targets");
            let Err(why) = &offered[i] else {
                continue;
            };
            a.result = match &a.result {
                Ok((_, disk)) => {
                    if self
                        .map
                        .as_ref()
                        .is_some_and(|m| m.slaves.contains(&disk.name))
                    {
                        let cmd = format!("del path {}", disk.name);
                        if let Err(e) = host.multipathd_cmd(&cmd, tuning.command_timeout) {
                            warn!(path = %disk.name, error = %e, "multipathd not told to drop the path");
                        }
                    }
                    Err(why.clone())
                }
                Err(e) => Err(PathError::Discovery(format!("{why}; {e}"))),
            };
        }
    }

    /// The connected volume, once the failed paths are undone; or, when no path is up, the
    /// error, once everything this connect made is undone.
    fn finish(mut self) -> Result<Connected> {
        let failed: Vec<PathFailure> =
            self.attempts
                .iter()
                .filter_map(|a| {
                    a.result.as_ref().err().map(|e| {
                        PathFailure::iscsi(a.target.portal, a.target.iqn.clone(), e.clone())
                    })
                })
                .collect();
        let paths = up_paths(&self.attempts);
        let Some(wwid) = self.wwid.clone().filter(|_| !paths.is_empty()) else {
            self.undo_all();
            return Err(Error::Connect {
                volume: self.props.label(),
                paths: failed,
            });
        };
        for a in self.attempts.iter().filter(|a| a.result.is_err()) {
            if let Err(e) = &a.result {
                warn!(portal = %a.target.portal, reason = %e, "path not attached");
            }
            undo(self.host, a, self.tuning);
        }
        let path = match &self.map {
            Some(m) => format!("/dev/{}", m.dev),
            None => format!("/dev/{}", paths[0]),
        };
        info!(%path, wwn = %wwid, paths = ?paths, "volume connected");
        Ok(Connected {
            device_info: DeviceInfo {
                kind: "block".into(),
                path: Some(path),
                scsi_wwn: Some(wwid.to_string()),
                multipath_id: self.map.map(|m| m.name.to_string()),
            },
            paths,
            failed_paths: failed,
            discovered_portals: Vec::new(),
        })
    }

    /// Undoes everything a connect that failed made: its map (before the paths: a map left
    /// without a path queues I/O, and a udev probe of it would hang; and only when every path
    /// in it is one this connect made, since a concurrent attach of the same volume may have
    /// its paths in the same map), the paths, a map multipathd built late, and the WWID it
    /// registered (unless a map of it is still there, in use by a concurrent attach).
    fn undo_all(&mut self) {
        let (host, tuning) = (self.host, self.tuning);
        let made: Vec<&String> = self
            .attempts
            .iter()
            .filter_map(|a| a.created.disk.as_ref())
            .collect();
        if let Some(m) = self
            .map
            .take()
            .filter(|m| m.slaves.iter().all(|s| made.contains(&s)))
        {
            remove_map_of_failed_connect(host, &m, tuning);
        }
        for a in &self.attempts {
            undo(host, a, tuning);
        }
        let Some(w) = &self.wwid else {
            return;
        };
        remove_pathless_maps(host, w, tuning);
        if self.registered {
            let unused = multipath::maps_of(host, w).is_ok_and(|maps| maps.is_empty());
            if !unused {
                warn!(wwn = %w, "a map of the volume remains: its WWID stays in multipath's wwids file");
            } else if let Err(e) = multipath::forget_wwid(host, w, tuning.command_timeout) {
                warn!(wwn = %w, error = %e, "WWID of a failed connect left in multipath's wwids file");
            }
        }
    }
}

/// The volume's WWN: `first`, that of the first disk to show (when paths were handed to
/// multipathd as they showed), else that of the first path up. A path showing another (or none)
/// is not the volume: its attempt fails.
fn volume_wwid(
    attempts: &mut [PathAttempt],
    first: Option<crate::types::Wwid>,
) -> Option<crate::types::Wwid> {
    let wwid = first.or_else(|| {
        attempts
            .iter()
            .find_map(|a| a.result.as_ref().ok().and_then(|(_, d)| d.wwid.clone()))
    });
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
                a.result = Err(PathError::OtherVolume(msg));
            }
        }
    }
    wwid
}

/// The paths of a multipath connect handed to multipathd as their disks show, while the other
/// portals' logins go on: the map is built from the first path meanwhile, and a slow portal (a
/// dead one waits out its login deadline) does not hold it back. The first disk to show gives
/// the volume's WWID, registered with multipath-tools before its path is handed over; a disk
/// with another WWID (or none) is not handed over (its attempt fails later, see
/// [`volume_wwid`]). Without udevd nothing is handed over early: multipathd cannot take a path
/// udev never described, and the map is built from every path at once after the logins
/// ([`hand_paths_to_multipathd`]).
struct Handoff<'a> {
    host: &'a Host,
    tuning: &'a Tuning,
    multipath: bool,
    state: std::sync::Mutex<Handed>,
}

/// What [`Handoff`] did.
#[derive(Debug, Default)]
struct Handed {
    /// The volume's WWID: that of the first disk to show.
    wwid: Option<crate::types::Wwid>,
    /// Whether brick added it to multipath's wwids file.
    registered: bool,
    /// The paths handed over.
    paths: Vec<String>,
    /// The paths the map was built from (see [`hand_paths_to_multipathd`]): the answer to the
    /// first hand-over that multipathd took.
    built_from: Option<Vec<String>>,
    /// Whether udevd runs, once a disk showed.
    udevd: Option<bool>,
}

impl<'a> Handoff<'a> {
    fn new(host: &'a Host, tuning: &'a Tuning, multipath: bool) -> Handoff<'a> {
        Handoff {
            host,
            tuning,
            multipath,
            state: std::sync::Mutex::new(Handed::default()),
        }
    }

    /// Hands `disk` to multipathd, now that it shows (one path at a time: the first one makes
    /// the map, and which paths it was built from is known only then).
    fn offer(&self, disk: &ScsiDisk) {
        let Some(w) = disk.wwid.as_ref().filter(|_| self.multipath) else {
            return;
        };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !*s.udevd.get_or_insert_with(|| self.host.udevd_runs()) {
            return;
        }
        let wwid = match &s.wwid {
            Some(first) if first != w => return,
            Some(first) => first.clone(),
            None => {
                s.registered = register_wwid(self.host, w, self.tuning);
                s.wwid = Some(w.clone());
                w.clone()
            }
        };
        debug!(path = %disk.name, "handing the path to multipathd as it shows");
        let built_from = hand_paths_to_multipathd(
            self.host,
            &wwid,
            std::slice::from_ref(&disk.name),
            self.tuning,
        );
        s.paths.push(disk.name.clone());
        if s.built_from.is_none() {
            s.built_from = built_from;
        }
    }

    fn into_state(self) -> Handed {
        self.state.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// The disks (`sdX`) of the attempts that worked.
fn up_paths(attempts: &[PathAttempt]) -> Vec<String> {
    attempts
        .iter()
        .filter_map(|a| a.result.as_ref().ok().map(|(_, d)| d.name.clone()))
        .collect()
}

/// What every path of one connect works with: the host, the volume, the interface its sessions
/// use and the tuning.
#[derive(Clone, Copy)]
struct Attach<'a> {
    host: &'a Host,
    props: &'a ConnectionProperties,
    iface: &'a Iface,
    tuning: &'a Tuning,
}

impl Attach<'_> {
    /// With `multipath`, every path at once, each handed to multipathd as soon as its disk
    /// shows; else one portal after the other until one works.
    fn paths(&self, multipath: bool, handoff: &Handoff) -> Vec<PathAttempt> {
        if multipath {
            return crate::par::par_map(&self.props.targets, |t| {
                let a = self.path(t);
                if let Ok((_, disk)) = &a.result {
                    handoff.offer(disk);
                }
                a
            });
        }
        let mut attempts = Vec::new();
        for t in &self.props.targets {
            let a = self.path(t);
            let done = a.result.is_ok();
            attempts.push(a);
            if done {
                break;
            }
        }
        attempts
    }

    /// One portal's attempt, with what it created.
    fn path(&self, target: &Target) -> PathAttempt {
        let mut created = Created::default();
        let result = self.attach_path(target, &mut created);
        PathAttempt {
            target: target.clone(),
            created,
            result,
        }
    }

    fn attach_path(
        &self,
        t: &Target,
        created: &mut Created,
    ) -> std::result::Result<(SessionId, ScsiDisk), PathError> {
        let span = tracing::debug_span!("path", portal = %t.portal, iqn = %t.iqn, lun = %t.lun);
        let _enter = span.enter();
        let lun = self.lun_under_lock(t, created)?;
        let disk = wait_for_disk(self.host, lun.session, t, lun.deadline, self.tuning)?;
        // A disk that was there before this connect (another attach of the same volume) is not
        // ours to remove if the connect fails; one we scanned, or found on a session we made, is.
        if lun.scanned || created.session.is_some() {
            created.disk = Some(disk.name.clone());
        }
        Ok((lun.session, disk))
    }

    /// Under the target's lock, held until the LUN's SCSI device exists so that a disconnect of
    /// another volume on the same session cannot log out in between: reuses the session to the
    /// target or logs in, then rescans the LUN's disk when it was there already, or scans for
    /// it.
    fn lun_under_lock(
        &self,
        t: &Target,
        created: &mut Created,
    ) -> std::result::Result<LunOnSession, PathError> {
        let (host, tuning) = (self.host, self.tuning);
        let _lock = host
            .lock(&target_lock_name(&t.iqn, &t.portal))
            .map_err(PathError::host)?;
        let session = match topology::find_session_on(host, &t.iqn, &t.portal, &self.iface.name)
            .map_err(PathError::host)?
        {
            Some(sid) => {
                debug!(session = %sid, "reusing session");
                sid
            }
            None => self.login(t, created)?,
        };
        // The device deadline counts from the session, not from the wait for the lock or the
        // login.
        let deadline = host.time().now() + tuning.device_deadline;
        let present = lun_on_session(host, session, t.lun)?;
        if present {
            rescan_present_disk(host, session, t, tuning)?;
        } else {
            scan_until_present(host, session, t, deadline, tuning)?;
        }
        Ok(LunOnSession {
            session,
            scanned: !present,
            deadline,
        })
    }
}

/// The LUN's SCSI device on a session to the target, as [`lun_under_lock`] leaves it.
struct LunOnSession {
    session: SessionId,
    /// Whether this connect scanned the LUN (its disk is this connect's to remove on failure).
    scanned: bool,
    /// Until when the disk may take to show.
    deadline: Instant,
}
