#!/bin/bash
# Every portal of a volume gone with a writer's data queued on the head: a plain disconnect
# refuses in bounded time and removes nothing; once the portals are back the write completes and
# is on the target. Then the same with --force: a clean host in bounded time, the writer released.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup
bound=${LAB_FAIL_BOUND:-90}

nvme_sub_create dn 1 2
nvme_props dn 1 1 2 >props.json
dev=$(nvme_connect_ok props.json device_info.json)
make_pattern "$LAB_STATE/pat" 1

# writer_queued: ports down, an O_DIRECT writer started and seen blocked.
writer_queued() {
    nvme_port_down dn 1; nvme_port_down dn 2
    wait_until 30 "both controllers connecting" sh -c "! grep -qx live /sys/class/nvme/nvme*/state"
    dd if="$LAB_STATE/pat" of="/dev/$dev" bs=1M seek="$1" oflag=direct status=none &
    WRITER=$!
    sleep 3
    kill -0 "$WRITER" 2>/dev/null || nvme_fail "the writer was not queued (it ended)"
    log "writer $WRITER queued on /dev/$dev"
}

writer_queued 4
read -r brick_rc brick_secs <<<"$(run_brick --timeout "$bound" disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 3 ] || nvme_fail "plain disconnect with every path down exited $brick_rc, not 3 (refused)"
[ "$(nvme_ctrls dn | wc -l)" = 2 ] || nvme_fail "a refused disconnect removed controllers"
[ -e "/sys/block/$dev" ] || nvme_fail "a refused disconnect removed /dev/$dev"
nvme_port_up dn 1; nvme_port_up dn 2
wait_until 60 "the queued writer to finish" sh -c "! kill -0 $WRITER 2>/dev/null"
wait "$WRITER" || nvme_fail "the queued write failed once the portals were back"
log "ok: refused, nothing removed, the queued write completed"
read -r brick_rc brick_secs <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "disconnect after the portals came back exited $brick_rc"
assert_nvme_clean
assert_nvme_backing_has dn 1 "$LAB_STATE/pat" 4

dev=$(nvme_connect_ok props.json device_info.json)
writer_queued 6
read -r brick_rc brick_secs <<<"$(run_brick --timeout "$bound" disconnect props.json --device-info device_info.json --force)"
[ "$brick_rc" != 124 ] || nvme_fail "forced disconnect did not finish in ${bound}s"
log "forced disconnect exited $brick_rc after ${brick_secs}s"
assert_nvme_clean
wait_until 30 "the writer to be released" sh -c "! kill -0 $WRITER 2>/dev/null"
if wait "$WRITER"; then nvme_fail "the writer succeeded though every path was gone"; fi
log "ok: forced: clean host, writer released with an error"
nvme_port_up dn 1; nvme_port_up dn 2
read -r brick_rc brick_secs <<<"$(run_brick --timeout "$bound" disconnect props.json --device-info device_info.json --force --ignore-errors)"
[ "$brick_rc" = 0 ] || nvme_fail "--force --ignore-errors on a clean host exited $brick_rc"
