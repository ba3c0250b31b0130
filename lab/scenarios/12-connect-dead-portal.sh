#!/bin/bash
# One of two portals is dead: connect still succeeds in bounded time on the other, reports the dead
# one, leaves no node record for it, and no session appears by itself when it comes back.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 1 --tpg-per-portal
portal_down v1 2
props_json v1 1 >props.json
run_brick --timeout 90 connect props.json
[ "$BRICK_RC" = 0 ] || fail "brick connect exited $BRICK_RC with one portal alive"
awk -v s="$BRICK_SECS" 'BEGIN{exit !(s < 45)}' || fail "connect took ${BRICK_SECS}s with a dead portal"
assert_lun_present v1 1 1
iscsiadm -m node 2>/dev/null | grep -q "^$(portal 2)" && fail "a node record of the dead portal remains"
log "ok: connected on one path in ${BRICK_SECS}s; no record of the dead portal"

portal_up v1 2
sleep 20
n=$(ls /sys/class/iscsi_session | wc -l)
[ "$n" = 1 ] || fail "$n sessions 20 s after the dead portal came back: something logged in by itself"
log "ok: no session appeared by itself after the portal came back"

run_brick disconnect props.json
[ "$BRICK_RC" = 0 ] || fail "brick disconnect exited $BRICK_RC"
assert_host_clean
