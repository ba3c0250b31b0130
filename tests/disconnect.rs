//! The whole disconnect on fake hosts laid out as the real kernel lays out sysfs.

mod common;
use common::Capture;
use std::time::Duration;

use brick::host::{CmdError, KernelError};
use brick::iscsi::disconnect_volume;
use brick::testing::FakeHost;
use brick::{ConnectionProperties, DeviceInfo, DisconnectOptions, Error, Outcome, Thing, Tuning};

const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:tgt1";
const IQN2: &str = "iqn.2003-01.org.linux-iscsi.lab:tgt2";
const WWID1: &str = "naa.6001405deadbeef00010000000000000";
const WWN1: &str = "36001405deadbeef00010000000000000";
const WWID2: &str = "naa.6001405deadbeef00020000000000000";
const P1: &str = "127.0.0.1:3260";
const P2: &str = "127.0.0.2:3260";

fn single(lun: u64) -> ConnectionProperties {
    ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":{lun},"volume_id":"vol-{lun}"}}"#
    ))
    .unwrap()
}

fn multi(lun: u64) -> ConnectionProperties {
    ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":{lun},"volume_id":"vol-{lun}",
            "target_portals":["{P1}","{P2}"],"target_iqns":["{IQN}","{IQN}"],"target_luns":[{lun},{lun}]}}"#
    ))
    .unwrap()
}

const PLAIN: DisconnectOptions = DisconnectOptions {
    force: false,
    ignore_errors: false,
};
const FORCE: DisconnectOptions = DisconnectOptions {
    force: true,
    ignore_errors: false,
};
const FORCE_IGNORE: DisconnectOptions = DisconnectOptions {
    force: true,
    ignore_errors: true,
};

/// Two sessions (portals 1 and 2) with LUN 1 on both, joined in map dm-0.
fn two_path_volume() -> FakeHost {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID1);
    f.map("dm-0", &["sda", "sdb"]);
    f
}

/// A disconnect of the single-path volume at LUN 1, with `info`.
fn disconnect_single(
    f: &FakeHost,
    info: &DeviceInfo,
    opts: DisconnectOptions,
) -> Result<brick::DisconnectReport, Error> {
    disconnect_volume(&f.host(), &single(1), Some(info), opts, &Tuning::default())
}

fn cmds(f: &FakeHost, prefix: &[&str]) -> usize {
    f.calls()
        .iter()
        .filter(|c| c.len() >= prefix.len() && c.iter().zip(prefix).all(|(a, b)| a == b))
        .count()
}

fn assert_clean(f: &FakeHost) {
    for d in ["sda", "sdb", "dm-0"] {
        assert!(!f.has_block(d), "{d} still there");
    }
    assert!(
        f.session_ids().is_empty(),
        "sessions left: {:?}",
        f.session_ids()
    );
    assert!(
        !f.has_node(IQN, P1) && !f.has_node(IQN, P2),
        "node records left"
    );
}

#[test]
fn single_path_volume_is_flushed_deleted_and_logged_out() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    let r = disconnect_volume(&f.host(), &single(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(!f.has_block("sda"));
    assert!(f.session_ids().is_empty());
    assert!(!f.has_node(IQN, P1));
    assert_eq!(f.flushes(), ["sda"]);
    assert_eq!(r.wwn.as_ref().unwrap().as_str(), WWN1);
    assert!(r.clean());
    assert_eq!(cmds(&f, &["multipath"]), 0, "no map, no multipath call");
}

#[test]
fn two_path_volume_flushes_map_then_paths_and_removes_everything() {
    let f = two_path_volume();
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert_clean(&f);
    let mut flushed = f.flushes();
    flushed.sort();
    assert_eq!(flushed, ["dm-0", "sda", "sdb"]);
    assert_eq!(f.dm_calls(), [(WWN1.to_string(), "remove".to_string())]);
    assert_eq!(cmds(&f, &["multipath"]), 0, "the map goes in-process");
    assert_eq!(r.maps_removed().len(), 1);
    assert_eq!(r.sessions_logged_out().len(), 2);
    // The paths were deleted by brick, not taken away by the logouts (the order of the steps is
    // everything_is_flushed_before_the_map_goes_the_map_before_its_paths_and_paths_before_logout).
    assert_eq!(r.disks_removed().len(), 2, "{r:?}");
}

#[test]
fn path_that_never_joined_the_map_is_removed_too() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID1);
    f.map("dm-0", &["sda"]);
    disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert_clean(&f);
}

#[test]
fn shared_target_other_lun_in_use_no_logout() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .disk(1, 2, "sdc", WWID2)
        .disk(2, 2, "sdd", WWID2);
    f.map("dm-0", &["sda", "sdb"]).map("dm-1", &["sdc", "sdd"]);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(!f.has_block("sda") && !f.has_block("sdb") && !f.has_block("dm-0"));
    for d in ["sdc", "sdd", "dm-1"] {
        assert!(f.has_block(d), "{d} of the other volume was removed");
    }
    assert_eq!(f.session_ids(), [1, 2]);
    assert!(f.has_node(IQN, P1) && f.has_node(IQN, P2));
    assert_eq!(cmds(&f, &["iscsiadm", "-m", "session", "-r"]), 0);
    assert_eq!(r.kept.len(), 2);
    assert!(!f.flushes().iter().any(|d| d == "sdc" || d == "dm-1"));
}

#[test]
fn another_volumes_map_is_never_read() {
    // The volume's map is asked of device-mapper by its uuid: the other volume's map (its uuid
    // unreadable here) is not read, before, during or after the disconnect.
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .disk(1, 2, "sdc", WWID2)
        .disk(2, 2, "sdd", WWID2);
    f.map("dm-0", &["sda", "sdb"]).map("dm-1", &["sdc", "sdd"]);
    f.unreadable("sys/block/dm-1/dm/uuid");
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(r.clean(), "{r:?}");
    assert!(!f.has_block("dm-0") && f.has_block("dm-1"));
}

#[test]
fn a_path_back_at_the_lun_of_a_kept_session_is_named_as_left() {
    // The volume's LUN shows again on a session another volume keeps (someone scanned it while
    // the disconnect ran): the disconnect says so rather than succeed.
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .disk(1, 2, "sdc", WWID2)
        .disk(2, 2, "sdd", WWID2);
    f.map("dm-0", &["sda", "sdb"]).map("dm-1", &["sdc", "sdd"]);
    f.rescan_on_delete("sda", 1, 1, "sde", WWID1);
    let e = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap_err();
    let Error::Disconnect { report, .. } = e else {
        panic!("{e}")
    };
    assert!(report.leaves("sde"), "{report:?}");
    assert!(!report.leaves("sdc") && !report.leaves("sdd"), "{report:?}");
}

#[test]
fn map_flush_failure_without_force_deletes_nothing() {
    let f = two_path_volume();
    f.fail_dm(WWN1, KernelError::from_errno(libc::EBUSY));
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    let Error::Disconnect { message, report } = e else {
        panic!("expected a disconnect error")
    };
    assert!(message.contains("is in use"), "{message}");
    for d in ["sda", "sdb", "dm-0"] {
        assert!(f.has_block(d), "{d} was removed");
    }
    assert_eq!(f.session_ids(), [1, 2]);
    assert!(f.has_node(IQN, P1));
    assert!(f.attr_writes().is_empty(), "{:?}", f.attr_writes());
    // Retried with exponential backoff before giving up.
    assert_eq!(f.dm_calls().len(), 4);
    assert_eq!(
        f.clock().sleeps(),
        [
            Duration::from_millis(500),
            Duration::from_secs(1),
            Duration::from_secs(2)
        ]
    );
    assert!(report.leaves("dm-0"));
    assert_eq!(
        report.outcome,
        Outcome::Refused,
        "nothing removed, data kept"
    );
    assert!(report.removed.is_empty());
}

#[test]
fn map_flush_failure_with_force_cleans_everything_and_returns_the_error() {
    let f = two_path_volume();
    f.fail_dm(WWN1, KernelError::from_errno(libc::EBUSY));
    let e = disconnect_volume(&f.host(), &multi(1), None, FORCE, &Tuning::default()).unwrap_err();
    let Error::Disconnect { message, report } = e else {
        panic!("expected a disconnect error")
    };
    assert!(message.contains("is in use"), "{message}");
    assert!(!f.has_block("sda") && !f.has_block("sdb"));
    assert!(f.session_ids().is_empty());
    assert!(!f.has_node(IQN, P1) && !f.has_node(IQN, P2));
    assert!(report.leaves("dm-0"), "{report:?}");
    assert_eq!(report.outcome, Outcome::Unfinished);
    assert!(report.forced);
    assert_eq!(
        report.failures[0].thing,
        Some(Thing::map("dm-0", WWN1)),
        "the failure names the map"
    );
}

#[test]
fn map_flush_failure_with_force_and_ignore_errors_succeeds_with_the_failure_reported() {
    let f = two_path_volume();
    f.fail_dm(WWN1, KernelError::from_errno(libc::EBUSY));
    let r =
        disconnect_volume(&f.host(), &multi(1), None, FORCE_IGNORE, &Tuning::default()).unwrap();
    assert!(!r.failures.is_empty());
    assert!(!r.clean());
    assert_eq!(r.outcome, Outcome::Unfinished);
    assert!(f.session_ids().is_empty());
}

#[test]
fn map_that_cannot_sync_without_force_touches_nothing() {
    // All paths down: the write-back of the map never ends.
    let f = two_path_volume();
    f.fail_flush("dm-0", KernelError::TimedOut(Duration::from_secs(20)));
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    let Error::Disconnect { message, report } = e else {
        panic!("expected a disconnect error")
    };
    assert!(message.contains("nothing was removed"), "{message}");
    assert!(message.contains("/dev/dm-0"), "{message}");
    for d in ["sda", "sdb", "dm-0"] {
        assert!(f.has_block(d));
    }
    assert_eq!(f.session_ids(), [1, 2]);
    assert!(f.dm_calls().is_empty(), "{:?}", f.dm_calls());
    assert!(f.attr_writes().is_empty());
    assert_eq!(report.left_behind.len(), 3);
}

#[test]
fn map_that_cannot_sync_with_force_fails_queued_io_and_cleans_the_host() {
    // All paths down: the kernel shows both disks blocked (their sessions in recovery).
    let f = two_path_volume();
    f.disk_state("sda", "blocked").disk_state("sdb", "blocked");
    f.fail_flush("dm-0", KernelError::TimedOut(Duration::from_secs(20)));
    let e = disconnect_volume(&f.host(), &multi(1), None, FORCE, &Tuning::default()).unwrap_err();
    assert!(matches!(e, Error::Disconnect { .. }));
    assert_eq!(
        f.dm_calls()[0],
        (WWN1.to_string(), "message fail_if_no_path".to_string())
    );
    let offline: Vec<_> = f
        .attr_writes()
        .into_iter()
        .filter(|(_, v)| v == "offline")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        offline,
        ["block/sda/device/state", "block/sdb/device/state"]
    );
    assert_clean(&f);
}

#[test]
fn path_flush_is_retried_with_backoff_and_success_is_not_a_failure() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.fail_flush_times("sda", KernelError::Os("Input/output error".into()), 2);
    let r = disconnect_volume(&f.host(), &single(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(r.failures.is_empty());
    assert_eq!(f.flushes(), ["sda", "sda", "sda"]);
    assert_eq!(
        f.clock().sleeps()[..2],
        [Duration::from_millis(250), Duration::from_millis(500)]
    );
    assert!(!f.has_block("sda"));
}

#[test]
fn path_flush_that_keeps_failing_stops_a_plain_disconnect() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.fail_flush("sda", KernelError::Os("Input/output error".into()));
    let e = disconnect_volume(&f.host(), &single(1), None, PLAIN, &Tuning::default()).unwrap_err();
    assert!(e.to_string().contains("after 4 attempts"), "{e}");
    assert!(f.has_block("sda"));
    assert_eq!(f.session_ids(), [1]);
}

#[test]
fn hung_map_removal_is_reported_as_timed_out() {
    let f = two_path_volume();
    f.fail_dm(WWN1, KernelError::TimedOut(Duration::from_secs(30)));
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    assert!(
        e.to_string().contains("blocked in the kernel after 30s"),
        "{e}"
    );
    // A timeout is not retried: the first request may still be running.
    assert_eq!(f.dm_calls().len(), 1);
    assert!(f.has_block("sda"));
}

#[test]
fn hung_command_is_reported_as_timed_out() {
    let f = two_path_volume();
    f.script(
        |a| a[..2] == ["iscsiadm", "-m"] && a.last().is_some_and(|l| l == "--logout"),
        |a| {
            Err(CmdError::TimedOut {
                cmd: a.join(" "),
                timeout: Duration::from_secs(30),
            })
        },
        None,
    );
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    assert!(e.to_string().contains("did not finish within 30s"), "{e}");
    let Error::Disconnect { report, .. } = e else {
        panic!("expected a disconnect error")
    };
    assert_eq!(report.left_behind.len(), 2, "{report:?}");
}

#[test]
fn busy_map_that_frees_up_is_removed_after_a_retry() {
    let f = two_path_volume();
    f.fail_dm_times(WWN1, KernelError::from_errno(libc::EBUSY), 1);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(r.clean(), "{r:?}");
    assert_eq!(f.dm_calls().len(), 2);
    assert_clean(&f);
}

#[test]
fn path_in_recovery_goes_before_the_map_a_probe_caught_on_it_holds_open() {
    let f = two_path_volume();
    f.session_in_recovery(2);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(r.clean(), "{r:?}");
    // sdb (blocked) before the map, which could then go at once; sda after it.
    assert_eq!(r.disks_removed(), ["sdb", "sda"]);
    assert_eq!(f.dm_calls(), [(WWN1.to_string(), "remove".to_string())]);
    assert_clean(&f);
}

#[test]
fn paths_in_recovery_stay_when_the_map_has_no_live_path() {
    // Every path blocked: deleting them would leave the map's readers nowhere to go. A plain
    // disconnect keeps everything, as with a map in use.
    let f = two_path_volume();
    f.session_in_recovery(1).session_in_recovery(2);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    assert!(e.to_string().contains("Nothing else was removed"), "{e}");
    assert!(f.has_block("sda") && f.has_block("sdb") && f.has_block("dm-0"));
    assert_eq!(f.session_ids(), [1, 2]);
}

#[test]
fn map_held_by_another_device_keeps_its_paths_in_recovery() {
    // An LVM volume on the map: the map is in use whatever its paths do, so none goes early.
    let f = two_path_volume();
    f.dm("dm-1", "vg-lv", "LVM-abc", &["dm-0"]);
    f.session_in_recovery(2);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("held by dm-1"), "{msg}");
    assert!(msg.contains("Nothing else was removed"), "{msg}");
    assert!(f.has_block("sda") && f.has_block("sdb") && f.has_block("dm-0"));
    assert!(!f.events().iter().any(|e| e.starts_with("delete")));
}

#[test]
fn running_path_outside_the_map_does_not_let_the_maps_only_path_go() {
    // sdb, the map's only path, is in recovery; sda runs but never joined the map. The map has
    // no live path, so sdb must stay (deleting it would fail the map's queued I/O).
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID1);
    f.map("dm-0", &["sdb"]);
    f.session_in_recovery(2);
    f.disk_state("sda", "running");
    disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap_err();
    assert!(
        f.has_block("sdb"),
        "the map's only path went: {:?}",
        f.events()
    );
    assert!(f.has_block("dm-0"));
}

#[test]
fn map_in_use_after_the_paths_in_recovery_went_names_what_was_removed() {
    let f = two_path_volume();
    f.opened_by(4242, "qemu-system-x86", "dm-0");
    f.fail_dm_times(WWN1, KernelError::from_errno(libc::EBUSY), 100);
    f.session_in_recovery(2);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("Only the paths that could not answer were removed (sdb)"),
        "{msg}"
    );
    let brick::Error::Disconnect { report, .. } = e else {
        panic!("not a disconnect error")
    };
    assert_eq!(report.disks_removed(), ["sdb"]);
    assert_eq!(
        report.outcome,
        Outcome::Stopped,
        "only the paths in recovery went"
    );
    assert!(!report.leaves("sdb"), "{:?}", report.left_behind);
    assert!(f.has_block("sda") && f.has_block("dm-0") && !f.has_block("sdb"));
    assert_eq!(f.session_ids(), [1, 2]);
    assert!(
        report
            .failures
            .iter()
            .any(|l| l.message.contains("open in process 4242 (qemu-system-x86)")),
        "{:?}",
        report.failures
    );
}

#[test]
fn partition_maps_go_before_their_map() {
    let f = two_path_volume();
    f.dm(
        "dm-1",
        "36001405deadbeef00010000000000000-part1",
        &format!("part1-mpath-{WWN1}"),
        &["dm-0"],
    );
    disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    let names: Vec<String> = f.dm_calls().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [format!("{WWN1}-part1"), WWN1.to_string()]);
    assert!(!f.has_block("dm-1") && !f.has_block("dm-0"));
    assert_clean(&f);
}

#[test]
fn map_held_by_another_device_is_in_use_and_kept() {
    let f = two_path_volume();
    f.dm("dm-1", "vg-lv", "LVM-abc", &["dm-0"]);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    assert!(e.to_string().contains("is in use"), "{e}");
    assert!(f.has_block("dm-0") && f.has_block("dm-1") && f.has_block("sda"));
    assert_eq!(f.session_ids(), [1, 2]);
}

#[test]
fn device_whose_wwn_does_not_match_is_left_alone() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    // On portal 2, LUN 1 is some other device (a reused LUN number).
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID2);
    let info = DeviceInfo {
        path: Some("/dev/sda".into()),
        scsi_wwn: Some(WWN1.into()),
        ..Default::default()
    };
    let r =
        disconnect_volume(&f.host(), &multi(1), Some(&info), PLAIN, &Tuning::default()).unwrap();
    assert!(!f.has_block("sda"));
    assert!(f.has_block("sdb"));
    assert!(!f.flushes().contains(&"sdb".to_string()));
    assert!(!f.attr_writes().iter().any(|(p, _)| p.contains("sdb")));
    assert_eq!(
        f.session_ids(),
        [2],
        "session 2 still holds the other device"
    );
    assert_eq!(r.left_alone.len(), 1, "{r:?}");
}

#[test]
fn disagreeing_wwns_without_device_info_touch_nothing() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID2);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert!(f.has_block("sda") && f.has_block("sdb"));
    assert!(f.flushes().is_empty());
}

#[test]
fn stale_device_info_naming_another_volumes_device_is_ignored() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.session(3, P1, IQN2).disk(3, 7, "sdz", WWID2);
    f.map("dm-5", &["sdz"]);
    // device_info from an older attach: the path now belongs to the other volume.
    let info = DeviceInfo {
        path: Some("/dev/dm-5".into()),
        scsi_wwn: Some(WWN1.into()),
        ..Default::default()
    };
    let r = disconnect_single(&f, &info, PLAIN).unwrap();
    assert!(!f.has_block("sda"));
    assert!(f.has_block("sdz") && f.has_block("dm-5"));
    assert_eq!(f.session_ids(), [3]);
    assert!(!f.flushes().iter().any(|d| d == "dm-5" || d == "sdz"));
    assert!(
        r.left_alone.iter().any(|l| l.thing.dev() == Some("dm-5")),
        "{r:?}"
    );
}

#[test]
fn rerun_after_a_crash_finishes_the_job() {
    // Killed after the devices went: sessions without disks and node records remain.
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert_eq!(r.sessions_logged_out().len(), 2);
    assert_clean(&f);
    // Killed after the logouts: only node records remain.
    let f = FakeHost::new();
    f.node(IQN, P1).node(IQN, P2);
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert_eq!(r.node_records_deleted().len(), 2);
    assert_clean(&f);
    // Nothing left at all: a no-op that succeeds.
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(r.clean() && r.node_records_deleted().is_empty());
    assert_eq!(r.outcome, Outcome::Gone);
}

#[test]
fn map_left_without_paths_is_flushed() {
    // Killed between the delete of the paths and... no: a map of the volume whose paths are gone.
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.map("dm-0", &["sda"]);
    // The other map has the volume's WWN but no path of ours (its path went already).
    f.dm("dm-3", WWN1, &format!("mpath-{WWN1}"), &[]);
    let info = DeviceInfo {
        scsi_wwn: Some(WWN1.into()),
        ..Default::default()
    };
    disconnect_single(&f, &info, PLAIN).unwrap();
    assert!(!f.has_block("dm-0") && !f.has_block("dm-3"));
}

#[test]
fn device_held_by_a_foreign_map_stops_a_plain_disconnect() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.dm("dm-2", "vg-lv", "LVM-abcdef", &["sda"]);
    let e = disconnect_volume(&f.host(), &single(1), None, PLAIN, &Tuning::default()).unwrap_err();
    assert!(
        e.to_string().contains("not the volume's multipath map"),
        "{e}"
    );
    assert!(f.has_block("sda") && f.has_block("dm-2"));
    assert!(f.flushes().is_empty());
}

#[test]
fn device_that_will_not_go_is_named_as_left_behind() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID1);
    f.stuck_delete("sdb");
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    let Error::Disconnect { report, .. } = e else {
        panic!("{e}")
    };
    assert!(report.leaves("sdb"), "{report:?}");
    assert!(report.disks_removed().contains(&"sda"));
}

#[test]
fn chap_password_never_reaches_a_log_line_or_an_error() {
    const SECRET: &str = "Sup3r-S3cret-PW";
    let props = ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":1,"auth_method":"CHAP",
            "auth_username":"user","auth_password":"{SECRET}","discovery_auth_method":"CHAP",
            "discovery_auth_username":"du","discovery_auth_password":"{SECRET}"}}"#
    ))
    .unwrap();
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.fail_flush("sda", KernelError::Os("Input/output error".into()));
    let buf = Capture::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, || {
        disconnect_volume(&f.host(), &props, None, FORCE, &Tuning::default())
    });
    let logs = buf.text();
    assert!(logs.contains("disconnect"), "logs were captured: {logs}");
    let e = result.unwrap_err();
    assert!(!logs.contains(SECRET), "{logs}");
    assert!(!e.to_string().contains(SECRET));
    assert!(!format!("{e:?}").contains(SECRET));
    assert!(!format!("{props:?}").contains(SECRET));
}

#[test]
fn concurrent_disconnect_that_logged_out_first_is_not_an_error() {
    // Two volumes on one session, disconnected at once: the other one logged out between our
    // plan and our turn at the target lock. Seen in the lab (lab/scenarios/14).
    let f = FakeHost::new();
    f.session(1, P1, IQN)
        .node(IQN, P1)
        .disk(1, 1, "sda", WWID1)
        .logout_on_delete("sda", 1);
    let r = disconnect_volume(&f.host(), &single(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(r.clean(), "{r:?}");
    assert_eq!(
        cmds(&f, &["iscsiadm", "-m", "session", "-r"]),
        0,
        "no logout of a gone session"
    );
    assert_eq!(
        cmds(&f, &["iscsiadm", "-m", "node"]),
        0,
        "no delete of a gone record"
    );
}

#[test]
fn device_info_of_another_volume_never_leads_to_its_devices() {
    // lab/scenarios/07: volume A disconnected with volume B's device_info (B's map and WWN).
    // The WWN device_info gives is the volume's identity: A's LUN shows another one, so nothing
    // is touched, and B's devices are not A's either.
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.session(3, P1, IQN2)
        .disk(3, 7, "sdz", WWID2)
        .map("dm-5", &["sdz"]);
    let wwn2 = "36001405deadbeef00020000000000000";
    let info = DeviceInfo {
        path: Some("/dev/dm-5".into()),
        scsi_wwn: Some(wwn2.into()),
        multipath_id: Some(wwn2.into()),
        ..Default::default()
    };
    for opts in [PLAIN, FORCE] {
        let e = disconnect_volume(&f.host(), &single(1), Some(&info), opts, &Tuning::default())
            .unwrap_err();
        assert!(matches!(e, Error::NotTheVolume { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(wwn2) && msg.contains(WWN1), "{msg}");
        assert!(f.has_block("sda") && f.has_block("sdz") && f.has_block("dm-5"));
        assert!(f.events().is_empty(), "{:?}", f.events());
    }
    // A gone from the host: B's devices carry device_info's WWN, but nothing at A's LUN proves
    // that WWN is A's: still nothing is touched, and the error names them.
    let f = FakeHost::new();
    f.session(3, P1, IQN2)
        .disk(3, 7, "sdz", WWID2)
        .map("dm-5", &["sdz"]);
    let e = disconnect_single(&f, &info, FORCE).unwrap_err();
    assert!(e.to_string().contains("/dev/dm-5, /dev/sdz"), "{e}");
    assert!(f.has_block("dm-5") && f.has_block("sdz"));
    assert!(f.events().is_empty(), "{:?}", f.events());
    assert_eq!(f.session_ids(), [3]);
}

#[test]
fn sessions_are_listed_from_sysfs_without_iscsiadm() {
    let f = FakeHost::new();
    f.session(3, P2, IQN2).session(1, P1, IQN);
    let got: Vec<(u32, String, String, u32, String)> = brick::iscsi::inspect(&f.host())
        .unwrap()
        .into_iter()
        .map(|t| t.session)
        .map(|s| {
            (
                s.id.0,
                s.transport,
                s.portal.to_string(),
                s.tpgt,
                s.iqn.to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "tcp".into(), P1.into(), 1, IQN.into()),
            (3, "tcp".into(), P2.into(), 1, IQN2.into())
        ]
    );
    assert!(f.calls().is_empty(), "{:?}", f.calls());
}

#[test]
fn forced_disconnect_of_a_map_held_by_a_queued_writer_fails_its_io_and_removes_the_map() {
    // All paths down, a writer's I/O queued in the map (nothing dirty in the page cache, so the
    // flush succeeds) keeps the map open: forced, brick fails the queued I/O and tries again.
    let f = two_path_volume();
    f.disk_state("sda", "blocked").disk_state("sdb", "blocked");
    f.fail_dm_times(WWN1, KernelError::from_errno(libc::EBUSY), 4);
    let r = disconnect_volume(&f.host(), &multi(1), None, FORCE, &Tuning::default()).unwrap();
    assert!(r.clean(), "{r:?}");
    let offline = f
        .attr_writes()
        .into_iter()
        .filter(|(_, v)| v == "offline")
        .count();
    assert_eq!(
        offline, 2,
        "the paths where the writer's I/O waits are set offline"
    );
    let calls: Vec<String> = f.dm_calls().into_iter().map(|(_, c)| c).collect();
    assert_eq!(
        calls,
        [
            "remove",
            "remove",
            "remove",
            "remove",
            "message fail_if_no_path",
            "remove"
        ]
    );
    assert_clean(&f);
    // Without force the same map is kept, and nothing fails the writer's I/O.
    let f = two_path_volume();
    f.fail_dm_times(WWN1, KernelError::from_errno(libc::EBUSY), 4);
    disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap_err();
    assert!(f.dm_calls().iter().all(|(_, c)| c == "remove"));
    assert!(f.has_block("dm-0") && f.has_block("sda"));
}

#[test]
fn lun_reused_by_another_volume_is_not_touched_even_forced() {
    // The array gave LUN 1 to volume 2, attached here (map dm-0, open by a VM); the disconnect
    // of volume 1, with the device_info its connect returned, must touch none of it.
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID2).disk(2, 1, "sdb", WWID2);
    f.map("dm-0", &["sda", "sdb"]);
    f.session_in_recovery(2);
    let info = DeviceInfo {
        path: Some("/dev/dm-3".into()),
        scsi_wwn: Some(WWN1.into()),
        multipath_id: Some(WWN1.into()),
        ..Default::default()
    };
    for opts in [PLAIN, FORCE, FORCE_IGNORE] {
        let e = disconnect_volume(&f.host(), &multi(1), Some(&info), opts, &Tuning::default())
            .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::NotTheVolume { .. }), "{msg}");
        assert!(
            msg.contains(WWN1) && msg.contains("36001405deadbeef00020000000000000"),
            "both WWNs named: {msg}"
        );
        assert!(f.events().is_empty(), "{opts:?}: {:?}", f.events());
        assert!(f.attr_writes().is_empty(), "{:?}", f.attr_writes());
        assert!(f.has_block("sda") && f.has_block("sdb") && f.has_block("dm-0"));
        assert_eq!(f.session_ids(), [1, 2]);
    }
}

#[test]
fn disk_at_the_lun_without_a_wwid_fails_the_disconnect_and_is_named() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P2, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID1);
    f.disk_without_wwid("sdb");
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default());
    let e = r
        .map(|r| format!("{r:?} {:?} {:?}", f.events(), f.session_ids()))
        .unwrap_err();
    let Error::Disconnect { report, .. } = e else {
        panic!("not a disconnect error: {e}")
    };
    assert!(!f.has_block("sda"), "the proven disk goes");
    assert!(f.has_block("sdb"), "the unproven one is not touched");
    assert!(report.leaves("sdb"), "{report:?}");
    assert_eq!(f.session_ids(), [2], "its session stays with it");
}

#[test]
fn iqn_in_another_case_finds_the_volume() {
    let f = two_path_volume();
    let upper = IQN.to_ascii_uppercase().replace("IQN.", "iqn.");
    let props = ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{upper}","target_lun":1,
            "target_portals":["{P1}","{P2}"],"target_iqns":["{upper}","{upper}"],"target_luns":[1,1]}}"#
    ))
    .unwrap();
    let info = DeviceInfo {
        path: Some("/dev/dm-0".into()),
        scsi_wwn: Some(WWN1.into()),
        ..Default::default()
    };
    let r = disconnect_volume(&f.host(), &props, Some(&info), PLAIN, &Tuning::default()).unwrap();
    assert_eq!(r.maps_removed().len(), 1, "{r:?}");
    for d in ["sda", "sdb", "dm-0"] {
        assert!(!f.has_block(d), "{d} still there");
    }
    assert!(f.session_ids().is_empty());
}

#[test]
fn disk_of_the_volume_on_a_portal_the_props_do_not_list_is_cleaned_too() {
    // The volume was also attached through portal 3, which the properties no longer list.
    let f = two_path_volume();
    let p3 = "127.0.0.3:3260";
    f.session(3, p3, IQN).disk(3, 1, "sdc", WWID1);
    // Another volume's LUN on a session of its own to the same target stays.
    let r = disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    for d in ["sda", "sdb", "sdc", "dm-0"] {
        assert!(!f.has_block(d), "{d} still there: {r:?}");
    }
    assert!(f.session_ids().is_empty(), "{:?}", f.session_ids());
    assert!(!f.has_node(IQN, p3));
}

#[test]
fn session_on_an_unlisted_portal_with_another_volume_stays() {
    let f = two_path_volume();
    let p3 = "127.0.0.3:3260";
    f.session(3, p3, IQN)
        .disk(3, 1, "sdc", WWID1)
        .disk(3, 2, "sdd", WWID2);
    disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(!f.has_block("sdc") && f.has_block("sdd"));
    assert_eq!(f.session_ids(), [3]);
    assert!(f.has_node(IQN, p3));
}

#[test]
fn wrong_lun_with_the_volumes_map_in_device_info_is_a_failure_not_a_note() {
    // The properties name LUN 2, where nothing is; device_info names the volume's map at LUN 1.
    let f = two_path_volume();
    let info = DeviceInfo {
        path: Some("/dev/dm-0".into()),
        scsi_wwn: Some(WWN1.into()),
        ..Default::default()
    };
    let e = disconnect_volume(&f.host(), &multi(2), Some(&info), PLAIN, &Tuning::default())
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/dev/dm-0"), "{msg}");
    assert!(f.has_block("dm-0") && f.has_block("sda") && f.has_block("sdb"));
}

#[test]
fn forced_disconnect_disables_queueing_again_once_the_open_maps_paths_are_gone() {
    // multipathd's reload after the paths go brings back queue_if_no_path: the map left open
    // gets fail_if_no_path once more, after the last path's delete.
    let f = two_path_volume();
    f.opened_by(777, "qemu-kvm", "dm-0");
    let e = disconnect_volume(&f.host(), &multi(1), None, FORCE, &Tuning::default()).unwrap_err();
    assert!(e.to_string().contains("qemu-kvm"), "{e}");
    let ev = f.events();
    let last_delete = ev.iter().rposition(|e| e.starts_with("delete sd")).unwrap();
    let last_message = ev
        .iter()
        .rposition(|e| e.starts_with("dm message"))
        .unwrap();
    assert!(last_delete < last_message, "{ev:?}");
    assert!(f.has_block("dm-0"));
}

#[test]
fn forced_disconnect_of_a_healthy_open_map_flushes_again_and_offlines_no_running_path() {
    // A mounted, healthy volume (both paths running) whose map stays open: force flushes what
    // was written since the first flush, disables queueing, and sets no running path offline.
    let f = two_path_volume();
    f.opened_by(777, "qemu-kvm", "dm-0");
    f.fail_dm_times(WWN1, KernelError::from_errno(libc::EBUSY), 100);
    let e = disconnect_volume(&f.host(), &multi(1), None, FORCE, &Tuning::default()).unwrap_err();
    let dm0_flushes = f.flushes().iter().filter(|d| *d == "dm-0").count();
    assert_eq!(dm0_flushes, 2, "{:?}", f.events());
    let offline: Vec<_> = f
        .attr_writes()
        .into_iter()
        .filter(|(_, v)| v == "offline")
        .collect();
    assert!(offline.is_empty(), "running paths set offline: {offline:?}");
    assert!(f
        .dm_calls()
        .contains(&(WWN1.to_string(), "message fail_if_no_path".to_string())));
    let msg = e.to_string();
    assert!(msg.contains("open in process 777 (qemu-kvm)"), "{msg}");
    // The second flush came after the first removal was refused, before queueing went off.
    let ev = f.events();
    let first_remove = ev.iter().position(|e| e.starts_with("dm remove")).unwrap();
    let second_flush = ev.iter().rposition(|e| e == "flush dm-0").unwrap();
    let message = ev.iter().position(|e| e.starts_with("dm message")).unwrap();
    assert!(
        first_remove < second_flush && second_flush < message,
        "{ev:?}"
    );
}

#[test]
fn everything_is_flushed_before_the_map_goes_the_map_before_its_paths_and_paths_before_logout() {
    let f = two_path_volume();
    disconnect_volume(&f.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    let ev = f.events();
    let pos = |p: &str| {
        ev.iter()
            .position(|e| e == p)
            .unwrap_or_else(|| panic!("no {p}: {ev:?}"))
    };
    let last_flush = ev.iter().rposition(|e| e.starts_with("flush")).unwrap();
    assert!(last_flush < pos(&format!("dm remove {WWN1}")), "{ev:?}");
    assert!(
        pos(&format!("dm remove {WWN1}")) < pos("delete sda"),
        "{ev:?}"
    );
    assert!(
        pos(&format!("dm remove {WWN1}")) < pos("delete sdb"),
        "{ev:?}"
    );
    // Each session goes once its own path is gone (sda is on session 1, sdb on session 2).
    assert!(pos("delete sda") < pos("logout 1"), "{ev:?}");
    assert!(pos("delete sdb") < pos("logout 2"), "{ev:?}");
}

#[test]
fn two_sessions_to_one_target_and_portal_are_both_cleaned_and_logged_out() {
    // os-brick bug 2116553: another tool made a second session to the same target and portal.
    // The volume's disks on both are the volume's, and the second session is not taken for one
    // that is gone because a lookup by target and portal finds the first.
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P1, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID1);
    f.map("dm-0", &["sda", "sdb"]);
    let r = disconnect_volume(&f.host(), &single(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(r.clean(), "{r:?}");
    assert!(!f.has_block("sda") && !f.has_block("sdb") && !f.has_block("dm-0"));
    assert!(f.session_ids().is_empty(), "{:?}", f.session_ids());
    assert!(!f.has_node(IQN, P1));
}

#[test]
fn two_sessions_to_one_target_one_with_another_volume_keeps_that_one() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).session(2, P1, IQN);
    f.disk(1, 1, "sda", WWID1).disk(2, 1, "sdb", WWID1);
    f.disk(2, 2, "sdc", WWID2);
    let r = disconnect_volume(&f.host(), &single(1), None, PLAIN, &Tuning::default()).unwrap();
    assert!(!f.has_block("sda") && !f.has_block("sdb") && f.has_block("sdc"));
    assert_eq!(f.session_ids(), [2], "{r:?}");
    assert!(f.has_node(IQN, P1), "the kept session keeps its record");
}

/// Nothing at all happened on the fake host: no flush, kernel write, command or multipathd
/// request.
fn assert_untouched(f: &FakeHost) {
    assert!(f.events().is_empty(), "{:?}", f.events());
    assert!(f.attr_writes().is_empty(), "{:?}", f.attr_writes());
    assert!(f.calls().is_empty(), "{:?}", f.calls());
    assert!(f.multipathd_cmds().is_empty(), "{:?}", f.multipathd_cmds());
}

#[test]
fn dry_run_shows_the_plan_of_the_disconnect_and_changes_nothing() {
    // Two LUNs on the same two sessions; session 2 in recovery. The dry run of LUN 1 shows what
    // the disconnect then does.
    let f = two_path_volume();
    f.disk(1, 2, "sdc", WWID2).disk(2, 2, "sdd", WWID2);
    f.map("dm-1", &["sdc", "sdd"]);
    f.session_in_recovery(2);
    f.disk_state("sda", "running").disk_state("sdc", "running");
    let plan = brick::iscsi::disconnect_plan(&f.host(), &multi(1), None).unwrap();
    assert_untouched(&f);
    let devs = |v: &[Thing]| {
        v.iter()
            .filter_map(Thing::dev)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(devs(&plan.flush), ["dm-0", "sda", "sdb"]);
    assert_eq!(
        devs(&plan.remove),
        ["sdb", "dm-0", "sda"],
        "sdb in recovery goes first"
    );
    assert!(plan.log_out.is_empty(), "{plan:?}");
    assert_eq!(plan.keep.len(), 2, "LUN 2 keeps both sessions: {plan:?}");
    assert!(plan.keep[0].why.contains("sdc (LUN 2)"), "{plan:?}");
    assert!(plan.delete.is_empty(), "{plan:?}");
    assert!(plan.problems.is_empty(), "{plan:?}");
    assert!(plan.if_forced.iter().any(|l| l.contains("fail_if_no_path")));
    // The disconnect does what the plan said.
    let f2 = two_path_volume();
    f2.disk(1, 2, "sdc", WWID2).disk(2, 2, "sdd", WWID2);
    f2.map("dm-1", &["sdc", "sdd"]);
    let plan = brick::iscsi::disconnect_plan(&f2.host(), &multi(1), None).unwrap();
    let r = disconnect_volume(&f2.host(), &multi(1), None, PLAIN, &Tuning::default()).unwrap();
    let removed: Vec<String> = r
        .removed
        .iter()
        .filter_map(Thing::dev)
        .map(String::from)
        .collect();
    let mut planned = devs(&plan.remove);
    let mut done = removed.clone();
    planned.sort();
    done.sort();
    assert_eq!(planned, done);
    assert_eq!(plan.keep.len(), r.kept.len());
}

#[test]
fn dry_run_of_the_last_volume_plans_the_logouts_and_the_records() {
    let f = two_path_volume();
    let plan = brick::iscsi::disconnect_plan(&f.host(), &multi(1), None).unwrap();
    assert_untouched(&f);
    assert_eq!(plan.log_out.len(), 2, "{plan:?}");
    assert_eq!(plan.delete.len(), 2, "{plan:?}");
    let text = plan.to_string();
    assert!(text.contains("dry run, nothing was changed"), "{text}");
    assert!(text.contains("3. log out: session 1"), "{text}");
    assert!(text.contains("4. delete: node record"), "{text}");
}

#[test]
fn dry_run_names_what_would_stop_a_plain_disconnect() {
    let f = FakeHost::new();
    f.session(1, P1, IQN).disk(1, 1, "sda", WWID1);
    f.dm("dm-2", "vg-lv", "LVM-abcdef", &["sda"]);
    f.session(2, P2, IQN).disk(2, 1, "sdb", WWID1);
    f.disk_without_wwid("sdb");
    let plan = brick::iscsi::disconnect_plan(&f.host(), &multi(1), None).unwrap();
    assert_untouched(&f);
    assert!(
        plan.problems.iter().any(|p| p.contains("held by dm-2")),
        "{plan:?}"
    );
    assert!(
        plan.problems.iter().any(|p| p.contains("/dev/sdb")),
        "{plan:?}"
    );
    assert!(
        plan.if_forced.iter().any(|l| l.contains("/dev/sda")),
        "{plan:?}"
    );
    // A LUN given to another volume: the dry run refuses as the disconnect does.
    let info = DeviceInfo {
        scsi_wwn: Some("36001405deadbeef00090000000000000".into()),
        ..Default::default()
    };
    let e = brick::iscsi::disconnect_plan(&f.host(), &multi(1), Some(&info)).unwrap_err();
    assert!(matches!(e, Error::NotTheVolume { .. }), "{e}");
    assert_untouched(&f);
}

/// What a forced disconnect leaves when a VM held the map open: the map of WWN1 without a path
/// (the paths were deleted, the sessions logged out), the node record at P1; and the volume's
/// device_info.
fn pathless_map_left_open() -> (FakeHost, DeviceInfo) {
    let f = FakeHost::new();
    f.dm("dm-0", WWN1, &format!("mpath-{WWN1}"), &[]);
    f.node(IQN, P1);
    let info = DeviceInfo {
        path: Some("/dev/dm-0".into()),
        scsi_wwn: Some(WWN1.into()),
        ..Default::default()
    };
    (f, info)
}

#[test]
fn rerun_after_a_forced_disconnect_left_an_open_map_cleans_that_map() {
    // A forced disconnect deleted the paths of a map a VM held open; the map stayed. Once the VM
    // let go, the rerun with the volume's device_info finds the pathless map of its WWN (nothing
    // at the LUN, no disk of that WWN anywhere) and removes it.
    let (f, info) = pathless_map_left_open();
    let r = disconnect_single(&f, &info, PLAIN).unwrap();
    assert_eq!(r.maps_removed().len(), 1, "{r:?}");
    assert!(!f.has_block("dm-0") && !f.has_node(IQN, P1));
}

#[test]
fn dry_run_of_a_pathless_map_names_no_paths_to_set_offline() {
    // The leftover of pathless_map_left_open, seen by a dry run: it
    // plans the map's removal and, with --force, says it has no path (it said "()
    // set offline").
    let (f, info) = pathless_map_left_open();
    let plan = brick::iscsi::disconnect_plan(&f.host(), &single(1), Some(&info)).unwrap();
    assert_untouched(&f);
    let removes: Vec<&str> = plan.remove.iter().filter_map(Thing::dev).collect();
    assert_eq!(removes, ["dm-0"], "{plan:?}");
    let text = plan.if_forced.join("\n");
    assert!(text.contains("it has no path left"), "{text}");
    assert!(!text.contains("()"), "{text}");
}

#[test]
fn rerun_before_multipathd_reloaded_the_open_map_takes_its_dangling_slaves_for_no_paths() {
    // Lab (python labtests, held-open test; then a throwaway scenario): a forced disconnect
    // deleted both paths of a map a process held open and logged the sessions out; the rerun
    // with force + ignore_errors, right after it and before multipathd had reloaded the map
    // without the deleted paths, found dm-0/slaves/ still holding sda and sdb: links to the
    // folders the kernel had removed. It took them for live paths, so the map for another
    // volume's, and refused the volume's own leftover as NotTheVolume.
    let f = two_path_volume();
    f.maps_reloaded_late();
    f.opened_by(4242, "qemu-kvm", "dm-0");
    let info = DeviceInfo {
        path: Some("/dev/dm-0".into()),
        scsi_wwn: Some(WWN1.into()),
        multipath_id: Some(WWN1.into()),
        ..Default::default()
    };
    let t = Tuning::default();
    let e = disconnect_volume(&f.host(), &multi(1), Some(&info), FORCE, &t).unwrap_err();
    assert!(
        e.to_string().contains("open in process 4242 (qemu-kvm)"),
        "{e}"
    );
    assert!(!f.has_block("sda") && !f.has_block("sdb") && f.session_ids().is_empty());
    // The layout the lab showed: the links stay in slaves/, leading nowhere.
    let slaves = f.root().join("sys/block/dm-0/slaves");
    for s in ["sda", "sdb"] {
        let link = slaves.join(s);
        assert!(link.symlink_metadata().is_ok() && !link.exists(), "{s}");
    }

    // Still open: the rerun succeeds silently, the map stays and is named.
    let r = disconnect_volume(&f.host(), &multi(1), Some(&info), FORCE_IGNORE, &t).unwrap();
    assert_eq!(r.outcome, Outcome::Unfinished, "{r:?}");
    assert!(r.leaves("dm-0"), "{r:?}");
    assert!(f.has_block("dm-0"));
    // A plain rerun while it is open is refused by the map, not as another volume.
    let e = disconnect_volume(&f.host(), &multi(1), Some(&info), PLAIN, &t).unwrap_err();
    assert!(matches!(e, Error::Disconnect { .. }), "{e}");
    assert!(f.has_block("dm-0"));

    // The holder lets go: a plain disconnect removes the map; the host is clean.
    f.closed_by(4242);
    let r = disconnect_volume(&f.host(), &multi(1), Some(&info), PLAIN, &t).unwrap();
    assert!(r.clean(), "{r:?}");
    assert_eq!(r.maps_removed().len(), 1, "{r:?}");
    assert_clean(&f);
}

#[test]
fn a_map_of_the_wwn_with_a_live_path_next_to_dangling_ones_is_still_refused() {
    // The other side of the rule above. device_info gives WWN1, the volume's LUN shows nothing,
    // and the map of WWN1 has lost one path (its link dangles in slaves/) but keeps a live one
    // the kernel shows with no WWID (so no disk of WWN1 is found): the map may be another
    // volume's, and nothing is touched, forced or not.
    let f = FakeHost::new();
    f.maps_reloaded_late();
    f.node(IQN, P1);
    f.session(2, P2, IQN2)
        .disk(2, 1, "sda", WWID1)
        .disk(2, 2, "sdb", WWID1);
    f.map("dm-0", &["sda", "sdb"]);
    let host = f.host();
    host.kern()
        .write_attr(
            &host.sys("block/sda/device/delete"),
            "1",
            Duration::from_secs(1),
        )
        .unwrap();
    f.disk_without_wwid("sdb");
    assert!(!f.has_block("sda"));
    let info = DeviceInfo {
        path: Some("/dev/dm-0".into()),
        scsi_wwn: Some(WWN1.into()),
        ..Default::default()
    };
    for opts in [PLAIN, FORCE, FORCE_IGNORE] {
        let e = disconnect_single(&f, &info, opts).unwrap_err();
        assert!(matches!(e, Error::NotTheVolume { .. }), "{e}");
        assert!(e.to_string().contains("/dev/dm-0"), "{e}");
    }
    assert!(f.has_block("dm-0") && f.has_block("sdb"));
    assert_eq!(f.session_ids(), [2]);
    assert!(f.has_node(IQN, P1));
}

#[test]
fn forced_disconnect_tells_multipathd_to_stop_queueing_too() {
    // multipathd reloads a map when a path goes, with the features of its configuration: the
    // map would queue again (queue_if_no_path) and its opener wait for ever.
    let f = two_path_volume();
    f.disk_state("sda", "blocked").disk_state("sdb", "blocked");
    f.fail_flush("dm-0", KernelError::TimedOut(Duration::from_secs(20)));
    disconnect_volume(&f.host(), &multi(1), None, FORCE, &Tuning::default()).unwrap_err();
    assert!(
        f.multipathd_cmds()
            .contains(&format!("disablequeueing map {WWN1}")),
        "{:?}",
        f.multipathd_cmds()
    );
}

#[test]
fn where_iscsid_answers_a_disconnect_runs_no_iscsiadm() {
    let f = FakeHost::new();
    f.iscsid_answers();
    f.session(1, P1, IQN)
        .session(2, P2, IQN)
        .disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .map("dm-0", &["sda", "sdb"]);
    let r = disconnect_volume(
        &f.host(),
        &multi(1),
        None,
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap();
    assert!(r.clean(), "{r:?}");
    assert!(f.session_ids().is_empty());
    assert!(f.calls().is_empty(), "processes: {:?}", f.calls());
    let logouts: Vec<String> = f
        .events()
        .into_iter()
        .filter(|e| e.contains("logout"))
        .collect();
    assert_eq!(logouts.len(), 2, "{logouts:?}");
    assert!(
        logouts.iter().all(|e| e.starts_with("iscsid logout")),
        "{logouts:?}"
    );
}

#[test]
fn a_logout_iscsid_did_without_answering_in_time_is_read_back_from_sysfs() {
    // Issue 26 item 7: iscsid took the logout and did it, but its answer came after brick's
    // timeout. The session is gone from sysfs: no iscsiadm is started to ask the same iscsid.
    let f = FakeHost::new();
    f.iscsid_answers_too_late(true);
    f.session(1, P1, IQN)
        .session(2, P2, IQN)
        .disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .map("dm-0", &["sda", "sdb"]);
    let r = disconnect_volume(
        &f.host(),
        &multi(1),
        None,
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap();
    assert!(r.clean(), "{r:?}");
    assert!(f.session_ids().is_empty());
    assert!(f.calls().is_empty(), "processes: {:?}", f.calls());
}

#[test]
fn a_logout_iscsid_neither_did_nor_answered_goes_to_iscsiadm() {
    let f = FakeHost::new();
    f.iscsid_answers_too_late(false);
    f.session(1, P1, IQN)
        .disk(1, 1, "sda", WWID1)
        .map("dm-0", &["sda"]);
    let r = disconnect_volume(
        &f.host(),
        &multi(1),
        None,
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap();
    assert!(r.clean(), "{r:?}");
    assert!(f.session_ids().is_empty());
    let logouts: Vec<String> = f
        .calls()
        .iter()
        .filter(|c| c.iter().any(|a| a == "--logout"))
        .map(|c| c.join(" "))
        .collect();
    assert_eq!(logouts, ["iscsiadm -m session -r 1 --logout"]);
}
