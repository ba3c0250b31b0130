#!/bin/bash
# bench/diag/login-growth.sh: why W5's connect grows with the host. Times two parallel bare
# `iscsiadm -m node -T IQN -p PORTAL --login` of one target (both portals, node records made
# beforehand, manual scan) in three states of the host: nothing else attached ("zero"), 16
# other sessions without a disk ("sessions": 8 targets x 2 portals, W5's background at 128
# volumes without its LUNs scanned), and the same sessions with their 256 disks in 128 maps
# ("disks"). In each state, R (6) timed logins, then one under strace: the syscall counts of
# iscsiadm (-c) and iscsid's timeline (ISCSID-TIMELINE lines=N: its syscalls during the login).
# In "zero" and "disks", one brick connect of a two-portal volume, timed plainly and once more
# under strace (strace's cost per syscall, about 5-10 ms under TCG, swamps that trace's times).
# A lab scenario: LAB_SCENARIO_TIMEOUT=2400 lab/run bench/diag/login-growth.sh
set -euo pipefail
. "$LAB_DIR/lib.sh"
R=${R:-6}
target_create m1 --portals 2 --luns 1 --size 8
for t in 1 2 3 4 5 6 7 8; do target_create g$t --portals 2 --luns 16 --size 8; done
now() { echo "$EPOCHREALTIME"; }
mk() {  # mk NAME: node records, manual startup and scan, both portals
    local iqn p; iqn=$(tiqn "$1")
    for p in 1 2; do
        iscsiadm -m node -o new -T "$iqn" -p "$(portal $p)" >/dev/null
        iscsiadm -m node -T "$iqn" -p "$(portal $p)" -o update -n node.session.scan -v manual
        iscsiadm -m node -T "$iqn" -p "$(portal $p)" -o update -n node.startup -v manual
    done
}
mk m1
miqn=$(tiqn m1)
target_create b1 --portals 2 --luns 1 --size 8
props_json b1 1 >b1.json
traced_brick() {  # one brick connect and disconnect of b1 under strace, and one without
    local label=$1 t0 t1
    t0=$(now); "$BRICK" -v connect b1.json >b1.di 2>"$label.plain.log"; t1=$(now)
    echo "BRICK-PLAIN $label connect $(awk "BEGIN{print $t1 - $t0}")"
    "$BRICK" disconnect b1.json --device-info b1.di 2>/dev/null
    udevadm settle -t 60
    strace -f -tt -T -o "$label.brick.st" "$BRICK" -v connect b1.json >b1.di 2>"$label.brick.log"
    "$BRICK" disconnect b1.json --device-info b1.di 2>/dev/null
    echo "BRICK-TRACE $label lines=$(wc -l <"$label.brick.st")"
    grep -v -E 'futex|sched_yield|mprotect|madvise|rt_sig|sigaltstack|munmap|mmap' "$label.brick.st" | cut -c1-170 | sed -n '1,600p'
    sed 's/^/  log| /' "$label.brick.log" | cut -c1-200
    udevadm settle -t 60
}
measure() {
    local label=$1 i t0 t1 p
    udevadm settle -t 600
    sleep 3
    for i in $(seq 1 "$R"); do
        t0=$(now)
        for p in 1 2; do iscsiadm -m node -T "$miqn" -p "$(portal $p)" --login >/dev/null & done
        wait
        t1=$(now)
        echo "LOGIN $label $i $(awk "BEGIN{print $t1 - $t0}")"
        iscsiadm -m node -T "$miqn" --logout >/dev/null
        udevadm settle -t 60
    done
    # one traced login: iscsiadm's syscalls (summary and timeline) and iscsid's timeline
    strace -f -tt -T -o "$label.iscsid.st" -p "$(pidof iscsid)" & sp=$!
    sleep 1
    strace -f -c -o "$label.iscsiadm.sum" iscsiadm -m node -T "$miqn" -p "$(portal 1)" --login >/dev/null
    iscsiadm -m node -T "$miqn" --logout >/dev/null
    strace -f -tt -T -o "$label.iscsiadm.st" iscsiadm -m node -T "$miqn" -p "$(portal 1)" --login >/dev/null
    sleep 1; kill $sp; wait $sp 2>/dev/null || true
    iscsiadm -m node -T "$miqn" --logout >/dev/null
    echo "SUMMARY $label"; head -25 "$label.iscsiadm.sum"
    echo "ISCSIADM-TIMELINE $label lines=$(wc -l <"$label.iscsiadm.st")"
    awk '{print $2, $3}' "$label.iscsiadm.st" | cut -c1-150 | sed -n '1,400p'
    echo "ISCSID-TIMELINE $label lines=$(wc -l <"$label.iscsid.st")"
    cut -c1-160 "$label.iscsid.st" | sed -n '1,400p'
    echo "LOADAVG $label $(cat /proc/loadavg)"
}
measure zero
traced_brick zero
for t in 1 2 3 4 5 6 7 8; do mk g$t; done
for t in 1 2 3 4 5 6 7 8; do for p in 1 2; do iscsiadm -m node -T "$(tiqn g$t)" -p "$(portal $p)" --login >/dev/null; done; done
echo "SESSIONS $(ls /sys/class/iscsi_session | wc -l)"
measure sessions
for s in /sys/class/iscsi_session/session*; do
    h=$(readlink -f "$s" | grep -o 'host[0-9]*' | head -1)
    echo "- - -" >"/sys/class/scsi_host/$h/scan"
done
udevadm settle -t 900
count() { local f n=0; for f in "$@"; do [ -e "$f" ] && n=$((n + 1)); done; echo $n; }
n=0; for _ in $(seq 1 120); do n=$(count /sys/block/dm-*); [ "$n" -ge 128 ] && break; sleep 5; done
echo "DISKS $(count /sys/block/sd*) MAPS $n"
measure disks
traced_brick disks
