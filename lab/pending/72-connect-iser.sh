#!/bin/bash
# iSER over soft-RoCE on the loopback: rdma_rxe gives lo an RDMA device (rxe0; it binds to lo on
# this kernel, so no traffic leaves 127.0.0.0/8), LIO's ib_isert serves the target's portal as
# iSER too. `brick connect --iface iser` makes the node record on the iser interface and the
# session over ib_iser (transport iser in sysfs and in `brick inspect`); a connect with the
# default interface does not reuse that session. The disconnect leaves a clean host and the data.
set -euo pipefail
. "$LAB_DIR/lib.sh"

modprobe -a rdma_rxe ib_isert ib_iser
rdma link show rxe0 >/dev/null 2>&1 || rdma link add rxe0 type rxe netdev lo
trap 'rdma link delete rxe0 2>/dev/null || true' EXIT
target_create is --luns 1 --no-multipath
echo 1 >"$C/iscsi/$(tiqn is)/tpgt_1/np/$(portal 1)/iser"
props_json is 1 1 >props.json
read -r brick_rc _ <<<"$(run_brick connect --single-path --iface iser props.json)"
[ "$brick_rc" = 0 ] || fail "brick connect --iface iser exited $brick_rc"
"$BRICK" connect --single-path --iface iser props.json >device_info.json 2>/dev/null ||
    fail "second connect failed"
sid=$(target_sids is)
[ "$(echo "$sid" | count_lines)" = 1 ] || fail "not one session to is: $sid"
host_no=$(basename "$(readlink -f "/sys/class/iscsi_session/session$sid/device/..")" | sed 's/^host//')
driver=$(cat "/sys/class/scsi_host/host$host_no/proc_name")
[ "$driver" = ib_iser ] || fail "session $sid runs over $driver, not ib_iser"
[ "$(cat "/sys/class/iscsi_session/session$sid/ifacename")" = iser ] || fail "session $sid is not on the iser iface"
iscsiadm -m session 2>/dev/null | grep -q "^iser: \[$sid\]" || fail "iscsiadm does not list session $sid as iser"
"$BRICK" inspect --json | grep -q '"transport": "iser"' || fail "brick inspect does not show transport iser"
sd=$(lun_sds is 1)
log "ok: session $sid over ib_iser (iface iser), /dev/$sd"
write_disconnect_keeps is 1 "$sd"
