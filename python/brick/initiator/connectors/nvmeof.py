"""os-brick's NVMeOFConnector, over brick's NVMe-oF (TCP) connect and disconnect: controllers
made by writing to /dev/nvme-fabrics, native NVMe multipath, md RAID1 for replicated volumes."""

from __future__ import annotations

import logging
from typing import Any, Optional

from brick._lock import osbrick_lock
from brick._host import _host_properties
from brick.initiator.connectors.base import BrickConnector

LOG = logging.getLogger(__name__)

#: What os-brick's NVMeOFConnector adds to the connector properties.
_NVME_KEYS = ("nqn", "uuid", "nvme_hostid", "system uuid", "nvme_native_multipath")


class NVMeOFConnector(BrickConnector):
    """NVMe over Fabrics volumes (os-brick's four property formats). The kernel's native NVMe
    multipath is used whenever it is on, as os-brick does; multipathd plays no part."""

    protocol = "nvmeof"

    @staticmethod
    def get_connector_properties(root_helper: Any, *args: Any, **kwargs: Any) -> dict:
        """``nqn``, ``uuid``, ``nvme_hostid``, ``system uuid`` and ``nvme_native_multipath``,
        as os-brick reports them (the host NQN and ID files are made when missing)."""
        facts = _host_properties(None, root_helper)
        return {k: facts[k] for k in _NVME_KEYS if facts.get(k) is not None}

    def connect_volume(self, connection_properties: dict) -> dict:
        """Attaches the volume; returns os-brick's device_info (``type``, ``path``). A failed
        connect deletes every controller it made."""
        with osbrick_lock(self.lock_path, "connect_volume"):
            info = self._call("connect", props=connection_properties)
        for f in info.pop("failed_paths", None) or []:
            LOG.warning("path not attached: %s: %s", f.get("portal"), f.get("message"))
        return info

    def get_search_path(self) -> Optional[str]:
        return "/dev"
