# brick: the two commands a newcomer needs, plus the pieces they are made of.
#   make demo   boot the lab VM and show a two-path volume attached, used, inspected and detached
#   make test   every test: formatting, lints, unit and fake-host tests, and every lab scenario
#   make deb    the Debian package, target/debian/brick_*.deb (pkg/deb/build; the lab installs it)
# Each installs what it needs on a fresh machine, as root (Debian packages, virtme-ng from PyPI,
# cargo-deb from crates.io).

.PHONY: demo test check unit python lab install bench deb

demo: install
	lab/demo/run

test: install check unit python deb lab

install:
	lab/install.sh

check:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	shellcheck -s bash lab/lib.sh lab/lib/*.sh lab/guest.sh lab/run lab/install.sh lab/scenarios/*.sh lab/demo/run lab/demo/*.sh python/test.sh pkg/deb/build

unit:
	cargo test
	bench/tests/report-check.sh

# the Python package: pip install . in a fresh venv (target/py-venv), then its unit tests
python:
	python/test.sh

lab:
	lab/run

deb:
	pkg/deb/build

bench: install
	bench/run
