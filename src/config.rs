//! brick's settings: every deadline and retry of [`Tuning`], and where and how long brick waits
//! for its locks, from three places in turn: the defaults, a TOML file (`/etc/brick/brick.toml`
//! unless another is named) and `KEY=VALUE` overrides (the command line's `--set`). Each value
//! keeps where it came from, for `brick config`.
//!
//! The file is flat, one setting per line; durations are a number of seconds or a text such as
//! `"1m 30s"` or `"500ms"`:
//!
//! ```toml
//! command_timeout = 45
//! map_deadline = "40s"
//! path_flush_tries = 6
//! lock_dir = "/run/brick"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::{Host, DEFAULT_LOCK_TIMEOUT};
use crate::iscsi::tuning::Tuning;

/// The file read when none is named, if it exists.
pub const DEFAULT_PATH: &str = "/etc/brick/brick.toml";

/// The longest duration a setting takes: longer is a typo, not a deadline.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The most bytes of a settings file brick reads: a few dozen settings take a few kilobytes.
const FILE_MAX: u64 = 1 << 20;

/// The most attempts or retries a setting takes.
const MAX_COUNT: u32 = 100;

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Source {
    /// brick's default.
    Default,
    /// The configuration file.
    File,
    /// A `KEY=VALUE` override (`--set`).
    Override,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Override => "--set",
        })
    }
}

/// One setting as `brick config` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Its key.
    pub key: &'static str,
    /// Its value, as the file would write it (durations in humantime form: `30s`).
    pub value: String,
    /// Where the value came from.
    pub source: Source,
    /// What it bounds.
    pub help: &'static str,
}

/// Every setting brick takes: the deadlines and retries, and its locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Deadlines and retries of connect, disconnect and extend.
    pub tuning: Tuning,
    /// The same for NVMe-oF volumes, with the controllers' reconnect settings.
    pub nvme: crate::nvmeof::NvmeTuning,
    /// Where brick keeps its lock files.
    pub lock_dir: PathBuf,
    /// How long brick waits for a lock another process holds.
    pub lock_timeout: Duration,
    file: Option<PathBuf>,
    sources: BTreeMap<&'static str, Source>,
}

/// How a key reaches its value in [`Settings`].
#[derive(Clone, Copy)]
enum Field {
    Duration(fn(&mut Settings) -> &mut Duration),
    Count(fn(&mut Settings) -> &mut u32),
    /// A duration of at least a second, or `off` (for ever).
    SecondsOrOff(fn(&mut Settings) -> &mut Option<Duration>),
    Dir(fn(&mut Settings) -> &mut PathBuf),
}

/// Every key, what it bounds, and its field.
const KEYS: &[(&str, &str, Field)] = &[
    (
        "command_timeout",
        "deadline of each iscsiadm call that neither logs in nor discovers",
        Field::Duration(|s| &mut s.tuning.command_timeout),
    ),
    (
        "login_timeout",
        "login timeout written into each node record",
        Field::Duration(|s| &mut s.tuning.login_timeout),
    ),
    (
        "login_retries",
        "login retries written into each node record",
        Field::Count(|s| &mut s.tuning.login_retries),
    ),
    (
        "login_deadline",
        "deadline of each `iscsiadm --login`",
        Field::Duration(|s| &mut s.tuning.login_deadline),
    ),
    (
        "discovery_timeout",
        "deadline of a sendtargets discovery",
        Field::Duration(|s| &mut s.tuning.discovery_timeout),
    ),
    (
        "scan_timeout",
        "how long a LUN scan may block",
        Field::Duration(|s| &mut s.tuning.scan_timeout),
    ),
    (
        "device_deadline",
        "how long to wait for the LUN's disk",
        Field::Duration(|s| &mut s.tuning.device_deadline),
    ),
    (
        "map_deadline",
        "how long to wait for the multipath map",
        Field::Duration(|s| &mut s.tuning.map_deadline),
    ),
    (
        "map_paths_grace",
        "how long, once the map shows, to wait for every path to join it",
        Field::Duration(|s| &mut s.tuning.map_paths_grace),
    ),
    (
        "map_udev_wait",
        "how long multipathd may take to build the map from what udev tells it before brick \
         builds it itself",
        Field::Duration(|s| &mut s.tuning.map_udev_wait),
    ),
    (
        "map_sync_timeout",
        "how long the write-back of a multipath map may take",
        Field::Duration(|s| &mut s.tuning.map_sync_timeout),
    ),
    (
        "path_flush_timeout",
        "deadline of each attempt to flush a path device",
        Field::Duration(|s| &mut s.tuning.path_flush_timeout),
    ),
    (
        "path_flush_tries",
        "attempts to flush a path device",
        Field::Count(|s| &mut s.tuning.path_flush_backoff.tries),
    ),
    (
        "path_flush_first_delay",
        "first wait between path flush attempts (doubling)",
        Field::Duration(|s| &mut s.tuning.path_flush_backoff.first),
    ),
    (
        "path_flush_max_delay",
        "longest wait between path flush attempts",
        Field::Duration(|s| &mut s.tuning.path_flush_backoff.max_delay),
    ),
    (
        "map_flush_timeout",
        "deadline of each removal of a multipath map",
        Field::Duration(|s| &mut s.tuning.map_flush_timeout),
    ),
    (
        "map_flush_tries",
        "attempts to remove a map the kernel calls busy",
        Field::Count(|s| &mut s.tuning.map_flush_backoff.tries),
    ),
    (
        "map_flush_first_delay",
        "first wait between map removal attempts (doubling)",
        Field::Duration(|s| &mut s.tuning.map_flush_backoff.first),
    ),
    (
        "map_flush_max_delay",
        "longest wait between map removal attempts",
        Field::Duration(|s| &mut s.tuning.map_flush_backoff.max_delay),
    ),
    (
        "delete_timeout",
        "how long a device's delete may block",
        Field::Duration(|s| &mut s.tuning.delete_timeout),
    ),
    (
        "removal_deadline",
        "how long to wait for the kernel to drop deleted devices",
        Field::Duration(|s| &mut s.tuning.removal_deadline),
    ),
    (
        "multipathd_query_timeout",
        "deadline of cleanup's question to multipathd (which paths it calls active)",
        Field::Duration(|s| &mut s.tuning.multipathd_query_timeout),
    ),
    (
        "nvme_ctrl_loss_tmo",
        "NVMe-oF: how long the kernel reconnects a controller whose portal is gone before it fails the queued I/O (off: for ever, until a disconnect; at least 1s)",
        Field::SecondsOrOff(|s| &mut s.nvme.ctrl_loss_tmo),
    ),
    (
        "nvme_reconnect_delay",
        "NVMe-oF: the pause between two reconnect attempts",
        Field::Duration(|s| &mut s.nvme.reconnect_delay),
    ),
    (
        "nvme_connect_timeout",
        "NVMe-oF: deadline of one controller connect",
        Field::Duration(|s| &mut s.nvme.connect_timeout),
    ),
    (
        "nvme_live_deadline",
        "NVMe-oF: how long to wait for a reconnecting controller",
        Field::Duration(|s| &mut s.nvme.live_deadline),
    ),
    (
        "nvme_namespace_deadline",
        "NVMe-oF: how long to wait for the namespace",
        Field::Duration(|s| &mut s.nvme.namespace_deadline),
    ),
    (
        "nvme_paths_grace",
        "NVMe-oF: once the head shows, how long to wait for every path",
        Field::Duration(|s| &mut s.nvme.paths_grace),
    ),
    (
        "nvme_flush_timeout",
        "NVMe-oF: deadline of each attempt to flush the namespace or array",
        Field::Duration(|s| &mut s.nvme.flush_timeout),
    ),
    (
        "nvme_flush_tries",
        "NVMe-oF: attempts to flush the namespace or array",
        Field::Count(|s| &mut s.nvme.flush_backoff.tries),
    ),
    (
        "nvme_flush_first_delay",
        "NVMe-oF: first wait between flush attempts (doubling)",
        Field::Duration(|s| &mut s.nvme.flush_backoff.first),
    ),
    (
        "nvme_flush_max_delay",
        "NVMe-oF: longest wait between flush attempts",
        Field::Duration(|s| &mut s.nvme.flush_backoff.max_delay),
    ),
    (
        "nvme_delete_timeout",
        "NVMe-oF: deadline of a controller delete or rescan",
        Field::Duration(|s| &mut s.nvme.delete_timeout),
    ),
    (
        "nvme_removal_deadline",
        "NVMe-oF: how long to wait for the kernel to drop controllers",
        Field::Duration(|s| &mut s.nvme.removal_deadline),
    ),
    (
        "nvme_resize_deadline",
        "NVMe-oF: how long an extend waits for the new size",
        Field::Duration(|s| &mut s.nvme.resize_deadline),
    ),
    (
        "lock_dir",
        "where brick keeps its lock files (a tmpfs)",
        Field::Dir(|s| &mut s.lock_dir),
    ),
    (
        "lock_timeout",
        "how long to wait for a lock another process holds",
        Field::Duration(|s| &mut s.lock_timeout),
    ),
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tuning: Tuning::default(),
            nvme: crate::nvmeof::NvmeTuning::default(),
            lock_dir: PathBuf::from("/run/brick"),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            file: None,
            sources: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// The defaults, then the file `path` (which must exist), or [`DEFAULT_PATH`] when it
    /// exists, then each `KEY=VALUE` of `overrides`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the file and key, or the override, when a key is unknown
    /// or a value does not fit it; [`Error::Io`] when a named file cannot be read.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Settings> {
        let mut s = Settings::default();
        let file = match path {
            Some(p) => Some((p.to_path_buf(), read(p)?)),
            None => {
                let p = Path::new(DEFAULT_PATH);
                match read(p) {
                    Ok(text) => Some((p.to_path_buf(), text)),
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if let Some((p, text)) = file {
            s.merge_toml(&p, &text)?;
            s.file = Some(p);
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| Error::invalid("--set", format!("{o:?} is not KEY=VALUE")))?;
            s.set(k.trim(), v.trim(), Source::Override)
                .map_err(|why| Error::invalid(format!("--set {}", k.trim()), why))?;
        }
        Ok(s)
    }

    /// The file the settings were read from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// `host` with these settings' lock folder and lock timeout.
    pub fn apply(&self, host: Host) -> Host {
        host.run_dir(&self.lock_dir).lock_timeout(self.lock_timeout)
    }

    /// Every setting, in a fixed order, with its value and where it came from.
    pub fn entries(&self) -> Vec<Entry> {
        let mut copy = self.clone();
        KEYS.iter()
            .map(|(key, help, field)| Entry {
                key,
                value: match field {
                    Field::Duration(f) => humantime::format_duration(*f(&mut copy)).to_string(),
                    Field::Count(f) => f(&mut copy).to_string(),
                    Field::SecondsOrOff(f) => match *f(&mut copy) {
                        Some(d) => humantime::format_duration(d).to_string(),
                        None => "off".into(),
                    },
                    Field::Dir(f) => f(&mut copy).display().to_string(),
                },
                source: self.sources.get(key).copied().unwrap_or(Source::Default),
                help,
            })
            .collect()
    }

    fn merge_toml(&mut self, path: &Path, text: &str) -> Result<()> {
        let field = |key: &str| format!("{} {key}", path.display());
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::invalid(path.display().to_string(), e.message())
        })?;
        for (k, v) in &table {
            let value = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                other => {
                    return Err(Error::invalid(
                        field(k),
                        format!("expected a number or a text, found {}", other.type_str()),
                    ))
                }
            };
            self.set(k, &value, Source::File)
                .map_err(|why| Error::invalid(field(k), why))?;
        }
        Ok(())
    }

    /// Sets `key` from its text form. `Err` says why the key or value is refused.
    fn set(
        &mut self,
        key: &str,
        value: &str,
        source: Source,
    ) -> std::result::Result<(), BadSetting> {
        let Some((key, _, field)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
            return Err(BadSetting::UnknownKey(key.to_string()));
        };
        match field {
            Field::Duration(f) => *f(self) = duration(value)?,
            Field::Count(f) => *f(self) = count(value)?,
            Field::SecondsOrOff(f) => *f(self) = seconds_or_off(value)?,
            Field::Dir(f) => {
                let p = PathBuf::from(value);
                if !p.is_absolute() {
                    return Err(BadSetting::NotAbsolute(value.to_string()));
                }
                *f(self) = p;
            }
        }
        self.sources.insert(key, source);
        Ok(())
    }
}

/// Reads the settings file `p`, at most [`FILE_MAX`] bytes, refusing one that a user other
/// than root (or the user brick runs as) owns or that its group or others may write: it sets
/// where brick keeps its locks and how long it waits, for a process that runs as root.
fn read(p: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
    // The file opened, not its name: what is checked is what is read.
    let meta = f.metadata().map_err(|e| Error::io(p, e))?;
    let euid = nix::unistd::Uid::effective().as_raw();
    let mode = meta.mode() & 0o7777;
    let why = if meta.uid() != 0 && meta.uid() != euid {
        Some(format!("is owned by uid {}, not root", meta.uid()))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "is writable by its group or other users (mode {mode:04o})"
        ))
    } else {
        None
    };
    if let Some(why) = why {
        return Err(Error::Prerequisite {
            what: format!(
                "{}: the settings file {why}; brick, running as root, does not take settings \
                 another user could have written. Make it root's and not writable by others \
                 (`chown root:root FILE; chmod 0644 FILE`)",
                p.display()
            ),
        });
    }
    crate::host::read_to_limit(&mut f, FILE_MAX).map_err(|e| Error::io(p, e))
}

/// A duration: seconds (`30`, `0.5`) or humantime text (`30s`, `1m 30s`, `500ms`), above zero
/// and at most a day.
fn duration(v: &str) -> std::result::Result<Duration, BadSetting> {
    let d = match v.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= MAX_DURATION.as_secs_f64() => {
            Duration::from_secs_f64(secs)
        }
        Ok(_) => return Err(BadSetting::DurationOutOfRange(v.to_string())),
        Err(_) => humantime::parse_duration(v).map_err(|why| BadSetting::NotADuration {
            value: v.to_string(),
            why,
        })?,
    };
    if d.is_zero() || d > MAX_DURATION {
        return Err(BadSetting::DurationOutOfRange(v.to_string()));
    }
    Ok(d)
}

/// `off` (also `-1`, as nvme-cli writes it): no bound; else a duration of at least a second
/// (the kernel counts whole seconds: `0.5` would become 0, which gives up at the first loss).
///
/// # Errors
/// [`BadSetting`] saying what a value must be.
pub fn seconds_or_off(v: &str) -> std::result::Result<Option<Duration>, BadSetting> {
    if matches!(v.trim(), "off" | "-1") {
        return Ok(None);
    }
    let d = duration(v)?;
    if d < Duration::from_secs(1) {
        return Err(BadSetting::BelowASecond(v.to_string()));
    }
    Ok(Some(d))
}

/// A count of attempts: 1 to 100.
fn count(v: &str) -> std::result::Result<u32, BadSetting> {
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(BadSetting::NotACount(v.to_string())),
    }
}

/// Why a setting's key or value is refused (the text names the value and says what it must
/// be; the caller adds which setting).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadSetting {
    /// No setting has this key.
    #[error("unknown setting {0:?} (`brick config` lists them all)")]
    UnknownKey(String),
    /// A number of seconds not above zero or over a day.
    #[error("{0:?}: a duration above 0 and at most a day")]
    DurationOutOfRange(String),
    /// Neither seconds nor humantime text.
    #[error("{value:?} is not a duration (`30s`, `1m 30s`, or seconds): {why}")]
    NotADuration {
        /// The text given.
        value: String,
        /// What humantime made of it.
        why: humantime::DurationError,
    },
    /// A kernel timeout under a second, which the kernel would make 0.
    #[error("{0:?}: at least 1s (the kernel counts whole seconds), or \"off\" for no bound")]
    BelowASecond(String),
    /// Not a count of attempts.
    #[error("{0:?} is not a whole number from 1 to {MAX_COUNT}")]
    NotACount(String),
    /// A folder given relative to wherever brick happens to run.
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("brick.toml");
        std::fs::write(&p, text).unwrap();
        set_mode(&p, 0o644);
        (dir, p)
    }

    fn set_mode(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// What a refused settings file's error says.
    fn refused(p: &Path) -> String {
        match Settings::load(Some(p), &[]) {
            Err(e @ Error::Prerequisite { .. }) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn settings_file_others_can_write_is_refused() {
        for mode in [0o664, 0o646, 0o666] {
            let (_d, p) = file("lock_dir = \"/tmp/x\"\n");
            set_mode(&p, mode);
            let text = refused(&p);
            assert!(text.contains(&p.display().to_string()), "{text}");
            assert!(text.contains(&format!("mode {mode:04o}")), "{text}");
            assert!(text.contains("chmod"), "says what to do: {text}");
        }
        let (_d, p) = file("lock_dir = \"/tmp/x\"\n");
        set_mode(&p, 0o600);
        assert_eq!(
            Settings::load(Some(&p), &[]).unwrap().lock_dir,
            Path::new("/tmp/x")
        );
    }

    #[test]
    fn settings_file_of_another_user_is_refused() {
        // Needs root (chown), as `make test` runs it.
        let (_d, p) = file("lock_dir = \"/tmp/x\"\n");
        std::os::unix::fs::chown(&p, Some(54321), None)
            .expect("this test needs root: it gives the settings file to another user");
        assert!(refused(&p).contains("owned by uid 54321"));
    }

    #[test]
    fn settings_file_past_a_mebibyte_is_refused() {
        let big = format!("# {}\n", "x".repeat(FILE_MAX as usize));
        let (_d, p) = file(&big);
        let e = Settings::load(Some(&p), &[]).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert!(e.to_string().contains("larger than 1048576 bytes"), "{e}");
        let (_d, p) = file(&big[..FILE_MAX as usize - 1]);
        assert!(Settings::load(Some(&p), &[]).is_ok());
    }

    #[test]
    fn file_then_overrides_each_value_with_its_source() {
        let (_d, p) = file("command_timeout = 45\nmap_deadline = \"1m 30s\"\npath_flush_tries = 6\nlock_dir = \"/run/brick-test\"\nnvme_ctrl_loss_tmo = \"2m\"\n");
        let s = Settings::load(
            Some(&p),
            &[
                "map_deadline=2s".into(),
                "scan_timeout = 0.5".into(),
                "multipathd_query_timeout=12s".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.tuning.multipathd_query_timeout, Duration::from_secs(12));
        assert_eq!(s.tuning.command_timeout, Duration::from_secs(45));
        assert_eq!(s.tuning.map_deadline, Duration::from_secs(2));
        assert_eq!(s.tuning.scan_timeout, Duration::from_millis(500));
        assert_eq!(s.tuning.path_flush_backoff.tries, 6);
        assert_eq!(s.lock_dir, Path::new("/run/brick-test"));
        assert_eq!(s.nvme.ctrl_loss_tmo, Some(Duration::from_secs(120)));
        assert_eq!(s.file(), Some(p.as_path()));
        let by_key: BTreeMap<_, _> = s.entries().into_iter().map(|e| (e.key, e)).collect();
        assert_eq!(by_key.len(), KEYS.len());
        assert_eq!(by_key["command_timeout"].value, "45s");
        assert_eq!(by_key["command_timeout"].source, Source::File);
        assert_eq!(by_key["map_deadline"].source, Source::Override);
        assert_eq!(by_key["map_deadline"].value, "2s");
        assert_eq!(by_key["delete_timeout"].source, Source::Default);
        assert_eq!(by_key["lock_timeout"].value, "2m");
    }

    #[test]
    fn nvme_controllers_reconnect_for_ever_by_default_and_a_bound_is_at_least_a_second() {
        let (_d, p) = file("");
        let s = Settings::load(Some(&p), &[]).unwrap();
        assert_eq!(s.nvme.ctrl_loss_tmo, None);
        let e = s.entries();
        let tmo = e.iter().find(|e| e.key == "nvme_ctrl_loss_tmo").unwrap();
        assert_eq!(tmo.value, "off");
        let s = Settings::load(Some(&p), &["nvme_ctrl_loss_tmo=1".into()]).unwrap();
        assert_eq!(s.nvme.ctrl_loss_tmo, Some(Duration::from_secs(1)));
        let s = Settings::load(Some(&p), &["nvme_ctrl_loss_tmo=off".into()]).unwrap();
        assert_eq!(s.nvme.ctrl_loss_tmo, None);
        let e = Settings::load(Some(&p), &["nvme_ctrl_loss_tmo=0.5".into()]).unwrap_err();
        assert_eq!(field_of(e), "--set nvme_ctrl_loss_tmo");
        // What `brick config` prints reads back as the same settings.
        let (_d2, p2) = file("nvme_ctrl_loss_tmo = \"off\"\n");
        assert_eq!(
            Settings::load(Some(&p2), &[]).unwrap().nvme.ctrl_loss_tmo,
            None
        );
    }

    #[test]
    fn no_file_no_overrides_gives_the_defaults() {
        let (_d, p) = file("");
        let s = Settings::load(Some(&p), &[]).unwrap();
        assert_eq!(s.tuning, Tuning::default());
        assert_eq!(s.lock_timeout, DEFAULT_LOCK_TIMEOUT);
        assert!(s.entries().iter().all(|e| e.source == Source::Default));
    }

    #[test]
    fn bad_keys_and_values_name_the_file_and_key() {
        for (text, key) in [
            ("comand_timeout = 3", "comand_timeout"),
            ("command_timeout = 0", "command_timeout"),
            ("command_timeout = -1", "command_timeout"),
            ("command_timeout = \"soon\"", "command_timeout"),
            ("command_timeout = 90000", "command_timeout"),
            ("path_flush_tries = 0", "path_flush_tries"),
            ("path_flush_tries = 1000", "path_flush_tries"),
            ("lock_dir = \"run/brick\"", "lock_dir"),
            ("lock_dir = [1]", "lock_dir"),
            ("nvme_ctrl_loss_tmo = 0.5", "nvme_ctrl_loss_tmo"),
            ("nvme_ctrl_loss_tmo = \"900ms\"", "nvme_ctrl_loss_tmo"),
            ("nvme_ctrl_loss_tmo = 0", "nvme_ctrl_loss_tmo"),
            ("nvme_ctrl_loss_tmo = \"never\"", "nvme_ctrl_loss_tmo"),
        ] {
            let (_d, p) = file(text);
            let f = field_of(Settings::load(Some(&p), &[]).unwrap_err());
            assert_eq!(f, format!("{} {key}", p.display()), "{text}");
        }
        let (_d, p) = file("not toml at all [");
        assert_eq!(
            field_of(Settings::load(Some(&p), &[]).unwrap_err()),
            p.display().to_string()
        );
        assert_eq!(
            field_of(Settings::load(Some(&p), &["x".into()]).unwrap_err()),
            p.display().to_string(),
            "the file is read first"
        );
        let (_d, p) = file("");
        assert_eq!(
            field_of(Settings::load(Some(&p), &["nope=1".into()]).unwrap_err()),
            "--set nope"
        );
        assert_eq!(
            field_of(Settings::load(Some(&p), &["nope".into()]).unwrap_err()),
            "--set"
        );
        // A named file that is not there is an error, not the defaults.
        let e = Settings::load(Some(Path::new("/nonexistent/brick.toml")), &[]).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
