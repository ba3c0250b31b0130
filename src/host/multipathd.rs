//! Talking to multipathd over its control socket, in-process: what `multipathd add path sdX`
//! does, without starting a process for it.
//!
//! The protocol (multipath-tools' `mpath_cmd`): connect to the abstract Unix socket
//! `@/org/kernel/linux/storage/multipathd`, send the command's length (a native `size_t`,
//! counting a final NUL) and the command, read the reply's length the same way and the reply.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Duration;

/// The abstract socket multipathd listens on.
pub const SOCKET_NAME: &[u8] = b"/org/kernel/linux/storage/multipathd";

/// Sends commands to multipathd. The real one is [`SocketMultipathd`]; tests use a fake.
pub trait Multipathd: Send + Sync {
    /// Sends `cmd` (`add path sdb`, `resize map NAME`) and returns multipathd's reply text.
    fn command(&self, cmd: &str, timeout: Duration) -> Result<String, MultipathdError>;
}

/// Why a command did not reach multipathd or got no reply. A reply that refuses the command
/// (`fail`) is a reply, not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MultipathdError {
    /// Nothing listens on multipathd's socket.
    #[error("cannot reach multipathd (is it running?): {source}")]
    Unreachable {
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed or timed out.
    #[error("multipathd `{cmd}`: {source}")]
    Io {
        /// The command sent.
        cmd: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The reply's length is not believable (over 16 MiB).
    #[error("multipathd `{cmd}`: a {len}-byte reply is not believable")]
    ReplyTooLong {
        /// The command sent.
        cmd: String,
        /// The length multipathd announced.
        len: usize,
    },
}

/// multipathd on this host, through its control socket.
#[derive(Debug, Clone)]
pub struct SocketMultipathd {
    name: Vec<u8>,
}

impl Default for SocketMultipathd {
    fn default() -> Self {
        SocketMultipathd {
            name: SOCKET_NAME.to_vec(),
        }
    }
}

impl SocketMultipathd {
    /// A client of the daemon listening on another abstract socket name.
    pub fn at(name: &[u8]) -> SocketMultipathd {
        SocketMultipathd {
            name: name.to_vec(),
        }
    }
}

impl Multipathd for SocketMultipathd {
    fn command(&self, cmd: &str, timeout: Duration) -> Result<String, MultipathdError> {
        let io = |source| MultipathdError::Io {
            cmd: cmd.to_string(),
            source,
        };
        let addr = SocketAddr::from_abstract_name(&self.name).map_err(io)?;
        let mut s = UnixStream::connect_addr(&addr)
            .map_err(|source| MultipathdError::Unreachable { source })?;
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        let mut msg = cmd.as_bytes().to_vec();
        msg.push(0);
        s.write_all(&msg.len().to_ne_bytes()).map_err(io)?;
        s.write_all(&msg).map_err(io)?;
        let mut len = [0u8; std::mem::size_of::<usize>()];
        s.read_exact(&mut len).map_err(io)?;
        let len = usize::from_ne_bytes(len);
        if len > 16 << 20 {
            return Err(MultipathdError::ReplyTooLong {
                cmd: cmd.to_string(),
                len,
            });
        }
        let mut reply = vec![0u8; len];
        s.read_exact(&mut reply).map_err(io)?;
        let text = String::from_utf8_lossy(&reply)
            .trim_end_matches('\0')
            .trim()
            .to_string();
        tracing::debug!(cmd, reply = %text, "multipathd");
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn speaks_the_length_prefixed_protocol() {
        // A stand-in multipathd on a private abstract name.
        let name = format!("/brick-test/multipathd-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut len = [0u8; 8];
            c.read_exact(&mut len).unwrap();
            let mut cmd = vec![0u8; usize::from_ne_bytes(len)];
            c.read_exact(&mut cmd).unwrap();
            let reply = b"ok\n\0";
            c.write_all(&reply.len().to_ne_bytes()).unwrap();
            c.write_all(reply).unwrap();
            String::from_utf8(cmd).unwrap()
        });
        let client = SocketMultipathd::at(name.as_bytes());
        assert_eq!(
            client
                .command("add path sdb", Duration::from_secs(5))
                .unwrap(),
            "ok"
        );
        assert_eq!(server.join().unwrap(), "add path sdb\0");
    }

    #[test]
    fn no_daemon_is_a_clear_error() {
        let client = SocketMultipathd::at(b"/brick-test/nobody-listens-here");
        let e = client
            .command("add path sdb", Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(e, MultipathdError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("is it running"), "{e}");
    }
}
