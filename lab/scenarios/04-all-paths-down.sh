#!/bin/bash
# All paths down with a writer's data queued in the map: a plain disconnect must fail in bounded
# time and remove nothing (map and paths stay); once the paths are back the data reaches the
# target, and a second plain disconnect succeeds and leaves a clean host.
# Two writes while the paths are down: an O_DIRECT writer, waited for until it is really queued
# (blocked in the kernel), and a buffered write left dirty in the map's page cache, which only
# brick's flushes push out. The target's backing files are read without any flush of the
# scenario's own: what they hold got there through brick and the target.
set -euo pipefail
. "$LAB_DIR/lib.sh"
BOUND=${LAB_FAIL_BOUND:-90}

target_create v1 --portals 2 --luns 1
iscsi_login v1
dm=$(wait_lun_map v1 1 2)
sds=$(lun_sds v1 1 | tr '\n' ' ')
log "LUN 1: map $dm on $sds"
make_pattern "$LAB_STATE/pat1" 1
make_pattern "$LAB_STATE/pat2" 1

target_down v1
wait_sessions_failed v1
start_queued_writer "$dm" "$LAB_STATE/pat1" 2
DD_PID=$WRITER_PID
write_dirty "$dm" "$LAB_STATE/pat2" 6

props_json v1 1 >props.json
device_info_json "/dev/$dm" "$(lun_wwn v1 1)" "$(lun_wwn v1 1)" >device_info.json
read -r brick_rc brick_secs <<<"$(run_brick --timeout 150 disconnect props.json --device-info device_info.json)"
[ "$brick_rc" != 0 ] || fail "brick disconnect succeeded with all paths down and data queued"
[ "$brick_rc" != 124 ] || fail "brick disconnect did not finish in 150 s with all paths down"
awk -v s="$brick_secs" -v b="$BOUND" 'BEGIN{exit !(s < b)}' || fail "brick took ${brick_secs}s to fail (bound ${BOUND}s)"
log "ok: plain disconnect failed (rc $brick_rc) in ${brick_secs}s"
[ "$(lun_dm v1 1)" = "$dm" ] || fail "map $dm is gone (now: '$(lun_dm v1 1)')"
[ "$(lun_sds v1 1 | tr '\n' ' ')" = "$sds" ] || fail "paths changed from $sds to $(lun_sds v1 1 | tr '\n' ' ')"
[ "$(ls "/sys/block/$dm/slaves" | count_lines)" = 2 ] || fail "map $dm lost paths: $(ls "/sys/block/$dm/slaves")"
[ "$(target_sids v1 | count_lines)" = 2 ] || fail "sessions to v1 were removed"
log "ok: map $dm, its 2 paths and both sessions are still there"

target_up v1
wait_sessions_up v1
wait_paths_active v1 1 2
wait_until 60 "the queued writer to finish" sh -c "! kill -0 $DD_PID"
rc=0; wait "$DD_PID" || rc=$?
[ "$rc" = 0 ] || fail "the queued write failed (dd exit $rc) though the paths came back: its data was lost"
log "ok: the queued write completed once the paths were back"
assert_backing_has v1 1 "$LAB_STATE/pat1" 2

read -r brick_rc brick_secs <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || fail "second disconnect (paths back) exited $brick_rc"
assert_lun_gone v1 1
assert_target_gone v1
assert_host_clean
assert_backing_has v1 1 "$LAB_STATE/pat1" 2
assert_backing_has v1 1 "$LAB_STATE/pat2" 6
