"""The connector every protocol shares: os-brick's connector methods, each one brick request
for that protocol (the protocol names the Rust entry points, see ``brick::request``)."""

from __future__ import annotations

import glob
import logging
import os
from typing import Any, List, Optional, Sequence, Union

from brick import _errors, exception
from brick._lock import osbrick_lock
from brick._transport import Transport

LOG = logging.getLogger(__name__)

#: The environment variable that gives os-brick's lock_path when the factory is given none.
LOCK_PATH_ENV = "BRICK_OSBRICK_LOCK_PATH"


class BrickConnector:
    """os-brick's connector API for one protocol, over brick.

    ``root_helper``: os-brick's command prefix for running as root; used only when this process
    is not root, to run ``brick request``. ``lock_path`` (or ``BRICK_OSBRICK_LOCK_PATH``):
    os-brick's lock_path, to take os-brick's external lock as os-brick does. ``brick_binary``:
    the brick the root helper runs (default: ``BRICK_BINARY``, else ``brick`` on PATH).
    ``device_scan_attempts`` is accepted and unused: brick waits for devices until its own
    deadlines."""

    protocol = ""

    def __init__(self, root_helper: Union[str, Sequence[str], None], driver: Any = None,
                 execute: Any = None, use_multipath: bool = False,
                 device_scan_attempts: int = 3, *args: Any, lock_path: Optional[str] = None,
                 brick_binary: Optional[str] = None, in_process: Optional[bool] = None,
                 **kwargs: Any) -> None:
        self._root_helper = root_helper
        self.driver = driver
        self.use_multipath = bool(use_multipath)
        self.device_scan_attempts = device_scan_attempts
        self.lock_path = lock_path or os.environ.get(LOCK_PATH_ENV) or None
        self._transport = Transport(root_helper, brick_binary=brick_binary,
                                    in_process=in_process)

    # -- plumbing

    def _call(self, op: str, privileged: bool = True, force: bool = False,
              **fields: Any) -> Any:
        request = dict(fields, op=op, protocol=self.protocol)
        if op == "disconnect":
            request["force"] = force
        answer = self._transport.call(request, privileged=privileged)
        if answer.get("ok"):
            return answer.get("result")
        raise _errors.to_exception(op, answer.get("error") or {}, fields.get("props"),
                                   force=force)

    def _multipathd_running(self) -> bool:
        return bool(self._call("multipathd_running", privileged=False))

    def _check_multipath(self, connection_properties: dict) -> bool:
        """Whether to connect with multipath: ``use_multipath``, unless multipathd does not
        run. Then, as os-brick: refused when the properties carry ``enforce_multipath``
        (before anything on the host changes), else a warning and a single-path connect."""
        if not self.use_multipath or self._multipathd_running():
            return self.use_multipath
        if connection_properties.get("enforce_multipath", False):
            raise exception.BrickException(
                "multipath is enforced (enforce_multipath) but multipathd is not running on "
                "this host: start multipathd, or connect without enforce_multipath")
        LOG.warning("multipath requested but multipathd is not running: connecting one path")
        return False

    # -- os-brick's API

    @staticmethod
    def get_connector_properties(root_helper: Any, *args: Any, **kwargs: Any) -> dict:
        """What this protocol adds to ``get_connector_properties``."""
        return {}

    def get_search_path(self) -> Optional[str]:
        return None

    def get_all_available_volumes(self, connection_properties: Optional[dict] = None) -> list:
        """Every entry of the search path, as os-brick lists them."""
        path = self.get_search_path()
        if path and os.path.isdir(path):
            return glob.glob(os.path.join(path, "*"))
        return []

    def connect_volume(self, connection_properties: dict) -> dict:
        """Attaches the volume; returns os-brick's device_info (``type``, ``path``,
        ``scsi_wwn``, ``multipath_id`` for a map). A failed connect leaves the host as it
        was."""
        multipath = self._check_multipath(connection_properties)
        with osbrick_lock(self.lock_path, "connect_volume"):
            info = self._call("connect", props=connection_properties, multipath=multipath)
        for f in info.pop("failed_paths", None) or []:
            LOG.warning("path not attached: %s (%s): %s", f.get("portal"), f.get("iqn"),
                        f.get("message"))
        return info

    def disconnect_volume(self, connection_properties: dict, device_info: Optional[dict],
                          force: bool = False, ignore_errors: bool = False) -> None:
        """Detaches the volume. ``device_info=None`` (Nova's disconnect) takes
        ``connection_properties['device_path']`` as device_info's path. A plain disconnect
        that cannot keep the data safe removes nothing and raises; ``force`` goes on and raises
        an ExceptionChainer of what failed, unless ``ignore_errors``."""
        with osbrick_lock(self.lock_path, "connect_volume"):
            report = self._call("disconnect", force=force, props=connection_properties,
                                device_info=device_info, ignore_errors=ignore_errors)
        for f in (report or {}).get("failures") or []:
            LOG.warning("disconnect: %s", f.get("message"))

    def extend_volume(self, connection_properties: dict) -> int:
        """Makes the host see the volume's new size; returns it, in bytes."""
        with osbrick_lock(self.lock_path, "extend_volume"):
            return int(self._call("extend", props=connection_properties))

    def get_volume_paths(self, connection_properties: dict) -> List[str]:
        """The volume's block devices on this host (its map first), from sysfs."""
        return list(self._call("paths", props=connection_properties,
                               device_info=connection_properties.get("device_info")))

    def check_valid_device(self, path: str, run_as_root: bool = True) -> bool:
        """Whether one block of ``path`` can be read, within 10 s (os-brick runs ``dd
        count=1``; brick reads in a thread, no process)."""
        return bool(self._call("check_valid_device", privileged=run_as_root, path=path))

