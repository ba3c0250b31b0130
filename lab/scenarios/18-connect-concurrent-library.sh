#!/bin/bash
# Eight volumes connected, then disconnected, all at once by one process through the library
# (brick-bench, built beside brick: one thread per call), as an agent or CSI plugin linking brick
# would: eight targets on the same two portals, so the calls' sendtargets discoveries to one
# portal overlap. Each discovery session needs its own ISID: LIO takes a login with the ISID of a
# session it has as that session's reinstatement and resets the first (red when the ISID was the
# process id alone: "Connection reset by peer", no path attached). Then nothing is left.
set -euo pipefail
. "$LAB_DIR/lib.sh"

bench=$(dirname "$BRICK")/brick-bench
[ -x "$bench" ] || fail "no brick-bench beside $BRICK (cargo build --release builds both)"
ops=()
for t in 1 2 3 4 5 6 7 8; do
    target_create "l$t" --portals 2 --luns 1
    ops+=("{\"op\":\"connect\",\"props\":$(props_json "l$t" 1),\"multipath\":true}")
done
batch() { # REQUESTS...: one parallel batch; its answer on stdout
    local IFS=,
    printf '{"op":"batch","parallel":true,"ops":[%s]}\n' "$*" | "$bench"
}
answer=$(batch "${ops[@]}")
python3 - "$answer" >infos.json <<'PY' || fail "a concurrent connect failed: $answer"
import json, sys
a = json.loads(sys.argv[1])
for r in a["results"]:
    if not r.get("ok"):
        sys.exit(1)
print(json.dumps([r["device_info"] for r in a["results"]]))
PY
# shellcheck disable=SC2016 # expanded by the inner sh
wait_until 60 "every map with both paths" sh -c '
    for d in /sys/block/dm-*; do [ "$(ls $d/slaves | wc -l)" = 2 ] || exit 1; done'
n=$(ls -d /sys/block/dm-* | wc -l); [ "$n" = 8 ] || fail "$n maps, expected 8"
n=$(ls /sys/class/iscsi_session | wc -l); [ "$n" = 16 ] || fail "$n sessions, expected 16"
log "ok: 8 volumes connected at once in one process: 8 maps, 16 sessions"

ops=()
for t in 1 2 3 4 5 6 7 8; do
    info=$(python3 -c 'import json,sys; print(json.dumps(json.load(open("infos.json"))[int(sys.argv[1])]))' $((t - 1)))
    ops+=("{\"op\":\"disconnect\",\"props\":$(props_json "l$t" 1),\"device_info\":$info}")
done
answer=$(batch "${ops[@]}")
echo "$answer" | grep -q '"ok":false' && fail "a concurrent disconnect failed: $answer"
assert_host_clean
