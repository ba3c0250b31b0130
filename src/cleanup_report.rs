//! What `brick cleanup` finds and does, for every transport: the options, each kind of
//! leftover and the report. Plain values at the bottom layer (they name iSCSI sessions and NVMe
//! controllers as the kernel shows them, as `report::Thing` does), so that each transport's
//! cleanup and the root's, which merges them, use them without importing one another.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::block::multipath::DmMap;
use crate::block::scsi::ScsiDisk;
use crate::types::{Iqn, Portal, Session};

/// An NVMe-oF controller as cleanup saw it (`/sys/class/nvme/nvmeN`), in the kernel's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvmeControllerSeen {
    /// `nvmeN`.
    pub name: String,
    /// Its subsystem's NQN.
    pub nqn: Option<String>,
    /// `tcp`, `rdma`.
    pub transport: Option<String>,
    /// The `address` attribute (`traddr=...,trsvcid=...`).
    pub address: Option<String>,
    /// The host NQN it connected as.
    pub hostnqn: Option<String>,
}

/// What `cleanup` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Remove what was found (else only list it).
    pub apply: bool,
    /// How long a `blocked` disk whose session is not in recovery must stay blocked to count as
    /// dead (a disk whose session is in recovery never counts: see the module's notes).
    pub grace: Duration,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        CleanupOptions {
            apply: false,
            grace: Duration::from_secs(5),
        }
    }
}

/// One thing no volume needs any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Leftover {
    /// A multipath map with no path, or only dead ones, that nothing holds open.
    Map {
        /// The map.
        map: DmMap,
    },
    /// A disk the transport gave up on, of a WWN no running disk has.
    Disk {
        /// The disk.
        disk: ScsiDisk,
    },
    /// A session with no SCSI device.
    Session {
        /// The session.
        session: Session,
    },
    /// A node record for a manual login with no session.
    NodeRecord {
        /// The target.
        iqn: Iqn,
        /// The portal.
        portal: Portal,
    },
    /// A WWID in multipath's wwids file that nothing on the host has.
    Wwid {
        /// The WWID, as the file lists it.
        wwid: String,
    },
    /// An NVMe-oF controller with no namespace, in a subsystem that shows none.
    NvmeController {
        /// The controller, as read when found.
        controller: NvmeControllerSeen,
    },
    /// An md array with no member left (every replica's device gone).
    MdArray {
        /// `md127`.
        md: String,
        /// The members it still names (`dev-*` in sysfs), whose devices are gone.
        members: Vec<String>,
    },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::Map { map } => write!(
                f,
                "multipath map /dev/{} ({}), paths: {}",
                map.dev,
                map.name,
                if map.slaves.is_empty() {
                    "none".to_string()
                } else {
                    map.slaves.join(" ")
                }
            ),
            Leftover::Disk { disk } => write!(
                f,
                "disk /dev/{} ({}) [{}] wwn {}",
                disk.name,
                disk.address,
                disk.state
                    .as_ref()
                    .map_or("?".to_string(), ToString::to_string),
                disk.wwid.as_ref().map_or("?", |w| w.as_str())
            ),
            Leftover::Session { session: s } => write!(
                f,
                "session {} to {} at {} with no device",
                s.id, s.iqn, s.portal
            ),
            Leftover::NodeRecord { iqn, portal } => {
                write!(f, "node record of {iqn} at {portal} with no session")
            }
            Leftover::Wwid { wwid } => write!(f, "wwids entry {wwid} of no device"),
            Leftover::NvmeController { controller: c } => write!(
                f,
                "NVMe controller {} of {} at {} with no namespace",
                c.name,
                c.nqn.as_deref().unwrap_or("?"),
                c.address.as_deref().unwrap_or("?")
            ),
            Leftover::MdArray { md, members } => write!(
                f,
                "md array /dev/{md} with no member left (was over: {})",
                if members.is_empty() {
                    "none".to_string()
                } else {
                    members.join(" ")
                }
            ),
        }
    }
}

/// What `cleanup` found and, with `apply`, what became of each thing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Everything found, in the order it is removed (md arrays, NVMe controllers, then maps,
    /// disks, sessions, records, WWIDs).
    pub found: Vec<Leftover>,
    /// What was removed.
    pub removed: Vec<Leftover>,
    /// What was left in place when checked again, and why (in use now, or no longer left over).
    pub kept: Vec<(Leftover, String)>,
    /// What could not be removed, and why.
    pub failed: Vec<(Leftover, String)>,
    /// What looks left over at first sight but is not, and why (named, never removed): a disk
    /// whose session is in recovery, a disk, map or array in use, a node record set to log in at
    /// boot, a controller whose subsystem shows a namespace or that another host NQN made.
    pub left_alone: Vec<(Leftover, String)>,
}

/// What became of a leftover that did not fail.
pub(crate) enum Done {
    /// It is gone.
    Removed,
    /// Read again, it was no leftover any more: why.
    Kept(String),
}

impl CleanupReport {
    /// Removes each leftover found with `remove` (which reads it again first) and records
    /// what became of it: removed, kept with why, or failed with the error.
    pub(crate) fn apply_each<E: fmt::Display>(
        &mut self,
        mut remove: impl FnMut(&Leftover) -> Result<Done, E>,
    ) {
        for l in self.found.clone() {
            match remove(&l) {
                Ok(Done::Removed) => {
                    tracing::info!(leftover = %l, "removed");
                    self.removed.push(l);
                }
                Ok(Done::Kept(why)) => {
                    tracing::info!(leftover = %l, why, "kept");
                    self.kept.push((l, why));
                }
                Err(e) => {
                    tracing::warn!(leftover = %l, error = %e, "not removed");
                    self.failed.push((l, e.to_string()));
                }
            }
        }
    }

    /// Whether every thing found was removed, or, without `apply`, nothing was found.
    pub fn clean(&self) -> bool {
        self.kept.is_empty() && self.failed.is_empty()
    }

    /// Adds another transport's report to this one (the root's cleanup merges them so).
    pub fn absorb(&mut self, other: CleanupReport) {
        self.found.extend(other.found);
        self.removed.extend(other.removed);
        self.kept.extend(other.kept);
        self.failed.extend(other.failed);
        self.left_alone.extend(other.left_alone);
    }
}

impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let applied = !self.removed.is_empty() || !self.kept.is_empty() || !self.failed.is_empty();
        if self.found.is_empty() {
            writeln!(f, "nothing left over")?;
        } else if !applied {
            writeln!(f, "left over (brick cleanup --apply removes them):")?;
            for l in &self.found {
                writeln!(f, "  {l}")?;
            }
        }
        for l in &self.removed {
            writeln!(f, "removed: {l}")?;
        }
        for (l, why) in &self.kept {
            writeln!(f, "kept: {l}: {why}")?;
        }
        for (l, why) in &self.failed {
            writeln!(f, "failed: {l}: {why}")?;
        }
        for (l, why) in &self.left_alone {
            writeln!(f, "left alone: {l}: {why}")?;
        }
        Ok(())
    }
}
