"""brick.initiator.connector on the lab's real kernel (scenario 40): properties, the exceptions of
a connect that attaches nothing, connect, paths, check_valid_device, disconnect (plain, force,
force + ignore_errors), extend. Tests run in file order; each leaves the host as it found it."""

import socket
import subprocess
import time

import pytest
from conftest import (assert_gone, backing_has, disks, map_of, node_records, sessions,
                      size_bytes, slaves, write_pattern)

from brick import exception
from brick.initiator import connector


def factory(multipath, **kw):
    return connector.InitiatorConnector.factory("ISCSI", None, use_multipath=multipath, **kw)


def dev(path):
    assert path.startswith("/dev/"), path
    return path[len("/dev/"):]


# -- properties and refusals


def test_connector_properties(lab):
    p = connector.get_connector_properties(None, "192.0.2.7", True, False)
    initiator = [line.split("=", 1)[1].strip() for line in open(lab["initiatorname"])
                 if line.startswith("InitiatorName=")][0]
    assert p["initiator"] == initiator
    assert (p["ip"], p["multipath"], p["enforce_multipath"]) == ("192.0.2.7", True, False)
    assert p["host"] == socket.gethostname() and p["os_type"] == "linux"


def test_bad_property_is_refused_before_the_host_changes(lab):
    vol = lab["mp1"]
    with pytest.raises(exception.InvalidParameterValue) as e:
        factory(True).connect_volume(dict(vol["props"], target_lun="one",
                                          target_luns=["one", "one"]))
    assert e.value.field.startswith("target_lun"), e.value.field
    assert_gone(vol)


def test_dead_portal_is_target_portal_not_found(lab):
    vol = lab["sp1"]
    props = dict(vol["props"], target_portal="127.0.0.1:3261")  # nothing listens there
    with pytest.raises(exception.TargetPortalNotFound) as e:
        factory(False).connect_volume(props)
    assert "127.0.0.1:3261" in str(e.value)
    assert_gone(vol)


# -- single path: connect, paths, check_valid_device, Nova's disconnect


def test_single_path_connect_paths_check_and_novas_disconnect(lab):
    vol = lab["sp1"]
    c = factory(False)
    info = c.connect_volume(dict(vol["props"]))
    sd = dev(info["path"])
    assert disks(vol["wwn"]) == [sd] and info["scsi_wwn"] == vol["wwn"]
    assert len(sessions(vol["props"]["target_iqn"])) == 1
    assert c.get_volume_paths(dict(vol["props"])) == [info["path"]]
    assert c.check_valid_device(info["path"]) is True
    data = write_pattern(sd, 3 << 20)
    # Nova: device_info None, the device in the properties
    c.disconnect_volume(dict(vol["props"], device_path=info["path"]), None)
    assert_gone(vol)
    assert backing_has(vol, 3 << 20, data)
    assert c.check_valid_device(info["path"]) is False


# -- multipath: connect, paths, disconnect with the data kept


def test_multipath_connect_paths_and_disconnect_keep_data(lab):
    vol = lab["mp1"]
    c = factory(True)
    info = c.connect_volume(dict(vol["props"]))
    dm = map_of(vol["wwn"])
    assert info["path"] == "/dev/" + dm and info["multipath_id"] == vol["wwn"]
    assert slaves(dm) == disks(vol["wwn"]) and len(slaves(dm)) == 2
    paths = c.get_volume_paths(dict(vol["props"]))
    assert paths[0] == "/dev/" + dm and sorted(paths[1:]) == ["/dev/" + s for s in slaves(dm)]
    data = write_pattern(dm, 5 << 20)
    c.disconnect_volume(dict(vol["props"]), info)
    assert_gone(vol)
    assert backing_has(vol, 5 << 20, data)


def test_forced_disconnect_of_a_healthy_volume_is_clean(lab):
    vol = lab["mp2"]
    c = factory(True)
    info = c.connect_volume(dict(vol["props"]))
    data = write_pattern(dev(info["path"]), 1 << 20)
    c.disconnect_volume(dict(vol["props"]), info, force=True)
    assert_gone(vol)
    assert backing_has(vol, 1 << 20, data)


def test_held_open_plain_refused_force_chained_ignore_errors_silent(lab):
    vol = lab["mp1"]
    c = factory(True)
    info = c.connect_volume(dict(vol["props"]))
    dm = dev(info["path"])
    # The holder is a process of its own, as a VM or a mount would be.
    with open(info["path"], "rb") as f:
        holder = subprocess.Popen(["sleep", "600"], stdin=f)
    try:
        with pytest.raises(exception.DisconnectFailed) as e:
            c.disconnect_volume(dict(vol["props"]), info)
        assert e.value.kind == "refused", e.value.report
        assert map_of(vol["wwn"]) == dm and len(slaves(dm)) == 2  # nothing removed
        with pytest.raises(exception.ExceptionChainer) as e:
            c.disconnect_volume(dict(vol["props"]), info, force=True)
        assert e.value and str(holder.pid) in str(e.value), str(e.value)
        assert disks(vol["wwn"]) == []  # paths deleted from under the opener
        assert sessions(vol["props"]["target_iqn"]) == []
        c.disconnect_volume(dict(vol["props"]), info, force=True, ignore_errors=True)
        assert map_of(vol["wwn"]) == dm  # still open: the map stays
    finally:
        holder.kill()
        holder.wait()
    c.disconnect_volume(dict(vol["props"]), info)
    assert_gone(vol)


# -- the exceptions of a connect that attaches nothing


def test_missing_lun_is_volume_device_not_found(lab):
    vol = lab["sp7"]
    t0 = time.monotonic()
    with pytest.raises(exception.VolumeDeviceNotFound) as e:
        factory(False).connect_volume(dict(vol["props"]))
    assert "LUN 7" in str(e.value) and time.monotonic() - t0 < 60
    iqn = vol["props"]["target_iqn"]
    assert sessions(iqn) == [] and node_records(iqn) == []


# -- extend


def test_extend_returns_the_new_size_the_kernel_shows(lab):
    vol = lab["grow"]
    c = factory(True)
    info = c.connect_volume(dict(vol["props"]))
    dm = dev(info["path"])
    assert size_bytes(dm) == 32 << 20
    subprocess.run(["truncate", "-s", "48M", vol["image"]], check=True)
    subprocess.run(["losetup", "-c", vol["loop"]], check=True)
    assert c.extend_volume(dict(vol["props"])) == 48 << 20
    assert size_bytes(dm) == 48 << 20
    assert [size_bytes(s) for s in slaves(dm)] == [48 << 20, 48 << 20]
    c.disconnect_volume(dict(vol["props"]), info)
    assert_gone(vol)
