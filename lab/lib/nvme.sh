# shellcheck shell=bash
# lab/lib/nvme.sh: an NVMe/TCP target from the kernel's nvmet (configfs), and checks of what the
# initiator (nvme-tcp, native multipath) shows in sysfs. Sourced by lab/lib.sh.
#
# Conventions
#   - A subsystem is named by a short NAME; its NQN is $NVME_NQN_BASE:NAME.
#   - Port P (1-based) is 127.0.0.P:4420 (nvmet port id P, ANA group 1), shared by subsystems.
#   - Namespace K of NAME is backed by /run/lab/NAME-nsK.img (32 MiB, buffered_io) and has the
#     UUID nvmet gave it (nvme_ns_uuid NAME K).
#   - brick connects as NVME_HOSTNQN (/etc/nvme/hostnqn, written by nvme_setup).

NVMET=/sys/kernel/config/nvmet
NVME_NQN_BASE=${NVME_NQN_BASE:-nqn.2014-08.org.lab}
NVME_PORT=4420

nqn_of() { echo "$NVME_NQN_BASE:$1"; }
nvme_ns_backing() { echo "$LAB_STATE/$1-ns$2.img"; }
nvme_ns_uuid() { cat "$NVMET/subsystems/$(nqn_of "$1")/namespaces/$2/device_uuid"; }

# nvme_setup: modules, configfs, and a clean initiator and target (whatever a scenario before
# left: controllers, subsystems, ports).
nvme_setup() {
    modprobe -a nvmet nvmet-tcp nvme-tcp nvme-fabrics loop
    mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
    nvme_reset
}

# nvme_reset: ports back, every controller deleted, every nvmet subsystem and port removed.
nvme_reset() {
    local c p s n
    for c in /sys/class/nvme/nvme*; do
        [ -e "$c/delete_controller" ] || continue
        timeout 30 sh -c "echo 1 >$c/delete_controller" 2>/dev/null || log "nvme reset: cannot delete ${c##*/}"
    done
    for p in "$NVMET"/ports/*; do
        [ -d "$p" ] || continue
        for s in "$p"/subsystems/*; do [ -L "$s" ] && rm -f "$s"; done
        rmdir "$p" 2>/dev/null || log "nvme reset: cannot remove port ${p##*/}"
    done
    for s in "$NVMET"/subsystems/*; do
        [ -d "$s" ] || continue
        for n in "$s"/namespaces/*; do
            [ -d "$n" ] || continue
            echo 0 >"$n/enable" 2>/dev/null || true
            rmdir "$n" 2>/dev/null || true
        done
        rmdir "$s" 2>/dev/null || log "nvme reset: cannot remove subsystem ${s##*/}"
    done
    rm -f "$LAB_STATE"/*-ns*.img 2>/dev/null || true
}

# nvme_port P: make nvmet port P (127.0.0.P:4420) if it is not there.
nvme_port() {
    local d=$NVMET/ports/$1
    [ -d "$d" ] && return 0
    mkdir "$d"
    echo "127.0.0.$1" >"$d/addr_traddr"
    echo tcp >"$d/addr_trtype"
    echo "$NVME_PORT" >"$d/addr_trsvcid"
    echo ipv4 >"$d/addr_adrfam"
}

# nvme_sub_create NAME NAMESPACES PORTS [SIZE_MIB]: subsystem NAME with namespaces 1..NAMESPACES,
# exported on ports 1..PORTS.
nvme_sub_create() {
    local name=$1 nns=$2 nports=$3 size=${4:-32} nqn d k p
    nqn=$(nqn_of "$name"); d=$NVMET/subsystems/$nqn
    mkdir "$d"
    echo 1 >"$d/attr_allow_any_host"
    for k in $(seq 1 "$nns"); do nvme_ns_add "$name" "$k" "$size"; done
    for p in $(seq 1 "$nports"); do
        nvme_port "$p"
        ln -s "$d" "$NVMET/ports/$p/subsystems/$nqn"
    done
    log "nvmet subsystem $nqn: $nns namespace(s), $nports port(s)"
}

# nvme_ns_add NAME K [SIZE_MIB]: namespace K of NAME on a new backing file.
nvme_ns_add() {
    local d f
    d=$NVMET/subsystems/$(nqn_of "$1")/namespaces/$2
    f=$(nvme_ns_backing "$1" "$2")
    truncate -s "${3:-32}M" "$f"
    mkdir "$d"
    echo "$f" >"$d/device_path"
    echo 1 >"$d/buffered_io"
    echo 1 >"$d/enable"
}

# nvme_port_down NAME P / nvme_port_up NAME P: subsystem NAME leaves / rejoins port P (its
# controllers there go to `connecting` / come back).
nvme_port_down() { rm -f "$NVMET/ports/$2/subsystems/$(nqn_of "$1")"; log "nvmet: $1 off port $2"; }
nvme_port_up() {
    ln -s "$NVMET/subsystems/$(nqn_of "$1")" "$NVMET/ports/$2/subsystems/$(nqn_of "$1")"
    log "nvmet: $1 back on port $2"
}

# nvme_props NAME K [P...]: os-brick's properties (bare target format) for namespace K of NAME on
# ports P (default 1).
nvme_props() {
    local name=$1 k=$2 p sep="" portals=""
    shift 2
    [ $# -gt 0 ] || set -- 1
    for p in "$@"; do portals="${portals}${sep}[\"127.0.0.$p\", \"$NVME_PORT\", \"tcp\"]"; sep=", "; done
    printf '{"target_nqn": "%s", "vol_uuid": "%s", "portals": [%s]}\n' \
        "$(nqn_of "$name")" "$(nvme_ns_uuid "$name" "$k")" "$portals"
}

# nvme_ctrls NAME: the host's controllers of subsystem NAME (nvmeN), one a line.
nvme_ctrls() {
    local c nqn; nqn=$(nqn_of "$1")
    for c in /sys/class/nvme/nvme*; do
        [ -e "$c/subsysnqn" ] || continue
        [ "$(cat "$c/subsysnqn")" = "$nqn" ] && echo "${c##*/}"
    done
    return 0
}

# nvme_head NAME K: the block device (nvmeSnX) that shows namespace K of NAME, found by UUID.
nvme_head() {
    local u b; u=$(nvme_ns_uuid "$1" "$2")
    for b in /sys/class/nvme-subsystem/*/nvme*n*; do
        [ -e "$b/uuid" ] || continue
        [ "$(cat "$b/uuid")" = "$u" ] && echo "${b##*/}"
    done
    return 0
}

# nvme_dump: what the initiator shows, for failures.
nvme_dump() {
    local c b
    {
        echo "---- nvme state at $(uptime_s) ----"
        for c in /sys/class/nvme/nvme*; do
            [ -e "$c" ] || continue
            echo "${c##*/} $(cat "$c/state" 2>/dev/null) $(cat "$c/subsysnqn" 2>/dev/null) $(cat "$c/address" 2>/dev/null) ns: $(cd "$c" && ls -d nvme*n* 2>/dev/null | tr '\n' ' ')"
        done
        for b in /sys/class/nvme-subsystem/*/nvme*n*; do
            [ -e "$b" ] || continue
            echo "${b##*/} nsid=$(cat "$b/nsid") uuid=$(cat "$b/uuid" 2>/dev/null) size=$(cat "$b/size")"
        done
        echo "# processes in D state"; ps -eo pid,stat,wchan:32,args | awk '$2 ~ /D/' || true
    } >&2
}

nvme_fail() { nvme_dump; fail "$@"; }

# assert_nvme_clean: no controller left on the host.
assert_nvme_clean() {
    local left; left=$(ls /sys/class/nvme 2>/dev/null | tr '\n' ' ')
    [ -z "$left" ] || nvme_fail "controllers left: $left"
    log "ok: no NVMe controller left"
}

# nvme_backing_has NAME K FILE OFFSET_MIB: does namespace K's backing file hold FILE at OFFSET?
nvme_backing_has() {
    cmp -s -n "$(stat -c %s "$3")" "$3" "$(nvme_ns_backing "$1" "$2")" -i "0:$(($4 * 1024 * 1024))"
}
assert_nvme_backing_has() {
    nvme_backing_has "$@" || nvme_fail "backing file of $1 ns $2 does not hold $(basename "$3") at $4 MiB"
    log "ok: backing file of $1 ns $2 holds $(basename "$3") at $4 MiB"
}

# nvme_connect_ok PROPS OUT: `brick connect` exits 0 and writes its device_info to OUT; prints
# the device (nvme0n1).
nvme_connect_ok() {
    read -r brick_rc _ <<<"$(run_brick connect "$1")"
    [ "$brick_rc" = 0 ] || nvme_fail "brick connect $1 exited $brick_rc"
    "$BRICK" connect "$1" >"$2" 2>/dev/null || nvme_fail "second connect of $1 (reuse) failed"
    sed -n 's/.*"path": *"\/dev\/\([^"]*\)".*/\1/p' "$2"
}

# nvme_ns_remove NAME K: the target stops exporting namespace K (Cinder's terminate_connection);
# waits for the host to drop its devices (the target's namespace-changed event).
nvme_ns_remove() {
    local u d; u=$(nvme_ns_uuid "$1" "$2")
    d=$NVMET/subsystems/$(nqn_of "$1")/namespaces/$2
    echo 0 >"$d/enable"; rmdir "$d"
    log "nvmet: $1 namespace $2 ($u) removed"
    wait_until 30 "the host to drop namespace $u" sh -c "! grep -qx $u /sys/class/nvme-subsystem/*/nvme*n*/uuid /sys/class/nvme/*/nvme*n*/uuid 2>/dev/null"
}
