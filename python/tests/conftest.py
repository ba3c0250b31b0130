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
