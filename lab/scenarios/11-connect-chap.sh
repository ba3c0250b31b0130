#!/bin/bash
# CHAP: the right secret connects (and never shows in brick's logs); the wrong one fails cleanly and
# leaves no session, no node record, no device.
set -euo pipefail
. "$LAB_DIR/lib.sh"

secret=Lab-Chap-S3cret
target_create v1 --portals 2 --luns 1 --chap "labuser:$secret"
props_json v1 1 >props.json
grep -q "$secret" props.json || fail "props carry no CHAP secret"
connect_keeps_secrets "$secret"
assert_lun_present v1 1 2
disconnect_clean

sed "s/$secret/Wrong-Secret-9/" props.json >wrong.json
connect_refused wrong.json Wrong-Secret-9 "a wrong secret"
grep -q "refused the CHAP credentials" refused.log || fail "the error does not point at the CHAP credentials"
assert_host_clean
