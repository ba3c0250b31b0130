//! Replicated volumes on the fake host: an md array is created only over replicas that are
//! readable and hold nothing, taken or assembled only when it is the volume's, and a failed
//! connect detaches only the replicas it attached.

use brick::nvmeof::{connect_volume, disconnect_plan, disconnect_volume};
use brick::nvmeof::{NvmeProperties, NvmeTuning};
use brick::report::DisconnectOptions;
use brick::testing::{md12_superblock, FakeHost};
use brick::{Error, ErrorKind};

const NQN: &str = "nqn.2014-08.org.lab:sub1";
const NQN2: &str = "nqn.2014-08.org.lab:sub2";
const NQN3: &str = "nqn.2014-08.org.lab:clone";
const U1: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";
const U2: &str = "2197a7c7-baf2-4a77-a0de-537c7ad1c8ca";
const U3: &str = "3c0a6d6e-8f1b-4b5e-9d2e-0c7c1a3e5f70";
const P1: &str = "127.0.0.1:4420";
const P2: &str = "127.0.0.2:4420";
const P3: &str = "127.0.0.3:4420";
/// ext2/3/4's magic, at byte 1080 of the device.
const EXT4: (u64, &[u8]) = (1080, &[0x53, 0xef]);

fn replicated() -> NvmeProperties {
    NvmeProperties::from_value(&serde_json::json!({
        "vol_uuid": "11111111-2222-4333-8444-555555555555", "alias": "vol-1", "replica_count": 2,
        "volume_replicas": [
            {"target_nqn": NQN, "vol_uuid": U1, "portals": [["127.0.0.1", 4420, "tcp"]]},
            {"target_nqn": NQN2, "vol_uuid": U2, "portals": [["127.0.0.2", 4420, "tcp"]]}]
    }))
    .unwrap()
}

fn host() -> FakeHost {
    let f = FakeHost::new();
    f.nvme_target(NQN, &[P1], &[(1, U1)])
        .nvme_target(NQN2, &[P2], &[(1, U2)]);
    f
}

fn mdadm_runs(f: &FakeHost, what: &str) -> Vec<String> {
    f.calls()
        .into_iter()
        .filter(|c| c[0] == "mdadm" && c.get(1).is_some_and(|a| a == what))
        .map(|c| c.join(" "))
        .collect()
}

/// The array name in the md 1.2 superblock at byte 4096 of namespace `uuid` (its name field:
/// bytes 32..64, NUL-padded); `None` when no md 1.2 superblock is there.
fn md_name(f: &FakeHost, uuid: &str) -> Option<String> {
    let sb = f.nvme_ns_read(uuid, 4096, 64);
    if sb[..8] != md12_superblock([0; 16], "")[..8] {
        return None;
    }
    let name = &sb[32..64];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

fn connect_err(f: &FakeHost) -> Error {
    connect_volume(&f.host(), &replicated(), &NvmeTuning::default()).unwrap_err()
}

#[test]
fn replicas_that_cannot_be_read_are_never_taken_for_blank_and_get_no_array() {
    // mdadm 4.2 says "No md superblock detected" for a device whose read fails: that is not
    // "none", and no array is created over what may be a live one.
    let f = host();
    f.nvme_md_member(U1, "vol-1")
        .nvme_md_member(U2, "vol-1")
        .nvme_ns_unreadable(U1)
        .nvme_ns_unreadable(U2);
    let e = connect_err(&f);
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("/dev/nvme0n1"), "{e}");
    assert!(mdadm_runs(&f, "--create").is_empty());
    assert!(mdadm_runs(&f, "--assemble").is_empty());
    // The superblocks are as they were, and the controllers this connect made are gone.
    let sb = md12_superblock([0; 16], "");
    assert_eq!(f.nvme_ns_read(U1, 4096, 8), sb[..8]);
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn a_replica_with_a_file_system_and_no_md_superblock_gets_no_array() {
    let f = host();
    f.nvme_ns_write(U2, EXT4.0, EXT4.1);
    let e = connect_err(&f);
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("/dev/nvme1n1") && msg.contains("ext2/3/4 file system"),
        "{msg}"
    );
    assert!(mdadm_runs(&f, "--create").is_empty());
    assert_eq!(f.nvme_ns_read(U2, EXT4.0, 2), EXT4.1);
    assert_eq!(f.nvme_ns_read(U1, 4096, 4), [0; 4]);
    assert_eq!(f.nvme_ns_read(U2, 4096, 4), [0; 4]);
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn blank_replicas_still_get_their_array() {
    let f = host();
    let c = connect_volume(&f.host(), &replicated(), &NvmeTuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/md127"));
    assert_eq!(mdadm_runs(&f, "--create").len(), 1);
    // What the create wrote: an md 1.2 superblock named as brick names it.
    assert_eq!(md_name(&f, U1).as_deref(), Some("any:vol-1"));
    assert_eq!(md_name(&f, U2).as_deref(), Some("any:vol-1"));
}

#[test]
fn replicas_of_another_array_are_not_assembled_as_the_volume() {
    let f = host();
    f.nvme_md_member(U1, "vol-9").nvme_md_member(U2, "vol-9");
    let e = connect_err(&f);
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("\"any:vol-9\""), "{e}");
    assert!(mdadm_runs(&f, "--assemble").is_empty());
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn replicas_of_two_arrays_of_the_same_name_are_not_assembled() {
    let f = host();
    f.nvme_md_member(U1, "vol-1").nvme_ns_write(
        U2,
        4096,
        &md12_superblock([0xee; 16], "any:vol-1"),
    );
    let e = connect_err(&f);
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("not one array"), "{e}");
    assert!(mdadm_runs(&f, "--assemble").is_empty());
}

#[test]
fn a_running_array_of_the_volume_is_taken_as_it_is() {
    let f = host();
    f.nvme_md_member(U1, "vol-1").nvme_md_member(U2, "vol-1");
    f.nvme_connected(NQN, P1).nvme_connected(NQN2, P2);
    let md = f.md_array(&["nvme0n1", "nvme1n1"]);
    let c = connect_volume(&f.host(), &replicated(), &NvmeTuning::default()).unwrap();
    assert_eq!(c.device_info.path, Some(format!("/dev/{md}")));
    assert!(mdadm_runs(&f, "--assemble").is_empty() && mdadm_runs(&f, "--create").is_empty());
}

#[test]
fn an_array_holding_a_replica_and_a_clones_leg_is_not_taken_and_not_stopped() {
    // A clone of the volume (same md superblock) attached on the host; udev's incremental
    // assembly put it and the volume's first replica in one array.
    let f = host();
    f.nvme_target(NQN3, &[P3], &[(1, U3)]);
    f.nvme_md_member(U1, "vol-1")
        .nvme_md_member(U2, "vol-1")
        .nvme_md_member(U3, "vol-1");
    f.nvme_connected(NQN3, P3).nvme_connected(NQN, P1);
    let md = f.md_array(&["nvme0n1", "nvme1n1"]);
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    let e = connect_err(&f);
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains(&format!("/dev/{md}")), "{e}");
    // The array, the clone's controller and the replica attached before all stay; the
    // replica this connect attached (nvme2, subsystem 2) is detached again.
    assert!(f.root().join(format!("sys/block/{md}/md")).exists());
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1"]);
    assert!(mdadm_runs(&f, "--assemble").is_empty() && mdadm_runs(&f, "--create").is_empty());
}

#[test]
fn a_failed_connect_detaches_only_the_replicas_it_attached() {
    // Replica 1 was attached before (another attach of the volume uses it); replica 2's portal
    // is dead: the connect fails and must leave replica 1 as it found it.
    let f = host();
    f.nvme_connected(NQN, P1).nvme_portal_dead(P2);
    let e = connect_err(&f);
    assert!(e.to_string().contains("only 1 of its 2 replicas"), "{e}");
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert!(f.nvme_deleted().is_empty());
    // And one this call attached goes: both fresh, replica 2 has a file system.
    let f = host();
    f.nvme_connected(NQN, P1).nvme_ns_write(U2, EXT4.0, EXT4.1);
    connect_err(&f);
    assert_eq!(f.nvme_controllers(), ["nvme0"]);
    assert_eq!(f.nvme_deleted(), ["nvme1"]);
}

#[test]
fn a_disconnect_never_stops_an_array_that_holds_a_clones_leg() {
    let f = host();
    f.nvme_target(NQN3, &[P3], &[(1, U3)]);
    f.nvme_connected(NQN3, P3)
        .nvme_connected(NQN, P1)
        .nvme_connected(NQN2, P2);
    let md = f.md_array(&["nvme0n1", "nvme1n1"]);
    let p = replicated();
    let plan = disconnect_plan(&f.host(), &p, None).unwrap();
    assert!(
        plan.problems.iter().any(|x| x.contains("nvme0n1")),
        "{plan}"
    );
    let e = disconnect_volume(
        &f.host(),
        &p,
        None,
        DisconnectOptions::default(),
        &NvmeTuning::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(f.root().join(format!("sys/block/{md}/md")).exists());
    assert_eq!(f.nvme_controllers(), ["nvme0", "nvme1", "nvme2"]);
    assert!(f.flushes().is_empty());
}

#[test]
fn one_replica_that_cannot_be_read_is_not_handed_out_as_the_volume() {
    // It could be an array's member, whose data starts past the superblock.
    let f = host();
    f.nvme_ns_unreadable(U1);
    let one = NvmeProperties::from_value(&serde_json::json!({
        "vol_uuid": "11111111-2222-4333-8444-555555555555", "alias": "vol-1", "replica_count": 1,
        "volume_replicas": [
            {"target_nqn": NQN, "vol_uuid": U1, "portals": [["127.0.0.1", 4420, "tcp"]]}]
    }))
    .unwrap();
    let e = connect_volume(&f.host(), &one, &NvmeTuning::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("/dev/nvme0n1"), "{e}");
    assert!(f.nvme_controllers().is_empty());
}

#[test]
fn an_array_udev_starts_while_connect_would_stop_it_is_taken() {
    // Lab 58, once in six runs: the second connect found md127 inactive (udev's incremental
    // assembly had one member in), tried to stop it to assemble it itself, and the kernel
    // refused (EBUSY): udev was starting it. The connect failed with the array running.
    let f = host();
    f.nvme_md_member(U1, "vol-1").nvme_md_member(U2, "vol-1");
    f.nvme_connected(NQN, P1).nvme_connected(NQN2, P2);
    let md = f.md_array(&["nvme0n1", "nvme1n1"]);
    f.md_starting(&md);
    let c = connect_volume(&f.host(), &replicated(), &NvmeTuning::default()).unwrap();
    assert_eq!(c.device_info.path, Some(format!("/dev/{md}")));
    assert!(mdadm_runs(&f, "--assemble").is_empty() && mdadm_runs(&f, "--create").is_empty());
}
