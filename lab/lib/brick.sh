# shellcheck shell=bash
# lab/lib/brick.sh: brick's inputs (connection properties, device_info) and running brick
# under a deadline, with its output in the scenario log.

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
# $BRICK_TIMEOUT or 180) and print "RC SECS": its exit status (124 if it had to be killed) and
# how long it took; never fails by itself. Its output goes to the scenario log, prefixed with
# "brick| ". Use: read -r brick_rc _ <<<"$(run_brick disconnect props.json)".
run_brick() {
    local t=${BRICK_TIMEOUT:-180}
    if [ "${1:-}" = --timeout ]; then t=$2; shift 2; fi
    local t0 out rc secs
    out=$(mktemp "$LAB_STATE/brick-out.XXXXXX")
    log "run: brick -v $*"
    t0=$(date +%s%N)
    set +e
    NO_COLOR=1 bounded "$t" "$BRICK" -v "$@" >"$out" 2>&1
    rc=$?
    set -e
    secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b-a)/1e9}')
    sed 's/\x1b\[[0-9;]*m//g; s/^/    brick| /' "$out" >&2
    rm -f "$out"
    if [ "$rc" = 124 ]; then
        log "brick did not finish within ${t}s and was killed (exit 124)"
    else
        log "brick exited $rc after ${secs}s"
    fi
    echo "$rc $secs"
}

# connect_map NAME LUN: `brick connect` LUN of target NAME on all its portals (props.json), then
# once more, which must reuse what the first made (its output in device_info.json); checks that
# both worked and that device_info names the LUN's map. Prints the map (dm-N).
connect_map() {
    props_json "$1" "$2" >props.json
    read -r brick_rc _ <<<"$(run_brick connect props.json)"
    [ "$brick_rc" = 0 ] || fail "brick connect exited $brick_rc"
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
    read -r brick_rc _ <<<"$(run_brick disconnect props.json --device-info device_info.json)"
    [ "$brick_rc" = 0 ] || fail "brick disconnect exited $brick_rc"
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

# start_brick VAR ARGS...: start "$BRICK -v ARGS" in the background (output to the scenario log);
# its pid goes into the variable named VAR.
start_brick() {
    local var=$1; shift
    log "start in background: brick -v $*"
    NO_COLOR=1 "$BRICK" -v "$@" > >(sed -u 's/\x1b\[[0-9;]*m//g; s/^/    brick(bg)| /' >&2) 2>&1 &
    printf -v "$var" '%s' "$!"
}

# run_brick_err ERRFILE [--timeout S] ARGS...: run_brick (prints "RC SECS" too), also keeping
# brick's own error lines ("brick: ..." on standard error, which is what a caller sees; not the
# -v debug log, nor the "brick: warning: ..." lines) in ERRFILE.
run_brick_err() {
    local errfile=$1 t=${BRICK_TIMEOUT:-180}; shift
    if [ "${1:-}" = --timeout ]; then t=$2; shift 2; fi
    local t0 out err rc secs
    out=$(mktemp "$LAB_STATE/brick-out.XXXXXX"); err=$(mktemp "$LAB_STATE/brick-err.XXXXXX")
    log "run: brick -v $*"
    t0=$(date +%s%N)
    set +e
    NO_COLOR=1 bounded "$t" "$BRICK" -v "$@" >"$out" 2>"$err"
    rc=$?
    set -e
    secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.2f", (b-a)/1e9}')
    sed 's/\x1b\[[0-9;]*m//g; s/^/    brick| /' "$err" "$out" >&2
    { grep '^brick: ' "$err" | grep -v '^brick: warning:' || true; } >"$errfile"
    rm -f "$out" "$err"
    log "brick exited $rc after ${secs}s; its error: $(cat "$errfile")"
    echo "$rc $secs"
}
