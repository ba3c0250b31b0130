"""The root boundary the package ships: its oslo.rootwrap filter and sudoers example let an
unprivileged service run exactly the command the package runs through its root helper
(`brick request`), and nothing else of brick."""

import re
import shlex
import shutil

from oslo_rootwrap import wrapper

from brick import _transport
from conftest import ROOT

FILTERS = ROOT / "pkg" / "deb" / "brick.filters"
SUDOERS = ROOT / "pkg" / "deb" / "brick.sudoers"
ROOTWRAP = "sudo nova-rootwrap /etc/nova/rootwrap.conf"

# What a caller of the root helper could try instead of `brick request`.
REFUSED = [
    ["cleanup", "--apply"],
    ["--set", "lock_dir=/tmp/x", "request"],
    ["request", "--set", "lock_dir=/tmp/x"],
    ["--config", "/tmp/brick.toml", "request"],
    ["request", "--config", "/tmp/brick.toml"],
    ["disconnect", "vol.json", "--force"],
    ["request", "extra"],
    [],
]


def package_argv(binary):
    """The command the package runs through rootwrap, less rootwrap's own words."""
    argv = _transport.helper_argv(ROOTWRAP, binary)
    assert argv[:3] == shlex.split(ROOTWRAP)
    return argv[3:]


def matching(filters_dir, userargs):
    """The shipped filters that let `userargs` run, as rootwrap loads them from its folder."""
    filters = [f for f in wrapper.load_filters([str(filters_dir)])
               if f.name != "privsep-helper"]
    return [f for f in filters if f.match(userargs)]


def test_rootwrap_filter_lets_the_package_run_brick_request_and_nothing_else(tmp_path):
    # As installed: alone with other services' filters in the service's rootwrap.d folder.
    shutil.copy(FILTERS, tmp_path / "brick.filters")

    def matching_(userargs):
        return matching(tmp_path, userargs)
    # The binary the package names: brick on PATH, or the package's /usr/sbin/brick.
    for binary in ["brick", "/usr/sbin/brick"]:
        userargs = package_argv(binary)
        assert userargs == [binary, "request"]
        found = matching_(userargs)
        assert len(found) == 1, (userargs, found)
        # rootwrap runs the filter's path, whatever the caller named.
        assert found[0].get_command(userargs) == ["/usr/sbin/brick", "request"]
        assert found[0].run_as == "root"
    for binary in ["brick", "/usr/sbin/brick"]:
        for args in REFUSED:
            assert matching_([binary] + args) == [], args
    assert matching_(["/tmp/brick", "request"]) == []


def test_package_falls_back_to_the_path_the_filters_name(monkeypatch):
    monkeypatch.delenv("BRICK_BINARY", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(_transport.os, "access", lambda p, mode: p == "/usr/sbin/brick")
    assert _transport.find_brick_binary(None) == "/usr/sbin/brick"


def sudoers_allows(argv):
    """Whether the example's one rule lets its user run `argv` as root: sudo matches a command
    with arguments exactly (no wildcard is used), and one without arguments matches any."""
    text = SUDOERS.read_text()
    aliases = dict(re.findall(r"^Cmnd_Alias\s+(\w+)\s*=\s*(.+)$", text, re.M))
    rules = re.findall(r"^(\w+)\s+ALL\s*=\s*\(root\)\s*NOPASSWD:\s*(\w+)\s*$", text, re.M)
    assert len(rules) == 1, rules
    allowed = shlex.split(aliases[rules[0][1]])
    assert not any(c in " ".join(allowed) for c in "*?[\\"), "a wildcard widens the rule"
    assert len(allowed) > 1, "a command without arguments would allow every argument"
    return argv == allowed


def test_sudoers_example_allows_the_package_argv_only():
    argv = _transport.helper_argv("sudo", "/usr/sbin/brick")
    assert argv[0] == "sudo"
    assert sudoers_allows(argv[1:])
    for args in REFUSED:
        assert not sudoers_allows(["/usr/sbin/brick"] + args), args
