#!/bin/bash
# NVMe/TCP, one portal: brick connect makes one controller in-process with bounded ctrl_loss_tmo,
# returns the namespace's head found by UUID; a second connect reuses it; brick properties shows
# the host NQN the controller used; paths; disconnect: no controller left, data on the target.
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
[ "$(cat "/sys/class/nvme/$c/ctrl_loss_tmo")" = 600 ] || nvme_fail "ctrl_loss_tmo is $(cat "/sys/class/nvme/$c/ctrl_loss_tmo"), not 600"
[ "$(cat "/sys/class/nvme/$c/reconnect_delay")" = 5 ] || nvme_fail "reconnect_delay is not 5"
{ [ -s /etc/nvme/hostnqn ] && [ -s /etc/nvme/hostid ]; } || nvme_fail "no /etc/nvme/hostnqn or hostid made"
[ "$(cat "/sys/class/nvme/$c/hostnqn")" = "$(cat /etc/nvme/hostnqn)" ] || nvme_fail "controller's hostnqn is not /etc/nvme/hostnqn"
[ "$(cat "/sys/class/nvme/$c/hostid")" = "$(cat /etc/nvme/hostid)" ] || nvme_fail "controller's hostid is not /etc/nvme/hostid"
"$BRICK" properties >props-out.json || nvme_fail "brick properties failed"
grep -q "\"nqn\": \"$(cat /etc/nvme/hostnqn)\"" props-out.json || nvme_fail "brick properties: no nqn $(cat /etc/nvme/hostnqn): $(cat props-out.json)"
grep -q '"nvme_native_multipath": true' props-out.json || nvme_fail "brick properties: nvme_native_multipath not true"
log "ok: one controller, bounded ctrl_loss_tmo, host identity as reported"

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
