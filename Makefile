# brick: the two commands a newcomer needs, plus the pieces they are made of.
#   make demo   boot the lab VM and show a two-path volume attached, used, inspected and detached
#   make test   every test: formatting, lints, unit and fake-host tests, and every lab scenario
# Both install what they need (Debian packages, virtme-ng from PyPI) on a fresh machine, as root.

.PHONY: demo test check unit python lab install bench

demo: install
	lab/demo/run

test: install check unit python lab

install:
	lab/install.sh

check:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	shellcheck -s bash lab/lib.sh lab/lib/*.sh lab/guest.sh lab/run lab/install.sh lab/scenarios/*.sh lab/demo/run lab/demo/*.sh python/test.sh

unit:
	cargo test
	bench/tests/report-check.sh

# the Python package: pip install . in a fresh venv (target/py-venv), then its unit tests
python:
	python/test.sh

lab:
	lab/run

bench: install
	bench/run
