"""os-brick 7.1.1's ISCSIConnector in the lab VM, as Nova runs it (privileged calls in-process, as
root), to be killed in the middle of a disconnect: ``osbrick.py LOCK_DIR NAME...`` in the
scenario's folder, with the venv of ``make python`` (lab/lib/python.sh, osbrick_start).

1. connect_volume of each volume NAME (properties in osb-NAME.json; multipath when they list
   several portals), one after the other; what it returned goes to osb-NAME-di.json, then
   "connected NAME" on standard output.
2. For each NAME in turn: waits for the file osb-NAME.go, which holds WORDS, then forks a worker
   (an os-brick process like this one, imports done) that runs disconnect_volume and stops right
   before the first command whose arguments include every word of WORDS: that command is not
   run, the worker prints "stopped NAME PID: COMMAND" and waits there for ever, in the middle of
   the disconnect, for the caller to kill it (SIGKILL). The process prints "ended NAME PID HOW"
   (HOW: "signal N", or "exit N" for a worker whose disconnect ended without such a command, or
   failed) once the worker is gone, and goes on with the next NAME.

Every command os-brick runs is logged on standard error ("os-brick runs: ..."). A worker dies
with this process.
"""

import ctypes
import json
import logging
import os
import sys
import threading
import time
import traceback
import warnings

PR_SET_PDEATHSIG = 1


def out(line):
    print(line, flush=True)


def err(line):
    print(line, file=sys.stderr, flush=True)


def main():
    lock_dir, names = sys.argv[1], sys.argv[2:]
    # oslo.privsep imports eventlet, which warns that it is deprecated on every import
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(relativeCreated)8.0f %(name)s %(levelname)s %(message)s")
    from oslo_concurrency import lockutils
    from oslo_config import cfg

    import os_brick
    import os_brick.privileged
    from os_brick.privileged import rootwrap

    lockutils.set_defaults(lock_path=lock_dir)
    os_brick.setup(cfg.CONF)
    os_brick.privileged.default.set_client_mode(False)

    # Every program os-brick runs goes through rootwrap.execute, looked up when a connector is
    # made (Executor) or at the call (LinuxSCSI.is_multipath_running): replaced before either.
    real_execute = rootwrap.execute
    stop = {}  # in a worker: "name" and "words"

    def execute(*cmd, **kwargs):
        argv = [str(c) for c in cmd]
        if stop and all(w in argv for w in stop["words"]):
            out("stopped %s %d: %s" % (stop["name"], os.getpid(), " ".join(argv)))
            err("os-brick stopped before: %s" % " ".join(argv))
            threading.Event().wait()
        err("os-brick runs: %s" % " ".join(argv))
        return real_execute(*cmd, **kwargs)

    rootwrap.execute = execute
    from os_brick.initiator import connector

    def conn(props):
        mp = len(props.get("target_portals") or []) > 1
        return connector.InitiatorConnector.factory("ISCSI", None, use_multipath=mp)

    for n in names:
        props = json.load(open("osb-%s.json" % n))
        info = conn(props).connect_volume(dict(props))
        with open("osb-%s-di.json" % n, "w") as f:
            json.dump(info, f)
        out("connected " + n)

    for n in names:
        go = "osb-%s.go" % n
        while not os.path.exists(go):
            time.sleep(0.05)
        words = open(go).read().split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, 9)
                stop.update(name=n, words=words)
                props = json.load(open("osb-%s.json" % n))
                info = json.load(open("osb-%s-di.json" % n))
                conn(props).disconnect_volume(dict(props), info, force=False,
                                              ignore_errors=False)
                err("os-brick's disconnect of %s ended without running a command with: %s"
                    % (n, " ".join(words)))
                code = 3
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        how = ("signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status)
               else "exit %d" % os.WEXITSTATUS(status))
        out("ended %s %d %s" % (n, pid, how))
    return 0


if __name__ == "__main__":
    sys.exit(main())
