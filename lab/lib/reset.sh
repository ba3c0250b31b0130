# shellcheck shell=bash
# lab/lib/reset.sh: cleanup between scenarios (guest.sh), not a stand-in for brick in a
# scenario.

# lab_reset: bring the guest back to "no target, no session, no device, no record", whatever a
# scenario left. Every step is bounded; what cannot be cleaned is reported (return 1).
lab_reset() {
    local t x name sid
    # 1. paths back, so that queued I/O can complete and flushes do not hang
    for t in "$C"/iscsi/iqn.*/tpgt_*; do [ -e "$t/enable" ] && echo 1 >"$t/enable" 2>/dev/null; done
    for x in $(seq 2 "${LAB_ADDRS:-4}"); do ip addr add "127.0.0.$x/32" dev lo 2>/dev/null || true; done
    # 2. maps: flush; if still there, stop queueing and remove by force
    for x in /sys/block/dm-*; do
        [ -e "$x" ] || continue
        case $(cat "$x/dm/uuid" 2>/dev/null) in mpath-*) ;; *) continue ;; esac
        name=$(cat "$x/dm/name")
        timeout 20 blockdev --flushbufs "/dev/${x##*/}" 2>/dev/null || true
        timeout 20 multipath -f "$name" >/dev/null 2>&1 && continue
        timeout 10 dmsetup message "$name" 0 fail_if_no_path >/dev/null 2>&1 || true
        timeout 20 dmsetup remove --force --retry "$name" >/dev/null 2>&1 || log "reset: cannot remove map $name"
    done
    # 3. sessions: log out of each (by sid: also catches sessions with no node record)
    for x in /sys/class/iscsi_session/session*; do
        [ -e "$x" ] || continue
        sid=${x##*/session}
        timeout 30 iscsiadm -m session -r "$sid" -u >/dev/null 2>&1 || log "reset: logout of session $sid failed"
    done
    # 4. node and discovery records
    timeout 20 iscsiadm -m node -o delete >/dev/null 2>&1 || true
    rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/* 2>/dev/null || true
    # 5. SCSI disks left without a session (should not happen)
    for x in /sys/block/sd*; do
        [ -e "$x" ] || continue
        readlink -f "$x/device" | grep -q '/session[0-9]*/' || continue
        echo 1 >"$x/device/delete" 2>/dev/null || true
    done
    # 6. target
    lio_clear
    rm -rf "$LAB_STATE"/work 2>/dev/null || true
    (assert_host_clean) 2>/dev/null
}
