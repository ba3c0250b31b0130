//! The transport seam on fake hosts: the crate's root steps (`brick::connect_volume` and the
//! rest) reach the transport the properties name, with the caller's options over the settings,
//! and refuse an option of another transport before anything is done, through the library and
//! through `brick::request` (the Python package's path) alike.

use std::time::Duration;

use brick::config::Settings;
use brick::testing::FakeHost;
use brick::{ConnectOptions, CtrlLossTmo, DisconnectOptions, Error, Protocol, VolumeProperties};
use serde_json::{json, Value};

const NQN: &str = "nqn.2014-08.org.lab:sub1";
const U1: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";
const N1: &str = "127.0.0.1:4420";
const N2: &str = "127.0.0.2:4420";
const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:tgt1";
const WWID1: &str = "naa.6001405deadbeef00010000000000000";
const WWN1: &str = "36001405deadbeef00010000000000000";
const P1: &str = "127.0.0.1:3260";

fn nvme_props() -> Value {
    json!({"target_nqn": NQN, "vol_uuid": U1,
           "portals": [["127.0.0.1", 4420, "tcp"], ["127.0.0.2", 4420, "tcp"]]})
}

fn iscsi_props() -> Value {
    json!({"target_portal": P1, "target_iqn": IQN, "target_lun": 1})
}

fn volume(v: &Value) -> VolumeProperties {
    VolumeProperties::from_value(v, None).unwrap()
}

/// The default settings, with the locks in the fake host's run folder.
fn settings_of(f: &FakeHost) -> Settings {
    let mut s = Settings::default();
    s.lock_dir = f.host().run_dir_path().to_path_buf();
    s
}

fn answer(f: &FakeHost, req: Value) -> Value {
    let text = brick::request::handle(&f.host(), &settings_of(f), &req.to_string());
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_step_of_an_nvme_volume_reaches_the_nvme_transport() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[N1, N2], &[(1, U1)]);
    let (host, s) = (f.host(), settings_of(&f));
    let v = volume(&nvme_props());
    assert_eq!(v.protocol(), Protocol::Nvmeof);
    let c = brick::connect_volume(&host, &v, &ConnectOptions::default(), &s).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/nvme0n1"));
    assert_eq!(c.paths, ["nvme0", "nvme1"]);
    assert!(c.failed_paths.is_empty());
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    let info = Some(&c.device_info);
    assert_eq!(
        brick::volume_paths(&host, &v, info).unwrap(),
        ["/dev/nvme0n1"]
    );
    assert_eq!(
        brick::extend_volume(&host, &v, info, &s).unwrap(),
        brick::types::Bytes(32 << 20)
    );
    let plan = brick::disconnect_plan(&host, &v, info).unwrap();
    assert!(plan.to_string().contains("nvme0"), "{plan}");
    let r = brick::disconnect_volume(&host, &v, info, DisconnectOptions::default(), &s).unwrap();
    assert!(r.clean(), "{r}");
    assert!(f.nvme_controllers().is_empty());
    assert!(f.calls().is_empty(), "no iSCSI command: {:?}", f.calls());
}

#[test]
fn every_step_of_an_iscsi_volume_reaches_the_iscsi_transport() {
    let f = FakeHost::new();
    f.target(P1, IQN, &[(1, WWID1)]);
    let (host, s) = (f.host(), settings_of(&f));
    let v = volume(&iscsi_props());
    assert_eq!(v.protocol(), Protocol::Iscsi);
    // One portal, no choice: one path, the bare disk.
    let c = brick::connect_volume(&host, &v, &ConnectOptions::default(), &s).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/sda"));
    assert_eq!(c.device_info.scsi_wwn.as_deref(), Some(WWN1));
    assert_eq!(c.paths, ["sda"]);
    let info = Some(&c.device_info);
    assert_eq!(brick::volume_paths(&host, &v, info).unwrap(), ["/dev/sda"]);
    let r = brick::disconnect_volume(&host, &v, info, DisconnectOptions::default(), &s).unwrap();
    assert!(r.clean(), "{r}");
    assert!(f.session_ids().is_empty());
    assert!(f.nvme_connects().is_empty());
}

#[test]
fn nvme_options_of_the_caller_go_over_the_settings() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[N1], &[(1, U1)]);
    let mut s = settings_of(&f);
    s.nvme.reconnect_delay = Duration::from_secs(7);
    let one = json!({"target_nqn": NQN, "vol_uuid": U1, "portals": [["127.0.0.1", 4420, "tcp"]]});
    let opts = ConnectOptions {
        ctrl_loss_tmo: Some(CtrlLossTmo::After(Duration::from_secs(30))),
        fast_io_fail_tmo: Some(Duration::from_secs(5)),
        ..ConnectOptions::default()
    };
    brick::connect_volume(&f.host(), &volume(&one), &opts, &s).unwrap();
    let connects = f.nvme_connects();
    assert_eq!(connects.len(), 1);
    // The setting where the caller chose nothing, the caller's choice where it did.
    assert!(
        connects[0].contains("ctrl_loss_tmo=30,reconnect_delay=7,fast_io_fail_tmo=5"),
        "{}",
        connects[0]
    );
}

#[test]
fn an_option_of_the_other_transport_is_refused_by_the_library_before_anything_is_done() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[N1, N2], &[(1, U1)])
        .target(P1, IQN, &[(1, WWID1)]);
    let s = settings_of(&f);
    let iser = ConnectOptions {
        iface: Some("iser".into()),
        ..ConnectOptions::default()
    };
    let e = brick::connect_volume(&f.host(), &volume(&nvme_props()), &iser, &s).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "iface"),
        "{e}"
    );
    let delay = ConnectOptions {
        reconnect_delay: Some(Duration::from_secs(2)),
        ..ConnectOptions::default()
    };
    let e = brick::connect_volume(&f.host(), &volume(&iscsi_props()), &delay, &s).unwrap_err();
    assert_eq!(e.field(), Some("reconnect_delay"), "{e}");
    assert!(f.nvme_connects().is_empty());
    assert!(f.calls().is_empty(), "{:?}", f.calls());
}

#[test]
fn an_option_of_the_other_transport_is_refused_through_a_request_naming_it() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[N1, N2], &[(1, U1)])
        .target(P1, IQN, &[(1, WWID1)]);
    let cases = [
        (
            json!({"protocol": "nvmeof", "props": nvme_props(), "transport": "iser"}),
            "transport",
        ),
        (
            json!({"protocol": "iscsi", "props": iscsi_props(), "ctrl_loss_tmo": 30}),
            "ctrl_loss_tmo",
        ),
        (
            json!({"protocol": "iscsi", "props": iscsi_props(), "reconnect_delay": 2}),
            "reconnect_delay",
        ),
        (
            json!({"protocol": "iscsi", "props": iscsi_props(), "fast_io_fail_tmo": 5}),
            "fast_io_fail_tmo",
        ),
    ];
    for (mut req, field) in cases {
        req["op"] = json!("connect");
        let a = answer(&f, req.clone());
        assert_eq!(a["ok"], false, "{req}: {a}");
        assert_eq!(a["error"]["kind"], "invalid_input", "{req}: {a}");
        assert_eq!(a["error"]["field"], field, "{req}: {a}");
        let message = a["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("volumes only"), "{a}");
    }
    assert!(f.nvme_connects().is_empty());
    assert!(f.calls().is_empty(), "{:?}", f.calls());
}

#[test]
fn the_python_nvme_connectors_request_is_not_refused() {
    // What python/brick/initiator/connectors/nvmeof.py sends, with os-brick's transport at its
    // default, and the options that are NVMe-oF's own.
    let f = FakeHost::new();
    f.nvme_target(NQN, &[N1, N2], &[(1, U1)]);
    let a = answer(
        &f,
        json!({"op": "connect", "protocol": "nvmeof", "props": nvme_props(),
               "transport": "default", "ctrl_loss_tmo": "off", "reconnect_delay": 3}),
    );
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["result"]["path"], "/dev/nvme0n1", "{a}");
    assert_eq!(a["result"]["failed_paths"], json!([]), "{a}");
    assert!(f.nvme_connects()[0].contains("ctrl_loss_tmo=-1,reconnect_delay=3"));
}

#[test]
fn a_bad_nvme_option_in_a_request_is_invalid_input_naming_it() {
    let f = FakeHost::new();
    for (key, value) in [
        ("ctrl_loss_tmo", json!(0)),
        ("ctrl_loss_tmo", json!("soon")),
        ("reconnect_delay", json!(-2)),
        ("fast_io_fail_tmo", json!("5")),
    ] {
        let mut req = json!({"op": "connect", "protocol": "nvmeof", "props": nvme_props()});
        req[key] = value.clone();
        let a = answer(&f, req);
        assert_eq!(a["error"]["kind"], "invalid_input", "{key} {value}: {a}");
        assert_eq!(a["error"]["field"], key, "{key} {value}: {a}");
    }
    assert!(f.nvme_connects().is_empty());
}
