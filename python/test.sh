#!/bin/bash
# python/test.sh: build the Python package as a user would (pip install . in a fresh venv) and
# run its unit tests (python/tests, no VM), plus fmt and clippy of its crate. Run by `make
# python` (and so by `make test`). The venv is target/py-venv; the lab's pytest suite uses it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
venv=${BRICK_PY_VENV:-$ROOT/target/py-venv}

cargo fmt --all --check
cargo clippy -p brick-python --all-targets -- -D warnings
cargo build --quiet --bin brick   # the binary the root-helper tests run

# Debian's own python3 makes venvs only with python3-venv (ensurepip): install it when missing.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "python/test.sh: python3 cannot make a venv: install python3-venv" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# pytest; os-brick (the bench's pinned set) to compare exceptions with and, in the lab suite, to
# run a real os-brick process against brick's lock; oslo.rootwrap, whose own matching checks the
# filter the package ships (pkg/deb/brick.filters)
"$venv/bin/pip" install -q -c "$ROOT/bench/constraints.txt" pytest os-brick==7.1.1 oslo.rootwrap==7.10.0
"$venv/bin/pip" install -q "$ROOT"
# Test the installed package, not the source tree: run from outside it.
cd "$ROOT/python/tests"
"$venv/bin/python" -c "import brick, brick._native, sys; assert '/python/brick' not in brick.__file__, brick.__file__"
BRICK_TEST_BINARY=$ROOT/target/debug/brick "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
