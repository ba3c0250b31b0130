//! Talking to iscsid over its management socket, in-process: what `iscsiadm -m session -r N
//! --logout` does, without starting it.
//!
//! The protocol (open-iscsi's `mgmt_ipc.h`): connect to the abstract Unix socket
//! `@ISCSIADM_ABSTRACT_NAMESPACE` (iscsid checks that the peer is root), write one
//! `iscsiadm_req_t` (`command`, `payload_len`, then a union whose session member starts with the
//! session id), read one `iscsiadm_rsp_t` (`command`, `err`: an `ISCSI_ERR` code, then a union).
//! iscsid reads exactly `sizeof(iscsiadm_req_t)` bytes, and that size changes between releases
//! (the union holds a whole node record), so the request is sent only where the installed
//! open-iscsi's version is one whose size is known (read from dpkg's database, no process); on any
//! other host, or when the socket does not answer as expected, the caller falls back to iscsiadm.
//! A logout is answered when it is done, as iscsiadm waits for it.
//!
//! Login is not done this way: its request carries the whole node record (`node_rec_t`, some
//! 16 KB of fields whose layout changed between releases, in which iscsid trusts every byte: a
//! layout mistake would log in with wrong settings or secrets), while a logout needs only the
//! session id, whose place has not moved since the protocol began.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::host::Host;
use crate::types::SessionId;

/// The abstract socket iscsid listens on.
pub const SOCKET_NAME: &[u8] = b"ISCSIADM_ABSTRACT_NAMESPACE";

/// `MGMT_IPC_SESSION_LOGOUT`.
const SESSION_LOGOUT: u32 = 2;
/// `ISCSI_ERR_SESS_NOT_FOUND`: no such session (gone already).
const ERR_SESS_NOT_FOUND: i32 = 2;

/// `sizeof(iscsiadm_req_t)` on 64-bit Linux, by open-iscsi release (measured by compiling each
/// release's `mgmt_ipc.h`).
const REQUEST_SIZES: &[(&str, usize)] = &[
    ("2.1.7", 16104),
    ("2.1.8", 16104),
    ("2.1.9", 16104),
    ("2.1.10", 16104),
    ("2.1.11", 16112),
];

/// How a logout through iscsid went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logout {
    /// Logged out (or the session was gone already).
    Done,
    /// iscsid refused, with its `ISCSI_ERR` code (what iscsiadm would exit with).
    Refused(i32),
    /// Not asked, or no usable answer: use iscsiadm. Says why.
    Unavailable(String),
}

/// Logs out of sessions through iscsid. The real one is [`SocketIscsid`]; tests put another on
/// the host ([`Host::with_service`]).
pub trait Iscsid: Send + Sync {
    /// Logs out of session `sid`, waiting at most `timeout`.
    fn logout(&self, sid: SessionId, timeout: Duration) -> Logout;
}

/// The iscsid client of `host`: the one set on it, else [`SocketIscsid`] when the host's sysfs is
/// this machine's (session numbers read from another tree mean nothing to this machine's
/// iscsid), else none.
pub fn client(host: &Host) -> Arc<dyn Iscsid> {
    if let Some(c) = host.service::<Arc<dyn Iscsid>>() {
        return c;
    }
    if host.sys("") == std::path::Path::new("/sys") {
        Arc::new(SocketIscsid::default())
    } else {
        Arc::new(NoIscsid)
    }
}

/// No iscsid to ask: every logout goes to iscsiadm.
struct NoIscsid;

impl Iscsid for NoIscsid {
    fn logout(&self, _sid: SessionId, _timeout: Duration) -> Logout {
        Logout::Unavailable("the host's sysfs is not this machine's".into())
    }
}

/// iscsid on this host, through its management socket.
#[derive(Debug, Clone)]
pub struct SocketIscsid {
    name: Vec<u8>,
    dpkg_status: PathBuf,
}

impl Default for SocketIscsid {
    fn default() -> Self {
        SocketIscsid {
            name: SOCKET_NAME.to_vec(),
            dpkg_status: PathBuf::from("/var/lib/dpkg/status"),
        }
    }
}

impl SocketIscsid {
    /// A client of the daemon on another abstract socket name, with the open-iscsi version read
    /// from the dpkg database at `dpkg_status` (for tests against a stand-in daemon).
    #[cfg(test)]
    pub fn at(name: &[u8], dpkg_status: impl Into<PathBuf>) -> SocketIscsid {
        SocketIscsid {
            name: name.to_vec(),
            dpkg_status: dpkg_status.into(),
        }
    }

    /// `sizeof(iscsiadm_req_t)` of the installed open-iscsi, if its version is known.
    fn request_size(&self) -> Result<usize, String> {
        let text = std::fs::read_to_string(&self.dpkg_status)
            .map_err(|e| format!("{}: {e}", self.dpkg_status.display()))?;
        let version = installed_version(&text, "open-iscsi")
            .ok_or("open-iscsi is not installed as a Debian package")?;
        let upstream = upstream_version(&version);
        REQUEST_SIZES
            .iter()
            .find(|(v, _)| *v == upstream)
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                format!("open-iscsi {version}: its request layout is not known to brick")
            })
    }
}

impl Iscsid for SocketIscsid {
    fn logout(&self, sid: SessionId, timeout: Duration) -> Logout {
        let size = match self.request_size() {
            Ok(n) => n,
            Err(why) => return Logout::Unavailable(why),
        };
        match exchange(&self.name, SESSION_LOGOUT, sid, size, timeout) {
            Ok(0) | Ok(ERR_SESS_NOT_FOUND) => Logout::Done,
            Ok(code) => Logout::Refused(code),
            Err(why) => Logout::Unavailable(why),
        }
    }
}

/// Sends one request of `size` bytes and returns the answer's `err`.
fn exchange(
    name: &[u8],
    command: u32,
    sid: SessionId,
    size: usize,
    timeout: Duration,
) -> Result<i32, String> {
    let addr = SocketAddr::from_abstract_name(name).map_err(|e| e.to_string())?;
    let mut s = UnixStream::connect_addr(&addr).map_err(|e| format!("cannot reach iscsid: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let mut req = vec![0u8; size];
    req[0..4].copy_from_slice(&command.to_ne_bytes());
    // payload_len stays 0; the session member of the union starts with the session id.
    req[8..12].copy_from_slice(&(sid.0 as i32).to_ne_bytes());
    s.write_all(&req)
        .map_err(|e| format!("iscsid request: {e}"))?;
    // The answer: command and err, then a union brick does not read; iscsid closes after it.
    let mut head = [0u8; 8];
    s.read_exact(&mut head)
        .map_err(|e| format!("iscsid answer: {e}"))?;
    let echoed = u32::from_ne_bytes(head[0..4].try_into().expect("4 bytes"));
    if echoed != command {
        return Err(format!(
            "iscsid answered command {echoed}, not {command}: the request was not understood"
        ));
    }
    Ok(i32::from_ne_bytes(head[4..8].try_into().expect("4 bytes")))
}

/// The version of the installed package `package` in a dpkg status database.
fn installed_version(status: &str, package: &str) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        (field("Package") == Some(package)
            && field("Status").is_some_and(|s| s.ends_with(" installed")))
        .then(|| field("Version").map(str::to_string))
        .flatten()
    })
}

/// The upstream part of a Debian version: `2.1.8-1+deb12u1` is `2.1.8` (an epoch goes too).
fn upstream_version(v: &str) -> &str {
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    v.rsplit_once('-').map_or(v, |(up, _)| up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const STATUS: &str = "Package: open-iscsi-doc\nStatus: install ok installed\nVersion: 9.9\n\n\
        Package: open-iscsi\nStatus: install ok installed\nPriority: optional\n\
        Version: 2.1.8-1+deb12u1\n\nPackage: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\n";

    #[test]
    fn versions_from_dpkg() {
        assert_eq!(
            installed_version(STATUS, "open-iscsi").as_deref(),
            Some("2.1.8-1+deb12u1")
        );
        assert_eq!(installed_version(STATUS, "multipath-tools"), None);
        let removed = STATUS.replace(
            "install ok installed\nPriority",
            "deinstall ok config-files\nPriority",
        );
        assert_eq!(installed_version(&removed, "open-iscsi"), None);
        assert_eq!(upstream_version("2.1.8-1+deb12u1"), "2.1.8");
        assert_eq!(upstream_version("1:2.1.11-2"), "2.1.11");
        assert_eq!(upstream_version("2.1.9"), "2.1.9");
    }

    /// A stand-in iscsid on a private abstract name: reads one request of `size` bytes, answers
    /// `err`. Returns the name, the dpkg status file and the request it got.
    fn fake_iscsid(
        size: usize,
        err: i32,
    ) -> (Vec<u8>, tempfile::TempDir, std::thread::JoinHandle<Vec<u8>>) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "/brick-test/iscsid-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
        .into_bytes();
        let addr = SocketAddr::from_abstract_name(&name).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut req = vec![0u8; size];
            c.read_exact(&mut req).unwrap();
            let mut rsp = vec![0u8; 2464];
            rsp[0..4].copy_from_slice(&req[0..4]);
            rsp[4..8].copy_from_slice(&err.to_ne_bytes());
            c.write_all(&rsp).unwrap();
            req
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), STATUS).unwrap();
        (name, dir, server)
    }

    #[test]
    fn logout_sends_the_release_sized_request_with_the_session_id() {
        let (name, dir, server) = fake_iscsid(16104, 0);
        let c = SocketIscsid::at(&name, dir.path().join("status"));
        assert_eq!(c.logout(SessionId(7), Duration::from_secs(5)), Logout::Done);
        let req = server.join().unwrap();
        assert_eq!(req.len(), 16104);
        assert_eq!(
            u32::from_ne_bytes(req[0..4].try_into().unwrap()),
            SESSION_LOGOUT
        );
        assert_eq!(u32::from_ne_bytes(req[4..8].try_into().unwrap()), 0);
        assert_eq!(i32::from_ne_bytes(req[8..12].try_into().unwrap()), 7);
        assert!(req[12..].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_session_gone_is_done_and_another_error_is_refused() {
        let (name, dir, _s) = fake_iscsid(16104, ERR_SESS_NOT_FOUND);
        let c = SocketIscsid::at(&name, dir.path().join("status"));
        assert_eq!(c.logout(SessionId(3), Duration::from_secs(5)), Logout::Done);
        let (name, dir, _s) = fake_iscsid(16104, 13);
        let c = SocketIscsid::at(&name, dir.path().join("status"));
        assert_eq!(
            c.logout(SessionId(3), Duration::from_secs(5)),
            Logout::Refused(13)
        );
    }

    #[test]
    fn unknown_version_or_no_daemon_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(&status, STATUS.replace("2.1.8-1+deb12u1", "2.0.874-7")).unwrap();
        let c = SocketIscsid::at(b"/brick-test/nobody", &status);
        match c.logout(SessionId(1), Duration::from_secs(1)) {
            Logout::Unavailable(why) => assert!(why.contains("2.0.874-7"), "{why}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&status, STATUS).unwrap();
        let c = SocketIscsid::at(b"/brick-test/nobody-listens", &status);
        match c.logout(SessionId(1), Duration::from_secs(1)) {
            Logout::Unavailable(why) => assert!(why.contains("cannot reach iscsid"), "{why}"),
            other => panic!("{other:?}"),
        }
        let c = SocketIscsid::at(b"/brick-test/x", dir.path().join("missing"));
        assert!(matches!(
            c.logout(SessionId(1), Duration::from_secs(1)),
            Logout::Unavailable(_)
        ));
    }
}
