//! The iscsiadm calls brick makes besides listing sessions: logging out and deleting node
//! records. Every call has a deadline.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::iscsi::session::ISCSI_ERR_NO_OBJS_FOUND;
use crate::types::{Iqn, Portal};

/// Logs out of session `id`. A session that is already gone is not an error.
pub fn logout_session(host: &Host, id: u32, timeout: Duration) -> Result<()> {
    let cmd = Cmd::new("iscsiadm")
        .args(["-m", "session", "-r", &id.to_string(), "--logout"])
        .timeout(timeout);
    expect_ok_or_none(host, &cmd)
}

/// Deletes the node record of `iqn` at `portal` (in-process, see [`crate::iscsi::node::delete`]).
/// A record that does not exist is not an error.
pub fn delete_node(host: &Host, iqn: &Iqn, portal: &Portal, _timeout: Duration) -> Result<()> {
    crate::iscsi::node::delete(host, iqn, portal).map(|_| ())
}

/// Whether open-iscsi has a node record of `iqn` at `portal`, read from its node database
/// (`nodes/IQN/ADDRESS,PORT,TPGT`) without running iscsiadm.
pub fn node_exists(host: &Host, iqn: &Iqn, portal: &Portal) -> Result<bool> {
    Ok(!crate::iscsi::node::record_files(host, iqn, portal)?.is_empty())
}

fn expect_ok_or_none(host: &Host, cmd: &Cmd) -> Result<()> {
    let out = host.run(cmd)?;
    match out.code {
        Some(0) | Some(ISCSI_ERR_NO_OBJS_FOUND) => Ok(()),
        code => Err(Error::CommandFailed {
            cmd: cmd.to_string(),
            code,
            detail: out.tail(),
        }),
    }
}
