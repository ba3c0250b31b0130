#!/bin/bash
# brick cleanup of NVMe-oF leftovers beside a live NVMe volume holding data:
#   - gone: a volume connected, then its namespace removed from the target (a terminate
#     without a disconnect): its controller stays, with no namespace;
#   - a replicated volume (md RAID1 over r1 and r2) whose replicas' namespaces were both
#     removed from their targets while a process had the array open (udev's `mdadm -If` stops
#     an array whose last member goes, here within a second, but not an open one): the array
#     has no member left, r1's and r2's controllers no namespace.
# While the array is open, a listing leaves it alone, naming the opener. Once it is closed,
# `brick cleanup --json` must list exactly the leftovers and change nothing; `--apply` removes
# exactly them; the live volume keeps its controller and every byte; its disconnect then leaves
# nothing.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup
modprobe -a md_mod raid1

# kinds JSON: the leftovers of a cleanup report, one "kind name" per line, sorted. wwids entries
# are left out: earlier scenarios of a full run leave entries of no device in /etc/multipath/wwids
# (lab 70 covers them), and this scenario makes none.
kinds() {
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for l in r["found"]:
    k = l["kind"]
    if k == "wwid":
        continue
    name = {"nvme_controller": lambda: l["controller"]["name"], "md_array": lambda: l["md"],
            "map": lambda: l["map"]["dev"]}.get(k, lambda: "?")()
    print(k, name)
' "$1" | sort
}

for s in live gone r1 r2; do nvme_sub_create "$s" 1 1; done
nvme_props live 1 >live.json
nvme_props gone 1 >gone.json
printf '{"vol_uuid": "11111111-2222-4333-8444-555555555555", "alias": "vol-c", "replica_count": 2, "volume_replicas": [
  {"target_nqn": "%s", "vol_uuid": "%s", "portals": [["127.0.0.1", 4420, "tcp"]]},
  {"target_nqn": "%s", "vol_uuid": "%s", "portals": [["127.0.0.1", 4420, "tcp"]]}]}\n' \
    "$(nqn_of r1)" "$(nvme_ns_uuid r1 1)" "$(nqn_of r2)" "$(nvme_ns_uuid r2 1)" >rep.json

live=$(nvme_connect_ok live.json live_info.json)
make_pattern "$LAB_STATE/pat" 1
write_pattern "$live" "$LAB_STATE/pat" 2 fsync
nvme_connect_ok gone.json gone_info.json >/dev/null
md=$(nvme_connect_ok rep.json rep_info.json)
case $md in md*) ;; *) nvme_fail "device_info names /dev/$md, not an md array" ;; esac
live_ctrl=$(nvme_ctrls live)
want=$( { echo "md_array $md"; for s in gone r1 r2; do echo "nvme_controller $(nvme_ctrls "$s")"; done; } | sort)

( exec 7<"/dev/$md"; exec sleep 600 ) &
holder=$!
for s in gone r1 r2; do nvme_ns_remove "$s" 1; done
udevadm settle -t 10 || true
log "/dev/$md after its legs went: $(cat "/sys/block/$md/md/array_state" 2>/dev/null) members: $(cd "/sys/block/$md/md" && echo dev-*)"
for m in "/sys/block/$md/md"/dev-*; do
    [ -e "$m" ] && log "  ${m##*/}: state $(cat "$m/state" 2>/dev/null), block $(readlink "$m/block" 2>/dev/null) exists: $([ -e "$m/block" ] && echo yes || echo no)"
done

"$BRICK" cleanup --grace 1 --json >open.json 2>/dev/null || nvme_fail "brick cleanup --json (array open) exited $?"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
why = [w for l, w in r["left_alone"] if l["kind"] == "md_array" and l["md"] == sys.argv[2]]
assert why and "process" in why[0], r
print(why[0])
' open.json "$md" >&2 || nvme_fail "the open array is not left alone, with its opener"
log "ok: the open array with no member is left alone"
kill "$holder"; wait "$holder" 2>/dev/null || true
[ -e "/sys/block/$md/md" ] || nvme_fail "/dev/$md went by itself once closed (nothing left over to test)"

snapshot() { ls /sys/class/nvme /sys/block | tr '\n' ' '; }
before=$(snapshot)
read -r brick_rc _ <<<"$(run_brick cleanup --grace 1)"
[ "$brick_rc" = 0 ] || nvme_fail "brick cleanup (list) exited $brick_rc"
"$BRICK" cleanup --grace 1 --json >list.json 2>/dev/null || nvme_fail "brick cleanup --json exited $?"
kinds list.json >got.txt
echo "$want" >want.txt
diff want.txt got.txt >&2 || nvme_fail "the listing is not exactly the NVMe leftovers"
[ "$(snapshot)" = "$before" ] || nvme_fail "the listing changed the host"
log "ok: the listing names exactly the leftovers ($(tr '\n' ',' <want.txt)) and changes nothing"

read -r brick_rc _ <<<"$(run_brick cleanup --grace 1 --apply)"
[ "$brick_rc" = 0 ] || nvme_fail "brick cleanup --apply exited $brick_rc"
for s in gone r1 r2; do
    [ -z "$(nvme_ctrls "$s")" ] || nvme_fail "a controller of $s is left: $(nvme_ctrls "$s")"
done
[ ! -e "/sys/block/$md/md" ] || nvme_fail "/dev/$md is still there"
[ "$(nvme_ctrls live)" = "$live_ctrl" ] || nvme_fail "the live volume's controller changed: $(nvme_ctrls live)"
assert_dev_reads "$live" "$LAB_STATE/pat" 2
log "ok: --apply removed exactly the leftovers; the live volume kept its controller and data"

read -r brick_rc _ <<<"$(run_brick disconnect live.json --device-info live_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick disconnect of the live volume exited $brick_rc"
assert_nvme_clean
