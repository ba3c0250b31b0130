#!/bin/bash
# nvme_core loaded with multipath=N: brick connect on two portals makes one controller only and
# returns that controller's own namespace device (nvmeCnX, no head); disconnect: clean (also
# of the dm-multipath map multipathd may have built over it), data kept. nvme_core is loaded
# back with multipath=Y at the end.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup
reload_core() {
    nvme_reset
    local m
    for m in nvme_tcp nvme_rdma nvme_fabrics nvme nvme_core; do
        [ -d "/sys/module/$m" ] && rmmod "$m"
    done
    modprobe nvme-core multipath="$1"
    modprobe -a nvme-tcp nvme-fabrics
    log "nvme_core multipath=$(cat /sys/module/nvme_core/parameters/multipath)"
}
trap 'reload_core Y >/dev/null 2>&1 || true' EXIT
reload_core N
[ "$(cat /sys/module/nvme_core/parameters/multipath)" = N ] || nvme_fail "nvme_core multipath is not N"

nvme_sub_create sp 1 2
nvme_props sp 1 1 2 >props.json
read -r brick_rc _ <<<"$(run_brick connect props.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick connect exited $brick_rc"
"$BRICK" connect props.json >device_info.json 2>/dev/null || nvme_fail "second connect failed"
dev=$(sed -n 's/.*"path": *"\/dev\/\([^"]*\)".*/\1/p' device_info.json)
[ "$(nvme_ctrls sp | wc -l)" = 1 ] || nvme_fail "expected one controller: $(nvme_ctrls sp | tr '\n' ' ')"
c=$(nvme_ctrls sp)
[ -e "/sys/class/nvme/$c/$dev" ] || nvme_fail "/dev/$dev is not $c's namespace"
[ "$(cat "/sys/block/$dev/uuid")" = "$(nvme_ns_uuid sp 1)" ] || nvme_fail "/dev/$dev shows another uuid"
log "ok: one controller $c, device /dev/$dev"
make_pattern "$LAB_STATE/pat" 1
write_pattern "$dev" "$LAB_STATE/pat" 2 buffered
# multipathd (find_multipaths no) may build a dm-multipath map over the namespace: the volume's
# own multipath layer, which the disconnect must take away too (it was left, pathless, before
# brick refused held namespaces; then the disconnect refused, "held by dm-0").
maps_over() { ls "/sys/block/$dev/holders" 2>/dev/null | tr '\n' ' '; }
log "holders of /dev/$dev before the disconnect: $(maps_over)"
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick disconnect exited $brick_rc"
assert_nvme_clean
left=$(ls -d /sys/block/dm-* 2>/dev/null | tr '\n' ' ' || true)  # ls exits 2 when none is left
[ -z "$left" ] || nvme_fail "device-mapper devices left: $left"
assert_nvme_backing_has sp 1 "$LAB_STATE/pat" 2
