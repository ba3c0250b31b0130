#!/bin/bash
# A portal given by host name (localhost:3260, as some Cinder drivers send names): brick resolves
# it once, logs in to the address (the session and the node record show 127.0.0.1:3260, as
# open-iscsi records them), and the disconnect with the same properties leaves a clean host and
# the data. A name that does not resolve is refused before anything changes.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create hn --luns 1 --no-multipath
printf '{"target_portal":"localhost:3260","target_iqn":"%s","target_lun":1,"volume_id":"hn"}\n' \
    "$(tiqn hn)" >props.json
read -r brick_rc _ <<<"$(run_brick connect --single-path props.json)"
[ "$brick_rc" = 0 ] || fail "brick connect to localhost:3260 exited $brick_rc"
"$BRICK" connect --single-path props.json >device_info.json 2>/dev/null || fail "second connect failed"
iscsiadm -m session 2>/dev/null | grep -q "127.0.0.1:3260,1 $(tiqn hn)" ||
    fail "no session to 127.0.0.1:3260: $(iscsiadm -m session 2>&1)"
iscsiadm -m node 2>/dev/null | grep -q "^127.0.0.1:3260,[0-9]* $(tiqn hn)" ||
    fail "no node record at 127.0.0.1:3260: $(iscsiadm -m node 2>&1)"
sd=$(lun_sds hn 1)
[ -n "$sd" ] || fail "no disk of hn LUN 1"
log "ok: localhost:3260 resolved; session and node record at 127.0.0.1:3260; /dev/$sd"
write_disconnect_keeps hn 1 "$sd"

sed 's/localhost:3260/array.invalid:3260/' props.json >bad.json
read -r brick_rc _ <<<"$(run_brick connect --single-path bad.json)"
[ "$brick_rc" = 2 ] || fail "a portal name that does not resolve: exit $brick_rc, not 2 (bad input)"
assert_host_clean
