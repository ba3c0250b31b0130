//! iSCSI: sessions (`iscsiadm -m session`), their topology in sysfs, and disconnecting a volume.

pub mod adm;
pub mod connect;
pub mod disconnect;
pub mod node;
pub mod session;
pub mod topology;
pub mod volume;

pub use crate::tuning::Tuning;
pub use connect::{connect_volume, ConnectOptions, Connected};
pub use disconnect::{disconnect_volume, DisconnectOptions, DisconnectReport};
pub use session::{list_sessions, Session};
pub use topology::{session_topology, SessionTopology};
