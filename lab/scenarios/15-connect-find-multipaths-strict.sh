#!/bin/bash
# multipathd with find_multipaths "strict" (upstream's default) builds a map only for a WWID listed
# in its wwids file. brick connect registers the volume's WWID first, as `multipath -a` and
# os-brick do: the map comes, with both paths. Then disconnect: data kept, host as before.
set -euo pipefail
. "$LAB_DIR/lib.sh"

cp /etc/multipath.conf "$LAB_STATE/multipath.conf.orig"
restore() {
    cp "$LAB_STATE/multipath.conf.orig" /etc/multipath.conf
    multipathd reconfigure >/dev/null 2>&1 || true
}
trap restore EXIT
sed -i 's/find_multipaths no/find_multipaths strict/' /etc/multipath.conf
multipathd reconfigure >/dev/null
wait_until 30 "multipathd to run with find_multipaths strict" \
    sh -c 'multipathd show config 2>/dev/null | grep -Eq "find_multipaths \"?strict"'

target_create v1 --portals 2 --luns 1
w=$(lun_wwn v1 1)
if grep -q "/$w/" /etc/multipath/wwids 2>/dev/null; then fail "WWID $w is in the wwids file already"; fi
props_json v1 1 >props.json
run_brick connect props.json
[ "$BRICK_RC" = 0 ] || fail "brick connect exited $BRICK_RC"
"$BRICK" connect props.json >device_info.json 2>/dev/null || fail "second connect failed"
dm=$(lun_dm v1 1)
[ -n "$dm" ] || fail "no multipath map for LUN 1 under find_multipaths strict"
grep -q "\"path\": *\"/dev/$dm\"" device_info.json || fail "device_info path is not /dev/$dm: $(cat device_info.json)"
n=$(ls "/sys/block/$dm/slaves" | wc -l)
[ "$n" = 2 ] || fail "map $dm has $n path(s), not 2"
grep -q "^/$w/\$" /etc/multipath/wwids || fail "WWID $w not in the wwids file"
[ "$(grep -c "^/$w/\$" /etc/multipath/wwids)" = 1 ] || fail "WWID $w listed more than once"
log "ok: map $dm with both paths; WWID $w registered once"

make_pattern "$LAB_STATE/pat" 2
write_pattern "$dm" "$LAB_STATE/pat" 5 buffered
run_brick disconnect props.json --device-info device_info.json
[ "$BRICK_RC" = 0 ] || fail "brick disconnect exited $BRICK_RC"
assert_host_clean
assert_backing_has v1 1 "$LAB_STATE/pat" 5
