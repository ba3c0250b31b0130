#!/bin/bash
# A Cinder driver that returns target_portal only, asked for multipath: brick finds the target's
# other portal by a sendtargets discovery on the one given (as os-brick does), logs in on both and
# returns the map with both paths; the other target the portals offer gets no session and no node
# record. The disconnect, with the same one-portal properties, leaves a clean host and the data.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 1
target_create other --portals 2 --luns 1
props_json v1 1 1 >props.json
grep -q target_portals props.json && fail "props.json lists target_portals"
read -r brick_rc _ <<<"$(run_brick connect --multipath props.json)"
[ "$brick_rc" = 0 ] || fail "brick connect --multipath exited $brick_rc"
"$BRICK" connect --multipath props.json >device_info.json 2>/dev/null || fail "second connect failed"
dm=$(wait_lun_map v1 1 2 10)
grep -q "\"path\": *\"/dev/$dm\"" device_info.json || fail "device_info path is not /dev/$dm: $(cat device_info.json)"
[ "$(target_sids v1 | count_lines)" = 2 ] || fail "not one session per portal of v1: $(target_sids v1 | tr '\n' ' ')"
[ -z "$(target_sids other)" ] || fail "a session to the target we did not ask for"
iscsiadm -m node 2>/dev/null | grep -q ":other" && fail "discovery left node records of target 'other'"
log "ok: map $dm with the paths of both portals, found from one; nothing of 'other'"

write_disconnect_keeps v1 1 "$dm"
