//! What a disconnect did and what it left, as values: a caller tells "refused, nothing removed,
//! data kept" from "forced, these failed" by the [`Outcome`] and the [`Thing`]s listed, without
//! reading prose. `Display` gives the sentences the command line prints; the JSON output is these
//! types serialized.

use std::fmt;

use serde::Serialize;

use crate::types::{Iqn, Portal, ScsiAddress, Wwid};

/// What the caller of a disconnect accepts (every transport).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisconnectOptions {
    /// A clean host matters more than the data: go on through every step whatever fails, and
    /// report every failure at the end.
    pub force: bool,
    /// With `force`: return success even when something failed (each failure is still logged
    /// as a warning and listed in the report).
    pub ignore_errors: bool,
}

/// One thing on the host, with its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Thing {
    /// A device-mapper multipath map: its kernel name `dm-N` and its map name.
    Map {
        /// `dm-N`.
        dev: String,
        /// The map's name (multipath: the WWID).
        name: String,
    },
    /// A SCSI disk `sdX` (a path of the volume), with its address H:C:T:L when known.
    Disk {
        /// `sdX`.
        dev: String,
        /// H:C:T:L, when known.
        address: Option<ScsiAddress>,
    },
    /// A block device known by its kernel name only.
    Device {
        /// The kernel name.
        dev: String,
    },
    /// An iSCSI session.
    Session {
        /// N of `/sys/class/iscsi_session/sessionN`.
        id: crate::types::SessionId,
        /// The target.
        iqn: Iqn,
        /// The portal.
        portal: Portal,
    },
    /// An open-iscsi node record (what logs in to a target at a portal).
    NodeRecord {
        /// The target.
        iqn: Iqn,
        /// The portal.
        portal: Portal,
    },
    /// An NVMe-oF controller (`nvmeN`): a connection to a subsystem at a portal.
    NvmeController {
        /// `nvmeN`.
        name: String,
        /// The subsystem's NQN.
        nqn: String,
        /// Transport and address, `tcp 127.0.0.1:4420`.
        portal: String,
    },
    /// An NVMe namespace block device (`nvme0n1`, a native multipath head or a single path).
    NvmeNamespace {
        /// The kernel name.
        dev: String,
        /// The namespace id.
        nsid: Option<u32>,
        /// Its UUID or NGUID, when it shows one.
        id: Option<String>,
    },
}

impl Thing {
    /// A multipath map.
    pub fn map(dev: &str, name: &str) -> Thing {
        Thing::Map {
            dev: dev.to_string(),
            name: name.to_string(),
        }
    }

    /// A SCSI disk.
    pub fn disk(dev: &str, address: Option<ScsiAddress>) -> Thing {
        Thing::Disk {
            dev: dev.to_string(),
            address,
        }
    }

    /// The kernel name of the block device, for a map, a disk or a device.
    pub fn dev(&self) -> Option<&str> {
        match self {
            Thing::Map { dev, .. }
            | Thing::Disk { dev, .. }
            | Thing::Device { dev }
            | Thing::NvmeNamespace { dev, .. } => Some(dev),
            Thing::Session { .. } | Thing::NodeRecord { .. } | Thing::NvmeController { .. } => None,
        }
    }
}

impl fmt::Display for Thing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Thing::Map { dev, name } => write!(f, "/dev/{dev} (map {name})"),
            Thing::Disk {
                dev,
                address: Some(a),
            } => write!(f, "/dev/{dev} ({a})"),
            Thing::Disk { dev, address: None } | Thing::Device { dev } => write!(f, "/dev/{dev}"),
            Thing::Session { id, iqn, portal } => write!(f, "session {id} ({iqn} at {portal})"),
            Thing::NodeRecord { iqn, portal } => write!(f, "node record {iqn} at {portal}"),
            Thing::NvmeController { name, nqn, portal } => {
                write!(f, "controller {name} ({nqn} at {portal})")
            }
            Thing::NvmeNamespace { dev, nsid, id } => {
                write!(f, "/dev/{dev}")?;
                match (nsid, id) {
                    (Some(n), Some(i)) => write!(f, " (nsid {n}, {i})"),
                    (Some(n), None) => write!(f, " (nsid {n})"),
                    (None, Some(i)) => write!(f, " ({i})"),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}

/// A thing a disconnect did not touch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untouched {
    /// The thing.
    pub thing: Thing,
    /// Why it was not touched.
    pub why: String,
}

impl fmt::Display for Untouched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.thing, self.why)
    }
}

/// A step that failed, on which thing when it concerns one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The thing it concerns, if one.
    pub thing: Option<Thing>,
    /// What failed, for a person.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a disconnect ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The volume is gone from the host.
    #[default]
    Gone,
    /// Stopped before anything of the volume was removed: every device is in place and the
    /// kernel still holds the data.
    Refused,
    /// Stopped after removing only paths that could not answer (their I/O went to a live path):
    /// the map, the other paths and the data are in place.
    Stopped,
    /// Went through every step, and something failed: `left_behind` says what may remain.
    Unfinished,
}

/// What a disconnect did and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DisconnectReport {
    /// The volume (its `volume_id`, or the first target and LUN).
    pub volume: String,
    /// The volume's WWN, when known.
    pub wwn: Option<Wwid>,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether the caller forced the disconnect.
    pub forced: bool,
    /// What was removed, in order: maps, disks, sessions logged out, node records deleted.
    pub removed: Vec<Thing>,
    /// Sessions kept because other volumes use them.
    pub kept: Vec<Untouched>,
    /// Things that do not belong to the volume (or could not be proven to), never touched.
    pub left_alone: Vec<Untouched>,
    /// The volume's own things that may still be on the host.
    pub left_behind: Vec<Thing>,
    /// Every failure, in order.
    pub failures: Vec<Failure>,
}

impl DisconnectReport {
    /// Whether the volume is gone from the host.
    pub fn clean(&self) -> bool {
        self.left_behind.is_empty() && self.failures.is_empty()
    }

    /// The maps removed.
    pub fn maps_removed(&self) -> Vec<&Thing> {
        self.removed
            .iter()
            .filter(|t| matches!(t, Thing::Map { .. }))
            .collect()
    }

    /// The kernel names of the disks removed.
    pub fn disks_removed(&self) -> Vec<&str> {
        self.removed
            .iter()
            .filter(|t| matches!(t, Thing::Disk { .. }))
            .filter_map(Thing::dev)
            .collect()
    }

    /// The sessions logged out.
    pub fn sessions_logged_out(&self) -> Vec<&Thing> {
        self.removed
            .iter()
            .filter(|t| matches!(t, Thing::Session { .. }))
            .collect()
    }

    /// The node records deleted.
    pub fn node_records_deleted(&self) -> Vec<&Thing> {
        self.removed
            .iter()
            .filter(|t| matches!(t, Thing::NodeRecord { .. }))
            .collect()
    }

    /// Whether `dev` (`dm-0`, `sdb`) is named as left behind.
    pub fn leaves(&self, dev: &str) -> bool {
        self.left_behind.iter().any(|t| t.dev() == Some(dev))
    }

    /// Records a failure, logged as a warning.
    pub fn fail(&mut self, thing: Option<Thing>, message: String) {
        tracing::warn!("{message}");
        self.failures.push(Failure { thing, message });
    }

    /// Takes in what another part of the same disconnect did: its removals, kept and
    /// untouched things, leftovers and failures, after this report's own.
    pub fn absorb(&mut self, other: DisconnectReport) {
        self.removed.extend(other.removed);
        self.kept.extend(other.kept);
        self.left_alone.extend(other.left_alone);
        self.failures.extend(other.failures);
        for t in other.left_behind {
            if !self.left_behind.contains(&t) {
                self.left_behind.push(t);
            }
        }
    }

    /// Records that `thing` may still be on the host, logged as a warning.
    pub fn leave(&mut self, thing: Thing) {
        tracing::warn!(leftover = %thing, "may be left on the host");
        if !self.left_behind.contains(&thing) {
            self.left_behind.push(thing);
        }
    }
}

impl fmt::Display for DisconnectReport {
    /// The report as the command line prints it: one line per kind of thing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "volume {}", self.volume)?;
        if let Some(w) = &self.wwn {
            write!(f, " (wwn {w})")?;
        }
        let outcome = match self.outcome {
            Outcome::Gone => "gone from the host",
            Outcome::Refused => "refused: nothing was removed, the data is kept",
            Outcome::Stopped => "stopped: only paths that could not answer were removed",
            Outcome::Unfinished if self.forced => "forced, with failures",
            Outcome::Unfinished => "finished with failures",
        };
        writeln!(f, ": {outcome}")?;
        let mut line = |label: &str, items: Vec<String>| -> fmt::Result {
            if items.is_empty() {
                return Ok(());
            }
            writeln!(f, "  {label}: {}", items.join(", "))
        };
        let shown = |v: Vec<&Thing>| v.into_iter().map(Thing::to_string).collect();
        line("multipath maps removed", shown(self.maps_removed()))?;
        line(
            "devices removed",
            self.disks_removed()
                .into_iter()
                .map(|d| format!("/dev/{d}"))
                .collect(),
        )?;
        line("sessions logged out", shown(self.sessions_logged_out()))?;
        line("node records deleted", shown(self.node_records_deleted()))?;
        let nvme = |ctrl: bool| {
            self.removed
                .iter()
                .filter(|t| match t {
                    Thing::NvmeController { .. } => ctrl,
                    Thing::NvmeNamespace { .. } => !ctrl,
                    _ => false,
                })
                .map(Thing::to_string)
                .collect()
        };
        line("NVMe namespaces removed", nvme(false))?;
        line("NVMe controllers deleted", nvme(true))?;
        let kept = |sessions: bool| {
            self.kept
                .iter()
                .filter(|k| matches!(k.thing, Thing::Session { .. }) == sessions)
                .map(ToString::to_string)
                .collect()
        };
        line("sessions kept", kept(true))?;
        line("kept", kept(false))?;
        line(
            "left alone (not the volume's)",
            self.left_alone.iter().map(ToString::to_string).collect(),
        )?;
        line(
            "LEFT ON THE HOST",
            self.left_behind.iter().map(ToString::to_string).collect(),
        )?;
        line(
            "failures",
            self.failures.iter().map(ToString::to_string).collect(),
        )
    }
}

/// What a disconnect would do now, from the very code it runs (`brick disconnect --dry-run`):
/// reading it changes nothing on the host. The host can change before the disconnect runs; the
/// disconnect derives its plan again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DisconnectPlan {
    /// The volume (its `volume_id`, or the first target and LUN).
    pub volume: String,
    /// The volume's WWN, when known.
    pub wwn: Option<Wwid>,
    /// Flushed first, all at once, while nothing is removed: the maps, then every path.
    pub flush: Vec<Thing>,
    /// Then removed, in order: paths in recovery that go before their map, the maps, the other
    /// paths.
    pub remove: Vec<Thing>,
    /// Then logged out: the sessions nothing else uses.
    pub log_out: Vec<Thing>,
    /// Sessions kept, and what else uses them.
    pub keep: Vec<Untouched>,
    /// Then deleted: the node records of targets and portals left with no session.
    pub delete: Vec<Thing>,
    /// Things that are not the volume's (or cannot be proven to be), never touched.
    pub left_alone: Vec<Untouched>,
    /// What stops a plain disconnect, or makes it fail, as the host is now.
    pub problems: Vec<String>,
    /// What `--force` does where a plain disconnect would stop.
    pub if_forced: Vec<String>,
}

impl fmt::Display for DisconnectPlan {
    /// The plan as the command line prints it: one line per step.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "volume {}", self.volume)?;
        if let Some(w) = &self.wwn {
            write!(f, " (wwn {w})")?;
        }
        writeln!(f, ": dry run, nothing was changed")?;
        let things = |v: &[Thing]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let untouched = |v: &[Untouched]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let steps = [
            ("1. flush", things(&self.flush)),
            ("2. remove", things(&self.remove)),
            ("3. log out", things(&self.log_out)),
            ("   keep", untouched(&self.keep)),
            ("4. delete", things(&self.delete)),
            ("left alone (not the volume's)", untouched(&self.left_alone)),
            ("PROBLEMS", self.problems.clone()),
            ("with --force", self.if_forced.clone()),
        ];
        for (label, items) in steps {
            if !items.is_empty() {
                writeln!(f, "  {label}: {}", items.join("; "))?;
            }
        }
        let nothing = self.flush.is_empty()
            && self.remove.is_empty()
            && self.log_out.is_empty()
            && self.delete.is_empty();
        if nothing {
            writeln!(f, "  nothing of the volume is on the host")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DisconnectReport {
        let iqn: Iqn = "iqn.2003-01.org.linux-iscsi.lab:t".parse().unwrap();
        let portal: Portal = "127.0.0.1:3260".parse().unwrap();
        DisconnectReport {
            volume: "vol-1".into(),
            outcome: Outcome::Unfinished,
            forced: true,
            removed: vec![
                Thing::disk("sdb", Some("6:0:0:1".parse().unwrap())),
                Thing::Session {
                    id: crate::types::SessionId(3),
                    iqn: iqn.clone(),
                    portal,
                },
            ],
            left_behind: vec![Thing::map("dm-0", "3600a")],
            failures: vec![Failure {
                thing: Some(Thing::map("dm-0", "3600a")),
                message: "cannot flush multipath map 3600a (dm-0): in use".into(),
            }],
            kept: vec![Untouched {
                thing: Thing::NodeRecord { iqn, portal },
                why: "still used".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn json_follows_the_types() {
        let v = serde_json::to_value(report()).unwrap();
        assert_eq!(v["outcome"], "unfinished");
        assert_eq!(v["removed"][0]["kind"], "disk");
        assert_eq!(v["removed"][0]["address"], "6:0:0:1");
        assert_eq!(v["removed"][1]["kind"], "session");
        assert_eq!(v["removed"][1]["portal"], "127.0.0.1:3260");
        assert_eq!(v["left_behind"][0]["kind"], "map");
        assert_eq!(v["failures"][0]["thing"]["dev"], "dm-0");
        assert_eq!(v["kept"][0]["thing"]["kind"], "node_record");
    }

    #[test]
    fn text_names_every_thing_and_the_outcome() {
        let text = report().to_string();
        assert!(
            text.starts_with("volume vol-1: forced, with failures\n"),
            "{text}"
        );
        assert!(text.contains("  devices removed: /dev/sdb\n"), "{text}");
        assert!(
            text.contains("  sessions logged out: session 3 (iqn.2003-01.org.linux-iscsi.lab:t at 127.0.0.1:3260)\n"),
            "{text}"
        );
        assert!(
            text.contains("  LEFT ON THE HOST: /dev/dm-0 (map 3600a)\n"),
            "{text}"
        );
        assert!(report().disks_removed() == ["sdb"] && report().leaves("dm-0"));
    }
}
