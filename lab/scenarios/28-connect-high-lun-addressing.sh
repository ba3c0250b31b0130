#!/bin/bash
# An array that numbers its LUNs the SAM-2 way: it says LUN 256 (addressing_mode SAM2) and
# addresses it flat, so the kernel shows LUN 16640 (LIO's LUN 16640 here). brick scans 16640
# only, finds the disk there, and the disconnect with the same properties leaves a clean host and
# the data on the target.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create hl --first-lun 16640 --luns 1 --no-multipath
printf '{"target_portal":"%s","target_iqn":"%s","target_lun":256,"addressing_mode":"SAM2","volume_id":"hl"}\n' \
    "$(portal 1)" "$(tiqn hl)" >props.json
read -r brick_rc _ <<<"$(run_brick connect --single-path props.json)"
[ "$brick_rc" = 0 ] || fail "brick connect of LUN 256 (SAM2) exited $brick_rc"
"$BRICK" connect --single-path props.json >device_info.json 2>/dev/null || fail "second connect failed"
sd=$(lun_sds hl 16640)
[ "$(echo "$sd" | count_lines)" = 1 ] || fail "not one disk at LUN 16640: $sd"
addr=$(basename "$(readlink -f "/sys/block/$sd/device")")
[ "${addr##*:}" = 16640 ] || fail "/dev/$sd is at $addr, not LUN 16640"
grep -q "\"path\": *\"/dev/$sd\"" device_info.json || fail "device_info path is not /dev/$sd: $(cat device_info.json)"
log "ok: LUN 256 (SAM2) is /dev/$sd at $addr"

write_disconnect_keeps hl 16640 "$sd"
