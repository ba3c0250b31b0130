#!/bin/bash
# bench/diag/cpu-by-program.sh: where the CPU goes while brick connects N new volumes one after
# the other (a W3 like the benchmark's, with the brick CLI), and in the udev work left after.
# A lab scenario: run it with
#
#     lab/run bench/diag/cpu-by-program.sh        # BRICK_BIN=... to measure another build
#
# (N=8 volumes by default; LAB_SCENARIO_TIMEOUT=1200 for more). It prints to its log
# (target/lab/<run>/cpu-by-program.log):
#   - wall time of the N connects, and busy/idle CPU ticks (1/100 s, both vCPUs);
#   - CPU and count of every program that exited meanwhile, by name (BSD process accounting,
#     acct(2): it catches the short-lived ones, iscsiadm, the brick process, udev's helpers),
#     with the part spent in the kernel on their behalf (system time: a write to a `scan` or
#     `delete` file runs the kernel's SCSI scan or removal in the writer's context);
#   - CPU of the long-lived daemons (iscsid, multipathd, udevd and its workers);
#   - the kernel's block uevents (each one makes udevd run its rules: sd add/change, dm add/change).
# Figures vary by 20% or more between VM runs (TCG on a shared machine): compare counts, or
# builds in one run, not CPU seconds across runs.
set -euo pipefail
. "$LAB_DIR/lib.sh"
N=${N:-8}
for i in $(seq -w 1 "$N"); do
    target_create c$i --portals 2 --luns 1 --size 8
    props_json c$i 1 >c$i.json
done
udevadm settle -t 120
sleep 2

cat >acct.py <<'PY'
# acct.py on FILE | off | report FILE: kernel process accounting (acct(2), struct acct_v3)
import collections, ctypes, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
if sys.argv[1] == "on":
    open(sys.argv[2], "wb").close()
    sys.exit(0 if libc.acct(sys.argv[2].encode()) == 0 else ctypes.get_errno())
if sys.argv[1] == "off":
    libc.acct(None)
    sys.exit(0)
def comp_t(c):  # 13-bit mantissa, 3-bit base-8 exponent, in 1/100 s
    return (c & 0x1fff) << (3 * (c >> 13))
cpu, sys_, n = collections.Counter(), collections.Counter(), collections.Counter()
data = open(sys.argv[2], "rb").read()
for off in range(0, len(data) - 63, 64):
    f = struct.unpack_from("<BBHIIIIIIf8H16s", data, off)
    if f[1] != 3:
        continue
    comm = f[-1].split(b"\0")[0].decode(errors="replace")
    cpu[comm] += comp_t(f[10]) + comp_t(f[11])
    sys_[comm] += comp_t(f[11])
    n[comm] += 1
print("  %d processes exited, %.2f s of CPU" % (sum(n.values()), sum(cpu.values()) / 100))
for comm, t in cpu.most_common(20):
    print("    %-16s x%-5d %6.2f s (in the kernel %.2f s)" % (comm, n[comm], t / 100, sys_[comm] / 100))
PY
busy() { head -1 /proc/stat | awk '{print $2+$3+$4+$7+$8 " busy " $5+$6 " idle"}'; }
# CPU ticks of the long-lived daemons, udevd's workers summed under udevd
daemons() {
    local p
    for p in /proc/[0-9]*; do
        { read -r line <"$p/stat"; } 2>/dev/null || continue
        local comm=${line#*(}; comm=${comm%)*}
        case $comm in iscsid|multipathd|systemd-udevd|udev-worker|"(udev-worker)") ;; *) continue ;; esac
        set -- ${line#*) }
        echo "$comm $((${12} + ${13}))"
    done | sed 's/^(udev-worker)/systemd-udevd/; s/^udev-worker/systemd-udevd/' |
        awk '{t[$1]+=$2} END {for (k in t) print k, t[k]}' | sort
}
delta() { join "$1" "$2" | awk '{printf "    %-14s %6.2f s\n", $1, ($3-$2)/100}'; }

udevadm monitor -k -s block >uevents 2>&1 &
mon=$!
sleep 0.5
python3 acct.py on "$LAB_STATE/pacct1"
daemons >d0; b0=$(busy); t0=$(date +%s%N)
for i in $(seq -w 1 "$N"); do
    "$BRICK" connect c$i.json >/dev/null 2>err$i || { cat err$i; fail "connect c$i"; }
done
t1=$(date +%s%N); b1=$(busy); daemons >d1
python3 acct.py off
python3 acct.py on "$LAB_STATE/pacct2"
udevadm settle -t 600
t2=$(date +%s%N); b2=$(busy); daemons >d2
python3 acct.py off
sleep 0.5; kill $mon; wait $mon 2>/dev/null || true

log "$N connects: $(( (t1 - t0) / 1000000 )) ms; ticks before: $b0; after: $b1"
log "programs that exited during the connects:"; python3 acct.py report "$LAB_STATE/pacct1" >&2
log "daemons during the connects:"; delta d0 d1 >&2
log "then udev settled in $(( (t2 - t1) / 1000000 )) ms; ticks after: $b2"
log "programs that exited while udev settled:"; python3 acct.py report "$LAB_STATE/pacct2" >&2
log "daemons while udev settled:"; delta d1 d2 >&2
log "block uevents (whole run), per volume:"
grep -E '^KERNEL\[' uevents | awk -v n="$N" '{k=$3; sub(/.*\//, "", k)
        if (k ~ /^sd/) k = "sd"; else if (k ~ /^dm-/) k = "dm"; else sub(/[0-9]+$/, "", k)
        c[$2 " " k]++}
    END {for (x in c) printf "    %-12s %5.1f\n", x, c[x]/n}' | sort >&2

for i in $(seq -w 1 "$N"); do "$BRICK" disconnect c$i.json >/dev/null 2>&1 || fail "disconnect c$i"; done
assert_host_clean
