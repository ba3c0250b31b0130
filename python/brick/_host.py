"""brick's reading of this host, shared by the connector module and the connectors."""

from __future__ import annotations

from typing import Any, Dict, Optional

from brick._transport import Transport


def _host_properties(my_ip: Optional[str], root_helper: Any = None) -> Dict[str, Any]:
    """brick's reading of this host (initiator IQN, whether multipathd runs): in-process as
    root, else through the root helper when there is one (initiatorname.iscsi is root's alone
    on Debian), else in-process (and an error naming the file if it cannot be read)."""
    transport = Transport(root_helper)
    answer = transport.call({"op": "properties", "ip": my_ip},
                            privileged=bool(root_helper))
    if not answer.get("ok"):
        from brick import _errors

        raise _errors.to_exception("properties", answer.get("error") or {})
    return answer["result"]
