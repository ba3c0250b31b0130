//! Connect, extend and paths on fake hosts: a fake target behind a scripted iscsiadm, and a
//! fake kernel that makes a LUN's disk appear only when it is scanned.

use brick::iscsi::{extend_volume, volume_paths};
use brick::testing::FakeHost;
use std::time::Duration;

use brick::host::Clock;
use brick::iscsi::{connect_volume, disconnect_volume, ConnectOptions, Connected};
use brick::{ConnectionProperties, DisconnectOptions, DisconnectReport, Tuning};

const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:tgt1";
const WWID1: &str = "naa.6001405deadbeef00010000000000000";
const WWN1: &str = "36001405deadbeef00010000000000000";
const WWID2: &str = "naa.6001405deadbeef00020000000000000";
const WWN2: &str = "36001405deadbeef00020000000000000";
const P1: &str = "127.0.0.1:3260";
const P2: &str = "127.0.0.2:3260";
const MP: ConnectOptions = ConnectOptions {
    multipath: true,
    iface: None,
};
const SP: ConnectOptions = ConnectOptions {
    multipath: false,
    iface: None,
};

fn props(lun: u64, extra: &str) -> ConnectionProperties {
    ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":{lun},"volume_id":"v{lun}",
            "target_portals":["{P1}","{P2}"],"target_iqns":["{IQN}","{IQN}"],"target_luns":[{lun},{lun}]{extra}}}"#
    ))
    .unwrap()
}

fn single_props(lun: u64) -> ConnectionProperties {
    ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":{lun}}}"#
    ))
    .unwrap()
}

fn lab() -> FakeHost {
    let f = FakeHost::new();
    f.target(P1, IQN, &[(1, WWID1), (2, WWID2)])
        .target(P2, IQN, &[(1, WWID1), (2, WWID2)]);
    f
}

fn count(f: &FakeHost, prefix: &[&str]) -> usize {
    f.calls()
        .iter()
        .filter(|c| c.len() >= prefix.len() && c.iter().zip(prefix).all(|(a, b)| a == b))
        .count()
}

/// A plain disconnect of LUN `lun`'s volume, with the device_info its connect returned.
fn disconnect(f: &FakeHost, lun: u64, c: &Connected) -> DisconnectReport {
    disconnect_volume(
        &f.host(),
        &props(lun, ""),
        Some(&c.device_info),
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap()
}

/// The multipath map of `wwn` as the fake's sysfs shows it (the first one, if several).
fn map_of(f: &FakeHost, wwn: &str) -> brick::DmMap {
    brick::iscsi::inspect(&f.host())
        .unwrap()
        .into_iter()
        .flat_map(|s| s.disks)
        .filter_map(|d| d.map)
        .find(|m| m.uuid == format!("mpath-{wwn}"))
        .unwrap_or_else(|| panic!("no map of {wwn}"))
}

/// The multipath map of WWN1.
fn map_of_wwn1(f: &FakeHost) -> brick::DmMap {
    map_of(f, WWN1)
}

fn assert_host_as_before(f: &FakeHost) {
    assert!(
        f.session_ids().is_empty(),
        "sessions: {:?}",
        f.session_ids()
    );
    assert!(
        !f.has_node(IQN, P1) && f.node_record(IQN, P1).is_none(),
        "node record at P1"
    );
    assert!(f.node_record(IQN, P2).is_none(), "node record at P2");
    for d in ["sda", "sdb", "sdc", "dm-0"] {
        assert!(!f.has_block(d), "{d} left");
    }
}

#[test]
fn single_path_connect_scans_only_the_lun_and_disconnect_undoes_it() {
    let f = lab();
    let c = connect_volume(&f.host(), &single_props(1), SP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/sda"));
    assert_eq!(c.device_info.scsi_wwn.as_deref(), Some(WWN1));
    assert_eq!(c.device_info.multipath_id, None);
    // Only LUN 1 was scanned: LUN 2 of the same target has no disk.
    assert_eq!(
        f.attr_writes()
            .iter()
            .filter(|(p, _)| p.ends_with("/scan"))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>(),
        ["- - 1"]
    );
    assert!(!f.has_block("sdb"));
    let rec = f.node_record(IQN, P1).unwrap();
    for line in [
        "node.startup = manual",
        "node.session.scan = manual",
        "node.session.initial_login_retry_max = 1",
        "node.conn[0].timeo.login_timeout = 5",
    ] {
        assert!(rec.contains(line), "{line} missing from {rec}");
    }
    let r = disconnect_volume(
        &f.host(),
        &single_props(1),
        Some(&c.device_info),
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap();
    assert!(r.clean());
    assert_host_as_before(&f);
}

#[test]
fn sam2_addressing_scans_and_finds_the_lun_the_kernel_numbers_flat() {
    // The array says LUN 256 and addresses it flat (SAM-2 from 256): the kernel shows 16640.
    let f = FakeHost::new();
    f.target(P1, IQN, &[(16640, WWID1), (256, WWID2)]);
    let p = ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":256,"addressing_mode":"SAM2"}}"#
    ))
    .unwrap();
    let c = connect_volume(&f.host(), &p, SP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.scsi_wwn.as_deref(), Some(WWN1));
    assert_eq!(scans(&f), ["- - 16640"]);
    disconnect_volume(
        &f.host(),
        &p,
        Some(&c.device_info),
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap();
    assert!(f.session_ids().is_empty());
}

fn scans(f: &FakeHost) -> Vec<String> {
    f.attr_writes()
        .into_iter()
        .filter(|(p, _)| p.ends_with("/scan"))
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn lun_mapped_late_is_found_by_a_later_scan() {
    let f = lab();
    f.auto_multipath().lun_mapped_late(IQN, 1, 2);
    let t0 = f.clock().now();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.paths.len(), 2, "{:?}", c.failed_paths);
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    // Each path: the scan at login finds nothing, so do the next (1 s later); the third (2 s
    // after that) finds the LUN. Only LUN 1 is ever scanned.
    assert_eq!(scans(&f), ["- - 1"; 6]);
    let waited = f.clock().now() - t0;
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let r = disconnect(&f, 1, &c);
    assert!(r.clean(), "{r:?}");
    assert_host_as_before(&f);
}

#[test]
fn lun_the_target_does_not_offer_fails_by_the_deadline_and_leaves_the_host_as_it_was() {
    // One path (one thread on the fake clock, whose sleeps would add up across path threads).
    let f = lab();
    let t0 = f.clock().now();
    let e = connect_volume(&f.host(), &single_props(9), SP, &Tuning::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("the target offers no LUN 9"), "{msg}");
    assert!(msg.contains("target_lun"), "{msg}");
    let waited = f.clock().now() - t0;
    let deadline = Tuning::default().device_deadline;
    assert!(waited >= deadline, "gave up after {waited:?}");
    assert!(waited < deadline + Duration::from_secs(1), "{waited:?}");
    // Rescanned, 1 s, 2 s, then 4 s apart: more than twice, far from a busy loop; LUN 9 only.
    let s = scans(&f);
    assert!((5..=10).contains(&s.len()), "{s:?}");
    assert!(s.iter().all(|v| v == "- - 9"), "{s:?}");
    assert_host_as_before(&f);
}

#[test]
fn multipath_connect_logs_in_everywhere_and_returns_the_map() {
    let f = lab();
    f.auto_multipath();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    assert_eq!(c.device_info.multipath_id.as_deref(), Some(WWN1));
    assert_eq!(c.paths.len(), 2);
    assert_eq!(f.session_ids().len(), 2);
    assert_eq!(
        f.discoveries(),
        [P1, P2],
        "each portal checked by discovery"
    );
    assert_eq!(count(&f, &["iscsiadm", "-m", "discovery"]), 0, "in-process");
    disconnect(&f, 1, &c);
    assert_host_as_before(&f);
}

#[test]
fn first_path_goes_to_multipathd_while_another_portal_still_logs_in() {
    // P2's login lasts until multipathd has been handed a path (or 5 s): brick hands P1's disk
    // over as soon as it shows, so the map is under way while P2 logs in, and P2's path joins it.
    let f = lab();
    f.login_waits_for_a_handed_path(P2);
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(f.held_login_saw_a_handed_path(), Some(true));
    assert_eq!(map_of_wwn1(&f).slaves, c.paths);
    assert_eq!(c.paths.len(), 2);
    let handed: Vec<String> = f
        .multipathd_cmds()
        .into_iter()
        .filter(|c| c.starts_with("add path "))
        .collect();
    assert_eq!(handed.len(), 2, "each path handed over once: {handed:?}");
    disconnect(&f, 1, &c);
    assert_host_as_before(&f);
}

#[test]
fn a_session_is_logged_out_as_soon_as_its_own_disks_are_gone() {
    // The second path's delete lasts until a session has been logged out (or 5 s): the first
    // path's session goes as soon as its disk is gone, without waiting for the other delete.
    let f = lab();
    f.auto_multipath();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    f.delete_waits_for_a_logout(&c.paths[1]);
    let r = disconnect(&f, 1, &c);
    assert_eq!(f.held_delete_saw_a_logout(), Some(true));
    assert_eq!(r.sessions_logged_out().len(), 2, "{r:?}");
    assert_host_as_before(&f);
}

#[test]
fn multipath_connect_on_one_portal_finds_the_others_by_discovery() {
    // A Cinder driver that returns target_portal only: os-brick, asked for multipath, takes
    // every portal a sendtargets discovery lists for the target. Another target the portal
    // offers is neither logged in to nor recorded.
    const OTHER: &str = "iqn.2003-01.org.linux-iscsi.lab:other";
    let f = lab();
    f.target(P1, OTHER, &[(1, WWID2)]);
    f.discovery_answer(P1, &[(P1, IQN), (P2, IQN), (P1, OTHER)]);
    f.auto_multipath();
    let c = connect_volume(&f.host(), &single_props(1), MP, &Tuning::default()).unwrap();
    assert_eq!(c.paths.len(), 2, "{c:?}");
    assert_eq!(c.device_info.multipath_id.as_deref(), Some(WWN1));
    assert_eq!(
        c.discovered_portals
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        [P2]
    );
    assert_eq!(f.session_ids().len(), 2);
    assert!(!f.has_node(OTHER, P1), "a node record of the other target");
    // The disconnect, with the same one-portal properties, finds both paths from the host.
    disconnect_volume(
        &f.host(),
        &single_props(1),
        Some(&c.device_info),
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap();
    assert_host_as_before(&f);
}

#[test]
fn one_portal_without_multipath_or_with_listed_portals_is_not_expanded() {
    let f = lab();
    f.discovery_answer(P1, &[(P1, IQN), (P2, IQN)]);
    f.auto_multipath();
    let c = connect_volume(&f.host(), &single_props(1), SP, &Tuning::default()).unwrap();
    assert_eq!((c.paths.len(), c.discovered_portals.len()), (1, 0));
    assert_eq!(f.session_ids().len(), 1);
    // target_portals given, with one portal: taken as the whole list.
    let listed = ConnectionProperties::from_json(&format!(
        r#"{{"target_portals":["{P1}"],"target_iqns":["{IQN}"],"target_luns":[2]}}"#
    ))
    .unwrap();
    let c = connect_volume(&f.host(), &listed, MP, &Tuning::default()).unwrap();
    assert_eq!((c.paths.len(), c.discovered_portals.len()), (1, 0));
}

#[test]
fn a_failed_discovery_of_more_portals_leaves_the_one_given() {
    let f = lab();
    f.auto_multipath();
    f.portal_dead(P1);
    let e = connect_volume(&f.host(), &single_props(1), MP, &Tuning::default()).unwrap_err();
    assert!(e.to_string().contains(P1), "{e}");
    assert_eq!(f.session_ids().len(), 0);
    assert_host_as_before(&f);
}

#[test]
fn target_discovered_skips_discovery() {
    let f = lab();
    connect_volume(
        &f.host(),
        &props(1, r#","target_discovered":true"#),
        MP,
        &Tuning::default(),
    )
    .unwrap();
    assert!(f.discoveries().is_empty());
}

#[test]
fn chap_secret_goes_to_the_node_record_never_to_an_argv() {
    let f = lab();
    f.target_chap("user1", "Chap-S3cret");
    let p = props(
        1,
        r#","auth_method":"CHAP","auth_username":"user1","auth_password":"Chap-S3cret""#,
    );
    let c = connect_volume(&f.host(), &p, MP, &Tuning::default()).unwrap();
    assert_eq!(c.paths.len(), 2);
    assert!(
        f.calls()
            .iter()
            .flatten()
            .all(|a| !a.contains("Chap-S3cret")),
        "secret on a command line"
    );
    let rec = f.node_record(IQN, P1).unwrap();
    assert!(rec.contains("node.session.auth.authmethod = CHAP"));
    assert!(rec.contains("node.session.auth.password = Chap-S3cret"));
}

#[test]
fn wrong_chap_password_fails_cleanly_and_leaves_nothing() {
    let f = lab();
    f.target_chap("user1", "right");
    let p = props(
        1,
        r#","auth_method":"CHAP","auth_username":"user1","auth_password":"wrong-pw""#,
    );
    let e = connect_volume(&f.host(), &p, MP, &Tuning::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("authenticate"), "{msg}");
    assert!(
        msg.contains("exit code 24: the target refused the CHAP credentials"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-pw"), "{msg}");
    assert_host_as_before(&f);
}

#[test]
fn unreachable_portal_among_two_still_connects_and_leaves_no_record_for_it() {
    let f = lab();
    f.auto_multipath();
    f.portal_dead(P2);
    let c = connect_volume(
        &f.host(),
        &props(1, r#","target_discovered":true"#),
        MP,
        &Tuning::default(),
    )
    .unwrap();
    assert_eq!(c.paths.len(), 1);
    assert_eq!(c.failed_paths.len(), 1);
    assert_eq!(c.failed_paths[0].portal(), "127.0.0.2:3260");
    assert_eq!(f.session_ids().len(), 1);
    assert!(
        f.node_record(IQN, P2).is_none(),
        "the dead portal's record would let iscsid log in later"
    );
    assert!(f.node_record(IQN, P1).is_some());
}

#[test]
fn all_portals_dead_fails_and_leaves_the_host_as_it_was() {
    let f = lab();
    f.portal_dead(P1).portal_dead(P2);
    let e = connect_volume(
        &f.host(),
        &props(1, r#","target_discovered":true"#),
        MP,
        &Tuning::default(),
    )
    .unwrap_err();
    // One sentence naming the volume and, for each portal, why its path failed.
    let msg = e.to_string();
    assert!(msg.starts_with("v1 not connected: "), "{msg}");
    assert!(msg.contains(P1) && msg.contains(P2), "{msg}");
    assert!(!msg.contains("exit code none"), "{msg}");
    assert_host_as_before(&f);
}

#[test]
fn portal_that_does_not_offer_the_target_is_refused_by_discovery() {
    // The discovery runs beside the login; its verdict names the cause, and whatever the login
    // attempt made (the node record) is gone again.
    let f = FakeHost::new();
    f.target(P1, "iqn.2003-01.org.linux-iscsi.lab:other", &[(1, WWID1)]);
    let e = connect_volume(&f.host(), &single_props(1), SP, &Tuning::default()).unwrap_err();
    assert!(e.to_string().contains("does not offer target"), "{e}");
    assert_eq!(f.discoveries(), [P1]);
    assert_host_as_before(&f);
}

#[test]
fn path_whose_portal_is_not_offered_by_discovery_is_undone_even_if_its_login_worked() {
    // The portal lets us log in, but its sendtargets answer does not list the target: the path
    // is not trusted, and what it made goes.
    let f = lab();
    f.discovery_answer(P1, &[(P2, "iqn.2003-01.org.linux-iscsi.lab:other")]);
    let e = connect_volume(&f.host(), &single_props(1), SP, &Tuning::default()).unwrap_err();
    assert!(e.to_string().contains("does not offer target"), "{e}");
    assert_host_as_before(&f);
}

#[test]
fn existing_session_is_reused_without_a_second_login() {
    let f = lab();
    f.auto_multipath();
    let c1 = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    let logins = count(&f, &["iscsiadm", "-m", "node"]);
    let c2 = connect_volume(&f.host(), &props(2, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(
        count(&f, &["iscsiadm", "-m", "node"]),
        logins,
        "no new node or login call"
    );
    assert_eq!(f.session_ids().len(), 2);
    assert_ne!(c1.device_info.path, c2.device_info.path);
    // Disconnecting one keeps the sessions for the other.
    let r = disconnect(&f, 1, &c1);
    assert_eq!(r.kept.len(), 2);
    assert_eq!(f.session_ids().len(), 2);
    disconnect(&f, 2, &c2);
    assert_host_as_before(&f);
}

#[test]
fn session_in_recovery_fails_its_path_at_once_and_the_volume_attaches_on_the_other() {
    let f = lab();
    f.auto_multipath();
    let c1 = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    // P2's portal stops answering: its session goes into recovery.
    let s2 = brick::iscsi::inspect(&f.host())
        .unwrap()
        .into_iter()
        .map(|t| t.session)
        .find(|s| s.portal.to_string() == P2)
        .unwrap();
    f.session_state(s2.id, "FAILED");
    let scans_before = scans(&f).len();
    let t0 = f.clock().now();
    let c2 = connect_volume(&f.host(), &props(2, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c2.paths.len(), 1, "{:?}", c2.failed_paths);
    assert_eq!(c2.failed_paths.len(), 1);
    let why = &c2.failed_paths[0];
    assert_eq!(why.portal(), P2);
    assert!(
        matches!(why.error, brick::PathError::SessionInRecovery { .. }),
        "{why}"
    );
    let text = why.to_string();
    assert!(
        text.contains(P2) && text.contains("FAILED") && text.contains("in recovery"),
        "{text}"
    );
    // No waiting for a scan that cannot work, and no scan through the failed session.
    let waited = f.clock().now() - t0;
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(scans(&f).len(), scans_before + 1, "{:?}", scans(&f));
    // The portal is back: both volumes detach, the host is as before.
    f.session_state(s2.id, "LOGGED_IN");
    disconnect(&f, 1, &c1);
    disconnect(&f, 2, &c2);
    assert_host_as_before(&f);
}

#[test]
fn single_path_mode_tries_portals_in_turn() {
    let f = lab();
    f.portal_dead(P1);
    let c = connect_volume(
        &f.host(),
        &props(1, r#","target_discovered":true"#),
        SP,
        &Tuning::default(),
    )
    .unwrap();
    assert_eq!(c.paths.len(), 1);
    assert_eq!(f.session_ids().len(), 1);
    assert!(f.node_record(IQN, P1).is_none());
    assert!(f.node_record(IQN, P2).is_some());
}

#[test]
fn extend_rescans_paths_resizes_the_map_and_returns_the_size() {
    let f = lab();
    f.auto_multipath();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    for d in &c.paths {
        f.set_size(d, 128 << 20);
    }
    f.set_size("dm-0", 128 << 20);
    let size = extend_volume(
        &f.host(),
        &props(1, ""),
        Some(&c.device_info),
        &Tuning::default(),
    )
    .unwrap();
    assert_eq!(size, brick::types::Bytes(128 << 20));
    let rescans = f
        .attr_writes()
        .into_iter()
        .filter(|(p, v)| p.ends_with("device/rescan") && v == "1")
        .count();
    assert_eq!(rescans, 2);
    assert!(
        f.multipathd_cmds().contains(&format!("resize map {WWN1}")),
        "{:?}",
        f.multipathd_cmds()
    );
    let paths = volume_paths(&f.host(), &props(1, ""), None).unwrap();
    assert_eq!(paths[0], "/dev/dm-0");
    assert_eq!(paths.len(), 3);
}

#[test]
fn paths_are_handed_to_multipathd_when_udev_does_not_tell_it() {
    // No auto_multipath: the map appears only because brick says "add path" on the socket.
    let f = lab();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    let cmds = f.multipathd_cmds();
    assert_eq!(
        cmds[0], "show daemon",
        "multipathd asked first whether it runs"
    );
    let mut first = cmds[1..3].to_vec();
    first.sort();
    assert_eq!(first, ["add path sda", "add path sdb"]);
    assert!(cmds.contains(&format!("add map {WWN1}")), "{cmds:?}");
    // Each path is handed over once: multipathd answers a path it holds back with a "change"
    // uevent, and each one makes udev run every disk rule again.
    for p in ["sda", "sdb"] {
        let n = cmds
            .iter()
            .filter(|c| **c == format!("add path {p}"))
            .count();
        assert_eq!(n, 1, "{p} handed over {n} times: {cmds:?}");
    }
    // multipathd held the second path back until told the map was there: both are in it now.
    assert_eq!(c.paths.len(), 2);
    let mut slaves = map_of_wwn1(&f).slaves;
    slaves.sort();
    assert_eq!(slaves, ["sda", "sdb"]);
    assert!(
        f.calls().iter().all(|c| c[0] != "multipathd"),
        "no multipathd process"
    );
}

fn wwids(f: &FakeHost) -> Vec<String> {
    std::fs::read_to_string(f.root().join("etc/multipath/wwids"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(str::to_string)
        .collect()
}

#[test]
fn multipath_connect_registers_the_wwid_so_that_find_multipaths_strict_builds_the_map() {
    // As `multipath -a` would: with find_multipaths strict, multipathd builds no map for a WWID
    // it does not know.
    let f = lab();
    f.find_multipaths_strict();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    assert_eq!(c.paths.len(), 2);
    assert_eq!(wwids(&f), [format!("/{WWN1}/")]);
    // A second attach of the same volume does not list it twice.
    connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(wwids(&f), [format!("/{WWN1}/")]);
}

#[test]
fn single_path_connect_leaves_multipaths_wwids_alone() {
    let f = lab();
    connect_volume(&f.host(), &single_props(1), SP, &Tuning::default()).unwrap();
    assert!(!f.root().join("etc/multipath/wwids").exists());
}

#[test]
fn failed_multipath_connect_takes_the_wwid_it_registered_out_again() {
    // Both logins work and the map is built, but neither portal's sendtargets answer lists the
    // target: the connect fails, and the wwids file is as it was (another volume's WWID stays).
    let f = lab();
    let dir = f.root().join("etc/multipath");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("wwids"), "# Valid WWIDs:\n/3600a0980other/\n").unwrap();
    let other = "iqn.2003-01.org.linux-iscsi.lab:other";
    f.discovery_answer(P1, &[(P1, other)])
        .discovery_answer(P2, &[(P2, other)]);
    let e = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap_err();
    assert!(e.to_string().contains("does not offer target"), "{e}");
    assert_eq!(
        std::fs::read_to_string(dir.join("wwids")).unwrap(),
        "# Valid WWIDs:\n/3600a0980other/\n"
    );
    assert_host_as_before(&f);
}

#[test]
fn failed_connect_keeps_the_wwid_while_a_map_of_it_stays_in_use() {
    // As above, but the map cannot go (a concurrent attach of the same volume has it open): the
    // WWID that map needs stays registered.
    let f = lab();
    let other = "iqn.2003-01.org.linux-iscsi.lab:other";
    f.discovery_answer(P1, &[(P1, other)])
        .discovery_answer(P2, &[(P2, other)]);
    f.fail_dm(WWN1, brick::host::KernelError::from_errno(libc::EBUSY));
    connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap_err();
    assert!(f.has_block("dm-0"), "the map in use stays");
    assert_eq!(wwids(&f), [format!("/{WWN1}/")]);
}

#[test]
fn without_multipathd_a_multipath_connect_fails_before_any_login() {
    // A bare path handed out as a multipath volume could be taken by a map later, and a caller
    // writing to it would bypass the map: a multipath connect returns a map or fails.
    let f = lab();
    f.multipathd_down();
    let e = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind(), brick::ErrorKind::Prerequisite, "{msg}");
    assert!(msg.contains("multipathd does not answer"), "{msg}");
    assert!(msg.contains("--single-path"), "{msg}");
    assert!(f.calls().is_empty(), "nothing was run: {:?}", f.calls());
    assert_host_as_before(&f);
    let waited: std::time::Duration = f.clock().sleeps().iter().sum();
    assert!(
        waited < std::time::Duration::from_secs(1),
        "waited {waited:?} for a map that cannot come"
    );
    assert!(wwids(&f).is_empty(), "{:?}", wwids(&f));
}

#[test]
fn multipath_connect_whose_map_never_comes_fails_after_the_deadline_and_leaves_nothing() {
    // multipathd takes the paths but builds no map (as without udev, where it cannot get the
    // paths' WWID): after the map deadline the connect fails and undoes everything.
    let f = lab();
    f.multipathd_builds_no_maps();
    let t0 = f.clock().now();
    let e = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("multipathd built no map of WWN"), "{msg}");
    assert!(f.clock().now() - t0 >= Tuning::default().map_deadline);
    assert_host_as_before(&f);
}

#[test]
fn failed_connect_keeps_a_session_another_attach_started_using_and_its_record() {
    // Connect X (LUN 9, which the target does not offer) made the session; before its undo,
    // another attach scanned LUN 1 on that session. X fails, and its undo, under the target
    // lock, finds LUN 1 in use: the session and its node record stay.
    let f = lab();
    f.another_attach_scans(IQN, 9, 1);
    connect_volume(&f.host(), &single_props(9), SP, &Tuning::default()).unwrap_err();
    assert_eq!(
        f.session_ids().len(),
        1,
        "the session went from under LUN 1"
    );
    assert!(f.has_node(IQN, P1), "its node record went");
    assert!(f.has_block("sda"), "LUN 1's disk went");
    assert_eq!(count(&f, &["iscsiadm", "-m", "session"]), 0, "no logout");
}

#[test]
fn multipath_path_refused_by_discovery_leaves_the_map_and_the_host() {
    // Both logins work, but the sendtargets answer lists the target on the first portal only:
    // the second path goes (out of the map first), the volume keeps the first.
    let f = lab();
    f.discovery_answer(P1, &[(P1, IQN)])
        .discovery_answer(P2, &[(P1, IQN)]);
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.paths.len(), 1, "{c:?}");
    assert_eq!(c.failed_paths.len(), 1, "{c:?}");
    assert!(
        matches!(c.failed_paths[0].error, brick::PathError::Discovery(_)),
        "{c:?}"
    );
    assert!(
        c.failed_paths[0]
            .to_string()
            .contains("does not offer target"),
        "{c:?}"
    );
    let map = map_of_wwn1(&f);
    assert_eq!(map.slaves, c.paths);
    assert_eq!(f.session_ids().len(), 1);
    assert!(f.has_node(IQN, P1) && !f.has_node(IQN, P2));
}

/// The path multipathd built the map from: the first one handed to it.
fn first_handed(f: &FakeHost) -> String {
    f.multipathd_cmds()
        .iter()
        .find_map(|c| c.strip_prefix("add path "))
        .expect("a path handed to multipathd")
        .to_string()
}

#[test]
fn udev_looks_again_at_the_path_the_map_was_built_from_when_brick_registered_the_wwid() {
    // udev has not finished with the new disks when the map is there (as in the lab): its
    // `multipath -u` on the first one may have run before brick registered the WWID, and
    // multipathd leaves that path alone (it did not record the WWID itself). The second path
    // joined a map that existed: multipathd asks udev about it.
    let f = lab();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.paths.len(), 2);
    assert_eq!(f.uevents_asked(), [first_handed(&f)]);

    // Attached again later, the WWID is registered before the disks show: udev's first look
    // at them is right, and nothing is asked.
    disconnect(&f, 1, &c);
    connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(f.uevents_asked(), Vec::<String>::new());
}

#[test]
fn udev_looks_again_at_a_path_the_map_was_built_from_that_it_called_no_path_of_a_map() {
    // udev was quicker than brick and described both disks as plain disks (the WWID was not
    // registered yet). Its record says its look is over: the path the map was built from is
    // asked about whoever registered the WWID; the other one joined a map that existed, and that
    // is multipathd's to ask about.
    let f = lab();
    std::fs::create_dir_all(f.root().join("etc/multipath")).unwrap();
    std::fs::write(f.root().join("etc/multipath/wwids"), format!("/{WWN1}/\n")).unwrap();
    f.udev_describes_new_disks(false);
    connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(f.uevents_asked(), [first_handed(&f)]);

    let f = lab();
    f.udev_describes_new_disks(true);
    connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(
        f.uevents_asked(),
        Vec::<String>::new(),
        "udev knows already"
    );
}

#[test]
fn udev_looks_again_at_every_path_of_a_map_built_from_paths_multipathd_held() {
    // Sessions and disks were there before the connect, with find_multipaths strict: udev called
    // both disks plain disks, and multipathd holds both without a map. Once brick registers the
    // WWID, the first `add path` builds the map from both at once, and multipathd asks udev about
    // neither: brick asks about both.
    let f = lab();
    f.find_multipaths_strict();
    f.session(1, P1, IQN)
        .session(2, P2, IQN)
        .disk(1, 1, "sda", WWID1)
        .disk(2, 1, "sdb", WWID1)
        .udev_record("sda", false)
        .udev_record("sdb", false);
    let host = f.host();
    for d in ["sda", "sdb"] {
        host.multipathd_cmd(&format!("add path {d}"), std::time::Duration::from_secs(1))
            .unwrap();
    }
    assert!(!f.has_block("dm-0"), "no map for an unknown WWID");
    let c = connect_volume(&host, &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    assert_eq!(c.paths.len(), 2);
    assert_eq!(f.uevents_asked(), ["sda", "sdb"]);
}

#[test]
fn single_path_connect_asks_udev_nothing() {
    let f = lab();
    connect_volume(&f.host(), &single_props(1), SP, &Tuning::default()).unwrap();
    assert_eq!(f.uevents_asked(), Vec::<String>::new());
}

#[test]
fn disk_already_there_is_rescanned_before_its_wwid_is_trusted() {
    // A session another tool left holds LUN 1's disk from an earlier volume (the kernel keeps
    // the WWID it read at the first scan); the array has since given LUN 1 to volume WWID1.
    let f = lab();
    let old = "naa.6001405deadbeef00090000000000000";
    f.session(1, P1, IQN).disk(1, 1, "sda", old);
    let c = connect_volume(&f.host(), &single_props(1), SP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.scsi_wwn.as_deref(), Some(WWN1), "{c:?}");
    assert!(f.events().contains(&"rescan sda".to_string()));
}

#[test]
fn failed_connect_leaves_a_map_that_holds_another_attachs_path() {
    // Another attach of the same volume, through a third portal, has its path in the map; this
    // connect's paths join it, then fail (neither portal offers the target). The map is that
    // other attach's too: it stays, with its path.
    let f = lab();
    let p3 = "127.0.0.3:3260";
    f.session(9, p3, IQN)
        .disk(9, 1, "sdz", WWID1)
        .map("dm-0", &["sdz"]);
    let other = "iqn.2003-01.org.linux-iscsi.lab:other";
    f.discovery_answer(P1, &[(P1, other)])
        .discovery_answer(P2, &[(P2, other)]);
    connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap_err();
    assert!(f.has_block("dm-0"), "the other attach's map was removed");
    assert!(f.has_block("sdz"));
    let map = map_of_wwn1(&f);
    assert_eq!(map.slaves, ["sdz"]);
    assert_eq!(f.session_ids(), [9]);
}

fn multipath_tool_runs(f: &FakeHost) -> Vec<String> {
    f.calls()
        .iter()
        .filter(|c| c.iter().any(|a| a == "multipath"))
        .map(|c| c[1..].join(" "))
        .collect()
}

#[test]
fn without_udevd_multipath_connect_returns_the_map_with_both_paths_never_the_bare_disk() {
    // Issue 15: no udevd, multipathd at its default uid_attribute: it answers "fail" to each
    // `add path` (no WWID in udev's record) and never builds the map by itself.
    let f = lab();
    f.without_udevd();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    let mut slaves = map_of_wwn1(&f).slaves;
    slaves.sort();
    assert_eq!(slaves, ["sda", "sdb"]);
    // The multipath tool built it (once per path), and multipathd was told to adopt it (it then watches
    // the paths).
    let runs = multipath_tool_runs(&f);
    assert_eq!(runs.len(), 2, "once per path: {runs:?}");
    assert!(
        f.multipathd_cmds().contains(&format!("add map {WWN1}")),
        "{:?}",
        f.multipathd_cmds()
    );
}

#[test]
fn without_udevd_each_of_two_volumes_gets_its_own_map() {
    let f = lab();
    f.without_udevd();
    let c1 = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    let c2 = connect_volume(&f.host(), &props(2, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c1.device_info.path.as_deref(), Some("/dev/dm-0"));
    assert_eq!(c2.device_info.path.as_deref(), Some("/dev/dm-1"));
    for (wwn, want) in [(WWN1, ["sda", "sdb"]), (WWN2, ["sdc", "sdd"])] {
        let mut slaves = map_of(&f, wwn).slaves;
        slaves.sort();
        assert_eq!(slaves, want, "{wwn}");
    }
}

#[test]
fn with_udevd_the_multipath_tool_is_not_run() {
    // The normal path: multipathd builds the map from `add path`; no extra process.
    let f = lab();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    assert!(multipath_tool_runs(&f).is_empty());
}

#[test]
fn without_udevd_a_leftover_udev_control_socket_does_not_hide_it() {
    // Seen in the lab: `udevadm control --exit` left /run/udev/control behind.
    let f = lab();
    f.without_udevd();
    std::fs::create_dir_all(f.root().join("run/udev")).unwrap();
    std::fs::write(f.root().join("run/udev/control"), "").unwrap();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
}

fn iface_opts(multipath: bool, iface: &str) -> ConnectOptions {
    ConnectOptions {
        multipath,
        iface: Some(iface.to_string()),
    }
}

#[test]
fn iser_sessions_are_made_on_the_iser_interface_and_shown_so() {
    let f = lab();
    // A Cinder iSER driver says so in the connection_info; the caller names no interface.
    let p = ConnectionProperties::from_json(&format!(
        r#"{{"driver_volume_type":"iser","data":{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":1}}}}"#
    ))
    .unwrap();
    let c = connect_volume(&f.host(), &p, SP, &Tuning::default()).unwrap();
    let rec = f.node_record(IQN, P1).unwrap();
    assert!(rec.contains("iface.iscsi_ifacename = iser"), "{rec}");
    assert!(rec.contains("iface.transport_name = iser"), "{rec}");
    assert!(f
        .calls()
        .iter()
        .any(|c| c.windows(2).any(|w| w == ["-I", "iser"])
            && c.last().is_some_and(|l| l == "--login")));
    let s = &brick::iscsi::inspect(&f.host()).unwrap()[0].session;
    assert_eq!((s.transport.as_str(), s.iface.as_str()), ("iser", "iser"));
    disconnect_volume(
        &f.host(),
        &p,
        Some(&c.device_info),
        DisconnectOptions::default(),
        &Tuning::default(),
    )
    .unwrap();
    assert_host_as_before(&f);
}

#[test]
fn a_session_on_another_interface_is_not_reused() {
    let f = lab();
    // A TCP session to the target exists (another attach); an iSER connect makes its own.
    connect_volume(&f.host(), &single_props(2), SP, &Tuning::default()).unwrap();
    connect_volume(
        &f.host(),
        &single_props(1),
        iface_opts(false, "iser"),
        &Tuning::default(),
    )
    .unwrap();
    let sessions: Vec<(String, String)> = brick::iscsi::inspect(&f.host())
        .unwrap()
        .into_iter()
        .map(|t| (t.session.transport, t.session.iface))
        .collect();
    assert_eq!(
        sessions,
        [
            ("tcp".into(), "default".into()),
            ("iser".into(), "iser".into())
        ]
    );
}

#[test]
fn an_iface_record_gives_its_settings_to_the_node_record() {
    let f = lab();
    let dir = f.root().join("etc/iscsi/ifaces");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("storage-net"),
        "iface.iscsi_ifacename = storage-net\niface.net_ifacename = eth1\niface.transport_name = tcp\n",
    )
    .unwrap();
    connect_volume(
        &f.host(),
        &single_props(1),
        iface_opts(false, "storage-net"),
        &Tuning::default(),
    )
    .unwrap();
    let rec = f.node_record(IQN, P1).unwrap();
    for line in [
        "iface.iscsi_ifacename = storage-net",
        "iface.net_ifacename = eth1",
        "iface.transport_name = tcp",
    ] {
        assert!(rec.contains(line), "{line} missing from {rec}");
    }
    assert!(!rec.contains("iface.iscsi_ifacename = default"), "{rec}");
}

#[test]
fn an_unknown_iface_is_bad_input_before_anything_changes() {
    let f = lab();
    for name in ["nosuch", "../ifaces/x"] {
        let e = connect_volume(
            &f.host(),
            &single_props(1),
            iface_opts(true, name),
            &Tuning::default(),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("iface"), "{e}");
    }
    assert!(f.calls().is_empty() && f.discoveries().is_empty());
    assert_host_as_before(&f);
}

#[test]
fn with_udevd_stuck_multipath_connect_builds_the_map_itself_well_before_the_deadline() {
    // Issue 26 item 8: udevd runs, but its SCSI rules give the new disks no ID_SERIAL, so
    // multipathd ("failed to get udev uid") builds no map by itself within the deadline. After a
    // short wait brick builds the map as without udevd, with the WWID it read from sysfs.
    let f = lab();
    f.udevd_stuck();
    let t0 = f.clock().now();
    let c = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c.device_info.path.as_deref(), Some("/dev/dm-0"));
    let mut slaves = map_of_wwn1(&f).slaves;
    slaves.sort();
    assert_eq!(slaves, ["sda", "sdb"]);
    let waited = f.clock().now() - t0;
    assert!(waited < Tuning::default().map_deadline, "{waited:?}");
    // udev has seen both disks: the tool's first run takes both, and it runs once.
    assert_eq!(
        multipath_tool_runs(&f).len(),
        1,
        "{:?}",
        multipath_tool_runs(&f)
    );
    assert!(
        f.multipathd_cmds().contains(&format!("add map {WWN1}")),
        "{:?}",
        f.multipathd_cmds()
    );
}

#[test]
fn with_udevd_stuck_each_of_two_volumes_gets_its_own_map() {
    let f = lab();
    f.udevd_stuck();
    let c1 = connect_volume(&f.host(), &props(1, ""), MP, &Tuning::default()).unwrap();
    let c2 = connect_volume(&f.host(), &props(2, ""), MP, &Tuning::default()).unwrap();
    assert_eq!(c1.device_info.path.as_deref(), Some("/dev/dm-0"));
    assert_eq!(c2.device_info.path.as_deref(), Some("/dev/dm-1"));
    for (wwn, want) in [(WWN1, ["sda", "sdb"]), (WWN2, ["sdc", "sdd"])] {
        let mut slaves = map_of(&f, wwn).slaves;
        slaves.sort();
        assert_eq!(slaves, want, "{wwn}");
    }
}
