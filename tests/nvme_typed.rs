//! NVMe-oF connects fail with typed reasons: each portal's failure is a `PathFailure` naming the
//! portal and the subsystem, as iSCSI's paths are, and reaches `brick request`'s answer (and so
//! Python) under "paths"; a namespace that does not show is a reason of its own; controller
//! states read as an enum that keeps a newer kernel's words.

use std::time::Duration;

use brick::config::Settings;
use brick::host::Host;
use brick::nvmeof::{
    self, ControllerState, ControllerTransport, NvmeProperties, NvmeTuning, Transport,
};
use brick::testing::FakeHost;
use brick::{Error, NvmeNotConnected, PathError, PathTarget};
use serde_json::{json, Value};

const NQN: &str = "nqn.2014-08.org.lab:sub1";
const U1: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";
const U2: &str = "2197a7c7-baf2-4a77-a0de-537c7ad1c8ca";
const P1: &str = "127.0.0.1:4420";
const P2: &str = "127.0.0.2:4420";

fn props_json(uuid: &str) -> Value {
    json!({"target_nqn": NQN, "vol_uuid": uuid,
           "portals": [["127.0.0.1", 4420, "tcp"], ["127.0.0.2", 4420, "tcp"]]})
}

fn props(uuid: &str) -> NvmeProperties {
    NvmeProperties::from_value(&props_json(uuid)).unwrap()
}

fn answer(host: &Host, req: Value) -> Value {
    let mut s = Settings::default();
    s.lock_dir = host.run_dir_path().to_path_buf();
    serde_json::from_str(&brick::request::handle(host, &s, &req.to_string())).unwrap()
}

#[test]
fn every_dead_portal_comes_back_in_the_answer_as_a_path_naming_portal_and_nqn() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)])
        .nvme_portal_dead(P1)
        .nvme_portal_dead(P2);
    let a = answer(
        &f.host(),
        json!({"op": "connect", "protocol": "nvmeof", "props": props_json(U1)}),
    );
    assert_eq!(a["ok"], false, "{a}");
    let paths = a["error"]["paths"].as_array().expect("paths in the answer");
    assert_eq!(paths.len(), 2, "{a}");
    for (p, want) in paths.iter().zip([P1, P2]) {
        assert_eq!(p["portal"], want, "{p}");
        assert_eq!(p["transport"], "tcp", "{p}");
        assert_eq!(p["nqn"], NQN, "{p}");
        assert_eq!(p["kind"], "connect", "{p}");
        assert!(p["message"].as_str().unwrap().contains("refused"), "{p}");
    }
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn a_dead_portal_of_a_connect_that_attached_is_a_typed_failed_path() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)])
        .nvme_portal_dead(P2);
    let c = nvmeof::connect_volume(&f.host(), &props(U1), &NvmeTuning::default()).unwrap();
    assert_eq!(c.controllers, ["nvme0"]);
    assert_eq!(c.failed_paths.len(), 1, "{:?}", c.failed_paths);
    let failed = &c.failed_paths[0];
    assert_eq!(failed.portal(), P2);
    assert!(matches!(&failed.target, PathTarget::Nvme { nqn, .. } if nqn.as_str() == NQN));
    assert!(
        matches!(failed.error, PathError::NvmeConnect(_)),
        "{failed}"
    );
}

#[test]
fn a_namespace_that_never_shows_is_its_own_reason_and_no_portal_failure() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let e = nvmeof::connect_volume(&f.host(), &props(U2), &NvmeTuning::default()).unwrap_err();
    match &e {
        Error::NvmeConnect {
            reason:
                NvmeNotConnected::NamespaceNotShown {
                    nqn,
                    identity,
                    controllers,
                    ..
                },
            ..
        } => {
            assert_eq!(nqn.as_str(), NQN);
            assert_eq!(identity, &format!("uuid {U2}"));
            assert_eq!(controllers, &["nvme0", "nvme1"]);
        }
        other => panic!("not NamespaceNotShown: {other:?}"),
    }
    assert!(e.path_failures().is_none());
    // No portal failed: the answer carries no paths, so Python raises VolumeDeviceNotFound.
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let a = answer(
        &f.host(),
        json!({"op": "connect", "protocol": "nvmeof", "props": props_json(U2)}),
    );
    assert_eq!(a["error"]["paths"], Value::Null, "{a}");
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn a_controller_that_stays_connecting_is_a_typed_not_live_path() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_connected(NQN, P1)
        .nvme_ctrl_state("nvme0", "connecting")
        .nvme_portal_dead(P1);
    let one = NvmeProperties::from_value(&json!({"target_nqn": NQN, "vol_uuid": U1,
        "portals": [["127.0.0.1", 4420, "tcp"]]}))
    .unwrap();
    let tuning = NvmeTuning {
        live_deadline: Duration::from_secs(3),
        ..NvmeTuning::default()
    };
    let e = nvmeof::connect_volume(&f.host(), &one, &tuning).unwrap_err();
    let paths = e.path_failures().expect("the portal's failure");
    assert_eq!(paths.len(), 1, "{e}");
    assert_eq!(
        paths[0].error,
        PathError::ControllerNotLive {
            controller: Some("nvme0".into()),
            waited: Duration::from_secs(3),
        }
    );
    // The controller the kernel reconnects was there before: it stays.
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
}

#[test]
fn controller_states_read_as_the_kernel_spells_them_and_keep_unknown_words() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)])
        .nvme_connected(NQN, P1)
        .nvme_connected(NQN, P2)
        .nvme_ctrl_state("nvme0", "deleting (no IO)")
        .nvme_ctrl_state("nvme1", "frozen");
    std::fs::write(f.root().join("sys/class/nvme/nvme1/transport"), "loop\n").unwrap();
    let subs = nvmeof::inspect(&f.host()).unwrap();
    let states: Vec<_> = subs[0]
        .controllers
        .iter()
        .map(|c| c.state.clone())
        .collect();
    assert_eq!(
        states,
        [
            Some(ControllerState::DeletingNoIo),
            Some(ControllerState::Other("frozen".into()))
        ]
    );
    let c = &subs[0].controllers;
    assert_eq!(
        c[0].transport,
        Some(ControllerTransport::Fabric(Transport::Tcp))
    );
    assert_eq!(
        c[1].transport,
        Some(ControllerTransport::Other("loop".into()))
    );
    let json = serde_json::to_value(&c[0]).unwrap();
    assert_eq!(json["state"], "deleting (no IO)");
    assert_eq!(json["transport"], "tcp");
    assert_eq!(serde_json::to_value(&c[1]).unwrap()["transport"], "loop");
    assert_eq!(ControllerState::Live.to_string(), "live");
}

#[test]
fn a_controller_being_deleted_without_io_is_not_waited_for_a_new_one_is_made() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_connected(NQN, P1)
        .nvme_ctrl_state("nvme0", "deleting (no IO)");
    let one = NvmeProperties::from_value(&json!({"target_nqn": NQN, "vol_uuid": U1,
        "portals": [["127.0.0.1", 4420, "tcp"]]}))
    .unwrap();
    let c = nvmeof::connect_volume(&f.host(), &one, &NvmeTuning::default()).unwrap();
    assert_eq!(c.controllers, ["nvme1"]);
    assert_eq!(f.nvme_connects().len(), 1, "{:?}", f.nvme_connects());
    let slept: Duration = f.clock().sleeps().iter().sum();
    assert!(
        slept < NvmeTuning::default().live_deadline,
        "waited {slept:?}"
    );
}
