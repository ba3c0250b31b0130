//! `brick cleanup` of NVMe-oF leftovers on fake hosts: controllers with no namespace, md arrays
//! with no member left, a multipath map over namespaces with no path left; beside a live NVMe
//! volume whose controller, namespace and data stay, and what is not brick's to remove left
//! alone, with why.

use std::fs;

use brick::testing::FakeHost;
use brick::{cleanup, CleanupOptions, CleanupReport, Tuning};

const LIVE: &str = "nqn.2014-08.org.lab:live";
const GONE: &str = "nqn.2014-08.org.lab:gone";
const R1: &str = "nqn.2014-08.org.lab:r1";
const R2: &str = "nqn.2014-08.org.lab:r2";
const U_LIVE: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";
const U_GONE: &str = "2197a7c7-baf2-4a77-a0de-537c7ad1c8ca";
const U_R1: &str = "3c0a6d6e-8f1b-4b5e-9d2e-0c7c1a3e5f70";
const U_R2: &str = "4d1b7e7f-9a2c-4c6f-8e3f-1d8d2b4f6a81";
const P1: &str = "127.0.0.1:4420";
const P2: &str = "127.0.0.2:4420";

/// The block device (head) of namespace `uuid`.
fn head(f: &FakeHost, uuid: &str) -> String {
    fs::read_dir(f.root().join("sys/block"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| {
            fs::read_to_string(f.root().join(format!("sys/block/{n}/uuid")))
                .is_ok_and(|u| u.trim() == uuid)
        })
        .expect("the namespace's head")
}

/// The controller connected to `nqn`.
fn ctrl_of(f: &FakeHost, nqn: &str) -> String {
    f.nvme_controllers()
        .into_iter()
        .find(|c| {
            fs::read_to_string(f.root().join(format!("sys/class/nvme/{c}/subsysnqn")))
                .is_ok_and(|s| s.trim() == nqn)
        })
        .expect("a controller of the subsystem")
}

/// A live volume (LIVE, its namespace holding data, open in a process) and its leftovers:
/// - GONE's controller, whose namespace the target unmapped (no namespace left);
/// - an md array over R1's and R2's namespaces, which the targets unmapped (no member left,
///   and R1's and R2's controllers with no namespace).
///
/// Returns the host, the array, and the four controllers (live, gone, r1, r2).
fn host_with_leftovers() -> (FakeHost, String, [String; 4]) {
    let f = FakeHost::new();
    for (nqn, u) in [(LIVE, U_LIVE), (GONE, U_GONE), (R1, U_R1), (R2, U_R2)] {
        f.nvme_target(nqn, &[P1], &[(1, u)]);
        f.nvme_connected(nqn, P1);
    }
    f.nvme_ns_write(U_LIVE, 8192, b"live data");
    let live_head = head(&f, U_LIVE);
    f.opened_by(812, "qemu-kvm", &live_head);
    let md = f.md_array(&[&head(&f, U_R1), &head(&f, U_R2)]);
    let ctrls = [
        ctrl_of(&f, LIVE),
        ctrl_of(&f, GONE),
        ctrl_of(&f, R1),
        ctrl_of(&f, R2),
    ];
    f.nvme_unmap(GONE, 1).nvme_unmap(R1, 1).nvme_unmap(R2, 1);
    (f, md, ctrls)
}

fn run(f: &FakeHost, apply: bool) -> CleanupReport {
    let opts = CleanupOptions {
        apply,
        ..CleanupOptions::default()
    };
    cleanup(&f.host(), opts, &Tuning::default()).unwrap()
}

/// Each leftover as `KIND NAME`, from the report's JSON (what `brick cleanup --json` prints).
fn names(list: &[brick::Leftover]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .map(|l| {
            let j = serde_json::to_value(l).unwrap();
            let name = j
                .get("controller")
                .and_then(|c| c.get("name"))
                .or(j.get("md"))
                .or(j.get("map").and_then(|m| m.get("dev")))
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_string();
            format!("{} {name}", j["kind"].as_str().unwrap())
        })
        .collect();
    v.sort();
    v
}

fn left_alone(r: &CleanupReport) -> Vec<(String, String)> {
    r.left_alone
        .iter()
        .map(|(l, why)| (names(std::slice::from_ref(l))[0].clone(), why.clone()))
        .collect()
}

#[test]
fn lists_controllers_with_no_namespace_and_arrays_with_no_member_and_changes_nothing() {
    let (f, md, [live, gone, r1, r2]) = host_with_leftovers();
    let r = run(&f, false);
    let mut want = vec![
        format!("md_array {md}"),
        format!("nvme_controller {gone}"),
        format!("nvme_controller {r1}"),
        format!("nvme_controller {r2}"),
    ];
    want.sort();
    assert_eq!(names(&r.found), want);
    assert!(r.removed.is_empty());
    assert!(
        f.nvme_deleted().is_empty(),
        "a listing deleted a controller"
    );
    assert!(f.has_block(&md), "a listing stopped the array");
    assert_eq!(f.nvme_controllers(), vec![live, gone, r1, r2]);
    let text = r.to_string();
    assert!(
        text.contains(&format!("md array /dev/{md} with no member left")),
        "{text}"
    );
    assert!(text.contains("with no namespace"), "{text}");
}

#[test]
fn apply_removes_exactly_the_leftovers_and_keeps_the_live_volume_and_its_data() {
    let (f, md, [live, gone, r1, r2]) = host_with_leftovers();
    let live_head = head(&f, U_LIVE);
    let r = run(&f, true);
    assert!(r.clean(), "{r}");
    assert_eq!(names(&r.removed), names(&r.found));
    assert_eq!(r.found.len(), 4, "{r}");
    let mut deleted = f.nvme_deleted();
    deleted.sort();
    assert_eq!(deleted, vec![gone, r1, r2]);
    assert!(!f.has_block(&md), "the array with no member is still there");
    assert_eq!(f.nvme_controllers(), vec![live]);
    assert!(f.has_block(&live_head), "the live volume's namespace went");
    assert_eq!(f.nvme_ns_read(U_LIVE, 8192, 9), b"live data");
}

#[test]
fn a_controller_whose_subsystem_shows_a_namespace_on_another_controller_is_left_alone() {
    // Two controllers of one subsystem; the second shows no path of the namespace (an ANA
    // change, a rescan not done yet): the volume's disconnect decides, not cleanup.
    let f = FakeHost::new();
    f.nvme_target(LIVE, &[P1, P2], &[(1, U_LIVE)])
        .nvme_connected(LIVE, P1)
        .nvme_connected(LIVE, P2);
    let second = f.nvme_controllers()[1].clone();
    let dir = f.root().join(format!("sys/class/nvme/{second}"));
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("nvme") && n.contains('c') {
            fs::remove_dir_all(fs::canonicalize(e.path()).unwrap()).unwrap();
        }
    }
    let r = run(&f, true);
    assert!(r.found.is_empty(), "{r}");
    assert!(f.nvme_deleted().is_empty());
    let alone = left_alone(&r);
    assert_eq!(alone.len(), 1, "{r}");
    assert_eq!(alone[0].0, format!("nvme_controller {second}"));
    assert!(alone[0].1.contains("shows namespace"), "{}", alone[0].1);
}

#[test]
fn a_controller_another_host_nqn_made_is_left_alone() {
    let f = FakeHost::new();
    f.nvme_target(GONE, &[P1], &[(1, U_GONE)])
        .nvme_connected(GONE, P1)
        .nvme_unmap(GONE, 1);
    fs::write(
        f.root().join("etc/nvme/hostnqn"),
        "nqn.2014-08.org.nvmexpress:uuid:another-tenant\n",
    )
    .unwrap();
    let r = run(&f, true);
    assert!(r.found.is_empty(), "{r}");
    assert!(f.nvme_deleted().is_empty());
    assert!(left_alone(&r)[0].1.contains("not this host's"), "{r}");
}

#[test]
fn an_array_with_no_member_that_is_open_or_mounted_is_left_alone() {
    let (f, md, _) = host_with_leftovers();
    f.opened_by(900, "dd", &md);
    let r = run(&f, true);
    assert!(!names(&r.found).contains(&format!("md_array {md}")), "{r}");
    assert!(f.has_block(&md), "an open array was stopped");
    let alone = left_alone(&r);
    assert!(
        alone
            .iter()
            .any(|(l, why)| *l == format!("md_array {md}") && why.contains("process 900")),
        "{alone:?}"
    );
}

#[test]
fn a_controller_with_no_namespace_is_looked_at_again_after_the_grace_period() {
    // A connect in progress has its controller before its namespace: cleanup waits `grace`
    // and reads the controller again before calling it left over.
    let (f, _, _) = host_with_leftovers();
    let opts = CleanupOptions {
        apply: false,
        grace: std::time::Duration::from_secs(7),
    };
    cleanup(&f.host(), opts, &Tuning::default()).unwrap();
    assert!(
        f.clock()
            .sleeps()
            .contains(&std::time::Duration::from_secs(7)),
        "{:?}",
        f.clock().sleeps()
    );
}

#[test]
fn a_multipath_map_over_nvme_namespaces_with_no_path_left_is_found_and_removed() {
    // Native multipath off: multipathd built a map over the namespace; the target unmapped it.
    let f = FakeHost::new();
    f.nvme_multipath(false)
        .nvme_target(GONE, &[P1], &[(1, U_GONE)])
        .nvme_connected(GONE, P1)
        .nvme_unmap(GONE, 1);
    let wwid = format!("uuid.{U_GONE}");
    f.dm("dm-0", &wwid, &format!("mpath-{wwid}"), &[]);
    let r = run(&f, true);
    assert!(r.clean(), "{r}");
    let removed = names(&r.removed);
    assert!(removed.contains(&"map dm-0".to_string()), "{removed:?}");
    assert!(!f.has_block("dm-0"));
}
