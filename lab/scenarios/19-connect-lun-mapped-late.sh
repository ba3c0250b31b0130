#!/bin/bash
# A LUN the target maps only after the attach began (some arrays map a LUN to the initiator a few
# seconds late), and a LUN the target does not offer at all. brick scans for the LUN again, 1 s,
# 2 s, then 4 s apart, until its device deadline (20 s): the late LUN is attached on both paths
# and its data kept; the missing one fails by the deadline, says which LUN, and leaves the host
# as it was.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 1
iqn=$(tiqn v1)
lun_dir=$C/iscsi/$iqn/tpgt_1/lun/lun_1
backstore=$(lun_backstore v1 1)
# The target and its portals are up; LUN 1 is not mapped yet.
rm "$lun_dir/v1_lun1"
rmdir "$lun_dir"
log "LUN 1 of $iqn unmapped"

# Map it once both sessions are up and a second has gone by: brick's first scan (right after
# each login) has found nothing by then.
(
    for _ in $(seq 300); do
        [ "$(target_sids v1 | count_lines)" -ge 2 ] && break
        sleep 0.1
    done
    sleep 1.5
    mkdir "$lun_dir"
    ln -s "$backstore" "$lun_dir/v1_lun1"
    log "LUN 1 of $iqn mapped"
) &
mapper=$!
dm=$(connect_map v1 1)
wait "$mapper"
assert_lun_present v1 1 2
log "ok: the LUN mapped after the logins is attached on both paths"
write_disconnect_keeps v1 1 "$dm"

# LUN 7 does not exist on the target: the connect fails by the deadline and leaves nothing.
props_json v1 7 >props7.json
t0=$(date +%s)
set +e
NO_COLOR=1 bounded 90 "$BRICK" -v connect props7.json >/dev/null 2>missing.log
rc=$?
set -e
secs=$(($(date +%s) - t0))
sed 's/^/    brick| /' missing.log >&2
[ "$rc" != 0 ] || fail "connect of a LUN the target does not offer succeeded"
[ "$rc" != 124 ] || fail "connect of a LUN the target does not offer did not end within 90 s"
[ "$secs" -lt 45 ] || fail "connect of a missing LUN took ${secs}s (device deadline 20 s)"
grep -q "offers no LUN 7" missing.log || fail "the error does not say that the target offers no LUN 7"
log "ok: connect of LUN 7 refused after ${secs}s (exit $rc)"
assert_host_clean
