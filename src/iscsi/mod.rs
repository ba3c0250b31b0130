//! iSCSI: sessions and their topology in sysfs, connecting and disconnecting a volume, over one
//! path or several with dm-multipath.
//!
//! Most callers want the crate's root ([`crate::connect_volume`] and the other steps), which
//! takes either transport's properties; these are iSCSI's own, with its own properties
//! ([`ConnectionProperties`]), options ([`ConnectOptions`]) and tuning ([`Tuning`]).

pub(crate) mod adm;
pub(crate) mod cleanup;
pub(crate) mod connect;
pub(crate) mod disconnect;
pub(crate) mod iface;
mod initiator;
pub(crate) mod iscsid;
pub(crate) mod node;
pub(crate) mod props;
pub(crate) mod sendtargets;
pub(crate) mod session;
pub(crate) mod topology;
pub(crate) mod tuning;
pub(crate) mod volume;

pub use connect::{connect_volume, ConnectOptions, Connected};
pub use disconnect::{disconnect_plan, disconnect_volume};
pub use initiator::initiator_name;
pub use props::{Chap, ConnectionProperties, Target};
pub use session::Session;
pub use topology::{DiskTopology, SessionTopology};
pub use tuning::Tuning;
pub use volume::{extend_volume, volume_paths};

use crate::error::Result;
use crate::host::Host;

/// Every iSCSI session of this host with what sysfs shows under it (its SCSI host, disks, their
/// LUNs, WWNs and states, and the multipath maps that hold them), as `brick inspect` shows it.
/// Reads sysfs only; changes nothing.
///
/// # Errors
/// A sysfs file that cannot be read ([`crate::Error::Io`]).
pub fn inspect(host: &Host) -> Result<Vec<topology::SessionTopology>> {
    let mut out = Vec::new();
    for s in &topology::list_sessions(host)? {
        out.push(topology::session_topology(host, s)?);
    }
    Ok(out)
}
