#!/usr/bin/env bash
# bench/eta.sh --short: the estimates bench still works end to end (the
# mixed partition with dated sets and users without a backup, the daemon,
# logins and shows while it runs, the table). One seed, a few dozen tiny
# users: its figures are not judged here (no timing asserts in tests).
set -euo pipefail
SRC=${MR_SRC:?MR_SRC must point at the source tree}
BUILD=${MR_BUILD:?MR_BUILD must point at the build folder}
[ -x "$BUILD/bench/genpart" ] || { echo "SKIP: $BUILD/bench/genpart not built"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$(BUILD=$BUILD BENCH_DIR=$tmp "$SRC/bench/eta.sh" --short 2>&1) ||
	{ echo "$out" | tail -n 40; echo "FAIL: bench/eta.sh --short"; exit 1; }
echo "$out" | tail -n 6
# one row for the seed, with an error figure for the users asked
echo "$out" | grep -Eq '^\| 1 \| [0-9]+ \([0-9]+\) \|' || { echo "FAIL: no row for the seed"; exit 1; }
echo "$out" | grep -q 'not judged (--short)' || { echo "FAIL: no verdict line"; exit 1; }
echo "PASS"
