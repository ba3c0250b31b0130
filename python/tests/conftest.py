"""Unit tests of brick's Python layer: no VM, no iSCSI. Run by python/test.sh (make python)."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def brick_binary() -> str:
    """brick's binary for the root-helper tests (python/test.sh builds it)."""
    path = os.environ.get("BRICK_TEST_BINARY") or str(ROOT / "target" / "debug" / "brick")
    if not os.access(path, os.X_OK):
        pytest.fail("no brick binary at %s: run python/test.sh (it builds it)" % path)
    return path


@pytest.fixture
def block_device(tmp_path) -> str:
    """A block device node in tmp_path for one of this machine's block devices (a loop device
    when there is one), made with mknod: needs root, as python/test.sh runs it."""
    import stat

    devs = sorted((n for n in os.listdir("/dev")
                   if stat.S_ISBLK(os.lstat(os.path.join("/dev", n)).st_mode)),
                  key=lambda n: not n.startswith("loop"))
    if not devs:
        pytest.fail("this test needs a block device in /dev")
    node = tmp_path / "disk"
    try:
        os.mknod(node, stat.S_IFBLK | 0o600, os.lstat(os.path.join("/dev", devs[0])).st_rdev)
    except PermissionError:
        pytest.fail("this test needs root (mknod of a block device node)")
    return str(node)
