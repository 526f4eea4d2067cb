#!/usr/bin/env bash
# One command: install what is missing, build with -Werror, run the whole
# test suite; then the same under AddressSanitizer + UndefinedBehaviorSanitizer;
# then the libFuzzer targets briefly (when clang is there).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== build (-Werror) and tests"
MR_WITH_CLANG=1 scripts/setup.sh -DMR_WERROR=ON
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600

if [ "${MR_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== sanitizer build (ASan+UBSan) and tests"
  MR_BUILD_DIR=build-asan scripts/setup.sh -DMR_WERROR=ON -DMR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900 ${MR_ASAN_CTEST_ARGS:-}
fi

if [ "${MR_SKIP_FUZZ:-0}" != 1 ] && command -v clang >/dev/null; then
  echo "== fuzz targets (brief)"
  CC=clang MR_BUILD_DIR=build-fuzz scripts/setup.sh -DMR_FUZZ=ON -DMR_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug
  for f in build-fuzz/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    corpus=fuzz/corpus/$(basename "$f")
    mkdir -p "$corpus"
    # a real Cyrus index to start from (tests/sync/data/)
    [ "$(basename "$f")" = fuzz_cyrusindex ] && { cp -n tests/sync/data/cyrus36.index "$corpus/" || true; }
    echo "-- $f"
    "$f" -max_total_time="${MR_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 "$corpus" 2>&1 | tail -n 3
  done
fi
# Reached only when every step passed (set -e): the counts of both runs.
total=$(ctest --test-dir build -N | sed -n 's/^Total Tests: //p')
if [ "${MR_SKIP_SANITIZE:-0}" != 1 ]; then
  total=$((total + $(ctest --test-dir build-asan -N | sed -n 's/^Total Tests: //p')))
fi
echo "== all tests passed"
echo "ctest: $total passed, 0 failed"
