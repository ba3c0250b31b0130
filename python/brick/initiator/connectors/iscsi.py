"""os-brick's ISCSIConnector, over brick's iSCSI connect and disconnect."""

from __future__ import annotations

from typing import Any, Optional

from brick._host import _host_properties
from brick.initiator.connectors.base import BrickConnector


class ISCSIConnector(BrickConnector):
    """iSCSI volumes, single path or dm-multipath (``use_multipath``)."""

    protocol = "iscsi"

    def __init__(self, *args: Any, transport: str = "default", **kwargs: Any) -> None:
        """``transport``: os-brick's, the open-iscsi interface for the sessions (``default``,
        ``iser``, or an iface record's name)."""
        super().__init__(*args, **kwargs)
        self.transport = transport or "default"

    def _call(self, op: str, privileged: bool = True, force: bool = False,
              **fields: Any) -> Any:
        if op == "connect" and self.transport != "default":
            fields["transport"] = self.transport
        return super()._call(op, privileged=privileged, force=force, **fields)

    @staticmethod
    def get_connector_properties(root_helper: Any, *args: Any, **kwargs: Any) -> dict:
        """``initiator``: this host's initiator IQN, when it has one."""
        initiator = _host_properties(None, root_helper).get("initiator")
        return {"initiator": initiator} if initiator else {}

    def get_search_path(self) -> Optional[str]:
        return "/dev/disk/by-path"
