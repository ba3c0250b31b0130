#!/bin/bash
# Two paths in one multipath map: data written to the map without any sync must reach the target,
# and the map, both SCSI devices, both sessions and both node records must go.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 1
iscsi_login v1
wait_lun_sds v1 1 2 >/dev/null
dm=$(wait_lun_map v1 1 2)
log "LUN 1: map $dm ($(lun_wwn v1 1)) on $(lun_sds v1 1 | tr '\n' ' ')"

make_pattern "$LAB_STATE/pat1" 2
write_pattern "$dm" "$LAB_STATE/pat1" 3 buffered

props_json v1 1 >props.json
device_info_json "/dev/$dm" "$(lun_wwn v1 1)" "$(lun_wwn v1 1)" >device_info.json
log "props: $(cat props.json)"
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || fail "brick disconnect exited $brick_rc"

assert_lun_gone v1 1
assert_target_gone v1
assert_host_clean
assert_backing_has v1 1 "$LAB_STATE/pat1" 3
