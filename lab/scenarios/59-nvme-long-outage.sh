#!/bin/bash
# lab: timeout=300
# NVMe/TCP with brick's default settings: every portal of a volume gone for 90 s (longer than any
# short ctrl_loss_tmo) with an O_DIRECT writer queued on the head: the controllers reconnect for
# ever (ctrl_loss_tmo off), nothing is deleted, and once the portals are back the write completes
# and is on the target. Then the head held open by a process: a plain disconnect refuses (exit 3,
# controllers and head kept, the error names the process); --force deletes the controllers.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup
outage=90

nvme_sub_create lo 1 2
nvme_props lo 1 1 2 >props.json
dev=$(nvme_connect_ok props.json device_info.json)
for c in $(nvme_ctrls lo); do
    log "$c ctrl_loss_tmo $(cat "/sys/class/nvme/$c/ctrl_loss_tmo")"
done
make_pattern "$LAB_STATE/pat" 1

# The outage: both ports leave the subsystem, a writer queues on the head.
t0=$(date +%s)
nvme_port_down lo 1; nvme_port_down lo 2
wait_until 30 "both controllers connecting" sh -c "! grep -qx live /sys/class/nvme/nvme*/state"
dd if="$LAB_STATE/pat" of="/dev/$dev" bs=1M seek=4 oflag=direct status=none &
WRITER=$!
sleep 3
kill -0 "$WRITER" 2>/dev/null || nvme_fail "the writer was not queued (it ended)"
log "writer $WRITER queued on /dev/$dev; the ports stay away for ${outage}s"
while [ $(($(date +%s) - t0)) -lt "$outage" ]; do
    kill -0 "$WRITER" 2>/dev/null || nvme_fail "the queued writer ended $(($(date +%s) - t0))s into the outage (its I/O failed)"
    [ "$(nvme_ctrls lo | wc -l)" = 2 ] || nvme_fail "controllers deleted $(($(date +%s) - t0))s into the outage"
    sleep 2
done
[ -e "/sys/block/$dev" ] || nvme_fail "/dev/$dev is gone after the outage"
nvme_port_up lo 1; nvme_port_up lo 2
wait_until 60 "the queued writer to finish" sh -c "! kill -0 $WRITER 2>/dev/null"
wait "$WRITER" || nvme_fail "the queued write failed once the portals were back"
assert_nvme_backing_has lo 1 "$LAB_STATE/pat" 4
log "ok: a ${outage}-s outage kept the controllers and the queued write, which reached the target"

# Held open by a process: a plain disconnect refuses and names it.
wait_until 30 "both controllers live" sh -c "[ \$(grep -lx live /sys/class/nvme/nvme*/state | wc -l) = 2 ]"
(exec 3<"/dev/$dev"; exec sleep 600) &
HOLDER=$!
read -r brick_rc _ <<<"$(run_brick_err err.txt disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 3 ] || nvme_fail "plain disconnect of a head open in process $HOLDER exited $brick_rc, not 3"
grep -q "open in process $HOLDER (sleep)" err.txt || nvme_fail "the refusal does not name process $HOLDER: $(cat err.txt)"
[ "$(nvme_ctrls lo | wc -l)" = 2 ] || nvme_fail "a refused disconnect removed controllers"
[ -e "/sys/block/$dev" ] || nvme_fail "a refused disconnect removed /dev/$dev"
log "ok: refused, naming the holder; controllers and head kept"
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json --force)"
log "forced disconnect exited $brick_rc"
[ "$brick_rc" = 4 ] || nvme_fail "forced disconnect of a held head exited $brick_rc, not 4 (done, the holder reported)"
assert_nvme_clean
kill "$HOLDER" 2>/dev/null || true
wait "$HOLDER" 2>/dev/null || true
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "a disconnect after the forced one exited $brick_rc"
