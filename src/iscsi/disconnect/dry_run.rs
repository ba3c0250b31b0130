//! `brick disconnect --dry-run`: the disconnect's plan and decisions, changing nothing.

use crate::device_info::DeviceInfo;
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::props::ConnectionProperties;
use crate::iscsi::{adm, topology};
use crate::report::{DisconnectPlan, Thing, Untouched};
use crate::types::{Iqn, Portal};

use super::plan::{
    disk_thing, map_thing, paths_to_delete_early, records_to_forget, session_thing, session_users,
    Plan,
};
use super::{Disconnect, Tuning};
use crate::report::DisconnectOptions;

/// What [`disconnect_volume`](super::disconnect_volume) would do now, from the same code: the plan it makes, which of
/// the volume's sessions it would log out or keep (and why), the node records it would delete,
/// the paths in recovery that would go before their map, and what `force` would do where a
/// plain disconnect stops. Reads sysfs and the node records; changes nothing on the host (no
/// flush, no command, no lock taken).
///
/// # Errors
/// As [`disconnect_volume`](super::disconnect_volume) before it changes anything: [`Error::NotTheVolume`](crate::error::Error::NotTheVolume), or bad input.
pub fn disconnect_plan(
    host: &Host,
    props: &ConnectionProperties,
    device_info: Option<&DeviceInfo>,
) -> Result<DisconnectPlan> {
    let tuning = Tuning::default();
    let d = Disconnect::plan(
        host,
        props,
        device_info,
        DisconnectOptions::default(),
        &tuning,
    )?;
    let plan = &d.plan;
    let mut out = DisconnectPlan {
        volume: props.label(),
        wwn: plan.wwn.clone(),
        left_alone: d.report.left_alone.clone(),
        problems: d.report.failures.iter().map(ToString::to_string).collect(),
        ..Default::default()
    };
    out.flush.extend(plan.maps.iter().map(map_thing));
    out.flush.extend(plan.disks.iter().map(disk_thing));
    let early = paths_to_delete_early(host, plan)?;
    out.remove.extend(early.iter().map(disk_thing));
    out.remove.extend(plan.maps.iter().map(map_thing));
    out.remove.extend(
        plan.disks
            .iter()
            .filter(|d| !early.iter().any(|e| e.name == d.name))
            .map(disk_thing),
    );
    let kept = plan_sessions(host, props, plan, &mut out)?;
    plan_records(host, props, plan, &kept, &mut out)?;
    plan_if_forced(plan, &mut out);
    Ok(out)
}

/// The sessions logged out, and those kept because another volume uses them (returned).
fn plan_sessions(
    host: &Host,
    props: &ConnectionProperties,
    plan: &Plan,
    out: &mut DisconnectPlan,
) -> Result<Vec<(Iqn, Portal)>> {
    let mut kept = Vec::new();
    for s in &plan.sessions {
        let others = session_users(host, props, plan, s)?;
        if others.is_empty() {
            out.log_out.push(session_thing(s));
        } else {
            kept.push((s.iqn.clone(), s.portal));
            out.keep.push(Untouched {
                thing: session_thing(s),
                why: format!("still used by {}", others.join(", ")),
            });
        }
    }
    Ok(kept)
}

/// The node records deleted: those of sessions logged out, unless a session stays on them.
fn plan_records(
    host: &Host,
    props: &ConnectionProperties,
    plan: &Plan,
    kept: &[(Iqn, Portal)],
    out: &mut DisconnectPlan,
) -> Result<()> {
    // The sessions that stay: those of the host that the disconnect does not log out.
    let staying: Vec<_> = topology::list_sessions(host)?
        .into_iter()
        .filter(|s| !plan.sessions.iter().any(|p| p.id == s.id))
        .collect();
    for (iqn, portal) in records_to_forget(props, plan, kept) {
        let session_stays = staying.iter().any(|s| s.iqn == iqn && s.portal == portal);
        if adm::node_exists(host, &iqn, &portal)? && !session_stays {
            out.delete.push(Thing::NodeRecord { iqn, portal });
        }
    }
    Ok(())
}

/// What a forced disconnect would do beyond a plain one: foreign holders, maps that do not
/// flush or stay open.
fn plan_if_forced(plan: &Plan, out: &mut DisconnectPlan) {
    for h in &plan.foreign_holders {
        out.problems.push(format!(
            "{h}: a plain disconnect stops here, nothing removed"
        ));
        out.if_forced.push(format!(
            "{} is deleted from under the device that holds it",
            h.thing
        ));
    }
    for m in &plan.maps {
        let paths = if m.slaves.is_empty() {
            // A map whose paths went already (an earlier forced disconnect): nothing to set
            // offline.
            "it has no path left".to_string()
        } else {
            format!(
                "its paths that do not answer ({}) set offline",
                m.slaves.join(", ")
            )
        };
        out.if_forced.push(format!(
            "if {} does not flush (paths down): queueing disabled (fail_if_no_path) and {paths}; \
             unwritten data is lost",
            map_thing(m)
        ));
        out.if_forced.push(format!(
            "if {} stays open: with a path running, flushed again, queueing disabled, and its \
             paths deleted from under the opener (the map stays while it is open); with every \
             path down, the queued I/O is failed",
            map_thing(m)
        ));
    }
}
