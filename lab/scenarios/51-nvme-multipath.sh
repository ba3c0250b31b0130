#!/bin/bash
# NVMe/TCP, two portals: one controller per portal, native multipath head with a path under each,
# ANA states shown by brick inspect; extend after the backing file grows; disconnect: clean, data
# kept.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup

nvme_sub_create v2 1 2
nvme_props v2 1 1 2 >props.json
dev=$(nvme_connect_ok props.json device_info.json)
[ "$dev" = "$(nvme_head v2 1)" ] || nvme_fail "device_info names /dev/$dev, not the head"
[ "$(nvme_ctrls v2 | wc -l)" = 2 ] || nvme_fail "expected 2 controllers: $(nvme_ctrls v2 | tr '\n' ' ')"
for c in $(nvme_ctrls v2); do
    [ "$(cat "/sys/class/nvme/$c/state")" = live ] || nvme_fail "$c is not live"
    compgen -G "/sys/class/nvme/$c/nvme*c*n1" >/dev/null || nvme_fail "no path of the head under $c"
done
echo non-optimized >"$NVMET/ports/2/ana_groups/1/ana_state"
for c in $(nvme_ctrls v2); do echo 1 >"/sys/class/nvme/$c/rescan_controller"; done
wait_until 20 "a path in ANA state non-optimized" sh -c "cat /sys/class/nvme/*/nvme*c*n1/ana_state | grep -qx non-optimized"
"$BRICK" inspect --protocol nvmeof >inspect.txt || nvme_fail "brick inspect failed"
cat inspect.txt >&2
{ grep -q "ana optimized" inspect.txt && grep -q "ana non-optimized" inspect.txt; } || nvme_fail "inspect does not show both ANA states"
"$BRICK" inspect --protocol nvmeof --json | grep -q '"ana_state": "non-optimized"' || nvme_fail "inspect --json has no ana_state"
log "ok: two live controllers, one head, ANA states shown"

make_pattern "$LAB_STATE/pat" 2
write_pattern "$dev" "$LAB_STATE/pat" 3 buffered

truncate -s 48M "$(nvme_ns_backing v2 1)"
echo 1 >"$NVMET/subsystems/$(nqn_of v2)/namespaces/1/revalidate_size"
size=$("$BRICK" extend props.json) || nvme_fail "brick extend failed"
[ "$size" = $((48 * 1024 * 1024)) ] || nvme_fail "brick extend printed $size, not 48 MiB"
[ "$(cat "/sys/block/$dev/size")" = $((48 * 2048)) ] || nvme_fail "/dev/$dev is not 48 MiB"
log "ok: extend printed $size"

read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick disconnect exited $brick_rc"
assert_nvme_clean
assert_nvme_backing_has v2 1 "$LAB_STATE/pat" 3
