//! `brick disconnect --dry-run` of an NVMe-oF volume names what the disconnect removes: also
//! the dm-multipath map multipathd built over its namespace (native multipath off), which the
//! disconnect flushes and removes before the controllers.

use brick::nvmeof::{disconnect_plan, disconnect_volume, NvmeProperties, NvmeTuning};
use brick::testing::FakeHost;
use brick::{DisconnectOptions, Thing};

const NQN: &str = "nqn.2014-08.org.lab:sub1";
const U1: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";

fn props() -> NvmeProperties {
    NvmeProperties::from_value(&serde_json::json!({
        "target_nqn": NQN, "vol_uuid": U1, "portals": [["127.0.0.1", 4420, "tcp"]]
    }))
    .unwrap()
}

/// Native multipath off: the namespace is `nvme0n1`, and multipathd's map `dm-0` sits on it.
fn host_with_map() -> FakeHost {
    let f = FakeHost::new();
    f.nvme_multipath(false)
        .nvme_target(NQN, &["127.0.0.1:4420"], &[(1, U1)])
        .nvme_connected(NQN, "127.0.0.1:4420");
    let wwid = format!("uuid.{U1}");
    f.dm("dm-0", "mpatha", &format!("mpath-{wwid}"), &["nvme0n1"]);
    f
}

#[test]
fn the_dry_run_names_the_multipath_map_the_disconnect_removes() {
    let f = host_with_map();
    let plan = disconnect_plan(&f.host(), &props(), None).unwrap();
    let map = Thing::map("dm-0", "mpatha");
    assert!(plan.remove.contains(&map), "{plan}");
    assert!(plan.flush.contains(&map), "{plan}");
    // The map the disconnect removes first is no holder that stops it.
    assert!(plan.problems.is_empty(), "{plan}");
    assert!(f.has_block("dm-0"), "the dry run removed the map");

    let report = disconnect_volume(
        &f.host(),
        &props(),
        None,
        DisconnectOptions::default(),
        &NvmeTuning::default(),
    )
    .unwrap();
    for thing in &plan.remove {
        assert!(
            report.removed.contains(thing),
            "planned {thing}, report: {report}"
        );
    }
    assert!(!f.has_block("dm-0"));
}

#[test]
fn the_dry_run_of_a_volume_whose_map_is_open_names_the_map_as_its_holder() {
    let f = host_with_map();
    f.opened_by(812, "qemu-kvm", "dm-0");
    let plan = disconnect_plan(&f.host(), &props(), None).unwrap();
    assert!(
        !plan.remove.contains(&Thing::map("dm-0", "mpatha")),
        "{plan}"
    );
    assert!(
        plan.problems.iter().any(|p| p.contains("held by dm-0")),
        "{plan}"
    );
}
