//! The iscsiadm call brick makes in a disconnect (logging out), and the node database lookup
//! beside it. Every call has a deadline.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::iscsi::iscsid::Logout;
use crate::iscsi::session::ISCSI_ERR_NO_OBJS_FOUND;
use crate::types::{Iqn, Portal};

/// Logs out of session `id`. A session that is already gone is not an error. Through iscsid's
/// management socket (no process), else with iscsiadm. When iscsid took the request but did not
/// answer in time, sysfs is read again first: a session gone is logged out, and iscsiadm would
/// only wait on the same iscsid.
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
        Logout::NoAnswer(why) => {
            if !session_shows(host, id)? {
                tracing::debug!(session = %id, why, "iscsid did not answer, and the session is gone");
                return Ok(());
            }
            tracing::debug!(session = %id, why, "iscsid did not answer: logging out with iscsiadm");
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

/// Whether the kernel still shows session `id` (`/sys/class/iscsi_session/sessionN`).
fn session_shows(host: &Host, id: crate::types::SessionId) -> Result<bool> {
    let dir = host.sys(format!("class/iscsi_session/{}", id.sysfs_name()));
    match std::fs::symlink_metadata(&dir) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(&dir, e)),
    }
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
