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
[ "$(cat "/sys/kernel/config/target/iscsi/$(tiqn m1)/tpgt_1/auth/authenticate_target")" = 1 ] ||
    fail "the target does not authenticate itself (mutual CHAP not set up)"
props_json m1 1 >props.json
grep -q "\"auth_reverse_password\":\"$mutual\"" props.json || fail "props carry no reverse secret"

connect_keeps_secrets "$secret" "$mutual"
assert_lun_present m1 1 2
disconnect_clean

# The target's proof no longer matches what the initiator expects.
sed "s/$mutual/Wrong-Mutual-9/" props.json >wrong.json
connect_refused wrong.json Wrong-Mutual-9 "a wrong reverse secret"
grep -q "auth_reverse_password" refused.log || fail "the error does not point at the reverse CHAP credentials"
assert_host_clean
