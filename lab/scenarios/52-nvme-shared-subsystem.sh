#!/bin/bash
# Two volumes in one subsystem (two namespaces, two portals): the second connect reuses the
# controllers; disconnecting the first deletes no controller and leaves the second's head
# working; once the target unmaps the first's namespace (as Cinder does after a detach),
# disconnecting the second leaves a clean host.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup

nvme_sub_create sh 2 2
nvme_props sh 1 1 2 >a.json
nvme_props sh 2 1 2 >b.json
da=$(nvme_connect_ok a.json a-info.json)
db=$(nvme_connect_ok b.json b-info.json)
[ "$(nvme_ctrls sh | wc -l)" = 2 ] || nvme_fail "expected the 2 controllers to be shared: $(nvme_ctrls sh | tr '\n' ' ')"
{ [ "$da" != "$db" ] && [ "$db" = "$(nvme_head sh 2)" ]; } || nvme_fail "b's device is /dev/$db"
ctrls=$(nvme_ctrls sh | tr '\n' ' ')

read -r brick_rc _ <<<"$(run_brick disconnect a.json --device-info a-info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "disconnect of a exited $brick_rc"
[ "$(nvme_ctrls sh | tr '\n' ' ')" = "$ctrls" ] || nvme_fail "controllers changed: $ctrls -> $(nvme_ctrls sh | tr '\n' ' ')"
[ "$(nvme_head sh 2)" = "$db" ] || nvme_fail "b's head /dev/$db is gone"
make_pattern "$LAB_STATE/pat" 1
write_pattern "$db" "$LAB_STATE/pat" 2 fsync
assert_dev_reads "$db" "$LAB_STATE/pat" 2
log "ok: a disconnected, b's controllers and head kept and working"
nvme_ns_remove sh 1

read -r brick_rc _ <<<"$(run_brick disconnect b.json --device-info b-info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "disconnect of b exited $brick_rc"
assert_nvme_clean
assert_nvme_backing_has sh 2 "$LAB_STATE/pat" 2
