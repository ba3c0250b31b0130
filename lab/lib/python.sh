# shellcheck shell=bash
# lab/lib/python.sh: helpers for the Python package's lab suite (scenario 40). Sourced by lab/lib.sh.

# py_venv: the venv with the brick package, pytest and os-brick (made on the host by `make python`,
# python/test.sh; the VM sees it read-only). Prints its folder; fails when it is not there.
py_venv() {
    local v=${BRICK_PY_VENV:-$LAB_DIR/../target/py-venv}
    "$v/bin/python" -c 'import brick._native, pytest, os_brick' 2>/dev/null ||
        fail "no usable venv at $v (brick, pytest, os-brick): run make python on the host first"
    (cd "$v" && pwd)
}

# growable_lun NAME SERIAL: target $LAB_IQN_BASE:NAME on portals 1 and 2 with LUN 1, an iblock
# backstore on a loop device over a 32 MiB file that the test can grow (truncate, losetup -c).
# Prints "IMAGE LOOPDEV".
growable_lun() {
    local name=$1 serial=$2 img loopdev iqn dev tpg a
    modprobe -a target_core_iblock loop
    img=$LAB_STATE/$name-grow.img
    truncate -s 32M "$img"
    loopdev=$(losetup -f --show "$img")
    iqn=$(tiqn "$name")
    dev=$C/core/iblock_$(_next_id)/$name
    mkdir -p "$dev"
    echo "udev_path=$loopdev" >"$dev/control"
    echo "$serial" >"$dev/wwn/vpd_unit_serial"
    echo 1 >"$dev/enable"
    tpg=$C/iscsi/$iqn/tpgt_1
    mkdir -p "$tpg/np/$(portal 1)" "$tpg/np/$(portal 2)" "$tpg/lun/lun_1"
    ln -s "$dev" "$tpg/lun/lun_1/$name"
    for a in generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1; do
        echo "${a#*=}" >"$tpg/attrib/${a%=*}"
    done
    echo 1 >"$tpg/enable"
    # what props_json reads of a target
    mkdir -p "$(_tdir "$name")"
    echo 2 >"$(_tdir "$name")/portals"
    : >"$(_tdir "$name")/chap"
    : >"$(_tdir "$name")/chap_mutual"
    log "growable LUN: $iqn LUN 1 on $loopdev ($img)"
    echo "$img $loopdev"
}

# lab_json NAME LUN [PORTAL...]: {"props": os-brick's properties, "wwn", "backing"} of a LUN.
lab_json() {
    printf '{"props":%s,"wwn":"%s","backing":"%s"}' "$(props_json "$@")" "$(lun_wwn "$1" "$2")" \
        "$(lun_backing "$1" "$2")"
}
