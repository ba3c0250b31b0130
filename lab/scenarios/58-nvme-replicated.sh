#!/bin/bash
# A replicated volume (os-brick's volume_replicas): two subsystems, one namespace each, on two
# ports. connect attaches both and creates the md RAID1 (mdadm --create, named by alias); data
# written through it lands on both backing files; disconnect stops the array and leaves no
# controller; a second connect assembles the array from the replicas' superblocks and reads the
# data back; both replicas grow and extend grows the array; disconnect: clean. Then the
# replicas hold no md superblock and one of them an ext4 file system: connect refuses (exit 3),
# neither backing file changes by a byte, and no array or controller is left.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup
modprobe -a md_mod raid1

nvme_sub_create r1 1 1
nvme_sub_create r2 1 2
nvme_port_down r2 1
printf '{"vol_uuid": "11111111-2222-4333-8444-555555555555", "alias": "vol-r", "replica_count": 2, "volume_replicas": [
  {"target_nqn": "%s", "vol_uuid": "%s", "portals": [["127.0.0.1", 4420, "tcp"]]},
  {"target_nqn": "%s", "vol_uuid": "%s", "portals": [["127.0.0.2", 4420, "tcp"]]}]}\n' \
    "$(nqn_of r1)" "$(nvme_ns_uuid r1 1)" "$(nqn_of r2)" "$(nvme_ns_uuid r2 1)" >props.json

md=$(nvme_connect_ok props.json device_info.json)
log "device_info: $(tr -d '\n ' <device_info.json)"
case $md in md*) ;; *) nvme_fail "device_info names /dev/$md, not an md array" ;; esac
[ "$(cat "/sys/block/$md/md/level")" = raid1 ] || nvme_fail "/dev/$md is not raid1"
h1=$(nvme_head r1 1); h2=$(nvme_head r2 1)
{ [ -e "/sys/block/$md/slaves/$h1" ] && [ -e "/sys/block/$md/slaves/$h2" ]; } || nvme_fail "/dev/$md is not over $h1 and $h2: $(ls "/sys/block/$md/slaves")"
log "ok: /dev/$md raid1 over $h1 $h2"

make_pattern "$LAB_STATE/pat" 1
write_pattern "$md" "$LAB_STATE/pat" 4 fsync
for leg in "r1:$h1" "r2:$h2"; do
    name=${leg%%:*}; h=${leg#*:}
    off=$(cat "/sys/block/$md/md/dev-$h/offset")
    cmp -s -n "$(stat -c %s "$LAB_STATE/pat")" "$LAB_STATE/pat" "$(nvme_ns_backing "$name" 1)" -i "0:$((off * 512 + 4 * 1048576))" ||
        nvme_fail "backing file of $name does not hold the data (data offset $off sectors)"
done
log "ok: the data is on both replicas"

read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "brick disconnect exited $brick_rc"
[ ! -e "/sys/block/$md/md" ] || nvme_fail "/dev/$md is still there"
assert_nvme_clean

md=$(nvme_connect_ok props.json device_info.json)
case $md in md*) ;; *) nvme_fail "second connect: /dev/$md is not an md array" ;; esac
assert_dev_reads "$md" "$LAB_STATE/pat" 4
"$BRICK" paths props.json | grep -q "\"/dev/$md\"" || nvme_fail "brick paths does not give /dev/$md"

# Both replicas grow 32 to 48 MiB: extend rescans them and grows the array.
before=$(( $(cat "/sys/block/$md/size") * 512 ))
for r in r1 r2; do
    truncate -s 48M "$(nvme_ns_backing "$r" 1)"
    echo 1 >"$NVMET/subsystems/$(nqn_of "$r")/namespaces/1/revalidate_size"
done
size=$("$BRICK" extend props.json) || nvme_fail "brick extend failed"
{ [ "$size" = $(( $(cat "/sys/block/$md/size") * 512 )) ] && [ "$size" -ge $((before + 15 * 1048576)) ]; } ||
    nvme_fail "brick extend printed $size; /dev/$md was $before and is $(( $(cat "/sys/block/$md/size") * 512 ))"
log "ok: extend grew /dev/$md from $before to $size"
assert_dev_reads "$md" "$LAB_STATE/pat" 4
read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "second disconnect exited $brick_rc"
for x in /sys/block/md*; do [ -e "$x" ] && nvme_fail "an md array is left: ${x##*/}"; done
assert_nvme_clean

# No md superblock on either replica, a file system on one: an array created over them would
# write its superblock and bitmap into the file system (issue 26 item 4).
for r in r1 r2; do
    f=$(nvme_ns_backing "$r" 1)
    truncate -s 0 "$f"; truncate -s 48M "$f"
done
mkfs.ext4 -q -F "$(nvme_ns_backing r1 1)"
sums=$(cat "$(nvme_ns_backing r1 1)" "$(nvme_ns_backing r2 1)" | sha256sum)
read -r brick_rc _ <<<"$(run_brick connect props.json)"
[ "$brick_rc" = 3 ] || nvme_fail "connect over a replica with a file system exited $brick_rc, not 3"
[ "$(cat "$(nvme_ns_backing r1 1)" "$(nvme_ns_backing r2 1)" | sha256sum)" = "$sums" ] ||
    nvme_fail "the refused connect wrote to a replica"
for x in /sys/block/md*; do [ -e "$x" ] && nvme_fail "an md array is left: ${x##*/}"; done
log "ok: no array over a file system, both replicas unchanged"
assert_nvme_clean
