#!/bin/bash
# Sixteen multipath volumes (one target, two portals, sixteen LUNs) connected at once by sixteen brick
# processes while udevd runs but its SCSI rules give the new disks no ID_SERIAL (the rules
# that set it, 55-scsi-sg3_id.rules and 60-persistent-storage.rules, are shadowed by empty files
# in /etc/udev/rules.d: udev answers every event, and says nothing of the disk's identity).
# multipathd at its default uid_attribute (ID_SERIAL) then logs "failed to get udev uid" for
# every path and builds no map until its own sysfs fallback, after three unanswered retriggers
# (some 30 s). Issue 26 item 8: 8 of 16 connects failed so ("multipathd built no map ... within
# 20s"). Every connect must exit 0 and name its own map (dm-N) holding both of the LUN's paths;
# sixteen maps, as the issue measured it; then sixteen concurrent disconnects leave a clean host.
# Then the same through the Python package (python/labtests/test_udev_stuck.py, venv from `make
# python`): four two-path connects at once, a thread each, in one process; and their disconnects.
set -euo pipefail
. "$LAB_DIR/lib.sh"

pidof systemd-udevd udevd >/dev/null 2>&1 || fail "udevd does not run: this scenario needs it running"
multipathd_host_uid
rules=/etc/udev/rules.d
shadowed=(55-scsi-sg3_id.rules 60-persistent-storage.rules)
restore() {
    for r in "${shadowed[@]}"; do rm -f "$rules/$r"; done
    udevadm control --reload 2>/dev/null || true
    _multipathd_restore
}
trap restore EXIT
mkdir -p "$rules"
for r in "${shadowed[@]}"; do
    [ ! -e "$rules/$r" ] || fail "$rules/$r exists already"
    echo "# brick lab 32: no ID_SERIAL for new disks" >"$rules/$r"
done
udevadm control --reload

N=16
target_create us --portals 2 --luns "$N" --size 8
vols=()
for l in $(seq "$N"); do props_json us "$l" >"us-$l.json"; vols+=("us-$l"); done
t0=$(date +%s%N)
pids=()
for v in "${vols[@]}"; do
    NO_COLOR=1 "$BRICK" -v connect "$v.json" >"$v.dev" 2>"$v.err" &
    pids+=($!)
done
bad=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; log "connect of ${vols[$i]} failed: $(tail -3 "${vols[$i]}.err")"; }; done
log "$N connects done in $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}') s"
log "us-1's connect, on the map:"; grep -E 'map|multipath' us-1.err | cut -c1-220 | sed 's/^/    brick| /' >&2 || true
log "multipathd's paths (dev, wwid, init state, map):"; multipathd show paths format "%d %w %I %m" >&2 || true
[ "$bad" = 0 ] || fail "a concurrent connect failed"
# The setup did what it says: udev described the disks, without an ID_SERIAL.
sd=$(lun_sds us 1 | sed -n 1p)  # not head: lun_sds would die of SIGPIPE writing its next line
[ -n "$sd" ] || fail "LUN 1 has no disk"
udevadm info -q property -n "/dev/$sd" >udev.txt 2>&1 || true
grep -q '^DEVNAME=' udev.txt || fail "udev has no record of $sd: $(cat udev.txt)"
! grep -q '^ID_SERIAL=' udev.txt || fail "udev gave $sd an ID_SERIAL: the rules are not shadowed"
for v in "${vols[@]}"; do
    l=${v#us-}
    grep -q '"path": *"/dev/sd' "$v.dev" && fail "$v: connect returned a bare disk, not a map: $(cat "$v.dev")"
    grep -q "\"scsi_wwn\": *\"$(lun_wwn us "$l")\"" "$v.dev" || fail "$v: device_info has a wrong WWN: $(cat "$v.dev")"
    dm=$(lun_dm us "$l")
    [ -n "$dm" ] || fail "$v: no map for LUN $l"
    grep -q "\"path\": *\"/dev/$dm\"" "$v.dev" || fail "$v: device_info does not name the LUN's map $dm: $(cat "$v.dev")"
    want=$(lun_sds us "$l" | sort | tr '\n' ' ')
    have=$(ls "/sys/block/$dm/slaves" | sort | tr '\n' ' ')
    [ "$(echo "$want" | wc -w)" = 2 ] || fail "$v: LUN $l has disks '$want', expected 2"
    [ "$have" = "$want" ] || fail "$v: map $dm holds '$have', the LUN's disks are '$want'"
done
n=$(ls -d /sys/block/dm-* | wc -l); [ "$n" = "$N" ] || fail "$n maps, expected $N"
log "ok: $N connects, each its own map with both of its LUN's paths"

pids=()
for v in "${vols[@]}"; do
    NO_COLOR=1 "$BRICK" -v disconnect "$v.json" --device-info "$v.dev" >"$v.out" 2>"$v.err" &
    pids+=($!)
done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; log "disconnect of ${vols[$i]} failed: $(tail -3 "${vols[$i]}.err")"; }; done
[ "$bad" = 0 ] || fail "a concurrent disconnect failed"
assert_host_clean

# The same through the Python package, the rules still shadowed.
target_create up --portals 2 --luns 4 --size 8
{
    printf '{"brick": "%s", "stuck": [' "$BRICK"
    for l in 1 2 3 4; do
        [ "$l" = 1 ] || printf ', '
        lab_json up "$l"
    done
    printf ']}\n'
} >lab.json
py_lab_pytest test_udev_stuck.py
assert_host_clean
