"""The connector API: os-brick's signatures and shapes, brick's checks before the host changes,
the GIL released during a call. In-process calls here touch no device: bad input, a volume
that is not connected, files."""

import inspect
import json
import os
import threading
import time

import pytest

from brick import _native, exception
from brick.initiator import connector
from brick.initiator.connectors import base

PROPS = {"target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2003-01.org.lab:t1",
         "target_lun": 1, "volume_id": "v1"}


def test_factory_and_get_connector_properties_have_os_bricks_signatures():
    f = inspect.signature(connector.InitiatorConnector.factory)
    assert list(f.parameters)[:6] == ["protocol", "root_helper", "driver", "use_multipath",
                                      "device_scan_attempts", "arch"]
    assert f.parameters["device_scan_attempts"].default == 3
    g = inspect.signature(connector.get_connector_properties)
    assert list(g.parameters) == ["root_helper", "my_ip", "multipath", "enforce_multipath",
                                  "host", "execute"]


def test_factory_refuses_a_protocol_brick_has_not():
    with pytest.raises(exception.InvalidConnectorProtocol):
        connector.InitiatorConnector.factory("FIBRE_CHANNEL", None)
    c = connector.InitiatorConnector.factory("iscsi", "sudo", use_multipath=True)
    assert c.use_multipath and c.get_search_path() == "/dev/disk/by-path"


def test_get_connector_properties_shape():
    p = connector.get_connector_properties(None, "10.0.0.5", True, False, host="compute-1")
    assert p["ip"] == "10.0.0.5" and p["host"] == "compute-1"
    assert p["multipath"] is True and p["enforce_multipath"] is False
    assert p["os_type"] == "linux" and p["platform"]
    if os.path.exists("/etc/iscsi/initiatorname.iscsi"):
        assert p["initiator"].startswith("iqn.")


def test_bad_property_is_refused_naming_the_field():
    c = connector.InitiatorConnector.factory("ISCSI", None, in_process=True)
    with pytest.raises(exception.InvalidParameterValue) as e:
        c.connect_volume(dict(PROPS, target_lun="one"))
    assert e.value.field == "target_lun"
    with pytest.raises(exception.InvalidParameterValue) as e:
        c.disconnect_volume(dict(PROPS, target_portal="nowhere"), None)
    assert e.value.field.startswith("target_portal")


def test_extend_of_a_volume_not_connected_is_volume_paths_not_found():
    c = connector.InitiatorConnector.factory("ISCSI", None, in_process=True)
    with pytest.raises(exception.VolumePathsNotFound):
        c.extend_volume(PROPS)
    assert c.get_volume_paths(PROPS) == []


def test_check_valid_device_reads_one_block_of_a_block_device(tmp_path, block_device):
    c = connector.InitiatorConnector.factory("ISCSI", None, in_process=True)
    assert c.check_valid_device(block_device) is True
    assert c.check_valid_device(str(tmp_path / "missing")) is False


def test_check_valid_device_opens_no_file_character_device_or_link(tmp_path, block_device):
    """The caller names the path and brick opens it as root: only a block device, not a file,
    not /dev/null (standing for /dev/watchdog, whose open arms a reboot), not a link."""
    c = connector.InitiatorConnector.factory("ISCSI", None, in_process=True)
    f = tmp_path / "file"
    f.write_bytes(b"x" * 4096)
    link = tmp_path / "link"
    link.symlink_to(block_device)
    assert c.check_valid_device(str(f)) is False
    assert c.check_valid_device("/dev/null") is False
    assert c.check_valid_device(str(link)) is False


class Recorder:
    """A transport that records requests and answers from a script."""

    def __init__(self, answers):
        self.requests = []
        self.answers = dict(answers)

    def call(self, request, privileged=True):
        self.requests.append(request)
        return self.answers[request["op"]]


def test_enforced_multipath_without_multipathd_is_refused_before_any_connect():
    c = connector.InitiatorConnector.factory("ISCSI", None, use_multipath=True)
    c._transport = Recorder({"multipathd_running": {"ok": True, "result": False}})
    with pytest.raises(exception.BrickException, match="multipathd is not running"):
        c.connect_volume(dict(PROPS, enforce_multipath=True))
    assert [r["op"] for r in c._transport.requests] == ["multipathd_running"]


def test_multipath_without_multipathd_not_enforced_connects_one_path():
    c = connector.InitiatorConnector.factory("ISCSI", None, use_multipath=True)
    info = {"type": "block", "path": "/dev/sdb", "scsi_wwn": "3600", "failed_paths": []}
    c._transport = Recorder({"multipathd_running": {"ok": True, "result": False},
                             "connect": {"ok": True, "result": info}})
    assert c.connect_volume(PROPS) == {"type": "block", "path": "/dev/sdb", "scsi_wwn": "3600"}
    connect = c._transport.requests[-1]
    assert connect["multipath"] is False and connect["protocol"] == "iscsi"


def test_nvmeof_connect_gives_device_info_only_and_sends_no_iscsi_option():
    """brick's connect answer carries the failed paths for every transport: the NVMe-oF
    connector logs them and gives Nova device_info alone; it sends no option of iSCSI's (the
    seam would refuse it)."""
    c = connector.InitiatorConnector.factory("NVMEOF", None, use_multipath=True)
    failed = {"portal": "127.0.0.2:4420", "transport": "tcp", "nqn": "nqn.2014-08.org.lab:s1",
              "kind": "connect", "message": "connect failed: Connection refused"}
    info = {"type": "block", "path": "/dev/nvme0n1", "failed_paths": [failed]}
    c._transport = Recorder({"connect": {"ok": True, "result": info}})
    assert c.connect_volume({"target_nqn": "nqn.2014-08.org.lab:s1"}) == {
        "type": "block", "path": "/dev/nvme0n1"}
    connect = c._transport.requests[-1]
    assert connect["protocol"] == "nvmeof"
    assert "transport" not in connect and "multipath" not in connect, connect


def test_nova_disconnect_sends_device_path_with_no_device_info():
    c = connector.InitiatorConnector.factory("ISCSI", None)
    c._transport = Recorder({"disconnect": {"ok": True, "result": {"failures": []}}})
    c.disconnect_volume(dict(PROPS, device_path="/dev/sdc"), None)
    r = c._transport.requests[0]
    assert r["device_info"] is None and r["props"]["device_path"] == "/dev/sdc"
    assert r["force"] is False and r["ignore_errors"] is False


def test_forced_disconnect_with_ignore_errors_raises_nothing():
    c = connector.InitiatorConnector.factory("ISCSI", None)
    c._transport = Recorder({"disconnect": {"ok": True, "result": {
        "failures": [{"message": "sdb: flush failed"}]}}})
    c.disconnect_volume(PROPS, None, force=True, ignore_errors=True)


def test_native_call_releases_the_gil(tmp_path):
    """A call blocked in brick (waiting 1 s for a lock another holder keeps, in the lock folder
    of the settings file it is given) lets Python threads run meanwhile, and the lock it waits
    for is the file the command line takes with the same settings."""
    import fcntl

    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    settings = tmp_path / "brick.toml"
    settings.write_text('lock_dir = "%s"\nlock_timeout = "1s"\n' % locks)
    settings.chmod(0o644)
    nqn = "nqn.2014-08.org.lab:gil"
    # What a connect takes first: the host's NVMe identity (when it has none) or the subsystem.
    held = []
    for name in ("nvme-host-identity", "nvme-" + nqn.replace(":", "_")):
        f = open(locks / (name + ".lock"), "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        held.append(f)
    req = json.dumps({"op": "connect", "protocol": "nvmeof", "props": {
        "target_nqn": nqn, "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d",
        "portals": [["127.0.0.1", 4420, "tcp"]]}})
    result = []
    t = threading.Thread(
        target=lambda: result.append(json.loads(_native.call(req, str(settings)))))
    t.start()
    time.sleep(0.1)
    ticks = 0
    t0 = time.monotonic()
    while t.is_alive() and time.monotonic() - t0 < 10:
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert result[0]["ok"] is False, result
    assert "still locked after 1s" in result[0]["error"]["message"], result
    assert str(locks) in result[0]["error"]["message"], result
    assert ticks > 100, "the main thread ran only %d times during the call" % ticks


def test_connect_and_disconnect_hold_os_bricks_lock_when_a_lock_path_is_set(tmp_path,
                                                                             monkeypatch):
    from test_lock import other_process_gets

    monkeypatch.setenv(base.LOCK_PATH_ENV, str(tmp_path))
    c = connector.InitiatorConnector.factory("ISCSI", None)
    held = []

    class Probe(Recorder):
        def call(self, request, privileged=True):
            held.append((request["op"], other_process_gets(
                tmp_path / "os-brick-connect_volume")))
            return super().call(request, privileged)

    c._transport = Probe({"connect": {"ok": True, "result": {"type": "block"}},
                          "disconnect": {"ok": True, "result": {}}})
    c.connect_volume(PROPS)
    c.disconnect_volume(PROPS, {"type": "block"})
    assert held == [("connect", False), ("disconnect", False)]
    assert other_process_gets(tmp_path / "os-brick-connect_volume")


NVME_PROPS = {"target_nqn": "nqn.2014-08.org.lab:s1",
              "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d",
              "portals": [["127.0.0.1", 4420, "tcp"]]}


def test_factory_gives_the_nvmeof_and_iser_connectors():
    from brick.initiator.connectors.iscsi import ISCSIConnector
    from brick.initiator.connectors.nvmeof import NVMeOFConnector

    assert isinstance(connector.InitiatorConnector.factory("NVMEOF", None), NVMeOFConnector)
    c = connector.InitiatorConnector.factory("ISER", None)
    assert isinstance(c, ISCSIConnector) and c.transport == "iser"
    assert connector.InitiatorConnector.factory("ISCSI", None).transport == "default"


def test_nvmeof_bad_property_is_refused_naming_the_field():
    c = connector.InitiatorConnector.factory("NVMEOF", None, in_process=True)
    with pytest.raises(exception.InvalidParameterValue) as e:
        c.connect_volume(dict(NVME_PROPS, target_nqn="not an nqn"))
    assert e.value.field == "target_nqn"
    with pytest.raises(exception.VolumePathsNotFound):
        c.extend_volume(NVME_PROPS)
    assert c.get_volume_paths(NVME_PROPS) == []


def test_connector_properties_carry_the_nvme_identity():
    p = connector.get_connector_properties(None, "10.0.0.5", False, False)
    assert "nvme_native_multipath" in p
    if os.geteuid() == 0:
        # os-brick makes the host NQN when it is missing; so does brick, as root.
        assert p["nqn"].startswith("nqn.")
