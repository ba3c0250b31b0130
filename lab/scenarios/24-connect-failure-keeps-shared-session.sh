#!/bin/bash
# A failed connect must not log out a session that another connect took over in the meantime.
# Connect X names LUN 7, which the target does not offer: X logs in on both portals and rescans
# under the per-target lock until its 20-s device deadline, then fails and undoes what it made.
# Connect Y of LUN 1 on the same target starts while X rescans: it waits for the lock, then
# reuses X's sessions. X must fail, Y must succeed, and afterwards Y's map, paths, sessions and
# node records are there and work; Y's disconnect then leaves a clean host.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create s1 --portals 2 --luns 1
props_json s1 7 >props-x.json
props_json s1 1 >props-y.json
[ -z "$(target_sids s1)" ] || fail "sessions to s1 before the connects"

log "start: connect X (LUN 7, not offered)"
NO_COLOR=1 bounded 90 "$BRICK" -v connect props-x.json >x.out 2>x.err &
xpid=$!
# Y must be waiting for the lock before X's deadline: start it once X has both sessions (X then
# holds both target locks while it rescans for ~20 s).
wait_until 30 "X's two sessions" sh -c "[ \"\$(ls /sys/class/iscsi_session | wc -l)\" -ge 2 ]"
sidsx=$(target_sids s1 | tr '\n' ' ')
sleep 1
kill -0 "$xpid" 2>/dev/null || fail "X ended before Y started (see x.err below): $(cat x.err)"
log "X has sessions $sidsx and is still rescanning; start: connect Y (LUN 1)"
NO_COLOR=1 bounded 90 "$BRICK" -v connect props-y.json >device_info.json 2>y.err &
ypid=$!

set +e
wait "$xpid"; xrc=$?
wait "$ypid"; yrc=$?
set -e
sed 's/^/    brick X| /' x.err >&2
sed 's/^/    brick Y| /' y.err >&2
log "X exited $xrc, Y exited $yrc; Y's device_info: $(tr -d '\n' <device_info.json)"
if [ "$xrc" = 124 ] || [ "$yrc" = 124 ]; then fail "a connect did not end within 90 s"; fi
[ "$xrc" != 0 ] || fail "connect X of LUN 7 (not offered) succeeded"
grep -q "offers no LUN 7" x.err || fail "connect X did not fail for LUN 7 missing (the race did not happen as designed)"
[ "$yrc" = 0 ] || fail "connect Y of LUN 1 failed (exit $yrc) beside X's failed connect"
log "ok: X failed (LUN 7 not offered), Y connected"

sleep 2   # let anything X's undo may still do settle
dm=$(lun_dm s1 1)
[ -n "$dm" ] || fail "Y's map is gone after X's failed connect"
grep -q "\"path\": *\"/dev/$dm\"" device_info.json || fail "Y's device_info does not name its map /dev/$dm"
assert_lun_present s1 1 2
n=$(target_sids s1 | count_lines)
[ "$n" = 2 ] || fail "$n session(s) to s1 after X failed, expected Y's 2 (X's were $sidsx, now $(target_sids s1 | tr '\n' ' '))"
n=$(iscsiadm -m node 2>/dev/null | grep -cF "$(tiqn s1)" || true)
[ "$n" = 2 ] || fail "$n node record(s) for s1 after X failed, expected 2"
log "ok: Y's map $dm, 2 paths, sessions $(target_sids s1 | tr '\n' ' ')(X had $sidsx), 2 node records"
wait_paths_active s1 1 2 20
make_pattern "$LAB_STATE/pat" 1
write_pattern "$dm" "$LAB_STATE/pat" 3 direct
assert_dev_reads "$dm" "$LAB_STATE/pat" 3
assert_backing_has s1 1 "$LAB_STATE/pat" 3

props_json s1 1 >props.json
disconnect_clean
