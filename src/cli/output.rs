//! What the commands share to read their input and write their output: the properties and
//! device_info files, JSON, standard error, and the end of every run (output, error, exit
//! status).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use brick::{DeviceInfo, Error, Protocol, VolumeProperties};

/// Writes what `run` printed to standard output, then the error, if any: to standard error, or
/// with `--json` as `{"error": {...}}` on standard output (with the report of a disconnect
/// that stopped or failed). Gives the exit status of the error's kind (see README: 0 done,
/// 1 failed, 2 bad input, 3 refused to protect data, 4 done with something left, 5 missing
/// prerequisite). A closed standard output ends brick with 141 (what a shell reports for a
/// process that SIGPIPE killed), quietly; a closed standard error loses the message only.
pub(super) fn finish(out: &str, result: Result<(), Error>, json: bool) -> ExitCode {
    let mut text = out.to_string();
    let code = match &result {
        Ok(()) => 0,
        Err(e) => e.kind().exit_code(),
    };
    if let (Err(e), true) = (&result, json) {
        let report = match e {
            Error::Disconnect { report, .. } => serde_json::to_value(report).ok(),
            Error::Incomplete { report, .. } => Some(report.clone()),
            _ => None,
        };
        let value = serde_json::json!({
            "error": {
                "kind": e.kind(),
                "field": e.field(),
                "message": e.to_string(),
                "exit_code": code,
            },
            "report": report,
        });
        text = format!("{}\n", to_json(&value));
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::from(141);
        }
        say(&format!("brick: cannot write the output: {e}"));
        return ExitCode::FAILURE;
    }
    if let Err(e) = &result {
        say(&format!("brick: {e}"));
    }
    ExitCode::from(code)
}

/// Writes a line to standard error, if it is still open (`eprintln!` panics when it is not).
pub(super) fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub(super) fn read_input(path: &str) -> Result<String, Error> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io(std::path::Path::new("<stdin>"), e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| Error::io(std::path::Path::new(path), e))
    }
}

pub(super) fn read_device_info(path: Option<PathBuf>) -> Result<Option<DeviceInfo>, Error> {
    match path {
        Some(p) => Ok(Some(DeviceInfo::from_json(&read_input(
            &p.to_string_lossy(),
        )?)?)),
        None => Ok(None),
    }
}

pub(super) fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The volume of the properties file `path` (`-`: standard input), for `protocol` when given.
pub(super) fn read_props(
    path: &str,
    protocol: Option<Protocol>,
) -> Result<VolumeProperties, Error> {
    VolumeProperties::from_json(&read_input(path)?, protocol)
}

/// `value` as pretty JSON with `--json`, else as its text.
pub(super) fn print(
    value: &(impl serde::Serialize + std::fmt::Display),
    json: bool,
    out: &mut String,
) {
    use std::fmt::Write as _;
    if json {
        let _ = writeln!(out, "{}", to_json(value));
    } else {
        let _ = write!(out, "{value}");
    }
}

/// The arguments of the commands that read a volume and the device_info of its connect.
#[derive(clap::Args)]
pub(super) struct VolumeArgs {
    /// The connection properties (JSON file, or - for standard input).
    props: String,
    /// The device_info that connect returned (JSON file).
    #[arg(long)]
    device_info: Option<PathBuf>,
}

impl VolumeArgs {
    /// The volume (for `protocol` when given) and the device_info, read in that order.
    pub(super) fn read(
        self,
        protocol: Option<Protocol>,
    ) -> Result<(VolumeProperties, Option<DeviceInfo>), Error> {
        let props = read_props(&self.props, protocol)?;
        Ok((props, read_device_info(self.device_info)?))
    }
}
