//! The `brick` command with NVMe-oF properties, on fake hosts: the protocol is picked by
//! `driver_volume_type`, the keys or `--protocol`; bad input is refused naming the field before
//! anything is done; `inspect --protocol nvmeof` shows what sysfs shows.

use std::process::{Command, Output, Stdio};

use brick::testing::FakeHost;

const NQN: &str = "nqn.2014-08.org.lab:sub1";
const U1: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";

fn brick(fake: &FakeHost, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brick"))
        .args(args)
        .env("BRICK_PROGRAMS", fake.root().join("nobin"))
        .env("BRICK_SYSFS", fake.root().join("sys"))
        .env("BRICK_DEV", fake.root().join("dev"))
        .env("BRICK_ISCSI_CONF", fake.root().join("etc/iscsi"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap()
}

#[test]
fn bad_nvme_input_is_refused_naming_the_field_before_anything_is_done() {
    let f = FakeHost::new();
    let cases = [
        (
            format!(
                r#"{{"target_nqn": "{NQN},hostnqn=x", "vol_uuid": "{U1}", "portals": [["127.0.0.1", 4420, "tcp"]]}}"#
            ),
            "target_nqn",
        ),
        (
            format!(
                r#"{{"driver_volume_type": "nvmeof", "data": {{"target_nqn": "{NQN}", "vol_uuid": "{U1}", "portals": [["127.0.0.1", 70000, "tcp"]]}}}}"#
            ),
            "portals[0][1]",
        ),
        (
            format!(
                r#"{{"nqn": "{NQN}", "target_portal": "127.0.0.1", "target_port": 4420, "volume_nguid": "xyz"}}"#
            ),
            "volume_nguid",
        ),
    ];
    for action in ["connect", "disconnect", "extend", "paths"] {
        for (json, field) in &cases {
            let out = brick(&f, &[action, "-", "--json"], json);
            assert_eq!(out.status.code(), Some(2), "{action} {json}");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["error"]["field"], *field, "{action}: {v}");
        }
    }
    // --protocol nvmeof on iSCSI properties: they lack NVMe-oF's fields.
    let iscsi = r#"{"target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2003-01.org.x:t", "target_lun": 1}"#;
    let out = brick(
        &f,
        &["--protocol", "nvmeof", "connect", "-", "--json"],
        iscsi,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["field"], "target_nqn", "{v}");
    // A connection_info that says iscsi, with --protocol nvmeof: refused.
    let ci = format!(r#"{{"driver_volume_type": "iscsi", "data": {iscsi}}}"#);
    let out = brick(&f, &["--protocol", "nvmeof", "connect", "-", "--json"], &ci);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["field"], "driver_volume_type", "{v}");
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn inspect_shows_nvme_subsystems_controllers_and_ana_states() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &["127.0.0.1:4420", "127.0.0.2:4420"], &[(1, U1)])
        .nvme_connected(NQN, "127.0.0.1:4420")
        .nvme_connected(NQN, "127.0.0.2:4420");
    let out = brick(&f, &["inspect", "--protocol", "nvmeof"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("nvme-subsys0 {NQN}")), "{text}");
    assert!(
        text.contains(
            "controller nvme1 tcp traddr=127.0.0.2,trsvcid=4420,src_addr=127.0.0.2 [live]"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("/dev/nvme0n1 nsid 1 uuid.{U1} 32 MiB")),
        "{text}"
    );
    assert!(text.contains("nvme0c1n1 via nvme1 ana optimized"), "{text}");
    // Without --protocol, the text shows both protocols.
    let out = brick(&f, &["inspect"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nvme-subsys0") && text.contains("no iSCSI sessions"),
        "{text}"
    );
    let out = brick(&f, &["inspect", "--protocol", "nvmeof", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[0]["controllers"][0]["namespaces"][0]["ana_state"],
        "optimized"
    );
    assert_eq!(v[0]["heads"][0]["uuid"], U1);
}

#[test]
fn a_flag_of_the_other_transport_is_refused_naming_it_before_anything_is_done() {
    let f = FakeHost::new();
    let nvme = format!(
        r#"{{"target_nqn": "{NQN}", "vol_uuid": "{U1}", "portals": [["127.0.0.1", 4420, "tcp"]]}}"#
    );
    let iscsi = r#"{"target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2003-01.org.linux-iscsi.lab:t1", "target_lun": 1}"#;
    let cases: [(&str, &[&str], &str); 4] = [
        (&nvme, &["--iface", "iser"], "--iface"),
        (iscsi, &["--ctrl-loss-tmo", "off"], "--ctrl-loss-tmo"),
        (iscsi, &["--reconnect-delay", "2"], "--reconnect-delay"),
        (iscsi, &["--fast-io-fail-tmo", "5"], "--fast-io-fail-tmo"),
    ];
    for (json, flags, field) in cases {
        let mut args = vec!["connect", "-", "--json"];
        args.extend_from_slice(flags);
        let out = brick(&f, &args, json);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["field"], field, "{args:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("volumes only"),
            "{v}"
        );
    }
}
