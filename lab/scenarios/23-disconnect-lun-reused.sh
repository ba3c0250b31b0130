#!/bin/bash
# The reverse of 07: a device_info that is right, at a LUN the array has since given to another
# volume. Volume A was connected at LUN 1 of a 2-portal target (its device_info kept); then A's
# map and disks were removed behind brick's back, the target gave LUN number 1 to volume B, and B
# was connected through the same sessions: LUN 1 now shows B's WWN and B's map, held open by a
# user. A disconnect of A with A's device_info (its WWN is A's identity) must touch nothing at the
# LUN, plain and with --force: non-zero exit, B's map, paths, sessions and node records as they
# were, B's data readable, and the error names both WWNs. Then B's own disconnect leaves a clean
# host with B's data on the target.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create r1 --portals 2 --luns 1
dma=$(connect_map r1 1)
mv device_info.json di-a.json
wwna=$(lun_wwn r1 1)
log "A: map $dma on $(lun_sds r1 1 | tr '\n' ' ') wwn $wwna; device_info $(tr -d '\n' <di-a.json)"
grep -q "\"scsi_wwn\": *\"$wwna\"" di-a.json || fail "A's device_info does not name A's WWN: $(cat di-a.json)"

remove_lun_by_hand r1 1
lun_reuse r1 1
wwnb=$(lun_wwn r1 1)
[ "$wwnb" != "$wwna" ] || fail "B has A's WWN"
dmb=$(connect_map r1 1)
mv device_info.json di-b.json
sdsb=$(lun_sds r1 1 | tr '\n' ' ')
sidsb=$(target_sids r1 | tr '\n' ' ')
[ "$(echo "$sdsb" | wc -w)" = 2 ] || fail "B has paths '$sdsb', expected 2"
log "B: map $dmb on $sdsb wwn $wwnb, sessions $sidsb (A's old device_info names /dev/$dma)"
make_pattern "$LAB_STATE/patb" 1
write_pattern "$dmb" "$LAB_STATE/patb" 1 fsync
# B is in use: a user holds its map open for the rest of the scenario.
exec 3<>"/dev/$dmb"
log "B's map /dev/$dmb held open (fd 3)"

check_b() {
    assert_lun_present r1 1 2
    [ "$(lun_dm r1 1)" = "$dmb" ] || fail "B's map changed from $dmb to '$(lun_dm r1 1)'"
    [ "$(lun_sds r1 1 | tr '\n' ' ')" = "$sdsb" ] || fail "B's paths changed from $sdsb to $(lun_sds r1 1 | tr '\n' ' ')"
    local d
    for d in $sdsb; do
        [ -e "/sys/block/$dmb/slaves/$d" ] || fail "$d is no longer a path of B's map $dmb"
    done
    [ "$(target_sids r1 | tr '\n' ' ')" = "$sidsb" ] || fail "B's sessions changed from $sidsb to $(target_sids r1 | tr '\n' ' ')"
    [ "$(iscsiadm -m node 2>/dev/null | grep -cF "$(tiqn r1)")" = 2 ] || fail "B lost a node record"
    timeout 10 dmsetup table "$wwnb" | grep -q queue_if_no_path ||
        fail "B's map no longer queues if no path: $(timeout 10 dmsetup table "$wwnb")"
    wait_paths_active r1 1 2 20
    assert_dev_reads "$dmb" "$LAB_STATE/patb" 1
}
# The error names A's and B's WWN (either form: 36001405... or naa.6001405...). A wrong message
# fails the scenario only after the forced case has run: what happens to B matters more.
bad_errors=""
check_error() {
    if grep -qF "${wwna#3}" "$1" && grep -qF "${wwnb#3}" "$1"; then
        log "ok: the error names both WWNs"
    else
        bad_errors="$bad_errors [$2: '$(cat "$1")']"
        log "WRONG (reported at the end): the $2 error does not name both A's WWN ($wwna) and B's ($wwnb): '$(cat "$1")'"
    fi
}

props_json r1 1 >props.json
log "=== plain disconnect with A's device_info"
read -r brick_rc _ <<<"$(run_brick_err err-plain.txt disconnect props.json --device-info di-a.json)"
[ "$brick_rc" != 0 ] || fail "disconnect of A exited 0 while LUN 1 holds B"
[ "$brick_rc" != 124 ] || fail "disconnect of A did not finish"
check_b
check_error err-plain.txt plain

log "=== forced disconnect with A's device_info"
read -r brick_rc _ <<<"$(run_brick_err err-force.txt disconnect props.json --device-info di-a.json --force)"
[ "$brick_rc" != 0 ] || fail "forced disconnect of A exited 0 while LUN 1 holds B"
[ "$brick_rc" != 124 ] || fail "forced disconnect of A did not finish"
check_b
check_error err-force.txt forced
[ -z "$bad_errors" ] || fail "brick's errors do not name both A's WWN ($wwna) and B's ($wwnb):$bad_errors"

log "=== B's own disconnect"
exec 3>&-
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info di-b.json)"
[ "$brick_rc" = 0 ] || fail "disconnect of B exited $brick_rc"
assert_host_clean
assert_backing_has r1 1 "$LAB_STATE/patb" 1
