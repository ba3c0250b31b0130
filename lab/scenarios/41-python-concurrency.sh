#!/bin/bash
# lab: timeout=420
# The Python package with other callers around, by pytest (python/labtests/test_concurrency.py):
# two threads attaching two volumes at once (their calls overlap), an unprivileged caller
# (nobody) through a root helper (no CHAP secret on any command line or in any environment), and
# os-brick's lock held against a real os-brick 7.1.1 process connecting and disconnecting at the
# same time (neither starts its work while the other holds the lock).
set -euo pipefail
. "$LAB_DIR/lib.sh"

py_venv >/dev/null
py_lab_setup
py_lab_pytest test_concurrency.py
assert_host_clean
