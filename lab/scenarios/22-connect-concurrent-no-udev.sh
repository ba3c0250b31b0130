#!/bin/bash
# lab: udev=0
# Sixteen multipath volumes (one target, two portals, sixteen LUNs) connected at once by sixteen
# brick processes with no udevd running (guest.sh stops it for this scenario, as on a host whose
# udevd is gone, or in a container): multipathd then hears of no path and of no map it makes by
# itself. multipathd runs as on a host (uid_attribute ID_SERIAL: a path's WWID from udev's
# record, which a disk that appeared since udevd stopped does not have). Every connect must exit
# 0 and name its own map (dm-N) holding both of the LUN's paths, never a bare sdX; sixteen maps;
# then sixteen concurrent disconnects leave a clean host.
set -euo pipefail
. "$LAB_DIR/lib.sh"

! pidof systemd-udevd udevd >/dev/null 2>&1 || fail "udevd runs: this scenario needs it stopped (# lab: udev=0)"
multipathd_host_uid
N=16
target_create nu --portals 2 --luns "$N" --size 8
vols=()
for l in $(seq "$N"); do props_json nu "$l" >"nu-$l.json"; vols+=("nu-$l"); done
t0=$(date +%s%N)
pids=()
for v in "${vols[@]}"; do
    NO_COLOR=1 "$BRICK" -v connect "$v.json" >"$v.dev" 2>"$v.err" &
    pids+=($!)
done
bad=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; log "connect of ${vols[$i]} failed: $(tail -5 "${vols[$i]}.err")"; }; done
log "16 connects done in $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}') s"
for v in "${vols[@]}"; do log "$v: $(tr -d '\n' <"$v.dev")"; done
log "multipathd's paths (dev, wwid, init state, map):"; multipathd show paths format "%d %w %I %m" >&2 || true
[ "$bad" = 0 ] || fail "a concurrent connect failed"
for v in "${vols[@]}"; do
    l=${v#nu-}
    if grep -q '"path": *"/dev/sd' "$v.dev"; then
        sed 's/^/    brick| /' "$v.err" >&2
        fail "$v: connect returned a bare disk, not a map: $(cat "$v.dev")"
    fi
    grep -q "\"scsi_wwn\": *\"$(lun_wwn nu "$l")\"" "$v.dev" || fail "$v: device_info has a wrong WWN: $(cat "$v.dev")"
    dm=$(lun_dm nu "$l")
    [ -n "$dm" ] || fail "$v: no map for LUN $l"
    grep -q "\"path\": *\"/dev/$dm\"" "$v.dev" || fail "$v: device_info does not name the LUN's map $dm: $(cat "$v.dev")"
    want=$(lun_sds nu "$l" | sort | tr '\n' ' ')
    have=$(ls "/sys/block/$dm/slaves" | sort | tr '\n' ' ')
    [ "$(echo "$want" | wc -w)" = 2 ] || fail "$v: LUN $l has disks '$want', expected 2"
    [ "$have" = "$want" ] || fail "$v: map $dm holds '$have', the LUN's disks are '$want'"
done
n=$(ls -d /sys/block/dm-* | wc -l); [ "$n" = "$N" ] || fail "$n maps, expected $N"
log "ok: $N connects, each its own map with both of its LUN's paths, no bare disk"

pids=()
for v in "${vols[@]}"; do
    NO_COLOR=1 "$BRICK" -v disconnect "$v.json" --device-info "$v.dev" >"$v.out" 2>"$v.err" &
    pids+=($!)
done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; log "disconnect of ${vols[$i]} failed: $(tail -5 "${vols[$i]}.err")"; }; done
[ "$bad" = 0 ] || fail "a concurrent disconnect failed"
assert_host_clean
