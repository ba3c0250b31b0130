//! The iscsiadm call brick makes in a disconnect (logging out), and the node database lookup
//! beside it. Every call has a deadline.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::iscsi::iscsid::Logout;
use crate::iscsi::session::ISCSI_ERR_NO_OBJS_FOUND;
use crate::types::{Iqn, Portal};

/// Logs out of session `id`. A session that is already gone is not an error. Through iscsid's
/// management socket where the installed open-iscsi's request layout is known (no process),
/// else with iscsiadm.
pub fn logout_session(host: &Host, id: crate::types::SessionId, timeout: Duration) -> Result<()> {
    match crate::iscsi::iscsid::client(host).logout(id, timeout) {
        Logout::Done => {
            tracing::debug!(session = %id, "logged out through iscsid");
            return Ok(());
        }
        Logout::Refused(code) => {
            return Err(Error::CommandFailed {
                cmd: format!("iscsid: logout of session {id}"),
                code: Some(code),
                detail: "iscsid refused it (the code is iscsiadm's exit code for the same error)"
                    .into(),
            })
        }
        Logout::Unavailable(why) => {
            tracing::debug!(session = %id, why, "logging out with iscsiadm");
        }
    }
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
