#!/bin/bash
# One of a volume's two paths is down (its portal stopped answering; its session is in recovery)
# when the volume is detached, as on a flaky network. The data written through the map without a
# sync goes out on the live path, so a plain disconnect must succeed in bounded time and leave a
# clean host: the map, both SCSI devices (the one in recovery too), both sessions and both node
# records go, and the data is on the target. The LUN reports a volatile write cache (as arrays
# do), so the kernel sends SYNCHRONIZE CACHE when a disk is deleted: on the path in recovery that
# command cannot be answered.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 1 --tpg-per-portal
echo 1 >"$(lun_backstore v1 1)/attrib/emulate_write_cache"
dm=$(connect_map v1 1)
for d in $(lun_sds v1 1); do
    log "$d: $(cat "/sys/block/$d/device/scsi_disk/"*/cache_type)"
done

make_pattern "$LAB_STATE/pat" 2
write_pattern "$dm" "$LAB_STATE/pat" 5 buffered

portal_down v1 2
wait_one_session_failed v1

read -r brick_rc brick_secs <<<"$(run_brick --timeout 150 disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || fail "disconnect with one path down exited $brick_rc"
awk -v s="$brick_secs" 'BEGIN{exit !(s < 40)}' || fail "disconnect with one path down took ${brick_secs}s"
log "ok: disconnected in ${brick_secs}s with one path down"
assert_host_clean
assert_backing_has v1 1 "$LAB_STATE/pat" 5
