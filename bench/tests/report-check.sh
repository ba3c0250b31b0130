#!/bin/bash
# bench/tests/report-check.sh: bench/report.py on a small fabricated results folder, report/
# (vm/raw.json shaped as bench/conductor.py writes it, host.json as bench/run does, with failed
# cycles), must print and write report/expected.md and exit 1. No VM, no root: python3 only.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$here/report/vm" "$here/report/host.json" "$tmp/"
rc=0
python3 "$here/../report.py" "$tmp" >"$tmp/stdout" || rc=$?
[ "$rc" = 1 ] || { echo "report-check: exit status $rc, expected 1" >&2; exit 1; }
diff -u "$here/report/expected.md" "$tmp/results.md"
diff -u <(cat "$here/report/expected.md"; echo; echo "results: $tmp/results.json, $tmp/results.md") "$tmp/stdout"
python3 -m json.tool "$tmp/results.json" >/dev/null
echo "report-check: ok"
