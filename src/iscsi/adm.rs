//! The iscsiadm call brick makes in a disconnect (logging out), and the node database lookup
//! beside it. Every call has a deadline.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::iscsi::session::ISCSI_ERR_NO_OBJS_FOUND;
use crate::types::{Iqn, Portal};

/// Logs out of session `id`. A session that is already gone is not an error.
pub fn logout_session(host: &Host, id: crate::types::SessionId, timeout: Duration) -> Result<()> {
    let cmd = Cmd::new("iscsiadm")
        .args(["-m", "session", "-r", &id.to_string(), "--logout"])
        .timeout(timeout);
    expect_ok_or_none(host, &cmd)
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
