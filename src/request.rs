//! One operation as a JSON request and its JSON answer: what the Python package calls in-process
//! (`brick._native.call`) and, through a root helper, as `brick request` (the request on
//! standard input, the answer on standard output), so both paths run the same code and give
//! the same errors.
//!
//! A request: `{"op": OP, "protocol": "iscsi", ...}` with OP one of `connect` (`props`,
//! `multipath`; iSCSI's `transport`, the open-iscsi interface; NVMe-oF's `ctrl_loss_tmo`,
//! `reconnect_delay`, `fast_io_fail_tmo`: see [`crate::ConnectOptions`]), `disconnect` (`props`, `device_info`, `force`, `ignore_errors`), `extend`
//! (`props`, `device_info`), `paths` (`props`, `device_info`), `properties` (`ip`),
//! `multipathd_running`, `check_valid_device` (`path` of a block device, `timeout` in seconds,
//! at most 300). The answer:
//! `{"ok": true, "result": ...}`, or `{"ok": false, "error": {"kind", "field", "message",
//! "paths", "report"}}` where `kind` is an [`ErrorKind`] or one of `protocol_not_supported`,
//! `volume_paths_not_found`; `paths` lists each path of a failed connect (portal, IQN or, for
//! NVMe-oF, NQN and transport, kind, message) and `report` is the report of a failed disconnect.
//!
//! Every request runs with brick's settings (for `brick request` and the Python package's
//! in-process calls, `/etc/brick/brick.toml`; `brick request` refuses `--config` and `--set`):
//! their deadlines, and their lock folder and lock timeout, so that the Python package's calls
//! and the command line exclude each other.
//!
//! Every volume's operation goes through the crate's seam ([`crate::connect_volume`] and the
//! other steps), once: `props` is parsed for the transport `protocol` names (`iscsi` or
//! `nvmeof`; without one, as `driver_volume_type` or the keys say), and an option of another
//! transport is refused naming it (`transport` for the iSCSI interface). A protocol brick does
//! not know is refused with `protocol_not_supported`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Settings;
use crate::host::Host;
use crate::{
    ConnectOptions, CtrlLossTmo, DeviceInfo, Error, ErrorKind, Protocol, VolumeProperties,
};

/// How long `check_valid_device` waits for its one-block read by default.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `check_valid_device` waits: a caller's larger value is refused, not a thread
/// left waiting for ever (and `Duration::from_secs_f64` panics on `1e30`).
const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the request `text` as `brick request` does: on `base` with the settings of the file
/// `file` (the default file `/etc/brick/brick.toml`, when it exists, for `None`) and no
/// overrides. The Python package's in-process calls come here, so a root Python caller and the
/// command line take their locks in the same folder and wait for them as long.
pub fn handle_with_settings_file(base: &Host, file: Option<&Path>, text: &str) -> String {
    match Settings::load(file, &[]) {
        Ok(settings) => handle(base, &settings, text),
        Err(e) => json!({ "ok": false, "error": error_value(&e) }).to_string(),
    }
}

/// Runs the request `text` on `host` with `settings` (their deadlines and retries, and their
/// lock folder and lock timeout, put on `host`) and gives the answer as JSON text. Never
/// fails: a bad request is an answer with an `invalid_input` error.
pub fn handle(host: &Host, settings: &Settings, text: &str) -> String {
    let host = settings.apply(host.clone());
    let answer = match serde_json::from_str::<Value>(text) {
        Ok(req) => match dispatch(&host, settings, &req) {
            Ok(result) => json!({ "ok": true, "result": result }),
            Err(e) => json!({ "ok": false, "error": e }),
        },
        Err(e) => json!({ "ok": false, "error": error_value(&Error::invalid("request", e)) }),
    };
    answer.to_string()
}

fn dispatch(host: &Host, settings: &Settings, req: &Value) -> Result<Value, Value> {
    let op = str_field(req, "op")?.unwrap_or_default();
    if let Some(answer) = host_op(host, &op, req) {
        return answer;
    }
    let props = volume_of(req)?;
    let info = device_info(req)?;
    volume_op(host, settings, &op, &props, info.as_ref(), req)
}

/// The operations that concern the host, not a volume: `None` for a volume's.
fn host_op(host: &Host, op: &str, req: &Value) -> Option<Result<Value, Value>> {
    Some(match op {
        "properties" => str_field(req, "ip").and_then(|ip| {
            crate::connector_properties(host, ip)
                .map_err(|e| error_value(&e))
                .and_then(|p| serde_json::to_value(p).map_err(|e| internal(&e)))
        }),
        "multipathd_running" => crate::connector::multipathd_running(host)
            .map(Value::Bool)
            .map_err(|e| error_value(&e)),
        "check_valid_device" => (|| {
            let path = str_field(req, "path")?
                .ok_or_else(|| error_value(&Error::invalid("path", "is missing")))?;
            let timeout = check_timeout(req)?;
            Ok(Value::Bool(check_valid_device(Path::new(&path), timeout)))
        })(),
        _ => return None,
    })
}

/// The volume of the request, parsed once: `props`, for the transport `protocol` names (else
/// the one its `driver_volume_type` or its keys say).
fn volume_of(req: &Value) -> Result<VolumeProperties, Value> {
    let protocol = match str_field(req, "protocol")? {
        None => None,
        Some(p) => Some(p.parse::<Protocol>().map_err(|_| {
            json!({
                "kind": "protocol_not_supported",
                "field": "protocol",
                "message": format!("protocol {p:?} is not supported by brick (iscsi and nvmeof are)"),
            })
        })?),
    };
    let props = req
        .get("props")
        .ok_or_else(|| error_value(&Error::invalid("connection_properties", "is missing")))?;
    VolumeProperties::from_value(props, protocol).map_err(|e| error_value(&e))
}

/// One operation on the volume `props`, through the seam.
fn volume_op(
    host: &Host,
    settings: &Settings,
    op: &str,
    props: &VolumeProperties,
    info: Option<&DeviceInfo>,
    req: &Value,
) -> Result<Value, Value> {
    let flag = |name: &str| req.get(name).and_then(Value::as_bool).unwrap_or(false);
    let answer = match op {
        "connect" => crate::connect_volume(host, props, &connect_options(req)?, settings).map(|c| {
            let mut v = json!(c.device_info);
            v["failed_paths"] = json!(c.failed_paths);
            v
        }),
        "disconnect" => {
            let opts = crate::DisconnectOptions {
                force: flag("force"),
                ignore_errors: flag("force") && flag("ignore_errors"),
            };
            crate::disconnect_volume(host, props, info, opts, settings)
                .map(|report| json!(report))
        }
        "paths" => crate::volume_paths(host, props, info).map(|p| json!(p)),
        "extend" => {
            // os-brick raises VolumePathsNotFound when the volume has no device here.
            let paths = crate::volume_paths(host, props, info).map_err(|e| error_value(&e))?;
            if paths.is_empty() {
                return Err(paths_not_found(&props.label()));
            }
            crate::extend_volume(host, props, info, settings).map(|b| json!(b))
        }
        other => Err(Error::invalid(
            "op",
            format!("{other:?} is not an operation (connect, disconnect, extend, paths, properties, multipathd_running, check_valid_device)"),
        )),
    };
    answer.map_err(|e| error_value(&request_field(e)))
}

/// The caller's choices for a connect: `multipath`; iSCSI's `transport` (os-brick's: the
/// open-iscsi interface; `default` is no choice); NVMe-oF's `ctrl_loss_tmo` (seconds, `-1` or
/// `"off"` for ever), `reconnect_delay` and `fast_io_fail_tmo` (seconds). The seam refuses
/// those of another transport than the volume's.
fn connect_options(req: &Value) -> Result<ConnectOptions, Value> {
    let ctrl_loss_tmo = match req.get("ctrl_loss_tmo") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            Some(
                text.parse::<CtrlLossTmo>()
                    .map_err(|why| error_value(&Error::invalid("ctrl_loss_tmo", why)))?,
            )
        }
    };
    Ok(ConnectOptions {
        multipath: req.get("multipath").and_then(Value::as_bool),
        iface: str_field(req, "transport")?.filter(|t| t != "default"),
        ctrl_loss_tmo,
        reconnect_delay: seconds_field(req, "reconnect_delay")?,
        fast_io_fail_tmo: seconds_field(req, "fast_io_fail_tmo")?,
    })
}

/// A seam's error naming an option by its field, named as the request spells it: the open-iscsi
/// interface is os-brick's `transport`.
fn request_field(e: Error) -> Error {
    match e {
        Error::InvalidInput { field, reason } if field == "iface" => Error::InvalidInput {
            field: "transport".to_string(),
            reason,
        },
        e => e,
    }
}

/// A whole number of seconds, when given.
fn seconds_field(req: &Value, name: &str) -> Result<Option<Duration>, Value> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|s| Some(Duration::from_secs(s)))
            .ok_or_else(|| error_value(&Error::invalid(name, "must be a whole number of seconds"))),
    }
}

/// os-brick's VolumePathsNotFound: an extend of a volume with no device on this host.
fn paths_not_found(volume: &str) -> Value {
    json!({
        "kind": "volume_paths_not_found",
        "field": null,
        "message": format!("{volume} has no device on this host (is it connected?)"),
    })
}

/// device_info from the request; without one, Nova's `device_path` in the properties (its
/// disconnect passes `device_info=None`) becomes device_info's path.
fn device_info(req: &Value) -> Result<Option<DeviceInfo>, Value> {
    match req.get("device_info") {
        Some(v) if !v.is_null() => DeviceInfo::from_json(&v.to_string())
            .map(Some)
            .map_err(|e| error_value(&e)),
        _ => {
            let path = req
                .get("props")
                .and_then(|p| p.get("data").unwrap_or(p).get("device_path"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            Ok(path.map(|p| DeviceInfo {
                kind: "block".to_string(),
                path: Some(p.to_string()),
                ..DeviceInfo::default()
            }))
        }
    }
}

/// Reads the first 512 bytes of the block device `path` (as os-brick's `dd count=1`), in a
/// thread, waiting at most `timeout`: false when it is not a block device, cannot be opened or
/// read, or does not answer in time (a read on a map that queues I/O with every path down
/// never returns; that thread is left behind).
///
/// The caller names the path and brick runs as root, so nothing else is opened: not a link
/// (`O_NOFOLLOW`), not a character device (opening `/dev/watchdog` arms the watchdog, which
/// then reboots the host), not a file. It is opened `O_NONBLOCK`, and must still be the block
/// device it was before the open.
pub fn check_valid_device(path: &Path, timeout: Duration) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let Ok(before) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !before.file_type().is_block_device() {
        return false;
    }
    let path = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("brick-check-device".into())
        .spawn(move || {
            let ok = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
                .and_then(|mut f| {
                    let now = f.metadata()?;
                    if !now.file_type().is_block_device() || now.rdev() != before.rdev() {
                        return Err(std::io::ErrorKind::InvalidInput.into());
                    }
                    let mut buf = [0u8; 512];
                    f.read(&mut buf)
                });
            let _ = tx.send(ok.is_ok());
        });
    if spawned.is_err() {
        return false;
    }
    rx.recv_timeout(timeout).unwrap_or(false)
}

/// `check_valid_device`'s `timeout` (seconds): [`CHECK_TIMEOUT`] when not given, else a
/// number above 0 and at most [`MAX_CHECK_TIMEOUT`].
fn check_timeout(req: &Value) -> Result<Duration, Value> {
    let Some(t) = req.get("timeout").filter(|t| !t.is_null()) else {
        return Ok(CHECK_TIMEOUT);
    };
    match t.as_f64() {
        Some(secs) if secs > 0.0 && secs <= MAX_CHECK_TIMEOUT.as_secs_f64() => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(error_value(&Error::invalid(
            "timeout",
            format!(
                "{t} is not a number of seconds above 0 and at most {}",
                MAX_CHECK_TIMEOUT.as_secs()
            ),
        ))),
    }
}

fn str_field(req: &Value, name: &str) -> Result<Option<String>, Value> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(error_value(&Error::invalid(name, "must be a string"))),
    }
}

fn internal(e: &impl std::fmt::Display) -> Value {
    json!({ "kind": ErrorKind::Failed, "field": null, "message": e.to_string() })
}

/// An error as the answer carries it.
pub fn error_value(e: &Error) -> Value {
    let (paths, report) = match e {
        Error::Disconnect { report, .. } => (None, serde_json::to_value(report).ok()),
        _ => (
            e.path_failures().and_then(|p| serde_json::to_value(p).ok()),
            None,
        ),
    };
    json!({
        "kind": e.kind(),
        "field": e.field(),
        "message": e.to_string(),
        "paths": paths,
        "report": report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default settings, with the locks in the fake host's run folder.
    fn settings_of(host: &Host) -> Settings {
        let mut s = Settings::default();
        s.lock_dir = host.run_dir_path().to_path_buf();
        s
    }

    fn answer(host: &Host, req: Value) -> Value {
        serde_json::from_str(&handle(host, &settings_of(host), &req.to_string())).unwrap()
    }

    #[test]
    fn bad_property_is_invalid_input_naming_the_field() {
        let f = crate::testing::FakeHost::new();
        let a = answer(
            &f.host(),
            json!({"op": "connect", "props": {"target_portal": "1.2.3.4:3260",
                   "target_iqn": "not an iqn", "target_lun": 1}}),
        );
        assert_eq!(a["ok"], false);
        assert_eq!(a["error"]["kind"], "invalid_input");
        assert_eq!(a["error"]["field"], "target_iqn");
    }

    #[test]
    fn unknown_protocol_is_refused_by_name() {
        let f = crate::testing::FakeHost::new();
        let a = answer(
            &f.host(),
            json!({"op": "connect", "protocol": "FIBRE_CHANNEL"}),
        );
        assert_eq!(a["error"]["kind"], "protocol_not_supported");
    }

    #[test]
    fn nvmeof_requests_reach_the_nvme_connector() {
        let f = crate::testing::FakeHost::new();
        let bad = answer(
            &f.host(),
            json!({"op": "connect", "protocol": "nvmeof", "props": {
                "target_nqn": "not an nqn", "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d",
                "portals": [["127.0.0.1", 4420, "tcp"]]}}),
        );
        assert_eq!(bad["error"]["kind"], "invalid_input", "{bad}");
        assert_eq!(bad["error"]["field"], "target_nqn", "{bad}");
        let a = answer(
            &f.host(),
            json!({"op": "extend", "protocol": "nvmeof", "props": {
                "target_nqn": "nqn.2014-08.org.lab:s1",
                "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d",
                "portals": [["127.0.0.1", 4420, "tcp"]]}}),
        );
        assert_eq!(a["error"]["kind"], "volume_paths_not_found", "{a}");
        let p = answer(
            &f.host(),
            json!({"op": "paths", "protocol": "nvmeof", "props": {
                "target_nqn": "nqn.2014-08.org.lab:s1",
                "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d",
                "portals": [["127.0.0.1", 4420, "tcp"]]}}),
        );
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(p["result"], json!([]));
    }

    #[test]
    fn request_that_is_not_json_is_invalid_input() {
        let f = crate::testing::FakeHost::new();
        let host = f.host();
        let a: Value = serde_json::from_str(&handle(&host, &settings_of(&host), "{nope")).unwrap();
        assert_eq!(a["error"]["kind"], "invalid_input");
        assert_eq!(a["error"]["field"], "request");
    }

    #[test]
    fn device_path_of_nova_stands_for_missing_device_info() {
        let req = json!({"props": {"device_path": "/dev/sdc"}, "device_info": null});
        let info = device_info(&req).unwrap().unwrap();
        assert_eq!(info.path.as_deref(), Some("/dev/sdc"));
        let req = json!({"props": {"device_path": "/dev/sdc"},
                         "device_info": {"type": "block", "path": "/dev/dm-1"}});
        assert_eq!(
            device_info(&req).unwrap().unwrap().path.as_deref(),
            Some("/dev/dm-1")
        );
    }

    /// A block device node in `dir` for a block device of this machine (a loop device when
    /// there is one): made with mknod, so the test needs root, as `make test` runs it.
    fn block_node(dir: &Path) -> std::path::PathBuf {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let mut devs: Vec<_> = std::fs::read_dir("/dev")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_block_device()))
            .collect();
        devs.sort_by_key(|e| !e.file_name().to_string_lossy().starts_with("loop"));
        let dev = devs
            .first()
            .expect("this test needs a block device in /dev");
        let rdev = dev.metadata().unwrap().rdev();
        let node = dir.join("disk");
        let c = std::ffi::CString::new(node.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; mknod has no other effect on this process.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, rdev) };
        assert_eq!(rc, 0, "this test needs root (mknod of a block device node)");
        node
    }

    #[test]
    fn check_valid_device_reads_a_block_device_and_refuses_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let node = block_node(dir.path());
        assert!(check_valid_device(&node, Duration::from_secs(5)));
        assert!(!check_valid_device(
            &dir.path().join("gone"),
            Duration::from_secs(5)
        ));
    }

    #[test]
    fn check_valid_device_opens_no_file_character_device_or_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, [7u8; 1024]).unwrap();
        assert!(!check_valid_device(&file, Duration::from_secs(5)), "file");
        // /dev/null stands for /dev/watchdog: a character device, which brick must not open.
        assert!(
            !check_valid_device(Path::new("/dev/null"), Duration::from_secs(5)),
            "character device"
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(block_node(dir.path()), &link).unwrap();
        assert!(!check_valid_device(&link, Duration::from_secs(5)), "link");
    }

    #[test]
    fn check_valid_device_timeout_out_of_bounds_is_invalid_input() {
        let f = crate::testing::FakeHost::new();
        for t in [json!(1e30), json!(0), json!(-1), json!(301), json!("10")] {
            let a = answer(
                &f.host(),
                json!({"op": "check_valid_device", "path": "/nonexistent", "timeout": t}),
            );
            assert_eq!(a["error"]["kind"], "invalid_input", "{t}: {a}");
            assert_eq!(a["error"]["field"], "timeout", "{t}: {a}");
        }
        let a = answer(
            &f.host(),
            json!({"op": "check_valid_device", "path": "/nonexistent", "timeout": 2.5}),
        );
        assert_eq!(a, json!({"ok": true, "result": false}));
    }

    #[test]
    fn python_path_and_command_line_take_the_same_lock_file() {
        let f = crate::testing::FakeHost::new();
        let locks = f.root().join("locks");
        let file = f.root().join("brick.toml");
        std::fs::write(
            &file,
            format!(
                "lock_dir = {:?}\nlock_timeout = \"300ms\"\n",
                locks.display()
            ),
        )
        .unwrap();
        // The command line's host, as `brick --config FILE` makes it, holds the lock of the
        // host's NVMe identity, which a connect takes first on a host that has none yet.
        let cli_host = Settings::load(Some(&file), &[]).unwrap().apply(f.host());
        let _held = cli_host.lock("nvme-host-identity").unwrap();
        // The Python package's in-process call, with the same settings file.
        let req = json!({"op": "connect", "protocol": "nvmeof", "props": {
            "target_nqn": "nqn.2014-08.org.lab:s1",
            "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d",
            "portals": [["127.0.0.1", 4420, "tcp"]]}});
        let a: Value = serde_json::from_str(&handle_with_settings_file(
            &f.host(),
            Some(&file),
            &req.to_string(),
        ))
        .unwrap();
        let message = a["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("still locked after 300ms"), "{a}");
        assert!(
            message.contains(&locks.join("nvme-host-identity.lock").display().to_string()),
            "{a}"
        );
    }

    #[test]
    fn extend_of_a_volume_not_here_is_volume_paths_not_found() {
        let f = crate::testing::FakeHost::new();
        let a = answer(
            &f.host(),
            json!({"op": "extend", "props": {"target_portal": "127.0.0.1:3260",
                   "target_iqn": "iqn.2003-01.org.x:t", "target_lun": 1}}),
        );
        assert_eq!(a["error"]["kind"], "volume_paths_not_found", "{a}");
    }
}
