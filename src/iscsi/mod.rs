//! iSCSI: sessions and their topology in sysfs, connecting and disconnecting a volume.

pub mod adm;
pub mod connect;
pub mod disconnect;
pub mod node;
pub mod session;
pub mod topology;
pub mod volume;

pub use crate::tuning::Tuning;
pub use connect::{connect_volume, ConnectOptions, Connected};
pub use disconnect::{
    disconnect_plan, disconnect_volume, DisconnectOptions, DisconnectReport, Outcome, Thing,
};
pub use session::Session;
pub use topology::{list_sessions, session_topology, SessionTopology};
