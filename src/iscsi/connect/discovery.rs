//! The sendtargets check: does each portal offer the volume's target? In-process (no node
//! record), or with discovery CHAP through a discovery record deleted again.

use tracing::warn;

use crate::error::PathError;
use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::iscsi::node;
use crate::iscsi::props::{ConnectionProperties, Target};
use crate::iscsi::session::ISCSI_ERR_NO_OBJS_FOUND;
use crate::iscsi::tuning::Tuning;
use crate::types::{Iqn, Portal};

/// Asks `t.portal` with a sendtargets discovery which targets it offers, as (portal, IQN). The
/// discovery stores no node record (in-process; with discovery CHAP, `--op nonpersistent` and
/// the discovery record deleted after), so targets we did not ask for leave no trace.
pub(super) fn discover(
    host: &Host,
    props: &ConnectionProperties,
    t: &Target,
    tuning: &Tuning,
) -> std::result::Result<Vec<(Portal, Iqn)>, DiscoveryFailed> {
    let portal = t.portal.to_string();
    let out = match &props.discovery_auth {
        None => {
            // In-process: no process, no node database, a few milliseconds.
            let initiator =
                crate::iscsi::initiator_name(host)?.ok_or(DiscoveryFailed::NoInitiatorName)?;
            let initiator: Iqn =
                initiator
                    .parse()
                    .map_err(|why| DiscoveryFailed::BadInitiatorName {
                        name: initiator,
                        why,
                    })?;
            return crate::iscsi::sendtargets::client(host)
                .send_targets(&t.portal, &initiator, tuning.discovery_timeout)
                .map_err(|e| DiscoveryFailed::Refused {
                    portal: t.portal,
                    detail: e.to_string(),
                });
        }
        Some(chap) => {
            // Discovery CHAP lives in a discovery record: create it, set the secret in it (never
            // on a command line), discover, and delete the record again.
            let base = ["-m", "discoverydb", "-t", "sendtargets", "-p", &portal];
            let new = Cmd::new("iscsiadm")
                .args(base)
                .args(["--op", "new"])
                .timeout(tuning.command_timeout);
            let out = host.run(&new).map_err(Error::from)?;
            if !out.success() {
                return Err(DiscoveryFailed::Record {
                    cmd: new.to_string(),
                    detail: out.tail(),
                });
            }
            let result = set_discovery_chap(host, t, chap).and_then(|()| {
                let cmd = Cmd::new("iscsiadm")
                    .args(base)
                    .args(["--discover", "--op", "nonpersistent"])
                    .timeout(tuning.discovery_timeout);
                host.run(&cmd).map_err(Error::from)
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
        return Err(DiscoveryFailed::Refused {
            portal: t.portal,
            detail: out.tail(),
        });
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

/// The volume's paths when the caller gave one portal and asked for multipath, as os-brick's
/// `_discover_iscsi_portals` finds them: a sendtargets discovery on that portal, and every
/// portal it lists for the volume's target (same IQN, same LUN, same CHAP). Targets of other
/// IQNs are not taken, and the discovery leaves no node record. `None` when there is nothing to
/// add, or when the discovery failed: the connect then goes on with the one portal, whose own
/// check reports the failure.
pub(super) fn with_portals_by_discovery(
    host: &Host,
    props: &ConnectionProperties,
    tuning: &Tuning,
) -> Option<(ConnectionProperties, Vec<Portal>)> {
    if props.portals_listed || props.targets.len() != 1 {
        return None;
    }
    let first = &props.targets[0];
    let found = match discover(host, props, first, tuning) {
        Ok(found) => found,
        Err(e) => {
            warn!(portal = %first.portal, error = %e, "no other portals found by discovery");
            return None;
        }
    };
    let mut more = Vec::new();
    for (portal, iqn) in found {
        if iqn == first.iqn && portal != first.portal && !more.contains(&portal) {
            more.push(portal);
        }
    }
    if more.is_empty() {
        return None;
    }
    let mut props = props.clone();
    props.targets.extend(more.iter().map(|p| Target {
        portal: *p,
        iqn: first.iqn.clone(),
        lun: first.lun,
    }));
    tracing::info!(portals = ?more, "portals found by discovery on {}", first.portal);
    Some((props, more))
}

/// Checks, before any login, that each portal of the volume offers its target: one sendtargets
/// discovery lists every portal of a target, so a portal already listed is not asked again.
/// Discoveries are serialised host-wide: LIO drops a discovery session when the same initiator
/// opens another one to the same target at the same time (seen in the lab: exit code 11, "iSCSI
/// PDU timed out"). Portals that had a session to the target before this connect began
/// (`sessions_before`) need no discovery; a session this connect's own login made meanwhile
/// proves nothing the discovery would.
pub(super) fn check_offered(
    host: &Host,
    props: &ConnectionProperties,
    sessions_before: &[(Iqn, Portal)],
    tuning: &Tuning,
) -> Result<Vec<std::result::Result<(), PathError>>> {
    let mut known: Vec<(Portal, Iqn)> = Vec::new();
    let mut asked: Vec<Portal> = Vec::new();
    let mut results = Vec::new();
    let mut lock = None;
    for t in &props.targets {
        let had_session = sessions_before
            .iter()
            .any(|(i, p)| *i == t.iqn && *p == t.portal);
        if had_session || known.iter().any(|(p, i)| *p == t.portal && *i == t.iqn) {
            results.push(Ok(()));
            continue;
        }
        if asked.contains(&t.portal) {
            results.push(Err(not_offered(t)));
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
                results.push(if offered { Ok(()) } else { Err(not_offered(t)) });
            }
            Err(e) => results.push(Err(PathError::Discovery(e.to_string()))),
        }
    }
    Ok(results)
}

fn not_offered(t: &Target) -> PathError {
    PathError::Discovery(format!(
        "portal {} does not offer target {} (sendtargets discovery)",
        t.portal, t.iqn
    ))
}

pub(super) fn set_discovery_chap(
    host: &Host,
    t: &Target,
    chap: &crate::iscsi::props::Chap,
) -> Result<()> {
    let dir = host.iscsi_conf(format!(
        "send_targets/{},{}",
        t.portal.address(),
        t.portal.port
    ));
    let file = dir.join("st_config");
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
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
    node::write_private(host, &file, &text)
}

/// Why a sendtargets discovery gave no list of targets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiscoveryFailed {
    /// The host could not be read or a command not run.
    #[error(transparent)]
    Host(#[from] Error),
    /// initiatorname.iscsi names no initiator.
    #[error("no InitiatorName in initiatorname.iscsi")]
    NoInitiatorName,
    /// The initiator name is not an IQN.
    #[error("the host's initiator name {name:?}: {why}")]
    BadInitiatorName {
        /// As written in initiatorname.iscsi.
        name: String,
        /// What is wrong with it.
        why: crate::types::ParseError,
    },
    /// The portal did not answer the discovery, or refused it.
    #[error("sendtargets discovery on {portal} failed: {detail}")]
    Refused {
        /// The portal asked.
        portal: Portal,
        /// What the portal or iscsiadm said.
        detail: String,
    },
    /// The discovery record could not be made.
    #[error("`{cmd}` failed: {detail}")]
    Record {
        /// The iscsiadm command.
        cmd: String,
        /// Its output's end.
        detail: String,
    },
}
