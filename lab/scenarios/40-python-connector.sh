#!/bin/bash
# The Python package (brick.initiator.connector) on the real kernel, by pytest (python/labtests):
# connect, paths, check_valid_device, disconnect (plain, force, force + ignore_errors), extend,
# connector properties, the exceptions for a bad property, a dead portal and a missing LUN, two
# threads attaching at once, an unprivileged caller through a root helper, and os-brick's lock
# held against a real os-brick process connecting at the same time. Each test asserts on sysfs,
# the sessions, the node records and the targets' backing files.
set -euo pipefail
. "$LAB_DIR/lib.sh"

venv=$(py_venv)
target_create mp --portals 2 --luns 2                 # multipath volumes
target_create mp2 --portals 2 --luns 1                # a second one, for two threads at once
target_create sp --portals 1 --luns 2 --no-multipath  # single path (multipathd leaves it alone)
target_create ob --portals 1 --luns 1 --no-multipath  # os-brick's volume in the lock test
target_create chap --portals 1 --luns 1 --no-multipath --chap labuser:Py-secret-4711
serial=b51cee400001
read -r grow_img grow_loop < <(growable_lun grow "$serial")
trap 'losetup -d "$grow_loop" 2>/dev/null || true' EXIT

cat >lab.json <<JSON
{"brick": "$BRICK", "initiatorname": "/etc/iscsi/initiatorname.iscsi",
 "mp1": $(lab_json mp 1), "mp2": $(lab_json mp 2), "other": $(lab_json mp2 1),
 "sp1": $(lab_json sp 1), "sp7": {"props": $(props_json sp 7)}, "ob": $(lab_json ob 1),
 "chap": $(lab_json chap 1), "chap_secret": "Py-secret-4711",
 "grow": {"props": $(props_json grow 1), "wwn": "36001405${serial}0000000000000",
          "image": "$grow_img", "loop": "$grow_loop"}}
JSON
log "running pytest on $LAB_DIR/../python/labtests with $venv"
BRICK_LAB_CONFIG=$PWD/lab.json PYTHONDONTWRITEBYTECODE=1 BRICK_LOG=${BRICK_LOG:-brick=info} \
    "$venv/bin/python" -m pytest -v -p no:cacheprovider --tb=short \
    "$LAB_DIR/../python/labtests" || fail "pytest failed"
assert_host_clean
