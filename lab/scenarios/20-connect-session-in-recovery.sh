#!/bin/bash
# A second volume of a target is attached while one of the target's two sessions is in recovery
# (its portal went down after the first volume was attached). The kernel scans nothing through a
# session in recovery (the scan returns at once): the connect must not take that for a LUN the
# target has yet to map and rescan until its 20-s device deadline. It attaches the volume on the
# live path at once and says which path failed and why. Once the portal is back, both volumes
# detach cleanly.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 2 --tpg-per-portal
dm1=$(connect_map v1 1)
log "LUN 1 on map $dm1"
cp props.json props1.json; cp device_info.json device_info1.json

portal_down v1 2
wait_one_session_failed v1

props_json v1 2 >props2.json
t0=$(date +%s%N)
set +e
NO_COLOR=1 bounded 150 "$BRICK" -v connect props2.json >device_info2.json 2>recovery.log
rc=$?
set -e
secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}')
sed 's/^/    brick| /' recovery.log >&2
[ "$rc" = 0 ] || fail "connect of LUN 2 exited $rc with one live path"
# Not the 20-s device deadline: the session in recovery fails its path at once.
awk -v s="$secs" 'BEGIN{exit !(s < 12)}' || fail "connect with a session in recovery took ${secs}s"
grep -q "path not attached.*127.0.0.2:3260.*in recovery" recovery.log ||
    fail "the warning does not name the path whose session is in recovery"
[ "$(lun_sds v1 2 | count_lines)" -ge 1 ] || fail "LUN 2 has no SCSI device"
dm2=$(lun_dm v1 2)
[ -n "$dm2" ] || fail "LUN 2 has no multipath map"
log "ok: LUN 2 attached in ${secs}s as $dm2 while a session was in recovery"

portal_up v1 2
wait_sessions_up v1 60
# Connecting again once the portal is back adds the missing path.
"$BRICK" connect props2.json >device_info2.json 2>/dev/null || fail "connect of LUN 2 again failed"
wait_lun_map v1 2 2 >/dev/null
assert_lun_present v1 2 2
cp props1.json props.json; cp device_info1.json device_info.json
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || fail "disconnect of LUN 1 exited $brick_rc"
cp props2.json props.json; cp device_info2.json device_info.json
disconnect_clean
