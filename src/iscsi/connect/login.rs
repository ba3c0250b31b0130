//! Logging in to a target at a portal: the node record (iscsid.conf's defaults, manual startup
//! and scan, bounded login retries, CHAP), then `iscsiadm --login`, bounded.

use tracing::info;

use crate::error::PathError;
use crate::host::Cmd;
use crate::iscsi::props::{ConnectionProperties, Target};
use crate::iscsi::{adm, node, topology};
use crate::types::SessionId;

use super::{Attach, Created};

/// iscsiadm's exit code when the session exists already.
const ISCSI_ERR_SESS_EXISTS: i32 = 15;
/// iscsiadm's exit codes for a login the target refused for good, and for refused credentials.
const ISCSI_ERR_FATAL_LOGIN: i32 = 19;
const ISCSI_ERR_LOGIN_AUTH_FAILED: i32 = 24;

impl Attach<'_> {
    /// Writes the target's node record (manual startup and scans, bounded login retries, CHAP,
    /// the interface) and logs in to it; what it made goes in `created`.
    pub(super) fn login(
        &self,
        t: &Target,
        created: &mut Created,
    ) -> std::result::Result<SessionId, PathError> {
        let (host, props, iface, tuning) = (self.host, self.props, self.iface, self.tuning);
        let retries = tuning.login_retries.to_string();
        let login_timeout = tuning.login_timeout.as_secs().max(1).to_string();
        let mut keys: Vec<(&str, &str)> = vec![
            ("node.startup", "manual"),
            ("node.conn[0].startup", "manual"),
            ("node.session.scan", "manual"),
            ("node.session.initial_login_retry_max", &retries),
            ("node.conn[0].timeo.login_timeout", &login_timeout),
        ];
        match &props.auth {
            Some(chap) => {
                keys.push(("node.session.auth.authmethod", "CHAP"));
                keys.push(("node.session.auth.username", &chap.username));
                keys.push(("node.session.auth.password", chap.password.expose()));
                if let Some(rev) = &props.auth_reverse {
                    keys.push(("node.session.auth.username_in", &rev.username));
                    keys.push(("node.session.auth.password_in", rev.password.expose()));
                }
            }
            None => keys.push(("node.session.auth.authmethod", "None")),
        }
        let iface_keys = iface.record_keys();
        keys.extend(iface_keys.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if adm::node_exists(host, &t.iqn, &t.portal).map_err(PathError::host)? {
            node::set(host, &t.iqn, &t.portal, &keys).map_err(PathError::host)?;
        } else {
            node::create(host, &t.iqn, &t.portal, &keys).map_err(PathError::host)?;
            created.node_record = true;
        }

        let cmd = Cmd::new("iscsiadm")
            .args([
                "-m",
                "node",
                "-T",
                t.iqn.as_str(),
                "-p",
                &t.portal.to_string(),
                "-I",
                &iface.name,
                "--login",
            ])
            .timeout(tuning.login_deadline);
        let outcome = {
            let _db = host.lock_shared(node::DB_LOCK).map_err(PathError::host)?;
            host.run(&cmd)
        };
        // Whatever happened, a session may exist now: note it, so a failure removes it.
        let sid = topology::find_session_on(host, &t.iqn, &t.portal, &iface.name)
            .map_err(PathError::host)?;
        created.session = sid;
        let out = outcome.map_err(PathError::host)?;
        match (out.code, sid) {
            (Some(0) | Some(ISCSI_ERR_SESS_EXISTS), Some(sid)) => {
                info!(session = %sid, "logged in");
                Ok(sid)
            }
            (Some(0) | Some(ISCSI_ERR_SESS_EXISTS), None) => Err(PathError::Login {
                code: out.code,
                hint: None,
                detail: format!("`{cmd}` succeeded but no session shows in sysfs"),
            }),
            (code, _) => Err(PathError::Login {
                code,
                hint: login_hint(code, props),
                detail: out.tail(),
            }),
        }
    }
}

/// What a failed login's exit code most likely means for the user, where iscsiadm's own words
/// do not say it.
fn login_hint(code: Option<i32>, props: &ConnectionProperties) -> Option<&'static str> {
    match code? {
        ISCSI_ERR_LOGIN_AUTH_FAILED => {
            Some("the target refused the CHAP credentials (auth_username, auth_password)")
        }
        ISCSI_ERR_FATAL_LOGIN if props.auth_reverse.is_some() => Some(
            "the target refused the login for good, or could not prove itself with the \
             mutual CHAP credentials (auth_reverse_username, auth_reverse_password)",
        ),
        ISCSI_ERR_FATAL_LOGIN => {
            Some("the target refused the login for good (is this host's initiator name allowed?)")
        }
        _ => None,
    }
}
