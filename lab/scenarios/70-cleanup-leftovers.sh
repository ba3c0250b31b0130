#!/bin/bash
# brick cleanup beside a live volume with a writer. Leftovers made on purpose:
#   - what a killed os-brick disconnect leaves: os-brick 7.1.1 itself (lab/lib/osbrick.py,
#     privileged calls in-process, as Nova runs it) connects two 2-path volumes, osbs and osbr
#     (a map each), then disconnects each in a process of its own (forked, imports done), which
#     is SIGKILLed right before one command, caught in os-brick's execute: osbs before
#     `iscsiadm ... -p PORTAL2 --logout` (it had flushed the map, deleted both disks, logged
#     out of portal 1 and deleted its record, set portal 2's record to manual startup: left, an
#     idle session), osbr before `... -p PORTAL2 --op delete` (left, a manual record with no
#     session). os-brick goes portal by portal (startup manual, logout, delete); a kill before
#     portal 2's "manual" would leave portal 2's record as its connect made it, node.startup
#     automatic, which cleanup keeps (set to start at boot). What each kill left is read from
#     sysfs, the node records and the wwids file, and must be exactly what cleanup lists of
#     that volume;
#   - targets deleted under live sessions: gone (one path, not multipathed): its disk goes
#     transport-offline (recovery_tmo 5 s); gonemp (2 paths, a map nothing holds open): both
#     paths transport-offline, multipathd calls them failed;
#   - a map whose paths were deleted by hand (echo 1 > device/delete) while it was open, its
#     sessions then idle, its queued I/O failed (fail_if_no_path) so that nothing holds it.
# A listing must name exactly those and change nothing, and the paths it calls dead must be the
# ones multipathd calls failed; --apply must remove exactly them (a second pass takes what the
# first one's removals left over: the dead disks' sessions, the maps' WWIDs); the live volume
# keeps its map, paths, sessions and every byte its writer wrote.
set -euo pipefail
. "$LAB_DIR/lib.sh"

# kinds JSON: the leftovers of a cleanup report, one "kind name [portal]" per line, sorted.
kinds() {
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for l in r["found"]:
    k = l["kind"]
    name = {"map": lambda: l["map"]["dev"], "disk": lambda: l["disk"]["name"],
            "session": lambda: l["session"]["iqn"].split(":")[-1] + " " + l["session"]["portal"],
            "node_record": lambda: l["iqn"].split(":")[-1] + " " + l["portal"],
            "wwid": lambda: l["wwid"]}[k]()
    print(k, name)
' "$1" | sort
}

# dead_paths JSON: the disks a cleanup report calls dead: its disks and the paths of its maps.
dead_paths() {
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for l in r["found"]:
    if l["kind"] == "disk":
        print(l["disk"]["name"])
    elif l["kind"] == "map":
        print("\n".join(l["map"]["slaves"]))
' "$1" | grep . | sort || true
}

# left_of NAME LUN: what is left of the LUN's volume, read from sysfs, the node records and the
# wwids file (not from brick), in the form of kinds: its disks, its map, the sessions to the
# target, the target's records with no session (node_record when node.startup is manual, else
# boot_record), and its WWID in the wwids file.
left_of() {
    local name=$1 lun=$2 iqn p d wwn
    iqn=$(tiqn "$name")
    for d in $(lun_sds "$name" "$lun"); do echo "disk $d"; done
    d=$(lun_dm "$name" "$lun")
    [ -z "$d" ] || echo "map $d"
    local sessions
    sessions=$(iscsiadm -m session 2>/dev/null | awk -v q="$iqn" '$4 == q { sub(/,.*/, "", $3); print $3 }')
    for p in $sessions; do echo "session $name $p"; done
    for p in $(iscsiadm -m node 2>/dev/null | awk -v q="$iqn" '$2 == q { sub(/,.*/, "", $1); print $1 }'); do
        grep -qx "$p" <<<"$sessions" && continue
        if iscsiadm -m node -T "$iqn" -p "$p" | grep -qx 'node.startup = manual'; then
            echo "node_record $name $p"
        else
            echo "boot_record $name $p"
        fi
    done
    wwn=$(lun_wwn "$name" "$lun")
    if grep -qx "/$wwn/" /etc/multipath/wwids 2>/dev/null; then echo "wwid $wwn"; fi
}

# mp_paths: multipathd's paths, "DEV MAP DM-STATE CHECKER-STATE" ("[orphan]" for a path in no map).
mp_paths() { timeout 10 multipathd show paths raw format "%d %m %t %T"; }
# mp_failed: of mp_paths' lines, the paths in a map that multipathd calls failed (device-mapper
# state) or faulty (its checker), sorted.
mp_failed() { awk '$2 != "[orphan]" && ($3 == "failed" || $4 == "faulty") { print $1 }' | sort; }
# words: the lines of standard input on one line.
words() { paste -sd' '; }

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

# os-brick's volumes, connected by os-brick (one process, as a Nova compute host runs it), which
# then waits to disconnect them.
target_create osbs --portals 2 --luns 1
target_create osbr --portals 2 --luns 1
osbrick=""   # set by osbrick_start
osbrick_start osbrick osbs osbr
# a failure before the kills leaves no os-brick process behind (its workers die with it)
trap 'kill -KILL $osbrick 2>/dev/null || true' EXIT
for n in osbs osbr; do
    m=$(wait_lun_map "$n" 1 2)
    grep -q "\"path\": \"/dev/$m\"" "osb-$n-di.json" || fail "os-brick's device_info of $n does not name its map $m"
done

target_create gone --luns 1 --no-multipath
iscsi_login gone
gone_sd=$(wait_lun_sds gone 1 1)
target_create gonemp --portals 2 --luns 1
gonemp_dm=$(connect_map gonemp 1)
gonemp_wwn=$(lun_wwn gonemp 1)
gonemp_sds=$(lun_sds gonemp 1 | sort)
for s in $(target_sids gone) $(target_sids gonemp); do
    echo 5 >"/sys/class/iscsi_session/session$s/recovery_tmo"
done
target_destroy gone
target_destroy gonemp

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
# Pathless, the map queues I/O (queue_if_no_path): a udev worker that probes it after
# multipathd's reload then waits on it, holding it open for as long (seen in the lab under load:
# cleanup rightly left the map, open count 1, a udev-worker in D state). Failing the queued I/O
# lets every such reader go: the leftover is a pathless map that nobody holds.
byhand_name=$(<"/sys/block/$byhand_dm/dm/name")
dmsetup message "$byhand_name" 0 fail_if_no_path
map_unheld() { (($(dmsetup info -c --noheadings -o open "$1") == 0)); }
wait_until 30 "nobody to hold $byhand_dm" map_unheld "$byhand_name"

osbrick_kill_at "$osbrick" osbs "-T $(tiqn osbs) -p $(portal 2) --logout"
osbrick_kill_at "$osbrick" osbr "-T $(tiqn osbr) -p $(portal 2) --op delete"
wait "$osbrick" || fail "os-brick exited $? after its killed disconnects"
left_of osbs 1 | sort >osbs.left
left_of osbr 1 | sort >osbr.left
log "left by os-brick's killed disconnects: $(cat osbs.left osbr.left | tr '\n' ';')"
[ "$(grep -v '^wwid ' osbs.left)" = "session osbs $(portal 2)" ] ||
    fail "os-brick's killed disconnect of osbs did not leave exactly portal 2's session"
iscsiadm -m node -T "$(tiqn osbs)" -p "$(portal 2)" | grep -qx 'node.startup = manual' ||
    fail "os-brick did not set osbs's record at portal 2 to manual before it was killed"
[ "$(grep -v '^wwid ' osbr.left)" = "node_record osbr $(portal 2)" ] ||
    fail "os-brick's killed disconnect of osbr did not leave exactly portal 2's record"

for d in $gone_sd $gonemp_sds; do
    wait_until 40 "/dev/$d to go transport-offline" grep -qx transport-offline "/sys/block/$d/device/state"
done
gonemp_failed() { [ "$(mp_paths | mp_failed | words)" = "$(words <<<"$gonemp_sds")" ]; }
wait_until 30 "multipathd to call the paths of $gonemp_dm failed" gonemp_failed
[ -e "/sys/block/$byhand_dm" ] || fail "multipathd removed $byhand_dm once let go: no leftover map to test"
[ -e "/sys/block/$gonemp_dm" ] || fail "$gonemp_dm went with its target: no map with dead paths to test"
log "leftovers made: os-brick's ($(cat osbs.left osbr.left | tr '\n' ';')), transport-offline /dev/$gone_sd, map $gonemp_dm with dead paths $(words <<<"$gonemp_sds"), map $byhand_dm with no path"

# The live volume's writer: O_DIRECT writes of a pattern, over and over, during the cleanup.
make_pattern "$LAB_STATE/live.pat" 4
( for _ in $(seq 30); do dd if="$LAB_STATE/live.pat" of="/dev/$dm" bs=1M seek=8 oflag=direct status=none || exit 1; done ) &
writer=$!

before=$(snapshot)
read -r brick_rc _ <<<"$(run_brick cleanup --json >/dev/null)"
"$BRICK" cleanup --json >list.json 2>/dev/null || fail "brick cleanup (list) exited $?"
mp_paths >mp-paths.txt
kinds list.json >got.txt
{
    printf '%s\n' "disk $gone_sd" "map $gonemp_dm" "map $byhand_dm" \
        "session byhand $(portal 1)" "session byhand $(portal 2)"
    for d in $gonemp_sds; do echo "disk $d"; done
    cat osbs.left osbr.left
} | sort >want.txt
diff want.txt got.txt >&2 || fail "the listing is not exactly the leftovers"
[ "$(snapshot)" = "$before" ] || fail "the listing changed the host"
log "ok: the listing names exactly the leftovers and changes nothing"

# multipath-tools' own view: the dead paths cleanup names that multipathd monitors are exactly
# the paths multipathd calls failed (the others are outside any map: gone's, blacklisted).
dead_paths list.json >dead.txt
mp_failed <mp-paths.txt >mp-failed.txt
awk '$2 != "[orphan]" { print $1 }' mp-paths.txt | { grep -Fx -f dead.txt || true; } | sort >dead-in-mpd.txt
diff mp-failed.txt dead-in-mpd.txt >&2 ||
    fail "cleanup's dead paths are not the ones multipathd calls failed: $(words <mp-paths.txt)"
[ "$(words <mp-failed.txt)" = "$(words <<<"$gonemp_sds")" ] ||
    fail "multipathd calls failed: $(words <mp-failed.txt); expected the paths of $gonemp_dm"
log "ok: the paths cleanup calls dead that multipathd monitors are the ones it calls failed: $(words <mp-failed.txt)"

read -r brick_rc _ <<<"$(run_brick cleanup --apply)"
[ "$brick_rc" = 0 ] || fail "brick cleanup --apply exited $brick_rc"
"$BRICK" cleanup --json >list2.json 2>/dev/null || fail "second listing failed"
kinds list2.json >got.txt
printf '%s\n' "session gone $(portal 1)" "session gonemp $(portal 1)" "session gonemp $(portal 2)" \
    "wwid $byhand_wwn" "wwid $gonemp_wwn" | sort >want.txt
diff want.txt got.txt >&2 || fail "after --apply, not exactly what its removals left over"
read -r brick_rc _ <<<"$(run_brick cleanup --apply)"
[ "$brick_rc" = 0 ] || fail "second brick cleanup --apply exited $brick_rc"
"$BRICK" cleanup --json >list3.json 2>/dev/null
[ -z "$(kinds list3.json)" ] || fail "still left over: $(kinds list3.json | tr '\n' ';')"

for t in osbs osbr gone gonemp byhand; do assert_no_session "$t"; assert_no_node "$t"; done
for t in osbs osbr byhand; do
    [ -z "$(left_of "$t" 1)" ] || fail "left of $t: $(left_of "$t" 1 | words)"
done
for d in "$byhand_dm" "$gonemp_dm" "$gone_sd" $gonemp_sds; do
    [ ! -e "/sys/block/$d" ] || fail "/dev/$d remains"
done
grep -q "$byhand_wwn" /etc/multipath/wwids 2>/dev/null && fail "the wwids file still lists $byhand_wwn"
log "ok: every leftover removed"

wait "$writer" || fail "the live volume's writer failed during the cleanup"
assert_lun_present live 1 2
[ "$(target_sids live | count_lines)" = 2 ] || fail "a session of the live volume went"
assert_dev_reads "$dm" "$LAB_STATE/live.pat" 8
mv live.json props.json; mv live-di.json device_info.json
disconnect_clean
assert_backing_has live 1 "$LAB_STATE/live.pat" 8
