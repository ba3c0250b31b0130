#!/bin/bash
# All paths down with a writer's data queued: --force must leave a clean host in bounded time
# (exiting non-zero: data was lost), and --force --ignore-errors must do the same and exit 0.
# The writer (O_DIRECT) is waited for until it is really queued (blocked in the kernel); a
# buffered write sits dirty in the map's page cache beside it.
set -euo pipefail
. "$LAB_DIR/lib.sh"
BOUND=${LAB_FORCE_BOUND:-90}
# udev never stays paused after this scenario, however it ends (see one_case).
trap 'udevadm control --start-exec-queue 2>/dev/null || true' EXIT

# one_case NAME EXPECT_RC ARGS...: a volume with all paths down and a writer queued on its map,
# then "brick disconnect ARGS".
one_case() {
    local name=$1 expect=$2; shift 2
    target_create "$name" --portals 2 --luns 1
    iscsi_login "$name"
    local dm; dm=$(wait_lun_map "$name" 1 2)
    make_pattern "$LAB_STATE/pat-$name" 1
    make_pattern "$LAB_STATE/pat2-$name" 1
    # udev's probe of a map whose paths just failed gets stuck on the dead paths, and every
    # lseek of the map then waits behind it (seen: a udev worker in folio_wait, the writers in
    # blkdev_llseek): the writers would never get their I/O queued. udev runs no event while
    # they are set up, then runs the probe, stuck as on any host, before brick runs.
    udevadm settle -t 30 >/dev/null 2>&1 || true
    udevadm control --stop-exec-queue 2>/dev/null || true
    target_down "$name"
    wait_sessions_failed "$name"
    # an O_DIRECT writer really queued (blocked in the kernel), and a buffered write left dirty
    # in the map's page cache (the writer holds the map open: its close syncs nothing)
    start_queued_writer "$dm" "$LAB_STATE/pat-$name" 2
    local dd_pid=$WRITER_PID
    write_dirty "$dm" "$LAB_STATE/pat2-$name" 6
    udevadm control --start-exec-queue 2>/dev/null || true
    props_json "$name" 1 >"props-$name.json"
    device_info_json "/dev/$dm" "$(lun_wwn "$name" 1)" "$(lun_wwn "$name" 1)" >"device_info-$name.json"
    read -r brick_rc brick_secs <<<"$(run_brick --timeout 150 disconnect "props-$name.json" --device-info "device_info-$name.json" "$@")"
    [ "$brick_rc" != 124 ] || fail "brick disconnect $* did not finish in 150 s"
    awk -v s="$brick_secs" -v b="$BOUND" 'BEGIN{exit !(s < b)}' || fail "brick disconnect $* took ${brick_secs}s (bound ${BOUND}s)"
    if [ "$expect" = 0 ]; then
        [ "$brick_rc" = 0 ] || fail "brick disconnect $* exited $brick_rc, expected 0"
    else
        [ "$brick_rc" != 0 ] || fail "brick disconnect $* exited 0 though queued data was lost"
    fi
    log "ok: brick disconnect $* exited $brick_rc in ${brick_secs}s"
    assert_lun_gone "$name" 1
    assert_target_gone "$name"
    wait_until 30 "the writer to be released" sh -c "! kill -0 $dd_pid"
    local rc=0; wait "$dd_pid" || rc=$?
    log "ok: writer released (dd exit $rc)"
    target_destroy "$name"
}

one_case v1 nonzero --force
assert_host_clean
one_case v2 0 --force --ignore-errors
assert_host_clean
