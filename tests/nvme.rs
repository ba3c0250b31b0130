//! The NVMe-oF connector through its public API (`brick::nvmeof`) on the fake host
//! (`brick::testing::FakeHost` and its `nvme_*` builders), laid out as the lab's kernel shows
//! NVMe/TCP in sysfs.

use std::time::Duration;

use brick::host::KernelError;
use brick::nvmeof::{
    connect_volume, disconnect_plan, disconnect_volume, extend_volume, inspect, paths_of,
    volume_paths, NvmeProperties, NvmeTuning,
};
use brick::report::{DisconnectOptions, Outcome, Thing};
use brick::testing::FakeHost;
use brick::{DeviceInfo, Error};

const NQN: &str = "nqn.2014-08.org.lab:sub1";
const U1: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";
const U2: &str = "2197a7c7-baf2-4a77-a0de-537c7ad1c8ca";
const P1: &str = "127.0.0.1:4420";
const P2: &str = "127.0.0.2:4420";

fn props(nqn: &str, uuid: &str, portals: &[&str]) -> NvmeProperties {
    let portals: Vec<serde_json::Value> = portals
        .iter()
        .map(|p| {
            let (a, port) = p.split_once(':').unwrap();
            serde_json::json!([a, port, "tcp"])
        })
        .collect();
    NvmeProperties::from_value(&serde_json::json!({
        "target_nqn": nqn, "vol_uuid": uuid, "portals": portals
    }))
    .unwrap()
}

fn info(path: &str) -> DeviceInfo {
    DeviceInfo {
        kind: "block".into(),
        path: Some(path.into()),
        ..Default::default()
    }
}

fn plain() -> DisconnectOptions {
    DisconnectOptions::default()
}

fn forced(ignore_errors: bool) -> DisconnectOptions {
    DisconnectOptions {
        force: true,
        ignore_errors,
    }
}

fn t() -> NvmeTuning {
    NvmeTuning::default()
}

#[test]
fn connect_makes_a_controller_per_portal_reconnecting_for_ever_and_returns_the_head() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let c = connect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), &t()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/nvme0n1"));
    assert_eq!(
        serde_json::to_value(&c.device_info).unwrap(),
        serde_json::json!({"type": "block", "path": "/dev/nvme0n1"})
    );
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    let connects = f.nvme_connects();
    assert_eq!(connects.len(), 2);
    for o in &connects {
        assert!(o.contains(&format!("nqn={NQN},transport=tcp,")), "{o}");
        assert!(o.contains(",ctrl_loss_tmo=-1,reconnect_delay=5"), "{o}");
        assert!(
            o.contains("hostnqn=nqn.2014-08.org.nvmexpress:uuid:f00dcafe-0000-4000-8000-000000000001,hostid=f00dcafe-0000-4000-8000-000000000001"),
            "{o}"
        );
    }
    assert!(c.failed_paths.is_empty());
}

#[test]
fn a_live_controller_is_reused_and_rescanned() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_connected(NQN, P1);
    let c = connect_volume(&f.host(), &props(NQN, U1, &[P1]), &t()).unwrap();
    assert_eq!(c.controllers, ["nvme0"]);
    assert!(f.nvme_connects().is_empty(), "{:?}", f.nvme_connects());
    assert!(f.events().contains(&"rescan controller nvme0".to_string()));
}

#[test]
fn single_path_when_native_multipath_is_off() {
    let f = FakeHost::new();
    f.nvme_multipath(false)
        .nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let c = connect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), &t()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/nvme0n1"));
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert_eq!(f.nvme_connects().len(), 1);
    // Disconnect: the same code path, the controller's own namespace device flushed.
    let r = disconnect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), None, plain(), &t()).unwrap();
    assert!(f.nvme_controllers().is_empty());
    assert_eq!(f.flushes(), ["nvme0n1"]);
    assert!(r.clean());
}

#[test]
fn single_path_tries_the_next_portal_when_one_is_dead() {
    let f = FakeHost::new();
    f.nvme_multipath(false)
        .nvme_target(NQN, &[P1, P2], &[(1, U1)])
        .nvme_portal_dead(P1);
    let c = connect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), &t()).unwrap();
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert_eq!(c.failed_paths.len(), 1);
    assert!(
        c.failed_paths[0].error.to_string().contains("refused"),
        "{:?}",
        c.failed_paths
    );
}

#[test]
fn single_path_asked_with_native_multipath_on_returns_the_head_over_one_controller() {
    // The kernel's native multipath is on (nvme_core multipath=Y): the one controller's
    // namespace is the hidden path nvme0c0n1 under it, and the block device is the subsystem's
    // head nvme0n1. Waiting for a block device under the controller timed out.
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let one = NvmeTuning {
        multipath: Some(false),
        ..t()
    };
    let p = props(NQN, U1, &[P1, P2]);
    let c = connect_volume(&f.host(), &p, &one).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/nvme0n1"));
    assert_eq!(c.controllers, ["nvme0"]);
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert_eq!(f.nvme_connects().len(), 1, "{:?}", f.nvme_connects());
    assert!(f.root().join("sys/class/nvme/nvme0/nvme0c0n1").exists());
    assert!(!f.root().join("sys/class/nvme/nvme0/nvme0n1").exists());
    // Found at once, not after the namespace deadline.
    let slept: Duration = f.clock().sleeps().iter().sum();
    assert!(slept < one.namespace_deadline, "slept {slept:?}");
    // A second connect reuses the controller and makes no other.
    let again = connect_volume(&f.host(), &p, &one).unwrap();
    assert_eq!(again.device_info.path.as_deref(), Some("/dev/nvme0n1"));
    assert_eq!(f.nvme_connects().len(), 1, "{:?}", f.nvme_connects());
    // Disconnect: the head flushed, the controller deleted, the head gone.
    let r = disconnect_volume(&f.host(), &p, Some(&c.device_info), plain(), &t()).unwrap();
    assert!(r.clean(), "{r:?}");
    assert_eq!(f.flushes(), ["nvme0n1"]);
    assert!(f.nvme_controllers().is_empty());
    assert!(!f.root().join("sys/block/nvme0n1").exists());
}

#[test]
fn multipath_attaches_on_the_live_portal_and_names_the_dead_one() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)])
        .nvme_portal_dead(P2);
    let c = connect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), &t()).unwrap();
    assert_eq!(c.controllers, ["nvme0"]);
    assert!(
        c.failed_paths[0]
            .to_string()
            .starts_with("tcp 127.0.0.2:4420"),
        "{:?}",
        c.failed_paths
    );
}

#[test]
fn a_missing_namespace_fails_in_bounded_time_and_deletes_only_what_connect_made() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)])
        .nvme_connected(NQN, P1);
    let e = connect_volume(&f.host(), &props(NQN, U2, &[P1, P2]), &t()).unwrap_err();
    assert!(matches!(e, Error::NvmeConnect { .. }), "{e}");
    assert!(e.to_string().contains(&format!("uuid {U2}")), "{e}");
    // nvme1 was made by this connect and deleted; nvme0 was there before and stays.
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert_eq!(f.nvme_deleted(), ["nvme1"]);
    let waited: Duration = f.clock().sleeps().iter().sum();
    assert!(
        waited >= t().namespace_deadline && waited < t().namespace_deadline * 2,
        "{waited:?}"
    );
}

#[test]
fn no_portal_answers_nothing_is_left() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)]);
    let e = connect_volume(
        &f.host(),
        &props("nqn.2014-08.org.lab:other", U1, &[P1]),
        &t(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("Input/output error"), "{e}");
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn a_reconnecting_controller_is_waited_for_with_a_deadline_and_kept() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_connected(NQN, P1)
        .nvme_ctrl_state("nvme0", "connecting");
    let e = connect_volume(&f.host(), &props(NQN, U1, &[P1]), &t()).unwrap_err();
    assert!(e.to_string().contains("not live after 20s"), "{e}");
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert!(
        f.nvme_connects().is_empty(),
        "no second controller to the same portal"
    );
}

#[test]
fn disconnect_flushes_the_head_then_deletes_every_controller() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    let r = disconnect_volume(&f.host(), &p, Some(&info("/dev/nvme0n1")), plain(), &t()).unwrap();
    assert_eq!(r.outcome, Outcome::Gone);
    assert!(f.nvme_controllers().is_empty());
    assert_eq!(f.flushes(), ["nvme0n1"]);
    let ev = f.events();
    let flush = ev.iter().position(|e| e == "flush nvme0n1").unwrap();
    let del = ev
        .iter()
        .position(|e| e.starts_with("delete controller"))
        .unwrap();
    assert!(flush < del, "{ev:?}");
    assert!(r
        .removed
        .iter()
        .any(|t| matches!(t, Thing::NvmeNamespace { dev, .. } if dev == "nvme0n1")));
    assert_eq!(
        r.removed
            .iter()
            .filter(|t| matches!(t, Thing::NvmeController { .. }))
            .count(),
        2
    );
    // Run again: nothing left, nothing done.
    let again = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap();
    assert!(again.removed.is_empty() && again.clean());
}

#[test]
fn flush_failure_without_force_deletes_nothing() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.fail_flush("nvme0n1", KernelError::TimedOut(Duration::from_secs(20)));
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Refused);
    assert_eq!(e.kind().exit_code(), 3);
    assert!(report.removed.is_empty());
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    assert!(f.nvme_deleted().is_empty());
}

#[test]
fn force_goes_on_after_a_failed_flush_and_reports_it() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.fail_flush("nvme0n1", KernelError::TimedOut(Duration::from_secs(20)));
    let e = disconnect_volume(&f.host(), &p, None, forced(false), &t()).unwrap_err();
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Unfinished);
    assert!(report.failures[0]
        .message
        .contains("cannot flush /dev/nvme0n1"));
    assert!(f.nvme_controllers().is_empty());
    // ignore_errors: the same, as success.
    connect_volume(&f.host(), &p, &t()).unwrap();
    let r = disconnect_volume(&f.host(), &p, None, forced(true), &t()).unwrap();
    assert_eq!(r.failures.len(), 1);
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn a_stuck_controller_delete_is_reported_as_left() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.nvme_stuck_delete("nvme1");
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Unfinished);
    assert!(report
        .failures
        .iter()
        .any(|x| x.message.contains("cannot delete controller nvme1")));
    assert!(report
        .left_behind
        .iter()
        .any(|t| t.to_string().starts_with("/dev/nvme0n1")));
    assert_eq!(f.nvme_controllers(), ["nvme1"]);
}

#[test]
fn shared_subsystem_other_namespace_in_use_no_controller_deleted() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1), (2, U2)]);
    let a = props(NQN, U1, &[P1, P2]);
    let b = props(NQN, U2, &[P1, P2]);
    let ca = connect_volume(&f.host(), &a, &t()).unwrap();
    let cb = connect_volume(&f.host(), &b, &t()).unwrap();
    assert_eq!(ca.device_info.path.as_deref(), Some("/dev/nvme0n1"));
    assert_eq!(cb.device_info.path.as_deref(), Some("/dev/nvme0n2"));
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    let r = disconnect_volume(&f.host(), &a, None, plain(), &t()).unwrap();
    assert!(r.clean(), "{r}");
    assert!(f.nvme_deleted().is_empty());
    assert_eq!(f.flushes(), ["nvme0n1"], "b's namespace is never flushed");
    assert!(
        r.kept.iter().any(|k| k.why.contains("nvme0c0n2 (nsid 2)")),
        "{r}"
    );
    assert!(f.root().join("sys/block/nvme0n2").exists());
    // While the target still exports a's namespace, b's disconnect keeps the controllers too:
    // a namespace on the host may be another attach's, whose caller has not opened it yet.
    let r = disconnect_volume(&f.host(), &b, None, plain(), &t()).unwrap();
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"], "{r}");
    // Once the target unmaps a's namespace, b's disconnect (run again) deletes them.
    f.nvme_unmap(NQN, 1);
    let r = disconnect_volume(&f.host(), &b, None, plain(), &t()).unwrap();
    assert!(r.clean() && f.nvme_controllers().is_empty(), "{r}");
}

#[test]
fn stale_device_info_naming_another_namespace_leaves_it_alone() {
    let f = FakeHost::new();
    let nqn_b = "nqn.2014-08.org.lab:sub2";
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_target(nqn_b, &[P1], &[(1, U2)]);
    let a = props(NQN, U1, &[P1]);
    let b = props(nqn_b, U2, &[P1]);
    connect_volume(&f.host(), &a, &t()).unwrap();
    let cb = connect_volume(&f.host(), &b, &t()).unwrap();
    let b_dev = cb.device_info.path.clone().unwrap();
    let r = disconnect_volume(&f.host(), &a, Some(&cb.device_info), plain(), &t()).unwrap();
    assert_eq!(r.left_alone.len(), 1, "{r}");
    assert!(b_dev.ends_with(r.left_alone[0].thing.dev().unwrap()));
    assert_eq!(f.flushes(), ["nvme0n1"]);
    assert_eq!(f.nvme_controllers(), ["nvme1"], "b's controller stays");
    assert!(f.root().join(format!("sys/block/{}", &b_dev[5..])).exists());
}

#[test]
fn without_an_identity_several_namespaces_are_not_guessed() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1), (2, U2)])
        .nvme_connected(NQN, P1);
    let p = NvmeProperties::from_value(&serde_json::json!({
        "nqn": NQN, "transport_type": "tcp", "target_portal": "127.0.0.1", "target_port": 4420
    }))
    .unwrap();
    let e = disconnect_volume(&f.host(), &p, None, forced(true), &t()).unwrap_err();
    assert!(matches!(e, Error::NotTheVolume { .. }), "{e}");
    assert!(f.flushes().is_empty() && f.nvme_deleted().is_empty());
    let e = connect_volume(&f.host(), &p, &t()).unwrap_err();
    assert_eq!(e.field(), Some("volume_nguid"), "{e}");
    // By nsid, the original format finds it.
    let p = NvmeProperties::from_value(&serde_json::json!({
        "nqn": NQN, "transport_type": "tcp", "target_portal": "127.0.0.1", "target_port": 4420,
        "ns_id": 2
    }))
    .unwrap();
    let c = connect_volume(&f.host(), &p, &t()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/nvme0n2"));
}

#[test]
fn extend_rescans_and_returns_the_new_size() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.nvme_resize(NQN, 1, 48 << 20);
    assert_eq!(extend_volume(&f.host(), &p, &t()).unwrap().0, 48 << 20);
    assert!(f.events().contains(&"rescan controller nvme1".to_string()));
    assert_eq!(volume_paths(&f.host(), &p).unwrap(), ["/dev/nvme0n1"]);
}

#[test]
fn inspect_shows_controllers_paths_and_ana_states() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    connect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), &t()).unwrap();
    let subs = inspect(&f.host()).unwrap();
    assert_eq!(subs.len(), 1);
    let s = &subs[0];
    assert_eq!(s.nqn.as_deref(), Some(NQN));
    // The two controllers are made in parallel: which portal gets nvme0 is not fixed.
    let mut addrs: Vec<_> = s.controllers.iter().map(|c| c.traddr()).collect();
    addrs.sort();
    assert_eq!(
        addrs,
        [
            Some("127.0.0.1".parse().unwrap()),
            Some("127.0.0.2".parse().unwrap())
        ]
    );
    assert_eq!(s.heads[0].uuid.unwrap().to_string(), U1);
    let paths = paths_of(s, &s.heads[0]);
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[0].1.ana_state.as_deref(), Some("optimized"));
}

#[test]
fn concurrent_connects_of_one_subsystem_share_its_controllers() {
    let f = FakeHost::new();
    let uuids: Vec<String> = (1..=8)
        .map(|i| format!("cbee5289-1b94-4aeb-baa3-56414b47eb{i:02x}"))
        .collect();
    let ns: Vec<(u32, &str)> = uuids
        .iter()
        .enumerate()
        .map(|(i, u)| (i as u32 + 1, u.as_str()))
        .collect();
    f.nvme_target(NQN, &[P1, P2], &ns);
    let host = f.host();
    std::thread::scope(|s| {
        for u in &uuids {
            let host = host.clone();
            s.spawn(move || connect_volume(&host, &props(NQN, u, &[P1, P2]), &t()).unwrap());
        }
    });
    assert_eq!(
        f.nvme_controllers(),
        ["nvme0", "nvme1"],
        "{:?}",
        f.nvme_connects()
    );
}

#[test]
fn dry_run_names_what_goes_and_what_stays_and_changes_nothing() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1), (2, U2)]);
    let a = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &a, &t()).unwrap();
    let plan = disconnect_plan(&f.host(), &a, None).unwrap();
    assert_eq!(plan.flush.len(), 1);
    assert!(plan.remove.is_empty(), "{plan}");
    assert_eq!(plan.keep.len(), 2, "{plan}");
    f.nvme_unmap(NQN, 2);
    f.nvme_ctrl_state("nvme0", "connecting")
        .nvme_ctrl_state("nvme1", "connecting");
    let plan = disconnect_plan(&f.host(), &a, None).unwrap();
    assert_eq!(plan.remove.len(), 2, "{plan}");
    assert!(
        plan.problems[0].contains("no controller of the volume is live"),
        "{plan}"
    );
    assert!(f.flushes().is_empty() && f.nvme_deleted().is_empty());
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
}

const NQN2: &str = "nqn.2014-08.org.lab:sub2";

fn replicated(count: usize) -> NvmeProperties {
    let reps: Vec<serde_json::Value> = [(NQN, U1, "127.0.0.1"), (NQN2, U2, "127.0.0.2")]
        .iter()
        .take(count)
        .map(|(n, u, a)| serde_json::json!({"target_nqn": n, "vol_uuid": u, "portals": [[a, 4420, "tcp"]]}))
        .collect();
    NvmeProperties::from_value(&serde_json::json!({
        "vol_uuid": "11111111-2222-4333-8444-555555555555", "alias": "vol-1",
        "volume_replicas": reps, "replica_count": count
    }))
    .unwrap()
}

fn two_replica_host() -> FakeHost {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_target(NQN2, &[P2], &[(1, U2)]);
    f
}

fn mdadm_calls(f: &FakeHost) -> Vec<String> {
    f.calls()
        .into_iter()
        .filter(|c| c[0] == "mdadm")
        .map(|c| c.join(" "))
        .collect()
}

#[test]
fn replicated_volume_is_a_raid1_created_over_every_replica_then_stopped_and_detached() {
    let f = two_replica_host();
    let p = replicated(2);
    let c = connect_volume(&f.host(), &p, &t()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/md127"));
    let calls = mdadm_calls(&f);
    let create = calls
        .iter()
        .find(|c| c.starts_with("mdadm --create"))
        .unwrap();
    assert!(
        create.contains("/dev/md/vol-1 --run --name vol-1 --level=1")
            && create.ends_with("--raid-devices=2 /dev/nvme0n1 /dev/nvme1n1"),
        "{create}"
    );
    let r = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap();
    assert!(r.clean(), "{r}");
    assert!(f.nvme_controllers().is_empty());
    assert!(!f.root().join("sys/block/md127").exists());
    let ev = f.events();
    let stop = ev.iter().position(|e| e == "stop md127").unwrap();
    let del = ev
        .iter()
        .position(|e| e.starts_with("delete controller"))
        .unwrap();
    assert!(stop < del, "{ev:?}");
    assert_eq!(f.flushes()[0], "md127");
}

#[test]
fn replicas_that_were_in_an_array_are_assembled_not_created() {
    let f = two_replica_host();
    f.nvme_md_member(U1, "vol-1").nvme_md_member(U2, "vol-1");
    let c = connect_volume(&f.host(), &replicated(2), &t()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/md127"));
    let calls = mdadm_calls(&f);
    assert!(
        calls
            .iter()
            .any(|c| c == "mdadm --assemble --run /dev/md/vol-1 /dev/nvme0n1 /dev/nvme1n1"),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.contains("--create")), "{calls:?}");
}

#[test]
fn a_missing_replica_assembles_degraded_but_never_creates_and_a_failure_leaves_nothing() {
    // Members: assembled with the replica that is there.
    let f = two_replica_host();
    f.nvme_md_member(U1, "vol-1")
        .nvme_md_member(U2, "vol-1")
        .nvme_portal_dead(P2);
    let c = connect_volume(&f.host(), &replicated(2), &t()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/md127"));
    // Fresh replicas: no array of one leg; every controller made is deleted.
    let f = two_replica_host();
    f.nvme_portal_dead(P2);
    let e = connect_volume(&f.host(), &replicated(2), &t()).unwrap_err();
    assert!(e.to_string().contains("only 1 of its 2 replicas"), "{e}");
    assert!(f.nvme_controllers().is_empty());
    assert!(!mdadm_calls(&f).iter().any(|c| c.contains("--create")));
}

#[test]
fn an_open_array_stops_a_plain_disconnect_with_every_replica_kept() {
    let f = two_replica_host();
    let p = replicated(2);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.md_open("md127");
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Refused, "{e}");
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    assert!(f.root().join("sys/block/md127").exists());
}

#[test]
fn one_replica_never_in_an_array_is_the_namespace_itself() {
    let f = two_replica_host();
    let c = connect_volume(&f.host(), &replicated(1), &t()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/nvme0n1"));
    assert!(!mdadm_calls(&f)
        .iter()
        .any(|c| c.contains("--create") || c.contains("--assemble")));
    let r = disconnect_volume(&f.host(), &replicated(1), None, plain(), &t()).unwrap();
    assert!(r.clean() && f.nvme_controllers().is_empty(), "{r}");
}

#[test]
fn a_replicated_volume_is_extended_replica_by_replica_then_its_array_grown() {
    let f = two_replica_host();
    let p = replicated(2);
    connect_volume(&f.host(), &p, &t()).unwrap();
    assert_eq!(volume_paths(&f.host(), &p).unwrap(), ["/dev/md127"]);
    f.nvme_resize(NQN, 1, 48 << 20)
        .nvme_resize(NQN2, 1, 48 << 20);
    assert_eq!(extend_volume(&f.host(), &p, &t()).unwrap().0, 47 << 20);
    let ev = f.events();
    let rescans = ev
        .iter()
        .filter(|e| e.starts_with("rescan controller"))
        .count();
    let grow = ev.iter().position(|e| e == "mdadm grow md127").unwrap();
    assert_eq!(rescans, 2, "{ev:?}");
    assert!(
        ev.iter()
            .rposition(|e| e.starts_with("rescan controller"))
            .unwrap()
            < grow
    );
}

#[test]
fn the_dry_run_of_a_replicated_volume_stops_the_array_then_detaches_each_replica() {
    let f = two_replica_host();
    let p = replicated(2);
    connect_volume(&f.host(), &p, &t()).unwrap();
    let before = f.nvme_controllers();
    let plan = disconnect_plan(&f.host(), &p, None).unwrap();
    let names = |v: &[Thing]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let flush = names(&plan.flush);
    assert!(flush[0].contains("md127"), "{flush:?}");
    assert!(
        flush.iter().any(|x| x.contains("nvme0n1")) && flush.iter().any(|x| x.contains("nvme1n1")),
        "{flush:?}"
    );
    let remove = names(&plan.remove);
    assert!(remove[0].contains("md127"), "{remove:?}");
    assert_eq!(
        remove.len(),
        3,
        "the array and a controller per replica: {remove:?}"
    );
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    // A dry run changes nothing.
    assert_eq!(f.nvme_controllers(), before);
    assert!(f.root().join("sys/block/md127").exists());
}

#[test]
fn by_default_controllers_reconnect_for_ever_so_an_outage_of_any_length_keeps_queued_io() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    connect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), &t()).unwrap();
    for c in ["nvme0", "nvme1"] {
        let shown =
            std::fs::read_to_string(f.root().join(format!("sys/class/nvme/{c}/ctrl_loss_tmo")))
                .unwrap();
        assert_eq!(shown.trim(), "off", "{c}");
    }
}

#[test]
fn a_configured_ctrl_loss_tmo_is_written_in_whole_seconds() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)]);
    let bounded = NvmeTuning {
        ctrl_loss_tmo: Some(Duration::from_millis(90_500)),
        ..t()
    };
    connect_volume(&f.host(), &props(NQN, U1, &[P1]), &bounded).unwrap();
    assert!(
        f.nvme_connects()[0].contains(",ctrl_loss_tmo=90,"),
        "{:?}",
        f.nvme_connects()
    );
}

#[test]
fn a_connect_that_timed_out_has_its_late_controller_removed_by_the_undo() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)])
        .nvme_connect_times_out(P2)
        .nvme_portal_dead(P1);
    let e = connect_volume(&f.host(), &props(NQN, U1, &[P1, P2]), &t()).unwrap_err();
    assert!(matches!(e, Error::NvmeConnect { .. }), "{e}");
    assert!(e.to_string().contains("still blocked in the kernel"), "{e}");
    assert!(
        f.nvme_controllers().is_empty(),
        "the controller the timed-out request made is left: {:?}",
        f.nvme_controllers()
    );
    assert_eq!(f.nvme_deleted(), ["nvme0"]);
}

#[test]
fn a_late_controller_is_removed_but_one_there_before_the_connect_is_kept() {
    // Single path: the portal that timed out shows a controller after the connect; another
    // subsystem's controller, there before, is never touched.
    let f = FakeHost::new();
    f.nvme_target(NQN2, &[P1], &[(1, U2)])
        .nvme_connected(NQN2, P1)
        .nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_connect_times_out(P1);
    let one = NvmeTuning {
        multipath: Some(false),
        ..t()
    };
    connect_volume(&f.host(), &props(NQN, U1, &[P1]), &one).unwrap_err();
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert_eq!(f.nvme_deleted(), ["nvme1"]);
}

#[test]
fn a_plain_disconnect_of_a_namespace_open_in_a_process_is_refused_naming_it() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.opened_by(4242, "qemu-kvm", "nvme0n1");
    let before: Duration = f.clock().sleeps().iter().sum();
    let e =
        disconnect_volume(&f.host(), &p, Some(&info("/dev/nvme0n1")), plain(), &t()).unwrap_err();
    // Looked at again for a while (an opener of a moment, udev's probe, lets go), not for ever.
    let waited = f.clock().sleeps().iter().sum::<Duration>() - before;
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Refused, "{e}");
    assert_eq!(e.kind().exit_code(), 3);
    assert!(
        e.to_string().contains("open in process 4242 (qemu-kvm)"),
        "{e}"
    );
    assert!(report.removed.is_empty(), "{report}");
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    assert!(f.nvme_deleted().is_empty());
    assert!(f.root().join("sys/block/nvme0n1").exists());
    // The dry run says so too.
    let plan = disconnect_plan(&f.host(), &p, None).unwrap();
    assert!(
        plan.problems.iter().any(|x| x.contains("qemu-kvm")),
        "{plan}"
    );
    // Forced: the controllers go, and the opener is named as a failure.
    let e = disconnect_volume(&f.host(), &p, None, forced(false), &t()).unwrap_err();
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Unfinished);
    assert!(f.nvme_controllers().is_empty());
    assert!(
        e.to_string().contains("open in process 4242 (qemu-kvm)"),
        "{e}"
    );
}

#[test]
fn a_plain_disconnect_of_a_namespace_held_by_a_stacked_device_or_mount_is_refused() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)]);
    let p = props(NQN, U1, &[P1]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    let head = std::fs::canonicalize(f.root().join("sys/block/nvme0n1")).unwrap();
    std::fs::create_dir_all(head.join("holders/dm-3")).unwrap();
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    assert!(e.to_string().contains("held by dm-3"), "{e}");
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    std::fs::remove_dir(head.join("holders/dm-3")).unwrap();
    // Mounted: /proc/self/mountinfo names the head's device number.
    let dev_t = std::fs::read_to_string(head.join("dev")).unwrap();
    std::fs::create_dir_all(f.root().join("proc/self")).unwrap();
    std::fs::write(
        f.root().join("proc/self/mountinfo"),
        format!(
            "36 25 {} / /srv rw,relatime - ext4 /dev/nvme0n1 rw\n",
            dev_t.trim()
        ),
    )
    .unwrap();
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    assert!(e.to_string().contains("mounted at /srv"), "{e}");
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
}

#[test]
fn without_an_identity_a_namespace_mapped_during_the_disconnect_stops_it() {
    // The one-namespace check is made again under the subsystem's lock: another volume's
    // namespace that appears after the first look keeps every controller.
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_connected(NQN, P1);
    let p = NvmeProperties::from_value(&serde_json::json!({
        "nqn": NQN, "transport_type": "tcp", "target_portal": "127.0.0.1", "target_port": 4420
    }))
    .unwrap();
    f.nvme_maps_at_next_flush(NQN, 2, U2);
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    assert!(matches!(e, Error::NotTheVolume { .. }), "{e}");
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert!(f.nvme_deleted().is_empty());
    assert!(f.root().join("sys/block/nvme0n2").exists());
}

#[test]
fn a_flush_error_is_retried_with_backoff_and_the_disconnect_goes_on() {
    // An error the kernel returns (EIO while a path fails over) is not the end: the flush is
    // tried again after 250 ms, then 500 ms, as a path flush of an iSCSI volume is.
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.fail_flush_times("nvme0n1", KernelError::from_errno(libc::EIO), 2);
    let r = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap();
    assert_eq!(r.outcome, Outcome::Gone, "{r:?}");
    assert!(f.nvme_controllers().is_empty());
    let sleeps = f.clock().sleeps();
    let backoff = [Duration::from_millis(250), Duration::from_millis(500)];
    assert!(
        sleeps.windows(2).any(|w| w == backoff),
        "no 250-ms then 500-ms wait between flushes: {sleeps:?}"
    );
}

#[test]
fn a_flush_that_keeps_failing_is_tried_flush_tries_times_then_refused() {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    let p = props(NQN, U1, &[P1, P2]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.fail_flush("nvme0n1", KernelError::from_errno(libc::EIO));
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Refused);
    assert!(
        report
            .failures
            .iter()
            .any(|x| x.message.contains("after 4 attempts")),
        "{report:?}"
    );
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
}

#[test]
fn an_array_flush_error_is_retried_and_a_flush_that_never_finishes_refuses() {
    let md_flushes = |f: &FakeHost| f.flushes().iter().filter(|d| *d == "md127").count();
    // An error: tried again, then the volume goes.
    let f = two_replica_host();
    let p = replicated(2);
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.fail_flush_times("md127", KernelError::from_errno(libc::EIO), 1);
    let r = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap();
    assert!(r.clean(), "{r}");
    assert_eq!(md_flushes(&f), 2);
    // Every path down (the flush does not finish): not repeated, nothing removed.
    let f = two_replica_host();
    connect_volume(&f.host(), &p, &t()).unwrap();
    f.fail_flush("md127", KernelError::TimedOut(Duration::from_secs(20)));
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    let Error::Disconnect { report, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(report.outcome, Outcome::Refused, "{e}");
    assert_eq!(md_flushes(&f), 1);
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    assert!(f.root().join("sys/block/md127").exists());
}

#[test]
fn a_multipath_map_multipathd_built_over_the_namespace_goes_with_it_an_open_one_refuses() {
    // Native NVMe multipath off and multipathd taking every device (lab 57): dm-0 over
    // nvme0n1, which multipathd's path checker keeps open. That map is the volume's own
    // multipath layer: flushed and removed, then the controller; nothing is left.
    let map = |f: &FakeHost| {
        f.dm(
            "dm-0",
            &format!("uuid.{U1}"),
            &format!("mpath-uuid.{U1}"),
            &["nvme0n1"],
        )
        .opened_by(290, "multipathd", "nvme0n1");
    };
    let p = props(NQN, U1, &[P1, P2]);
    let f = FakeHost::new();
    f.nvme_multipath(false)
        .nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    map(&f);
    let r = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap();
    assert!(r.clean(), "{r}");
    assert!(!f.root().join("sys/block/dm-0").exists());
    assert!(f.nvme_controllers().is_empty());
    // The same map open in a process (a VM on it): a plain disconnect refuses, naming it.
    let f = FakeHost::new();
    f.nvme_multipath(false)
        .nvme_target(NQN, &[P1, P2], &[(1, U1)]);
    connect_volume(&f.host(), &p, &t()).unwrap();
    map(&f);
    f.opened_by(812, "qemu-kvm", "dm-0");
    let e = disconnect_volume(&f.host(), &p, None, plain(), &t()).unwrap_err();
    assert!(e.to_string().contains("held by dm-0"), "{e}");
    assert!(f.root().join("sys/block/dm-0").exists());
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
}
