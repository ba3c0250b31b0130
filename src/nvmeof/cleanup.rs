//! `brick cleanup`, NVMe-oF part: what no NVMe-oF volume needs any more, with the same rules as
//! the iSCSI part (listed by default, each thing read again before it goes at `apply`, what
//! looks left over but is not named with why).
//!
//! What counts as left over:
//! - an md array with no member left (every replica's device gone, or faulty), that nothing
//!   holds, has mounted or has open; it is stopped as a disconnect stops one (`clear` to
//!   `md/array_state`, which the kernel refuses while it is open). It is not flushed: nothing
//!   has it open, and the kernel writes back and drops a block device's page cache at its last
//!   close; with no member there is nowhere to write to either;
//! - a fabrics controller (TCP, RDMA) connected as this host's NQN that serves no namespace, in
//!   a subsystem that shows no namespace on any controller (a connect that crashed before its
//!   namespace showed, or a volume the target unmapped); it is deleted (`delete_controller`).
//!
//! A connect in progress has its controller before its namespace shows; it is never taken for
//! a leftover: both must still look left over after `grace` (an array being assembled has no
//! member for a moment, too), and a controller is deleted under its subsystem's lock, which a
//! brick connect holds from its first controller to its namespace, after reading it again.
//! Left alone, with why: a controller whose subsystem shows a namespace (through another
//! controller: the volume's disconnect decides), one that another host NQN made, an array in
//! use.

use std::time::Duration;

use tracing::debug;

use super::props::Nqn;
use super::sysfs::{self, Controller, ControllerTransport, Subsystem};
use super::{lock_name, NvmeTuning};
use crate::block::md;
use crate::cleanup_report::{CleanupOptions, CleanupReport, Done, Leftover, NvmeControllerSeen};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::time::Pause;

/// What a look at the host found.
#[derive(Default)]
struct Findings {
    found: Vec<Leftover>,
    left_alone: Vec<(Leftover, String)>,
}

impl Findings {
    fn leave(&mut self, l: Leftover, why: String) {
        debug!(leftover = %l, why, "not left over");
        self.left_alone.push((l, why));
    }
}

/// Finds the NVMe-oF leftovers on `host` and, with `opts.apply`, removes them.
pub(crate) fn cleanup(
    host: &Host,
    opts: CleanupOptions,
    tuning: &NvmeTuning,
) -> Result<CleanupReport> {
    let span = tracing::info_span!("nvme_cleanup", apply = opts.apply);
    let _enter = span.enter();
    let f = find(host, opts.grace)?;
    let mut report = CleanupReport {
        found: f.found,
        left_alone: f.left_alone,
        ..CleanupReport::default()
    };
    if !opts.apply {
        return Ok(report);
    }
    report.apply_each(|l| remove(host, l, tuning));
    Ok(report)
}

/// Everything left over (arrays first: they sit above the namespaces), looked at twice,
/// `grace` apart.
fn find(host: &Host, grace: Duration) -> Result<Findings> {
    let mut out = Findings::default();
    let hostnqn = our_hostnqn(host)?;
    let arrays = memberless_arrays(host, &mut out)?;
    let ctrls = idle_controllers(host, hostnqn.as_deref(), &mut out)?;
    if arrays.is_empty() && ctrls.is_empty() {
        return Ok(out);
    }
    host.time().sleep(grace);
    for (md, members) in arrays {
        let l = Leftover::MdArray {
            md: md.clone(),
            members,
        };
        match array_must_stay(host, &md)? {
            None => out.found.push(l),
            Some(why) => out.leave(l, format!("{why} (after the grace period)")),
        }
    }
    for c in ctrls {
        match controller_must_stay(host, &c, hostnqn.as_deref())? {
            None => out.found.push(Leftover::NvmeController { controller: c }),
            Some(why) => out.leave(
                Leftover::NvmeController { controller: c },
                format!("{why} (after the grace period: a connect in progress?)"),
            ),
        }
    }
    Ok(out)
}

/// This host's NQN (`/etc/nvme/hostnqn`), when it has one.
fn our_hostnqn(host: &Host) -> Result<Option<String>> {
    Ok(host
        .read_attr_opt(&host.nvme_conf("hostnqn"))?
        .map(|s| s.trim().to_string()))
}

/// Why array `md` is not (or no longer) left over: gone, a member is back, or it is in use.
fn array_must_stay(host: &Host, md: &str) -> Result<Option<String>> {
    if !host.sys(format!("block/{md}/md")).exists() {
        return Ok(Some("it is gone".into()));
    }
    let live = md::live_members(host, md)?;
    if !live.is_empty() {
        return Ok(Some(format!("it has members: {}", live.join(" "))));
    }
    let open = crate::block::openers::openers(host, md, None);
    if !open.is_empty() {
        return Ok(Some(format!(
            "no member left, but in use: {}",
            open.join(", ")
        )));
    }
    Ok(None)
}

/// The arrays with no member left; those in use are left alone, with why.
fn memberless_arrays(host: &Host, out: &mut Findings) -> Result<Vec<(String, Vec<String>)>> {
    let mut found = Vec::new();
    for md in md::arrays(host)? {
        if !md::live_members(host, &md)?.is_empty() {
            continue;
        }
        let members = md::members(host, &md)?;
        match array_must_stay(host, &md)? {
            None => found.push((md, members)),
            Some(why) => out.leave(Leftover::MdArray { md, members }, why),
        }
    }
    Ok(found)
}

/// Controller `c` as the report names it.
fn seen(c: &Controller) -> NvmeControllerSeen {
    NvmeControllerSeen {
        name: c.name.clone(),
        nqn: c.subsysnqn.clone(),
        transport: c.transport.as_ref().map(ToString::to_string),
        address: c.address.clone(),
        hostnqn: c.hostnqn.clone(),
    }
}

/// Whether controller `c` is one brick makes (TCP or RDMA; never a local PCIe drive).
fn is_fabrics(c: &Controller) -> bool {
    matches!(c.transport, Some(ControllerTransport::Fabric(_)))
}

/// Whether the kernel is deleting controller `name` already.
fn deleting(host: &Host, name: &str) -> Result<bool> {
    Ok(host
        .read_attr_opt(&host.sys(format!("class/nvme/{name}/state")))?
        .is_some_and(|s| s.trim().starts_with("deleting")))
}

/// The namespaces subsystem `sub` shows (heads, or any controller's namespace devices).
fn namespaces_of(sub: &Subsystem) -> Vec<String> {
    let mut names: Vec<String> = sub.heads.iter().map(|n| n.name.clone()).collect();
    for c in &sub.controllers {
        names.extend(c.namespaces.iter().map(|n| n.name.clone()));
    }
    names
}

/// Why controller `c` (as read now) is not left over, if it is not.
fn idle_why_not(host: &Host, c: &Controller, hostnqn: Option<&str>) -> Result<Option<String>> {
    if let (Some(ours), Some(its)) = (hostnqn, c.hostnqn.as_deref()) {
        if ours != its {
            return Ok(Some(format!(
                "it was connected as host NQN {its}, not this host's ({ours}): brick removes \
                 only its own host's controllers; `echo 1 > /sys/class/nvme/{}/delete_controller` \
                 removes it if no one needs it",
                c.name
            )));
        }
    }
    let Some(nqn) = c.subsysnqn.as_deref() else {
        return Ok(Some("it shows no subsystem NQN".into()));
    };
    let shown = sysfs::subsystems(host)?
        .into_iter()
        .filter(|s| s.nqn.as_deref() == Some(nqn))
        .flat_map(|s| namespaces_of(&s))
        .collect::<Vec<_>>();
    if !shown.is_empty() {
        return Ok(Some(format!(
            "its subsystem shows namespace(s) through other controllers ({}): the disconnect \
             of that volume decides",
            shown.join(", ")
        )));
    }
    Ok(None)
}

/// The fabrics controllers with no namespace; those not brick's to remove are left alone.
fn idle_controllers(
    host: &Host,
    hostnqn: Option<&str>,
    out: &mut Findings,
) -> Result<Vec<NvmeControllerSeen>> {
    let mut found = Vec::new();
    for c in sysfs::controllers(host)? {
        if !is_fabrics(&c) || !c.namespaces.is_empty() || deleting(host, &c.name)? {
            continue;
        }
        match idle_why_not(host, &c, hostnqn)? {
            None => found.push(seen(&c)),
            Some(why) => out.leave(
                Leftover::NvmeController {
                    controller: seen(&c),
                },
                why,
            ),
        }
    }
    Ok(found)
}

/// Why controller `was` must stay, read again now: gone, another controller has the name, it
/// serves a namespace now, or it is no longer brick's to remove.
fn controller_must_stay(
    host: &Host,
    was: &NvmeControllerSeen,
    hostnqn: Option<&str>,
) -> Result<Option<String>> {
    let Some(now) = sysfs::controller(host, &was.name)? else {
        return Ok(Some("it is gone".into()));
    };
    if seen(&now) != *was {
        return Ok(Some("another controller has the name now".into()));
    }
    if !now.namespaces.is_empty() {
        let names: Vec<&str> = now.namespaces.iter().map(|n| n.name.as_str()).collect();
        return Ok(Some(format!(
            "it serves a namespace now: {}",
            names.join(", ")
        )));
    }
    idle_why_not(host, &now, hostnqn)
}

/// Removes one leftover after checking again that it still is one.
fn remove(host: &Host, l: &Leftover, tuning: &NvmeTuning) -> Result<Done> {
    match l {
        Leftover::MdArray { md, .. } => remove_array(host, md, tuning),
        Leftover::NvmeController { controller } => remove_controller(host, controller, tuning),
        _ => Ok(Done::Kept("not an NVMe-oF leftover".into())),
    }
}

/// An I/O error on `/dev/NAME` (or its sysfs entry) that says what failed.
fn failed_on(host: &Host, name: &str, what: String) -> Error {
    Error::io(&host.dev_node(name), std::io::Error::other(what))
}

fn remove_array(host: &Host, md: &str, tuning: &NvmeTuning) -> Result<Done> {
    if !host.sys(format!("block/{md}/md")).exists() {
        return Ok(Done::Removed);
    }
    if let Some(why) = array_must_stay(host, md)? {
        return Ok(Done::Kept(why));
    }
    md::stop(host, md, tuning.delete_timeout, tuning.removal_deadline)
        .map_err(|e| failed_on(host, md, e.to_string()))?;
    if host.sys(format!("block/{md}/md")).exists() {
        return Err(failed_on(host, md, "still there after its stop".into()));
    }
    Ok(Done::Removed)
}

fn remove_controller(host: &Host, c: &NvmeControllerSeen, tuning: &NvmeTuning) -> Result<Done> {
    let Some(nqn) = c.nqn.as_deref().and_then(|n| n.parse::<Nqn>().ok()) else {
        return Ok(Done::Kept(
            "its subsystem NQN is not one brick can lock".into(),
        ));
    };
    // A brick connect holds this lock from its first controller to its namespace.
    let _lock = host.lock(&lock_name(&nqn))?;
    let hostnqn = our_hostnqn(host)?;
    match controller_must_stay(host, c, hostnqn.as_deref())? {
        Some(why) if sysfs::controller(host, &c.name)?.is_none() => {
            debug!(controller = %c.name, why, "gone meanwhile");
            return Ok(Done::Removed);
        }
        Some(why) => return Ok(Done::Kept(why)),
        None => {}
    }
    let path = host.sys(format!("class/nvme/{}/delete_controller", c.name));
    host.kern()
        .write_attr(&path, "1", tuning.delete_timeout)
        .map_err(|e| failed_on(host, &c.name, format!("cannot delete controller: {e}")))?;
    let clock = host.time();
    let end = clock.now() + tuning.removal_deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(500));
    while sysfs::controller(host, &c.name)?.is_some() {
        if clock.now() >= end {
            return Err(failed_on(
                host,
                &c.name,
                "still there after its delete".into(),
            ));
        }
        clock.sleep(pause.take());
    }
    Ok(Done::Removed)
}
