"""The unprivileged caller of the lab's root-helper test (run as nobody): builds a connector
whose root helper is roothelper.py, does one step, prints what it saw as JSON."""

import json
import os
import shlex
import sys

from brick import exception
from brick.initiator import connector


def main():
    step, config, sock = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
    helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "roothelper.py")
    root_helper = " ".join(shlex.quote(a) for a in (sys.executable, helper, sock))
    c = connector.InitiatorConnector.factory("ISCSI", root_helper, use_multipath=False,
                                             brick_binary=config["brick"])
    vol = config["chap"]
    out = {"euid": os.geteuid()}
    if step == "connect":
        info = c.connect_volume(dict(vol["props"]))
        out["info"] = info
        try:
            os.close(os.open(info["path"], os.O_RDONLY))
            out["own_open"] = "opened"
        except OSError as e:
            out["own_open"] = e.__class__.__name__
        out["valid"] = c.check_valid_device(info["path"])
        out["paths"] = c.get_volume_paths(dict(vol["props"]))
    elif step == "bad":
        try:
            c.connect_volume(dict(vol["props"], target_lun="seven"))
            out["raised"] = None
        except exception.InvalidParameterValue as e:
            out["raised"] = type(e).__name__
            out["field"] = e.field
    elif step == "disconnect":
        c.disconnect_volume(dict(vol["props"]), json.loads(sys.argv[4]))
        out["done"] = True
    print(json.dumps(out))


if __name__ == "__main__":
    main()
