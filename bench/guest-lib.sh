# shellcheck shell=bash
# bench/guest-lib.sh: helpers the benchmark's conductor calls inside the lab VM, on top of
# lab/lib.sh (sourced first).

# bench_initiator_reset: no map, no session, no node record, no iSCSI disk, no NVMe controller;
# the LIO and nvmet targets stay. Used only after a tool failed or left something behind, never
# inside a timed step.
bench_initiator_reset() {
    local x name sid
    for x in /sys/class/nvme/nvme*; do
        [ -e "$x/delete_controller" ] || continue
        timeout 30 sh -c "echo 1 >$x/delete_controller" 2>/dev/null || log "reset: cannot delete ${x##*/}"
    done
    for x in /sys/block/dm-*; do
        [ -e "$x" ] || continue
        case $(cat "$x/dm/uuid" 2>/dev/null) in mpath-*) ;; *) continue ;; esac
        name=$(cat "$x/dm/name")
        timeout 20 multipath -f "$name" >/dev/null 2>&1 && continue
        timeout 10 dmsetup message "$name" 0 fail_if_no_path >/dev/null 2>&1 || true
        timeout 20 dmsetup remove --force --retry "$name" >/dev/null 2>&1 || log "reset: cannot remove map $name"
    done
    for x in /sys/class/iscsi_session/session*; do
        [ -e "$x" ] || continue
        sid=${x##*/session}
        timeout 30 iscsiadm -m session -r "$sid" -u >/dev/null 2>&1 || log "reset: logout of session $sid failed"
    done
    timeout 20 iscsiadm -m node -o delete >/dev/null 2>&1 || true
    rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/* 2>/dev/null || true
    for x in /sys/block/sd*; do
        [ -e "$x" ] || continue
        readlink -f "$x/device" | grep -q '/session[0-9]*/' || continue
        echo 1 >"$x/device/delete" 2>/dev/null || true
    done
}
