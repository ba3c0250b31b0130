#!/bin/bash
# brick cleanup beside a live volume with a writer. Leftovers made on purpose:
#   - what a killed os-brick disconnect leaves: a session with no device left on it (a target
#     whose LUN is no longer mapped to us), and a node record set to manual startup with no
#     session (os-brick sets manual before its logout; killed before it deletes the record);
#   - a target deleted under a live session: its disk goes transport-offline (recovery_tmo 5 s);
#   - a map whose paths were deleted by hand (echo 1 > device/delete) while it was open, its
#     sessions then idle.
# A listing must name exactly those and change nothing; --apply must remove exactly them (a
# second pass takes what the first one's removals left over: the dead disk's session, the
# map's WWID); the live volume keeps its map, paths, sessions and every byte its writer wrote.
set -euo pipefail
. "$LAB_DIR/lib.sh"

# kinds JSON: the leftovers of a cleanup report, one "kind name" per line, sorted.
kinds() {
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for l in r["found"]:
    k = l["kind"]
    name = {"map": lambda: l["map"]["dev"], "disk": lambda: l["disk"]["name"],
            "session": lambda: l["session"]["iqn"].split(":")[-1],
            "node_record": lambda: l["iqn"].split(":")[-1], "wwid": lambda: l["wwid"]}[k]()
    print(k, name)
' "$1" | sort
}

# Earlier scenarios' WWIDs stay in the wwids file (a reset does not clear it): start from none.
rm -f /etc/multipath/wwids
# snapshot: what a cleanup could change (sessions, disks with state and holders, maps with their
# paths, node records, the wwids file), as one checksum.
snapshot() {
    local x
    {
        ls /sys/class/iscsi_session
        for x in /sys/block/sd* /sys/block/dm-*; do
            [ -e "$x" ] || continue
            echo "${x##*/} $(cat "$x/device/state" "$x/dm/uuid" 2>/dev/null) $(ls "$x/holders" "$x/slaves" | tr '\n' ' ')"
        done
        iscsiadm -m node
        cat /etc/multipath/wwids
    } 2>/dev/null | md5sum
}

target_create live --portals 2 --luns 1
dm=$(connect_map live 1)
mv props.json live.json; mv device_info.json live-di.json

target_create idle --luns 0
iscsi_login idle
target_create rec
iscsiadm -m node -T "$(tiqn rec)" -p "$(portal 1)" -o new >/dev/null
iscsiadm -m node -T "$(tiqn rec)" -p "$(portal 1)" -o update -n node.startup -v manual

target_create gone --luns 1 --no-multipath
iscsi_login gone
gone_sd=$(wait_lun_sds gone 1 1)
gone_sid=$(target_sids gone)
echo 5 >"/sys/class/iscsi_session/session$gone_sid/recovery_tmo"
target_destroy gone
wait_until 40 "/dev/$gone_sd to go transport-offline" \
    grep -qx transport-offline "/sys/block/$gone_sd/device/state"

target_create byhand --portals 2 --luns 1
byhand_dm=$(connect_map byhand 1)
byhand_wwn=$(lun_wwn byhand 1)
# multipathd removes a map with its last path unless the map is open then (seen in the lab): a
# process holds it while its paths go, and lets go after.
( exec 9<"/dev/$byhand_dm"; exec sleep 600 ) &
holder=$!
for d in $(lun_sds byhand 1); do echo 1 >"/sys/block/$d/device/delete"; done
wait_until 20 "the paths of $byhand_dm to go" \
    sh -c "[ -z \"\$(ls /sys/block/$byhand_dm/slaves 2>/dev/null)\" ]"
kill "$holder"; wait "$holder" 2>/dev/null || true
sleep 2
[ -e "/sys/block/$byhand_dm" ] || fail "multipathd removed $byhand_dm once let go: no leftover map to test"
log "leftovers made: idle session, manual record, transport-offline /dev/$gone_sd, map $byhand_dm with no path"

# The live volume's writer: O_DIRECT writes of a pattern, over and over, during the cleanup.
make_pattern "$LAB_STATE/live.pat" 4
( for _ in $(seq 30); do dd if="$LAB_STATE/live.pat" of="/dev/$dm" bs=1M seek=8 oflag=direct status=none || exit 1; done ) &
writer=$!

before=$(snapshot)
read -r brick_rc _ <<<"$(run_brick cleanup --json >/dev/null)"
"$BRICK" cleanup --json >list.json 2>/dev/null || fail "brick cleanup (list) exited $?"
kinds list.json >got.txt
printf '%s\n' "disk $gone_sd" "map $byhand_dm" "node_record rec" "session byhand" "session byhand" "session idle" | sort >want.txt
diff want.txt got.txt >&2 || fail "the listing is not exactly the leftovers"
[ "$(snapshot)" = "$before" ] || fail "the listing changed the host"
log "ok: the listing names exactly the leftovers and changes nothing"

read -r brick_rc _ <<<"$(run_brick cleanup --apply)"
[ "$brick_rc" = 0 ] || fail "brick cleanup --apply exited $brick_rc"
"$BRICK" cleanup --json >list2.json 2>/dev/null || fail "second listing failed"
kinds list2.json >got.txt
printf '%s\n' "session gone" "wwid $byhand_wwn" | sort >want.txt
diff want.txt got.txt >&2 || fail "after --apply, not exactly what its removals left over"
read -r brick_rc _ <<<"$(run_brick cleanup --apply)"
[ "$brick_rc" = 0 ] || fail "second brick cleanup --apply exited $brick_rc"
"$BRICK" cleanup --json >list3.json 2>/dev/null
[ -z "$(kinds list3.json)" ] || fail "still left over: $(kinds list3.json | tr '\n' ';')"

for t in idle rec gone byhand; do assert_no_session "$t"; assert_no_node "$t"; done
[ ! -e "/sys/block/$byhand_dm" ] || fail "map $byhand_dm remains"
[ ! -e "/sys/block/$gone_sd" ] || fail "/dev/$gone_sd remains"
grep -q "$byhand_wwn" /etc/multipath/wwids 2>/dev/null && fail "the wwids file still lists $byhand_wwn"
log "ok: every leftover removed"

wait "$writer" || fail "the live volume's writer failed during the cleanup"
assert_lun_present live 1 2
[ "$(target_sids live | count_lines)" = 2 ] || fail "a session of the live volume went"
assert_dev_reads "$dm" "$LAB_STATE/live.pat" 8
mv live.json props.json; mv live-di.json device_info.json
disconnect_clean
assert_backing_has live 1 "$LAB_STATE/live.pat" 8
