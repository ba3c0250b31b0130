#!/bin/bash
# --force on a healthy volume that stays open (as a VM or a mount holds it): both paths running,
# data written through the map without any sync, another process holding the map open. The
# forced disconnect must: flush first (the data reaches the target), exit non-zero naming what
# holds the map, leave no path, session or node record, never hang, and leave the map unable to
# queue I/O (a read of it fails at once instead of waiting for paths that will not come back).
set -euo pipefail
. "$LAB_DIR/lib.sh"
BOUND=${LAB_FORCE_BOUND:-90}

target_create v1 --portals 2 --luns 1
dm=$(connect_map v1 1)
name=$(cat "/sys/block/$dm/dm/name")
make_pattern "$LAB_STATE/pat" 2
write_pattern "$dm" "$LAB_STATE/pat" 3 buffered
# The holder: a process of its own (the scenario's shell must not hold it: brick would inherit
# the descriptor).
sleep 600 3<"/dev/$dm" &
holder=$!
wait_until 10 "the holder to open /dev/$dm" sh -c "ls -l /proc/$holder/fd | grep -q '/dev/$dm'"

out=$(mktemp "$LAB_STATE/brick-err.XXXXXX")
read -r brick_rc brick_secs <<<"$(run_brick --timeout 150 disconnect props.json --device-info device_info.json --force)"
[ "$brick_rc" != 124 ] || fail "the forced disconnect did not finish in 150 s"
[ "$brick_rc" != 0 ] || fail "the forced disconnect exited 0 though the map is still open"
awk -v s="$brick_secs" -v b="$BOUND" 'BEGIN{exit !(s < b)}' || fail "took ${brick_secs}s (bound ${BOUND}s)"
log "ok: forced disconnect exited $brick_rc in ${brick_secs}s"

assert_no_sd v1 1
assert_target_gone v1
[ -e "/sys/block/$dm" ] || fail "the open map is gone?"
# multipathd reloads the map once it has seen the paths go (a reload restores its
# configuration's queue_if_no_path): the checks below are of the host after that.
sleep 3
[ -z "$(ls "/sys/block/$dm/slaves")" ] || fail "the open map still has paths: $(ls "/sys/block/$dm/slaves")"
# Queueing disabled, after that one forced disconnect (no rerun): a read fails at once rather
# than waiting for a path.
log "the map's table now: $(dmsetup table "$name" 2>&1)"
t0=$(date +%s)
if timeout 20 dd if="/dev/$dm" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null; then
    fail "a read of the pathless map succeeded"
fi
[ $(($(date +%s) - t0)) -lt 15 ] || fail "a read of the pathless map waited $(($(date +%s) - t0))s: queueing is still on"
log "ok: the pathless map fails I/O at once"
# What it says: the map is left, and why (the holder is named). A rerun finds the pathless map
# of the volume's WWN (the LUN shows nothing now) and fails on it again, naming the holder.
"$BRICK" disconnect props.json --device-info device_info.json --force 2>"$out" >/dev/null || true
grep -q "open in process $holder (sleep)" "$out" || fail "brick does not name the holder: $(cat "$out")"
log "ok: brick names the holder: $(grep -o "open in process $holder (sleep)" "$out" | head -1)"

# The data written before the disconnect reached the target: flushed before anything went.
assert_backing_has v1 1 "$LAB_STATE/pat" 3

kill "$holder"
wait "$holder" 2>/dev/null || true
wait_until 30 "the map to be removable" dmsetup remove "$name"
assert_host_clean
