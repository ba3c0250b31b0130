//! The VM lab (lab/run) as a cargo test: real LIO target, iscsid, multipathd and kernel, in a
//! virtme-ng VM. Ignored by a plain `cargo test` (it needs root, qemu, virtme-ng and a few
//! minutes; see lab/README.md), so that it shows as "ignored", never as a silent pass:
//!
//!     cargo test --test lab -- --ignored --nocapture
//!     BRICK_LAB_SCENARIOS="02 04" cargo test --test lab -- --ignored --nocapture
//!
//! It tests the brick binary cargo built for this test run (CARGO_BIN_EXE_brick), all scenarios in
//! one VM boot, and fails with the logs of the failed scenarios.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "boots the lab VM (root, qemu, virtme-ng, minutes): cargo test --test lab -- --ignored"]
fn lab_scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(root.join("lab/run"));
    cmd.current_dir(root)
        .env("BRICK_BIN", env!("CARGO_BIN_EXE_brick"));
    if let Ok(list) = std::env::var("BRICK_LAB_SCENARIOS") {
        cmd.args(list.split_whitespace());
    }
    // lab/run prints progress, a summary and the logs of failed scenarios itself.
    let out = cmd.output().expect("cannot start lab/run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    println!("{stdout}");
    assert!(
        out.status.success(),
        "lab/run failed ({}): failed scenarios and their logs are above; all logs in target/lab/latest",
        out.status
    );
}
