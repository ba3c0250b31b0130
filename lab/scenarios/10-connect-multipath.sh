#!/bin/bash
# brick connect on two portals: one session per portal, the map with both paths, discovery that
# leaves no node record of the other target the portals offer; then disconnect: host as before.
set -euo pipefail
. "$LAB_DIR/lib.sh"

target_create v1 --portals 2 --luns 2
target_create other --portals 2 --luns 1
dm=$(connect_map v1 1)
grep -q "\"multipath_id\": *\"$(lun_wwn v1 1)\"" device_info.json || fail "device_info has no multipath_id"
assert_lun_present v1 1 2
[ -z "$(lun_sds v1 2)" ] || fail "LUN 2 was scanned too"
iscsiadm -m node 2>/dev/null | grep -q ":other" && fail "discovery left node records of target 'other'"
log "ok: no node record of the target we did not ask for"

write_disconnect_keeps v1 1 "$dm"
