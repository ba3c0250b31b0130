"""Exceptions of brick's Python API, with os-brick's class names, hierarchy and meanings
(``os_brick.exception``), so that a caller's ``except exception.VolumeDeviceNotFound:`` works
unchanged after ``from brick import exception``.

Every exception brick raises from an operation carries what brick said: ``kind`` (brick's error
kind: ``invalid_input``, ``refused``, ``incomplete``, ``prerequisite``, ``failed``, ...),
``field`` (the input field at fault, for bad input), ``paths`` (each path of a failed connect:
portal, iqn, kind, message) and ``report`` (what a failed disconnect did and left, as brick's
``--json`` prints it). Its message is brick's: it names the field or the device.
"""

from __future__ import annotations

import traceback
from typing import Any, List, Optional, Tuple


class BrickException(Exception):
    """Base of every brick exception. ``message`` is a format string filled from the keyword
    arguments when no message is given, as in os-brick."""

    message = "An unknown error occurred."
    code = 500
    headers: dict = {}
    safe = False

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.kwargs.setdefault("code", self.code)
        if not message:
            try:
                message = self.message % kwargs
            except (KeyError, TypeError, ValueError):
                message = self.message
        self.msg = message
        self.kind: Optional[str] = None
        self.field: Optional[str] = None
        self.paths: List[dict] = []
        self.report: Optional[dict] = None
        super().__init__(message)


class NotFound(BrickException):
    message = "Not found."


class Invalid(BrickException):
    message = "Invalid parameters."


class InvalidParameterValue(Invalid):
    message = "%(err)s"


class NoFibreChannelHostsFound(BrickException):
    message = "No Fibre Channel host found."


class NoFibreChannelVolumeDeviceFound(BrickException):
    message = "No Fibre Channel volume device found."


class VolumeNotDeactivated(BrickException):
    message = "Volume %(name)s still active after the deadline."


class VolumeDeviceNotFound(BrickException):
    message = "No volume device at %(device)s."


class VolumePathsNotFound(BrickException):
    message = "The volume has no path on this host."


class VolumePathNotRemoved(BrickException):
    message = "Volume path %(volume_path)s still present after the deadline."


class ProtocolNotSupported(BrickException):
    message = "Protocol %(protocol)s is not supported."


class TargetPortalNotFound(BrickException):
    message = "Target portal %(target_portal)s not found."


class TargetPortalsNotFound(TargetPortalNotFound):
    message = "No target portal found in %(target_portals)s."


class FailedISCSITargetPortalLogin(BrickException):
    message = "Login to the iSCSI target portal failed."


class BlockDeviceReadOnly(BrickException):
    message = "Block device %(device)s is read-only."


class VolumeGroupNotFound(BrickException):
    message = "Volume group %(vg_name)s not found."


class VolumeGroupCreationFailed(BrickException):
    message = "Volume group %(vg_name)s not created."


class CommandExecutionFailed(BrickException):
    message = "Command %(cmd)s failed."


class VolumeDriverException(BrickException):
    message = "I/O error on volume %(name)s."


class InvalidIOHandleObject(BrickException):
    message = "The I/O handle of %(protocol)s is of the wrong type: %(actual_type)s."


class VolumeEncryptionNotSupported(Invalid):
    message = "Encryption is not supported for %(volume_type)s volume %(volume_id)s."


class VolumeLocalCacheNotSupported(Invalid):
    message = "Local cache is not supported for %(volume_type)s volume %(volume_id)s."


class InvalidConnectorProtocol(ValueError):
    """The factory was given a protocol it has no connector for (a ValueError, as in
    os-brick)."""


class MultipathdPathsNotRemoved(BrickException):
    message = "multipathd still monitors %(devices)s."


class ExceptionChainer(BrickException):
    """Several exceptions raised as one: a forced disconnect goes on past each failure and
    raises them together at the end (unless ignore_errors). It is true when it holds at least
    one exception; ``add_exception`` and ``context()`` collect them as os-brick's does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._exceptions: List[Tuple[Any, Any, Any]] = []
        self._catch_exception = False
        self._exc_msg = ""
        self._exc_msg_args: List[Any] = []
        super().__init__(*args, **kwargs)

    def add_exception(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self._exceptions.append((exc_type, exc_val, exc_tb))

    @property
    def exceptions(self) -> List[BaseException]:
        """The exceptions collected, in order."""
        return [e[1] for e in self._exceptions]

    def __bool__(self) -> bool:
        return bool(self._exceptions)

    def __str__(self) -> str:
        parts = []
        for i, (t, v, tb) in enumerate(self._exceptions, 1):
            text = "".join(traceback.format_exception(t, v, tb)).rstrip()
            parts.append("Chained exception #%d: %s" % (i, text))
        return "\n".join(parts) or self.msg

    __repr__ = __str__

    def context(self, catch_exception: bool, msg: str = "", *msg_args: Any) -> "ExceptionChainer":
        self._catch_exception = catch_exception
        self._exc_msg = msg
        self._exc_msg_args = list(msg_args)
        return self

    def __enter__(self) -> "ExceptionChainer":
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> bool:
        if exc_type:
            self.add_exception(exc_type, exc_val, exc_tb)
            return self._catch_exception
        return False


class DisconnectFailed(BrickException):
    """brick only (os-brick lets its command's ProcessExecutionError through): a plain
    disconnect refused or stopped to keep the volume's data (a flush failed, the LUN shows
    another volume), or finished with something left on the host. ``report`` says what was done
    and what is left; the volume's data is still in the kernel when ``kind`` is ``refused``."""

    message = "The volume was not disconnected."
