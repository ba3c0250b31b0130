# shellcheck shell=bash
# lab/lib/python.sh: helpers for the Python package's lab suite (scenarios 40, 41), and os-brick's
# own connector driven from a scenario (70). Sourced by lab/lib.sh.

# py_venv: the venv with the brick package, pytest and os-brick (made on the host by `make python`,
# python/test.sh; the VM sees it read-only). Prints its folder; fails when it is not there. It
# looks for the packages' files: importing os-brick to check takes ~15 s under TCG, and the
# tests import it anyway (a broken install fails there, with Python's own message).
py_venv() {
    local v=${BRICK_PY_VENV:-$LAB_DIR/../target/py-venv} sp
    sp=$(compgen -G "$v/lib/python3*/site-packages" | head -n 1) || true
    if ! { [ -x "$v/bin/python" ] && [ -n "$sp" ] && compgen -G "$sp/brick/_native*.so" >/dev/null &&
        [ -f "$sp/pytest/__init__.py" ] && [ -f "$sp/os_brick/__init__.py" ]; }; then
        fail "no usable venv at $v (brick, pytest, os-brick): run make python on the host first"
    fi
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

# py_lab_setup [--grow]: the targets of the Python suite and lab.json (BRICK_LAB_CONFIG) in the
# working folder: mp (2 portals, LUNs 1 and 2), mp2 (2 portals), sp (1 portal, LUNs 1 and 2,
# no multipath; sp7 names its missing LUN 7), ob (os-brick's volume), chap (CHAP, 1 portal),
# and with --grow the growable LUN (GROW_LOOP is its loop device, to detach at the end).
py_lab_setup() {
    target_create mp --portals 2 --luns 2
    target_create mp2 --portals 2 --luns 1
    target_create sp --portals 1 --luns 2 --no-multipath
    target_create ob --portals 1 --luns 1 --no-multipath
    target_create chap --portals 1 --luns 1 --no-multipath --chap labuser:Py-secret-4711
    local grow=""
    if [ "${1:-}" = --grow ]; then
        local serial=b51cee400001 img
        read -r img GROW_LOOP < <(growable_lun grow "$serial")
        grow=", \"grow\": {\"props\": $(props_json grow 1), \"wwn\": \"36001405${serial}0000000000000\", \"image\": \"$img\", \"loop\": \"$GROW_LOOP\"}"
    fi
    cat >lab.json <<JSON
{"brick": "$BRICK", "initiatorname": "/etc/iscsi/initiatorname.iscsi",
 "mp1": $(lab_json mp 1), "mp2": $(lab_json mp 2), "other": $(lab_json mp2 1),
 "sp1": $(lab_json sp 1), "sp7": {"props": $(props_json sp 7)}, "ob": $(lab_json ob 1),
 "chap": $(lab_json chap 1), "chap_secret": "Py-secret-4711"$grow}
JSON
}

# py_lab_pytest FILE: runs python/labtests/FILE with the venv's pytest (fails the scenario when a
# test fails), brick's info logs in the scenario's log.
py_lab_pytest() {
    local venv; venv=$(py_venv)
    log "pytest python/labtests/$1 with $venv"
    BRICK_LAB_CONFIG=$PWD/lab.json PYTHONDONTWRITEBYTECODE=1 BRICK_LOG=${BRICK_LOG:-brick=info} \
        "$venv/bin/python" -m pytest -v -p no:cacheprovider --tb=short --durations=0 \
        "$LAB_DIR/../python/labtests/$1" || fail "pytest failed"
}

# osbrick_start VAR NAME...: start os-brick (lab/lib/osbrick.py: its ISCSIConnector, privileged
# calls in-process, as Nova runs it) in the background, its pid in VAR, its output in osbrick.out
# (working folder); wait until it has connected LUN 1 of each target NAME on all its portals
# (multipath with several): properties in osb-NAME.json, what connect_volume returned in
# osb-NAME-di.json. It then waits for osbrick_kill_at. Its log goes to the scenario log.
osbrick_start() {
    local var=$1 pid n venv; shift
    venv=$(py_venv)
    for n in "$@"; do props_json "$n" 1 >"osb-$n.json"; done
    log "os-brick: connect_volume of $*"
    : >osbrick.out
    # exec: the background job's pid is os-brick's own
    (
        exec env PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" "$LAB_DIR/lib/osbrick.py" \
            "$LAB_STATE/osbrick-locks" "$@" >osbrick.out 2> >(sed -u 's/^/    os-brick| /' >&2)
    ) &
    pid=$!
    printf -v "$var" '%s' "$pid"
    for n in "$@"; do
        _osbrick_wait "$pid" 180 "connected $n" "its connect_volume of $n"
        log "os-brick connected $n: $(cat "osb-$n-di.json")"
    done
}

# _osbrick_wait PID SECS LINE WHAT: wait until osbrick.out has a line starting with LINE.
_osbrick_wait() {
    local deadline=$(($(date +%s) + $2))
    until grep -q "^$3" osbrick.out; do
        kill -0 "$1" 2>/dev/null || fail "os-brick ended before $4: $(cat osbrick.out)"
        (($(date +%s) < deadline)) || fail "os-brick did not finish $4 in $2 s"
        sleep 0.1
    done
}

# osbrick_kill_at PID NAME WORDS: the os-brick started by osbrick_start (PID) disconnects NAME in
# a worker process it forks, which stops right before the first command whose arguments include
# every word of WORDS; that worker is SIGKILLed there. Fails when the disconnect ends or fails
# before that command, or takes over 120 s to reach it.
osbrick_kill_at() {
    local pid=$1 name=$2 words=$3 worker deadline=$(($(date +%s) + 120))
    log "os-brick: disconnect_volume of $name, to be killed before: $words"
    echo "$words" >"osb-$name.go.tmp"
    mv "osb-$name.go.tmp" "osb-$name.go"
    until grep -q "^\(stopped\|ended\) $name " osbrick.out; do
        kill -0 "$pid" 2>/dev/null || fail "os-brick ended before its disconnect of $name: $(cat osbrick.out)"
        (($(date +%s) < deadline)) || fail "os-brick's disconnect of $name did not reach its kill point in 120 s"
        sleep 0.1
    done
    worker=$(sed -n "s/^stopped $name \([0-9]*\): .*/\1/p" osbrick.out)
    [ -n "$worker" ] || fail "os-brick's disconnect of $name ended before its kill point: $(grep "^ended $name " osbrick.out)"
    kill -KILL "$worker"
    _osbrick_wait "$pid" 30 "ended $name $worker signal 9" "the end of its killed worker"
    log "os-brick's disconnect of $name (pid $worker) SIGKILLed before: $(sed -n "s/^stopped $name [0-9]*: //p" osbrick.out)"
}
