# shellcheck shell=bash
# lab/lib/assert.sh: assertions on the kernel state (no disk, map, session or node record
# of a LUN or target left; a clean host).

assert_no_sd() {
    local s; s=$(lun_sds "$1" "$2" | tr '\n' ' ')
    [ -z "$s" ] || fail "$1 LUN $2 still has SCSI device(s): $s"
}
assert_no_map() {
    local d wwn
    wwn=$(lun_wwn "$1" "$2")
    d=$(lun_dm "$1" "$2")
    [ -z "$d" ] || fail "$1 LUN $2 still has multipath map $d"
    if timeout 10 dmsetup ls 2>/dev/null | grep -q "^$wwn"; then fail "dmsetup ls still lists $wwn"; fi
    if timeout 10 dmsetup info -c --noheadings -o uuid 2>/dev/null | grep -qx "mpath-$wwn"; then
        fail "dmsetup still has a map with uuid mpath-$wwn"
    fi
}
assert_no_session() {
    local s iqn out rc
    iqn=$(tiqn "$1")
    s=$(target_sids "$1" | tr '\n' ' ')
    [ -z "$s" ] || fail "sessions to $iqn remain (sysfs): $s"
    set +e; out=$(iscsiadm -m session 2>&1); rc=$?; set -e
    [ $rc -eq 0 ] || [ $rc -eq 21 ] || fail "iscsiadm -m session exited $rc: $out"
    if grep -qF " $iqn " <<<"$out "; then fail "iscsiadm -m session still lists $iqn"; fi
}
assert_no_node() {
    local out iqn
    iqn=$(tiqn "$1")
    out=$(iscsiadm -m node 2>/dev/null || true)
    if grep -qF "$iqn" <<<"$out"; then
        fail "node record(s) for $iqn remain: $(grep -F "$iqn" <<<"$out" | tr '\n' ';')"
    fi
}
# assert_lun_gone NAME LUN: no sd device and no multipath map for the LUN.
assert_lun_gone() {
    assert_no_sd "$1" "$2"
    assert_no_map "$1" "$2"
    log "ok: $1 LUN $2 has no SCSI device and no multipath map"
}
# assert_target_gone NAME: no session and no node record for the target.
assert_target_gone() {
    assert_no_session "$1"
    assert_no_node "$1"
    log "ok: no session and no node record for $(tiqn "$1")"
}
# assert_lun_present NAME LUN PATHS [MAP=1]: PATHS running sd devices, and the map with PATHS
# slaves when MAP=1.
assert_lun_present() {
    local n d
    n=$(lun_sds "$1" "$2" | count_lines)
    [ "$n" -eq "$3" ] || fail "$1 LUN $2 has $n SCSI device(s), expected $3"
    for d in $(lun_sds "$1" "$2"); do
        [ "$(cat "/sys/block/$d/device/state")" = running ] || fail "$d is $(cat "/sys/block/$d/device/state")"
    done
    if [ "${4:-1}" = 1 ]; then
        d=$(lun_dm "$1" "$2")
        [ -n "$d" ] || fail "$1 LUN $2 has no multipath map"
        n=$(ls "/sys/block/$d/slaves" | count_lines)
        [ "$n" -eq "$3" ] || fail "map $d of $1 LUN $2 has $n path(s), expected $3"
    fi
    log "ok: $1 LUN $2 present with $3 path(s)$([ "${4:-1}" = 1 ] && echo " in map $(lun_dm "$1" "$2")")"
}

# assert_host_clean: no iSCSI session, no SCSI disk on an iSCSI host, no multipath map, no node
# record at all.
assert_host_clean() {
    local x
    x=$(ls /sys/class/iscsi_session 2>/dev/null | tr '\n' ' ')
    [ -z "$x" ] || fail "host not clean: iSCSI sessions remain: $x"
    for x in /sys/block/sd*; do
        [ -e "$x" ] || continue
        readlink -f "$x/device" | grep -q '/session[0-9]*/' && fail "host not clean: ${x##*/} remains"
    done
    for x in /sys/block/dm-*; do
        [ -e "$x" ] || continue
        case $(cat "$x/dm/uuid") in mpath-*) fail "host not clean: map ${x##*/} ($(cat "$x/dm/name")) remains" ;; esac
    done
    x=$(iscsiadm -m node 2>/dev/null || true)
    [ -z "$x" ] || fail "host not clean: node records remain: $x"
    log "ok: host clean (no session, no iSCSI disk, no map, no node record)"
}
