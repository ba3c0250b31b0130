//! `brick-bench`: the benchmark's in-process driver for the brick library (bench/README.md).
//!
//! A long-lived process that reads one JSON request per line on standard input and answers one
//! JSON line on standard output, so that the library calls are timed without process start-up:
//!
//!   {"op":"connect","props":{...},"multipath":true}
//!       -> {"ok":true,"secs":1.23,"device_info":{...}}
//!   {"op":"connect","protocol":"nvmeof","props":{...},"multipath":false}
//!       -> the same, through brick::nvmeof (multipath false: one path, as `--single-path`)
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

use brick::host::Host;
use brick::nvmeof::{NvmeProperties, NvmeTuning};
use brick::{ConnectionProperties, DeviceInfo, Tuning};

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

/// An NVMe-oF connect or disconnect: brick::nvmeof, with the tuning `brick connect` uses
/// (multipath false as `--single-path`).
fn handle_nvme(host: &Host, req: &Value) -> Value {
    let props = match NvmeProperties::from_value(&req["props"]) {
        Ok(p) => p,
        Err(e) => return fail(format!("props: {e}"), None),
    };
    let tuning = NvmeTuning {
        multipath: (req["multipath"].as_bool() == Some(false)).then_some(false),
        ..NvmeTuning::default()
    };
    if req["op"] == "connect" {
        let t0 = Instant::now();
        let r = brick::nvmeof::connect_volume(host, &props, &tuning);
        let secs = t0.elapsed().as_secs_f64();
        return match r {
            Ok(c) => json!({
                "ok": true,
                "secs": secs,
                "device_info": serde_json::to_value(&c.device_info).unwrap_or(Value::Null),
                "controllers": c.controllers,
                "failed_paths": c.failed_paths.len(),
            }),
            Err(e) => fail(e, Some(secs)),
        };
    }
    let info = match device_info(req) {
        Ok(i) => i,
        Err(v) => return v,
    };
    let t0 = Instant::now();
    let r = brick::nvmeof::disconnect_volume(
        host,
        &props,
        info.as_ref(),
        brick::DisconnectOptions::default(),
        &tuning,
    );
    let secs = t0.elapsed().as_secs_f64();
    match r {
        Ok(_) => json!({"ok": true, "secs": secs}),
        Err(e) => fail(e, Some(secs)),
    }
}

fn handle(host: &Host, tuning: &Tuning, req: &Value) -> Value {
    let op = req["op"].as_str().unwrap_or("");
    if req["protocol"] == "nvmeof" && (op == "connect" || op == "disconnect") {
        return handle_nvme(host, req);
    }
    match op {
        "connect" => {
            let props = match ConnectionProperties::from_value(&req["props"]) {
                Ok(p) => p,
                Err(e) => return fail(format!("props: {e}"), None),
            };
            let multipath = req["multipath"]
                .as_bool()
                .unwrap_or(props.targets().len() > 1);
            let t0 = Instant::now();
            let r = brick::connect_volume(
                host,
                &props,
                brick::ConnectOptions {
                    multipath,
                    iface: None,
                },
                tuning,
            );
            let secs = t0.elapsed().as_secs_f64();
            match r {
                Ok(c) => json!({
                    "ok": true,
                    "secs": secs,
                    "device_info": serde_json::to_value(&c.device_info).unwrap_or(Value::Null),
                    "paths": c.paths,
                    "failed_paths": c.failed_paths,
                }),
                Err(e) => fail(e, Some(secs)),
            }
        }
        "disconnect" => {
            let props = match ConnectionProperties::from_value(&req["props"]) {
                Ok(p) => p,
                Err(e) => return fail(format!("props: {e}"), None),
            };
            let info = match device_info(req) {
                Ok(i) => i,
                Err(v) => return v,
            };
            let t0 = Instant::now();
            let r = brick::disconnect_volume(
                host,
                &props,
                info.as_ref(),
                brick::DisconnectOptions::default(),
                tuning,
            );
            let secs = t0.elapsed().as_secs_f64();
            match r {
                Ok(_) => json!({"ok": true, "secs": secs}),
                Err(e) => fail(e, Some(secs)),
            }
        }
        "batch" => {
            let ops = req["ops"].as_array().cloned().unwrap_or_default();
            let mut results = Vec::with_capacity(ops.len());
            let t0 = Instant::now();
            let mut ok = true;
            if req["parallel"].as_bool().unwrap_or(false) {
                results = std::thread::scope(|s| {
                    let running: Vec<_> = ops
                        .iter()
                        .map(|op| s.spawn(|| handle(host, tuning, op)))
                        .collect();
                    running
                        .into_iter()
                        .map(|r| {
                            r.join()
                                .unwrap_or_else(|_| fail("the call panicked".to_string(), None))
                        })
                        .collect()
                });
                ok = results.iter().all(|r| r["ok"].as_bool().unwrap_or(false));
            } else {
                for op in &ops {
                    let r = handle(host, tuning, op);
                    ok = r["ok"].as_bool().unwrap_or(false);
                    results.push(r);
                    if !ok {
                        break;
                    }
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            json!({"ok": ok, "secs": secs, "results": results})
        }
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
    let tuning = Tuning::default();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(req) => handle(&host, &tuning, &req),
            Err(e) => fail(format!("bad request: {e}"), None),
        };
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
