#!/bin/bash
# NVMe/TCP, one portal: brick connect makes one controller in-process that reconnects for ever
# (ctrl_loss_tmo off, os-brick's -1),
# returns the namespace's head found by UUID; a second connect reuses it; brick properties shows
# the host NQN the controller used; paths; disconnect: no controller left, data on the target.
# Then `connect --single-path` on two portals with the kernel's native multipath on: one
# controller, the device is the subsystem's head; disconnect: clean, data on the target.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup
rm -f /etc/nvme/hostnqn /etc/nvme/hostid

nvme_sub_create v1 1 1
nvme_props v1 1 >props.json
dev=$(nvme_connect_ok props.json device_info.json)
log "device_info: $(tr -d '\n ' <device_info.json)"
{ [ -n "$dev" ] && [ "$dev" = "$(nvme_head v1 1)" ]; } || nvme_fail "device_info names /dev/$dev, not v1 ns 1's head ($(nvme_head v1 1))"
[ "$(nvme_ctrls v1 | wc -l)" = 1 ] || nvme_fail "expected 1 controller: $(nvme_ctrls v1 | tr '\n' ' ')"
c=$(nvme_ctrls v1)
[ "$(cat "/sys/class/nvme/$c/ctrl_loss_tmo")" = off ] || nvme_fail "ctrl_loss_tmo is $(cat "/sys/class/nvme/$c/ctrl_loss_tmo"), not off"
[ "$(cat "/sys/class/nvme/$c/reconnect_delay")" = 5 ] || nvme_fail "reconnect_delay is not 5"
{ [ -s /etc/nvme/hostnqn ] && [ -s /etc/nvme/hostid ]; } || nvme_fail "no /etc/nvme/hostnqn or hostid made"
[ "$(cat "/sys/class/nvme/$c/hostnqn")" = "$(cat /etc/nvme/hostnqn)" ] || nvme_fail "controller's hostnqn is not /etc/nvme/hostnqn"
[ "$(cat "/sys/class/nvme/$c/hostid")" = "$(cat /etc/nvme/hostid)" ] || nvme_fail "controller's hostid is not /etc/nvme/hostid"
"$BRICK" properties >props-out.json || nvme_fail "brick properties failed"
grep -q "\"nqn\": \"$(cat /etc/nvme/hostnqn)\"" props-out.json || nvme_fail "brick properties: no nqn $(cat /etc/nvme/hostnqn): $(cat props-out.json)"
grep -q '"nvme_native_multipath": true' props-out.json || nvme_fail "brick properties: nvme_native_multipath not true"
log "ok: one controller, ctrl_loss_tmo off, host identity as reported"

make_pattern "$LAB_STATE/pat" 2
write_pattern "$dev" "$LAB_STATE/pat" 1 buffered
"$BRICK" paths props.json | grep -q "/dev/$dev" || nvme_fail "brick paths does not list /dev/$dev"
"$BRICK" inspect | grep -q "controller $c tcp traddr=127.0.0.1" || nvme_fail "brick inspect does not show $c"

read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick disconnect exited $brick_rc"
assert_nvme_clean
assert_nvme_backing_has v1 1 "$LAB_STATE/pat" 1
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "a second disconnect (nothing left) exited $brick_rc"

# --single-path while the kernel's native multipath is on (nvme_core multipath=Y, the default),
# the subsystem on two portals: one controller, to the first portal; the device is the
# subsystem's head nvmeSnX (the controller shows only the hidden path nvmeScCnX, no block device
# of its own), found at once (brick waited for a device under the controller and timed out); a
# second connect reuses the controller; disconnect: clean, data on the target.
[ "$(cat /sys/module/nvme_core/parameters/multipath)" = Y ] || nvme_fail "nvme_core multipath is not Y"
nvme_sub_create v2 1 2
nvme_props v2 1 1 2 >props2.json
read -r brick_rc brick_secs <<<"$(run_brick connect --single-path props2.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick connect --single-path exited $brick_rc after ${brick_secs}s"
awk -v s="$brick_secs" 'BEGIN{exit !(s < 10)}' || nvme_fail "brick connect --single-path took ${brick_secs}s"
"$BRICK" connect --single-path props2.json >device_info2.json 2>/dev/null || nvme_fail "second connect --single-path failed"
dev=$(sed -n 's/.*"path": *"\/dev\/\([^"]*\)".*/\1/p' device_info2.json)
log "device_info: $(tr -d '\n ' <device_info2.json)"
{ [ -n "$dev" ] && [ "$dev" = "$(nvme_head v2 1)" ]; } || nvme_fail "device_info names /dev/$dev, not v2 ns 1's head ($(nvme_head v2 1))"
[ -b "/dev/$dev" ] || nvme_fail "/dev/$dev is not a block device"
[ "$(nvme_ctrls v2 | wc -l)" = 1 ] || nvme_fail "expected 1 controller: $(nvme_ctrls v2 | tr '\n' ' ')"
c=$(nvme_ctrls v2)
grep -q "traddr=127.0.0.1," "/sys/class/nvme/$c/address" || nvme_fail "$c is not at the first portal: $(cat "/sys/class/nvme/$c/address")"
path=$(cd "/sys/class/nvme/$c" && ls -d nvme*c*n* 2>/dev/null | tr '\n' ' ')
[ -n "$path" ] || nvme_fail "$c shows no path of the head"
[ ! -e "/sys/class/nvme/$c/${c}n1" ] || nvme_fail "$c shows a namespace device of its own (native multipath off?)"
log "ok: one controller $c at the first portal, its hidden path ${path% }, device the head /dev/$dev in ${brick_secs}s"
write_pattern "$dev" "$LAB_STATE/pat" 3 buffered
read -r brick_rc _ <<<"$(run_brick disconnect props2.json --device-info device_info2.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick disconnect of the single-path volume exited $brick_rc"
assert_nvme_clean
[ ! -e "/sys/block/$dev" ] || nvme_fail "the head /dev/$dev is still there"
assert_nvme_backing_has v2 1 "$LAB_STATE/pat" 3
