"""os-brick's ``os_brick.initiator.connector`` over brick: ``InitiatorConnector.factory`` and
``get_connector_properties``, same signatures, same return shapes."""

from __future__ import annotations

import platform
import socket
import sys
from typing import Any, Dict, Optional

from brick import exception, initiator
from brick._host import _host_properties
from brick.initiator.connectors.iscsi import ISCSIConnector
from brick.initiator.connectors.nvmeof import NVMeOFConnector

# Protocol (as os-brick spells it, upper case) to connector class; each class names its protocol
# for brick::request. ISER is iSCSI on the iser interface, as in os-brick.
_CONNECTORS: Dict[str, type] = {
    initiator.ISCSI: ISCSIConnector,
    initiator.ISER: ISCSIConnector,
    initiator.NVMEOF: NVMeOFConnector,
}


def get_connector_properties(root_helper: Any, my_ip: Optional[str], multipath: bool,
                             enforce_multipath: bool, host: Optional[str] = None,
                             execute: Any = None) -> Dict[str, Any]:
    """The connector properties of this host, as os-brick returns them: ``platform``,
    ``os_type``, ``ip``, ``host``, ``multipath`` and ``enforce_multipath`` (as given: the volume
    service and connect_volume use them), and each protocol's own (``initiator``)."""
    props: Dict[str, Any] = {
        "platform": platform.machine(),
        "os_type": sys.platform,
        "ip": my_ip,
        "host": host if host else socket.gethostname(),
        "multipath": multipath,
        "enforce_multipath": enforce_multipath,
    }
    facts = _host_properties(my_ip, root_helper)
    if facts.get("initiator"):
        props["initiator"] = facts["initiator"]
    # NVMe-oF's, as os-brick's NVMeOFConnector adds them.
    for k in ("nqn", "uuid", "nvme_hostid", "system uuid", "nvme_native_multipath"):
        if facts.get(k) is not None:
            props[k] = facts[k]
    return props


class InitiatorConnector:
    """Builds connectors, as os-brick's."""

    @staticmethod
    def factory(protocol: str, root_helper: Any, driver: Any = None,
                use_multipath: bool = False,
                device_scan_attempts: int = initiator.DEVICE_SCAN_ATTEMPTS_DEFAULT,
                arch: Optional[str] = None, *args: Any, **kwargs: Any) -> Any:
        """The connector of ``protocol`` (``ISCSI``). Besides os-brick's arguments:
        ``lock_path`` (os-brick's lock_path: take its external lock too; default
        ``BRICK_OSBRICK_LOCK_PATH``) and ``brick_binary`` (what the root helper runs)."""
        cls = _CONNECTORS.get(str(protocol).upper())
        if cls is None:
            raise exception.InvalidConnectorProtocol(
                "no brick connector for protocol %s (brick has %s)"
                % (protocol, ", ".join(sorted(_CONNECTORS))))
        kwargs.update(root_helper=root_helper, driver=driver, use_multipath=use_multipath,
                      device_scan_attempts=device_scan_attempts)
        if str(protocol).upper() == initiator.ISER:
            kwargs["transport"] = "iser"
        return cls(*args, **kwargs)
