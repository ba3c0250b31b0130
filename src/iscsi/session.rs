//! An iSCSI session of this host, as sysfs shows it (see [`crate::iscsi::topology::list_sessions`]).

use crate::types::{Iqn, Portal};

pub use crate::types::Session;

/// iscsiadm's exit code for "no records / no sessions found".
pub const ISCSI_ERR_NO_OBJS_FOUND: i32 = 21;

/// The name of the host-wide lock that serialises session changes of `iqn` at `portal`: a
/// connect holds it from its login (or reuse of the session) until the LUN's SCSI device exists,
/// and while it undoes a failed path; a disconnect while it decides on and does a logout. So a
/// logout never takes a session from under a LUN being attached.
pub fn target_lock_name(iqn: &Iqn, portal: &Portal) -> String {
    format!("iscsi-{iqn}-{portal}")
}
