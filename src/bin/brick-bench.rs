//! `brick-bench`: the benchmark's in-process driver for the brick library (bench/README.md).
//!
//! A long-lived process that reads one JSON request per line on standard input and answers one
//! JSON line on standard output, so that the library calls are timed without process start-up:
//!
//!   {"op":"connect","props":{...},"multipath":true}
//!       -> {"ok":true,"secs":1.23,"device_info":{...}}
//!   {"op":"connect","protocol":"nvmeof","props":{...},"multipath":false}
//!       -> the same (multipath false: one path, as `--single-path`); every request goes
//!          through brick's seam (`brick::connect_volume`), as `brick connect` does
//!   {"op":"disconnect","props":{...},"device_info":{...}}
//!       -> {"ok":true,"secs":0.45}
//!   {"op":"batch","ops":[REQUEST,...]}   (runs them in turn, stops at the first failure;
//!                                         with "parallel":true, all at once, one thread each)
//!       -> {"ok":true,"secs":TOTAL,"results":[ANSWER,...]}
//!   {"op":"stats"}
//!       -> {"ok":true,"vm_hwm_kib":N,"vm_rss_kib":N,"children_maxrss_kib":N}
//!
//! `secs` is the wall time of the library call alone (monotonic clock). With BENCH_LOG set (e.g.
//! `brick=debug`) brick's debug logs go to standard error.

use std::io::{BufRead, Write};
use std::time::Instant;

use serde_json::{json, Value};

use brick::config::Settings;
use brick::host::Host;
use brick::{ConnectOptions, DeviceInfo, Protocol, VolumeProperties};

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn children_maxrss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) == 0 {
            ru.ru_maxrss
        } else {
            -1
        }
    }
}

fn fail(msg: impl std::fmt::Display, secs: Option<f64>) -> Value {
    let mut v = json!({"ok": false, "error": msg.to_string()});
    if let Some(s) = secs {
        v["secs"] = json!(s);
    }
    v
}

/// The device_info of a request (`null` or missing: none).
fn device_info(req: &Value) -> Result<Option<DeviceInfo>, Value> {
    match &req["device_info"] {
        Value::Null => Ok(None),
        v => DeviceInfo::from_json(&v.to_string())
            .map(Some)
            .map_err(|e| fail(format!("device_info: {e}"), None)),
    }
}

/// The volume of a request, parsed once for the transport `protocol` names (else as the
/// properties' keys say).
fn volume_of(req: &Value) -> Result<VolumeProperties, Value> {
    let protocol = match req["protocol"].as_str() {
        None => None,
        Some(p) => Some(p.parse::<Protocol>().map_err(|e| fail(e, None))?),
    };
    VolumeProperties::from_value(&req["props"], protocol)
        .map_err(|e| fail(format!("props: {e}"), None))
}

/// A connect or disconnect through brick's seam, as `brick connect` and `brick disconnect`
/// run it (`multipath` false: one path, as `--single-path`), timed.
fn volume_op(host: &Host, settings: &Settings, req: &Value) -> Value {
    let (props, info) = match volume_of(req).and_then(|p| Ok((p, device_info(req)?))) {
        Ok(v) => v,
        Err(v) => return v,
    };
    let t0 = Instant::now();
    if req["op"] == "connect" {
        let opts = ConnectOptions {
            multipath: req["multipath"].as_bool(),
            ..ConnectOptions::default()
        };
        let r = brick::connect_volume(host, &props, &opts, settings);
        let secs = t0.elapsed().as_secs_f64();
        return match r {
            Ok(c) => json!({
                "ok": true,
                "secs": secs,
                "device_info": serde_json::to_value(&c.device_info).unwrap_or(Value::Null),
                "paths": c.paths,
                "failed_paths": c.failed_paths,
            }),
            Err(e) => fail(e, Some(secs)),
        };
    }
    let opts = brick::DisconnectOptions::default();
    let r = brick::disconnect_volume(host, &props, info.as_ref(), opts, settings);
    let secs = t0.elapsed().as_secs_f64();
    match r {
        Ok(_) => json!({"ok": true, "secs": secs}),
        Err(e) => fail(e, Some(secs)),
    }
}

/// `batch`: the requests `ops` in turn, stopping at the first failure, or with `parallel` all
/// at once, one thread each.
fn batch(host: &Host, settings: &Settings, req: &Value) -> Value {
    let ops = req["ops"].as_array().cloned().unwrap_or_default();
    let t0 = Instant::now();
    let results: Vec<Value> = if req["parallel"].as_bool().unwrap_or(false) {
        std::thread::scope(|s| {
            let running: Vec<_> = ops
                .iter()
                .map(|op| s.spawn(|| handle(host, settings, op)))
                .collect();
            running
                .into_iter()
                .map(|r| {
                    r.join()
                        .unwrap_or_else(|_| fail("the call panicked".to_string(), None))
                })
                .collect()
        })
    } else {
        let mut results = Vec::with_capacity(ops.len());
        for op in &ops {
            let r = handle(host, settings, op);
            let ok = r["ok"].as_bool().unwrap_or(false);
            results.push(r);
            if !ok {
                break;
            }
        }
        results
    };
    let ok = results.iter().all(|r| r["ok"].as_bool().unwrap_or(false));
    let secs = t0.elapsed().as_secs_f64();
    json!({"ok": ok, "secs": secs, "results": results})
}

fn handle(host: &Host, settings: &Settings, req: &Value) -> Value {
    match req["op"].as_str().unwrap_or("") {
        "connect" | "disconnect" => volume_op(host, settings, req),
        "batch" => batch(host, settings, req),
        "stats" => json!({
            "ok": true,
            "vm_hwm_kib": status_kib("VmHWM:"),
            "vm_rss_kib": status_kib("VmRSS:"),
            "children_maxrss_kib": children_maxrss_kib(),
        }),
        other => fail(format!("unknown op {other:?}"), None),
    }
}

fn main() {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(false)
            .init();
    }
    let host = Host::real();
    let settings = Settings::default();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(req) => handle(&host, &settings, &req),
            Err(e) => fail(format!("bad request: {e}"), None),
        };
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
