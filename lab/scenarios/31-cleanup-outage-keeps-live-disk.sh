#!/bin/bash
# brick cleanup --apply while a live single-path volume's portal is down. A single-path volume
# (Nova's default: the bare disk, no map) has an O_DIRECT writer queued on it (as a guest's qemu
# opens it) when its portal stops answering for ~15 s: its session is in recovery (FAILED, within
# recovery_tmo), its disk blocked, no holder, and no other disk has its WWN. cleanup must not call
# that disk dead (it was: blocked through the 5-s grace, then flushed at once, the O_DIRECT writer
# leaving nothing in the page cache, and deleted under the writer); once the portal is back the
# writer's data is on the target and the disk is still there; then the volume detaches clean.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 1 --luns 1 --no-multipath
props_json v1 1 >props.json
"$BRICK" connect props.json >device_info.json 2>connect.log || { cat connect.log >&2; fail "brick connect failed"; }
sd=$(lun_sds v1 1)
[ "$(wc -w <<<"$sd")" = 1 ] || fail "expected one disk of v1 LUN 1, got: $sd"
grep -q "\"path\": *\"/dev/$sd\"" device_info.json || fail "device_info does not name /dev/$sd: $(cat device_info.json)"
[ -z "$(ls "/sys/block/$sd/holders")" ] || fail "$sd has a holder: the volume should be single-path"
sid=$(target_sids v1)
log "single-path volume on /dev/$sd, session $sid, recovery_tmo $(cat "/sys/class/iscsi_session/session$sid/recovery_tmo") s"

make_pattern "$LAB_STATE/pat" 1
down_at=$(date +%s)
target_down v1
wait_sessions_failed v1
start_queued_writer "$sd" "$LAB_STATE/pat" 3
log "/dev/$sd is $(cat "/sys/block/$sd/device/state") with the writer queued"

read -r brick_rc brick_secs <<<"$(run_brick --timeout 60 cleanup --apply)"
log "cleanup --apply during the outage exited $brick_rc after ${brick_secs}s"
[ -e "/sys/block/$sd" ] || fail "cleanup --apply deleted /dev/$sd, the live volume's disk, under its writer"
kill -0 "$WRITER_PID" 2>/dev/null || fail "the writer to /dev/$sd ended during the outage (its write failed)"
[ "$brick_rc" = 0 ] || fail "cleanup --apply exited $brick_rc with nothing left over"

# The outage lasts ~15 s in all, well within the session's recovery_tmo.
left=$((down_at + 15 - $(date +%s)))
[ "$left" -le 0 ] || sleep "$left"
log "portal down for $(($(date +%s) - down_at)) s"
target_up v1
wait_sessions_up v1
writer_ended() { ! kill -0 "$WRITER_PID" 2>/dev/null; }
wait_until 60 "the O_DIRECT writer to finish" writer_ended
rc=0
wait "$WRITER_PID" || rc=$?
[ "$rc" = 0 ] || fail "the O_DIRECT writer exited $rc once the portal was back"
assert_backing_has v1 1 "$LAB_STATE/pat" 3
[ "$(lun_sds v1 1)" = "$sd" ] || fail "/dev/$sd is not v1 LUN 1's disk any more: $(lun_sds v1 1)"
assert_lun_present v1 1 1 0

disconnect_clean
assert_target_gone v1
