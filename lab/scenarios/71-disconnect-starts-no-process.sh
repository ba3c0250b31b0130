#!/bin/bash
# A disconnect of a two-path volume starts no process where the installed open-iscsi's release
# is one brick knows (Debian 12's 2.1.8 here): the logouts go through iscsid's management socket,
# the flushes and removals through the kernel. strace(1) records every execve of brick and its
# children; the only one must be brick's own. The sessions, node records, map and disks are gone,
# and the data is on the target.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create np --portals 2 --luns 1
dm=$(connect_map np 1)
make_pattern "$LAB_STATE/np.pat" 2
write_pattern "$dm" "$LAB_STATE/np.pat" 3 buffered
strace -f -qq -e trace=execve -o execs.txt "$BRICK" disconnect props.json --device-info device_info.json \
    >/dev/null 2>disconnect.err || { cat disconnect.err >&2; fail "brick disconnect exited $?"; }
sed 's/^/    execve| /' execs.txt >&2
n=$(grep -c 'execve(' execs.txt || true)
[ "$n" = 1 ] || fail "the disconnect started $((n - 1)) process(es): $(grep -o 'execve("[^"]*"' execs.txt | tr '\n' ' ')"
log "ok: no process started (one execve: brick's own)"
assert_host_clean
assert_backing_has np 1 "$LAB_STATE/np.pat" 3
