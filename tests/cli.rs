//! The `brick` command on fake hosts: argument handling, input validation, output shapes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use brick::testing::FakeHost;

const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:tgt1";
const WWID1: &str = "naa.6001405deadbeef00010000000000000";

/// Runs `brick` with the fake host's roots and programs (BRICK_PROGRAMS, honoured by test builds
/// only), whose `iscsiadm` only records that it ran (and fails): none of these commands may
/// start it. `inspect` reads the sessions from sysfs.
fn brick(fake: &FakeHost, args: &[&str], stdin: Option<&str>) -> Output {
    let bin = fake.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("iscsiadm");
    let log = fake.root().join("iscsiadm.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\necho 'fake iscsiadm: not expected to run' >&2\nexit 1\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_brick"));
    cmd.args(args)
        .env("BRICK_PROGRAMS", &bin)
        .env("BRICK_SYSFS", fake.root().join("sys"))
        .env("BRICK_DEV", fake.root().join("dev"))
        .env("BRICK_ISCSI_CONF", fake.root().join("etc/iscsi"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        // brick may exit before reading (a usage error): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// What brick printed, once it is sure it exited 0.
fn stdout_of_success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ran_iscsiadm(fake: &FakeHost) -> bool {
    Path::new(&fake.root().join("iscsiadm.log")).exists()
}

#[test]
fn help_lists_every_action() {
    let f = FakeHost::new();
    let out = brick(&f, &["--help"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    for action in [
        "connect",
        "disconnect",
        "inspect",
        "extend",
        "paths",
        "properties",
    ] {
        assert!(
            text.contains(action),
            "{action} missing from --help:\n{text}"
        );
    }
}

#[test]
fn malformed_input_is_refused_before_anything_runs() {
    let f = FakeHost::new();
    let cases = [
        ("{not json", "JSON"),
        (
            r#"{"target_portal":"127.0.0.1:3260","target_iqn":"bad iqn","target_lun":1}"#,
            "target_iqn",
        ),
        (
            r#"{"target_portal":"300.0.0.1:3260","target_iqn":"iqn.2003-01.org.x:t","target_lun":1}"#,
            "target_portal",
        ),
        (
            r#"{"target_portal":"127.0.0.1:3260","target_iqn":"iqn.2003-01.org.x:t","target_lun":"x"}"#,
            "target_lun",
        ),
    ];
    for action in ["connect", "disconnect"] {
        for (json, field) in cases {
            let out = brick(&f, &[action, "-"], Some(json));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{action} {json}: {err}");
            assert!(
                err.contains(field),
                "{action}: error does not name {field}: {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
        }
    }
    assert!(!ran_iscsiadm(&f), "iscsiadm ran on bad input");
}

#[test]
fn missing_props_file_names_the_file() {
    let f = FakeHost::new();
    let out = brick(&f, &["disconnect", "/nonexistent/vol.json"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/vol.json"));
    assert!(!ran_iscsiadm(&f), "iscsiadm ran without props");
}

#[test]
fn inspect_shows_sessions_disks_and_maps() {
    let (f, _) = two_path_host();
    let text = stdout_of_success(&brick(&f, &["inspect"], None));
    assert!(text.contains("session 1 tcp 127.0.0.1:3260,1"), "{text}");
    assert!(
        text.contains("6:0:0:1 /dev/sda [running] wwn 36001405deadbeef00010000000000000"),
        "{text}"
    );
    assert!(text.contains("-> dm-0"), "{text}");
    let out = brick(&f, &["inspect", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[1]["disks"][0]["name"], "sdb");
    assert_eq!(v[1]["disks"][0]["map"]["dev"], "dm-0");
    assert_eq!(v[0]["scsi_host"], 6);
    assert!(!ran_iscsiadm(&f), "inspect ran iscsiadm: it reads sysfs");
}

#[test]
fn inspect_with_no_session_says_so() {
    let f = FakeHost::new();
    let out = brick(&f, &["inspect"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no iSCSI sessions"
    );
    assert!(!ran_iscsiadm(&f), "inspect ran iscsiadm: it reads sysfs");
}

#[test]
fn ignore_errors_requires_force() {
    let f = FakeHost::new();
    let out = brick(&f, &["disconnect", "-", "--ignore-errors"], Some("{}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(!ran_iscsiadm(&f), "iscsiadm ran on a refused option");
}

#[test]
fn programs_are_not_looked_up_in_path() {
    // The caller's PATH offers an iscsiadm; brick runs programs from its own folders only (here
    // the fake host's, which has none), so the logout of the volume's session runs nothing.
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN);
    let evil = f.root().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let log = f.root().join("evil.log");
    let script = evil.join("iscsiadm");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(f.root().join("nobin")).unwrap();
    let props =
        format!(r#"{{"target_portal":"127.0.0.1:3260","target_iqn":"{IQN}","target_lun":1}}"#);
    let out = Command::new(env!("CARGO_BIN_EXE_brick"))
        .args(["disconnect", "-"])
        .env("PATH", format!("{}:/usr/bin:/bin", evil.display()))
        .env("BRICK_PROGRAMS", f.root().join("nobin"))
        .env("BRICK_SYSFS", f.root().join("sys"))
        .env("BRICK_DEV", f.root().join("dev"))
        .env("BRICK_ISCSI_CONF", f.root().join("etc/iscsi"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let _ = c.stdin.take().unwrap().write_all(props.as_bytes());
            c.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!log.exists(), "the iscsiadm found in PATH ran: {err}");
    assert!(err.contains("iscsiadm is not installed in"), "{err}");
}

/// The write end of a pipe whose read end is closed already: every write to it fails (EPIPE,
/// and SIGPIPE unless ignored).
fn closed_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    Stdio::from(write)
}

#[test]
fn a_closed_standard_error_does_not_kill_brick() {
    // The caller closed brick's standard error (a log pipe whose reader died): brick must go on
    // logging into the void and end with its own exit status, not be killed by SIGPIPE (nor
    // panic in an eprintln!) at its first log line.
    let f = FakeHost::new();
    let props = f.root().join("vol.json");
    std::fs::write(
        &props,
        format!(r#"{{"target_portal":"127.0.0.1:3260","target_iqn":"{IQN}","target_lun":1}}"#),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_brick"))
        .args(["-v", "disconnect"])
        .arg(&props)
        .env("BRICK_SYSFS", f.root().join("sys"))
        .env("BRICK_DEV", f.root().join("dev"))
        .env("BRICK_ISCSI_CONF", f.root().join("etc/iscsi"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("volume "));
}

#[test]
fn a_closed_standard_output_ends_brick_quietly_with_141() {
    let f = FakeHost::new();
    let child = Command::new(env!("CARGO_BIN_EXE_brick"))
        .args(["inspect"])
        .env("BRICK_SYSFS", f.root().join("sys"))
        .env("BRICK_DEV", f.root().join("dev"))
        .env("BRICK_ISCSI_CONF", f.root().join("etc/iscsi"))
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Two paths of LUN 1 (WWID1) on two sessions, in map dm-0, and the volume's props.
fn two_path_host() -> (FakeHost, std::path::PathBuf) {
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN)
        .session(2, "127.0.0.2:3260", IQN);
    f.disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .map("dm-0", &["sda", "sdb"]);
    let props = f.root().join("vol.json");
    std::fs::write(
        &props,
        format!(
            r#"{{"target_portal":"127.0.0.1:3260","target_iqn":"{IQN}","target_lun":1,"volume_id":"v1",
                "target_portals":["127.0.0.1:3260","127.0.0.2:3260"],"target_iqns":["{IQN}","{IQN}"],
                "target_luns":[1,1]}}"#
        ),
    )
    .unwrap();
    (f, props)
}

#[test]
fn a_lun_given_to_another_volume_is_refused_with_exit_3_and_a_json_error() {
    let (f, props) = two_path_host();
    let info = f.root().join("di.json");
    std::fs::write(
        &info,
        r#"{"type":"block","scsi_wwn":"36001405deadbeef00090000000000000"}"#,
    )
    .unwrap();
    let args = [
        "disconnect",
        props.to_str().unwrap(),
        "--device-info",
        info.to_str().unwrap(),
    ];
    let out = brick(&f, &args, None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = brick(&f, &json_args, None);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "refused", "{v}");
    assert_eq!(v["error"]["exit_code"], 3);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("36001405deadbeef00090000000000000"));
    assert!(f.has_block("dm-0") && f.has_block("sda") && !ran_iscsiadm(&f));
}

#[test]
fn bad_input_with_json_names_the_field() {
    let f = FakeHost::new();
    let out = brick(
        &f,
        &["connect", "-", "--json"],
        Some(r#"{"target_portal":"127.0.0.1:3260","target_iqn":"iqn.bad","target_lun":1}"#),
    );
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "invalid_input", "{v}");
    assert_eq!(v["error"]["field"], "target_iqn", "{v}");
}

#[test]
fn multipath_connect_without_multipathd_is_a_missing_prerequisite_exit_5() {
    // This machine runs no multipathd (its kernel has no dm-multipath): nothing answers on its
    // socket, and the connect stops before any login.
    let (f, props) = two_path_host();
    let out = brick(&f, &["connect", props.to_str().unwrap(), "--json"], None);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "prerequisite", "{v}");
    assert!(!ran_iscsiadm(&f), "iscsiadm ran before the check");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let (f, props) = two_path_host();
    let text = stdout_of_success(&brick(
        &f,
        &["disconnect", props.to_str().unwrap(), "--dry-run"],
        None,
    ));
    assert!(text.contains("dry run, nothing was changed"), "{text}");
    assert!(text.contains("1. flush: /dev/dm-0"), "{text}");
    let out = brick(
        &f,
        &["disconnect", props.to_str().unwrap(), "--dry-run", "--json"],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["log_out"].as_array().unwrap().len(), 2, "{v}");
    assert!(f.has_block("dm-0") && f.has_block("sda") && f.has_block("sdb"));
    assert_eq!(f.session_ids(), [1, 2]);
    assert!(!ran_iscsiadm(&f));
}

#[test]
fn extend_json_gives_the_size() {
    // One path, no map: extend rescans the disk (a plain write on the fake tree) and reads its
    // size, 131072 sectors.
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN).disk(1, 1, "sda", WWID1);
    let props =
        format!(r#"{{"target_portal":"127.0.0.1:3260","target_iqn":"{IQN}","target_lun":1}}"#);
    let out = brick(&f, &["extend", "-", "--json"], Some(&props));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["size"], 131072 * 512, "{v}");
    let out = brick(&f, &["extend", "-"], Some(&props));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "67108864");
}

#[test]
fn config_shows_each_setting_and_its_source_and_the_settings_take_effect() {
    let (f, props) = two_path_host();
    let file = f.root().join("brick.toml");
    std::fs::write(&file, "map_deadline = \"40s\"\npath_flush_tries = 6\n").unwrap();
    let locks = f.root().join("locks");
    let set_locks = format!("lock_dir={}", locks.display());
    let args = [
        "--config",
        file.to_str().unwrap(),
        "--set",
        "map_deadline=50s",
        "--set",
        &set_locks,
    ];
    let mut config = args.to_vec();
    config.extend(["config", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&stdout_of_success(&brick(&f, &config, None))).unwrap();
    assert_eq!(v["file"], file.to_str().unwrap());
    let get = |key: &str| {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {v}"))
            .clone()
    };
    assert_eq!(
        (
            get("map_deadline")["value"].clone(),
            get("map_deadline")["source"].clone()
        ),
        ("50s".into(), "override".into())
    );
    assert_eq!(get("path_flush_tries")["source"], "file");
    assert_eq!(get("command_timeout")["source"], "default");
    // The text form is a settings file brick reads back to the same values.
    let mut text_args = args.to_vec();
    text_args.push("config");
    let text = stdout_of_success(&brick(&f, &text_args, None));
    let copy = f.root().join("copy.toml");
    std::fs::write(&copy, &text).unwrap();
    let again: serde_json::Value = serde_json::from_str(&stdout_of_success(&brick(
        &f,
        &["--config", copy.to_str().unwrap(), "config", "--json"],
        None,
    )))
    .unwrap();
    let values = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].clone())
            .collect()
    };
    assert_eq!(values(&again), values(&v));
    // The lock folder set is where a connect takes its target lock.
    let mut connect = args.to_vec();
    connect.extend(["connect", "--single-path", props.to_str().unwrap()]);
    // (The session to the first portal exists: the connect reuses it, under the lock.)
    stdout_of_success(&brick(&f, &connect, None));
    let n = std::fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0);
    assert!(n > 0, "no lock file in {}", locks.display());
}

#[test]
fn a_bad_setting_is_bad_input_naming_the_file_and_key() {
    let f = FakeHost::new();
    let file = f.root().join("brick.toml");
    std::fs::write(&file, "map_deadline = \"soon\"\n").unwrap();
    let out = brick(
        &f,
        &["--config", file.to_str().unwrap(), "inspect", "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["error"]["field"],
        format!("{} map_deadline", file.display()),
        "{v}"
    );
    let out = brick(&f, &["--set", "map_deadline=0", "inspect"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--set map_deadline"));
}

/// A fake host whose iscsiadm takes `secs` seconds for anything, and props of a target there
/// with no session yet.
fn slow_iscsiadm(secs: f32) -> (FakeHost, std::path::PathBuf, std::path::PathBuf) {
    let f = FakeHost::new();
    let bin = f.root().join("slowbin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("iscsiadm");
    std::fs::write(&script, format!("#!/bin/sh\nsleep {secs}\nexit 1\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let props = f.root().join("vol.json");
    // A portal nothing listens on: the in-process discovery fails at once, the login waits.
    std::fs::write(
        &props,
        format!(r#"{{"target_portal":"127.0.0.1:9","target_iqn":"{IQN}","target_lun":1}}"#),
    )
    .unwrap();
    (f, bin, props)
}

#[test]
fn a_long_wait_shows_on_a_terminal_and_nowhere_else() {
    let (f, bin, props) = slow_iscsiadm(2.5);
    let env = [
        ("BRICK_PROGRAMS", bin.clone()),
        ("BRICK_SYSFS", f.root().join("sys")),
        ("BRICK_DEV", f.root().join("dev")),
        ("BRICK_ISCSI_CONF", f.root().join("etc/iscsi")),
    ];
    let run = |tty: bool, extra: &[&str]| -> String {
        let bin = env!("CARGO_BIN_EXE_brick");
        let mut args = vec!["--set", "lock_dir=/tmp/brick-test-progress-locks"];
        args.extend_from_slice(extra);
        args.extend(["connect", "--single-path", props.to_str().unwrap()]);
        let mut cmd = if tty {
            // script(1) gives brick a terminal, and copies what brick wrote to it to our pipe.
            let line = std::iter::once(bin)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            let mut c = Command::new("script");
            c.args(["-qec", &line, "/dev/null"]);
            c
        } else {
            let mut c = Command::new(bin);
            c.args(&args);
            c
        };
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let seen = run(true, &[]);
    assert!(
        seen.contains("brick: waiting 1 s of 30 s for `iscsiadm"),
        "no progress line on the terminal: {seen:?}"
    );
    // The line is cleared before the error is printed.
    assert!(seen.contains("\r\x1b[2K"), "{seen:?}");
    let piped = run(false, &[]);
    assert!(
        !piped.contains("waiting"),
        "a progress line in a pipe: {piped:?}"
    );
    // JSON logs on a terminal: no progress line either, and one JSON object per log line.
    let json = run(true, &["--log-format", "json", "-v"]);
    assert!(!json.contains("brick: waiting"), "{json:?}");
    let lines: Vec<&str> = json.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "no JSON log line: {json:?}");
    for l in lines {
        serde_json::from_str::<serde_json::Value>(l.trim_end_matches('\r'))
            .unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}

#[test]
fn cleanup_lists_with_exit_0_and_an_apply_that_leaves_something_exits_4() {
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN);
    let locks = format!("lock_dir={}", f.root().join("locks").display());
    let out = brick(&f, &["--set", &locks, "cleanup", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout_of_success(&out)).unwrap();
    assert_eq!(v["found"][0]["kind"], "session", "{v}");
    assert!(!ran_iscsiadm(&f), "a listing ran iscsiadm");
    // This host's iscsiadm fails every logout: the session stays, and brick says so.
    let out = brick(&f, &["--set", &locks, "cleanup", "--apply", "--json"], None);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "incomplete", "{v}");
    assert_eq!(v["report"]["failed"][0][0]["kind"], "session", "{v}");
    assert_eq!(f.session_ids(), [1]);
}

#[test]
fn cleanup_names_what_it_leaves_alone_and_why_in_text_and_json() {
    const BOOT: &str = "iqn.2003-01.org.linux-iscsi.lab:osbrick";
    const REC: &str = "iqn.2003-01.org.linux-iscsi.lab:record";
    let f = FakeHost::new();
    // A volume whose portal is down: its session in recovery, its disk blocked.
    f.session(1, "127.0.0.1:3260", IQN)
        .disk(1, 1, "sda", WWID1)
        .session_in_recovery(1);
    // os-brick's record with no session (it sets node.startup automatic at connect), and a
    // manual login's record with no session (left over).
    f.node(BOOT, "127.0.0.6:3260");
    f.node(REC, "127.0.0.5:3260")
        .node_startup(REC, "127.0.0.5:3260", "manual");
    let locks = format!("lock_dir={}", f.root().join("locks").display());
    let out = brick(&f, &["--set", &locks, "cleanup", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout_of_success(&out)).unwrap();
    let found = v["found"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["iqn"], REC, "{v}");
    let alone = v["left_alone"].as_array().expect("left_alone listed");
    let why = |kind: &str, pointer: &str, value: &str| -> String {
        alone
            .iter()
            .find(|e| e[0]["kind"] == kind && e[0].pointer(pointer) == Some(&value.into()))
            .unwrap_or_else(|| panic!("{kind} {value} not named: {v}"))[1]
            .as_str()
            .unwrap()
            .to_string()
    };
    let record = why("node_record", "/iqn", BOOT);
    assert!(record.contains("node.startup is automatic"), "{record}");
    assert!(record.contains("os-brick"), "{record}");
    let disk = why("disk", "/disk/name", "sda");
    assert!(disk.contains("session 1 is in recovery"), "{disk}");
    let out = brick(&f, &["--set", &locks, "cleanup"], None);
    let text = stdout_of_success(&out);
    assert!(
        text.contains(&format!(
            "left alone: node record of {BOOT} at 127.0.0.6:3260 with no session: node.startup is automatic"
        )),
        "{text}"
    );
    assert!(text.contains("left alone: disk /dev/sda"), "{text}");
}

#[test]
fn request_takes_no_settings_from_its_caller() {
    // What a root helper's caller could try: move brick's locks to a folder it holds.
    let f = FakeHost::new();
    let locks = f.root().join("caller-locks");
    let file = f.root().join("caller.toml");
    std::fs::write(&file, format!("lock_dir = {:?}\n", locks.display())).unwrap();
    let set_locks = format!("lock_dir={}", locks.display());
    let request = r#"{"op": "multipathd_running"}"#;
    for (args, field) in [
        (vec!["--set", set_locks.as_str(), "request"], "--set"),
        (
            vec!["--config", file.to_str().unwrap(), "request"],
            "--config",
        ),
        (vec!["request", "--set", "lock_timeout=1s"], "--set"),
        (
            vec!["--json", "request", "--config", file.to_str().unwrap()],
            "--config",
        ),
    ] {
        let out = brick(&f, &args, Some(request));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(field), "{args:?}: {text}");
        assert!(!text.contains("\"ok\""), "{args:?} answered: {text}");
    }
    assert!(!locks.exists(), "brick made the caller's lock folder");
    // Without them it answers.
    let out = brick(&f, &["request"], Some(request));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\":true"));
}
