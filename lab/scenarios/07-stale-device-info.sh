#!/bin/bash
# device_info given to the disconnect of volume A names another volume, B (stale or mixed up by
# the caller): B's paths, map and sessions must be left untouched and B must keep working.
# Case 1: device_info is entirely B's (B's map path and B's WWN) with A1's props.
# Case 2: device_info has A2's WWN but B's SCSI device as path.
# When brick exits 0, the volume it was asked to disconnect (A1, A2) must be gone.
set -euo pipefail
. "$LAB_DIR/lib.sh"

for v in a1 a2 b; do target_create "$v" --portals 2 --luns 1; done
for v in a1 a2 b; do iscsi_login "$v"; done
for v in a1 a2 b; do wait_lun_map "$v" 1 2 >/dev/null; done
dmb=$(lun_dm b 1); sdsb=$(lun_sds b 1 | tr '\n' ' ')
log "B: map $dmb on $sdsb"
make_pattern "$LAB_STATE/patb" 1
write_pattern "$dmb" "$LAB_STATE/patb" 1 fsync

check_b() {
    assert_lun_present b 1 2
    [ "$(lun_dm b 1)" = "$dmb" ] || fail "B's map changed from $dmb to $(lun_dm b 1)"
    [ "$(lun_sds b 1 | tr '\n' ' ')" = "$sdsb" ] || fail "B's paths changed from $sdsb to $(lun_sds b 1 | tr '\n' ' ')"
    [ "$(target_sids b | count_lines)" = 2 ] || fail "B lost a session"
    [ "$(iscsiadm -m node 2>/dev/null | grep -cF "$(tiqn b)")" = 2 ] || fail "B lost a node record"
    wait_paths_active b 1 2 20
    assert_dev_reads "$dmb" "$LAB_STATE/patb" 1
}
check_a_if_ok() {
    if [ "$brick_rc" = 0 ]; then
        assert_lun_gone "$1" 1
        assert_target_gone "$1"
    else
        log "note: brick refused to disconnect $1 (rc $brick_rc); allowed, B is what matters here"
    fi
}

log "=== case 1: A1's props, device_info all B's ($dmb, $(lun_wwn b 1))"
props_json a1 1 >props-a1.json
device_info_json "/dev/$dmb" "$(lun_wwn b 1)" "$(lun_wwn b 1)" >di-a1.json
read -r brick_rc _ <<<"$(run_brick disconnect props-a1.json --device-info di-a1.json)"
check_b
check_a_if_ok a1

log "=== case 2: A2's props, device_info with A2's WWN and B's path device"
b_path=${sdsb%% *}
props_json a2 1 >props-a2.json
device_info_json "/dev/$b_path" "$(lun_wwn a2 1)" >di-a2.json
read -r brick_rc _ <<<"$(run_brick disconnect props-a2.json --device-info di-a2.json)"
check_b
check_a_if_ok a2

log "=== case 3: A2's props, device_info all B's, with --force"
if [ -n "$(lun_dm a2 1)" ]; then
    device_info_json "/dev/$dmb" "$(lun_wwn b 1)" "$(lun_wwn b 1)" >di-a2f.json
    read -r brick_rc _ <<<"$(run_brick disconnect props-a2.json --device-info di-a2f.json --force)"
    check_b
    check_a_if_ok a2
else
    log "skipped: A2 is gone already"
fi
