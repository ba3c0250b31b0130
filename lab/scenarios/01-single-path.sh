#!/bin/bash
# Single path, no multipath map (the LUN is blacklisted for multipathd): data written without any
# sync must reach the target, and the SCSI device, the session and the node record must go.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 1 --luns 1 --no-multipath
iscsi_login v1 1
sd=$(wait_lun_sds v1 1 1)
log "LUN 1 is $sd (wwid $(lun_wwid v1 1))"
[ -z "$(ls "/sys/block/$sd/holders")" ] || fail "$sd has a holder: the LUN should not be multipathed"

make_pattern "$LAB_STATE/pat1" 1
write_pattern "$sd" "$LAB_STATE/pat1" 1 buffered

props_json v1 1 1 >props.json
device_info_json "/dev/$sd" "$(lun_wwn v1 1)" >device_info.json
log "props: $(cat props.json)"
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || fail "brick disconnect exited $brick_rc"

assert_lun_gone v1 1
assert_target_gone v1
assert_host_clean
assert_backing_has v1 1 "$LAB_STATE/pat1" 1
