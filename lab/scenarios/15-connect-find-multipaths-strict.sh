#!/bin/bash
# multipathd with find_multipaths "strict" (upstream's default) builds a map only for a WWID listed
# in its wwids file. brick connect registers the volume's WWID first, as `multipath -a` and
# os-brick do: the map comes, with both paths. Then disconnect: data kept, host as before.
set -euo pipefail
. "$LAB_DIR/lib.sh"

multipathd_strict

target_create v1 --portals 2 --luns 1
w=$(lun_wwn v1 1)
if grep -q "/$w/" /etc/multipath/wwids 2>/dev/null; then fail "WWID $w is in the wwids file already"; fi
dm=$(connect_map v1 1)
n=$(ls "/sys/block/$dm/slaves" | wc -l)
[ "$n" = 2 ] || fail "map $dm has $n path(s), not 2"
grep -q "^/$w/\$" /etc/multipath/wwids || fail "WWID $w not in the wwids file"
[ "$(grep -c "^/$w/\$" /etc/multipath/wwids)" = 1 ] || fail "WWID $w listed more than once"
log "ok: map $dm with both paths; WWID $w registered once"

write_disconnect_keeps v1 1 "$dm"
