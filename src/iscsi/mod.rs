//! iSCSI: sessions (`iscsiadm -m session`), their topology in sysfs, and disconnecting a volume.

pub mod adm;
pub mod disconnect;
pub mod session;
pub mod topology;

pub use disconnect::{disconnect_volume, DisconnectOptions, DisconnectReport, Tuning};
pub use session::{list_sessions, Session};
pub use topology::{session_topology, SessionTopology};
