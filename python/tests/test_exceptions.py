"""brick's error answers become os-brick's exceptions, with brick's message and field."""

from brick import _errors, exception


def test_hierarchy_is_os_bricks():
    assert issubclass(exception.InvalidParameterValue, exception.Invalid)
    assert issubclass(exception.Invalid, exception.BrickException)
    assert issubclass(exception.TargetPortalsNotFound, exception.TargetPortalNotFound)
    assert issubclass(exception.InvalidConnectorProtocol, ValueError)
    assert issubclass(exception.ExceptionChainer, exception.BrickException)
    for name in ("VolumeDeviceNotFound", "VolumePathsNotFound", "VolumePathNotRemoved",
                 "ProtocolNotSupported", "FailedISCSITargetPortalLogin", "NotFound",
                 "CommandExecutionFailed", "BlockDeviceReadOnly"):
        assert issubclass(getattr(exception, name), exception.BrickException), name


def test_message_is_filled_from_kwargs_as_os_brick_does():
    e = exception.VolumeDeviceNotFound(device="/dev/sdz")
    assert "/dev/sdz" in str(e)
    assert e.kwargs["code"] == 500


def test_bad_property_is_invalid_parameter_value_naming_the_field():
    e = _errors.to_exception("connect", {"kind": "invalid_input", "field": "target_lun",
                                         "message": "invalid target_lun: not a number"})
    assert type(e) is exception.InvalidParameterValue
    assert e.field == "target_lun"
    assert "target_lun" in str(e)


def _path(kind, portal="127.0.0.1:3260"):
    return {"portal": portal, "iqn": "iqn.2003-01.x:t", "kind": kind, "message": kind}


def test_dead_portal_is_target_portal_not_found():
    props = {"target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2003-01.x:t",
             "target_lun": 1}
    e = _errors.to_exception("connect", {"kind": "failed", "message": "m",
                                         "paths": [_path("login")]}, props)
    assert type(e) is exception.TargetPortalNotFound
    assert e.paths[0]["kind"] == "login"


def test_dead_portals_of_a_multipath_volume_are_target_portals_not_found():
    e = _errors.to_exception("connect", {"kind": "failed", "message": "m",
                                         "paths": [_path("login"),
                                                   _path("discovery", "127.0.0.2:3260")]})
    assert type(e) is exception.TargetPortalsNotFound
    assert isinstance(e, exception.TargetPortalNotFound)


def test_missing_lun_is_volume_device_not_found():
    e = _errors.to_exception("connect", {"kind": "failed", "message": "no LUN 7",
                                         "paths": [_path("lun_not_offered")]})
    assert type(e) is exception.VolumeDeviceNotFound
    assert "no LUN 7" in str(e)


NVME_PROPS = {"target_nqn": "nqn.2014-08.org.lab:s1",
              "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d",
              "portals": [["127.0.0.1", 4420, "tcp"], ["127.0.0.2", 4420, "tcp"]]}


def _nvme_path(kind, portal="127.0.0.1:4420"):
    """A failed NVMe portal as brick's answer gives it (tests/nvme_typed.rs checks the shape)."""
    return {"portal": portal, "transport": "tcp", "nqn": NVME_PROPS["target_nqn"],
            "kind": kind, "message": "connect failed: Connection refused"}


def test_every_nvme_portal_failing_is_target_portal_not_found():
    one = dict(NVME_PROPS, portals=NVME_PROPS["portals"][:1])
    e = _errors.to_exception("connect", {"kind": "failed", "message": "m",
                                         "paths": [_nvme_path("connect")]}, one)
    assert type(e) is exception.TargetPortalNotFound
    assert e.paths[0]["nqn"] == NVME_PROPS["target_nqn"]
    e = _errors.to_exception("connect", {"kind": "failed", "message": "m", "paths": [
        _nvme_path("connect"), _nvme_path("controller_not_live", "127.0.0.2:4420")]},
        NVME_PROPS)
    assert type(e) is exception.TargetPortalsNotFound
    assert e.kwargs["target_portals"] == ["127.0.0.1:4420", "127.0.0.2:4420"]


def test_nvme_namespace_that_never_showed_is_volume_device_not_found():
    e = _errors.to_exception("connect", {"kind": "failed", "message": "no namespace with uuid",
                                         "paths": None}, NVME_PROPS)
    assert type(e) is exception.VolumeDeviceNotFound


def test_forced_disconnect_failures_come_back_chained():
    report = {"failures": [{"thing": {"disk": "sdb"}, "message": "sdb: flush failed"},
                           {"thing": None, "message": "session 3: logout failed"}]}
    e = _errors.to_exception("disconnect", {"kind": "incomplete", "message": "left sdb",
                                            "report": report}, force=True)
    assert type(e) is exception.ExceptionChainer
    assert bool(e)
    assert [str(x) for x in e.exceptions] == ["sdb: flush failed", "session 3: logout failed"]
    assert "sdb: flush failed" in str(e)
    assert e.report is report


def test_plain_disconnect_refusal_keeps_kind_and_report():
    e = _errors.to_exception("disconnect", {"kind": "refused", "message": "flush failed",
                                            "report": {"outcome": "refused"}})
    assert isinstance(e, exception.DisconnectFailed)
    assert e.kind == "refused"
    assert e.report == {"outcome": "refused"}


def test_exception_chainer_context_collects_as_os_brick():
    chain = exception.ExceptionChainer()
    assert not chain
    with chain.context(True, "step failed"):
        raise OSError("boom")
    assert chain and isinstance(chain.exceptions[0], OSError)


def test_every_class_has_os_bricks_name_and_bases():
    """brick.exception's classes are os-brick's (7.1.1, installed by python/test.sh), with the
    same bases, so a caller's except clauses catch the same things."""
    from os_brick import exception as osb

    ours = {n: c for n, c in vars(exception).items()
            if isinstance(c, type) and issubclass(c, Exception) and n != "DisconnectFailed"}
    assert len(ours) >= 25
    for name, cls in ours.items():
        theirs = getattr(osb, name)
        assert [b.__name__ for b in cls.__bases__] == [b.__name__ for b in theirs.__bases__], name
