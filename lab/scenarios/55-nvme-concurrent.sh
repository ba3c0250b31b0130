#!/bin/bash
# 16 volumes (8 subsystems x 2 namespaces, 2 portals) connected by 16 concurrent brick processes,
# then disconnected by 16 more: 16 heads over 16 shared controllers, then a clean host.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup

for s in 1 2 3 4 5 6 7 8; do nvme_sub_create "c$s" 2 2 8; done
pids=()
for s in 1 2 3 4 5 6 7 8; do for k in 1 2; do
    nvme_props "c$s" "$k" 1 2 >"c$s-$k.json"
    ( "$BRICK" connect "c$s-$k.json" >"c$s-$k.info" 2>"c$s-$k.err" ) &
    pids+=($!)
done; done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" = 0 ] || { cat ./*.err >&2; nvme_fail "a concurrent connect failed"; }
for s in 1 2 3 4 5 6 7 8; do
    [ "$(nvme_ctrls "c$s" | wc -l)" = 2 ] || nvme_fail "c$s has $(nvme_ctrls "c$s" | wc -l) controllers, not 2"
    for k in 1 2; do
        h=$(nvme_head "c$s" "$k")
        grep -q "\"/dev/$h\"" "c$s-$k.info" || nvme_fail "c$s-$k: device_info $(cat "c$s-$k.info") is not /dev/$h"
    done
done
log "ok: 16 volumes connected at once, 16 controllers"
pids=()
for s in 1 2 3 4 5 6 7 8; do for k in 1 2; do
    ( "$BRICK" disconnect "c$s-$k.json" --device-info "c$s-$k.info" >/dev/null 2>"c$s-$k.err" ) &
    pids+=($!)
done; done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" = 0 ] || { cat ./*.err >&2; nvme_fail "a concurrent disconnect failed"; }
assert_nvme_clean
