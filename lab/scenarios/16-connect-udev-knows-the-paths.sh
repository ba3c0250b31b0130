#!/bin/bash
# udev must know the paths of a multipath map as such (DM_MULTIPATH_DEVICE_PATH=1): its other
# rules then leave them to the map (no file system or LVM scan of a path, no /dev/disk link to a
# path instead of the map). It learns it from `multipath -u`, which says so once the WWID is in
# the wwids file or the map exists. Here udev looked at the disks before either (sessions made
# before brick, find_multipaths strict: multipathd holds the paths without a map); brick
# registers the WWID and multipathd builds the map from both held paths at once, but
# multipathd asks udev to look again only at the paths of a map whose WWID it records itself.
# brick must ask, or udev keeps calling both disks plain disks.
set -euo pipefail
. "$LAB_DIR/lib.sh"

multipathd_strict
target_create u1 --portals 2 --luns 1
iscsi_login u1
sds=$(wait_lun_sds u1 1 2)
udevadm settle -t 60 || true
for d in $sds; do
    f=$(udev_mp_flag "$d")
    [ "$f" != 1 ] || fail "before brick: udev calls $d a multipath path already"
done
[ -z "$(lun_dm u1 1)" ] || fail "before brick: multipathd built a map for an unknown WWID"
log "before brick: udev calls ${sds//$'\n'/ } plain disks, no map"

dm=$(connect_map u1 1)
n=$(ls "/sys/block/$dm/slaves" | wc -l)
[ "$n" = 2 ] || fail "map $dm has $n path(s), not 2"
udevadm settle -t 60 || true
for d in $sds; do
    f=$(udev_mp_flag "$d")
    [ "$f" = 1 ] || fail "udev still calls $d a plain disk (DM_MULTIPATH_DEVICE_PATH=$f) although it is a path of $dm"
done
log "ok: map $dm; udev calls both paths (${sds//$'\n'/ }) multipath paths"

write_disconnect_keeps u1 1 "$dm"
