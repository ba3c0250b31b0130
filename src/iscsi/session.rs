//! An iSCSI session of this host, as sysfs shows it (see [`crate::iscsi::topology::list_sessions`]).

use serde::Serialize;

use crate::types::{Iqn, Portal, SessionId};

/// One iSCSI session: what `iscsiadm -m session` would list, read from sysfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The session number (N in `/sys/class/iscsi_session/sessionN`).
    pub id: SessionId,
    /// The transport (`tcp`, `iser`, ...).
    pub transport: String,
    /// The open-iscsi interface it was made on (`default`, `iser`, or an iface record's name).
    pub iface: String,
    /// The target portal (address and port) the session is connected to.
    pub portal: Portal,
    /// The target portal group tag.
    pub tpgt: u32,
    /// The target's name.
    pub iqn: Iqn,
}

/// iscsiadm's exit code for "no records / no sessions found".
pub const ISCSI_ERR_NO_OBJS_FOUND: i32 = 21;

/// The name of the host-wide lock that serialises session changes of `iqn` at `portal`: a
/// connect holds it from its login (or reuse of the session) until the LUN's SCSI device exists,
/// and while it undoes a failed path; a disconnect while it decides on and does a logout. So a
/// logout never takes a session from under a LUN being attached.
pub fn target_lock_name(iqn: &Iqn, portal: &Portal) -> String {
    format!("iscsi-{iqn}-{portal}")
}
