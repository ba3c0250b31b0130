"""A real os-brick process for the lab's lock test: ``osbrick_child.py CONFIG LOCK_DIR STEP``
(STEP connect or disconnect of the config's "ob" volume, single path). Prints "ready" once
os-brick is imported, waits for a line on standard input, does the step with os-brick's
ISCSIConnector (privileged calls in-process, as the bench runs it), and prints JSON: the step's
start and end and when os-brick logged its "connect_volume" lock acquired and released
(time.monotonic, which every process of the VM shares)."""

import json
import logging
import sys
import time

EVENTS = {}


class LockLog(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if 'Lock "connect_volume"' in msg:
            if "acquired by" in msg:
                EVENTS.setdefault("acquired", time.monotonic())
            elif '"released"' in msg:
                EVENTS.setdefault("released", time.monotonic())


def main():
    config, lock_dir, step = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
    from oslo_concurrency import lockutils
    from oslo_config import cfg

    import os_brick
    import os_brick.privileged

    lockutils.set_defaults(lock_path=lock_dir)
    os_brick.setup(cfg.CONF)
    os_brick.privileged.default.set_client_mode(False)
    from os_brick.initiator import connector

    logging.getLogger("os_brick").setLevel(logging.DEBUG)
    logging.getLogger("os_brick").addHandler(LockLog())
    c = connector.InitiatorConnector.factory("ISCSI", None, use_multipath=False)
    vol = config["ob"]
    print("ready", flush=True)
    sys.stdin.readline()
    out = {"start": time.monotonic()}
    if step == "connect":
        out["info"] = c.connect_volume(dict(vol["props"]))
    else:
        c.disconnect_volume(dict(vol["props"]), json.loads(sys.argv[4]))
    out["end"] = time.monotonic()
    out.update(EVENTS)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
