# shellcheck shell=bash
# lab/lib/initiator.sh: the initiator side, through iscsiadm and sysfs: logins, the sessions,
# disks and maps of a LUN, multipathd and udevd settings, path states, a volume removed by hand.

# iscsi_login NAME [I...]: create node records for portals I (default: all of the target's
# portals) the way os-brick does (-o new, startup manual, no discovery) and log in on each.
iscsi_login() {
    local name=$1; shift
    local iqn idx p chap
    iqn=$(tiqn "$name")
    if [ $# -eq 0 ]; then set -- $(seq 1 "$(_tget "$name" portals)"); fi
    chap=$(_tget "$name" chap)
    for idx in "$@"; do
        p=$(portal "$idx")
        iscsiadm -m node -T "$iqn" -p "$p" -o new >/dev/null
        iscsiadm -m node -T "$iqn" -p "$p" -o update -n node.startup -v manual
        if [ -n "$chap" ]; then
            iscsiadm -m node -T "$iqn" -p "$p" -o update -n node.session.auth.authmethod -v CHAP
            iscsiadm -m node -T "$iqn" -p "$p" -o update -n node.session.auth.username -v "${chap%%:*}"
            iscsiadm -m node -T "$iqn" -p "$p" -o update -n node.session.auth.password -v "${chap#*:}"
        fi
        iscsiadm -m node -T "$iqn" -p "$p" --login >/dev/null || fail "login to $iqn at $p failed"
    done
    log "logged in to $iqn on portal(s) $*"
}

# target_sids NAME: ids of the iSCSI sessions to the target (from sysfs).
target_sids() {
    local iqn s
    iqn=$(tiqn "$1")
    for s in /sys/class/iscsi_session/session*; do
        [ -e "$s" ] || continue
        _rd "$s/targetname"
        [ "$REPLY" = "$iqn" ] && echo "${s##*/session}"
    done
    return 0
}

# lun_sds NAME LUN: the sd devices (sdX) whose wwid is the LUN's.
lun_sds() {
    local w d
    w=$(lun_wwid "$1" "$2")
    for d in /sys/block/sd*; do
        [ -e "$d" ] || continue
        _rd "$d/device/wwid"
        [ "$REPLY" = "$w" ] && echo "${d##*/}"
    done
    return 0
}

# lun_dm NAME LUN: the dm-N of the LUN's multipath map (dm/uuid = mpath-<wwn>), if any.
lun_dm() {
    local u d
    u=mpath-$(lun_wwn "$1" "$2")
    for d in /sys/block/dm-*; do
        [ -e "$d" ] || continue
        _rd "$d/dm/uuid"
        [ "$REPLY" = "$u" ] && echo "${d##*/}"
    done
    return 0
}

count_lines() { grep -c . || true; }
_lun_has_sds() {
    local sds
    mapfile -t sds < <(lun_sds "$1" "$2")
    [ ${#sds[@]} -ge "$3" ]
}
# Without udevd, multipathd hears of no new path: hand it the LUN's unclaimed paths.
_mp_add_missing() {
    pidof systemd-udevd udevd >/dev/null 2>&1 && return 0
    local d
    for d in $(lun_sds "$1" "$2"); do
        [ -z "$(ls "/sys/block/$d/holders")" ] && multipathd add path "$d" >/dev/null 2>&1
    done
    return 0
}
_lun_map_ready() {
    _mp_add_missing "$1" "$2"
    local dm slaves
    dm=$(lun_dm "$1" "$2")
    [ -n "$dm" ] || return 1
    slaves=("/sys/block/$dm/slaves"/*)
    [ -e "${slaves[0]}" ] && [ ${#slaves[@]} -ge "$3" ]
}

# wait_lun_sds NAME LUN COUNT [TIMEOUT]: wait for COUNT sd devices of the LUN; print them.
wait_lun_sds() {
    wait_until "${4:-30}" "$3 sd device(s) of $1 LUN $2" _lun_has_sds "$1" "$2" "$3"
    lun_sds "$1" "$2"
}

# wait_lun_map NAME LUN PATHS [TIMEOUT]: wait for the LUN's multipath map with PATHS paths; print
# its dm-N.
wait_lun_map() {
    wait_until "${4:-60}" "multipath map of $1 LUN $2 with $3 path(s)" _lun_map_ready "$1" "$2" "$3"
    lun_dm "$1" "$2"
}

# _multipathd_reconfigured SED_EXPR WHAT PATTERN: edit /etc/multipath.conf with SED_EXPR until the
# scenario exits (then as before), have multipathd reread it, and wait until its configuration
# shows PATTERN (an extended regex).
_multipathd_reconfigured() {
    cp /etc/multipath.conf "$LAB_STATE/multipath.conf.orig"
    trap _multipathd_restore EXIT
    sed -i "$1" /etc/multipath.conf
    multipathd reconfigure >/dev/null
    wait_until 30 "multipathd to run with $2" \
        sh -c "multipathd show config 2>/dev/null | grep -Eq '$3'"
}

# multipathd_strict: run multipathd with find_multipaths "strict" (upstream's default: a map
# only for a WWID in /etc/multipath/wwids) until the scenario exits, then as before.
multipathd_strict() {
    _multipathd_reconfigured 's/find_multipaths no/find_multipaths strict/' \
        "find_multipaths strict" 'find_multipaths "?strict'
}
# multipathd_host_uid: run multipathd with the default uid_attribute (ID_SERIAL, read from udev's
# database, as on any host) until the scenario exits, instead of the lab's uid_attribute "" (WWID
# read from sysfs), which hides what a host without udevd goes through.
multipathd_host_uid() {
    _multipathd_reconfigured '/^ *uid_attribute ""/d' \
        "uid_attribute ID_SERIAL" '^[[:space:]]*uid_attribute "?ID_SERIAL'
}
_multipathd_restore() {
    cp "$LAB_STATE/multipath.conf.orig" /etc/multipath.conf
    multipathd reconfigure >/dev/null 2>&1 || true
}

# udev_mp_flag DISK: what udev last said of the disk: DM_MULTIPATH_DEVICE_PATH (1: a path of a
# multipath map, which the other rules leave alone; 0 or empty: a disk of its own).
udev_mp_flag() {
    udevadm info -q property -n "/dev/$1" 2>/dev/null | sed -n 's/^DM_MULTIPATH_DEVICE_PATH=//p'
}

# udev_stop: stop udevd (as on a host whose udevd is stuck, or in a container); guest.sh does it
# before a scenario whose header has the line "# lab: udev=0", and udev_start after it.
udev_stop() {
    pidof systemd-udevd udevd >/dev/null 2>&1 || return 0
    udevadm control --exit 2>/dev/null || true
    local _
    for _ in $(seq 100); do pidof systemd-udevd udevd >/dev/null 2>&1 || { log "udevd stopped"; return 0; }; sleep 0.1; done
    log "udevd did not stop"; return 1
}
# udev_start: start udevd again if it is not running, and wait until it answers.
udev_start() {
    pidof systemd-udevd udevd >/dev/null 2>&1 && return 0
    local d _
    for d in /lib/systemd/systemd-udevd /usr/lib/systemd/systemd-udevd; do
        [ -x "$d" ] && { "$d" --daemon; break; }
    done
    for _ in $(seq 100); do udevadm control --ping >/dev/null 2>&1 && { log "udevd started"; return 0; }; sleep 0.2; done
    log "udevd does not answer"; return 1
}
# lab_header SCENARIO KEY: the value of the line "# lab: KEY=VALUE" among the scenario's first 20
# lines (the harness's settings for it: udev=0, timeout=N), empty when there is none.
lab_header() {
    sed -n "1,20s/^# lab: $2=\(.*\)\$/\1/p" "$1" | head -1
}
# udev_wanted SCENARIO: 0 when the scenario's header asks to run without udevd, else 1.
udev_wanted() {
    if [ "$(lab_header "$1" udev)" = 0 ]; then echo 0; else echo 1; fi
}

_sessions_in_state() {
    local want=$1 name=$2 sid n=0
    for sid in $(target_sids "$name"); do
        [ "$(cat "/sys/class/iscsi_session/session$sid/state")" = "$want" ] || return 1
        n=$((n + 1))
    done
    [ $n -gt 0 ]
}
_sessions_not_in_state() {
    local bad=$1 name=$2 sid n=0
    for sid in $(target_sids "$name"); do
        [ "$(cat "/sys/class/iscsi_session/session$sid/state")" != "$bad" ] || return 1
        n=$((n + 1))
    done
    [ $n -gt 0 ]
}
_session_states() {
    local s
    for s in $(target_sids "$1"); do printf 'session%s=%s ' "$s" "$(cat "/sys/class/iscsi_session/session$s/state")"; done
}
_one_session_not_in_state() {
    local bad=$1 name=$2 sid
    for sid in $(target_sids "$name"); do
        [ "$(cat "/sys/class/iscsi_session/session$sid/state")" != "$bad" ] && return 0
    done
    return 1
}
# wait_sessions_failed NAME [TIMEOUT]: every session to the target has lost its connection.
wait_sessions_failed() {
    wait_until "${2:-30}" "all sessions to $1 failed" _sessions_not_in_state LOGGED_IN "$1"
    log "all sessions to $1 failed: $(_session_states "$1")"
}
# wait_one_session_failed NAME [TIMEOUT]: a session to the target (a portal taken down alone) has
# lost its connection and is in recovery.
wait_one_session_failed() {
    wait_until "${2:-60}" "a session to $1 in recovery" _one_session_not_in_state LOGGED_IN "$1"
    log "a session to $1 failed: $(_session_states "$1")"
}
# wait_sessions_up NAME [TIMEOUT]: every session to the target is logged in again.
wait_sessions_up() {
    wait_until "${2:-60}" "all sessions to $1 logged in" _sessions_in_state LOGGED_IN "$1"
    log "all sessions to $1 logged in"
}
_paths_active() {
    local d n=0 out
    out=$(timeout 10 multipathd show paths format "%d %t %T" 2>/dev/null) || return 1
    for d in $(lun_sds "$1" "$2"); do
        grep -q "^$d active ready" <<<"$out" || return 1
        n=$((n + 1))
    done
    [ $n -ge "$3" ]
}
# wait_paths_active NAME LUN N [TIMEOUT]: multipathd sees N paths of the LUN active and ready.
wait_paths_active() {
    wait_until "${4:-60}" "$3 active path(s) of $1 LUN $2" _paths_active "$1" "$2" "$3"
    log "$3 path(s) of $1 LUN $2 active"
}

# remove_lun_by_hand NAME LUN: what an admin or another tool does to drop a volume from the host
# behind brick's back: flush and remove the LUN's multipath map, delete its disks; the sessions
# stay. Waits until the kernel shows neither.
remove_lun_by_hand() {
    local wwn d
    wwn=$(lun_wwn "$1" "$2")
    if [ -n "$(lun_dm "$1" "$2")" ]; then
        timeout 30 multipath -f "$wwn" >/dev/null || fail "multipath -f $wwn failed"
    fi
    for d in $(lun_sds "$1" "$2"); do echo 1 >"/sys/block/$d/device/delete"; done
    wait_until 30 "the disks of $1 LUN $2 to go" _lun_no_sds "$1" "$2"
    [ -z "$(lun_dm "$1" "$2")" ] || fail "map of $1 LUN $2 came back: $(lun_dm "$1" "$2")"
    log "$1 LUN $2 removed by hand (map $wwn and its disks); sessions kept: $(target_sids "$1" | tr '\n' ' ')"
}

_lun_no_sds() { [ -z "$(lun_sds "$1" "$2")" ]; }

# run_brick_err ERRFILE [--timeout S] ARGS...: run_brick, also keeping brick's own error lines
# ("brick: ..." on standard error, which is what a caller sees; not the -v debug log, nor the
