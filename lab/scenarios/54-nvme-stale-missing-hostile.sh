#!/bin/bash
# A device_info naming another volume's namespace: that volume is untouched. A namespace the
# target does not have: connect fails in bounded time and leaves no controller. Hostile input:
# refused (exit 2) before anything is made.
set -euo pipefail
. "$LAB_DIR/lib.sh"
nvme_setup

nvme_sub_create sa 1 1
nvme_sub_create sb 1 1
nvme_props sa 1 >a.json
nvme_props sb 1 >b.json
da=$(nvme_connect_ok a.json a-info.json)
db=$(nvme_connect_ok b.json b-info.json)
bc=$(nvme_ctrls sb)
read -r brick_rc brick_secs <<<"$(run_brick disconnect a.json --device-info b-info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "disconnect of a with b's device_info exited $brick_rc"
[ -z "$(nvme_ctrls sa)" ] || nvme_fail "a's controller is left"
{ [ "$(nvme_ctrls sb)" = "$bc" ] && [ "$(nvme_head sb 1)" = "$db" ]; } || nvme_fail "b was touched"
make_pattern "$LAB_STATE/pat" 1
write_pattern "$db" "$LAB_STATE/pat" 1 fsync
assert_dev_reads "$db" "$LAB_STATE/pat" 1
log "ok: stale device_info: a gone ($da), b untouched"
read -r brick_rc brick_secs <<<"$(run_brick disconnect b.json --device-info b-info.json)"
[ "$brick_rc" = 0 ] || nvme_fail "disconnect of b exited $brick_rc"
assert_nvme_clean

# A namespace that does not exist.
printf '{"target_nqn": "%s", "vol_uuid": "0badc0de-0000-4000-8000-000000000001", "portals": [["127.0.0.1", 4420, "tcp"]]}\n' "$(nqn_of sa)" >missing.json
read -r brick_rc brick_secs <<<"$(run_brick --timeout 60 connect missing.json)"
[ "$brick_rc" = 1 ] || nvme_fail "connect of a missing namespace exited $brick_rc, not 1"
assert_nvme_clean
log "ok: missing namespace: failed after ${brick_secs}s, nothing left"

# A subsystem nobody exports, and a dead portal.
printf '{"target_nqn": "%s", "vol_uuid": "0badc0de-0000-4000-8000-000000000001", "portals": [["127.0.0.1", 4420, "tcp"], ["127.0.0.3", 4420, "tcp"]]}\n' "$(nqn_of nosuch)" >nosuch.json
read -r brick_rc brick_secs <<<"$(run_brick --timeout 60 connect nosuch.json)"
[ "$brick_rc" = 1 ] || nvme_fail "connect of a subsystem nobody exports exited $brick_rc"
assert_nvme_clean
# The same through `brick request` (the Python package's way): each portal's failure, typed,
# under "paths" (so Python raises TargetPortalsNotFound), naming the portal and the NQN.
answer=$(printf '{"op": "connect", "protocol": "nvmeof", "props": %s}\n' "$(cat nosuch.json)" |
    timeout 60 "$BRICK" request) || true
python3 - "$answer" "$(nqn_of nosuch)" <<'PY' || nvme_fail "no typed paths in the answer: $answer"
import json, sys
e = json.loads(sys.argv[1])["error"]
assert sorted(p["portal"] for p in e["paths"]) == ["127.0.0.1:4420", "127.0.0.3:4420"], e
assert all(p["nqn"] == sys.argv[2] and p["kind"] == "connect" for p in e["paths"]), e
PY
assert_nvme_clean
log "ok: every portal's failure typed in brick request's answer"

# Hostile input.
for bad in \
    '{"target_nqn": "nqn.2014-08.org.lab:sa,hostnqn=nqn.2014-08.org.evil:x", "vol_uuid": "0badc0de-0000-4000-8000-000000000001", "portals": [["127.0.0.1", 4420, "tcp"]]}' \
    '{"target_nqn": "nqn.2014-08.org.lab:sa", "vol_uuid": "0badc0de-0000-4000-8000-000000000001", "portals": [["127.0.0.1,trsvcid=1", 4420, "tcp"]]}' \
    '{"target_nqn": "nqn.2014-08.org.lab:sa", "vol_uuid": "../../etc", "portals": [["127.0.0.1", 4420, "tcp"]]}' \
    '{"nqn": "nqn.2014-08.org.lab:sa", "target_portal": "127.0.0.1", "target_port": "4420\nx", "transport_type": "tcp"}'; do
    echo "$bad" >bad.json
    read -r brick_rc brick_secs <<<"$(run_brick connect bad.json)"
    [ "$brick_rc" = 2 ] || nvme_fail "hostile input exited $brick_rc, not 2: $bad"
done
assert_nvme_clean
log "ok: hostile input refused"
