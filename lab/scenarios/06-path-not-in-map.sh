#!/bin/bash
# One path of the volume is not in its multipath map (multipathd was told to drop it, so nothing
# holds that SCSI device): the disconnect must remove it too.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 1
iscsi_login v1
dm=$(wait_lun_map v1 1 2)
# (a here-string ends in a newline: read's status stays 0)
read -r out kept <<<"$(lun_sds v1 1 | tr '\n' ' ')"
multipathd del path "$out" >/dev/null
_path_left() { [ -z "$(ls "/sys/block/$out/holders")" ] && [ "$(ls "/sys/block/$dm/slaves" | tr -d '\n')" = "$kept" ]; }
wait_until 20 "$out to leave map $dm" _path_left
log "map $dm now has only $kept; $out has no holder"
make_pattern "$LAB_STATE/pat1" 1
write_pattern "$dm" "$LAB_STATE/pat1" 1 buffered

props_json v1 1 >props.json
device_info_json "/dev/$dm" "$(lun_wwn v1 1)" "$(lun_wwn v1 1)" >device_info.json
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || fail "brick disconnect exited $brick_rc"
[ ! -e "/sys/block/$out" ] || fail "$out (the path outside the map) remains"
assert_lun_gone v1 1
assert_target_gone v1
assert_host_clean
assert_backing_has v1 1 "$LAB_STATE/pat1" 1
