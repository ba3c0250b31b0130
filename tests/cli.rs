//! The `brick` command on fake hosts: argument handling, input validation, output shapes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use brick::testing::FakeHost;

const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:tgt1";
const WWID1: &str = "naa.6001405deadbeef00010000000000000";

/// Runs `brick` with the fake host's roots and a PATH whose `iscsiadm` only records that it ran
/// (and fails): none of these commands may start it. `inspect` reads the sessions from sysfs.
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
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_brick"));
    cmd.args(args)
        .env("PATH", path)
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
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN)
        .session(2, "127.0.0.2:3260", IQN);
    f.disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .map("dm-0", &["sda", "sdb"]);
    let out = brick(&f, &["inspect"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
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
