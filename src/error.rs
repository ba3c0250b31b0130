//! brick's errors: each says what failed, on which device, portal or command, and what to do.

use std::path::{Path, PathBuf};

use crate::host::CmdError;

/// Everything that can go wrong in brick.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection properties or device_info are malformed; nothing on the host was touched.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: String, reason: String },

    /// A file in sysfs, /dev or the iSCSI configuration could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An external command did not start or did not finish in time.
    #[error(transparent)]
    Command(#[from] CmdError),

    /// An external command exited with a failure, or multipathd refused a command.
    #[error("`{cmd}` failed{}: {detail}", code.map_or(String::new(), |c| format!(" (exit code {c})")))]
    CommandFailed {
        cmd: String,
        code: Option<i32>,
        detail: String,
    },

    /// A command's output could not be understood.
    #[error("cannot understand the output of `{cmd}`: {detail}")]
    Unparsable { cmd: String, detail: String },

    /// No path of a volume could be attached, or a multipath connect got no map; what the
    /// connect had set up was undone.
    #[error("{volume} not connected: {detail}")]
    Connect { volume: String, detail: String },

    /// The volume's LUN shows another WWN than the one device_info gives for the volume (the
    /// array gave the LUN number to another volume), or the WWN device_info gives is on devices
    /// the volume's targets and LUN do not show. Nothing on the host was touched.
    #[error("{volume} not touched: {detail}")]
    NotTheVolume { volume: String, detail: String },

    /// A disconnect stopped or finished with failures; the report says what was done and what is
    /// left on the host.
    #[error("{message}")]
    Disconnect {
        message: String,
        report: Box<crate::report::DisconnectReport>,
    },
}

impl Error {
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
