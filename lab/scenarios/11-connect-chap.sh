#!/bin/bash
# CHAP: the right secret connects (and never shows in brick's logs); the wrong one fails cleanly and
# leaves no session, no node record, no device.
set -euo pipefail
. "$LAB_DIR/lib.sh"

secret=Lab-Chap-S3cret
target_create v1 --portals 2 --luns 1 --chap "labuser:$secret"
props_json v1 1 >props.json
grep -q "$secret" props.json || fail "props carry no CHAP secret"
NO_COLOR=1 "$BRICK" -v connect props.json >device_info.json 2>connect.log || { cat connect.log >&2; fail "connect with the right secret failed"; }
grep -q "$secret" connect.log && fail "the CHAP secret is in brick's debug log"
log "ok: connected with CHAP; the secret is not in the log ($(wc -l <connect.log) lines)"
assert_lun_present v1 1 2
run_brick disconnect props.json --device-info device_info.json
[ "$BRICK_RC" = 0 ] || fail "brick disconnect exited $BRICK_RC"
assert_host_clean

sed "s/$secret/Wrong-Secret-9/" props.json >wrong.json
t0=$(date +%s)
set +e
NO_COLOR=1 "$BRICK" -v connect wrong.json >/dev/null 2>wrong.log
rc=$?
set -e
sed 's/^/    brick| /' wrong.log >&2
[ "$rc" != 0 ] || fail "connect with a wrong secret succeeded"
grep -q "Wrong-Secret-9" wrong.log && fail "the wrong secret is in brick's output"
log "ok: wrong secret refused (exit $rc) after $(($(date +%s) - t0)) s"
assert_host_clean
