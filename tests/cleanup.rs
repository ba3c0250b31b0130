//! `brick cleanup` on fake hosts: leftovers of every kind beside a live volume; the list names
//! exactly the leftovers, `apply` removes exactly them and nothing of the live volume.

use brick::testing::FakeHost;
use brick::{cleanup, CleanupOptions, Leftover, Tuning};

const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:live";
const GONE: &str = "iqn.2003-01.org.linux-iscsi.lab:gone";
const IDLE: &str = "iqn.2003-01.org.linux-iscsi.lab:idle";
const REC: &str = "iqn.2003-01.org.linux-iscsi.lab:record";
const BOOT: &str = "iqn.2003-01.org.linux-iscsi.lab:boot";
const LIVE: &str = "naa.6001405deadbeef00010000000000000";
const LIVE_WWN: &str = "36001405deadbeef00010000000000000";
const DEAD: &str = "naa.6001405deadbeef00020000000000000";
const DEAD_WWN: &str = "36001405deadbeef00020000000000000";
const EMPTY_WWN: &str = "36001405deadbeef00030000000000000";
const OLD_WWN: &str = "36001405deadbeef00040000000000000";

/// A live two-path volume (sda, sdb in dm-0) and every kind of leftover:
/// - dm-1 over sdc, a disk of a target that went away (transport-offline);
/// - sdd, a transport-offline path of the live volume's WWN on that session (not left over:
///   its WWN is live);
/// - dm-2, a map with no path left;
/// - session 4 with no device;
/// - a manual node record with no session, and an automatic one (kept: set to start at boot);
/// - a wwids file listing the live WWN, the dead one, and one of nothing.
fn host_with_leftovers() -> FakeHost {
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN)
        .session(2, "127.0.0.2:3260", IQN)
        .disk(1, 1, "sda", LIVE)
        .disk(2, 1, "sdb", LIVE)
        .map("dm-0", &["sda", "sdb"]);
    f.session(3, "127.0.0.3:3260", GONE)
        .session_state(3, "FAILED")
        .disk(3, 1, "sdc", DEAD)
        .disk_state("sdc", "transport-offline")
        .map("dm-1", &["sdc"])
        .disk(3, 2, "sdd", LIVE)
        .disk_state("sdd", "transport-offline");
    f.dm("dm-2", EMPTY_WWN, &format!("mpath-{EMPTY_WWN}"), &[]);
    f.session(4, "127.0.0.4:3260", IDLE)
        .node_startup(IDLE, "127.0.0.4:3260", "manual");
    f.node(REC, "127.0.0.5:3260")
        .node_startup(REC, "127.0.0.5:3260", "manual");
    f.node(BOOT, "127.0.0.6:3260");
    f.wwids_file(&[LIVE_WWN, DEAD_WWN, OLD_WWN]);
    f
}

fn kinds(found: &[Leftover]) -> Vec<String> {
    found
        .iter()
        .map(|l| match l {
            Leftover::Map { map } => format!("map {}", map.dev),
            Leftover::Disk { disk } => format!("disk {}", disk.name),
            Leftover::Session { session } => format!("session {}", session.id),
            Leftover::NodeRecord { iqn, .. } => format!("record {iqn}"),
            Leftover::Wwid { wwid } => format!("wwid {wwid}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn listing(f: &FakeHost) -> Vec<String> {
    let r = cleanup(&f.host(), CleanupOptions::default(), &Tuning::default()).unwrap();
    assert!(r.removed.is_empty(), "a listing removed something");
    kinds(&r.found)
}

#[test]
fn finds_exactly_the_leftovers_and_changes_nothing() {
    let f = host_with_leftovers();
    let mut got = listing(&f);
    got.sort();
    let mut want = vec![
        "map dm-1".to_string(),
        "map dm-2".into(),
        "disk sdc".into(),
        "session 4".into(),
        format!("record {REC}"),
        format!("wwid {OLD_WWN}"),
    ];
    want.sort();
    assert_eq!(got, want);
    for d in ["sda", "sdb", "sdc", "sdd", "dm-0", "dm-1", "dm-2"] {
        assert!(f.has_block(d), "{d} gone after a listing");
    }
    assert_eq!(f.session_ids(), [1, 2, 3, 4]);
    assert!(f.has_node(REC, "127.0.0.5:3260"));
    assert!(f.dm_calls().is_empty() && f.attr_writes().is_empty());
}

#[test]
fn apply_removes_the_leftovers_and_nothing_of_the_live_volume() {
    let f = host_with_leftovers();
    let r = cleanup(
        &f.host(),
        CleanupOptions {
            apply: true,
            ..CleanupOptions::default()
        },
        &Tuning::default(),
    )
    .unwrap();
    assert_eq!(r.removed.len(), 6, "{r}");
    assert!(r.clean(), "{r}");
    for d in ["dm-1", "dm-2", "sdc"] {
        assert!(!f.has_block(d), "{d} left");
    }
    for d in ["sda", "sdb", "sdd", "dm-0"] {
        assert!(f.has_block(d), "{d} of the live WWN removed");
    }
    assert_eq!(f.session_ids(), [1, 2, 3]);
    assert!(
        !f.has_node(IDLE, "127.0.0.4:3260"),
        "the idle session's manual record"
    );
    assert!(!f.has_node(REC, "127.0.0.5:3260"));
    assert!(
        f.has_node(BOOT, "127.0.0.6:3260"),
        "a record set to start at boot"
    );
    assert!(f.has_node(IQN, "127.0.0.1:3260"));
    let wwids = std::fs::read_to_string(f.root().join("etc/multipath/wwids")).unwrap();
    assert!(
        wwids.contains(LIVE_WWN) && wwids.contains(DEAD_WWN),
        "{wwids}"
    );
    assert!(!wwids.contains(OLD_WWN), "{wwids}");
    // The maps' page caches were flushed before their removal.
    let flushes = f.flushes();
    assert!(
        flushes.contains(&"dm-1".to_string()) && flushes.contains(&"sdc".to_string()),
        "{flushes:?}"
    );
    // Run again: the WWID of the removed disk goes now, and then nothing is left.
    let again = listing(&f);
    assert_eq!(again, [format!("wwid {DEAD_WWN}")]);
}

#[test]
fn an_open_map_with_no_live_path_is_not_a_leftover() {
    let f = host_with_leftovers();
    f.opened_by(4242, "qemu-kvm", "dm-1");
    let got = listing(&f);
    assert!(!got.contains(&"map dm-1".to_string()), "{got:?}");
    assert!(
        !got.contains(&"disk sdc".to_string()),
        "its path is held: {got:?}"
    );
}

#[test]
fn what_recovered_since_a_listing_is_not_touched_by_apply() {
    let f = host_with_leftovers();
    let host = f.host();
    let found = cleanup(&host, CleanupOptions::default(), &Tuning::default())
        .unwrap()
        .found;
    assert!(!found.is_empty());
    // The disk came back, and the record got a session, between the listing and the apply: a
    // fresh run finds neither, so nothing of them is touched.
    f.disk_state("sdc", "running");
    f.session(5, "127.0.0.5:3260", REC);
    let r = cleanup(
        &host,
        CleanupOptions {
            apply: true,
            ..CleanupOptions::default()
        },
        &Tuning::default(),
    );
    let r = r.unwrap();
    let removed = kinds(&r.removed);
    assert!(!removed.contains(&"disk sdc".to_string()), "{removed:?}");
    assert!(!removed.contains(&"map dm-1".to_string()), "{removed:?}");
    assert!(!removed.contains(&format!("record {REC}")), "{removed:?}");
    assert!(f.has_block("sdc") && f.has_block("dm-1") && f.has_node(REC, "127.0.0.5:3260"));
}

#[test]
fn a_map_whose_path_multipathd_calls_active_is_not_a_leftover() {
    // multipath-tools' own view of the path counts: its checker saw it answer.
    let f = host_with_leftovers();
    f.multipathd_calls_active("sdc");
    let got = listing(&f);
    assert!(!got.contains(&"map dm-1".to_string()), "{got:?}");
    assert!(got.contains(&"map dm-2".to_string()), "{got:?}");
}

#[test]
fn a_dead_disk_that_cannot_be_opened_is_no_failed_flush() {
    // A transport-offline disk gives ENXIO to an open: nothing to flush, so cleanup deletes it.
    let f = host_with_leftovers();
    f.fail_flush("sdc", brick::host::KernelError::Errno(libc::ENXIO));
    let r = cleanup(
        &f.host(),
        CleanupOptions {
            apply: true,
            ..CleanupOptions::default()
        },
        &Tuning::default(),
    )
    .unwrap();
    assert!(r.clean(), "{r}");
    assert!(!f.has_block("sdc"));
    // Any other flush failure keeps the disk and says so.
    let f = host_with_leftovers();
    f.fail_flush("sdc", brick::host::KernelError::Errno(libc::EIO));
    let r = cleanup(
        &f.host(),
        CleanupOptions {
            apply: true,
            ..CleanupOptions::default()
        },
        &Tuning::default(),
    )
    .unwrap();
    assert!(!r.clean() && f.has_block("sdc"), "{r}");
}

fn apply() -> CleanupOptions {
    CleanupOptions {
        apply: true,
        ..CleanupOptions::default()
    }
}

/// A live single-path volume (Nova's default): session 1, disk sda, no map, no holder.
fn single_path_volume() -> FakeHost {
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN).disk(1, 1, "sda", LIVE);
    f
}

#[test]
fn a_blocked_disk_of_a_session_in_recovery_is_not_dead() {
    // Its portal is down longer than the grace; the session is FAILED within its recovery_tmo:
    // the kernel holds the disk's I/O until the portal answers again.
    let f = single_path_volume();
    f.session_in_recovery(1);
    assert!(listing(&f).is_empty(), "{:?}", listing(&f));
    let r = cleanup(&f.host(), apply(), &Tuning::default()).unwrap();
    assert!(r.removed.is_empty() && r.failed.is_empty(), "{r}");
    assert!(f.has_block("sda"), "the live volume's disk was deleted");
    assert!(
        !f.flushes().contains(&"sda".to_string()),
        "{:?}",
        f.flushes()
    );
    assert_eq!(f.session_ids(), [1]);
    // The same with a recovery_tmo that never runs out.
    f.recovery_tmo(1, -1);
    assert!(listing(&f).is_empty());
}

#[test]
fn a_disk_whose_recovery_timed_out_is_dead() {
    // recovery_tmo ran out: the session is FREE, the disk transport-offline, its I/O failed.
    let f = single_path_volume();
    f.session_in_recovery(1).session_recovery_timed_out(1);
    assert_eq!(listing(&f), ["disk sda"]);
    let r = cleanup(&f.host(), apply(), &Tuning::default()).unwrap();
    assert!(r.clean(), "{r}");
    assert!(!f.has_block("sda"));
}

#[test]
fn a_map_whose_paths_are_all_in_recovery_is_not_a_leftover() {
    // Both portals of a two-path volume down, nobody has the map open: the map queues, and
    // its paths come back with the portals.
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", IQN)
        .session(2, "127.0.0.2:3260", IQN)
        .disk(1, 1, "sda", LIVE)
        .disk(2, 1, "sdb", LIVE)
        .map("dm-0", &["sda", "sdb"]);
    f.session_in_recovery(1).session_in_recovery(2);
    assert!(listing(&f).is_empty(), "{:?}", listing(&f));
    cleanup(&f.host(), apply(), &Tuning::default()).unwrap();
    for d in ["sda", "sdb", "dm-0"] {
        assert!(f.has_block(d), "{d} removed");
    }
}

#[test]
fn a_blocked_disk_of_a_session_not_in_recovery_counts_only_through_the_grace() {
    let f = FakeHost::new();
    f.session(1, "127.0.0.1:3260", GONE)
        .disk(1, 1, "sda", DEAD)
        .disk_state("sda", "blocked");
    let r = cleanup(&f.host(), CleanupOptions::default(), &Tuning::default()).unwrap();
    assert_eq!(kinds(&r.found), ["disk sda"]);
    assert!(
        f.clock()
            .sleeps()
            .contains(&CleanupOptions::default().grace),
        "{:?}",
        f.clock().sleeps()
    );
    f.disk_state("sda", "running");
    assert!(listing(&f).is_empty());
}

#[test]
fn a_dead_disk_that_is_open_mounted_or_held_is_never_removed() {
    // transport-offline, no other disk has its WWN: dead, but someone uses it (a guest's qemu
    // that opened it while it worked, a file system, a device stacked on it).
    type Use = fn(&FakeHost);
    let uses: [(&str, Use); 3] = [
        ("open", |f| {
            f.opened_by(4242, "qemu-kvm", "sda");
        }),
        ("mounted", |f| {
            f.mounted("sda", "/srv/vol");
        }),
        ("held", |f| {
            f.dm("dm-5", "vg-lv", "LVM-abc", &["sda"]);
        }),
    ];
    for (how, make_use) in uses {
        let f = single_path_volume();
        f.session_in_recovery(1).session_recovery_timed_out(1);
        make_use(&f);
        assert!(listing(&f).is_empty(), "{how}: {:?}", listing(&f));
        let r = cleanup(&f.host(), apply(), &Tuning::default()).unwrap();
        assert!(r.removed.is_empty(), "{how}: {r}");
        assert!(f.has_block("sda"), "{how}: the disk was deleted");
        assert!(!f.flushes().contains(&"sda".to_string()), "{how}");
    }
}

#[test]
fn multipathd_holding_a_dead_path_open_does_not_keep_it() {
    // multipathd keeps every path it monitors open for its checker: no user of the data.
    let f = host_with_leftovers();
    f.opened_by(555, "multipathd", "sdc");
    assert!(listing(&f).contains(&"disk sdc".to_string()));
    let r = cleanup(&f.host(), apply(), &Tuning::default()).unwrap();
    assert!(r.clean(), "{r}");
    assert!(!f.has_block("sdc"));
}

#[test]
fn cleanup_asks_multipathd_within_the_configured_timeout() {
    let f = host_with_leftovers();
    let tuning = Tuning {
        multipathd_query_timeout: std::time::Duration::from_secs(17),
        ..Tuning::default()
    };
    cleanup(&f.host(), CleanupOptions::default(), &tuning).unwrap();
    let asked = f.multipathd_timeouts();
    assert!(!asked.is_empty(), "multipathd not asked");
    for (cmd, timeout) in asked {
        assert_eq!(timeout, tuning.multipathd_query_timeout, "{cmd}");
    }
}
