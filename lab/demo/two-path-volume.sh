#!/bin/bash
# The main job, shown step by step: attach a two-path volume with brick, write to it, inspect it,
# detach it, and check on the real kernel and the target's backing file what happened.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

step() { printf '\n==> %s\n' "$*"; [ -n "${RESULTS:-}" ] && printf '[%8s] demo: %s\n' "$(uptime_s)" "$*" >>"$RESULTS/progress"; return 0; }

step "1/6 LIO target with two portals (127.0.0.1 and 127.0.0.2) and one 32 MiB LUN"
target_create demo --portals 2 --luns 1 2>&1
props_json demo 1 >vol.json
cat vol.json

step "2/6 brick connect vol.json"
t0=$(date +%s%N)
"$BRICK" connect vol.json >dev.json
echo "connected in $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b-a)/1e9}') s; device_info:"
cat dev.json
dev=$(sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' dev.json)

step "3/6 write 4 MiB through $dev (buffered, no sync: brick must flush it)"
head -c $((4 << 20)) /dev/urandom >pattern
dd if=pattern of="$dev" bs=1M count=4 status=none
echo "written"

step "4/6 brick inspect"
"$BRICK" inspect

step "5/6 brick disconnect vol.json --device-info dev.json"
t0=$(date +%s%N)
"$BRICK" disconnect vol.json --device-info dev.json
echo "disconnected in $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b-a)/1e9}') s"

step "6/6 what the kernel and the target show now"
"$BRICK" inspect
assert_host_clean 2>&1
cmp -n $((4 << 20)) pattern "$(lun_backing demo 1)" && echo "the 4 MiB are in the target's backing file, byte for byte"
