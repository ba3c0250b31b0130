"""How a request reaches brick: in this process (``brick._native.call``, the GIL released) when
it runs as root, or through the caller's root helper (os-brick's convention: a command prefix
such as ``sudo`` or ``sudo nova-rootwrap /etc/nova/rootwrap.conf``) running
``brick request``, with the request as JSON on its standard input and the answer as JSON on its
standard output. The request (CHAP secrets included) never goes on a command line or in the
environment."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence, Union

from brick import exception

_logging_ready = False


def _native_call(request: str) -> str:
    global _logging_ready
    from brick import _native

    if not _logging_ready:
        _logging_ready = True
        level = os.environ.get("BRICK_LOG")
        if level:
            _native.init_logging(level)
    return _native.call(request)


def helper_argv(root_helper: Union[str, Sequence[str]], brick_binary: str) -> List[str]:
    """The command that runs brick through the root helper: the helper's words, then
    ``BRICK request``."""
    prefix = shlex.split(root_helper) if isinstance(root_helper, str) else list(root_helper)
    return prefix + [brick_binary, "request"]


#: Where the Debian package installs brick, and the one path its rootwrap filter and sudoers
#: example let a service run as root (``pkg/deb/brick.filters``, ``pkg/deb/brick.sudoers``).
INSTALLED_BINARY = "/usr/sbin/brick"


def find_brick_binary(given: Optional[str]) -> str:
    """The brick binary the root helper runs: ``brick_binary`` given to the factory, else
    ``BRICK_BINARY``, else ``brick`` on PATH, else the package's ``/usr/sbin/brick`` (a
    service user's PATH has no /usr/sbin on Debian)."""
    path = (given or os.environ.get("BRICK_BINARY") or shutil.which("brick")
            or (INSTALLED_BINARY if os.access(INSTALLED_BINARY, os.X_OK) else None))
    if not path:
        raise exception.BrickException(
            "no brick binary for the root helper: install brick on PATH, or give "
            "brick_binary= to the factory or BRICK_BINARY")
    return path


class Transport:
    """Runs requests in-process (root) or through ``root_helper`` (anyone else)."""

    def __init__(self, root_helper: Union[str, Sequence[str], None],
                 brick_binary: Optional[str] = None, in_process: Optional[bool] = None) -> None:
        self.root_helper = root_helper
        self._brick_binary = brick_binary
        self.in_process = (os.geteuid() == 0) if in_process is None else in_process

    def call(self, request: Dict[str, Any], privileged: bool = True) -> Dict[str, Any]:
        """The answer to ``request``: ``{"ok": true, "result": ...}`` or
        ``{"ok": false, "error": {...}}``. ``privileged=False`` runs it in this process
        whoever runs it (reads that need no root)."""
        text = json.dumps(request)
        if self.in_process or not privileged:
            return json.loads(_native_call(text))
        if not self.root_helper:
            raise exception.BrickException(
                "%s needs root: this process is not root (uid %d) and has no root_helper; "
                "give the factory root_helper= (e.g. 'sudo') or run as root"
                % (request.get("op"), os.geteuid()))
        argv = helper_argv(self.root_helper, find_brick_binary(self._brick_binary))
        try:
            p = subprocess.run(argv, input=text.encode(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, check=False)
        except OSError as e:
            raise exception.BrickException(
                "cannot run the root helper %s: %s" % (argv[0], e.strerror or e)) from e
        try:
            answer = json.loads(p.stdout.decode())
            if not isinstance(answer, dict) or "ok" not in answer:
                raise ValueError("not an answer")
            return answer
        except ValueError:
            tail = p.stderr.decode(errors="replace").strip()[-500:]
            raise exception.BrickException(
                "the root helper `%s` gave no answer (exit %d): %s"
                % (" ".join(shlex.quote(a) for a in argv), p.returncode, tail or "no output"))
