#!/usr/bin/env bash
# The damaged disk's bench in its short form (issue 20): a tiny partition
# on a loop device, every variant measured at the device, the restore
# verified against the source. It checks that the bench works, not what
# it measures (no size or time asserts). Skips (77) without root or loop
# devices.
set -euo pipefail
src=${MR_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${MR_BUILD:-$src/build}
exec bash "$src/bench/source_reads.sh" --short "$build"
