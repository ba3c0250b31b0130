#!/bin/bash
# A disconnect killed with SIGKILL midway, then run again: the second run finishes the job.
# Part 1: paths up, killed after a random delay, three times in a row, then a full run.
# Part 2: all paths down (the disconnect is stuck or failing), killed; paths back; a full run.
# LAB_SEED fixes the random delays (logged) to replay a failure.
set -euo pipefail
. "$LAB_DIR/lib.sh"
RANDOM=${LAB_SEED:-$$}
log "random seed ${LAB_SEED:-$$}"

kill_after() {   # kill_after MS: SIGKILL the background brick after MS milliseconds
    sleep "$(awk -v m="$1" 'BEGIN{printf "%.3f", m/1000}')"
    if kill -KILL "$BRICK_PID" 2>/dev/null; then log "killed brick (pid $BRICK_PID) after $1 ms"
    else log "brick (pid $BRICK_PID) had finished before $1 ms"; fi
    # a process blocked in the kernel dies only when its I/O ends: do not wait for it forever
    local i
    for i in $(seq 30); do kill -0 "$BRICK_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$BRICK_PID" 2>/dev/null; then
        log "brick (pid $BRICK_PID) is stuck in the kernel after SIGKILL ($(cat /proc/$BRICK_PID/wchan 2>/dev/null)); going on"
        STUCK_PID=$BRICK_PID
    else
        wait "$BRICK_PID" 2>/dev/null || true
    fi
}
STUCK_PID=""

log "=== part 1: paths up"
target_create v1 --portals 2 --luns 1
iscsi_login v1
dm=$(wait_lun_map v1 1 2)
make_pattern "$LAB_STATE/pat1" 1
write_pattern "$dm" "$LAB_STATE/pat1" 1 buffered
props_json v1 1 >props1.json
device_info_json "/dev/$dm" "$(lun_wwn v1 1)" "$(lun_wwn v1 1)" >di1.json
for round in 1 2 3; do
    start_brick disconnect props1.json --device-info di1.json
    kill_after $(( 100 + RANDOM % 1500 ))
    log "after round $round: sds=[$(lun_sds v1 1 | tr '\n' ' ')] map=[$(lun_dm v1 1)] sessions=[$(target_sids v1 | tr '\n' ' ')]"
done
run_brick disconnect props1.json --device-info di1.json
[ "$BRICK_RC" = 0 ] || fail "the disconnect after the killed ones exited $BRICK_RC"
assert_lun_gone v1 1
assert_target_gone v1
assert_backing_has v1 1 "$LAB_STATE/pat1" 1
target_destroy v1
assert_host_clean

log "=== part 2: all paths down"
target_create v2 --portals 2 --luns 1
iscsi_login v2
dm=$(wait_lun_map v2 1 2)
make_pattern "$LAB_STATE/pat2" 1
write_pattern "$dm" "$LAB_STATE/pat2" 1 buffered
props_json v2 1 >props2.json
device_info_json "/dev/$dm" "$(lun_wwn v2 1)" "$(lun_wwn v2 1)" >di2.json
target_down v2
wait_sessions_failed v2
start_brick disconnect props2.json --device-info di2.json
kill_after $(( 1000 + RANDOM % 4000 ))
log "after the kill: sds=[$(lun_sds v2 1 | tr '\n' ' ')] map=[$(lun_dm v2 1)] sessions=[$(target_sids v2 | tr '\n' ' ')]"
target_up v2
wait_sessions_up v2
if [ -n "$STUCK_PID" ]; then
    wait_until 60 "the killed brick to die once the paths are back" sh -c "! kill -0 $STUCK_PID"
    log "killed brick is gone"
fi
if [ -n "$(lun_dm v2 1)" ]; then wait_paths_active v2 1 "$(lun_sds v2 1 | _count_lines)"; fi
run_brick disconnect props2.json --device-info di2.json
[ "$BRICK_RC" = 0 ] || fail "the disconnect after the killed one (paths back) exited $BRICK_RC"
assert_lun_gone v2 1
assert_target_gone v2
assert_host_clean
assert_backing_has v2 1 "$LAB_STATE/pat2" 1
