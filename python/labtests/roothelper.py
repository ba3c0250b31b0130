"""A root helper for the lab's unprivileged test, as sudo or privsep would be: run as the
unprivileged user with the command after it (``roothelper.py SOCKET BRICK request``), it hands
the command and its standard input to a broker that runs as root (the test), and gives back the
broker's answer. No shell, and nothing but what it was given."""

import json
import socket
import sys


def main():
    sock_path, argv = sys.argv[1], sys.argv[2:]
    data = sys.stdin.buffer.read()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(json.dumps({"argv": argv, "stdin": data.decode()}).encode() + b"\n")
    s.shutdown(socket.SHUT_WR)
    answer = json.loads(s.makefile("rb").read())
    sys.stdout.write(answer["stdout"])
    sys.stderr.write(answer["stderr"])
    sys.exit(answer["rc"])


if __name__ == "__main__":
    main()
