"""The unprivileged path: the root helper runs `brick request`, the request on its standard
input; the same exceptions come back; no secret on a command line or in the environment."""

import json
import stat

import pytest

from brick import exception
from brick.initiator import connector

SECRET = "s3cret-chap-password"
PROPS = {"target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2003-01.org.lab:t1",
         "target_lun": "seven", "auth_method": "CHAP", "auth_username": "u",
         "auth_password": SECRET}


def helper(tmp_path, body="exec \"$@\""):
    """A root helper that records its argv and environment, then runs the command."""
    h = tmp_path / "helper"
    h.write_text("#!/bin/sh\nprintf '%%s\\n' \"$0\" \"$@\" > %s/argv\nenv > %s/env\n%s\n"
                 % (tmp_path, tmp_path, body))
    h.chmod(h.stat().st_mode | stat.S_IEXEC)
    return str(h)


def test_error_comes_back_as_the_same_exception_and_no_secret_leaks(tmp_path, brick_binary):
    c = connector.InitiatorConnector.factory("ISCSI", helper(tmp_path), in_process=False,
                                             brick_binary=brick_binary)
    with pytest.raises(exception.InvalidParameterValue) as e:
        c.connect_volume(PROPS)
    assert e.value.field == "target_lun"
    argv = (tmp_path / "argv").read_text().split("\n")
    assert argv[1:3] == [brick_binary, "request"]
    assert SECRET not in (tmp_path / "argv").read_text()
    assert SECRET not in (tmp_path / "env").read_text()
    assert SECRET not in str(e.value)


def test_root_helper_string_is_split_as_a_command_prefix(tmp_path, brick_binary, block_device):
    h = helper(tmp_path)
    c = connector.InitiatorConnector.factory("ISCSI", "env BRICK_X=1 " + h, in_process=False,
                                             brick_binary=brick_binary)
    assert c.check_valid_device(str(tmp_path / "missing")) is False
    assert c.check_valid_device(block_device) is True
    assert "BRICK_X=1" in (tmp_path / "env").read_text()


def test_helper_that_answers_nothing_is_named(tmp_path, brick_binary):
    c = connector.InitiatorConnector.factory("ISCSI", helper(tmp_path, "echo denied >&2; exit 1"),
                                             in_process=False, brick_binary=brick_binary)
    with pytest.raises(exception.BrickException, match="denied") as e:
        c.get_volume_paths(PROPS)
    assert "exit 1" in str(e.value)


def test_not_root_without_root_helper_is_refused(brick_binary):
    c = connector.InitiatorConnector.factory("ISCSI", None, in_process=False,
                                             brick_binary=brick_binary)
    with pytest.raises(exception.BrickException, match="root_helper"):
        c.connect_volume(PROPS)


def test_brick_request_answers_json_on_stdout(brick_binary):
    import subprocess

    p = subprocess.run([brick_binary, "request"], input=json.dumps(
        {"op": "connect", "props": PROPS}).encode(), stdout=subprocess.PIPE, check=False)
    answer = json.loads(p.stdout)
    assert answer["ok"] is False and answer["error"]["field"] == "target_lun"


def test_connector_properties_of_an_unprivileged_caller_go_through_the_helper(
        tmp_path, brick_binary, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("BRICK_BINARY", brick_binary)
    p = connector.get_connector_properties(helper(tmp_path), "10.0.0.9", False, False)
    assert (tmp_path / "argv").read_text().split("\n")[1:3] == [brick_binary, "request"]
    assert p["ip"] == "10.0.0.9" and p["multipath"] is False
