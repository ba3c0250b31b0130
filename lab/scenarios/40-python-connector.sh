#!/bin/bash
# The Python package (brick.initiator.connector) on the real kernel, by pytest
# (python/labtests/test_connector.py): connector properties, the exceptions for a bad property, a
# dead portal and a missing LUN, connect (single path, multipath), paths, check_valid_device,
# disconnect (Nova's, plain, force, force + ignore_errors on a map held open) with the data kept,
# extend. Each test asserts on sysfs, the sessions, the node records and the backing files.
set -euo pipefail
. "$LAB_DIR/lib.sh"

py_venv >/dev/null
GROW_LOOP=""
trap '[ -z "$GROW_LOOP" ] || losetup -d "$GROW_LOOP" 2>/dev/null || true' EXIT
py_lab_setup --grow
py_lab_pytest test_connector.py
assert_host_clean
