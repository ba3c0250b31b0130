# shellcheck shell=bash
# lab/lib.sh: helpers for lab scenarios. Sourced inside the lab VM (as root) by lab/guest.sh and by
# every lab/scenarios/*.sh. Everything here reads or writes the real kernel state: configfs for the
# LIO target, iscsiadm and sysfs for the initiator, dmsetup/multipathd for the maps.
#
# Conventions
#   - A "target" is named by a short NAME (e.g. vol1); its IQN is $LAB_IQN_BASE:NAME.
#   - Portal i (1-based) of every target is 127.0.0.i:3260.
#   - LUN l of target NAME is backed by the file /run/lab/NAME-lunl.img (LIO fileio); its
#     vpd_unit_serial is all hex and unique in the VM run, so its WWN is predictable (lun_wwid).
#     Serials start with b51c, or b51d for targets made with --no-multipath: guest.sh blacklists
#     wwids 36001405b51d* in /etc/multipath.conf so multipathd leaves those paths alone.
#   - Helpers that "return" a value print it on stdout; everything else logs to stderr.
#   - fail MSG prints the message plus a dump of the kernel state and exits 1.

C=/sys/kernel/config/target
LAB_STATE=${LAB_STATE:-/run/lab}
LAB_IQN_BASE=${LAB_IQN_BASE:-iqn.2003-01.org.linux-iscsi.lab}
LAB_PORT=3260
mkdir -p "$LAB_STATE/targets"

# ---------------------------------------------------------------------------------------------
# logging, failing, waiting

uptime_s() { cut -d' ' -f1 /proc/uptime; }
log() { printf '[%8s] %s\n' "$(uptime_s)" "$*" >&2; }

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
    printf '[%8s] FAIL: %s\n' "$(uptime_s)" "$*" >&2
    dump_state
    exit 1
}

# wait_until TIMEOUT_S DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds, else fail.
wait_until() {
    local timeout=$1 what=$2; shift 2
    local deadline=$(( $(date +%s%N) / 1000000 + timeout * 1000 ))
    while ! "$@" >/dev/null 2>&1; do
        if (( $(date +%s%N) / 1000000 > deadline )); then
            fail "timed out after ${timeout}s waiting for: $what"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# LIO target, through configfs

portal() { echo "127.0.0.$1:$LAB_PORT"; }
tiqn() { echo "$LAB_IQN_BASE:$1"; }
_tdir() { echo "$LAB_STATE/targets/$1"; }
_tget() { cat "$(_tdir "$1")/$2"; }

# Next free number, unique within this VM run (HBA numbers and serials must not be reused while an
# old device may still be around).
_next_id() {
    local f=$LAB_STATE/next_id n
    n=$(cat "$f" 2>/dev/null || echo 0)
    n=$((n + 1))
    echo "$n" >"$f"
    echo "$n"
}

# lun_serial NAME LUN: the vpd_unit_serial given to the LUN (12 hex digits).
lun_serial() { cat "$(_tdir "$1")/lun$2.serial"; }
# lun_backing NAME LUN: the fileio backing file of the LUN.
lun_backing() { echo "$LAB_STATE/$1-lun$2.img"; }
# lun_backstore NAME LUN: the LUN's backstore folder in LIO's configfs.
lun_backstore() { echo "$C/core/fileio_$(_tget "$1" hba)/${1}_lun$2"; }

# lun_wwid NAME LUN: the wwid the initiator reads in /sys/block/sdX/device/wwid.
# LIO builds an NAA type 6 designator: "6", the company id 001405, then the hex digits of
# vpd_unit_serial (other characters skipped), at most 25 of them, padded with zeros to 25.
lun_wwid() {
    local hex
    hex=$(lun_serial "$1" "$2" | tr -cd '0-9a-fA-F' | tr 'A-F' 'a-f' | cut -c1-25)
    while [ ${#hex} -lt 25 ]; do hex="${hex}0"; done
    echo "naa.6001405$hex"
}
# lun_wwn NAME LUN: the SCSI WWN as os-brick and multipath name it ("naa." replaced by "3").
lun_wwn() { local w; w=$(lun_wwid "$1" "$2"); echo "3${w#naa.}"; }

# target_create NAME [--portals N] [--luns M] [--size MB] [--tpg-per-portal] [--chap USER:SECRET]
#               [--chap-mutual USER:SECRET] [--no-multipath]
#   Creates target $LAB_IQN_BASE:NAME with portals 127.0.0.1..N:3260, LUNs 1..M (fileio, MB each,
#   default 32), open access (demo mode). --tpg-per-portal puts each portal in its own portal
#   group (tpgt_i), exporting the same LUNs, so that one portal can be taken down alone.
#   --chap: the initiator must log in with these credentials; --chap-mutual (with --chap): the
#   target then proves itself with these (mutual CHAP).
#   --no-multipath: multipathd ignores the LUNs (blacklisted wwid): plain single-path devices.
target_create() {
    local name=$1; shift
    local portals=1 luns=1 size=32 per_portal=0 chap="" chap_mut="" prefix=b51c
    while [ $# -gt 0 ]; do
        case $1 in
            --portals) portals=$2; shift 2 ;;
            --luns) luns=$2; shift 2 ;;
            --size) size=$2; shift 2 ;;
            --tpg-per-portal) per_portal=1; shift ;;
            --chap) chap=$2; shift 2 ;;
            --chap-mutual) chap_mut=$2; shift 2 ;;
            --no-multipath) prefix=b51d; shift ;;
            *) fail "target_create: unknown option $1" ;;
        esac
    done
    local iqn td hba l i dev tpgs
    iqn=$(tiqn "$name"); td=$(_tdir "$name")
    [ -e "$C/iscsi/$iqn" ] && fail "target $iqn exists already"
    rm -rf "$td"; mkdir -p "$td"
    echo "$portals" >"$td/portals"; echo "$luns" >"$td/luns"; echo "$per_portal" >"$td/per_portal"
    hba=$(_next_id); echo "$hba" >"$td/hba"
    for ((l = 1; l <= luns; l++)); do
        dev=$C/core/fileio_$hba/${name}_lun$l # lun_backstore NAME L once the hba is recorded
        truncate -s "${size}M" "$(lun_backing "$name" "$l")"
        mkdir -p "$dev"
        echo "fd_dev_name=$(lun_backing "$name" "$l"),fd_dev_size=$((size * 1024 * 1024))" >"$dev/control"
        printf '%s%04x%04x' "$prefix" "$hba" "$l" >"$td/lun$l.serial"
        lun_serial "$name" "$l" >"$dev/wwn/vpd_unit_serial"
        echo 1 >"$dev/enable"
    done
    if [ "$per_portal" = 1 ]; then tpgs=$portals; else tpgs=1; fi
    for ((i = 1; i <= tpgs; i++)); do
        local tpg=$C/iscsi/$iqn/tpgt_$i
        mkdir -p "$tpg"
        if [ "$per_portal" = 1 ]; then
            mkdir "$tpg/np/$(portal "$i")"
        else
            local p
            for ((p = 1; p <= portals; p++)); do mkdir "$tpg/np/$(portal "$p")"; done
        fi
        for ((l = 1; l <= luns; l++)); do
            mkdir -p "$tpg/lun/lun_$l"
            ln -s "$C/core/fileio_$hba/${name}_lun$l" "$tpg/lun/lun_$l/${name}_lun$l"
        done
        echo 1 >"$tpg/attrib/generate_node_acls"
        echo 0 >"$tpg/attrib/demo_mode_write_protect"
        echo 1 >"$tpg/attrib/cache_dynamic_acls"
        if [ -n "$chap" ]; then
            echo -n "${chap%%:*}" >"$tpg/auth/userid"
            echo -n "${chap#*:}" >"$tpg/auth/password"
            if [ -n "$chap_mut" ]; then
                echo -n "${chap_mut%%:*}" >"$tpg/auth/userid_mutual"
                echo -n "${chap_mut#*:}" >"$tpg/auth/password_mutual"
            fi
            echo 1 >"$tpg/attrib/authentication"
        else
            echo 0 >"$tpg/attrib/authentication"
        fi
        echo 1 >"$tpg/enable"
    done
    echo "$chap" >"$td/chap"; echo "$chap_mut" >"$td/chap_mutual"
    log "target $iqn: $portals portal(s)$([ "$per_portal" = 1 ] && echo ' (one portal group each)'), $luns LUN(s) of ${size} MiB$([ -n "$chap" ] && echo ', CHAP')$([ -n "$chap_mut" ] && echo ' (mutual)')"
}

# target_down NAME / target_up NAME: disable / enable every portal group of the target (all paths
# fail: the target closes its connections and refuses logins).
target_down() {
    local t
    for t in "$C/iscsi/$(tiqn "$1")"/tpgt_*; do echo 0 >"$t/enable"; done
    log "target $1: all portal groups disabled"
}
target_up() {
    local t
    for t in "$C/iscsi/$(tiqn "$1")"/tpgt_*; do echo 1 >"$t/enable"; done
    log "target $1: all portal groups enabled"
}

# portal_down NAME I / portal_up NAME I: take portal I of the target down alone. Needs
# --tpg-per-portal: disables that portal's group (its connections close, logins are refused).
portal_down() {
    [ "$(_tget "$1" per_portal)" = 1 ] || fail "portal_down needs a target made with --tpg-per-portal"
    echo 0 >"$C/iscsi/$(tiqn "$1")/tpgt_$2/enable"
    log "target $1: portal $(portal "$2") down"
}
portal_up() {
    echo 1 >"$C/iscsi/$(tiqn "$1")/tpgt_$2/enable"
    log "target $1: portal $(portal "$2") up"
}

# addr_down I / addr_up I: remove / restore the loopback address 127.0.0.I (I >= 2). Every target
# on that address becomes unreachable (no route), as with a cut network link.
addr_down() { ip addr del "127.0.0.$1/32" dev lo; log "address 127.0.0.$1 removed"; }
addr_up() { ip addr add "127.0.0.$1/32" dev lo; log "address 127.0.0.$1 restored"; }

# target_destroy NAME: remove the target, its LUNs, backstores and backing files.
target_destroy() {
    local name=$1 iqn hba
    iqn=$(tiqn "$name")
    _lio_remove_target "$C/iscsi/$iqn"
    if [ -f "$(_tdir "$name")/hba" ]; then
        hba=$(_tget "$name" hba)
        _lio_remove_hba "$C/core/fileio_$hba"
    fi
    rm -f "$LAB_STATE/$name"-lun*.img
    rm -rf "$(_tdir "$name")"
}

_lio_remove_target() {
    local t=$1 tpg x
    [ -d "$t" ] || return 0
    for tpg in "$t"/tpgt_*; do
        [ -d "$tpg" ] || continue
        echo 0 >"$tpg/enable" 2>/dev/null || true
        for x in "$tpg"/acls/*/lun_*/*; do [ -L "$x" ] && rm -f "$x"; done
        for x in "$tpg"/acls/*/lun_*; do [ -d "$x" ] && rmdir "$x"; done
        for x in "$tpg"/acls/*; do [ -d "$x" ] && rmdir "$x"; done
        for x in "$tpg"/lun/lun_*/*; do [ -L "$x" ] && rm -f "$x"; done
        for x in "$tpg"/lun/lun_*; do [ -d "$x" ] && rmdir "$x"; done
        for x in "$tpg"/np/*; do [ -d "$x" ] && rmdir "$x"; done
        rmdir "$tpg"
    done
    rmdir "$t"
}

_lio_remove_hba() {
    local h=$1 d
    [ -d "$h" ] || return 0
    for d in "$h"/*/; do
        [ -d "$d" ] && [ -e "$d/control" ] && rmdir "$d"
    done
    rmdir "$h"
}

# lio_clear: remove every LIO target and backstore (used between scenarios).
lio_clear() {
    local t h
    for t in "$C"/iscsi/iqn.*; do [ -d "$t" ] && _lio_remove_target "$t"; done
    for h in "$C"/core/*_*; do [ -d "$h" ] && _lio_remove_hba "$h"; done
    rm -rf "$LAB_STATE"/targets/* "$LAB_STATE"/*.img
}

# ---------------------------------------------------------------------------------------------
# initiator: iscsiadm and sysfs

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
        [ "$(cat "$s/targetname" 2>/dev/null)" = "$iqn" ] && echo "${s##*/session}"
    done
    return 0
}

# lun_sds NAME LUN: the sd devices (sdX) whose wwid is the LUN's.
lun_sds() {
    local w d
    w=$(lun_wwid "$1" "$2")
    for d in /sys/block/sd*; do
        [ -e "$d" ] || continue
        [ "$(cat "$d/device/wwid" 2>/dev/null)" = "$w" ] && echo "${d##*/}"
    done
    return 0
}

# lun_dm NAME LUN: the dm-N of the LUN's multipath map (dm/uuid = mpath-<wwn>), if any.
lun_dm() {
    local u d
    u=mpath-$(lun_wwn "$1" "$2")
    for d in /sys/block/dm-*; do
        [ -e "$d" ] || continue
        [ "$(cat "$d/dm/uuid" 2>/dev/null)" = "$u" ] && echo "${d##*/}"
    done
    return 0
}

count_lines() { grep -c . || true; }
_lun_has_sds() { [ "$(lun_sds "$1" "$2" | count_lines)" -ge "$3" ]; }
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
    local dm; dm=$(lun_dm "$1" "$2")
    [ -n "$dm" ] && [ "$(ls "/sys/block/$dm/slaves" | count_lines)" -ge "$3" ]
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
# udev_wanted SCENARIO: 0 when the scenario's header asks to run without udevd, else 1.
udev_wanted() {
    if sed -n '1,20p' "$1" | grep -q '^# lab: udev=0$'; then echo 0; else echo 1; fi
}

# ---------------------------------------------------------------------------------------------
# data

# make_pattern FILE MIB: random data, kept in FILE to compare against later.
make_pattern() { head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"; }

# write_pattern DEV FILE OFFSET_MIB [fsync|buffered|direct]: write FILE to /dev/DEV at OFFSET.
#   fsync: buffered write then fsync (dd conv=fsync); buffered: no sync at all, the data may stay
#   in the block device's page cache; direct: O_DIRECT.
write_pattern() {
    local dev=$1 file=$2 off=$3 mode=${4:-fsync} flags
    case $mode in
        fsync) flags="conv=fsync" ;;
        buffered) flags="" ;;
        direct) flags="oflag=direct" ;;
        *) fail "write_pattern: bad mode $mode" ;;
    esac
    # shellcheck disable=SC2086
    dd if="$file" of="/dev/$dev" bs=1M seek="$off" $flags status=none || fail "write of $file to /dev/$dev failed"
    log "wrote $(($(stat -c %s "$file") / 1024)) KiB ($mode) to /dev/$dev at ${off} MiB"
}

# backing_has NAME LUN FILE OFFSET_MIB: does the LUN's backing file hold FILE at OFFSET?
backing_has() {
    cmp -s -n "$(stat -c %s "$3")" "$3" "$(lun_backing "$1" "$2")" -i "0:$(($4 * 1024 * 1024))"
}
# assert_backing_has NAME LUN FILE OFFSET_MIB
assert_backing_has() {
    backing_has "$@" || fail "backing file of $1 LUN $2 does not hold $(basename "$3") at $4 MiB"
    log "ok: backing file of $1 LUN $2 holds $(basename "$3") at $4 MiB"
}

# assert_dev_reads DEV FILE OFFSET_MIB: reading /dev/DEV (O_DIRECT) at OFFSET gives FILE.
assert_dev_reads() {
    local n; n=$(stat -c %s "$2")
    timeout 30 dd if="/dev/$1" bs=1M skip="$3" count=$((n / 1048576)) iflag=direct status=none |
        cmp -s - "$2" || fail "/dev/$1 does not read back $(basename "$2") at $3 MiB"
    log "ok: /dev/$1 reads back $(basename "$2") at $3 MiB"
}

# ---------------------------------------------------------------------------------------------
# brick's inputs

# props_json NAME LUN [I...]: os-brick connection_properties for LUN of target NAME, on portals I
# (default: all). Several portals give the multipath form (target_portals/iqns/luns).
props_json() {
    local name=$1 lun=$2; shift 2
    local iqn vid
    iqn=$(tiqn "$name")
    if [ $# -eq 0 ]; then set -- $(seq 1 "$(_tget "$name" portals)"); fi
    vid="$name-lun$lun"
    local chap; chap=$(_tget "$name" chap)
    local auth=""
    [ -n "$chap" ] && auth=",\"auth_method\":\"CHAP\",\"auth_username\":\"${chap%%:*}\",\"auth_password\":\"${chap#*:}\""
    local mut; mut=$(_tget "$name" chap_mutual)
    [ -n "$mut" ] && auth="$auth,\"auth_reverse_username\":\"${mut%%:*}\",\"auth_reverse_password\":\"${mut#*:}\""
    if [ $# -eq 1 ]; then
        printf '{"target_portal":"%s","target_iqn":"%s","target_lun":%s,"volume_id":"%s","target_discovered":false%s}\n' \
            "$(portal "$1")" "$iqn" "$lun" "$vid" "$auth"
    else
        local ps="" is="" ls="" i
        for i in "$@"; do
            ps="$ps${ps:+,}\"$(portal "$i")\""; is="$is${is:+,}\"$iqn\""; ls="$ls${ls:+,}$lun"
        done
        printf '{"target_portal":"%s","target_iqn":"%s","target_lun":%s,"volume_id":"%s","target_discovered":false,"target_portals":[%s],"target_iqns":[%s],"target_luns":[%s]%s}\n' \
            "$(portal "$1")" "$iqn" "$lun" "$vid" "$ps" "$is" "$ls" "$auth"
    fi
}

# device_info_json PATH WWN [MULTIPATH_ID]: os-brick's device_info as connect_volume returns it.
device_info_json() {
    if [ -n "${3:-}" ]; then
        printf '{"type":"block","path":"%s","scsi_wwn":"%s","multipath_id":"%s"}\n' "$1" "$2" "$3"
    else
        printf '{"type":"block","path":"%s","scsi_wwn":"%s"}\n' "$1" "$2"
    fi
}

# bounded SECS CMD...: run CMD for at most SECS seconds. A command stuck in the kernel (D state,
# e.g. a flush with all paths down) cannot be killed, and timeout(1) would wait for it forever:
# this one sends SIGKILL at the deadline and returns 124 without waiting for the process.
bounded() {
    local secs=$1; shift
    "$@" &
    local pid=$! deadline=$(( $(date +%s%N) / 1000000 + secs * 1000 ))
    while kill -0 "$pid" 2>/dev/null; do
        if (( $(date +%s%N) / 1000000 > deadline )); then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            if kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
                log "bounded: $* (pid $pid) still running after SIGKILL (stuck in the kernel); not waiting"
                return 124
            fi
            wait "$pid" 2>/dev/null || true
            return 124
        fi
        sleep 0.1
    done
    wait "$pid"
}

# run_brick [--timeout S] ARGS...: run "$BRICK -v ARGS" for at most S seconds (default
# $BRICK_TIMEOUT or 180); sets BRICK_RC (124 if it had to be killed) and BRICK_SECS; never fails
# by itself. Its output goes to the scenario log, prefixed with "brick| ".
run_brick() {
    local t=${BRICK_TIMEOUT:-180}
    if [ "${1:-}" = --timeout ]; then t=$2; shift 2; fi
    local t0 out
    out=$(mktemp "$LAB_STATE/brick-out.XXXXXX")
    log "run: brick -v $*"
    t0=$(date +%s%N)
    set +e
    NO_COLOR=1 bounded "$t" "$BRICK" -v "$@" >"$out" 2>&1
    BRICK_RC=$?
    set -e
    BRICK_SECS=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b-a)/1e9}')
    sed 's/\x1b\[[0-9;]*m//g; s/^/    brick| /' "$out" >&2
    rm -f "$out"
    if [ "$BRICK_RC" = 124 ]; then
        log "brick did not finish within ${t}s and was killed (BRICK_RC=124)"
    else
        log "brick exited $BRICK_RC after ${BRICK_SECS}s"
    fi
}

# connect_map NAME LUN: `brick connect` LUN of target NAME on all its portals (props.json), then
# once more, which must reuse what the first made (its output in device_info.json); checks that
# both worked and that device_info names the LUN's map. Prints the map (dm-N).
connect_map() {
    props_json "$1" "$2" >props.json
    run_brick connect props.json
    [ "$BRICK_RC" = 0 ] || fail "brick connect exited $BRICK_RC"
    "$BRICK" connect props.json >device_info.json 2>/dev/null || fail "second connect failed"
    local dm; dm=$(lun_dm "$1" "$2")
    [ -n "$dm" ] || fail "no multipath map for $1 LUN $2"
    grep -q "\"path\": *\"/dev/$dm\"" device_info.json || fail "device_info path is not /dev/$dm: $(cat device_info.json)"
    echo "$dm"
}

# write_disconnect_keeps NAME LUN DEV: writes 2 MiB through /dev/DEV at 5 MiB without any sync,
# `brick disconnect`s with props.json and device_info.json, and checks that the host is clean and
# that the data reached the LUN's backing file.
write_disconnect_keeps() {
    make_pattern "$LAB_STATE/pat" 2
    write_pattern "$3" "$LAB_STATE/pat" 5 buffered
    disconnect_clean
    assert_backing_has "$1" "$2" "$LAB_STATE/pat" 5
}

# disconnect_clean: `brick disconnect props.json --device-info device_info.json` exits 0 and
# leaves a clean host.
disconnect_clean() {
    run_brick disconnect props.json --device-info device_info.json
    [ "$BRICK_RC" = 0 ] || fail "brick disconnect exited $BRICK_RC"
    assert_host_clean
}

# connect_keeps_secrets SECRET...: `brick -v connect props.json` (to device_info.json) works, and
# no SECRET shows in its debug log.
connect_keeps_secrets() {
    NO_COLOR=1 "$BRICK" -v connect props.json >device_info.json 2>connect.log ||
        { cat connect.log >&2; fail "connect with the right secrets failed"; }
    local s
    for s in "$@"; do
        if grep -qF "$s" connect.log; then fail "a CHAP secret is in brick's debug log"; fi
    done
    log "ok: connected; no secret in the debug log ($(wc -l <connect.log) lines)"
}

# connect_refused PROPS SECRET WHAT: `brick -v connect PROPS` must fail (PROPS carry a wrong
# SECRET), and SECRET must not show in its output; the output goes to the scenario log.
connect_refused() {
    local rc t0; t0=$(date +%s)
    set +e
    NO_COLOR=1 "$BRICK" -v connect "$1" >/dev/null 2>refused.log
    rc=$?
    set -e
    sed 's/^/    brick| /' refused.log >&2
    [ "$rc" != 0 ] || fail "connect with $3 succeeded"
    if grep -qF "$2" refused.log; then fail "$3 is in brick's output"; fi
    log "ok: connect with $3 refused (exit $rc) after $(($(date +%s) - t0)) s"
}

# start_brick ARGS...: start "$BRICK -v ARGS" in the background (output to the scenario log);
# sets BRICK_PID.
start_brick() {
    log "start in background: brick -v $*"
    NO_COLOR=1 "$BRICK" -v "$@" > >(sed -u 's/\x1b\[[0-9;]*m//g; s/^/    brick(bg)| /' >&2) 2>&1 &
    # shellcheck disable=SC2034 # read by the scenario that called start_brick
    BRICK_PID=$!
}

# ---------------------------------------------------------------------------------------------
# waiting for path states

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

# ---------------------------------------------------------------------------------------------
# assertions on the kernel state

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

# ---------------------------------------------------------------------------------------------
# cleanup between scenarios (not for use as a substitute for brick in scenarios)

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

# ---------------------------------------------------------------------------------------------
# a LUN number reused for another volume (scenario 23)

# lun_reuse NAME LUN: the array gives LUN number LUN of target NAME to another volume, as arrays
# do once the old volume is unmapped: a new fileio backstore (new HBA, new serial, so a new WWN;
# new backing file) replaces the old one at that LUN in every portal group. The old backstore
# stays (unmapped); its backing file is renamed NAME-lunLUN.was.N.img (LIO keeps it open). From
# then on lun_serial, lun_wwid, lun_wwn, lun_sds, lun_dm and lun_backing name the new volume: keep
# what the old one needs (lun_wwn) before calling this. lab_reset removes both backstores.
lun_reuse() {
    local name=$1 lun=$2 td old_hba hba iqn tpg dev size x
    td=$(_tdir "$name"); iqn=$(tiqn "$name")
    old_hba=$(cat "$td/lun$lun.hba" 2>/dev/null || _tget "$name" hba)
    size=$(stat -c %s "$(lun_backing "$name" "$lun")")
    hba=$(_next_id)
    mv "$(lun_backing "$name" "$lun")" "$LAB_STATE/$name-lun$lun.was.$old_hba.img"
    mv "$td/lun$lun.serial" "$td/lun$lun.serial.was.$old_hba"
    dev=$C/core/fileio_$hba/${name}_lun$lun
    truncate -s "$size" "$(lun_backing "$name" "$lun")"
    mkdir -p "$dev"
    echo "fd_dev_name=$(lun_backing "$name" "$lun"),fd_dev_size=$size" >"$dev/control"
    printf 'b51c%04x%04x' "$hba" "$lun" >"$td/lun$lun.serial"
    lun_serial "$name" "$lun" >"$dev/wwn/vpd_unit_serial"
    echo 1 >"$dev/enable"
    echo "$hba" >"$td/lun$lun.hba"
    for tpg in "$C/iscsi/$iqn"/tpgt_*; do
        for x in "$tpg/lun/lun_$lun"/*; do if [ -L "$x" ]; then rm -f "$x"; fi; done
        rmdir "$tpg/lun/lun_$lun"
        mkdir "$tpg/lun/lun_$lun"
        ln -s "$dev" "$tpg/lun/lun_$lun/${name}_lun$lun"
    done
    log "target $name: LUN $lun now maps another volume (fileio_$hba, wwn $(lun_wwn "$name" "$lun")); the old one (fileio_$old_hba) is unmapped"
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
# "brick: warning: ..." lines) in ERRFILE.
run_brick_err() {
    local errfile=$1 t=${BRICK_TIMEOUT:-180}; shift
    if [ "${1:-}" = --timeout ]; then t=$2; shift 2; fi
    local t0 out err
    out=$(mktemp "$LAB_STATE/brick-out.XXXXXX"); err=$(mktemp "$LAB_STATE/brick-err.XXXXXX")
    log "run: brick -v $*"
    t0=$(date +%s%N)
    set +e
    NO_COLOR=1 bounded "$t" "$BRICK" -v "$@" >"$out" 2>"$err"
    BRICK_RC=$?
    set -e
    BRICK_SECS=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b-a)/1e9}')
    sed 's/\x1b\[[0-9;]*m//g; s/^/    brick| /' "$err" "$out" >&2
    { grep '^brick: ' "$err" | grep -v '^brick: warning:' || true; } >"$errfile"
    rm -f "$out" "$err"
    log "brick exited $BRICK_RC after ${BRICK_SECS}s; its error: $(cat "$errfile")"
}

# ---------------------------------------------------------------------------------------------
# writers queued on dead paths (scenarios 04, 05, 08)

# io_counters DM: "dm-N:R/W sdX:R/W ...", the in-flight reads/writes of the map and its paths.
io_counters() {
    local d out s
    d=/sys/block/$1
    out="$1:$(tr -s ' ' '/' <"$d/inflight" | sed 's/^\///')"
    for s in "$d"/slaves/*; do
        [ -e "$s" ] || continue
        out="$out ${s##*/}:$(tr -s ' ' '/' <"/sys/block/${s##*/}/inflight" | sed 's/^\///')"
    done
    echo "$out"
}

# start_queued_writer DM FILE OFFSET_MIB: with every path of the map down, start a writer of FILE
# to /dev/DM at OFFSET with O_DIRECT (its write cannot complete before a path is back, and it
# never sits in a page cache), and wait until it is really queued: the writer is blocked in the
# kernel (state D in /proc/PID/stat) for a whole second; with every path down its write cannot
# complete, so it waits in the map's or the paths' queues (wchan: submit_bio_wait). Fails if the
# writer ends (its write failed or went through: nothing was queued) or never blocks within
# 30 s. Sets WRITER_PID. The in-flight counters are only logged: they read 0 while the request
# waits in a blocked path's queue (seen in the lab).
start_queued_writer() {
    local dm=$1 file=$2 off=$3 n=0 st i
    dd if="$file" of="/dev/$dm" bs=1M seek="$off" oflag=direct status=none &
    WRITER_PID=$!
    for i in $(seq 150); do
        if ! kill -0 "$WRITER_PID" 2>/dev/null; then
            local rc=0; wait "$WRITER_PID" || rc=$?
            fail "the O_DIRECT writer to /dev/$dm ended (exit $rc) with all paths down: its write was not queued"
        fi
        st=$(awk '{print $3}' "/proc/$WRITER_PID/stat" 2>/dev/null || echo '?')
        if [ "$st" = D ]; then n=$((n + 1)); else n=0; fi
        if [ $n -ge 5 ]; then
            log "writer (pid $WRITER_PID) queued on /dev/$dm: state D, wchan $(cat "/proc/$WRITER_PID/wchan" 2>/dev/null), in flight $(io_counters "$dm")"
            return 0
        fi
        sleep 0.2
    done
    fail "the writer (pid $WRITER_PID) to /dev/$dm never blocked in 30 s (state $st): not queued"
}

# write_dirty DM FILE OFFSET_MIB: a buffered write of FILE to /dev/DM at OFFSET that must return
# at once, its data left dirty in the map's page cache (another opener, a queued writer, keeps the
# close from syncing): only a flush (brick's) can push it to the target.
write_dirty() {
    bounded 20 dd if="$2" of="/dev/$1" bs=1M seek="$3" status=none ||
        fail "buffered write to /dev/$1 did not return at once (rc $?)"
    log "wrote $(($(stat -c %s "$2") / 1024)) KiB buffered to /dev/$1 at $3 MiB (dirty: $(grep -E '^(Dirty|Writeback):' /proc/meminfo | tr -s ' ' | tr '\n' ' '))"
}

# ---------------------------------------------------------------------------------------------
# helpers by subject, one file each (lab/lib/*.sh), sourced in name order
for _lab_lib in "$(dirname "${BASH_SOURCE[0]}")"/lib/*.sh; do
    # shellcheck source=/dev/null
    [ -e "$_lab_lib" ] && . "$_lab_lib"
done
unset _lab_lib
