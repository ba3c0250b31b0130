"""The benchmark's conductor: runs inside the lab VM (started by bench/in-vm.sh), drives every tool
through every workload on the same LIO (iSCSI) or nvmet (NVMe/TCP) targets, and writes
$RESULTS/raw.json.

Tools (each does exactly the same operations on the same volumes, in turn):
  floor      bench/pydriver.py floor: bare iscsiadm/multipathd calls and sysfs writes, or bare
             `nvme connect`/`nvme disconnect` (NVMe/TCP), in-process
  os-brick   bench/pydriver.py osbrick: os_brick ISCSIConnector or NVMeOFConnector, in-process
             (long-lived process)
  brick-lib  target/release/brick-bench: brick::connect_volume/disconnect_volume, in-process
  brick-cli  the `brick connect` / `brick disconnect` processes, timed from fork to exit

Passes per workload:
  timed   R repetitions; in each, every tool connects all volumes (in turn, one after the other)
          then disconnects them all; tool order rotates between repetitions.
  count   one repetition, not timed, each tool's processes under strace (every program it
          starts, from its execve() calls), the tools' debug logs (brick -v, os-brick DEBUG)
          kept in diag/, and the brick process's own peak RSS sampled.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, cast, overload

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORK = "/run/bench"
TRACES = WORK + "/traces"
# The counting pass runs each tool under strace: the tool's process stays the conductor's child
# (-D: strace is a detached grandchild), every process it starts is followed (-f), only
# execve() stops it (--seccomp-bpf), and only the execve() calls that succeeded are written
# (-z: a program started by name is looked up with one failed execve() per folder tried), one
# whole line each, as each one returns.
EXEC_TRACE = ["strace", "-D", "-f", "-qq", "-z", "--seccomp-bpf", "-e", "trace=execve",
              "-e", "signal=none", "-s", "65536", "-o"]


@dataclass
class Run:
    """What the conductor reads and notes once, at its start (see begin())."""

    cfg: dict[str, Any]  # bench-config.json, written by bench/run
    res: str  # the results folder, shared with the host: cfg["results"]
    t_start: float  # time.monotonic() at the start
    udevd: bool  # udevd runs in the VM


def begin(config_path: str) -> Run:
    """Read the configuration, make the work and results folders, note the time and whether
    udevd runs. LAB_DIR must be set: sh() sources lab/lib.sh from it."""
    with open(config_path) as f:
        cfg = json.load(f)
    res = cfg["results"]
    os.environ["LAB_DIR"]  # a KeyError when it is not set
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(res + "/diag", exist_ok=True)
    t_start = time.monotonic()
    udevd = subprocess.run(["pidof", "systemd-udevd", "udevd"], stdout=subprocess.DEVNULL).returncode == 0
    return Run(cfg=cfg, res=res, t_start=t_start, udevd=udevd)


def uptime() -> str:
    with open("/proc/uptime") as f:
        return f.read().split()[0]


def log(msg: str) -> None:
    line = "[%8s] bench: %s" % (uptime(), msg)
    print(line, file=sys.stderr, flush=True)


def progress(run: Run, msg: str) -> None:
    log(msg)
    with open(run.res + "/progress", "a") as f:
        f.write("[%8s] bench: %s\n" % (uptime(), msg))


@overload
def sh(script: str, check: bool = ..., *, capture: Literal[True]) -> str: ...
@overload
def sh(script: str, check: bool = ..., capture: Literal[False] = ...) -> int: ...
def sh(script: str, check: bool = True, capture: bool = False) -> str | int:
    """Run bash with lab/lib.sh and bench/guest-lib.sh sourced."""
    full = '. "$LAB_DIR/lib.sh"; . "%s/guest-lib.sh"; %s' % (BENCH_DIR, script)
    p = subprocess.run(["bash", "-c", full], stdout=subprocess.PIPE if capture else sys.stderr,
                       stderr=sys.stderr, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("bash failed (%d): %s" % (p.returncode, script))
    return p.stdout if capture else p.returncode


# --------------------------------------------------------------------------------------------
# sysfs views


def read(path: str, default: str | None = None) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def map_of(wwn: str) -> tuple[str | None, int]:
    """(dm-N, number of paths) of the multipath map named by wwn, or (None, 0)."""
    for d in os.listdir("/sys/block"):
        if d.startswith("dm-") and read("/sys/block/%s/dm/uuid" % d) == "mpath-" + wwn:
            return d, len(os.listdir("/sys/block/%s/slaves" % d))
    return None, 0


def sds_of(wwid: str) -> list[str]:
    return [d for d in os.listdir("/sys/block")
            if d.startswith("sd") and read("/sys/block/%s/device/wwid" % d) == wwid]


def nvme_paths(uuid: str) -> list[str]:
    """The per-controller namespace entries (nvmeXcYnZ, or nvmeYnZ without native multipath)
    that show the namespace uuid, one per controller that serves it."""
    out = []
    for c in sorted(os.listdir("/sys/class/nvme")):
        d = "/sys/class/nvme/" + c
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if n.startswith("nvme") and "n" in n[4:] and read("%s/%s/uuid" % (d, n)) == uuid:
                out.append(n)
    return out


def nvme_leftovers(vols: list[dict[str, Any]]) -> list[str]:
    """What is left on the initiator of these NVMe volumes: a controller of their subsystems, a
    namespace (head or path) with their UUID."""
    left = []
    nqns = {v["nqn"] for v in vols}
    uuids = {v["uuid"] for v in vols}
    for c in sorted(os.listdir("/sys/class/nvme")):
        if read("/sys/class/nvme/%s/subsysnqn" % c) in nqns:
            left.append("controller %s" % c)
    for b in sorted(os.listdir("/sys/block")):
        if b.startswith("nvme") and read("/sys/block/%s/uuid" % b) in uuids:
            left.append("namespace %s" % b)
    return left


def leftovers(vols: list[dict[str, Any]]) -> list[str]:
    """What is left on the initiator of these volumes (empty list when clean)."""
    if vols and vols[0].get("protocol") == "nvmeof":
        return nvme_leftovers(vols)
    left = []
    iqns = {v["iqn"] for v in vols}
    for s in sorted(os.listdir("/sys/class/iscsi_session")):
        if read("/sys/class/iscsi_session/%s/targetname" % s) in iqns:
            left.append("session " + s)
    for v in vols:
        for sd in sds_of(v["wwid"]):
            left.append("disk %s (%s)" % (sd, v["name"]))
        dm, _ = map_of(v["wwn"])
        if dm:
            left.append("map %s (%s)" % (dm, v["name"]))
    for iqn in iqns:
        if os.path.exists("/etc/iscsi/nodes/" + iqn):
            left.append("node record " + iqn)
    return left


def paths_now(vols: list[dict[str, Any]], infos: list[Any]) -> list[int]:
    """Paths of each volume right now: map's slaves for multipath volumes, else disks."""
    out = []
    for v, info in zip(vols, infos):
        if v.get("protocol") == "nvmeof":
            out.append(len(nvme_paths(v["uuid"])))
        elif v["multipath"]:
            out.append(map_of(v["wwn"])[1])
        else:
            out.append(len(sds_of(v["wwid"])))
    return out


def wait_settled(vols: list[dict[str, Any]], timeout: float = 30) -> bool:
    """Untimed: wait until every volume shows all its paths (so every disconnect starts alike)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(paths_now([v], [None])[0] >= v["npaths"] for v in vols):
            return True
        time.sleep(0.1)
    return False


def traced(argv: list[str], trace: str) -> list[str]:
    """argv run under strace, which writes every execve() of it and its descendants to trace."""
    return EXEC_TRACE + [trace, "--"] + argv


_EXECVE = re.compile(r'(\d+) +execve\("((?:[^"\\]|\\.)*)", \[')
_STR = re.compile(r'"((?:[^"\\]|\\.)*)"(?:\.\.\.)?(, |\])')


def _unquote(s: str) -> str:
    # strace writes C escapes (\n, \", \\, octal for every other byte not printable ASCII)
    return cast(bytes, codecs.escape_decode(s.encode())[0]).decode("utf-8", "replace")


def exec_lines(trace: str) -> list[str]:
    """The programs started in the strace output trace (see traced()), in order, each as "NAME
    ARGS": the base name of the program that ran and its arguments after argv[0], as the shell
    would join them. The execve() of the traced process itself (the trace's first, its pid's)
    is left out: that process is the tool. A line naming execve that cannot be read is kept as
    "? LINE" (it counts)."""
    try:
        with open(trace, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    out: list[str] = []
    own = None
    for line in text.split("\n")[:-1]:  # whole lines only
        m = _EXECVE.match(line)
        if not m:
            if "execve(" in line:
                out.append("? " + line)
            continue
        if own is None:
            own = m.group(1)
        if m.group(1) == own:
            continue
        args, pos = [], m.end()
        while True:
            a = _STR.match(line, pos)
            if not a:
                break
            args.append(_unquote(a.group(1)))
            pos = a.end()
            if a.group(2) == "]":
                break
        prog = os.path.basename(_unquote(m.group(2)))
        out.append(" ".join([prog] + args[1:]))
    return out


# --------------------------------------------------------------------------------------------
# a stand-in for the one udev rule os-brick needs


class ByIdLinks(threading.Thread):
    """The lab VM runs no udevd (it would compete for the two emulated CPUs). os-brick finds a
    disk's WWN through udev's /dev/disk/by-id/scsi-<WWN> links and, without one, retries for 10 s
    per connect. This thread keeps those links as udev's persistent-storage rule would: it
    listens to the kernel's uevents and makes /dev/disk/by-id/scsi-<WWN> -> ../../sdX when a disk
    appears, and removes it when the disk goes. Runs for every tool alike (only os-brick reads
    the links)."""

    DIR = "/dev/disk/by-id"

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)  # KOBJECT_UEVENT
        self.sock.bind((0, 1))
        os.makedirs(self.DIR, exist_ok=True)
        self.made = 0

    @staticmethod
    def wwn_of(sd: str) -> str | None:
        w = read("/sys/block/%s/device/wwid" % sd) or ""
        for prefix, code in (("naa.", "3"), ("eui.", "2"), ("t10.", "1")):
            if w.startswith(prefix):
                return code + w[len(prefix):]
        return None

    def run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            f = dict(x.split("=", 1) for x in data.decode(errors="replace").split("\0") if "=" in x)
            name = f.get("DEVNAME", "")
            if f.get("SUBSYSTEM") != "block" or f.get("DEVTYPE") != "disk" or not name.startswith("sd"):
                continue
            try:
                if f.get("ACTION") == "add":
                    wwn = self.wwn_of(name)
                    if wwn:
                        link = "%s/scsi-%s" % (self.DIR, wwn)
                        if not os.path.exists(link):
                            if os.path.islink(link):
                                os.unlink(link)
                            os.symlink("../../" + name, link)
                            self.made += 1
                elif f.get("ACTION") == "remove":
                    for link in os.listdir(self.DIR):
                        p = os.path.join(self.DIR, link)
                        if os.path.islink(p) and os.readlink(p) == "../../" + name:
                            os.unlink(p)
            except OSError as e:
                log("by-id links: %s" % e)


# --------------------------------------------------------------------------------------------
# tools


class DriverTool:
    """A long-lived in-process driver speaking bench/pydriver.py's line protocol."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.buf = b""
        self.trace: str | None = None

    def start(self, trace: str | None = None, debug_log: str | None = None,
              log_env: dict[str, str] | None = None) -> dict[str, Any]:
        """Start the driver; with trace, under strace (traced()), which writes there every
        program the driver starts from now until it exits."""
        env = dict(os.environ)
        if debug_log and log_env:
            env.update(log_env)
        self.trace = trace
        argv = self.argv
        if trace:
            if os.path.exists(trace):
                os.unlink(trace)
            argv = traced(argv, trace)
        # the driver keeps its own descriptor of the log: ours is closed once it runs
        with open(debug_log or "%s/%s.stderr" % (WORK, self.name), "a") as stderr:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, env=env, cwd=WORK)
        self.buf = b""
        self.started = self.request({"op": "stats"}, timeout=120)
        if not self.started.get("ok"):
            raise RuntimeError("%s did not start: %s" % (self.name, self.started))
        return self.started

    def exec_cmds(self) -> list[str]:
        """Every program the driver started since its start under strace (none without)."""
        return exec_lines(self.trace) if self.trace else []

    def stop(self) -> None:
        if self.proc:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def request(self, obj: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                log("%s: no answer within %ds: killing it" % (self.name, timeout))
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                return {"ok": False, "error": "timeout after %ds" % timeout, "timeout": True}
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return {"ok": False, "error": "driver exited (%s)" % self.proc.poll()}
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    concurrent = False  # run a batch's operations all at once (the W3C workload)

    def run_ops(self, ops: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
        a = self.request({"op": "batch", "ops": ops, "parallel": self.concurrent}, timeout)
        res = a.get("results", [])
        return {"ok": bool(a.get("ok")), "total": a.get("secs"),
                "per": [r.get("secs") for r in res],
                "infos": [r.get("device_info") for r in res],
                "error": a.get("error") or next((r.get("error") for r in res if not r.get("ok")), None)}

    @staticmethod
    def _op(v: dict[str, Any], **req: Any) -> dict[str, Any]:
        if v.get("protocol"):  # "nvmeof"; iSCSI requests name none
            req["protocol"] = v["protocol"]
            req["multipath"] = v["multipath"]
        return req

    def connect_all(self, vols: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
        return self.run_ops([self._op(v, op="connect", props=v["props"], multipath=v["multipath"])
                             for v in vols], timeout)

    def disconnect_all(self, vols: list[dict[str, Any]], infos: list[Any],
                       timeout: float) -> dict[str, Any]:
        return self.run_ops([self._op(v, op="disconnect", props=v["props"], device_info=i)
                             for v, i in zip(vols, infos)], timeout)

    def stats(self) -> dict[str, Any] | None:
        if not self.proc:
            return None
        return self.request({"op": "stats"}, timeout=60)


def sample_run(argv: list[str], env: dict[str, str], timeout: float,
               program: str) -> tuple[int, str, str, int]:
    """Run argv; return (rc, stdout, stderr, own_peak_kib). The process's own VmHWM is sampled
    every 2 ms once it runs program (before its exec, /proc shows the forked conductor's or,
    under strace -D, strace's figures); VmHWM only grows, so the last sample is its peak up to
    the last 2 ms. (wait4's ru_maxrss is no use here: it keeps the forked Python's RSS from
    before the exec.)"""
    name = os.path.basename(program)[:15]
    with open(WORK + "/sample.out", "w+") as out_f, open(WORK + "/sample.err", "w+") as err_f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f, env=env)
        hwm = 0
        deadline = time.monotonic() + timeout
        while True:
            pid, status, _ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            v, comm = None, None
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("Name:"):
                            comm = line.split(None, 1)[1].strip()
                        elif line.startswith("VmHWM:"):
                            v = int(line.split()[1])
            except OSError:
                pass
            if v and comm == name:
                hwm = max(hwm, v)
            if time.monotonic() > deadline:
                p.kill()
            time.sleep(0.002)
        p.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        return p.returncode, out_f.read(), err_f.read(), hwm


class CliTool:
    """The brick command: one process per operation, timed from spawn to exit."""

    def __init__(self, brick: str, name: str = "brick-cli") -> None:
        self.name = name
        self.brick = brick
        self.trace: str | None = None
        self.traces: list[str] = []  # one strace output per brick process, in order
        self.verbose_log: str | None = None
        self.sample = False
        self.mem: list[int] = []  # own peak RSS (KiB) of each process, when sampling

    def start(self, trace: str | None = None, debug_log: str | None = None,
              log_env: dict[str, str] | None = None) -> None:
        """With trace, every brick process from now on runs under strace (traced()), with its
        output in trace.N."""
        self.trace = trace
        self.traces = []
        self.verbose_log = debug_log
        self.mem = []
        return None

    def exec_cmds(self) -> list[str]:
        """Every program the brick processes started under strace, in order (the brick
        processes themselves left out: bench/report.py adds one per operation)."""
        return [c for t in self.traces for c in exec_lines(t)]

    def stop(self) -> None:
        pass

    def stats(self) -> None:
        return None

    def _env(self) -> dict[str, str]:
        return dict(os.environ, NO_COLOR="1")

    def _run(self, args: list[str], timeout: float) -> tuple[int, str, str, float]:
        env = self._env()
        argv = [self.brick] + (["-v"] if self.verbose_log else []) + args
        shown = argv
        if self.trace:
            t = "%s.%d" % (self.trace, len(self.traces))
            if os.path.exists(t):
                os.unlink(t)
            self.traces.append(t)
            argv = traced(argv, t)
        wall0 = time.time()
        t0 = time.monotonic()
        if self.sample:
            rc, out, err, own = sample_run(argv, env, timeout, self.brick)
            secs = time.monotonic() - t0
            self.mem.append(own)
        else:
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=env, timeout=timeout, text=True)
                rc, out, err = p.returncode, p.stdout, p.stderr
            except subprocess.TimeoutExpired as e:
                # e.stdout is the undecoded partial output (bytes): never read, as only the
                # outputs of processes that exited 0 are
                rc, out, err = 124, e.stdout or "", "timeout"  # type: ignore[assignment]
            secs = time.monotonic() - t0
        if self.verbose_log:
            with open(self.verbose_log, "a") as f:
                f.write("### %s  (spawned %s.%06dZ, %.3f s, exit %d)\n%s\n" % (
                    " ".join(shown), time.strftime("%H:%M:%S", time.gmtime(wall0)),
                    int((wall0 % 1) * 1e6), secs, rc, err))
        return rc, out, err, secs

    concurrent = False  # one process per volume, all at once (the W3C workload)

    def _run_all(self, argvs: list[list[str]], timeout: float) -> list[tuple[int, str, str, float]]:
        """All at once: one process each, started together; (rc, out, err, secs) each."""
        env = self._env()
        procs, starts = [], []
        for a in argvs:
            starts.append(time.monotonic())
            procs.append(subprocess.Popen([self.brick] + a, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          env=env, text=True))
        res: list[tuple[int, str, str, float] | None] = [None] * len(procs)

        def one(i: int, p: subprocess.Popen[str]) -> None:
            # each process's own time, from its spawn to its exit
            try:
                out, err = p.communicate(timeout=timeout)
                res[i] = (p.returncode, out, err, time.monotonic() - starts[i])
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                res[i] = (124, "", "timeout", time.monotonic() - starts[i])

        threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(procs)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return cast("list[tuple[int, str, str, float]]", res)  # every thread set its own

    def _run_ops(self, what: str, argvs: list[list[str]], timeout: float) -> dict[str, Any]:
        """One brick process per argv: one after the other, stopping at the first failure, or
        all at once (concurrent). Returns the figures and the outputs of those that succeeded."""
        t0 = time.monotonic()
        if self.concurrent:
            res = self._run_all(argvs, timeout)
        else:
            res = []
            for a in argvs:
                res.append(self._run(a, timeout))
                if res[-1][0] != 0:
                    break
        r: dict[str, Any] = {"ok": all(rc == 0 for rc, _, _, _ in res),
                             "total": time.monotonic() - t0, "per": [x[3] for x in res],
                             "outs": [out for rc, out, _, _ in res if rc == 0]}
        bad = [(rc, err) for rc, _, err, _ in res if rc != 0]
        if bad:
            r["error"] = "brick %s exited %d: %s" % (what, bad[0][0], bad[0][1].strip()[-2000:])
        return r

    def connect_all(self, vols: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
        argvs = [["connect", v["props_file"]] + ([] if v["multipath"] else ["--single-path"])
                 for v in vols]
        r = self._run_ops("connect", argvs, timeout)
        r["infos"] = [json.loads(out) for out in r.pop("outs")]
        return r

    def disconnect_all(self, vols: list[dict[str, Any]], infos: list[Any],
                       timeout: float) -> dict[str, Any]:
        argvs: list[list[str]] = []
        for v, info in zip(vols, infos):
            di = "%s/%s.di.json" % (WORK, v["name"])
            with open(di, "w") as f:
                json.dump(info, f)
            argvs.append(["disconnect", v["props_file"], "--device-info", di])
        r = self._run_ops("disconnect", argvs, timeout)
        del r["outs"]
        return r


# --------------------------------------------------------------------------------------------
# workloads


def make_nvme_volumes(wl: dict[str, Any]) -> list[dict[str, Any]]:
    """Create the nvmet subsystems of an NVMe/TCP workload (lab/lib/nvme.sh: one subsystem per
    volume, one namespace each, on ports 1..portals); return its volumes. The host NQN and ID
    (/etc/nvme) are made first when missing, so that every tool connects as the same host."""
    n = wl["volumes"]
    names = ["%sv%02d" % (wl["id"].lower(), i + 1) for i in range(n)] if n > 1 else [wl["id"].lower()]
    ports = " ".join(str(p + 1) for p in range(wl["portals"]))
    script = ("mkdir -p /etc/nvme; [ -s /etc/nvme/hostnqn ] || nvme gen-hostnqn >/etc/nvme/hostnqn\n"
              "[ -s /etc/nvme/hostid ] || cat /proc/sys/kernel/random/uuid >/etc/nvme/hostid\n"
              "nvme_setup\n"
              + "\n".join("nvme_sub_create %s 1 %d" % (name, wl["portals"]) for name in names) + "\n"
              + "\n".join('echo "VOL %s $(nqn_of %s) $(nvme_ns_uuid %s 1)"; nvme_props %s 1 %s'
                          % (name, name, name, name, ports) for name in names))
    lines = sh(script, capture=True).splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("VOL "):
            continue
        _, name, nqn, uuid = line.split()
        props = json.loads(lines[i + 1])
        vname = "%s-ns1" % name
        pf = "%s/%s.props.json" % (WORK, vname)
        with open(pf, "w") as f:
            json.dump(props, f)
        out.append({"name": vname, "target": name, "protocol": "nvmeof", "nqn": nqn, "uuid": uuid,
                    "props": props, "props_file": pf, "multipath": wl["multipath"],
                    "npaths": wl["portals"]})
    if len(out) != n:
        raise RuntimeError("made %d volumes, expected %d" % (len(out), n))
    return out


def make_volumes(wl: dict[str, Any]) -> list[dict[str, Any]]:
    """Create the LIO targets of a workload (one bash call); return its volumes."""
    if wl.get("protocol") == "nvmeof":
        return make_nvme_volumes(wl)
    n = wl["volumes"]
    if wl["layout"] in ("one-target-per-volume", "scale"):
        names = ["%sv%02d" % (wl["id"].lower(), i + 1) for i in range(n)] if n > 1 else [wl["id"].lower()]
        opts = "--portals %d --luns 1%s" % (wl["portals"], "" if wl["multipath"] else " --no-multipath")
        creates = ["target_create %s %s" % (name, opts) for name in names]
        vols = [(name, 1) for name in names]
    else:  # shared target: n LUNs on one target
        name = wl["id"].lower()
        creates = ["target_create %s --portals %d --luns %d" % (name, wl["portals"], n)]
        vols = [(name, l + 1) for l in range(n)]
    return lio_volumes(creates, vols, wl["multipath"], wl["portals"], n)


def lio_volumes(creates: list[str], vols: list[tuple[str, int]], multipath: bool, portals: int,
                n: int) -> list[dict[str, Any]]:
    """Run the target_create lines (one bash call); return the volumes (target, LUN) made."""
    script = "\n".join(creates) + "\n" + "\n".join(
        'echo "VOL %s %d $(lun_wwid %s %d) $(lun_wwn %s %d) $(tiqn %s)"; props_json %s %d'
        % (name, lun, name, lun, name, lun, name, name, lun) for name, lun in vols)
    lines = sh(script, capture=True).splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("VOL "):
            continue
        _, name, lun, wwid, wwn, iqn = line.split()
        props = json.loads(lines[i + 1])
        vname = "%s-lun%s" % (name, lun)
        pf = "%s/%s.props.json" % (WORK, vname)
        with open(pf, "w") as f:
            json.dump(props, f)
        out.append({"name": vname, "target": name, "lun": int(lun), "iqn": iqn, "wwid": wwid,
                    "wwn": wwn, "props": props, "props_file": pf, "multipath": multipath,
                    "npaths": portals})
    if len(out) != n:
        raise RuntimeError("made %d volumes, expected %d" % (len(out), n))
    return out


SETTLE_TIMEOUT = 600


def settle(run: Run) -> float:
    """Untimed: let udevd finish the events of the last step, so that its work does not run
    into the next timed step. Returns the seconds it took. Under TCG udevd's queue after 16
    fast attaches takes more than 20 s to drain (about 3 s of CPU per volume): a short timeout
    let that work run into the disconnect that followed, and slowed the fastest tool most."""
    if not run.udevd:
        return 0.0
    t0 = time.monotonic()
    p = subprocess.run(["udevadm", "settle", "-t", str(SETTLE_TIMEOUT)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secs = time.monotonic() - t0
    if p.returncode != 0:
        log("udevadm settle gave up after %.0f s: udevd's work goes on into the next step" % secs)
    return secs


def reset_initiator(why: str) -> None:
    log("resetting the initiator: %s" % why)
    sh("bench_initiator_reset", check=False)


def one_cycle(run: Run, tool: DriverTool | CliTool, vols: list[dict[str, Any]],
              rec: list[dict[str, Any]], timeout: float, count: bool = False) -> bool:
    """Connect all, settle, disconnect all. Appends to rec; returns False when the tool failed."""
    entry: dict[str, Any] = {}
    n0 = len(tool.exec_cmds()) if count else 0
    c = tool.connect_all(vols, timeout)
    if count:
        lines = tool.exec_cmds()
        entry["connect_cmds"] = lines[n0:]
        n0 = len(lines)
    entry["connect"] = {k: c.get(k) for k in ("ok", "total", "per", "error")}
    entry["paths_at_return"] = paths_now(vols, c.get("infos") or [])
    if c.get("infos"):
        entry["device_info_0"] = c["infos"][0]
    if not c["ok"]:
        log("%s: connect failed: %s" % (tool.name, c.get("error")))
        rec.append(entry)
        reset_initiator("after a failed connect of %s" % tool.name)
        return False
    entry["settled"] = wait_settled(vols)
    entry["settle_secs"] = settle(run)
    time.sleep(0.5)
    d = tool.disconnect_all(vols, c["infos"], timeout)
    if count:
        entry["disconnect_cmds"] = tool.exec_cmds()[n0:]
    entry["disconnect"] = {k: d.get(k) for k in ("ok", "total", "per", "error")}
    left = leftovers(vols)
    entry["left"] = left
    rec.append(entry)
    if not d["ok"] or left:
        log("%s: disconnect %s; left: %s" % (tool.name, "failed: %s" % d.get("error") if not d["ok"] else "ok", left))
        reset_initiator("after %s's disconnect" % tool.name)
        return False
    settle(run)
    time.sleep(0.5)
    return True


def local_copy(path: str, folder: str = "bin") -> str:
    """brick's binaries as installed on a host: on a local file system (tmpfs), not on the VM's
    9p share of the host, whose reads would slow each process start. folder keeps the base
    build's copies apart from those of the build under test."""
    os.makedirs(WORK + "/" + folder, exist_ok=True)
    dst = WORK + "/" + folder + "/" + os.path.basename(path)
    if not os.path.exists(dst):
        import shutil
        shutil.copy2(path, dst)
    return dst


def make_tools(cfg: dict[str, Any], wl: dict[str, Any]) -> dict[str, DriverTool | CliTool]:
    """The tools of workload wl: its own list (bench/run's BENCH_TOOLS_Wn), else the run's."""
    names = wl.get("tools") or cfg["tools"]
    py = cfg["python"]
    tools: dict[str, DriverTool | CliTool] = {
        "floor": DriverTool("floor", [py, BENCH_DIR + "/pydriver.py", "floor"]),
        "os-brick": DriverTool("os-brick", [py, BENCH_DIR + "/pydriver.py", "osbrick",
                                            WORK + "/oslocks"]),
        "brick-lib": DriverTool("brick-lib", [local_copy(cfg["brick_bench"])]),
        "brick-cli": CliTool(local_copy(cfg["brick"])),
    }
    if "brick-py" in names:
        # bench/pydriver.py with its one os-brick import swapped for brick's (bench/run makes it)
        tools["brick-py"] = DriverTool("brick-py", [py, cfg["pydriver_brick"], "osbrick",
                                                    WORK + "/oslocks-py"])
    if cfg.get("base_brick"):
        # the same two, from another build of brick (bench/run's BRICK_BASE_DIR), in the same run
        tools["base-lib"] = DriverTool("base-lib", [local_copy(cfg["base_brick_bench"], "base")])
        tools["base-cli"] = CliTool(local_copy(cfg["base_brick"], "base"), "base-cli")
    return {k: tools[k] for k in names}


LOG_ENV = {"floor": {}, "os-brick": {"BENCH_LOG": "debug"},
           "brick-lib": {"BENCH_LOG": "brick=debug"}, "brick-cli": {},
           "base-lib": {"BENCH_LOG": "brick=debug"}, "base-cli": {},
           "brick-py": {"BENCH_LOG": "debug", "BRICK_LOG": "brick=debug"}}


def run_workload(run: Run, wl: dict[str, Any], raw: dict[str, Any]) -> None:
    if wl["layout"] == "scale":
        run_scale(run, wl, raw)
        return
    wid = wl["id"]
    progress(run, "%s: %s" % (wid, wl["title"]))
    sh("lab_reset", check=False)
    vols = make_volumes(wl)
    out: dict[str, Any] = {"id": wid, "title": wl["title"], "volumes": len(vols),
                           "portals": wl["portals"], "multipath": wl["multipath"],
                           "layout": wl["layout"], "reps": wl["reps"],
                           "protocol": wl.get("protocol", "iscsi"), "tools": {}}
    raw["workloads"].append(out)
    tools = make_tools(run.cfg, wl)
    for t in tools.values():
        t.concurrent = bool(wl.get("concurrent"))
    measure(run, wl, out, vols, tools, raw, wid)
    sh("lab_reset" + ("; nvme_reset" if wl.get("protocol") == "nvmeof" else ""), check=False)


def measure(run: Run, wl: dict[str, Any], out: dict[str, Any], vols: list[dict[str, Any]],
            tools: dict[str, DriverTool | CliTool], raw: dict[str, Any], label: str,
            recover: Any = None) -> None:
    """The timed pass (wl["reps"] cycles of every tool, the order rotating) and, when
    wl["count"], the untimed pass, on vols; figures into out["tools"]. recover() is called
    after a failed cycle (whose clean-up resets the whole initiator)."""
    timeout = 60 + 90 * len(vols)
    names = list(tools)
    for name in names:
        out["tools"][name] = {"timed": [], "count": [], "diag": [], "mem": {}}

    # ---- timed pass
    for name, t in tools.items():
        st = t.start()
        if st:
            out["tools"][name]["mem"]["after_start"] = st
    for rep in range(wl["reps"]):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            t = tools[name]
            if isinstance(t, DriverTool) and t.proc is None:
                t.start()
            ok = one_cycle(run, t, vols, out["tools"][name]["timed"], timeout)
            e = out["tools"][name]["timed"][-1]
            progress(run, "%s rep %d/%d %-9s connect %s disconnect %s%s" % (
                label, rep + 1, wl["reps"], name, fmt(e["connect"].get("total")),
                fmt((e.get("disconnect") or {}).get("total")), "" if ok else "  FAILED"))
            if not ok and recover:
                recover()
    for name, t in tools.items():
        s = t.stats()
        if s:
            out["tools"][name]["mem"]["after_timed"] = s
        t.stop()
    save(run, raw)

    # ---- untimed pass: every tool under strace (the programs it starts), debug logs kept in
    # diag/, the brick process's own RSS sampled
    if wl.get("count", True):
        os.makedirs(TRACES, exist_ok=True)
        for name, t in tools.items():
            logf = "%s/diag/%s-%s.log" % (run.res, label, name)
            t.start(trace="%s/%s-%s" % (TRACES, label, name), debug_log=logf, log_env=LOG_ENV[name])
            if isinstance(t, CliTool):
                t.sample = True
            if not one_cycle(run, t, vols, out["tools"][name]["count"], timeout, count=True) and recover:
                recover()
            if isinstance(t, CliTool):
                t.sample = False
                out["tools"][name]["mem"]["cli_samples"] = t.mem
            t.stop()
        progress(run, "%s: untimed pass (process counts, debug logs) done" % label)
        save(run, raw)


# --------------------------------------------------------------------------------------------
# W5: one volume on a host that holds more and more others

BG_LUNS = 16  # background LUNs per target


def make_background(n: int) -> list[dict[str, Any]]:
    """The background volumes of a scale workload: n LUNs, BG_LUNS per target, every target on
    both portals (each LUN a two-path multipath volume)."""
    creates, vols = [], []
    for t in range((n + BG_LUNS - 1) // BG_LUNS):
        name = "w5bg%d" % (t + 1)
        luns = min(BG_LUNS, n - t * BG_LUNS)
        creates.append("target_create %s --portals 2 --luns %d --size 8" % (name, luns))
        vols += [(name, lun + 1) for lun in range(luns)]
    return lio_volumes(creates, vols, True, 2, n)


def background_op(run: Run, op: str, vols: list[dict[str, Any]],
                  infos: dict[str, Any]) -> tuple[bool, float, str | None]:
    """Untimed: connect (op "connect") or disconnect the background volumes vols with brick's
    library, fast: one brick-bench process per target, every target at once, the LUNs of a
    target one after the other. Connect fills infos (volume name -> device info), disconnect
    takes from it. Returns (ok, seconds, first error)."""
    by_target: dict[str, list[dict[str, Any]]] = {}
    for v in vols:
        by_target.setdefault(v["target"], []).append(v)
    results: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()

    def one(target: str, tv: list[dict[str, Any]]) -> None:
        d = DriverTool("bg-" + target, [local_copy(run.cfg["brick_bench"])])
        try:
            d.start()
            timeout = 60 + 90 * len(tv)
            if op == "connect":
                r = d.connect_all(tv, timeout)
                for v, i in zip(tv, r.get("infos") or []):
                    if i is not None:
                        infos[v["name"]] = i
            else:
                r = d.disconnect_all(tv, [infos.get(v["name"]) for v in tv], timeout)
                if r["ok"]:
                    for v in tv:
                        infos.pop(v["name"], None)
            results[target] = r
        except Exception as e:  # noqa: BLE001
            results[target] = {"ok": False, "error": "%s" % e}
        finally:
            d.stop()

    threads = [threading.Thread(target=one, args=kv) for kv in by_target.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.monotonic() - t0
    bad = [r.get("error") for r in results.values() if not r.get("ok")]
    return not bad and len(results) == len(by_target), secs, (bad[0] if bad else None)


def attach_background(run: Run, vols: list[dict[str, Any]], infos: dict[str, Any]) -> dict[str, Any]:
    """Untimed: attach vols (brick-lib, fast), wait until every map has both paths, settle udev.
    Raises when a volume did not attach or lacks a path."""
    ok, secs, err = background_op(run, "connect", vols, infos)
    if not ok:
        raise RuntimeError("background attach failed: %s" % err)
    settled = wait_settled(vols, timeout=300)
    settle_s = settle(run)
    short = [v["name"] for v, p in zip(vols, paths_now(vols, [None] * len(vols))) if p < 2]
    if not settled or short:
        raise RuntimeError("background volumes without both paths in their map: %s" % short)
    return {"attached": len(vols), "attach_s": secs, "settle_s": settle_s}


def run_scale(run: Run, wl: dict[str, Any], raw: dict[str, Any]) -> None:
    """W5: the measured volume (a two-path target of its own, as in W2) attached and detached
    by every tool on a host that already holds each of wl["sizes"] background volumes (grown
    in that order, attached untimed by brick-lib), then every background volume detached and
    the host checked clean. One raw workload per size: id "W5-N", "scale" "W5", "background" N."""
    wid = wl["id"]
    sizes = sorted(set(wl["sizes"]))
    progress(run, "%s: %s; background sizes %s" % (wid, wl["title"], sizes))
    sh("lab_reset", check=False)
    vols = make_volumes(wl)
    bg = make_background(sizes[-1]) if sizes[-1] > 0 else []
    infos: dict[str, Any] = {}
    tools = make_tools(run.cfg, wl)
    attached = 0
    bg_log: list[dict[str, Any]] = []
    raw.setdefault("scale", {})[wid] = {"sizes": sizes, "background": bg_log}

    def recover() -> None:
        # a failed cycle reset the whole initiator: the background goes again
        progress(run, "%s: attaching the %d background volumes again" % (wid, attached))
        infos.clear()
        if attached:
            bg_log.append(dict(attach_background(run, bg[:attached], infos), after_failure=True))

    try:
        for size in sizes:
            if size > attached:
                progress(run, "%s: attaching background volumes %d..%d" % (wid, attached + 1, size))
                r = attach_background(run, bg[attached:size], infos)
                attached = size
                r["total"] = attached
                bg_log.append(r)
                progress(run, "%s: %d background volumes attached (%.1f s, settle %.1f s)"
                         % (wid, attached, r["attach_s"], r["settle_s"]))
            label = "%s-%d" % (wid, size)
            out: dict[str, Any] = {"id": label, "scale": wid, "background": size,
                                   "title": "%s, %d background volumes" % (wl["title"], size),
                                   "volumes": len(vols), "portals": wl["portals"],
                                   "multipath": wl["multipath"], "layout": wl["layout"],
                                   "reps": wl["reps"], "protocol": "iscsi", "tools": {}}
            raw["workloads"].append(out)
            measure(run, wl, out, vols, tools, raw, label, recover)
        if bg:
            progress(run, "%s: detaching the %d background volumes" % (wid, attached))
            ok, secs, err = background_op(run, "disconnect", bg[:attached], infos)
            settle(run)
            left = leftovers(bg + vols)
            bg_log.append({"detached": attached, "detach_s": secs, "ok": ok, "error": err, "left": left})
            if not ok or left:
                raise RuntimeError("background detach %s; left: %s" % (
                    "failed: %s" % err if not ok else "ok", left))
            progress(run, "%s: background detached (%.1f s), host clean" % (wid, secs))
    finally:
        sh("lab_reset", check=False)


def fmt(x: float | None) -> str:
    return "-" if x is None else "%.2fs" % x


def save(run: Run, raw: dict[str, Any]) -> None:
    raw["elapsed_s"] = time.monotonic() - run.t_start
    tmp = run.res + "/raw.json.tmp"
    with open(tmp, "w") as f:
        json.dump(raw, f, indent=1)
    os.replace(tmp, run.res + "/raw.json")


def main() -> None:
    run = begin(sys.argv[1])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raw: dict[str, Any] = {"started_uptime": uptime(), "config": run.cfg, "workloads": [],
                           "guest": {"kernel": os.uname().release, "cpus": os.cpu_count(),
                                     "udevd": run.udevd}}
    for cmd, key in ((["iscsiadm", "--version"], "iscsiadm"), (["multipath", "-h"], "multipath"),
                     (["nvme", "version"], "nvme"),
                     ([run.cfg["brick"], "--version"], "brick"),
                     ([run.cfg["python"], "-c", "import importlib.metadata as m;print(m.version('os-brick'))"], "os_brick")):
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as e:  # e.g. no nvme-cli: only the NVMe workloads need it
            raw["guest"][key] = "missing (%s)" % e
            continue
        raw["guest"][key] = (p.stdout.strip().splitlines() or [""])[0]
    if not run.udevd:
        ByIdLinks().start()
    if any(w.get("count", True) for w in run.cfg["workloads"]):
        # the counting pass needs strace (lab/install.sh installs it): fail before any work
        try:
            ver = subprocess.run(["strace", "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise RuntimeError("the counting pass needs strace (%s): run lab/install.sh, or set "
                               "BENCH_COUNT=0" % e) from e
        raw["guest"]["strace"] = (ver.strip().splitlines() or [""])[0]
        raw["exec_trace"] = " ".join(EXEC_TRACE)
    for wl in run.cfg["workloads"]:
        try:
            run_workload(run, wl, raw)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            raw.setdefault("errors", []).append("%s: %s" % (wl["id"], e))
            progress(run, "%s: aborted: %s" % (wl["id"], e))
            sh("lab_reset" + ("; nvme_reset" if wl.get("protocol") == "nvmeof" else ""), check=False)
        save(run, raw)
    save(run, raw)
    progress(run, "done in %.0f s" % (time.monotonic() - run.t_start))


if __name__ == "__main__":
    main()
