#!/bin/bash
# brick connect on two portals: one session per portal, the map with both paths, discovery that
# leaves no node record of the other target the portals offer; then disconnect: host as before.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 2
target_create other --portals 2 --luns 1
props_json v1 1 >props.json
run_brick connect props.json
[ "$BRICK_RC" = 0 ] || fail "brick connect exited $BRICK_RC"
"$BRICK" connect props.json >device_info.json 2>/dev/null || fail "second connect failed"
dm=$(lun_dm v1 1)
[ -n "$dm" ] || fail "no multipath map for LUN 1"
grep -q "\"path\": *\"/dev/$dm\"" device_info.json || fail "device_info path is not /dev/$dm: $(cat device_info.json)"
grep -q "\"multipath_id\": *\"$(lun_wwn v1 1)\"" device_info.json || fail "device_info has no multipath_id"
assert_lun_present v1 1 2
[ -z "$(lun_sds v1 2)" ] || fail "LUN 2 was scanned too"
iscsiadm -m node 2>/dev/null | grep -q ":other" && fail "discovery left node records of target 'other'"
log "ok: no node record of the target we did not ask for"

make_pattern "$LAB_STATE/pat" 2
write_pattern "$dm" "$LAB_STATE/pat" 5 buffered

run_brick disconnect props.json --device-info device_info.json
[ "$BRICK_RC" = 0 ] || fail "brick disconnect exited $BRICK_RC"
assert_host_clean
assert_backing_has v1 1 "$LAB_STATE/pat" 5
