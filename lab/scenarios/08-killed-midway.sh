#!/bin/bash
# A disconnect killed with SIGKILL midway, then run again: the second run finishes the job.
# Part 1: paths up; three volumes, each: disconnect killed after a random delay, then a full run.
# Part 2: all paths down with a writer queued on the map (O_DIRECT, waited for until it blocks in
# the kernel) and a buffered write dirty in the map's page cache; the (failing) disconnect is
# killed after a random delay; paths back, writer done; a full run: clean host, both writes on
# the target, read from its backing file with no flush of the scenario's own.
# LAB_SEED fixes the random delays (logged) to replay a failure.
set -euo pipefail
. "$LAB_DIR/lib.sh"
RANDOM=${LAB_SEED:-$$}
log "random seed ${LAB_SEED:-$$}"

kill_after() {   # kill_after MS: SIGKILL the background brick after MS milliseconds
    sleep "$(awk -v m="$1" 'BEGIN{printf "%.3f", m/1000}')"
    if kill -KILL "$brick_pid" 2>/dev/null; then log "killed brick (pid $brick_pid) after $1 ms"
    else log "brick (pid $brick_pid) had finished before $1 ms"; fi
    # a process blocked in the kernel dies only when its I/O ends: do not wait for it forever
    local _
    for _ in $(seq 30); do kill -0 "$brick_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$brick_pid" 2>/dev/null; then
        log "brick (pid $brick_pid) is stuck in the kernel after SIGKILL ($(cat "/proc/$brick_pid/wchan" 2>/dev/null)); going on"
        STUCK_PID=$brick_pid
    else
        wait "$brick_pid" 2>/dev/null || true
    fi
}
STUCK_PID=""
brick_pid=""   # set by start_brick

log "=== part 1: paths up"
for v in v1 v2 v3; do
    target_create "$v" --portals 2 --luns 1
    iscsi_login "$v"
    dm=$(wait_lun_map "$v" 1 2)
    make_pattern "$LAB_STATE/pat-$v" 1
    write_pattern "$dm" "$LAB_STATE/pat-$v" 1 buffered
    props_json "$v" 1 >"props-$v.json"
    device_info_json "/dev/$dm" "$(lun_wwn "$v" 1)" "$(lun_wwn "$v" 1)" >"di-$v.json"
    start_brick brick_pid disconnect "props-$v.json" --device-info "di-$v.json"
    kill_after $(( 20 + RANDOM % 1300 ))
    log "after the kill: sds=[$(lun_sds "$v" 1 | tr '\n' ' ')] map=[$(lun_dm "$v" 1)] sessions=[$(target_sids "$v" | tr '\n' ' ')] records=$(iscsiadm -m node 2>/dev/null | grep -cF "$(tiqn "$v")" || true)"
    read -r brick_rc _ <<<"$(run_brick disconnect "props-$v.json" --device-info "di-$v.json")"
    [ "$brick_rc" = 0 ] || fail "the disconnect of $v after the killed one exited $brick_rc"
    assert_lun_gone "$v" 1
    assert_target_gone "$v"
    assert_backing_has "$v" 1 "$LAB_STATE/pat-$v" 1
    target_destroy "$v"
    assert_host_clean
done

log "=== part 2: all paths down, writer queued"
target_create v4 --portals 2 --luns 1
iscsi_login v4
dm=$(wait_lun_map v4 1 2)
make_pattern "$LAB_STATE/pat4" 1
make_pattern "$LAB_STATE/pat4b" 1
props_json v4 1 >props4.json
device_info_json "/dev/$dm" "$(lun_wwn v4 1)" "$(lun_wwn v4 1)" >di4.json
target_down v4
wait_sessions_failed v4
start_queued_writer "$dm" "$LAB_STATE/pat4" 2
DD_PID=$WRITER_PID
write_dirty "$dm" "$LAB_STATE/pat4b" 6
start_brick brick_pid disconnect props4.json --device-info di4.json
kill_after $(( 200 + RANDOM % 2800 ))
log "after the kill: sds=[$(lun_sds v4 1 | tr '\n' ' ')] map=[$(lun_dm v4 1)] sessions=[$(target_sids v4 | tr '\n' ' ')]"
target_up v4
[ -z "$(target_sids v4)" ] || wait_sessions_up v4
if [ -n "$STUCK_PID" ]; then
    wait_until 60 "the killed brick to die once the paths are back" sh -c "! kill -0 $STUCK_PID"
    log "killed brick is gone"
fi
wait_until 60 "the queued writer to finish" sh -c "! kill -0 $DD_PID"
rc=0; wait "$DD_PID" || rc=$?
[ "$rc" = 0 ] || fail "the queued write failed (dd exit $rc) though the paths came back: its data was lost"
log "ok: the queued write completed once the paths were back"
if [ -n "$(lun_dm v4 1)" ]; then
    wait_paths_active v4 1 "$(lun_sds v4 1 | count_lines)"
fi
read -r brick_rc _ <<<"$(run_brick disconnect props4.json --device-info di4.json)"
[ "$brick_rc" = 0 ] || fail "the disconnect after the killed one (paths back) exited $brick_rc"
assert_lun_gone v4 1
assert_target_gone v4
assert_host_clean
assert_backing_has v4 1 "$LAB_STATE/pat4" 2
assert_backing_has v4 1 "$LAB_STATE/pat4b" 6
