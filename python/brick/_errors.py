"""brick's error answers (``{"kind", "field", "message", "paths", "report"}``) as os-brick's
exceptions, raised where os-brick raises them. Pure Python: the same for the in-process path and
the root helper's."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from brick import exception

# Path failures that mean the portal did not answer or did not let us in: os-brick raises
# TargetPortal(s)NotFound when no portal can be logged in to. iSCSI: a login, a discovery, a
# session in recovery; NVMe-oF: the connect to the portal, a controller that stays not live.
_PORTAL_KINDS = {"login", "discovery", "session_in_recovery", "connect", "controller_not_live"}


def _portals(props: Optional[dict]) -> List[str]:
    """The volume's portals (iSCSI's target_portal(s), NVMe-oF's portals), to count them."""
    p = (props or {}).get("data", props) or {}
    if p.get("target_portals"):
        return list(p["target_portals"])
    if p.get("portals"):
        return ["%s:%s" % (a[0], a[1]) for a in p["portals"] if len(a) >= 2]
    return [p["target_portal"]] if p.get("target_portal") else []


def to_exception(op: str, error: Dict[str, Any], props: Optional[dict] = None,
                 force: bool = False) -> Exception:
    """The exception os-brick raises for brick's ``error`` answer to operation ``op``."""
    kind = error.get("kind") or "failed"
    message = error.get("message") or "brick failed (%s)" % kind
    paths = error.get("paths") or []
    exc: exception.BrickException
    if kind == "invalid_input":
        exc = exception.InvalidParameterValue(message, err=message)
    elif kind == "protocol_not_supported":
        exc = exception.ProtocolNotSupported(message)
    elif kind == "volume_paths_not_found":
        exc = exception.VolumePathsNotFound(message)
    elif op == "connect" and paths:
        if all(p.get("kind") in _PORTAL_KINDS for p in paths):
            portals = [p.get("portal") for p in paths]
            if len(portals) > 1 or len(_portals(props)) > 1:
                exc = exception.TargetPortalsNotFound(message, target_portals=portals)
            else:
                exc = exception.TargetPortalNotFound(message, target_portal=portals[0])
        else:
            exc = exception.VolumeDeviceNotFound(message, device=message)
    elif op == "disconnect" and force:
        exc = _chain(message, error.get("report"))
    elif op == "disconnect":
        exc = exception.DisconnectFailed(message)
    elif op == "connect":
        exc = exception.VolumeDeviceNotFound(message, device=message)
    else:
        exc = exception.BrickException(message)
    exc.kind = kind
    exc.field = error.get("field")
    exc.paths = paths
    exc.report = error.get("report")
    return exc


def _chain(message: str, report: Optional[dict]) -> exception.ExceptionChainer:
    """A forced disconnect's failures, one exception each, in an ExceptionChainer (os-brick's
    shape for force), each naming the device or session it is about."""
    chain = exception.ExceptionChainer(message)
    failures = (report or {}).get("failures") or []
    for f in failures or [{"message": message}]:
        e = exception.BrickException(f.get("message") or message)
        e.kind = "failure"
        e.report = {"thing": f.get("thing")}
        chain.add_exception(type(e), e, None)
    return chain
