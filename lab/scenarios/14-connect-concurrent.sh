#!/bin/bash
# Ten volumes connected, then disconnected, concurrently by separate brick processes: five targets
# of two LUNs each on two portals, so volumes share sessions (the host-wide lock is exercised).
# Every device is accounted for at the end: each volume its own map of two paths, then nothing.
set -euo pipefail
. "$LAB_DIR/lib.sh"

vols=()
for t in 1 2 3 4 5; do
    target_create "c$t" --portals 2 --luns 2
    for l in 1 2; do props_json "c$t" "$l" >"c$t-$l.json"; vols+=("c$t-$l"); done
done
pids=()
for v in "${vols[@]}"; do
    NO_COLOR=1 "$BRICK" connect "$v.json" >"$v.dev" 2>"$v.err" &
    pids+=($!)
done
bad=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; log "connect of ${vols[$i]} failed: $(cat "${vols[$i]}.err")"; }; done
[ "$bad" = 0 ] || fail "a concurrent connect failed"
for v in "${vols[@]}"; do
    t=${v%-*}; l=${v#*-}
    grep -q "\"scsi_wwn\": *\"$(lun_wwn "$t" "$l")\"" "$v.dev" || fail "$v: device_info has a wrong WWN: $(cat "$v.dev")"
    grep -q '"path": *"/dev/dm-' "$v.dev" || fail "$v: no map in device_info: $(cat "$v.dev")"
done
# shellcheck disable=SC2016 # expanded by the inner sh
wait_until 60 "every map with both paths" sh -c '
    for d in /sys/block/dm-*; do [ "$(ls $d/slaves | wc -l)" = 2 ] || exit 1; done'
n=$(ls -d /sys/block/dm-* | wc -l); [ "$n" = 10 ] || fail "$n maps, expected 10"
n=$(ls /sys/class/iscsi_session | wc -l); [ "$n" = 10 ] || fail "$n sessions, expected 10 (one per target and portal)"
paths=$(cat /sys/block/dm-*/slaves/*/dev 2>/dev/null | wc -l)
log "ok: 10 volumes, 10 maps ($paths paths), 10 sessions, $(ls -d /sys/block/sd* | wc -l) disks"

pids=()
for v in "${vols[@]}"; do
    NO_COLOR=1 "$BRICK" disconnect "$v.json" --device-info "$v.dev" >"$v.out" 2>"$v.err" &
    pids+=($!)
done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; log "disconnect of ${vols[$i]} failed: $(cat "${vols[$i]}.err")"; }; done
[ "$bad" = 0 ] || fail "a concurrent disconnect failed"
assert_host_clean
