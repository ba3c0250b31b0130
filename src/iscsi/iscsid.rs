//! Talking to iscsid over its management socket, in-process: what `iscsiadm -m session -r N
//! --logout` does, without starting it.
//!
//! The protocol (open-iscsi's `mgmt_ipc.h`): connect to the abstract Unix socket
//! `@ISCSIADM_ABSTRACT_NAMESPACE` (iscsid checks that the peer is root, and brick checks that
//! iscsid is: an abstract name has no file permissions, so any process could listen on it when
//! iscsid does not), write one `iscsiadm_req_t` (`command`, `payload_len`, then a union whose
//! session member starts with the session id), read one `iscsiadm_rsp_t` (`command`, `err`: an
//! `ISCSI_ERR` code, then a union). A logout is answered when it is done, as iscsiadm waits for
//! it.
//!
//! iscsid reads exactly `sizeof(iscsiadm_req_t)` bytes (`mgmt_ipc_read_req`), blocking its one
//! event loop until they are all there, and that size changes between releases (the union holds
//! a whole node record). brick does not guess the running iscsid's release (the installed
//! package may not be what runs): it sends the largest size known, [`REQUEST_SIZE`], and then
//! closes its side for writing. An iscsid of a known release reads its own size, answers, and
//! closes the connection; the rest of the request is never read (the answer is in brick's
//! receive queue before the close, and is read first). An iscsid whose request is larger still
//! reads end-of-file and drops the request at once ("Client closed connection") instead of
//! stalling every other client until brick's timeout; brick then falls back to iscsiadm. The
//! command number and the session id's place have not moved since the protocol began.
//!
//! Login is not done this way: its request carries the whole node record (`node_rec_t`, some
//! 16 KB of fields whose layout changed between releases, in which iscsid trusts every byte: a
//! layout mistake would log in with wrong settings or secrets), while a logout needs only the
//! session id.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
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

/// The request brick sends: the largest `sizeof(iscsiadm_req_t)` of any open-iscsi release, on
/// 64-bit Linux (measured by compiling each release's `mgmt_ipc.h`): 2.0.873 12856, 2.0.874
/// 16080, 2.0.875 to 2.1.0 16088, 2.1.1 to 2.1.10 16104, 2.1.11 16112, and the tree after 2.1.11
/// (`tcp.congestion_control`, 2026) 16128.
pub const REQUEST_SIZE: usize = 16128;

/// How a logout through iscsid went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logout {
    /// Logged out (or the session was gone already).
    Done,
    /// iscsid refused, with its `ISCSI_ERR` code (what iscsiadm would exit with).
    Refused(i32),
    /// Asked, but no answer came in time: iscsid may have logged out, or may still. Says why.
    NoAnswer(String),
    /// Not asked, or iscsid did not take the request: use iscsiadm. Says why.
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
    /// The user the daemon must run as (root).
    peer_uid: u32,
}

impl Default for SocketIscsid {
    fn default() -> Self {
        SocketIscsid {
            name: SOCKET_NAME.to_vec(),
            peer_uid: 0,
        }
    }
}

impl SocketIscsid {
    /// A client of the daemon on another abstract socket name, which must run as `peer_uid`
    /// (for tests against a stand-in daemon).
    #[cfg(test)]
    pub fn at(name: &[u8], peer_uid: u32) -> SocketIscsid {
        SocketIscsid {
            name: name.to_vec(),
            peer_uid,
        }
    }
}

impl Iscsid for SocketIscsid {
    fn logout(&self, sid: SessionId, timeout: Duration) -> Logout {
        let s = match self.connect(timeout) {
            Ok(s) => s,
            Err(why) => return Logout::Unavailable(why.to_string()),
        };
        match exchange(s, SESSION_LOGOUT, sid) {
            Ok(0) | Ok(ERR_SESS_NOT_FOUND) => Logout::Done,
            Ok(code) => Logout::Refused(code),
            Err(Failure::NoAnswer(why)) => Logout::NoAnswer(why),
            Err(Failure::NotTaken(why)) => Logout::Unavailable(why),
        }
    }
}

impl SocketIscsid {
    /// Connects, with `timeout` on each read and write, once the peer proves to run as
    /// `peer_uid` (`SO_PEERCRED`).
    fn connect(&self, timeout: Duration) -> Result<UnixStream, Unreachable> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        let addr = SocketAddr::from_abstract_name(&self.name).map_err(Unreachable::Connect)?;
        let s = UnixStream::connect_addr(&addr).map_err(Unreachable::Connect)?;
        let cred = getsockopt(&s, PeerCredentials).map_err(Unreachable::PeerUnknown)?;
        if cred.uid() != self.peer_uid {
            return Err(Unreachable::NotIscsid {
                pid: cred.pid(),
                uid: cred.uid(),
                want: self.peer_uid,
            });
        }
        s.set_read_timeout(Some(timeout))
            .and_then(|()| s.set_write_timeout(Some(timeout)))
            .map_err(Unreachable::Connect)?;
        Ok(s)
    }
}

/// Why iscsid's socket was not asked.
#[derive(Debug, thiserror::Error)]
enum Unreachable {
    /// No socket, or it took no connection.
    #[error("cannot reach iscsid: {0}")]
    Connect(std::io::Error),
    /// The kernel did not say who holds the socket.
    #[error("iscsid's socket: whose it is is unknown (SO_PEERCRED): {0}")]
    PeerUnknown(nix::Error),
    /// Another user's process holds the name.
    #[error(
        "iscsid's socket is held by process {pid} of uid {uid}, not {want}: not iscsid, not asked"
    )]
    NotIscsid {
        /// The holder's process.
        pid: i32,
        /// The holder's user.
        uid: u32,
        /// The user iscsid runs as.
        want: u32,
    },
}

/// Why an exchange gave no `err`.
enum Failure {
    /// The request went out, but no answer came in time.
    NoAnswer(String),
    /// iscsid did not take the request (or it never went out).
    NotTaken(String),
}

/// Sends one request of [`REQUEST_SIZE`] bytes, closes the writing side, and returns the
/// answer's `err`.
fn exchange(mut s: UnixStream, command: u32, sid: SessionId) -> Result<i32, Failure> {
    let mut req = vec![0u8; REQUEST_SIZE];
    req[0..4].copy_from_slice(&command.to_ne_bytes());
    // payload_len stays 0; the session member of the union starts with the session id.
    req[8..12].copy_from_slice(&(sid.0 as i32).to_ne_bytes());
    s.write_all(&req)
        .and_then(|()| s.shutdown(Shutdown::Write))
        .map_err(|e| Failure::NotTaken(format!("iscsid request: {e}")))?;
    // The answer: command and err, then a union brick does not read; iscsid closes after it.
    let mut head = [0u8; 8];
    if let Err(e) = s.read_exact(&mut head) {
        return Err(match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                Failure::NoAnswer(format!("iscsid did not answer in time: {e}"))
            }
            _ => Failure::NotTaken(format!(
                "iscsid closed the connection without an answer ({e}): it did not take the \
                 request (a request layout larger than brick's?)"
            )),
        });
    }
    let echoed = u32::from_ne_bytes(head[0..4].try_into().expect("4 bytes"));
    if echoed != command {
        return Err(Failure::NotTaken(format!(
            "iscsid answered command {echoed}, not {command}: the request was not understood"
        )));
    }
    Ok(i32::from_ne_bytes(head[4..8].try_into().expect("4 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    /// What the stand-in iscsid does once it has read its request.
    #[derive(Clone, Copy)]
    enum Answer {
        /// Answers with this `err`.
        Err(i32),
        /// Holds the connection this long without answering.
        Silent(Duration),
    }

    /// A stand-in iscsid on a private abstract name, as open-iscsi's: reads one request of
    /// `size` bytes (its release's `sizeof(iscsiadm_req_t)`), then answers as told and closes.
    /// Returns the name and what it read (an error when the request ended before `size` bytes).
    fn fake_iscsid(
        size: usize,
        answer: Answer,
    ) -> (Vec<u8>, std::thread::JoinHandle<std::io::Result<Vec<u8>>>) {
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
            c.read_exact(&mut req)?;
            match answer {
                Answer::Err(err) => {
                    let mut rsp = vec![0u8; 2464];
                    rsp[0..4].copy_from_slice(&req[0..4]);
                    rsp[4..8].copy_from_slice(&err.to_ne_bytes());
                    c.write_all(&rsp)?;
                }
                Answer::Silent(d) => std::thread::sleep(d),
            }
            Ok(req)
        });
        (name, server)
    }

    fn me() -> u32 {
        // SAFETY: geteuid cannot fail and touches no memory.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn logout_sends_the_largest_request_with_the_session_id() {
        let (name, server) = fake_iscsid(REQUEST_SIZE, Answer::Err(0));
        let c = SocketIscsid::at(&name, me());
        assert_eq!(c.logout(SessionId(7), Duration::from_secs(5)), Logout::Done);
        let req = server.join().unwrap().unwrap();
        assert_eq!(
            u32::from_ne_bytes(req[0..4].try_into().unwrap()),
            SESSION_LOGOUT
        );
        assert_eq!(u32::from_ne_bytes(req[4..8].try_into().unwrap()), 0);
        assert_eq!(i32::from_ne_bytes(req[8..12].try_into().unwrap()), 7);
        assert!(req[12..].iter().all(|b| *b == 0));
    }

    #[test]
    fn every_known_release_reads_its_own_size_and_its_answer_comes_back() {
        // Issue 26 item 7: the size came from dpkg's version; a 2.1.11 iscsid (16112) behind a
        // 2.1.8 package (16104) waited for 8 more bytes, stalled, until brick's timeout. Each
        // release reads its size of the one padded request and answers; what it leaves unread
        // goes with the connection, after the answer.
        for size in [12856, 16080, 16088, 16104, 16112, 16128] {
            let (name, server) = fake_iscsid(size, Answer::Err(0));
            let c = SocketIscsid::at(&name, me());
            let t0 = Instant::now();
            assert_eq!(
                c.logout(SessionId(5), Duration::from_secs(3)),
                Logout::Done,
                "{size}"
            );
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "{size}: {:?}",
                t0.elapsed()
            );
            let req = server.join().unwrap().unwrap();
            assert_eq!(i32::from_ne_bytes(req[8..12].try_into().unwrap()), 5);
        }
    }

    #[test]
    fn an_iscsid_expecting_a_longer_request_drops_it_at_once_and_brick_falls_back() {
        // A future release with a larger request: brick's end of writing gives it end-of-file
        // at once, so its loop is not stalled until brick's timeout.
        let (name, server) = fake_iscsid(REQUEST_SIZE + 64, Answer::Err(0));
        let c = SocketIscsid::at(&name, me());
        let t0 = Instant::now();
        match c.logout(SessionId(1), Duration::from_secs(5)) {
            Logout::Unavailable(why) => assert!(why.contains("without an answer"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let read = server.join().unwrap();
        assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_socket_name_that_cannot_be_reached_says_iscsid_is_not_reached() {
        // Past what an abstract name holds (107 bytes): no connect is tried, and the reason
        // says what was not reached rather than the bare OS error.
        let c = SocketIscsid::at(&[b'x'; 200], me());
        match c.logout(SessionId(1), Duration::from_secs(1)) {
            Logout::Unavailable(why) => assert!(why.starts_with("cannot reach iscsid: "), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_socket_not_held_by_root_is_not_asked() {
        // The abstract name has no permissions: when iscsid is down, any user may listen there.
        let (name, server) = fake_iscsid(16, Answer::Err(0));
        let c = SocketIscsid::at(&name, me().wrapping_add(1));
        match c.logout(SessionId(1), Duration::from_secs(2)) {
            Logout::Unavailable(why) => assert!(why.contains("not iscsid"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Nothing was sent to it: not one byte of a request.
        let read = server.join().unwrap();
        assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn no_answer_in_time_says_so() {
        let (name, _server) = fake_iscsid(16104, Answer::Silent(Duration::from_secs(3)));
        let c = SocketIscsid::at(&name, me());
        match c.logout(SessionId(2), Duration::from_millis(300)) {
            Logout::NoAnswer(why) => assert!(why.contains("in time"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_session_gone_is_done_and_another_error_is_refused() {
        let (name, _s) = fake_iscsid(16104, Answer::Err(ERR_SESS_NOT_FOUND));
        let c = SocketIscsid::at(&name, me());
        assert_eq!(c.logout(SessionId(3), Duration::from_secs(5)), Logout::Done);
        let (name, _s) = fake_iscsid(16104, Answer::Err(13));
        let c = SocketIscsid::at(&name, me());
        assert_eq!(
            c.logout(SessionId(3), Duration::from_secs(5)),
            Logout::Refused(13)
        );
    }

    #[test]
    fn no_daemon_falls_back() {
        let c = SocketIscsid::at(b"/brick-test/nobody-listens", 0);
        match c.logout(SessionId(1), Duration::from_secs(1)) {
            Logout::Unavailable(why) => assert!(why.contains("cannot reach iscsid"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
