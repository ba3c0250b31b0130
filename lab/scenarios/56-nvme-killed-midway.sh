#!/bin/bash
# Disconnects killed (SIGKILL) at random points, then run again: a clean host, data kept.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup
RANDOM=${LAB_SEED:-$$}

make_pattern "$LAB_STATE/pat" 1
for k in 1 2 3; do
    nvme_sub_create "k$k" 1 2
    nvme_props "k$k" 1 1 2 >"k$k.json"
    d=$(nvme_connect_ok "k$k.json" "k$k.info")
    write_pattern "$d" "$LAB_STATE/pat" "$k" buffered
done
for k in 1 2 3; do
    delay=$(( RANDOM % 1500 ))
    "$BRICK" disconnect "k$k.json" --device-info "k$k.info" >/dev/null 2>&1 &
    pid=$!
    sleep "$(awk -v d="$delay" 'BEGIN{printf "%.3f", d/1000}')"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "disconnect of k$k killed after ${delay} ms"
done
for k in 1 2 3; do
    read -r brick_rc _ <<<"$(run_brick disconnect "k$k.json" --device-info "k$k.info")"
    [ "$brick_rc" = 0 ] || nvme_fail "rerun of the disconnect of k$k exited $brick_rc"
done
assert_nvme_clean
for k in 1 2 3; do assert_nvme_backing_has "k$k" 1 "$LAB_STATE/pat" "$k"; done
