#!/bin/bash
# brick connect on one path: node record with manual startup and manual scan, only the volume's LUN
# scanned, device_info in os-brick's shape; connect then disconnect leaves the host as it was, and
# the data written in between is on the target.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 1 --luns 2 --no-multipath
props_json v1 1 >props.json
read -r brick_rc _ <<<"$(run_brick connect props.json)"
[ "$brick_rc" = 0 ] || fail "brick connect exited $brick_rc"
"$BRICK" connect props.json >device_info.json 2>/dev/null || fail "second connect (reusing everything) failed"
log "device_info: $(tr -d '\n ' <device_info.json)"
dev=$(sed -n 's/.*"path": *"\/dev\/\([^"]*\)".*/\1/p' device_info.json)
grep -q "\"scsi_wwn\": *\"$(lun_wwn v1 1)\"" device_info.json || fail "device_info has not the LUN's WWN"
[ "$(lun_sds v1 1)" = "$dev" ] || fail "device_info path /dev/$dev is not LUN 1's disk ($(lun_sds v1 1))"
[ -z "$(lun_sds v1 2)" ] || fail "LUN 2 was scanned too: $(lun_sds v1 2)"
[ "$(ls /sys/class/iscsi_session | wc -l)" = 1 ] || fail "the second connect logged in again"
rec=$(iscsiadm -m node -T "$(tiqn v1)" -p "$(portal 1)")
echo "$rec" | grep -q "^node.startup = manual" || fail "node.startup is not manual"
echo "$rec" | grep -q "^node.session.scan = manual" || fail "node.session.scan is not manual"
log "ok: node record with manual startup and scan; only LUN 1 scanned"

make_pattern "$LAB_STATE/pat" 2
write_pattern "$dev" "$LAB_STATE/pat" 1 buffered
paths=$("$BRICK" paths props.json) || fail "brick paths failed"
echo "$paths" | grep -q "/dev/$dev" || fail "brick paths does not list /dev/$dev"

disconnect_clean
assert_backing_has v1 1 "$LAB_STATE/pat" 1
