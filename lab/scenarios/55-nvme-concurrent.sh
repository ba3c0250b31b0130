#!/bin/bash
# 16 volumes (8 subsystems x 2 namespaces, 2 ports) connected by 16 concurrent brick processes:
# 16 controllers shared by the two volumes of each subsystem, each device_info the right head.
# 16 concurrent disconnects: all exit 0 and, while the target still exports the other
# namespace of a subsystem, keep its controllers; once the target unmaps every namespace, 16
# concurrent reruns leave a clean host.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup

# all_at_once ACTION: brick ACTION for the 16 volumes at once; fails if one fails.
all_at_once() {
    local pids=() p s k rc=0
    for s in 1 2 3 4 5 6 7 8; do for k in 1 2; do
        if [ "$1" = connect ]; then
            ( "$BRICK" connect "c$s-$k.json" >"c$s-$k.info" 2>"c$s-$k.err" ) &
        else
            ( "$BRICK" disconnect "c$s-$k.json" --device-info "c$s-$k.info" >/dev/null 2>"c$s-$k.err" ) &
        fi
        pids+=($!)
    done; done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    [ "$rc" = 0 ] || { cat ./*.err >&2; nvme_fail "a concurrent $1 failed"; }
}

for s in 1 2 3 4 5 6 7 8; do
    nvme_sub_create "c$s" 2 2 8
    for k in 1 2; do nvme_props "c$s" "$k" 1 2 >"c$s-$k.json"; done
done
all_at_once connect
for s in 1 2 3 4 5 6 7 8; do
    [ "$(nvme_ctrls "c$s" | wc -l)" = 2 ] || nvme_fail "c$s has $(nvme_ctrls "c$s" | wc -l) controllers, not 2"
    for k in 1 2; do
        h=$(nvme_head "c$s" "$k")
        grep -q "\"/dev/$h\"" "c$s-$k.info" || nvme_fail "c$s-$k: device_info $(cat "c$s-$k.info") is not /dev/$h"
    done
done
log "ok: 16 volumes connected at once, 16 controllers"
all_at_once disconnect
[ "$(ls /sys/class/nvme | wc -l)" = 16 ] || nvme_fail "controllers of exported namespaces were deleted"
for s in 1 2 3 4 5 6 7 8; do for k in 1 2; do nvme_ns_remove "c$s" "$k"; done; done
all_at_once disconnect
assert_nvme_clean
