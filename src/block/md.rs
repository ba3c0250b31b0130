//! md arrays as the kernel shows them (`/sys/block/mdN/md`), and the acts on them that brick
//! does in-process (stop) or through mdadm (assemble, create, grow: an argv with a deadline).
//! Nothing here knows which volume an array belongs to: the transports prove that.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::{Cmd, Host, KernelError, Output};
use crate::time::Pause;
use crate::types::Bytes;

/// The md array (`md127`) that holds any of `devs`, from their `holders` in sysfs. Not a proof
/// that the array is the volume's.
pub(crate) fn holding(host: &Host, devs: &[String]) -> Result<Option<String>> {
    for d in devs {
        for h in host.list(&host.sys(format!("block/{d}/holders")))? {
            if h.starts_with("md") {
                return Ok(Some(h));
            }
        }
    }
    Ok(None)
}

/// The members of array `md` (`nvme0n1`), from `md/dev-*/block` in sysfs.
pub(crate) fn members(host: &Host, md: &str) -> Result<Vec<String>> {
    let dir = host.sys(format!("block/{md}/md"));
    let mut members = Vec::new();
    for e in host.list(&dir)? {
        let Some(short) = e.strip_prefix("dev-") else {
            continue;
        };
        let name = std::fs::read_link(dir.join(&e).join("block"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| short.to_string());
        members.push(name);
    }
    Ok(members)
}

/// Runs mdadm with `args`, with a deadline.
pub(crate) fn mdadm(host: &Host, args: &[&str], timeout: Duration) -> Result<Output> {
    let cmd = Cmd::new("mdadm")
        .args(args.iter().copied())
        .timeout(timeout);
    Ok(host.run(&cmd)?)
}

/// Runs mdadm with `args`; its failure, with the end of its output, is the error.
pub(crate) fn mdadm_ok(host: &Host, args: &[&str], timeout: Duration) -> Result<()> {
    let out = mdadm(host, args, timeout)?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            cmd: format!("mdadm {}", args.join(" ")),
            code: out.code,
            detail: out.tail(),
        })
    }
}

/// Whether array `md` is running (its `array_state` is not `inactive` or `clear`).
pub(crate) fn running(host: &Host, md: &str) -> Result<bool> {
    Ok(host
        .read_attr_opt(&host.sys(format!("block/{md}/md/array_state")))?
        .is_some_and(|s| !matches!(s.trim(), "inactive" | "clear")))
}

/// The kernel did not stop an array (it refuses while the array is open).
#[derive(Debug, thiserror::Error)]
#[error("cannot stop /dev/{md}: {why}")]
pub(crate) struct NotStopped {
    /// The array, `mdN`.
    pub md: String,
    /// What the kernel said.
    pub why: KernelError,
}

/// Stops array `md` in-process (`clear` to its `array_state`, given `timeout`), then waits up
/// to `deadline` for it to go.
pub(crate) fn stop(
    host: &Host,
    md: &str,
    timeout: Duration,
    deadline: Duration,
) -> std::result::Result<(), NotStopped> {
    let state = host.sys(format!("block/{md}/md/array_state"));
    host.kern()
        .write_attr(&state, "clear", timeout)
        .map_err(|why| NotStopped {
            md: md.to_string(),
            why,
        })?;
    let clock = host.time();
    let end = clock.now() + deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(500));
    while host.sys(format!("block/{md}/md")).exists() && clock.now() < end {
        clock.sleep(pause.take());
    }
    Ok(())
}

/// Grows array `md` to its members' size (`mdadm --grow --size max`, given `timeout`) and
/// returns its size once sysfs shows it changed, or at `deadline`.
pub(crate) fn grow(host: &Host, md: &str, timeout: Duration, deadline: Duration) -> Result<Bytes> {
    let size_path = host.sys(format!("block/{md}/size"));
    let read = || -> Result<Option<u64>> {
        Ok(host
            .read_attr_opt(&size_path)?
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| s * 512))
    };
    let before = read()?;
    mdadm_ok(
        host,
        &["--grow", &format!("/dev/{md}"), "--size", "max"],
        timeout,
    )?;
    let clock = host.time();
    let end = clock.now() + deadline;
    let mut pause = Pause::new(Duration::from_millis(20), Duration::from_millis(250));
    loop {
        let now = read()?;
        if now != before || clock.now() >= end {
            return now
                .map(Bytes)
                .ok_or_else(|| Error::io(&size_path, std::io::ErrorKind::NotFound.into()));
        }
        clock.sleep(pause.take());
    }
}
