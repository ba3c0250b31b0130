"""brick.initiator.connector on the lab's real kernel (scenario 41): two threads at once, an
unprivileged caller through a root helper, and os-brick's lock against a real os-brick process.
Tests run in file order; each leaves the host as it found it."""

import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from conftest import assert_gone, disks, map_of, sessions, slaves

from brick import exception
from brick.initiator import connector

HERE = os.path.dirname(os.path.abspath(__file__))


def factory(multipath, **kw):
    return connector.InitiatorConnector.factory("ISCSI", None, use_multipath=multipath, **kw)


def dev(path):
    assert path.startswith("/dev/"), path
    return path[len("/dev/"):]


# -- threads


def test_two_threads_attach_two_volumes_at_once(lab):
    vols = [lab["mp1"], lab["other"]]
    c = factory(True)
    spans, infos, errors = {}, {}, []

    def work(i, fn):
        try:
            t0 = time.monotonic()
            infos[i] = fn(vols[i])
            spans[i] = (t0, time.monotonic())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def both(fn):
        spans.clear()
        ts = [threading.Thread(target=work, args=(i, fn)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors
        (a0, a1), (b0, b1) = spans[0], spans[1]
        assert a0 < b1 and b0 < a1, "the calls did not overlap: %s" % spans

    both(lambda v: c.connect_volume(dict(v["props"])))
    for i, v in enumerate(vols):
        dm = map_of(v["wwn"])
        assert infos[i]["path"] == "/dev/" + dm and len(slaves(dm)) == 2
    connected = dict(infos)
    both(lambda v: c.disconnect_volume(dict(v["props"]), connected[vols.index(v)]))
    for v in vols:
        assert_gone(v)


# -- an unprivileged caller through a root helper


class Broker:
    """Root's side of roothelper.py (as sudo would be): runs only `BRICK request`, and records
    each helper's command line and environment as the kernel shows them (/proc)."""

    def __init__(self, brick):
        self.brick = brick
        self.dir = tempfile.mkdtemp(prefix="brick-broker-")
        os.chmod(self.dir, 0o777)
        self.path = os.path.join(self.dir, "sock")
        self.seen = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                    struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", creds)
            cmdline = open("/proc/%d/cmdline" % pid, "rb").read().decode(errors="replace")
            environ = open("/proc/%d/environ" % pid, "rb").read().decode(errors="replace")
            req = json.loads(conn.makefile("rb").readline())
            self.seen.append({"uid": uid, "argv": req["argv"], "cmdline": cmdline,
                              "environ": environ})
            if req["argv"] != [self.brick, "request"]:
                ans = {"rc": 126, "stdout": "", "stderr": "not allowed: %s" % req["argv"]}
            else:
                p = subprocess.run(req["argv"], input=req["stdin"].encode(),
                                   capture_output=True, check=False)
                ans = {"rc": p.returncode, "stdout": p.stdout.decode(),
                       "stderr": p.stderr.decode()}
            conn.sendall(json.dumps(ans).encode())


def as_nobody(*args):
    """Runs unpriv_client.py as nobody, with the system's python (the venv's interpreter is
    under /root, which nobody cannot enter) and the venv's packages."""
    site = [p for p in sys.path if p.endswith("site-packages")][0]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": site, "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                        "/usr/bin/python3", os.path.join(HERE, "unpriv_client.py")]
                       + list(args), capture_output=True, env=env, check=False)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def test_unprivileged_caller_through_a_root_helper(lab):
    vol = lab["chap"]
    broker = Broker(lab["brick"])
    config = os.path.join(broker.dir, "lab.json")
    with open(config, "w") as f:
        json.dump(lab, f)
    os.chmod(config, 0o644)

    bad = as_nobody("bad", config, broker.path)
    assert bad == {"euid": 65534, "raised": "InvalidParameterValue", "field": "target_lun"}
    assert_gone(vol)

    got = as_nobody("connect", config, broker.path)
    assert got["euid"] == 65534 and got["own_open"] == "PermissionError"
    sd = dev(got["info"]["path"])
    assert disks(vol["wwn"]) == [sd] and len(sessions(vol["props"]["target_iqn"])) == 1
    assert got["valid"] is True and got["paths"] == [got["info"]["path"]]

    done = as_nobody("disconnect", config, broker.path, json.dumps(got["info"]))
    assert done["done"] is True
    assert_gone(vol)

    assert len(broker.seen) >= 5
    for s in broker.seen:
        assert s["uid"] == 65534 and s["argv"] == [lab["brick"], "request"]
        assert lab["chap_secret"] not in s["cmdline"] + s["environ"]


# -- os-brick's lock against a real os-brick process


def lock_holder(path):
    """The pid holding a write-conflicting POSIX lock on path, or None (F_GETLK; takes
    nothing). Only while this process holds no lock on path: closing the probe's descriptor
    would drop this process's own."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        arg = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, arg)
        l_type, _w, _s, _l, pid = struct.unpack("@hhqqi4x", res)
        return None if l_type == fcntl.F_UNLCK else pid
    finally:
        os.close(fd)


def start_osbrick(lab, lock_dir, step, *extra):
    config = os.path.join(lock_dir, "lab.json")
    with open(config, "w") as f:
        json.dump(lab, f)
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "osbrick_child.py"), config,
                          lock_dir, step] + list(extra),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def finish(p):
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_os_bricks_lock_excludes_a_real_os_brick_process(lab):
    lock_dir = tempfile.mkdtemp(prefix="brick-locks-")
    lock_file = os.path.join(lock_dir, "os-brick-connect_volume")
    c = factory(False, lock_path=lock_dir)
    spans, started, at_start = [], [], []
    real_call = c._transport.call

    def timed(request, privileged=True):
        t0 = time.monotonic()
        started.append(t0)
        # what os-brick's volume looks like the moment brick's call begins (brick holds the lock)
        at_start.append((disks(ob["wwn"]), sessions(ob["props"]["target_iqn"])))
        try:
            return real_call(request, privileged)
        finally:
            spans.append((request["op"], t0, time.monotonic()))

    c._transport.call = timed
    ob = lab["ob"]

    # 1. brick holds it (a connect of a LUN the target does not offer: ~20 s), os-brick starts
    # its connect meanwhile: os-brick acquires only after brick's call ended.
    osb = start_osbrick(lab, lock_dir, "connect")
    err = []

    def brick_connect():
        try:
            c.connect_volume(dict(lab["sp7"]["props"]))
        except exception.VolumeDeviceNotFound as e:
            err.append(e)

    t = threading.Thread(target=brick_connect)
    t.start()
    deadline = time.monotonic() + 30
    while not started:
        assert time.monotonic() < deadline, "brick's connect never started"
        time.sleep(0.01)
    time.sleep(2)  # brick is in its connect (~20 s), holding the lock
    osb.stdin.write("go\n")
    osb.stdin.flush()
    t.join()
    assert len(err) == 1
    (_op, b0, b1), = [s for s in spans if s[0] == "connect"]
    got = finish(osb)
    assert got["start"] < b1, "os-brick started after brick ended: nothing was tested"
    assert got["acquired"] > b1, "os-brick took the lock while brick held it"
    assert disks(ob["wwn"]) == [dev(got["info"]["path"])]

    # 2. os-brick holds it (disconnecting its volume), brick connects meanwhile: brick's call
    # starts only once os-brick's disconnect is done.
    spans.clear()
    at_start.clear()
    osb = start_osbrick(lab, lock_dir, "disconnect", json.dumps(got["info"]))
    osb.stdin.write("go\n")
    osb.stdin.flush()
    deadline = time.monotonic() + 30
    while lock_holder(lock_file) != osb.pid:
        assert time.monotonic() < deadline and osb.poll() is None, "os-brick never held it"
        time.sleep(0.005)
    info = c.connect_volume(dict(lab["sp1"]["props"]))
    (_op, b0, b1), = spans
    gone = finish(osb)
    assert gone["acquired"] < b0
    assert at_start == [([], [])], "brick began while os-brick's disconnect was unfinished"
    assert_gone(ob)
    c.disconnect_volume(dict(lab["sp1"]["props"]), info)
    assert_gone(lab["sp1"])
