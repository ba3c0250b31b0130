# shellcheck shell=bash
# lab/lib.sh: helpers for lab scenarios, one file per subject in lab/lib/ (log, target,
# initiator, data, brick, assert, reset). Sourced inside the lab VM (as root) by lab/guest.sh and
# by every lab/scenarios/*.sh. Everything here reads or writes the real kernel state: configfs for
# the LIO target, iscsiadm and sysfs for the initiator, dmsetup/multipathd for the maps.
#
# Conventions
#   - A "target" is named by a short NAME (e.g. vol1); its IQN is $LAB_IQN_BASE:NAME.
#   - Portal i (1-based) of every target is 127.0.0.i:3260.
#   - LUN l of target NAME is backed by the file /run/lab/NAME-lunl.img (LIO fileio); its
#     vpd_unit_serial is all hex and unique in the VM run, so its WWN is predictable (lun_wwid).
#     Serials start with b51c, or b51d for targets made with --no-multipath: guest.sh blacklists
#     wwids 36001405b51d* in /etc/multipath.conf so multipathd leaves those paths alone.
#   - Helpers that "return" a value print it on stdout; everything else logs to stderr.
#   - fail MSG prints the message plus a dump of the kernel state and exits 1.

# shellcheck disable=SC2034 # used by lab/lib/*.sh
C=/sys/kernel/config/target
LAB_STATE=${LAB_STATE:-/run/lab}
LAB_IQN_BASE=${LAB_IQN_BASE:-iqn.2003-01.org.linux-iscsi.lab}
# shellcheck disable=SC2034 # used by lab/lib/*.sh
LAB_PORT=3260
mkdir -p "$LAB_STATE/targets"

# ---------------------------------------------------------------------------------------------
# helpers by subject, one file each (lab/lib/*.sh), sourced in name order
for _lab_lib in "$(dirname "${BASH_SOURCE[0]}")"/lib/*.sh; do
    # shellcheck source=/dev/null
    [ -e "$_lab_lib" ] && . "$_lab_lib"
done
unset _lab_lib
