#!/bin/bash
# extend: the LUN grows on the target (an iblock backstore on a loop device); brick extend rescans
# both paths, resizes the map and prints the new size, which the kernel shows too.
set -euo pipefail
. "$LAB_DIR/lib.sh"

modprobe -a target_core_iblock loop
img=$LAB_STATE/grow.img
truncate -s 32M "$img"
loopdev=$(losetup -f --show "$img")
trap 'lio_clear >/dev/null 2>&1; losetup -d "$loopdev" 2>/dev/null || true' EXIT
serial=b51cee010001
iqn=$(tiqn grow)
dev=$C/core/iblock_90/grow
mkdir -p "$dev"
echo "udev_path=$loopdev" >"$dev/control"
echo "$serial" >"$dev/wwn/vpd_unit_serial"
echo 1 >"$dev/enable"
tpg=$C/iscsi/$iqn/tpgt_1
mkdir -p "$tpg/np/127.0.0.1:3260" "$tpg/np/127.0.0.2:3260" "$tpg/lun/lun_1"
ln -s "$dev" "$tpg/lun/lun_1/grow"
for a in generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1; do
    echo "${a#*=}" >"$tpg/attrib/${a%=*}"
done
echo 1 >"$tpg/enable"
wwn=36001405${serial}0000000000000
log "growable LUN: $iqn on $loopdev, wwn $wwn"

cat >props.json <<JSON
{"target_portal":"127.0.0.1:3260","target_iqn":"$iqn","target_lun":1,
 "target_portals":["127.0.0.1:3260","127.0.0.2:3260"],"target_iqns":["$iqn","$iqn"],"target_luns":[1,1]}
JSON
"$BRICK" connect props.json >device_info.json || fail "connect failed"
dm=$(sed -n 's/.*"path": *"\/dev\/\([^"]*\)".*/\1/p' device_info.json)
[ "$(($(cat "/sys/block/$dm/size") * 512))" = $((32 << 20)) ] || fail "map is not 32 MiB before the growth"

truncate -s 48M "$img"
losetup -c "$loopdev"
log "backing device grown to 48 MiB"
size=$("$BRICK" extend props.json --device-info device_info.json) || fail "brick extend failed"
[ "$size" = $((48 << 20)) ] || fail "brick extend printed $size, expected $((48 << 20))"
[ "$(($(cat "/sys/block/$dm/size") * 512))" = $((48 << 20)) ] || fail "the kernel shows the map at $(cat "/sys/block/$dm/size") sectors"
for slave in "/sys/block/$dm/slaves"/*; do
    sd=${slave##*/}
    [ "$(($(cat "/sys/block/$sd/size") * 512))" = $((48 << 20)) ] || fail "path $sd was not rescanned"
done
log "ok: extend reported $size bytes; map and both paths show 48 MiB"

disconnect_clean
