#!/bin/bash
# The Debian package that `make deb` built, installed with dpkg -i: the installed /usr/sbin/brick
# connects a volume on 2 portals and disconnects it (clean host, data kept), taking its locks in
# /run/brick as the package's tmpfiles.d entry makes it (root's only, 0700); `man brick` and
# `man brick-connect` render the pages of the package, and its bash completion completes
# `brick dis` to `disconnect`. Then dpkg --purge removes every file.
#
# What "installed" means here: the VM's root file system is the host's, read-only. This scenario
# runs in its own mount namespace (unshare -m) where /usr, /var/lib/dpkg, /var/cache and /var/log
# are overlays whose writable layer is a tmpfs: a real `dpkg -i` (the host's status database and
# dpkg, the package's postinst, man-db's trigger) writes there, the binary runs from there, and it
# all vanishes with the scenario; nothing reaches the host. /etc, /run, /sys and /dev are the VM's
# own, shared with iscsid, multipathd and udevd, as for an installed brick.
#
# The package: $BRICK_DEB (lab/run passes it on), else the newest target/debian/brick_*.deb of
# this checkout. A package older than $BRICK (the build under test) is refused: it would test a
# stale build (`make test` runs `make deb` before the lab).
set -euo pipefail

if [ -z "${LAB_DEB_NS:-}" ]; then
    LAB_DEB_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
. "$LAB_DIR/lib.sh"

# --- the package
deb=${BRICK_DEB:-}
if [ -z "$deb" ]; then
    for f in "$LAB_DIR"/../target/debian/brick_*.deb; do
        [ -f "$f" ] || continue
        if [ -z "$deb" ] || [ "$f" -nt "$deb" ]; then deb=$f; fi
    done
fi
[ -f "$deb" ] || fail "no brick .deb (BRICK_DEB unset, none in target/debian): run make deb first"
deb=$(readlink -f "$deb")
[ ! "$BRICK" -nt "$deb" ] || fail "$deb is older than the brick under test ($BRICK): run make deb again"
log "package: $deb ($(stat -c %s "$deb") bytes)"

# --- writable layers for dpkg, in this mount namespace only
layers=$LAB_STATE/deb-layers
mkdir -p "$layers"
mount -t tmpfs -o size=256m,mode=0700 deb-layers "$layers"
for d in /usr /var/lib/dpkg /var/lib/man-db /var/cache /var/log; do
    l=$layers/${d//\//_}
    mkdir -p "$l/upper" "$l/work"
    mount -t overlay deb-overlay -o "lowerdir=$d,upperdir=$l/upper,workdir=$l/work,xino=off" "$d" ||
        fail "cannot put a writable overlay on $d"
done
log "overlays: $(findmnt -rn -t overlay -o TARGET | tr '\n' ' ')"
# man-db's trigger would rebuild its index of every page on the host (mandb), minutes over 9p
# under TCG: off, as the debconf answer man-db/auto-update=false does. man finds the pages
# without it.
rm -f /var/lib/man-db/auto-update
! dpkg-query -W brick >/dev/null 2>&1 || fail "a brick package is installed already: $(dpkg-query -W brick)"

# --- install
log "dpkg -i $deb"
bounded 150 dpkg -i "$deb" > >(sed -u 's/^/    dpkg| /' >&2) 2>&1 || fail "dpkg -i $deb failed or hung"
st=$(dpkg-query -W -f='${Status} ${Version}' brick)
[[ $st == "install ok installed "* ]] || fail "brick is not installed after dpkg -i: $st"
deps=$(dpkg-query -W -f='Depends: ${Depends}; Recommends: ${Recommends}' brick)
[[ $deps == *"Depends: libc6"* ]] || fail "the package does not depend on libc6: $deps"
[[ $deps == *"Recommends: open-iscsi, multipath-tools"* ]] || fail "open-iscsi and multipath-tools are not recommended: $deps"
log "ok: $st; $deps"
[ "$(dpkg -S /usr/sbin/brick)" = "brick: /usr/sbin/brick" ] || fail "/usr/sbin/brick is not the package's: $(dpkg -S /usr/sbin/brick 2>&1)"
files=$(dpkg -L brick)
for f in /usr/sbin/brick /usr/lib/tmpfiles.d/brick.conf /usr/share/man/man8/brick.8.gz \
    /usr/share/man/man8/brick-connect.8.gz /usr/share/man/man8/brick-disconnect.8.gz \
    /usr/share/bash-completion/completions/brick /usr/share/zsh/vendor-completions/_brick \
    /usr/share/fish/vendor_completions.d/brick.fish \
    /usr/share/doc/brick/examples/rootwrap.d/brick.filters /usr/share/doc/brick/examples/sudoers.d/brick; do
    grep -qx "$f" <<<"$files" || fail "$f is not in the package"
    [ -f "$f" ] || fail "$f is not on disk after dpkg -i"
done
# The build under test from here on: the helpers run $BRICK.
want=$("$BRICK" --version)
BRICK=/usr/sbin/brick
got=$("$BRICK" --version) || fail "the installed brick does not run"
[ "$got" = "$want" ] || fail "installed brick --version says '$got', the build under test '$want'"
log "ok: installed $BRICK runs: $got"

# --- tmpfiles.d: the postinst applies it where systemd runs (not in this VM): apply it by hand
# as systemd-tmpfiles does at boot, on a /run with no /run/brick yet.
rm -rf /run/brick
systemd-tmpfiles --create /usr/lib/tmpfiles.d/brick.conf || fail "systemd-tmpfiles --create brick.conf failed"
[ "$(stat -c '%F %a %U:%G' /run/brick)" = "directory 700 root:root" ] ||
    fail "/run/brick is $(stat -c '%F %a %U:%G' /run/brick), not a directory 700 root:root"
log "ok: tmpfiles.d made /run/brick 0700 root:root"

# --- connect and disconnect with the installed binary
target_create v1 --portals 2 --luns 1
dm=$(connect_map v1 1)
assert_lun_present v1 1 2
locks=$(find /run/brick -name '*.lock' | tr '\n' ' ')
[ -n "$locks" ] || fail "the installed brick took no lock in /run/brick"
[ "$(stat -c %a /run/brick)" = 700 ] || fail "/run/brick is $(stat -c %a /run/brick) after connect"
log "ok: locks in /run/brick: $locks"
write_disconnect_keeps v1 1 "$dm"
assert_target_gone v1

# --- man pages
export LC_ALL=C MANWIDTH=200 MANPAGER=cat PAGER=cat
[ "$(man -w brick)" = /usr/share/man/man8/brick.8.gz ] || fail "man -w brick: $(man -w brick 2>&1)"
page=$(man brick 2>&1) || fail "man brick failed: $page"
for s in connect disconnect extend paths properties inspect; do
    [ "$(man -w "brick-$s")" = "/usr/share/man/man8/brick-$s.8.gz" ] || fail "man -w brick-$s: $(man -w "brick-$s" 2>&1)"
    grep -q "brick-$s(8)" <<<"$page" || fail "man brick does not list brick-$s(8): $page"
done
page=$(man brick-connect 2>&1) || fail "man brick-connect failed: $page"
for want in '^NAME' '^ *brick-connect - Attach a volume' '^ *--single-path'; do
    grep -q -- "$want" <<<"$page" || fail "man brick-connect shows no '$want': $page"
done
log "ok: man brick and man brick-connect render ($(wc -l <<<"$page") lines)"

# --- bash completion, as bash-completion loads it for the command brick
comp=$(bash -c 'source /usr/share/bash-completion/completions/brick
    complete -p brick
    COMP_WORDS=(brick dis); COMP_CWORD=1; COMP_LINE="brick dis"; COMP_POINT=9
    _brick brick dis brick
    echo "reply: ${COMPREPLY[*]}"' 2>&1) || fail "the bash completion failed: $comp"
log "bash: $(tr '\n' ' ' <<<"$comp")"
grep -q '^complete .*-F _brick brick$' <<<"$comp" || fail "sourcing the completion registers no function for brick"
grep -qx 'reply: disconnect' <<<"$comp" || fail "brick dis does not complete to disconnect: $comp"
log "ok: bash completes 'brick dis' to 'disconnect'"

# --- removal
bounded 60 dpkg --purge brick > >(sed -u 's/^/    dpkg| /' >&2) 2>&1 || fail "dpkg --purge brick failed or hung"
for f in /usr/sbin/brick /usr/lib/tmpfiles.d/brick.conf /usr/share/man/man8/brick.8.gz /usr/share/bash-completion/completions/brick; do
    [ ! -e "$f" ] || fail "$f is still there after dpkg --purge"
done
log "ok: dpkg --purge removed the package's files"
