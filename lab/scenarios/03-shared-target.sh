#!/bin/bash
# Two LUNs behind the same target and the same two sessions. Disconnecting LUN 1 must leave LUN 2
# (paths, map, sessions, node records) alone and working; then disconnecting LUN 2, the last one,
# must log out and leave a clean host.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 2
iscsi_login v1
dm1=$(wait_lun_map v1 1 2)
dm2=$(wait_lun_map v1 2 2)
sds2=$(lun_sds v1 2 | tr '\n' ' ')
log "LUN 1: map $dm1; LUN 2: map $dm2 on $sds2"

make_pattern "$LAB_STATE/pat1" 1
make_pattern "$LAB_STATE/pat2" 1
make_pattern "$LAB_STATE/pat2b" 1
write_pattern "$dm1" "$LAB_STATE/pat1" 1 buffered
write_pattern "$dm2" "$LAB_STATE/pat2" 1 fsync

props_json v1 1 >props1.json
device_info_json "/dev/$dm1" "$(lun_wwn v1 1)" "$(lun_wwn v1 1)" >device_info1.json
read -r brick_rc _ <<<"$(run_brick disconnect props1.json --device-info device_info1.json)"
[ "$brick_rc" = 0 ] || fail "brick disconnect of LUN 1 exited $brick_rc"

assert_lun_gone v1 1
assert_backing_has v1 1 "$LAB_STATE/pat1" 1
assert_lun_present v1 2 2
[ "$(lun_dm v1 2)" = "$dm2" ] || fail "LUN 2's map changed from $dm2 to $(lun_dm v1 2)"
[ "$(lun_sds v1 2 | tr '\n' ' ')" = "$sds2" ] || fail "LUN 2's paths changed from $sds2 to $(lun_sds v1 2 | tr '\n' ' ')"
n=$(target_sids v1 | count_lines)
[ "$n" = 2 ] || fail "expected 2 sessions to v1 after disconnecting LUN 1, found $n"
n=$(iscsiadm -m node 2>/dev/null | grep -cF "$(tiqn v1)" || true)
[ "$n" = 2 ] || fail "expected 2 node records for v1 after disconnecting LUN 1, found $n"
log "ok: 2 sessions and 2 node records kept for LUN 2"
wait_paths_active v1 2 2 20
assert_dev_reads "$dm2" "$LAB_STATE/pat2" 1
write_pattern "$dm2" "$LAB_STATE/pat2b" 4 direct
assert_backing_has v1 2 "$LAB_STATE/pat2b" 4

props_json v1 2 >props2.json
device_info_json "/dev/$dm2" "$(lun_wwn v1 2)" "$(lun_wwn v1 2)" >device_info2.json
read -r brick_rc _ <<<"$(run_brick disconnect props2.json --device-info device_info2.json)"
[ "$brick_rc" = 0 ] || fail "brick disconnect of LUN 2 exited $brick_rc"
assert_lun_gone v1 2
assert_target_gone v1
assert_host_clean
assert_backing_has v1 2 "$LAB_STATE/pat2" 1
