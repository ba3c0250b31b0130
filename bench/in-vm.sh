#!/bin/bash
# bench/in-vm.sh: the benchmark as a lab scenario. bench/run hands it to lab/run, which runs it
# inside the lab VM (iscsid, multipathd, LIO and loopback portals already set up) with RESULTS set
# to the shared results folder; bench/run left bench.env and bench-config.json there.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=/dev/null
. "$RESULTS/bench.env"
export RESULTS LAB_DIR
exec "$BENCH_PYTHON" "$BENCH_DIR/conductor.py" "$RESULTS/bench-config.json"
