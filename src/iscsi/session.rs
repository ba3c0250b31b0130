//! `iscsiadm -m session`: listing the iSCSI sessions of this host.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::{Cmd, Host};
use crate::types::{Iqn, Portal};

/// One iSCSI session as `iscsiadm -m session` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The session number (N in `/sys/class/iscsi_session/sessionN`).
    pub id: u32,
    /// The transport (`tcp`, `iser`, ...).
    pub transport: String,
    pub portal: Portal,
    /// The target portal group tag.
    pub tpgt: u32,
    pub iqn: Iqn,
}

/// iscsiadm's exit code for "no records / no sessions found".
pub const ISCSI_ERR_NO_OBJS_FOUND: i32 = 21;

/// Parses one line of `iscsiadm -m session`:
/// `tcp: [1] 127.0.0.1:3260,1 iqn.2003-01.org.linux-iscsi.lab:tgt1 (non-flash)`.
pub fn parse_session_line(line: &str) -> Option<Session> {
    let (transport, rest) = line.trim().split_once(": [")?;
    let (id, rest) = rest.split_once("] ")?;
    let mut words = rest.split_whitespace();
    let (portal, tpgt) = words.next()?.rsplit_once(',')?;
    let iqn = words.next()?;
    Some(Session {
        id: id.parse().ok()?,
        transport: transport.trim().to_string(),
        portal: portal.parse().ok()?,
        tpgt: tpgt.parse().ok()?,
        iqn: iqn.parse().ok()?,
    })
}

/// Parses the whole output; lines that are not sessions are skipped (and logged at debug level).
pub fn parse_sessions(stdout: &str) -> Vec<Session> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let s = parse_session_line(l);
            if s.is_none() {
                tracing::debug!(line = l, "not a session line");
            }
            s
        })
        .collect()
}

/// Lists this host's iSCSI sessions. No session at all is an empty list, not an error.
pub fn list_sessions(host: &Host, timeout: std::time::Duration) -> Result<Vec<Session>> {
    let cmd = Cmd::new("iscsiadm")
        .args(["-m", "session"])
        .timeout(timeout);
    let out = host.run(&cmd)?;
    match out.code {
        Some(0) => Ok(parse_sessions(&out.stdout)),
        Some(ISCSI_ERR_NO_OBJS_FOUND) => Ok(Vec::new()),
        _ if out.stderr.contains("No active sessions") => Ok(Vec::new()),
        code => Err(Error::CommandFailed {
            cmd: cmd.to_string(),
            code,
            detail: out.tail(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_line_table() {
        type Want<'a> = Option<(u32, &'a str, &'a str, u32, &'a str)>;
        let cases: [(&str, Want); 8] = [
            (
                "tcp: [1] 127.0.0.1:3260,1 iqn.2003-01.org.linux-iscsi.lab:tgt1 (non-flash)",
                Some((
                    1,
                    "tcp",
                    "127.0.0.1:3260",
                    1,
                    "iqn.2003-01.org.linux-iscsi.lab:tgt1",
                )),
            ),
            (
                "tcp: [12] 127.0.0.2:3260,1 iqn.2003-01.org.linux-iscsi.lab:tgt1 (non-flash)",
                Some((
                    12,
                    "tcp",
                    "127.0.0.2:3260",
                    1,
                    "iqn.2003-01.org.linux-iscsi.lab:tgt1",
                )),
            ),
            (
                "tcp: [3] [fd00::1]:3260,2 iqn.2010-10.org.openstack:volume-1 (non-flash)",
                Some((
                    3,
                    "tcp",
                    "[fd00::1]:3260",
                    2,
                    "iqn.2010-10.org.openstack:volume-1",
                )),
            ),
            (
                "iser: [4] 10.0.0.1:3261,1 iqn.2010-10.org.openstack:volume-2",
                Some((
                    4,
                    "iser",
                    "10.0.0.1:3261",
                    1,
                    "iqn.2010-10.org.openstack:volume-2",
                )),
            ),
            (
                "tcp: [5] 10.0.0.1:3260,1 iqn.2010-10.org.openstack:volume-3 (flash)",
                Some((
                    5,
                    "tcp",
                    "10.0.0.1:3260",
                    1,
                    "iqn.2010-10.org.openstack:volume-3",
                )),
            ),
            ("iscsiadm: No active sessions.", None),
            ("tcp: [x] 10.0.0.1:3260,1 iqn.2010-10.org.openstack:v", None),
            ("tcp: [6] 10.0.0.1:3260 iqn.2010-10.org.openstack:v", None),
        ];
        for (line, want) in cases {
            let got = parse_session_line(line).map(|s| {
                (
                    s.id,
                    s.transport.clone(),
                    s.portal.to_string(),
                    s.tpgt,
                    s.iqn.to_string(),
                )
            });
            let want =
                want.map(|(a, b, c, d, e)| (a, b.to_string(), c.to_string(), d, e.to_string()));
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn whole_output_skips_noise() {
        let out = "tcp: [1] 127.0.0.1:3260,1 iqn.2003-01.org.x:t (non-flash)\n\nwarning: something\ntcp: [2] 127.0.0.2:3260,1 iqn.2003-01.org.x:t (non-flash)\n";
        let ids: Vec<u32> = parse_sessions(out).iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2]);
    }
}
