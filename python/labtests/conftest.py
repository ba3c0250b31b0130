"""The Python package's lab suite: runs in the lab VM (lab/scenarios/40-python-connector.sh),
as root, against a real kernel, LIO target, iscsid and multipathd. BRICK_LAB_CONFIG names the
JSON the scenario wrote: each volume's os-brick properties, WWN and backing file. Every test
asserts on the kernel's state (sysfs, node records, backing files), never on brick's words."""

import glob
import json
import os
import sys

import pytest

CONFIG = json.load(open(os.environ["BRICK_LAB_CONFIG"]))


def pytest_runtest_logreport(report):
    """A failure's details at once, in the scenario's log (the summary at the end is lost when
    the scenario times out)."""
    if report.failed:
        sys.stderr.write("\n--- %s %s failed:\n%s\n" % (report.nodeid, report.when,
                                                        report.longreprtext))


@pytest.fixture
def lab():
    return CONFIG


def read(path):
    with open(path) as f:
        return f.read().strip()


def sessions(iqn):
    """Session folders to the target iqn."""
    return [s for s in glob.glob("/sys/class/iscsi_session/session*")
            if read(s + "/targetname") == iqn]


def disks(wwn):
    """sdX of the host whose WWN is wwn."""
    out = []
    for d in glob.glob("/sys/block/sd*"):
        try:
            w = read(d + "/device/wwid")
        except OSError:
            continue
        if "3" + w[4:] == wwn and w.startswith("naa."):
            out.append(os.path.basename(d))
    return sorted(out)


def map_of(wwn):
    """dm-N of the multipath map of wwn, or None."""
    for d in glob.glob("/sys/block/dm-*"):
        try:
            if read(d + "/dm/uuid") == "mpath-" + wwn:
                return os.path.basename(d)
        except OSError:
            continue
    return None


def slaves(dm):
    return sorted(os.listdir("/sys/block/%s/slaves" % dm))


def node_records(iqn):
    return glob.glob("/etc/iscsi/nodes/%s/*" % iqn)


def assert_gone(vol):
    """No disk, map, session or node record of the volume's target is left."""
    iqn = vol["props"]["target_iqn"]
    assert disks(vol["wwn"]) == [], "disks of %s left" % vol["wwn"]
    assert map_of(vol["wwn"]) is None, "map of %s left" % vol["wwn"]
    assert sessions(iqn) == [], "sessions to %s left" % iqn
    assert node_records(iqn) == [], "node records of %s left" % iqn


def size_bytes(dev):
    return int(read("/sys/block/%s/size" % dev)) * 512


def write_pattern(dev, offset, size=1 << 20):
    """Writes random data to /dev/dev at offset, buffered, no flush (brick must flush it)."""
    data = os.urandom(size)
    fd = os.open("/dev/" + dev, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
    return data


def backing_has(vol, offset, data):
    with open(vol["backing"], "rb") as f:
        f.seek(offset)
        return f.read(len(data)) == data
