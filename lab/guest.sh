#!/bin/bash
# lab/guest.sh RESULTS SCENARIO...: runs inside the lab VM (as root, started by lab/run). Sets up
# the kernel (configfs, LIO, iSCSI, dm-multipath), iscsid and multipathd, then runs each scenario
# in turn with a clean target/initiator state, writing to RESULTS:
#   guest.log        this script's own log (setup, resets)
#   progress         one line per step, for the host to show while the VM runs
#   NAME.log         the scenario's stdout+stderr
#   NAME.status      "PASS SECONDS" or "FAIL SECONDS rc=N [timeout] [dirty]"
#   done             written last: the VM ran to the end
# Environment: BRICK (brick binary), LAB_SCENARIO_TIMEOUT (per scenario, s, default 240).
set -euo pipefail

# The whole script is one function, parsed before it runs: editing this file during a run
# cannot break the run.
main() {
RESULTS=$1; shift
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LAB_DIR RESULTS
export LAB_ADDRS=${LAB_ADDRS:-4}
export BRICK=${BRICK:?BRICK must name the brick binary}
SCEN_TIMEOUT=${LAB_SCENARIO_TIMEOUT:-240}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

exec >>"$RESULTS/guest.log" 2>&1
# shellcheck source=lab/lib.sh
. "$LAB_DIR/lib.sh"

progress() { printf '[%8s] %s\n' "$(uptime_s)" "$*" | tee -a "$RESULTS/progress" >&2; }

progress "guest up (kernel $(uname -r)), setting up"

# --- udevd: virtme-ng-init starts the host's systemd-udevd in the VM. It stays (LAB_UDEV=1, the
# default): multipathd 0.9.4 learns of paths and of its own maps only through udev events. With
# LAB_UDEV=0 it is stopped: faster, but multipathd then never adds paths by itself (the lab hands
# them over with "multipathd add path"), waits ~30 s for each new map's "creation uevent", and
# keeps deleted paths in its tables (it later rebuilt a map from stale device numbers).
# A scenario whose header has the line "# lab: udev=0" runs without udevd in any run: it is
# stopped before that scenario and started again after it (when LAB_UDEV is not 0).
[ "${LAB_UDEV:-1}" = 1 ] || udev_stop

# --- kernel modules and configfs
modprobe configfs
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
modprobe -a sd_mod iscsi_tcp target_core_mod iscsi_target_mod target_core_file dm_multipath dm_round_robin scsi_dh_alua
[ -d /sys/kernel/config/target/iscsi ] || mkdir /sys/kernel/config/target/iscsi

# --- loopback addresses: 127.0.0.1 .. 127.0.0.$LAB_ADDRS, each a /32 so that removing one makes it
# unreachable (a /8 would keep the whole 127/8 local).
ip link set lo up
ip addr add 127.0.0.1/32 dev lo 2>/dev/null || true
ip addr del 127.0.0.1/8 dev lo 2>/dev/null || true
for i in $(seq 2 "$LAB_ADDRS"); do ip addr add "127.0.0.$i/32" dev lo; done
log "lo: $(ip -4 -o addr show dev lo | awk '{print $4}' | tr '\n' ' ')"

# --- initiator configuration (/etc is a writable overlay in the VM; the host's is untouched)
cat >/etc/multipath.conf <<'EOF'
defaults {
    user_friendly_names no
    find_multipaths no
    # No udevd in the VM: read each path's WWID from sysfs (VPD page 0x83 as the kernel cached
    # it) instead of udev's database, which stays empty.
    uid_attribute ""
}
blacklist {
    wwid "^36001405b51d"
}
EOF
mkdir -p /etc/iscsi
if ! grep -q '^InitiatorName=' /etc/iscsi/initiatorname.iscsi 2>/dev/null; then
    echo "InitiatorName=iqn.1993-08.org.debian:01:brick-lab" >/etc/iscsi/initiatorname.iscsi
fi
rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/* 2>/dev/null || true
mkdir -p /run/lock /var/lock 2>/dev/null || true

# --- daemons, each in its own session (iscsid takes its process group down when it stops)
setsid iscsid -f >"$RESULTS/iscsid.log" 2>&1 </dev/null &
ISCSID_PID=$!
setsid multipathd -d -s >"$RESULTS/multipathd.log" 2>&1 </dev/null &
MULTIPATHD_PID=$!
wait_until 20 "multipathd to answer" sh -c 'grep -q /org/kernel/linux/storage/multipathd /proc/net/unix && multipathd show paths'
wait_until 20 "iscsid's socket" sh -c 'grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix'
progress "setup done: iscsid pid $ISCSID_PID, multipathd pid $MULTIPATHD_PID"

# --- scenarios
for scen in "$@"; do
    name=$(basename "$scen" .sh)
    dirty=""
    if ! lab_reset >>"$RESULTS/guest.log" 2>&1; then
        dirty=" dirty"
        log "state before $name is not clean"; dump_state
    fi
    no_udev=""
    if [ "${LAB_UDEV:-1}" = 1 ] && [ "$(udev_wanted "$scen")" = 0 ]; then
        no_udev=1; udev_stop
    fi
    # A scenario may need longer than the default: "# lab: timeout=N" in its first 20 lines
    # (the larger of it and LAB_SCENARIO_TIMEOUT applies).
    limit=$(lab_header "$scen" timeout)
    [[ $limit =~ ^[0-9]+$ ]] && [ "$limit" -gt "$SCEN_TIMEOUT" ] || limit=$SCEN_TIMEOUT
    progress "$name: start"
    t0=$(date +%s%N)
    set +e
    ( cd "$LAB_STATE" && exec timeout -k 10 "$limit" bash "$scen" ) >"$RESULTS/$name.log" 2>&1 </dev/null
    rc=$?
    set -e
    # The harness's cleanup (lab_reset, before the next scenario) runs without udevd too: it
    # removes what the scenario made; udevd comes back for the scenarios after it.
    if [ -n "$no_udev" ]; then
        lab_reset >>"$RESULTS/guest.log" 2>&1 || { log "state after $name is not clean"; dump_state; }
        udev_start || log "udevd did not come back after $name"
    fi
    secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}')
    if [ $rc -eq 0 ]; then
        echo "PASS $secs$dirty" >"$RESULTS/$name.status"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "scenario timed out after ${limit}s" >>"$RESULTS/$name.log"
        echo "FAIL $secs rc=$rc timeout$dirty" >"$RESULTS/$name.status"
    else
        echo "FAIL $secs rc=$rc$dirty" >"$RESULTS/$name.status"
    fi
    progress "$name: $(cat "$RESULTS/$name.status")"
done

progress "all scenarios ran; final reset"
lab_reset >>"$RESULTS/guest.log" 2>&1 || { log "final state not clean"; dump_state; }
kill "$MULTIPATHD_PID" "$ISCSID_PID" 2>/dev/null || true
echo ok >"$RESULTS/done"
progress "guest done"
}
main "$@"
exit $?
