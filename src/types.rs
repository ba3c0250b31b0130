//! Domain values, parsed once at the edge: an IQN, a portal, a LUN, a WWID, a SCSI address, an
//! NQN, an NVMe-oF portal.
//!
//! Each `FromStr` returns a [`ParseError`] that says what was wrong; the caller adds the name of
//! the field it came from.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Why a value could not be parsed (the field name is added by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn bad(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

macro_rules! serialize_as_display {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

/// An iSCSI qualified name: `iqn.YYYY-MM.reversed.domain[:anything]`, `eui.` + 16 hex digits or
/// `naa.` + 16 or 32 hex digits (RFC 3720, section 3.2.6). iSCSI names are case-insensitive
/// (RFC 3722 maps them to lower case): two names that differ only in case are equal, so a
/// caller's `IQN.2003-01.Com.Example:T` finds the session the kernel shows in lower case. The
/// name keeps the caller's spelling for iscsiadm and the logs.
#[derive(Debug, Clone)]
pub struct Iqn(String);

impl PartialEq for Iqn {
    fn eq(&self, other: &Iqn) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for Iqn {}

impl std::hash::Hash for Iqn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl PartialOrd for Iqn {
    fn partial_cmp(&self, other: &Iqn) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Iqn {
    fn cmp(&self, other: &Iqn) -> std::cmp::Ordering {
        let lower = |s: &str| {
            s.bytes()
                .map(|b| b.to_ascii_lowercase())
                .collect::<Vec<u8>>()
        };
        lower(&self.0).cmp(&lower(&other.0))
    }
}

impl Iqn {
    /// The name as iscsiadm and sysfs spell it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Iqn {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        if s.len() > 223 {
            return Err(bad(format!("is {} bytes long, more than 223", s.len())));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '/')
        {
            return Err(bad(format!(
                "{s:?} contains {c:?}, which an iSCSI name cannot hold"
            )));
        }
        let lower = s.to_ascii_lowercase();
        let hex_len = |rest: &str| {
            rest.bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then_some(rest.len())
        };
        let ok = if let Some(rest) = lower.strip_prefix("iqn.") {
            // iqn.YYYY-MM.naming-authority[:unique]
            let b = rest.as_bytes();
            b.len() > 8
                && b[..4].iter().all(u8::is_ascii_digit)
                && b[4] == b'-'
                && b[5..7].iter().all(u8::is_ascii_digit)
                && b[7] == b'.'
                && b[8].is_ascii_alphanumeric()
        } else if let Some(rest) = lower.strip_prefix("eui.") {
            hex_len(rest) == Some(16)
        } else if let Some(rest) = lower.strip_prefix("naa.") {
            matches!(hex_len(rest), Some(16 | 32))
        } else {
            false
        };
        if ok {
            Ok(Iqn(s.to_string()))
        } else {
            Err(bad(format!(
                "{s:?} is not an iSCSI name (expected iqn.YYYY-MM.domain[:id], eui.<16 hex> or naa.<16|32 hex>)"
            )))
        }
    }
}

impl fmt::Display for Iqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
serialize_as_display!(Iqn);

/// An iSCSI portal: an IP address and a TCP port (3260 when not given). IPv6 addresses are written
/// in brackets, `[fd00::1]:3260`, as iscsiadm prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Portal {
    /// The address.
    pub ip: IpAddr,
    /// The TCP port.
    pub port: u16,
}

impl Portal {
    /// The iSCSI default port.
    pub const DEFAULT_PORT: u16 = 3260;

    /// The address as iscsiadm's node database names it: no brackets, even for IPv6.
    pub fn address(&self) -> String {
        self.ip.to_string()
    }
}

impl FromStr for Portal {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        let parse_port = |p: &str| -> Result<u16, ParseError> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(format!(
                    "{s:?} has port {p:?}, not a number from 1 to 65535"
                ))),
                Ok(n) => Ok(n),
            }
        };
        // Bracketed IPv6, with or without a port.
        if let Some(rest) = s.strip_prefix('[') {
            let (addr, tail) = rest
                .split_once(']')
                .ok_or_else(|| bad(format!("{s:?} opens a bracket it does not close")))?;
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| bad(format!("{s:?}: {addr:?} is not an IPv6 address")))?;
            let port = match tail {
                "" => Self::DEFAULT_PORT,
                t => parse_port(
                    t.strip_prefix(':')
                        .ok_or_else(|| bad(format!("{s:?}: expected ':PORT' after ']'")))?,
                )?,
            };
            return Ok(Portal {
                ip: IpAddr::V6(ip),
                port,
            });
        }
        // A bare IPv6 address (several colons) has no port.
        if s.matches(':').count() > 1 {
            let ip: Ipv6Addr = s.parse().map_err(|_| {
                bad(format!(
                    "{s:?} is not an IP address (write IPv6 portals as [ADDR]:PORT)"
                ))
            })?;
            return Ok(Portal {
                ip: IpAddr::V6(ip),
                port: Self::DEFAULT_PORT,
            });
        }
        let (addr, port) = match s.split_once(':') {
            Some((a, p)) => (a, parse_port(p)?),
            None => (s, Self::DEFAULT_PORT),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            bad(format!(
                "{s:?}: {addr:?} is not an IP address (brick takes portals as IP:PORT)"
            ))
        })?;
        Ok(Portal { ip, port })
    }
}

impl Portal {
    /// Reads a portal that may name its host (`array.example.net:3260`, as some Cinder drivers
    /// send): an IP portal as [`Portal::from_str`] reads it; a host name is checked (DNS
    /// syntax), then resolved once, within `timeout`, to its first address, which is what
    /// open-iscsi records and logs in to. A name that does not resolve in time is an error.
    pub fn resolve(s: &str, timeout: std::time::Duration) -> Result<Portal, ParseError> {
        let direct = s.parse::<Portal>();
        let t = s.trim();
        let (name, port) = match t.rsplit_once(':') {
            Some((n, p)) if !n.contains(':') && !n.starts_with('[') => (n, Some(p)),
            None => (t, None),
            _ => return direct,
        };
        if direct.is_ok() || name.parse::<IpAddr>().is_ok() || !is_host_name(name) {
            return direct;
        }
        let port = match port {
            None => Self::DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return direct,
            },
        };
        let ip = resolve_name(name, port, timeout)?;
        tracing::debug!(name, %ip, "portal host name resolved");
        Ok(Portal { ip, port })
    }
}

/// Whether `s` is a DNS host name: dot-separated labels of letters, digits and inner hyphens,
/// each 1 to 63 long, 253 in all, not all digits at the end (that would be an IP address).
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !s
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
}

/// Resolves `name` with the system's resolver, waiting at most `timeout` (a resolver that hangs
/// is left to finish on its own thread).
fn resolve_name(name: &str, port: u16, timeout: std::time::Duration) -> Result<IpAddr, ParseError> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = std::sync::mpsc::channel();
    let query = (name.to_string(), port);
    std::thread::Builder::new()
        .name("brick-resolve".into())
        .spawn(move || {
            let _ = tx.send(query.to_socket_addrs().map(|mut a| a.next()));
        })
        .map_err(|e| bad(format!("cannot resolve {name:?}: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(addr))) => Ok(addr.ip()),
        Ok(Ok(None)) => Err(bad(format!("host name {name:?} has no address"))),
        Ok(Err(e)) => Err(bad(format!("cannot resolve host name {name:?}: {e}"))),
        Err(_) => Err(bad(format!(
            "host name {name:?} did not resolve within {timeout:?} (is DNS reachable? an IP \
             address works without it)"
        ))),
    }
}

impl fmt::Display for Portal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}
serialize_as_display!(Portal);

/// A SCSI logical unit number as Linux numbers it (the last field of H:C:T:L).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Lun(pub u64);

impl FromStr for Lun {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        s.trim()
            .parse::<u64>()
            .map(Lun)
            .map_err(|_| bad(format!("{s:?} is not a LUN (a whole number from 0)")))
    }
}

impl fmt::Display for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A device-mapper device's name (`/sys/block/dm-N/dm/name`, the name under `/dev/mapper`): for
/// a multipath map, its WWID or alias. Not the kernel name `dm-N`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DmName(String);

impl DmName {
    /// The name as sysfs shows it (trailing newline removed by the caller).
    pub fn new(name: impl Into<String>) -> DmName {
        DmName(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for DmName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// A size in bytes (a block device's, as sysfs gives it in 512-byte sectors times 512).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    /// The size of `sectors` 512-byte sectors (the unit of `/sys/block/*/size`).
    pub fn from_sectors(sectors: u64) -> Bytes {
        Bytes(sectors.saturating_mul(512))
    }
}

impl fmt::Display for Bytes {
    /// The number of bytes, then the size in binary units when it is at least 1 KiB:
    /// `50331648 (48 MiB)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        write!(f, "{}", self.0)?;
        let mut v = self.0 as f64;
        let mut unit = None;
        for u in UNITS {
            if v < 1024.0 {
                break;
            }
            v /= 1024.0;
            unit = Some(u);
        }
        match unit {
            Some(u) if v.fract() == 0.0 => write!(f, " ({v} {u})"),
            Some(u) => write!(f, " ({v:.1} {u})"),
            None => Ok(()),
        }
    }
}

/// An iSCSI session of this host: N in `/sys/class/iscsi_session/sessionN` (and the `[N]` that
/// `iscsiadm -m session` prints, and its `-r N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub u32);

impl SessionId {
    /// The session's folder name in sysfs: `sessionN`.
    pub fn sysfs_name(self) -> String {
        format!("session{}", self.0)
    }
}

impl From<u32> for SessionId {
    fn from(n: u32) -> SessionId {
        SessionId(n)
    }
}

impl FromStr for SessionId {
    type Err = ParseError;

    /// Reads `N` or `sessionN`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let n = s.trim();
        n.strip_prefix("session")
            .unwrap_or(n)
            .parse::<u32>()
            .map(SessionId)
            .map_err(|_| bad(format!("{s:?} is not an iSCSI session (N or sessionN)")))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A SCSI device address, host:channel:target:lun, as sysfs names the device's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScsiAddress {
    /// The SCSI host (H): for iSCSI, one per session.
    pub host: u32,
    /// The channel (C).
    pub channel: u32,
    /// The target id (T).
    pub target: u32,
    /// The LUN (L).
    pub lun: Lun,
}

impl FromStr for ScsiAddress {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = || bad(format!("{s:?} is not a SCSI address H:C:T:L"));
        let mut it = s.split(':');
        let mut num = || {
            it.next()
                .and_then(|p| p.parse::<u64>().ok())
                .ok_or_else(err)
        };
        let (h, c, t, l) = (num()?, num()?, num()?, num()?);
        if it.next().is_some() {
            return Err(err());
        }
        let small = |v: u64| u32::try_from(v).map_err(|_| err());
        Ok(ScsiAddress {
            host: small(h)?,
            channel: small(c)?,
            target: small(t)?,
            lun: Lun(l),
        })
    }
}

impl fmt::Display for ScsiAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.channel, self.target, self.lun
        )
    }
}
serialize_as_display!(ScsiAddress);

/// A SCSI device's world-wide identifier in the form os-brick and multipath use for it
/// (`scsi_wwn`, the multipath map name): the designator type as a digit followed by the identifier,
/// for example `36001405deadbeef00010000000000000`.
///
/// The kernel shows the same identifier in `/sys/block/sdX/device/wwid` as
/// `naa.6001405deadbeef00010000000000000`; [`Wwid::from_sysfs`] converts, so brick never needs a
/// SCSI inquiry to learn it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wwid(String);

impl Wwid {
    /// Converts the kernel's `device/wwid` text (`naa.`, `eui.`, `t10.` or other prefixes).
    pub fn from_sysfs(raw: &str) -> Result<Wwid, ParseError> {
        let raw = raw.trim_end_matches(['\n', '\0']).trim();
        if raw.is_empty() {
            return Err(bad("the device reports an empty wwid"));
        }
        let lower_prefix = raw.get(..4).map(str::to_ascii_lowercase);
        let rest = raw.get(4..).unwrap_or("");
        let id = match lower_prefix.as_deref() {
            Some("naa.") => format!("3{}", rest.to_ascii_lowercase()),
            Some("eui.") => format!("2{}", rest.to_ascii_lowercase()),
            // scsi_id joins the words of a T10 vendor identifier with underscores.
            Some("t10.") => format!("1{}", rest.split_whitespace().collect::<Vec<_>>().join("_")),
            _ => raw.split_whitespace().collect::<Vec<_>>().join("_"),
        };
        Ok(Wwid(id))
    }

    /// The identifier as os-brick's `scsi_wwn` and multipath's map name spell it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uuid device-mapper gives a multipath map of this device: `mpath-<wwid>`.
    pub fn mpath_uuid(&self) -> String {
        format!("mpath-{}", self.0)
    }
}

impl FromStr for Wwid {
    type Err = ParseError;

    /// Parses a `scsi_wwn` or `multipath_id` as os-brick reports it. A kernel-style
    /// `naa.`/`eui.`/`t10.` value is accepted too and converted.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        if s.contains('.') {
            return Wwid::from_sysfs(s);
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '/')
        {
            return Err(bad(format!(
                "{s:?} contains {c:?}, which a WWN cannot hold"
            )));
        }
        Ok(Wwid(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for Wwid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
serialize_as_display!(Wwid);

/// The state of a SCSI device, as the kernel shows it in `/sys/block/sdX/device/state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiskState {
    /// `running`: the device answers.
    Running,
    /// `blocked`: its session is in recovery; I/O waits in the device's queue.
    Blocked,
    /// `transport-offline`: the session gave up (past `replacement_timeout`); I/O fails.
    TransportOffline,
    /// `offline`: set offline (by brick's forced disconnect, or by error handling).
    Offline,
    /// Any other state, in the kernel's words.
    Other(String),
}

impl FromStr for DiskState {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "running" => DiskState::Running,
            "blocked" => DiskState::Blocked,
            "transport-offline" => DiskState::TransportOffline,
            "offline" => DiskState::Offline,
            other => DiskState::Other(other.to_string()),
        })
    }
}

impl fmt::Display for DiskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiskState::Running => "running",
            DiskState::Blocked => "blocked",
            DiskState::TransportOffline => "transport-offline",
            DiskState::Offline => "offline",
            DiskState::Other(s) => s,
        })
    }
}
serialize_as_display!(DiskState);

/// The state of an iSCSI session, as the kernel shows it in
/// `/sys/class/iscsi_session/sessionN/state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// `LOGGED_IN`: the session works.
    LoggedIn,
    /// `FAILED`: in recovery, its portal does not answer; the kernel scans nothing through it.
    Failed,
    /// `FREE`: being set up or torn down.
    Free,
    /// Any other state, in the kernel's words.
    Other(String),
}

impl FromStr for SessionState {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "LOGGED_IN" => SessionState::LoggedIn,
            "FAILED" => SessionState::Failed,
            "FREE" => SessionState::Free,
            other => SessionState::Other(other.to_string()),
        })
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::LoggedIn => "LOGGED_IN",
            SessionState::Failed => "FAILED",
            SessionState::Free => "FREE",
            SessionState::Other(s) => s,
        })
    }
}
serialize_as_display!(SessionState);

/// An NVMe Qualified Name (NVMe base specification, 4.5): `nqn.yyyy-mm.reverse.domain:anything`,
/// or the UUID form `nqn.2014-08.org.nvmexpress:uuid:<uuid>`; at most 223 bytes of printable
/// ASCII without white space, `,` or `=`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nqn(String);

impl Nqn {
    /// The NQN's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Nqn {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Nqn, ParseError> {
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        if s.len() > 223 {
            return Err(bad(format!(
                "is {} bytes long, over the 223 an NQN may have",
                s.len()
            )));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, ',' | '=' | '\\' | '"' | '\''))
        {
            return Err(bad(format!(
                "{s:?} holds {c:?}, which no NQN brick accepts may hold"
            )));
        }
        let rest = s
            .strip_prefix("nqn.")
            .ok_or_else(|| bad(format!("{s:?} does not start with \"nqn.\"")))?;
        // yyyy-mm.
        let date_ok = rest.len() > 8
            && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && rest.as_bytes()[4] == b'-'
            && rest.as_bytes()[5..7].iter().all(u8::is_ascii_digit)
            && rest.as_bytes()[7] == b'.'
            && matches!(
                &rest[5..7],
                "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
            );
        if !date_ok {
            return Err(bad(format!(
                "{s:?} has no date \"yyyy-mm.\" after \"nqn.\" (e.g. nqn.2014-08.org.example:vol)"
            )));
        }
        let domain = rest[8..].split(':').next().unwrap_or("");
        if domain.is_empty() {
            return Err(bad(format!("{s:?} names no reverse domain after its date")));
        }
        if let Some(u) = rest.strip_prefix("2014-08.org.nvmexpress:uuid:") {
            Uuid::parse(u).map_err(|e| bad(format!("{s:?}: the UUID form needs a UUID: {e}")))?;
        }
        Ok(Nqn(s.to_string()))
    }
}

impl fmt::Display for Nqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Nqn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A 128-bit identifier in the kernel's text form: lower-case hex, hyphenated 8-4-4-4-12. Both a
/// namespace UUID and a namespace NGUID show so in sysfs; os-brick takes either with or without
/// hyphens, in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// Parses 32 hex digits, with or without the four hyphens (also in `{}` or with a `urn:uuid:`
    /// prefix, as Python's `uuid.UUID` takes them).
    pub fn parse(s: &str) -> Result<Uuid, ParseError> {
        let t = s.trim();
        let t = t.strip_prefix("urn:uuid:").unwrap_or(t);
        let t = t
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != '-').collect();
        let hyphens_ok = !t.contains('-')
            || (t.len() == 36 && [8, 13, 18, 23].iter().all(|&i| t.as_bytes()[i] == b'-'));
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !hyphens_ok {
            return Err(bad(format!("{s:?} is not 32 hex digits (8-4-4-4-12)")));
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| bad(e.to_string()))?;
        }
        Ok(Uuid(b))
    }

    /// Whether every byte is zero (the kernel shows no `nguid` then).
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for Uuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a controller reaches its portal. os-brick: `RoCEv2` (or `rdma`) is rdma, anything else tcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// NVMe/TCP.
    Tcp,
    /// NVMe over RDMA (RoCEv2).
    Rdma,
}

impl Transport {
    /// os-brick's mapping of a `transport_type`.
    pub fn from_os_brick(s: &str) -> Transport {
        if s == "RoCEv2" || s.eq_ignore_ascii_case("rdma") {
            Transport::Rdma
        } else {
            Transport::Tcp
        }
    }

    /// The name the kernel uses (`transport=` option, `transport` attribute).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Rdma => "rdma",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One portal of an NVMe-oF target: transport, IP address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NvmePortal {
    /// The transport.
    pub transport: Transport,
    /// The address (`traddr`).
    pub address: IpAddr,
    /// The port (`trsvcid`).
    pub port: u16,
}

impl fmt::Display for NvmePortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(a) => write!(f, "{} {a}:{}", self.transport, self.port),
            IpAddr::V6(a) => write!(f, "{} [{a}]:{}", self.transport, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn states_read_as_the_kernel_spells_them_and_print_back_the_same() {
        for (text, state) in [
            ("running", DiskState::Running),
            ("blocked", DiskState::Blocked),
            ("transport-offline", DiskState::TransportOffline),
            ("offline", DiskState::Offline),
            ("created", DiskState::Other("created".into())),
        ] {
            assert_eq!(text.parse::<DiskState>().unwrap(), state);
            assert_eq!(state.to_string(), text);
        }
        for (text, state) in [
            ("LOGGED_IN", SessionState::LoggedIn),
            ("FAILED", SessionState::Failed),
            ("FREE", SessionState::Free),
            ("ODD", SessionState::Other("ODD".into())),
        ] {
            assert_eq!(text.parse::<SessionState>().unwrap(), state);
            assert_eq!(state.to_string(), text);
        }
    }

    use super::*;

    #[test]
    fn iqn_table() {
        let good = [
            "iqn.2003-01.org.linux-iscsi.lab:tgt1",
            "iqn.2010-10.org.openstack:volume-5e3c8f6a-0d0a-4c7b-9d5e-4f7f4f2d8c11",
            "iqn.1994-05.com.redhat:abc",
            "eui.02004567A425678D",
            "naa.52004567BA64678D",
            "naa.6001405deadbeef00010000000000000".get(..36).unwrap(),
        ];
        for s in good {
            assert_eq!(
                s.parse::<Iqn>().map(|i| i.to_string()),
                Ok(s.to_string()),
                "{s}"
            );
        }
        let bad = [
            "",
            "iqn.2003-1.org:x",
            "iqn.2003-01",
            "iqn.2003-01.",
            "tgt1",
            "iqn.2003-01.org.x y",
            "eui.123",
            "naa.zz",
            "iqn.2003-01.org/../etc",
        ];
        for s in bad {
            assert!(s.parse::<Iqn>().is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn portal_table() {
        let cases = [
            ("127.0.0.1:3260", "127.0.0.1:3260"),
            ("10.0.0.5", "10.0.0.5:3260"),
            ("[::1]:3261", "[::1]:3261"),
            ("[fd00::1]", "[fd00::1]:3260"),
            ("fd00::1", "[fd00::1]:3260"),
            (" 127.0.0.2:3260 ", "127.0.0.2:3260"),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<Portal>().unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for bad in [
            "",
            "host.example:3260",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "[::1",
            "[::1]x",
            "1.2.3:3260",
        ] {
            assert!(bad.parse::<Portal>().is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            "[fd00::1]:3260".parse::<Portal>().unwrap().address(),
            "fd00::1"
        );
    }

    #[test]
    fn scsi_address_round_trips() {
        let a: ScsiAddress = "6:0:0:1".parse().unwrap();
        assert_eq!((a.host, a.channel, a.target, a.lun), (6, 0, 0, Lun(1)));
        assert_eq!(a.to_string(), "6:0:0:1");
        for bad in ["6:0:0", "6:0:0:1:2", "a:0:0:1", "target6:0:0"] {
            assert!(bad.parse::<ScsiAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn wwid_from_sysfs_table() {
        let cases = [
            (
                "naa.6001405deadbeef00010000000000000\n",
                "36001405deadbeef00010000000000000",
            ),
            (
                "naa.6001405DEADBEEF00010000000000000",
                "36001405deadbeef00010000000000000",
            ),
            ("eui.0123456789abcdef", "20123456789abcdef"),
            (
                "t10.ATA     QEMU HARDDISK                           QM00001",
                "1ATA_QEMU_HARDDISK_QM00001",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(Wwid::from_sysfs(raw).unwrap().as_str(), want, "{raw}");
        }
        assert!(Wwid::from_sysfs("\n").is_err());
        let w: Wwid = "36001405DEADBEEF00010000000000000".parse().unwrap();
        assert_eq!(
            w,
            Wwid::from_sysfs("naa.6001405deadbeef00010000000000000").unwrap()
        );
        assert_eq!(w.mpath_uuid(), "mpath-36001405deadbeef00010000000000000");
    }

    #[test]
    fn lun_parses_numbers_only() {
        assert_eq!("7".parse::<Lun>(), Ok(Lun(7)));
        assert!("-1".parse::<Lun>().is_err());
        assert!("one".parse::<Lun>().is_err());
    }

    #[test]
    fn portals_may_name_their_host_which_resolves_once() {
        let t = std::time::Duration::from_secs(5);
        // An IP portal is read as always.
        assert_eq!(
            Portal::resolve("127.0.0.2:3261", t).unwrap().to_string(),
            "127.0.0.2:3261"
        );
        // localhost is in every /etc/hosts.
        let p = Portal::resolve("localhost:3262", t).unwrap();
        assert!(p.ip.is_loopback(), "{p}");
        assert_eq!(p.port, 3262);
        assert_eq!(Portal::resolve("localhost", t).unwrap().port, 3260);
        // A name that does not resolve (the .invalid domain never does) is an error naming it.
        let e = Portal::resolve("array.invalid:3260", t).unwrap_err();
        assert!(e.to_string().contains("array.invalid"), "{e}");
        // What is no host name is not looked up: the IP portal's error stays.
        for s in [
            "bad name:3260",
            "-x.example:3260",
            "a..b:3260",
            "1.2.3:3260",
            "host:0",
        ] {
            assert!(Portal::resolve(s, t).is_err(), "{s}");
        }
        assert!(is_host_name("array-1.example.net"));
        assert!(!is_host_name(&"a".repeat(64)));
    }

    #[test]
    fn sizes_print_bytes_and_binary_units() {
        assert_eq!(Bytes::from_sectors(98304), Bytes(50331648));
        assert_eq!(Bytes(50331648).to_string(), "50331648 (48 MiB)");
        assert_eq!(Bytes(1536).to_string(), "1536 (1.5 KiB)");
        assert_eq!(Bytes(512).to_string(), "512");
        assert_eq!(Bytes::from_sectors(u64::MAX), Bytes(u64::MAX));
    }

    #[test]
    fn session_ids_read_from_sysfs_names_and_numbers() {
        assert_eq!("session12".parse::<SessionId>(), Ok(SessionId(12)));
        assert_eq!("12".parse::<SessionId>(), Ok(SessionId(12)));
        assert_eq!(SessionId(12).sysfs_name(), "session12");
        assert_eq!(SessionId(12).to_string(), "12");
        assert!("sessionx".parse::<SessionId>().is_err());
        assert!("connection1:0".parse::<SessionId>().is_err());
    }
}
