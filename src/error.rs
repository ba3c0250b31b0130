//! brick's errors: each says what failed, on which device, portal or command, and what to do.

use std::path::{Path, PathBuf};

use crate::host::CmdError;
use crate::report::{DisconnectReport, Outcome};

/// Everything that can go wrong in brick.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection properties or device_info are malformed; nothing on the host was touched.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field at fault (`target_iqn`, `device_info.scsi_wwn`, `JSON`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A file in sysfs, /dev or the iSCSI configuration could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },

    /// An external command did not start or did not finish in time.
    #[error(transparent)]
    Command(#[from] CmdError),

    /// An external command exited with a failure, or multipathd refused a command.
    #[error("`{cmd}` failed{}: {detail}", code.map_or(String::new(), |c| format!(" (exit code {c})")))]
    CommandFailed {
        /// The command, secrets masked.
        cmd: String,
        /// Its exit code, when it has one.
        code: Option<i32>,
        /// The end of what it said.
        detail: String,
    },

    /// multipathd could not be asked (its socket), or gave no reply.
    #[error(transparent)]
    Multipathd(#[from] crate::host::MultipathdError),

    /// A command's output could not be understood.
    #[error("cannot understand the output of `{cmd}`: {detail}")]
    Unparsable {
        /// The command.
        cmd: String,
        /// What could not be understood.
        detail: String,
    },

    /// No path of a volume could be attached, or a multipath connect got no map; what the
    /// connect had set up was undone.
    #[error("{volume} not connected: {}", PathFailure::join(paths))]
    Connect {
        /// The volume.
        volume: String,
        /// Each path, and why it did not attach (or why no map came).
        paths: Vec<PathFailure>,
    },

    /// An NVMe-oF volume did not attach: no controller came up, or its namespace did not show
    /// in time; the controllers the connect created were deleted again.
    #[error("{volume} not connected: {reason}")]
    NvmeConnect {
        /// The volume.
        volume: String,
        /// Why: each portal's failure, or the namespace that did not show.
        reason: NvmeNotConnected,
    },

    /// A replicated volume's md RAID1 was neither created nor assembled nor taken, to protect
    /// data: a replica carries a signature (a file system, LVM, LUKS, a partition table) but no
    /// md superblock, cannot be read (so whether it holds one is unknown), or an array that
    /// holds it is not the volume's (another name, or members that are not its replicas).
    /// Nothing was written to any replica; the replicas this connect attached were detached.
    #[error("{volume} not connected: {device}: {detail}")]
    RaidRefused {
        /// The volume.
        volume: String,
        /// The replica's device (`/dev/nvme0n1`) or the array (`/dev/md127`).
        device: String,
        /// What was found, and what the user can do.
        detail: String,
    },

    /// The volume's LUN shows another WWN than the one device_info gives for the volume (the
    /// array gave the LUN number to another volume), or the WWN device_info gives is on devices
    /// the volume's targets and LUN do not show. Nothing on the host was touched.
    #[error("{volume} not touched: {detail}")]
    NotTheVolume {
        /// The volume.
        volume: String,
        /// Both WWNs, and the devices found.
        detail: String,
    },

    /// Something brick needs on this host is missing or not running (multipathd for a multipath
    /// connect, a program such as iscsiadm); found before anything on the host was changed, or
    /// when a program could not be started.
    #[error("{what}")]
    Prerequisite {
        /// What is missing, and what to do.
        what: String,
    },

    /// An operation went as far as it could and left something in place; its report (as JSON,
    /// whatever the operation) says what and why. (A disconnect has its own variant.)
    #[error("{message}")]
    Incomplete {
        /// The sentence for a person.
        message: String,
        /// What was done and what is left.
        report: serde_json::Value,
    },

    /// A disconnect stopped or finished with failures; the report says what was done and what is
    /// left on the host.
    #[error("{message}")]
    Disconnect {
        /// The sentence for a person.
        message: String,
        /// What was done and what is left, typed.
        report: Box<DisconnectReport>,
    },
}

/// Why one path of a volume did not attach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The host could not be read, or a lock taken (sysfs, node records, the target's lock).
    #[error("{0}")]
    Host(String),
    /// The portal does not offer the target (sendtargets discovery), or the discovery failed.
    #[error("{0}")]
    Discovery(String),
    /// The login failed; `hint` says what iscsiadm's exit code most likely means.
    #[error("login failed ({}): {detail}", match (code, hint) {
        (Some(c), Some(h)) => format!("exit code {c}: {h}"),
        (Some(c), None) => format!("exit code {c}"),
        (None, _) => "no exit code".to_string(),
    })]
    Login {
        /// iscsiadm's exit code.
        code: Option<i32>,
        /// What the code most likely means for the user.
        hint: Option<&'static str>,
        /// The end of what iscsiadm said.
        detail: String,
    },
    /// The session is in recovery (its portal does not answer): the kernel scans nothing
    /// through it.
    #[error(
        "session {session} is {state} (in recovery: the portal does not answer), and the \
             kernel scans no LUN through it; retry once the portal is back"
    )]
    SessionInRecovery {
        /// The session.
        session: crate::types::SessionId,
        /// Its state.
        state: crate::types::SessionState,
    },
    /// The target does not offer the LUN on the session, after scans until the deadline.
    #[error(
        "the target offers no LUN {lun} on session {session} ({scans} scans in {waited:.0?}): \
             check target_lun and that the target maps that LUN to this initiator"
    )]
    LunNotOffered {
        /// The LUN.
        lun: crate::types::Lun,
        /// The session.
        session: crate::types::SessionId,
        /// How many scans.
        scans: u32,
        /// For how long.
        waited: std::time::Duration,
    },
    /// A scan or rescan of the LUN through sysfs failed, or the LUN's disk did not show in time.
    #[error("{0}")]
    Scan(String),
    /// The path shows another WWN than the volume's (that of its first path): not the volume.
    #[error("{0}")]
    OtherVolume(String),
    /// A multipath connect got no map.
    #[error("{0}")]
    NoMap(String),
    /// The NVMe-oF connect request to the portal failed: refused, unreachable, timed out, or
    /// an answer of the kernel brick does not understand.
    #[error("{0}")]
    NvmeConnect(String),
    /// A controller to the portal exists (reconnecting, or made by another program meanwhile)
    /// but was not live before the deadline.
    #[error("{} is not live after {waited:?}", controller.as_deref().map_or_else(|| "the controller another program makes".to_string(), |c| format!("controller {c}")))]
    ControllerNotLive {
        /// The controller (`nvme1`), when one shows.
        controller: Option<String>,
        /// For how long it was waited for.
        waited: std::time::Duration,
    },
}

impl PathError {
    /// A failure at the host boundary, in words.
    pub(crate) fn host(e: impl std::fmt::Display) -> PathError {
        PathError::Host(e.to_string())
    }
}

/// Where a path goes: an iSCSI portal and target, or an NVMe-oF portal and subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathTarget {
    /// An iSCSI portal and the target there.
    Iscsi {
        /// The portal.
        portal: crate::types::Portal,
        /// The target.
        iqn: crate::types::Iqn,
    },
    /// An NVMe-oF portal and the subsystem there.
    Nvme {
        /// The portal.
        portal: crate::types::NvmePortal,
        /// The subsystem.
        nqn: crate::types::Nqn,
    },
}

impl std::fmt::Display for PathTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathTarget::Iscsi { portal, iqn } => write!(f, "{portal} ({iqn})"),
            PathTarget::Nvme { portal, nqn } => write!(f, "{portal} ({nqn})"),
        }
    }
}

/// A path that did not attach: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFailure {
    /// The portal and target.
    pub target: PathTarget,
    /// Why.
    pub error: PathError,
}

impl PathFailure {
    /// An iSCSI path that did not attach.
    pub fn iscsi(
        portal: crate::types::Portal,
        iqn: crate::types::Iqn,
        error: PathError,
    ) -> PathFailure {
        PathFailure {
            target: PathTarget::Iscsi { portal, iqn },
            error,
        }
    }

    /// An NVMe-oF portal that gave no live controller.
    pub fn nvme(
        portal: crate::types::NvmePortal,
        nqn: crate::types::Nqn,
        error: PathError,
    ) -> PathFailure {
        PathFailure {
            target: PathTarget::Nvme { portal, nqn },
            error,
        }
    }

    /// The portal's address and port: `127.0.0.1:3260`, `[fd00::1]:4420`.
    pub fn portal(&self) -> String {
        match &self.target {
            PathTarget::Iscsi { portal, .. } => portal.to_string(),
            PathTarget::Nvme { portal, .. } => match portal.address {
                std::net::IpAddr::V4(a) => format!("{a}:{}", portal.port),
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", portal.port),
            },
        }
    }

    fn join(paths: &[PathFailure]) -> String {
        paths
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The failure's kind, as the JSON answer names it.
    fn kind(&self) -> &'static str {
        match &self.error {
            PathError::Host(_) => "host",
            PathError::Discovery(_) => "discovery",
            PathError::Login { .. } => "login",
            PathError::SessionInRecovery { .. } => "session_in_recovery",
            PathError::LunNotOffered { .. } => "lun_not_offered",
            PathError::Scan(_) => "scan",
            PathError::OtherVolume(_) => "other_volume",
            PathError::NoMap(_) => "no_map",
            PathError::NvmeConnect(_) => "connect",
            PathError::ControllerNotLive { .. } => "controller_not_live",
        }
    }
}

impl std::fmt::Display for PathFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.target, self.error)
    }
}

/// iSCSI: `{"portal": "127.0.0.1:3260", "iqn", "kind", "message"}`; NVMe-oF:
/// `{"portal": "127.0.0.1:4420", "transport": "tcp", "nqn", "kind", "message"}`.
impl serde::Serialize for PathFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut st = s.serialize_map(None)?;
        match &self.target {
            PathTarget::Iscsi { portal, iqn } => {
                st.serialize_entry("portal", portal)?;
                st.serialize_entry("iqn", iqn)?;
            }
            PathTarget::Nvme { portal, nqn } => {
                st.serialize_entry("portal", &self.portal())?;
                st.serialize_entry("transport", &portal.transport)?;
                st.serialize_entry("nqn", nqn)?;
            }
        }
        st.serialize_entry("kind", self.kind())?;
        st.serialize_entry("message", &self.error.to_string())?;
        st.end()
    }
}

/// Why an NVMe-oF volume did not attach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NvmeNotConnected {
    /// No portal gave a live controller: each portal, and why.
    #[error("{}", PathFailure::join(.0))]
    NoController(Vec<PathFailure>),
    /// Controllers came up, but no namespace with the volume's identity showed in the
    /// subsystem before the deadline.
    #[error(
        "no namespace with {identity} showed in subsystem {nqn} within {waited:?} (controllers \
         {}): check the properties and that the target exports the namespace to this host",
        controllers.join(", ")
    )]
    NamespaceNotShown {
        /// The subsystem.
        nqn: crate::types::Nqn,
        /// What names the namespace (`uuid ...`, `nguid ...`, `nsid 1`).
        identity: String,
        /// The deadline.
        waited: std::time::Duration,
        /// The live controllers it was looked for under.
        controllers: Vec<String>,
    },
    /// The volume's namespace is not on this host (any more).
    #[error("{0}")]
    NotOnHost(String),
    /// The replicas of a replicated volume did not attach, or their md RAID1 did not run.
    #[error("{0}")]
    Replicas(String),
}

/// What kind of failure an error is, for a script: the command line gives each its own exit
/// status, and `--json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input (connection properties, device_info, arguments): nothing on the host was
    /// changed. Exit status 2.
    InvalidInput,
    /// Refused to protect data or another volume's devices: nothing of the volume was removed
    /// (or only paths that could not answer, whose I/O went to a live path), and the kernel
    /// still holds its data. Exit status 3.
    Refused,
    /// Went as far as it could, and something is left on the host: the report names it. Exit
    /// status 4.
    Incomplete,
    /// A prerequisite is missing (multipathd not running, a program not installed). Exit
    /// status 5.
    Prerequisite,
    /// Anything else: a connect that attached nothing (and undid what it made), a command or
    /// file that failed. Exit status 1.
    Failed,
}

impl ErrorKind {
    /// The exit status of `brick` for this kind of error.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::InvalidInput => 2,
            ErrorKind::Refused => 3,
            ErrorKind::Incomplete => 4,
            ErrorKind::Prerequisite => 5,
        }
    }
}

impl From<crate::host::HostError> for Error {
    fn from(e: crate::host::HostError) -> Error {
        match e {
            crate::host::HostError::Io { path, source } => Error::Io { path, source },
            e @ crate::host::HostError::Unsafe { .. } => Error::Prerequisite {
                what: e.to_string(),
            },
        }
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::NotTheVolume { .. } | Error::RaidRefused { .. } => ErrorKind::Refused,
            Error::Disconnect { report, .. } => match report.outcome {
                Outcome::Refused | Outcome::Stopped => ErrorKind::Refused,
                _ => ErrorKind::Incomplete,
            },
            Error::Incomplete { .. } => ErrorKind::Incomplete,
            Error::Prerequisite { .. } | Error::Command(CmdError::Spawn { .. }) => {
                ErrorKind::Prerequisite
            }
            _ => ErrorKind::Failed,
        }
    }

    /// Each path that did not attach, for a connect that attached none (or got no map).
    pub fn path_failures(&self) -> Option<&[PathFailure]> {
        match self {
            Error::Connect { paths, .. }
            | Error::NvmeConnect {
                reason: NvmeNotConnected::NoController(paths),
                ..
            } => Some(paths),
            _ => None,
        }
    }

    /// The input field at fault, for bad input.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// brick's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// The closing step of a disconnect sits beside the error it may become, so that report.rs
// needs nothing of this file.
impl DisconnectReport {
    /// The end of a disconnect, every transport's: [`Outcome::Gone`] when nothing failed and
    /// nothing is left; otherwise [`Outcome::Unfinished`], returned as a success only for a
    /// forced disconnect told to ignore errors, else as the error that names every failure.
    pub fn finish(mut self, ignore_errors: bool) -> Result<DisconnectReport> {
        if self.clean() {
            tracing::info!("volume disconnected");
            self.outcome = Outcome::Gone;
            return Ok(self);
        }
        self.outcome = Outcome::Unfinished;
        if self.forced && ignore_errors {
            tracing::warn!(
                failures = self.failures.len(),
                "disconnect finished with errors, ignored as asked"
            );
            return Ok(self);
        }
        let failures: Vec<String> = self.failures.iter().map(ToString::to_string).collect();
        Err(Error::Disconnect {
            message: format!(
                "{} disconnected with errors: {}",
                self.volume,
                failures.join("; ")
            ),
            report: Box::new(self),
        })
    }
}
