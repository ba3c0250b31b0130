"""In-process benchmark drivers run inside the lab VM (see bench/README.md).

    python pydriver.py osbrick LOCK_DIR   os-brick's ISCSIConnector (NVMeOFConnector for requests
                                          with "protocol": "nvmeof"), privileged calls in-process
    python pydriver.py floor              the bare minimum: iscsiadm/multipathd + sysfs writes;
                                          NVMe/TCP: nvme connect / nvme disconnect + sysfs reads

Same line protocol as src/bin/brick-bench.rs: one JSON request per line on stdin, one JSON answer
per line on stdout ({"op": "connect"|"disconnect"|"batch"|"stats", ...}). "secs" in an answer is
the wall time of the call alone (time.monotonic), import and set-up not counted.
BENCH_LOG=debug sends the tool's debug logs to stderr.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import subprocess
import sys
import threading
import time
from typing import Any, TextIO, cast

POLL = 0.02  # floor: sysfs poll interval (s)


def protocol_channel() -> TextIO:
    """Keep the protocol channel clean whatever a library prints: the answers go to a copy of
    stdout, and fd 1 becomes stderr for everything else. Call it first, before a tool (os-brick)
    is imported or set up, so that nothing the tool writes can reach the channel."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


def status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stats() -> dict[str, Any]:
    return {
        "ok": True,
        "vm_hwm_kib": status_kib("VmHWM:"),
        "vm_rss_kib": status_kib("VmRSS:"),
        "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }


def targets_of(props: dict[str, Any]) -> list[tuple[str, str, int]]:
    """[(portal, iqn, lun)] of os-brick connection_properties."""
    if props.get("target_portals"):
        return list(zip(props["target_portals"], props["target_iqns"], props["target_luns"]))
    return [(props["target_portal"], props["target_iqn"], props["target_lun"])]


# --------------------------------------------------------------------------------------------
# os-brick


class OsBrick:
    def __init__(self, lock_dir: str) -> None:
        import logging

        if os.environ.get("BENCH_LOG"):
            logging.basicConfig(
                level=logging.DEBUG, stream=sys.stderr,
                format="%(relativeCreated)10.0f %(threadName)s %(name)s %(message)s")
        from oslo_concurrency import lockutils

        lockutils.set_defaults(lock_path=lock_dir)
        from oslo_config import cfg

        import os_brick

        os_brick.setup(cfg.CONF)
        import os_brick.privileged

        os_brick.privileged.default.set_client_mode(False)
        from os_brick.initiator import connector

        self.factory = connector.InitiatorConnector.factory
        self.single = self.factory("ISCSI", None, use_multipath=False)
        self.multi = self.factory("ISCSI", None, use_multipath=True)
        # NVMeOFConnector reads (and caches for the process) whether nvme_core has native
        # multipath when the first one is made: made at the first NVMe request (untimed), once
        # the modules are loaded
        self.nvme: dict[bool, Any] = {}

    def _conn(self, req: dict[str, Any]) -> Any:
        if req.get("protocol") == "nvmeof":
            mp = bool(req.get("multipath", len(req["props"].get("portals", [])) > 1))
            if mp not in self.nvme:
                self.nvme[mp] = self.factory("NVMEOF", None, use_multipath=mp)
            return self.nvme[mp]
        mp = req.get("multipath")
        if mp is None:
            mp = len(targets_of(req["props"])) > 1
        return self.multi if mp else self.single

    def connect(self, req: dict[str, Any]) -> dict[str, Any]:
        c = self._conn(req)
        t0 = time.monotonic()
        info = c.connect_volume(dict(req["props"]))
        return {"secs": time.monotonic() - t0, "device_info": info}

    def disconnect(self, req: dict[str, Any]) -> dict[str, Any]:
        c = self._conn(req)
        t0 = time.monotonic()
        c.disconnect_volume(dict(req["props"]), req.get("device_info"), force=False,
                            ignore_errors=False)
        return {"secs": time.monotonic() - t0}


# --------------------------------------------------------------------------------------------
# floor: the same kernel work by the shortest sequence of bare commands


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _run(*argv: str, check: bool = True) -> None:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), p.returncode, p.stderr.strip()))


def _session(iqn: str, portal: str) -> tuple[str, int] | None:
    """(session dir (real path), host number) of the session to iqn at portal, or None."""
    for s in glob.glob("/sys/class/iscsi_session/session*"):
        try:
            if _read(s + "/targetname") != iqn:
                continue
            real = os.path.realpath(s + "/device")
            for c in glob.glob(real + "/connection*/iscsi_connection/connection*"):
                if "%s:%s" % (_read(c + "/persistent_address"), _read(c + "/persistent_port")) == portal:
                    host = [p for p in real.split("/") if p.startswith("host")][-1]
                    return real, int(host[4:])
        except OSError:
            continue
    return None


def _lun_disk(sess_dir: str, lun: int) -> str | None:
    for b in glob.glob("%s/target*/*:*:*:%d/block/*" % (sess_dir, lun)):
        return os.path.basename(b)
    return None


def _lun_dirs(sess_dir: str) -> list[str]:
    return glob.glob(sess_dir + "/target*/*:*:*:*")


def _holder(sd: str) -> str | None:
    h = glob.glob("/sys/block/%s/holders/dm-*" % sd)
    return os.path.basename(h[0]) if h else None


def _nvme_paths(uuid: str) -> list[str]:
    """Per-controller entries of namespace uuid: nvmeXcYnZ (native multipath) or nvmeYnZ."""
    out = []
    for d in glob.glob("/sys/class/nvme/nvme*/nvme*n*"):
        try:
            if _read(d + "/uuid") == uuid:
                out.append(os.path.basename(d))
        except OSError:
            continue
    return out


def _nvme_head(path: str) -> str:
    """The block device of a per-controller entry: nvme0c1n1 -> nvme0n1, nvme1n1 -> nvme1n1."""
    if "c" not in path:
        return path
    ctrl, rest = path.split("c", 1)
    return ctrl + rest[rest.index("n"):]


class Floor:
    # Concurrent "iscsiadm -m node --op delete" on two portals of one target race on the
    # target's record folder ("iface iter could not stat ..."): one at a time.
    node_lock = threading.Lock()

    def _attach_path(self, portal: str, iqn: str, lun: int, mp: bool, out: list[str | None],
                     i: int) -> None:
        s = _session(iqn, portal)
        if s is None:
            _run("iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--op", "new")
            _run("iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--op", "update",
                 "-n", "node.session.scan", "-v", "manual")
            _run("iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--login")
            s = _session(iqn, portal)
            if s is None:
                raise RuntimeError("no session to %s at %s after login" % (iqn, portal))
        sess_dir, host = s
        _write("/sys/class/scsi_host/host%d/scan" % host, "- - %d" % lun)
        deadline = time.monotonic() + 30
        while True:
            sd = _lun_disk(sess_dir, lun)
            if sd and os.path.exists("/dev/" + sd):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("LUN %d of %s at %s did not show" % (lun, iqn, portal))
            time.sleep(POLL)
        if mp:
            # Hand the new path to multipathd at once (udev's event would reach it later, and
            # without udevd never); it may already have it: ignore the answer.
            _run("multipathd", "add", "path", sd, check=False)
        out[i] = sd

    def nvme_connect(self, req: dict[str, Any]) -> dict[str, Any]:
        """`nvme connect` to every portal (one process each, in parallel threads; the first
        portal only when not multipath), then wait (20 ms polls of sysfs) until the namespace
        shows under every controller and its /dev node exists. nvme-cli's defaults otherwise
        (host NQN and ID from /etc/nvme)."""
        props = req["props"]
        portals = props["portals"] if req.get("multipath") else props["portals"][:1]
        uuid = props["vol_uuid"]
        t0 = time.monotonic()
        errs: list[str] = []

        def work(p: list[Any]) -> None:
            try:
                _run("nvme", "connect", "-t", "rdma" if p[2] in ("rdma", "RoCEv2") else "tcp",
                     "-a", p[0], "-s", str(p[1]), "-n", props["target_nqn"])
            except Exception as e:  # noqa: BLE001
                errs.append(str(e))

        threads = [threading.Thread(target=work, args=(p,)) for p in portals]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errs:
            raise RuntimeError("; ".join(errs))
        deadline = time.monotonic() + 30
        while True:
            paths = _nvme_paths(uuid)
            if len(paths) >= len(portals) and os.path.exists("/dev/" + _nvme_head(paths[0])):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("namespace %s: %d of %d paths after 30 s" % (uuid, len(paths), len(portals)))
            time.sleep(POLL)
        return {"secs": time.monotonic() - t0,
                "device_info": {"type": "block", "path": "/dev/" + _nvme_head(paths[0])}}

    def nvme_disconnect(self, req: dict[str, Any]) -> dict[str, Any]:
        """`nvme disconnect -n NQN`: every controller of the subsystem (the write to each
        delete_controller returns once it is gone). No flush (nothing was written), no checks."""
        t0 = time.monotonic()
        _run("nvme", "disconnect", "-n", req["props"]["target_nqn"])
        return {"secs": time.monotonic() - t0}

    def connect(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("protocol") == "nvmeof":
            return self.nvme_connect(req)
        props = req["props"]
        ts = targets_of(props)
        mp = req.get("multipath")
        if mp is None:
            mp = len(ts) > 1
        t0 = time.monotonic()
        sds: list[str | None] = [None] * len(ts)
        errs: list[str] = []

        def work(i: int, t: tuple[str, str, int]) -> None:
            try:
                self._attach_path(t[0], t[1], t[2], mp, sds, i)
            except Exception as e:  # noqa: BLE001
                errs.append(str(e))

        threads = [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(ts)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errs:
            raise RuntimeError("; ".join(errs))
        disks = cast("list[str]", sds)  # every path found its disk (else an error above)
        wwid = _read("/sys/block/%s/device/wwid" % disks[0])
        wwn = "3" + wwid[4:] if wwid.startswith("naa.") else wwid
        if not mp:
            return {"secs": time.monotonic() - t0,
                    "device_info": {"type": "block", "path": "/dev/" + disks[0], "scsi_wwn": wwn}}
        # Wait for the map with every path; re-hand paths multipathd has not taken after 2 s.
        # multipathd builds the map from the first path and holds the others back until udev
        # has announced the map; `multipathd add map NAME` is that announcement, at once.
        deadline = time.monotonic() + 60
        next_readd = time.monotonic() + 2
        announced = False
        while True:
            dms = {_holder(sd) for sd in disks}
            if len(dms) == 1 and None not in dms:
                dm = dms.pop()
                if len(os.listdir("/sys/block/%s/slaves" % dm)) >= len(disks):
                    break
            if not announced and dms - {None}:
                announced = True
                dm = next(iter(dms - {None}))
                _run("multipathd", "add", "map", _read("/sys/block/%s/dm/name" % dm),
                     check=False)
                continue
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError("no map with %d paths for %s" % (len(disks), wwn))
            if now > next_readd:
                for sd in disks:
                    if _holder(sd) is None:
                        _run("multipathd", "add", "path", sd, check=False)
                next_readd = now + 2
            time.sleep(POLL)
        assert dm is not None  # the loop ends only on a map
        return {"secs": time.monotonic() - t0,
                "device_info": {"type": "block", "path": "/dev/" + dm, "scsi_wwn": wwn,
                                "multipath_id": wwn}}

    def _detach_path(self, portal: str, iqn: str, lun: int) -> None:
        s = _session(iqn, portal)
        if s is None:
            return
        sess_dir, _host = s
        for d in glob.glob("%s/target*/*:*:*:%d" % (sess_dir, lun)):
            _write(d + "/delete", "1")
        if not _lun_dirs(sess_dir):
            _run("iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--logout")
            with self.node_lock:
                _run("iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--op", "delete")

    def disconnect(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("protocol") == "nvmeof":
            return self.nvme_disconnect(req)
        props = req["props"]
        ts = targets_of(props)
        info = req.get("device_info") or {}
        t0 = time.monotonic()
        if info.get("multipath_id") or str(info.get("path", "")).startswith("/dev/dm-"):
            _run("multipath", "-f", info.get("multipath_id") or info["scsi_wwn"])
        errs: list[str] = []

        def work(t: tuple[str, str, int]) -> None:
            try:
                self._detach_path(*t)
            except Exception as e:  # noqa: BLE001
                errs.append(str(e))

        threads = [threading.Thread(target=work, args=(t,)) for t in ts]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errs:
            raise RuntimeError("; ".join(errs))
        return {"secs": time.monotonic() - t0}


# --------------------------------------------------------------------------------------------


def handle(tool: OsBrick | Floor, req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    t0 = time.monotonic()
    try:
        if op == "connect":
            return dict(ok=True, **tool.connect(req))
        if op == "disconnect":
            return dict(ok=True, **tool.disconnect(req))
        if op == "batch" and req.get("parallel"):
            # all at once, one thread each (os-brick's connect_volume and disconnect_volume take
            # its host-wide "connect_volume" lock: they still run one at a time)
            results: list[dict[str, Any] | None] = [None] * len(req["ops"])

            def one(i: int, r: dict[str, Any]) -> None:
                results[i] = handle(tool, r)

            threads = [threading.Thread(target=one, args=(i, r)) for i, r in enumerate(req["ops"])]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            ok = all(a and a["ok"] for a in results)
            return {"ok": ok, "secs": time.monotonic() - t0, "results": results}
        if op == "batch":
            done: list[dict[str, Any]] = []
            ok = True
            for r in req["ops"]:
                a = handle(tool, r)
                done.append(a)
                if not a["ok"]:
                    ok = False
                    break
            return {"ok": ok, "secs": time.monotonic() - t0, "results": done}
        if op == "stats":
            return stats()
        return {"ok": False, "error": "unknown op %r" % op}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e),
                "secs": time.monotonic() - t0}


def main() -> None:
    proto_out = protocol_channel()  # first: before os-brick is imported
    kind = sys.argv[1]
    tool: OsBrick | Floor
    if kind == "osbrick":
        tool = OsBrick(sys.argv[2])
    elif kind == "floor":
        tool = Floor()
    else:
        sys.exit("usage: pydriver.py osbrick LOCK_DIR | floor")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            ans = {"ok": False, "error": "bad request: %s" % e}
        else:
            ans = handle(tool, req)
        proto_out.write(json.dumps(ans) + "\n")


if __name__ == "__main__":
    main()
