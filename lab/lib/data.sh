# shellcheck shell=bash
# lab/lib/data.sh: data written and checked: patterns, writes through the page cache or
# O_DIRECT, what a backing file holds, writers queued on dead paths.

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
    local dm=$1 file=$2 off=$3 n=0 st
    dd if="$file" of="/dev/$dm" bs=1M seek="$off" oflag=direct status=none &
    WRITER_PID=$!
    for _ in $(seq 150); do
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
