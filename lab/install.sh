#!/bin/bash
# lab/install.sh: install what the lab needs on a Debian 12 machine, as root. Idempotent: when
# everything is present it only checks (well under a second) and prints one line.
#   Debian: qemu-system-x86 linux-image-amd64 open-iscsi multipath-tools iproute2 kmod mdadm
#           busybox-static (virtme-ng needs a static busybox for its initramfs; it replaces the
#           dynamic busybox package), the shell linter that `make check` runs on the lab, strace
#           (scenario 71 counts the processes a disconnect starts), man-db and systemd (for
#           systemd-tmpfiles) where scenario 30 checks the installed package's man pages and
#           tmpfiles.d entry, nvme-cli (os-brick's NVMe-oF connector and the benchmark's NVMe
#           floor run it; brick does not), and util-linux/coreutils tools that are always there.
#   PyPI:   virtme-ng 1.42 (provides vng; the version the lab was proven with), when vng is not
#           on PATH.
# Services that the packages would start on the host are not started (policy-rc.d denies them
# for the duration of the install); the lab runs iscsid and multipathd inside its VM only.
set -euo pipefail

say() { printf 'lab/install: %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { say "run as root"; exit 1; }

pkgs=(qemu-system-x86 linux-image-amd64 open-iscsi multipath-tools iproute2 kmod busybox-static shellcheck
    strace mdadm man-db systemd nvme-cli)
missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing+=("$p")
done
# the kernel image must be readable and have its modules
if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
    [[ " ${missing[*]} " == *" linux-image-amd64 "* ]] || missing+=(linux-image-amd64)
fi

if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # keep services from starting on the host while we install (restored afterwards)
    prc=/usr/sbin/policy-rc.d
    added_prc=0
    if [ ! -e "$prc" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"; added_prc=1
    fi
    trap 'if [ $added_prc = 1 ]; then rm -f "$prc"; fi' EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    say "packages installed"
fi

if ! command -v vng >/dev/null 2>&1; then
    say "installing virtme-ng from PyPI"
    if command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1; then
        pip=$(command -v pip3 || command -v pip)
        # Debian's own python refuses system-wide pip installs (PEP 668) unless told otherwise
        "$pip" install -q virtme-ng==1.42 2>/dev/null || "$pip" install -q --break-system-packages virtme-ng==1.42
    else
        [ ${#missing[@]} -gt 0 ] || apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
        pip3 install -q --break-system-packages virtme-ng==1.42
    fi
    hash -r
    command -v vng >/dev/null 2>&1 || { say "vng still not on PATH after pip install (check pip's bin dir)"; exit 1; }
fi

say "ready: $(vng --version 2>/dev/null | head -1), $(qemu-system-x86_64 --version | head -1 | cut -d' ' -f1-4), kernel(s) $(ls /boot/vmlinuz-* | tr '\n' ' ')"
