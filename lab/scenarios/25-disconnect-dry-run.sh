#!/bin/bash
# brick disconnect --dry-run: two LUNs on one two-portal target, LUN 1 written through its map.
# The dry run of LUN 1 (text and --json) names its map, both paths, the sessions it keeps for
# LUN 2, and changes nothing in the kernel (devices and their states and holders, maps, sessions
# and their states, node records); then the real disconnect does what it said, and the data is
# kept.
set -euo pipefail
. "$LAB_DIR/lib.sh"

# What the kernel shows: block devices, their states and holders, maps, sessions and their
# states, node records.
kernel_state() {
    local d
    for d in /sys/block/sd* /sys/block/dm-*; do
        [ -e "$d" ] || continue
        printf '%s state=%s holders=%s\n' "${d##*/}" "$(cat "$d/device/state" 2>/dev/null || echo -)" \
            "$(ls "$d/holders" | tr '\n' ' ')"
    done
    for d in /sys/class/iscsi_session/session*; do
        [ -e "$d" ] || continue
        printf '%s %s %s\n' "${d##*/}" "$(cat "$d/targetname")" "$(cat "$d/state")"
    done
    iscsiadm -m node 2>/dev/null | sort || true
}

target_create v1 --portals 2 --luns 2
dm=$(connect_map v1 1)
props_json v1 2 >props2.json
read -r brick_rc _ <<<"$(run_brick connect props2.json)"
[ "$brick_rc" = 0 ] || fail "connect of LUN 2 exited $brick_rc"
make_pattern "$LAB_STATE/pat" 2
write_pattern "$dm" "$LAB_STATE/pat" 5 buffered
before=$(kernel_state)

read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json --dry-run)"
[ "$brick_rc" = 0 ] || fail "dry run exited $brick_rc"
"$BRICK" disconnect props.json --device-info device_info.json --dry-run >plan.txt 2>/dev/null
"$BRICK" disconnect props.json --device-info device_info.json --dry-run --json >plan.json 2>/dev/null
cat plan.txt >&2
grep -q "1. flush: /dev/$dm " plan.txt || fail "the plan does not flush /dev/$dm first"
for sd in $(lun_sds v1 1); do
    grep -q "/dev/$sd " plan.txt || fail "the plan does not name path $sd"
done
[ "$(grep -o '"kind": *"session"' plan.json | wc -l)" = 2 ] || fail "the plan does not keep both sessions: $(cat plan.json)"
grep -q '"log_out": *\[\]' plan.json || fail "the plan logs out a session LUN 2 uses"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert p["remove"][0]["dev"], p' plan.json \
    || fail "plan.json is not the plan"
after=$(kernel_state)
[ "$before" = "$after" ] || fail "the dry run changed the kernel state: $(diff <(echo "$before") <(echo "$after"))"
log "ok: the dry run changed nothing"
backing_has v1 1 "$LAB_STATE/pat" 5 && log "note: the data reached the target before the disconnect (writeback ran)"

read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || fail "disconnect exited $brick_rc"
assert_lun_gone v1 1
assert_lun_present v1 2 2
assert_backing_has v1 1 "$LAB_STATE/pat" 5
props_json v1 2 >props.json
read -r brick_rc _ <<<"$(run_brick disconnect props.json)"
[ "$brick_rc" = 0 ] || fail "disconnect of LUN 2 exited $brick_rc"
assert_host_clean
