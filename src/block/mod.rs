//! The block layer every transport shares: SCSI disks, dm-multipath maps, md arrays, flushing a device,
//! who holds a device open, and what a device already holds (signatures). Nothing here knows a
//! transport.

pub(crate) mod flush;
pub(crate) mod md;
pub(crate) mod multipath;
pub(crate) mod openers;
pub(crate) mod scsi;
pub(crate) mod signature;
