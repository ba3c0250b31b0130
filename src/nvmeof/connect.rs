//! Connecting an NVMe-oF volume: a controller to every portal at once (one with native multipath
//! off, or when the caller asks for a single path), each made in-process by writing its option
//! string to `/dev/nvme-fabrics`; a live controller already there is reused and rescanned; one
//! that is reconnecting is waited for, with a deadline. Then the namespace is looked for in sysfs
//! by its UUID (or NGUID, or nsid): the subsystem's head while the kernel's native multipath is
//! on, however many controllers serve it, else the controller's own namespace device. A failed
//! connect deletes every controller it made, under the subsystem's lock, which a disconnect
//! takes too.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::identity::host_identity;
use super::props::{NvmePortal, NvmeProperties, NvmeTarget};
use super::sysfs::{self, Controller, ControllerState, Namespace};
use super::{lock_name, NvmeTuning};
use crate::device_info::DeviceInfo;
use crate::error::{Error, NvmeNotConnected, PathError, PathFailure, Result};
use crate::host::{Host, KernelError};
use crate::time::Pause;

/// What an NVMe-oF connect gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeConnected {
    /// os-brick's device_info: `{"type": "block", "path": "/dev/nvme0n1"}`.
    pub device_info: DeviceInfo,
    /// The namespace device.
    pub namespace: Namespace,
    /// The controllers that serve it (made or reused).
    pub controllers: Vec<String>,
    /// The portals that did not give a live controller, and why.
    pub failed_paths: Vec<PathFailure>,
}

/// Connects the one target of `props` (not in the replicated format).
pub(crate) fn connect_one(
    host: &Host,
    props: &NvmeProperties,
    tuning: &NvmeTuning,
) -> Result<NvmeConnected> {
    let target = &props.targets[0];
    let identity = host_identity(host)?;
    let hostnqn = target.host_nqn.clone().unwrap_or(identity.nqn.clone());
    // Two separate choices: how many portals get a controller (every one only with native
    // multipath, unless the caller asked for one path), and which device is the volume's (the
    // kernel's mode alone decides: with native multipath on, a controller's namespace is a
    // hidden path `nvmeScCnX` and the block device is the subsystem's head `nvmeSnX`, even
    // when only one controller serves it).
    let native = sysfs::native_multipath(host)?;
    let paths = Paths {
        every_portal: native && tuning.multipath.unwrap_or(true),
        head: native,
    };
    let _lock = host.lock(&lock_name(&target.nqn))?;
    let mut made = Made {
        before: sysfs::controllers(host)?
            .into_iter()
            .map(|c| c.name)
            .collect(),
        ..Made::default()
    };
    let hostid = identity.id.to_string();
    let result = Attach {
        host,
        target,
        hostnqn: hostnqn.as_str(),
        hostid: &hostid,
        paths,
        tuning,
        made: &mut made,
        live: Vec::new(),
        failed: Vec::new(),
    }
    .run(props);
    match result {
        Ok(c) => Ok(c),
        Err(e) => {
            undo(host, target, hostnqn.as_str(), &made, tuning);
            Err(e)
        }
    }
}

/// What a connect made, for its undo.
#[derive(Debug, Default)]
struct Made {
    /// The controllers there before it started.
    before: Vec<String>,
    /// The controllers it made.
    controllers: Vec<String>,
    /// The portals whose connect request timed out: the kernel may still make their controller
    /// once the abandoned request finishes.
    timed_out: Vec<NvmePortal>,
}

/// How a connect attaches the volume.
#[derive(Debug, Clone, Copy)]
struct Paths {
    /// A controller to every portal at once (else the portals in turn until one works).
    every_portal: bool,
    /// The volume's device is its namespace's head in the subsystem (native multipath on),
    /// else the namespace device of a controller.
    head: bool,
}

/// Controllers the kernel is reconnecting, and their portals.
type Reconnecting = Vec<(NvmePortal, Controller)>;

/// One connect's attempt at the target's portals: what is live, what failed, what it made.
struct Attach<'a> {
    host: &'a Host,
    target: &'a NvmeTarget,
    hostnqn: &'a str,
    hostid: &'a str,
    paths: Paths,
    tuning: &'a NvmeTuning,
    made: &'a mut Made,
    /// The live controllers that serve the volume (reused or made).
    live: Vec<String>,
    /// The portals that gave no live controller, and why.
    failed: Vec<PathFailure>,
}

impl Attach<'_> {
    /// Gets a live controller to the target's portals (reused, reconnected or made), then
    /// waits for the volume's namespace on them.
    fn run(mut self, props: &NvmeProperties) -> Result<NvmeConnected> {
        let (missing, waiting) = self.reuse_live()?;
        self.wait_reconnecting(waiting)?;
        if self.paths.every_portal {
            self.connect_every(&missing)?;
        } else if self.live.is_empty() {
            self.connect_first(&missing)?;
        }
        for f in &self.failed {
            warn!(portal = %f.target, "no controller: {}", f.error);
        }
        if self.live.is_empty() {
            return Err(Error::NvmeConnect {
                volume: props.label(),
                reason: NvmeNotConnected::NoController(self.failed),
            });
        }
        let (host, target, tuning) = (self.host, self.target, self.tuning);
        let ns = wait_namespace(host, props, target, &self.live, self.paths.head, tuning)?;
        info!(device = %ns.name, controllers = ?self.live, "connected");
        Ok(NvmeConnected {
            device_info: DeviceInfo {
                kind: "block".into(),
                path: Some(format!("/dev/{}", ns.name)),
                ..Default::default()
            },
            namespace: ns,
            controllers: self.live,
            failed_paths: self.failed,
        })
    }

    /// Reuses (and rescans) the live controllers already at the target's portals; gives the
    /// portals with none, and the controllers the kernel is reconnecting.
    fn reuse_live(&mut self) -> Result<(Vec<NvmePortal>, Reconnecting)> {
        let existing = sysfs::controllers(self.host)?;
        let mut missing = Vec::new();
        let mut waiting = Vec::new();
        for p in &self.target.portals {
            let at = existing.iter().find(|c| {
                c.is_at(&self.target.nqn, p, self.hostnqn)
                    && !c.state.as_ref().is_some_and(ControllerState::is_going)
            });
            match at.cloned() {
                Some(c) if c.is_live() => {
                    debug!(controller = %c.name, portal = %p, "reusing a live controller; rescanning");
                    rescan(self.host, &c.name, self.tuning);
                    self.live.push(c.name);
                }
                Some(c) => waiting.push((*p, c)),
                None => missing.push(*p),
            }
        }
        Ok((missing, waiting))
    }

    /// Controllers in `connecting` or `resetting`: the kernel reconnects them by itself; waits
    /// for them, with a deadline, instead of making a second one to the same portal.
    fn wait_reconnecting(&mut self, waiting: Reconnecting) -> Result<()> {
        if waiting.is_empty() || !(self.paths.every_portal || self.live.is_empty()) {
            return Ok(());
        }
        let names: Vec<&str> = waiting.iter().map(|(_, c)| c.name.as_str()).collect();
        let up = wait_live(self.host, &names, self.tuning.live_deadline)?;
        for (p, c) in waiting {
            if up.contains(&c.name) {
                rescan(self.host, &c.name, self.tuning);
                self.live.push(c.name);
            } else {
                let error = PathError::ControllerNotLive {
                    controller: Some(c.name),
                    waited: self.tuning.live_deadline,
                };
                self.fail(p, error);
            }
        }
        Ok(())
    }

    /// A controller to every portal with none, at once.
    fn connect_every(&mut self, missing: &[NvmePortal]) -> Result<()> {
        let (host, target, tuning) = (self.host, self.target, self.tuning);
        let (hostnqn, hostid) = (self.hostnqn, self.hostid);
        let results = crate::par::par_map(missing, |p| {
            create(host, target, p, hostnqn, hostid, tuning)
        });
        for (p, r) in missing.iter().zip(results) {
            self.take(p, r)?;
        }
        Ok(())
    }

    /// A controller to the portals in turn, until one is live.
    fn connect_first(&mut self, missing: &[NvmePortal]) -> Result<()> {
        for p in missing {
            let r = create(
                self.host,
                self.target,
                p,
                self.hostnqn,
                self.hostid,
                self.tuning,
            );
            if self.take(p, r)? {
                break;
            }
        }
        Ok(())
    }

    /// Takes the result of a connect request to `p`: whether it gave a live controller.
    fn take(
        &mut self,
        p: &NvmePortal,
        r: std::result::Result<Created, CreateError>,
    ) -> Result<bool> {
        match r {
            Ok(Created::New(name)) => {
                self.made.controllers.push(name.clone());
                self.live.push(name);
                Ok(true)
            }
            Ok(Created::Raced) => {
                let t = self.tuning;
                match wait_for_existing(self.host, self.target, p, self.hostnqn, t)? {
                    Some(name) => {
                        self.live.push(name);
                        Ok(true)
                    }
                    None => {
                        let error = PathError::ControllerNotLive {
                            controller: None,
                            waited: t.live_deadline,
                        };
                        self.fail(*p, error);
                        Ok(false)
                    }
                }
            }
            Err(e) => {
                if e.timed_out {
                    self.made.timed_out.push(*p);
                }
                self.fail(*p, e.error);
                Ok(false)
            }
        }
    }

    fn fail(&mut self, p: NvmePortal, error: PathError) {
        let nqn = self.target.nqn.clone();
        self.failed.push(PathFailure::nvme(p, nqn, error));
    }
}

/// Why a connect request to a portal gave no controller.
struct CreateError {
    error: PathError,
    /// The request did not return within its deadline (it was abandoned, not answered).
    timed_out: bool,
}

impl From<PathError> for CreateError {
    fn from(error: PathError) -> Self {
        CreateError {
            error,
            timed_out: false,
        }
    }
}

enum Created {
    New(String),
    /// The kernel has a controller to that portal already (EALREADY): made meanwhile by another
    /// program that does not take brick's lock.
    Raced,
}

/// The option string of a connect to `p`. Every value was checked when the properties were
/// parsed (no `,` or `=` in NQNs; addresses are IP addresses).
pub(crate) fn options(
    target: &NvmeTarget,
    p: &NvmePortal,
    hostnqn: &str,
    hostid: &str,
    tuning: &NvmeTuning,
) -> String {
    let mut o = format!(
        "nqn={},transport={},traddr={},trsvcid={},hostnqn={hostnqn},hostid={hostid},ctrl_loss_tmo={},reconnect_delay={}",
        target.nqn,
        p.transport,
        p.address,
        p.port,
        tuning
            .ctrl_loss_tmo
            .map_or(-1, |d| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)),
        tuning.reconnect_delay.as_secs().max(1),
    );
    if let Some(f) = tuning.fast_io_fail_tmo {
        o.push_str(&format!(",fast_io_fail_tmo={}", f.as_secs()));
    }
    o
}

fn create(
    host: &Host,
    target: &NvmeTarget,
    p: &NvmePortal,
    hostnqn: &str,
    hostid: &str,
    tuning: &NvmeTuning,
) -> std::result::Result<Created, CreateError> {
    let opts = options(target, p, hostnqn, hostid, tuning);
    let t = host.time().now();
    let dev = host.dev_node("nvme-fabrics");
    match host
        .kern()
        .fabrics_connect(&dev, &opts, tuning.connect_timeout)
    {
        Ok(answer) => {
            let name = parse_answer(&answer).ok_or_else(|| {
                PathError::NvmeConnect(format!(
                    "the kernel answered {answer:?}, not instance=N,cntlid=M"
                ))
            })?;
            debug!(portal = %p, controller = %name, took = ?host.time().now().duration_since(t), "controller made");
            Ok(Created::New(name))
        }
        Err(KernelError::Errno(libc::EALREADY)) => Ok(Created::Raced),
        Err(e @ KernelError::Errno(libc::ENOENT)) => Err(PathError::Host(format!(
            "{}: {e} (is the nvme-{} module loaded?)",
            dev.display(),
            p.transport
        ))
        .into()),
        Err(e @ KernelError::TimedOut(_)) => Err(CreateError {
            error: PathError::NvmeConnect(format!("connect failed: {e}")),
            timed_out: true,
        }),
        Err(e) => Err(PathError::NvmeConnect(format!("connect failed: {e}")).into()),
    }
}

/// `instance=3,cntlid=1` -> `nvme3`.
pub(crate) fn parse_answer(answer: &str) -> Option<String> {
    answer.trim().split(',').find_map(|kv| {
        let n: u32 = kv.strip_prefix("instance=")?.parse().ok()?;
        Some(format!("nvme{n}"))
    })
}

fn wait_for_existing(
    host: &Host,
    target: &NvmeTarget,
    p: &NvmePortal,
    hostnqn: &str,
    tuning: &NvmeTuning,
) -> Result<Option<String>> {
    let c = sysfs::controllers(host)?
        .into_iter()
        .find(|c| c.is_at(&target.nqn, p, hostnqn));
    let Some(c) = c else { return Ok(None) };
    let up = wait_live(host, &[c.name.as_str()], tuning.live_deadline)?;
    Ok(up.into_iter().next())
}

/// Waits until each of `names` is live, or the deadline; returns those that are.
fn wait_live(host: &Host, names: &[&str], deadline: Duration) -> Result<Vec<String>> {
    let clock = host.time();
    let end = clock.now() + deadline;
    let mut pause = Pause::new(Duration::from_millis(50), Duration::from_millis(500));
    loop {
        let mut up = Vec::new();
        for n in names {
            if sysfs::controller(host, n)?.is_some_and(|c| c.is_live()) {
                up.push(n.to_string());
            }
        }
        if up.len() == names.len() || clock.now() >= end {
            return Ok(up);
        }
        clock.sleep(pause.take());
    }
}

fn rescan(host: &Host, ctrl: &str, tuning: &NvmeTuning) {
    let path = host.sys(format!("class/nvme/{ctrl}/rescan_controller"));
    if let Err(e) = host.kern().write_attr(&path, "1", tuning.delete_timeout) {
        warn!(controller = %ctrl, "rescan failed: {e}");
    }
}

/// Waits for the volume's namespace on the controllers `live`: its head with native multipath
/// (`head`; and, for a grace period, a path under every live controller, however many portals
/// were connected), else the namespace device of the first controller that shows it.
fn wait_namespace(
    host: &Host,
    props: &NvmeProperties,
    target: &NvmeTarget,
    live: &[String],
    head: bool,
    tuning: &NvmeTuning,
) -> Result<Namespace> {
    let clock = host.time();
    let start = clock.now();
    let end = start + tuning.namespace_deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(500));
    let mut found: Option<(Namespace, std::time::Instant)> = None;
    loop {
        let sub = sysfs::subsystem(host, &target.nqn)?;
        let mut devs = sub
            .as_ref()
            .map(|s| sysfs::volume_devices(s, target))
            .unwrap_or_default();
        if target.uuid.is_none() && target.nguid.is_none() && target.nsid.is_none() {
            let all = sub
                .as_ref()
                .map(|s| sysfs::other_devices(s, target).len() + devs.len());
            if devs.len() > 1 || all.unwrap_or(0) > 1 {
                return Err(Error::invalid(
                    "volume_nguid",
                    format!(
                        "the subsystem {} shows several namespaces, and the properties give no \
                         vol_uuid, volume_nguid or ns_id to tell which is the volume's",
                        target.nqn
                    ),
                ));
            }
        }
        // Never a device that shows another UUID or NGUID than the volume's.
        devs.retain(|d| !d.contradicts(target));
        if head {
            devs.retain(|d| {
                sub.as_ref()
                    .is_some_and(|s| s.heads.iter().any(|h| h.name == d.name))
            });
        } else {
            devs.retain(|d| {
                live.iter()
                    .any(|c| host.sys(format!("class/nvme/{c}/{}", d.name)).exists())
            });
        }
        if let Some(d) = devs.into_iter().next() {
            if !head {
                return Ok(d);
            }
            let paths_of = |s: &sysfs::Subsystem| {
                s.controllers
                    .iter()
                    .filter(|c| live.contains(&c.name))
                    .filter(|c| c.namespaces.iter().any(|n| n.nsid == d.nsid))
                    .count()
            };
            let all_paths = sub.as_ref().map(paths_of).unwrap_or(0) >= live.len();
            let since = found.get_or_insert((d.clone(), clock.now())).1;
            if all_paths || clock.now() >= since + tuning.paths_grace {
                return Ok(d);
            }
        } else if clock.now() >= end {
            return Err(Error::NvmeConnect {
                volume: props.label(),
                reason: NvmeNotConnected::NamespaceNotShown {
                    nqn: target.nqn.clone(),
                    identity: target.identity(),
                    waited: tuning.namespace_deadline,
                    controllers: live.to_vec(),
                },
            });
        }
        clock.sleep(pause.take());
    }
}

/// Deletes the controllers a failed connect made. A connect request that timed out was
/// abandoned in the kernel, which may still make its controller: each such portal is looked at
/// again, for up to `paths_grace`, and a controller that appeared there is deleted too.
fn undo(host: &Host, target: &NvmeTarget, hostnqn: &str, made: &Made, tuning: &NvmeTuning) {
    delete_made(host, &made.controllers, tuning);
    if made.timed_out.is_empty() {
        return;
    }
    let clock = host.time();
    let end = clock.now() + tuning.paths_grace;
    let mut pause = Pause::new(Duration::from_millis(50), Duration::from_millis(500));
    let mut waiting = made.timed_out.clone();
    loop {
        let late: Vec<(NvmePortal, String)> = sysfs::controllers(host)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !made.before.contains(&c.name) && !made.controllers.contains(&c.name))
            .filter_map(|c| {
                let p = waiting.iter().find(|p| c.is_at(&target.nqn, p, hostnqn))?;
                Some((*p, c.name))
            })
            .collect();
        for (p, name) in late {
            info!(controller = %name, portal = %p, "a timed-out connect made its controller late");
            delete_made(host, std::slice::from_ref(&name), tuning);
            waiting.retain(|w| *w != p);
        }
        if waiting.is_empty() {
            return;
        }
        if clock.now() >= end {
            for p in &waiting {
                warn!(portal = %p, "the connect to it timed out and may still make a controller later; `brick disconnect` removes it");
            }
            return;
        }
        clock.sleep(pause.take());
    }
}

/// Deletes controllers a failed connect made.
fn delete_made(host: &Host, made: &[String], tuning: &NvmeTuning) {
    for c in made {
        let path = host.sys(format!("class/nvme/{c}/delete_controller"));
        match host.kern().write_attr(&path, "1", tuning.delete_timeout) {
            Ok(()) => info!(controller = %c, "deleted the controller the failed connect made"),
            Err(e) if !path.exists() => debug!(controller = %c, "already gone: {e}"),
            Err(e) => {
                warn!(controller = %c, "cannot delete the controller the failed connect made: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_the_fabrics_device() {
        assert_eq!(
            parse_answer("instance=0,cntlid=1\n").as_deref(),
            Some("nvme0")
        );
        assert_eq!(
            parse_answer("instance=12,cntlid=3").as_deref(),
            Some("nvme12")
        );
        assert_eq!(parse_answer("instance=-1,cntlid=-1"), None);
        assert_eq!(parse_answer(""), None);
    }
}
