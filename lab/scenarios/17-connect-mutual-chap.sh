#!/bin/bash
# Mutual CHAP: the initiator proves itself to the target and the target to the initiator. With
# both secrets right, connect works on both portals (and neither secret shows in brick's logs);
# with a wrong reverse secret the target's proof does not match, iscsid refuses the target, and
# the connect fails leaving no session, node record or device.
set -euo pipefail
. "$LAB_DIR/lib.sh"

secret=Lab-Chap-S3cret
mutual=Lab-Mutual-S3cret
target_create m1 --portals 2 --luns 1 --chap "labuser:$secret" --chap-mutual "labtarget:$mutual"
[ "$(cat /sys/kernel/config/target/iscsi/$(tiqn m1)/tpgt_1/auth/authenticate_target)" = 1 ] ||
    fail "the target does not authenticate itself (mutual CHAP not set up)"
props_json m1 1 >props.json
grep -q "\"auth_reverse_password\":\"$mutual\"" props.json || fail "props carry no reverse secret"

NO_COLOR=1 "$BRICK" -v connect props.json >device_info.json 2>connect.log || { cat connect.log >&2; fail "connect with both secrets right failed"; }
for s in "$secret" "$mutual"; do
    grep -qF "$s" connect.log && fail "a CHAP secret is in brick's debug log"
done
assert_lun_present m1 1 2
log "ok: connected with mutual CHAP on both portals; no secret in the log ($(wc -l <connect.log) lines)"
run_brick disconnect props.json --device-info device_info.json
[ "$BRICK_RC" = 0 ] || fail "brick disconnect exited $BRICK_RC"
assert_host_clean

# The target's proof no longer matches what the initiator expects.
sed "s/$mutual/Wrong-Mutual-9/" props.json >wrong.json
set +e
NO_COLOR=1 "$BRICK" -v connect wrong.json >/dev/null 2>wrong.log
rc=$?
set -e
sed 's/^/    brick| /' wrong.log >&2
[ "$rc" != 0 ] || fail "connect with a wrong reverse secret succeeded"
grep -qF "Wrong-Mutual-9" wrong.log && fail "the wrong reverse secret is in brick's output"
log "ok: a target that cannot prove itself is refused (exit $rc)"
assert_host_clean
