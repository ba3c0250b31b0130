"""bench/report.py OUT: turn OUT/vm/raw.json (written in the VM by bench/conductor.py) into
OUT/results.json and OUT/results.md, and print the table. Exit 1 when a cycle failed."""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
from typing import Any

TOOLS = ["floor", "os-brick", "brick-lib", "brick-cli", "brick-py", "base-lib", "base-cli"]
# the brick processes a tool starts itself (one per volume and operation), not counted by strace
CLI_TOOLS = ("brick-cli", "base-cli")


def summary(xs: list[Any]) -> dict[str, Any] | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs),
            "samples": xs}


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def programs(cmds: list[str]) -> dict[str, int]:
    c = collections.Counter(line.split(" ", 1)[0] for line in cmds)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def load(out: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(raw.json, host.json) of the results folder out; host.json may be missing or bad."""
    with open(os.path.join(out, "vm", "raw.json")) as f:
        raw = json.load(f)
    try:
        with open(os.path.join(out, "host.json")) as f:
            host = json.load(f)
    except (OSError, ValueError):
        host = {}
    return raw, host


def tool_results(wl: dict[str, Any], name: str, failures: list[str]) -> dict[str, Any]:
    """The figures of one tool in one workload of raw.json; appends its failures."""
    n = wl["volumes"]
    t = wl["tools"][name]
    timed = t["timed"]
    ok_c = [e for e in timed if e["connect"]["ok"]]
    ok_d = [e for e in timed if (e.get("disconnect") or {}).get("ok") and not e.get("left")]
    for e in timed:
        if not e["connect"]["ok"]:
            failures.append("%s %s connect: %s" % (wl["id"], name, e["connect"].get("error")))
        elif not (e.get("disconnect") or {}).get("ok"):
            failures.append("%s %s disconnect: %s" % (wl["id"], name, e["disconnect"].get("error")))
        elif e.get("left"):
            failures.append("%s %s disconnect left: %s" % (wl["id"], name, e["left"]))
    r: dict[str, Any] = {
        "cycles": len(timed), "connect_ok": len(ok_c), "disconnect_ok": len(ok_d),
        "connect_s": summary([e["connect"]["total"] for e in ok_c]),
        "disconnect_s": summary([e["disconnect"]["total"] for e in ok_d]),
        "paths_at_return": sorted({tuple(e.get("paths_at_return") or []) and
                                   min(e["paths_at_return"]) for e in ok_c}),
    }
    if n > 1:
        r["connect_per_volume_s"] = summary([x for e in ok_c for x in e["connect"]["per"]])
        r["disconnect_per_volume_s"] = summary([x for e in ok_d for x in e["disconnect"]["per"]])
    cnt = [e for e in t.get("count", []) if e["connect"]["ok"] and (e.get("disconnect") or {}).get("ok")]
    if cnt:
        e = cnt[0]
        extra = n if name in CLI_TOOLS else 0  # the brick processes themselves
        r["processes"] = {
            "connect": len(e.get("connect_cmds", [])) + extra,
            "disconnect": len(e.get("disconnect_cmds", [])) + extra,
            "connect_programs": programs(e.get("connect_cmds", [])),
            "disconnect_programs": programs(e.get("disconnect_cmds", [])),
            "brick_processes_each": extra,
            "connect_cmds": e.get("connect_cmds", []),
            "disconnect_cmds": e.get("disconnect_cmds", []),
        }
    mem = t.get("mem", {})
    m: dict[str, Any] = {}
    if "after_timed" in mem:
        m["peak_rss_kib"] = mem["after_timed"].get("vm_hwm_kib")
        m["rss_after_start_kib"] = (mem.get("after_start") or {}).get("vm_rss_kib")
        m["how"] = "VmHWM of the long-lived driver process after the timed pass"
    if mem.get("cli_samples"):
        samples = [s[0] if isinstance(s, list) else s for s in mem["cli_samples"]]
        m["peak_rss_kib"] = max(samples)
        m["how"] = ("brick process's own VmHWM, sampled every 2 ms from its exec to its exit "
                    "(max over its runs, in the untimed pass, with -v)")
    r["memory"] = m
    if cnt:
        r["untimed_cycle_s"] = {"connect": cnt[0]["connect"].get("total"),
                                "disconnect": cnt[0]["disconnect"].get("total")}
    return r


def build(raw: dict[str, Any], host: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(results.json's content, the failed cycles) from raw.json and host.json."""
    failures: list[str] = []
    results: dict[str, Any] = {
        "machine": host, "guest": raw.get("guest", {}), "elapsed_vm_s": raw.get("elapsed_s"),
        "errors": raw.get("errors", []), "workloads": []}
    for wl in raw["workloads"]:
        w: dict[str, Any] = {
            "id": wl["id"], "title": wl["title"], "volumes": wl["volumes"], "portals": wl["portals"],
            "multipath": wl["multipath"], "layout": wl["layout"], "reps": wl["reps"], "tools": {}}
        if "scale" in wl:  # W5: one raw workload per background size
            w["scale"], w["background"] = wl["scale"], wl["background"]
        for name in [t for t in TOOLS if t in wl["tools"]]:
            w["tools"][name] = tool_results(wl, name, failures)
        ratios = {}
        for op in ("connect_s", "disconnect_s"):
            base = {k: w["tools"].get(k, {}).get(op) for k in TOOLS}
            ratios[op] = {
                "brick-lib/os-brick": ratio(base["brick-lib"], base["os-brick"]),
                "brick-cli/os-brick": ratio(base["brick-cli"], base["os-brick"]),
                "brick-lib/floor": ratio(base["brick-lib"], base["floor"]),
                "brick-cli/floor": ratio(base["brick-cli"], base["floor"]),
                "os-brick/floor": ratio(base["os-brick"], base["floor"]),
                "brick-py/os-brick": ratio(base["brick-py"], base["os-brick"]),
                "brick-lib/base-lib": ratio(base["brick-lib"], base["base-lib"]),
                "brick-cli/base-cli": ratio(base["brick-cli"], base["base-cli"]),
            }
        w["ratios"] = ratios
        results["workloads"].append(w)
    results["scale"] = scale(results["workloads"])
    for sid, sc in (raw.get("scale") or {}).items():
        if sid in results["scale"]:
            results["scale"][sid]["background_steps"] = sc.get("background", [])
    results["failures"] = failures
    return results, failures


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return (sum((x - mx) * (y - my) for x, y in points)
            / sum((x - mx) ** 2 for x, _ in points))


def scale(workloads: list[dict[str, Any]]) -> dict[str, Any]:
    """The scale workloads (W5): per tool and operation, the median at each background size,
    the slope of the medians (seconds per background volume) and the ratio of the median at the
    largest size to that at the smallest."""
    out: dict[str, Any] = {}
    for w in workloads:
        if "scale" not in w:
            continue
        sc = out.setdefault(w["scale"], {"sizes": [], "tools": {}})
        sc["sizes"].append(w["background"])
        for name, r in w["tools"].items():
            t = sc["tools"].setdefault(name, {"connect_s": {}, "disconnect_s": {}})
            for op in ("connect_s", "disconnect_s"):
                if r.get(op):
                    t[op][str(w["background"])] = r[op]["median"]
    for sc in out.values():
        sc["sizes"].sort()
        lo, hi = str(sc["sizes"][0]), str(sc["sizes"][-1])
        for t in sc["tools"].values():
            for op in ("connect_s", "disconnect_s"):
                med = t[op]
                s = slope([(float(k), v) for k, v in med.items()])
                t[op.replace("_s", "_slope_s_per_volume")] = s
                t[op.replace("_s", "_ratio_largest_smallest")] = (
                    med[hi] / med[lo] if lo in med and hi in med and med[lo] and lo != hi else None)
    return out


def s3(x: dict[str, Any] | None) -> str:
    if not x:
        return "-"
    return "%.2f (%.2f-%.2f)" % (x["median"], x["min"], x["max"])


def rt(x: float | None) -> str:
    return "-" if x is None else "%.2f" % x


def kib(x: float | None) -> str:
    return "-" if not x else "%.1f" % (x / 1024)


def markdown(results: dict[str, Any], host: dict[str, Any], failures: list[str]) -> str:
    """results.md: the tables, the workloads, the programs started, the failures."""
    lines = []
    g = results["guest"]
    lines.append("# brick vs os-brick: iSCSI and NVMe/TCP attach/detach benchmark")
    lines.append("")
    lines.append("Machine: %s, %s cores, %s GiB; lab VM: QEMU TCG (no KVM), %s vCPUs, kernel %s, "
                 "%s. %s; os-brick %s; brick %s (commit %s). VM time for the whole run: %.0f s."
                 % (host.get("cpu", "?"), host.get("cores", "?"), host.get("mem_gib", "?"),
                    g.get("cpus", "?"), g.get("kernel", "?"),
                    "udevd running" if g.get("udevd") else "no udevd",
                    g.get("iscsiadm", "?") + ("; " + g["nvme"] if g.get("nvme") else ""),
                    g.get("os_brick", "?"), g.get("brick", "?").replace("brick ", "", 1), host.get("brick_commit", "?"),
                    results.get("elapsed_vm_s") or 0))
    lines.append("")
    lines.append("Guest wall seconds, median (min-max) of the repetitions; W3/W4 figures are for all "
                 "volumes, one after the other (W3C: all started together). Processes: programs started per connect-all / "
                 "disconnect-all (brick-cli includes the brick processes). Peak RSS in MiB of the "
                 "tool's own process. Paths: paths in the map (or disks) when connect returned.")
    lines.append("")
    lines.append("| workload | tool | reps ok | connect s | disconnect s | processes c/d | peak RSS MiB | paths at return |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for w in results["workloads"]:
        for name, r in w["tools"].items():
            p = r.get("processes")
            lines.append("| %s | %s | %d/%d | %s | %s | %s | %s | %s |" % (
                w["id"], name, min(r["connect_ok"], r["disconnect_ok"]), r["cycles"],
                s3(r["connect_s"]), s3(r["disconnect_s"]),
                "%d/%d" % (p["connect"], p["disconnect"]) if p else "-",
                kib(r["memory"].get("peak_rss_kib")),
                ",".join(str(x) for x in r["paths_at_return"]) or "-"))
    lines.append("")
    lines.append("Ratios of medians (below 1: faster than the reference):")
    lines.append("")
    # brick-py (the Python package through bench/pydriver.py) gets its column when it ran
    py = any("brick-py" in w["tools"] for w in results["workloads"])
    lines.append("| workload | op | brick-lib / os-brick | brick-cli / os-brick | brick-lib / floor | brick-cli / floor | os-brick / floor |"
                 + (" brick-py / os-brick |" if py else ""))
    lines.append("|---|---|---|---|---|---|---|" + ("---|" if py else ""))
    for w in results["workloads"]:
        for op in ("connect_s", "disconnect_s"):
            rs = w["ratios"][op]
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                w["id"], op[:-2], rt(rs["brick-lib/os-brick"]), rt(rs["brick-cli/os-brick"]),
                rt(rs["brick-lib/floor"]), rt(rs["brick-cli/floor"]), rt(rs["os-brick/floor"]))
                + (" %s |" % rt(rs.get("brick-py/os-brick")) if py else ""))
    # another build of brick beside the one under test (bench/run's BRICK_BASE_DIR)
    if any(k in w["tools"] for w in results["workloads"] for k in ("base-lib", "base-cli")):
        lines.append("")
        lines.append("brick (commit %s) against its base build (commit %s), same run (below 1: "
                     "faster than the base):" % (host.get("brick_commit", "?"),
                                                 host.get("base_commit", "?")))
        lines.append("")
        lines.append("| workload | op | brick-lib / base-lib | brick-cli / base-cli |")
        lines.append("|---|---|---|---|")
        for w in results["workloads"]:
            for op in ("connect_s", "disconnect_s"):
                rs = w["ratios"][op]
                lines.append("| %s | %s | %s | %s |" % (
                    w["id"], op[:-2], rt(rs.get("brick-lib/base-lib")),
                    rt(rs.get("brick-cli/base-cli"))))
    for sid, sc in results.get("scale", {}).items():
        sizes = sc["sizes"]
        lo, hi = sizes[0], sizes[-1]
        lines.append("")
        lines.append("%s, one two-path volume on a host holding more (median seconds at each number "
                     "of background volumes; slope: milliseconds per background volume, least "
                     "squares over the medians; %d/%d: the median at %d over the one at %d):"
                     % (sid, hi, lo, hi, lo))
        lines.append("")
        lines.append("| tool | op | " + " | ".join(str(x) for x in sizes)
                     + " | slope ms/volume | %d/%d |" % (hi, lo))
        lines.append("|---|---|" + "---|" * len(sizes) + "---|---|")
        for name in [t for t in TOOLS if t in sc["tools"]]:
            t = sc["tools"][name]
            for op in ("connect", "disconnect"):
                med = t[op + "_s"]
                sl = t[op + "_slope_s_per_volume"]
                lines.append("| %s | %s | %s | %s | %s |" % (
                    name, op, " | ".join(rt(med.get(str(x))) for x in sizes),
                    "-" if sl is None else "%.2f" % (sl * 1000),
                    rt(t[op + "_ratio_largest_smallest"])))
        steps = []
        for st in sc.get("background_steps", []):
            if "attached" in st:
                steps.append("%s%d attached%s in %.1f s (udev settle %.1f s)" % (
                    "after a failed cycle, " if st.get("after_failure") else "",
                    st["attached"], " (%d in all)" % st["total"] if st.get("total") else "",
                    st["attach_s"], st["settle_s"]))
            elif "detached" in st:
                steps.append("%d detached in %.1f s, %s" % (
                    st["detached"], st["detach_s"],
                    "host clean" if st.get("ok") and not st.get("left") else
                    "FAILED: %s; left: %s" % (st.get("error"), st.get("left"))))
        if steps:
            lines.append("")
            lines.append("%s background volumes (brick-lib, untimed): %s." % (sid, "; ".join(steps)))
    lines.append("")
    lines.append("Workloads:")
    for w in results["workloads"]:
        lines.append("- %s: %s (%d repetitions)" % (w["id"], w["title"], w["reps"]))
    progs = []
    for w in results["workloads"]:
        for name, r in w["tools"].items():
            p = r.get("processes")
            if p:
                progs.append("- %s %s: connect %s; disconnect %s" % (
                    w["id"], name,
                    ", ".join("%s x%d" % kv for kv in p["connect_programs"].items()) or "none",
                    ", ".join("%s x%d" % kv for kv in p["disconnect_programs"].items()) or "none"))
    if progs:
        lines.append("")
        lines.append("Programs started (counting pass, execve() under strace):")
        lines.extend(progs)
    if failures or results["errors"]:
        lines.append("")
        lines.append("Failures:")
        for fl in failures + results["errors"]:
            lines.append("- " + fl.replace("\n", " ")[:600])
    return "\n".join(lines) + "\n"


def main() -> int:
    out = sys.argv[1]
    raw, host = load(out)
    results, failures = build(raw, host)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = markdown(results, host, failures)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    print(text)
    print("results: %s/results.json, %s/results.md" % (out, out))
    return 1 if failures or results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
