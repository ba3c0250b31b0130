# shellcheck shell=bash
# lab/lib/target.sh: the LIO iSCSI target, through configfs: targets, LUNs and their
# backing files, portals up and down, a LUN number given to another volume.

portal() { echo "127.0.0.$1:$LAB_PORT"; }
tiqn() { echo "$LAB_IQN_BASE:$1"; }
_tdir() { echo "$LAB_STATE/targets/$1"; }
# _tread NAME FILE: what the lab noted of the target (file FILE of its folder) in REPLY, with no
# subshell; _tget NAME FILE prints it.
_tread() { _rd "$LAB_STATE/targets/$1/$2"; }
_tget() {
    _tread "$1" "$2"
    echo "$REPLY"
}

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
lun_serial() { _tget "$1" "lun$2.serial"; }
# lun_backing NAME LUN: the fileio backing file of the LUN.
lun_backing() { echo "$LAB_STATE/$1-lun$2.img"; }
# lun_backstore NAME LUN: the LUN's backstore folder in LIO's configfs.
lun_backstore() { echo "$C/core/fileio_$(_tget "$1" hba)/${1}_lun$2"; }

# lun_wwid NAME LUN: the wwid the initiator reads in /sys/block/sdX/device/wwid.
# LIO builds an NAA type 6 designator: "6", the company id 001405, then the hex digits of
# vpd_unit_serial (other characters skipped), at most 25 of them, padded with zeros to 25.
lun_wwid() {
    local hex
    _tread "$1" "lun$2.serial"
    hex=${REPLY//[^0-9a-fA-F]/}
    hex=${hex,,}
    hex=${hex:0:25}
    while [ ${#hex} -lt 25 ]; do hex="${hex}0"; done
    echo "naa.6001405$hex"
}
# lun_wwn NAME LUN: the SCSI WWN as os-brick and multipath name it ("naa." replaced by "3").
lun_wwn() {
    local w
    w=$(lun_wwid "$1" "$2")
    echo "3${w#naa.}"
}

# target_create NAME [--portals N] [--luns M] [--first-lun F] [--size MB] [--tpg-per-portal]
#               [--chap USER:SECRET] [--chap-mutual USER:SECRET] [--no-multipath]
#   Creates target $LAB_IQN_BASE:NAME with portals 127.0.0.1..N:3260, LUNs F..F+M-1 (default
#   1..M; fileio, MB each, default 32), open access (demo mode). --tpg-per-portal puts each portal in its own portal
#   group (tpgt_i), exporting the same LUNs, so that one portal can be taken down alone.
#   --chap: the initiator must log in with these credentials; --chap-mutual (with --chap): the
#   target then proves itself with these (mutual CHAP).
#   --no-multipath: multipathd ignores the LUNs (blacklisted wwid): plain single-path devices.
target_create() {
    local name=$1; shift
    local portals=1 luns=1 first=1 size=32 per_portal=0 chap="" chap_mut="" prefix=b51c
    while [ $# -gt 0 ]; do
        case $1 in
            --portals) portals=$2; shift 2 ;;
            --luns) luns=$2; shift 2 ;;
            --first-lun) first=$2; shift 2 ;;
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
    for ((l = first; l < first + luns; l++)); do
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
        for ((l = first; l < first + luns; l++)); do
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
