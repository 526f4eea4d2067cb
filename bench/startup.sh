#!/usr/bin/env bash
# startup.sh: daemon start-up and restart against the number of users, with
# a flat backups folder (B/<user>.tar, what `backup` writes by default) and
# a dated one (B/<YYYY-MM-DD>/<user>.tar over three date folders).
#
#   bench/startup.sh [BUILD_DIR] [USERS...]      (default: build 10000 100000)
#
# For each count and layout: generates S (one folder a user) and B (hard
# links of one small file, so the generation is cheap) on /dev/shm, starts
# the daemon, and measures
#   socket  until the socket answers at all (a login hears "starting", 75)
#   start   until it answers as up (status exits 0): journal read, backups
#           indexed, every user registered
#   restart the same after a clean shutdown (the journal exists now)
# Linear means: each 10x of users at most 12x the time.
set -euo pipefail
BUILD=${1:-build}
shift || true
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(10000 100000)
MR=$(cd "$BUILD" && pwd)/mailrestore
base=/dev/shm
[ -w "$base" ] || base=/tmp
now() { date +%s.%N; }

gen() { # DIR USERS LAYOUT
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys
d, n, layout = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(d + "/S"); os.makedirs(d + "/B")
open(d + "/B/.seed", "wb").write(b"\0" * 1024)
dates = ["2026-11-19", "2026-11-20", "2026-11-21"]
if layout == "dated":
    for x in dates: os.mkdir(d + "/B/" + x)
for i in range(n):
    u = "user%07d" % i
    os.mkdir(d + "/S/" + u)
    if layout == "flat":
        os.link(d + "/B/.seed", d + "/B/" + u + ".tar")
    else:
        os.link(d + "/B/.seed", d + "/B/%s/%s.tar" % (dates[i % 3], u))
PY
}

run_once() { # DIR -> prints "socket start"
  local dir=$1 t0 ts="" te pid
  t0=$(now)
  "$MR" daemon --backups "$dir/B" --source "$dir/S" --target "$dir/T" --socket "$dir/sock" \
    --background off --jobs 1 2>>"$dir/log" &
  pid=$!
  while :; do
    if [ -z "$ts" ] && [ -S "$dir/sock" ]; then
      set +e; "$MR" login --socket "$dir/sock" user0000000 >/dev/null 2>&1; rc=$?; set -e
      [ "$rc" = 69 ] || ts=$(now)
    fi
    if [ -n "$ts" ]; then
      set +e; timeout 1 "$MR" status --socket "$dir/sock" >/dev/null 2>&1; rc=$?; set -e
      [ "$rc" = 0 ] && break
    fi
    kill -0 "$pid" 2>/dev/null || { echo "daemon exited; log:"; tail -5 "$dir/log"; exit 1; }
    sleep 0.02
  done
  te=$(now)
  "$MR" shutdown --socket "$dir/sock" >/dev/null
  wait "$pid"
  python3 -c "import sys; t0,ts,te=map(float,sys.argv[1:]); print('%.3f %.3f' % (ts-t0, te-t0))" "$t0" "$ts" "$te"
}

echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, commit $(git -C "$(dirname "$0")" rev-parse --short HEAD)"
printf '%-8s %-6s %10s %10s %10s %10s\n' users layout socket_s start_s restart_s gen_s
for n in "${COUNTS[@]}"; do
  for layout in flat dated; do
    dir=$(mktemp -d "$base/mr-startup.XXXXXX")
    g0=$(now); gen "$dir" "$n" "$layout"; g1=$(now)
    read -r s1 t1 < <(run_once "$dir")
    read -r s2 t2 < <(run_once "$dir")
    printf '%-8s %-6s %10s %10s %10s %10.1f\n' "$n" "$layout" "$s1" "$t1" "$t2" \
      "$(python3 -c "print($g1-$g0)")"
    rm -rf "$dir"
  done
done
