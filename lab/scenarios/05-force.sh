#!/bin/bash
# All paths down with a writer's data queued: --force must leave a clean host in bounded time
# (exiting non-zero: data was lost), and --force --ignore-errors must do the same and exit 0.
# The writer (O_DIRECT) is waited for until it is really queued (blocked in the kernel); a
# buffered write sits dirty in the map's page cache beside it.
set -euo pipefail
. "$LAB_DIR/lib.sh"
BOUND=${LAB_FORCE_BOUND:-90}

# one_case NAME EXPECT_RC ARGS...: a volume with all paths down and a writer queued on its map,
# then "brick disconnect ARGS".
one_case() {
    local name=$1 expect=$2; shift 2
    target_create "$name" --portals 2 --luns 1
    iscsi_login "$name"
    local dm; dm=$(wait_lun_map "$name" 1 2)
    make_pattern "$LAB_STATE/pat-$name" 1
    make_pattern "$LAB_STATE/pat2-$name" 1
    # A buffered write left dirty in the map's page cache, made while the paths still answer:
    # once they are down, udev's probe of the failed map can hold the block device (seen: a
    # udev worker stuck in folio_wait, every later open's lseek waiting behind it), and a
    # buffered write then blocks instead of returning.
    udevadm settle -t 30 >/dev/null 2>&1 || true
    write_dirty "$dm" "$LAB_STATE/pat2-$name" 6
    target_down "$name"
    wait_sessions_failed "$name"
    # an O_DIRECT writer really queued (blocked in the kernel)
    start_queued_writer "$dm" "$LAB_STATE/pat-$name" 2
    local dd_pid=$WRITER_PID
    props_json "$name" 1 >"props-$name.json"
    device_info_json "/dev/$dm" "$(lun_wwn "$name" 1)" "$(lun_wwn "$name" 1)" >"device_info-$name.json"
    run_brick --timeout 150 disconnect "props-$name.json" --device-info "device_info-$name.json" "$@"
    [ "$BRICK_RC" != 124 ] || fail "brick disconnect $* did not finish in 150 s"
    awk -v s="$BRICK_SECS" -v b="$BOUND" 'BEGIN{exit !(s < b)}' || fail "brick disconnect $* took ${BRICK_SECS}s (bound ${BOUND}s)"
    if [ "$expect" = 0 ]; then
        [ "$BRICK_RC" = 0 ] || fail "brick disconnect $* exited $BRICK_RC, expected 0"
    else
        [ "$BRICK_RC" != 0 ] || fail "brick disconnect $* exited 0 though queued data was lost"
    fi
    log "ok: brick disconnect $* exited $BRICK_RC in ${BRICK_SECS}s"
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
