# shellcheck shell=bash
# lab/lib/log.sh: logging, failing (with a dump of the kernel state), waiting.

# The helpers here read sysfs and the lab's own files with bash builtins (_rd, read, globs), not
# with cat, tr or grep: a process costs tens of milliseconds in the TCG guest, and the waits poll.

# _rd FILE: the file's first line in REPLY (empty when it cannot be read).
_rd() {
    REPLY=
    { IFS= read -r REPLY <"$1"; } 2>/dev/null || true
}

uptime_s() { _rd /proc/uptime; echo "${REPLY%% *}"; }
log() {
    _rd /proc/uptime
    printf '[%8s] %s\n' "${REPLY%% *}" "$*" >&2
}

# Dump what the kernel has: sessions, SCSI disks, maps, node records, LIO targets.
dump_state() {
    {
        echo "---- state dump at $(uptime_s) ----"
        echo "# iscsiadm -m session"; iscsiadm -m session 2>&1 || true
        echo "# sessions (sysfs)"
        local s
        for s in /sys/class/iscsi_session/session*; do
            [ -e "$s" ] || continue
            echo "$(basename "$s") $(cat "$s/targetname" 2>/dev/null) state=$(cat "$s/state" 2>/dev/null)"
        done
        echo "# sd devices"
        for s in /sys/block/sd*; do
            [ -e "$s" ] || continue
            echo "$(basename "$s") wwid=$(cat "$s/device/wwid" 2>/dev/null) state=$(cat "$s/device/state" 2>/dev/null) holders=$(ls "$s/holders" | tr '\n' ' ') hctl=$(basename "$(readlink -f "$s/device")")"
        done
        echo "# scsi devices: $(ls /sys/class/scsi_device 2>/dev/null | tr "\n" " ")"
        echo "# dm devices"
        for s in /sys/block/dm-*; do
            [ -e "$s" ] || continue
            echo "$(basename "$s") name=$(cat "$s/dm/name") uuid=$(cat "$s/dm/uuid") slaves=$(ls "$s/slaves" | tr '\n' ' ') holders=$(ls "$s/holders" | tr '\n' ' ')"
        done
        echo "# dmsetup table"; timeout 10 dmsetup table 2>&1 || true
        echo "# dmsetup info -c"; timeout 10 dmsetup info -c 2>&1 || true
        echo "# multipathd show paths"; timeout 10 multipathd show paths 2>&1 || true
        echo "# iscsiadm -m node"; iscsiadm -m node 2>&1 || true
        echo "# LIO targets"
        for s in "$C"/iscsi/iqn.*/tpgt_*; do
            [ -e "$s" ] || continue
            echo "$s enable=$(cat "$s/enable") np=$(ls "$s/np" | tr '\n' ' ') luns=$(ls "$s/lun" | tr '\n' ' ')"
        done
        echo "# lo addresses"; ip -4 -o addr show dev lo 2>&1 | awk '{print $4}' | tr '\n' ' '; echo
        echo "# processes in D state"; ps -eo pid,stat,wchan:32,args | awk '$2 ~ /D/' || true
        echo "---- end of state dump ----"
    } >&2
}

fail() {
    log "FAIL: $*"
    dump_state
    exit 1
}

# wait_until TIMEOUT_S DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds, else fail.
wait_until() {
    local timeout=$1 what=$2; shift 2
    local deadline=$((${EPOCHREALTIME/./} / 1000 + timeout * 1000))
    while ! "$@" >/dev/null 2>&1; do
        if ((${EPOCHREALTIME/./} / 1000 > deadline)); then
            fail "timed out after ${timeout}s waiting for: $what"
        fi
        sleep 0.2
    done
}
