#!/usr/bin/env bash
# Login hook benchmark (docs/BENCHMARKS.md, "Daemon and login hook"):
#   1. latency and throughput of LOGIN at the socket with 10,000 queued
#      users (bench_login: persistent connections, paced and flat out);
#   2. the CLI `mailrestore login` per call, beside /bin/true (process start);
#   3. how long a login-triggered small user waits to start, and to go
#      active, while both workers (--jobs 2) restore large background users.
# usage: bench/login.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MR=$BUILD/mailrestore BL=$BUILD/bench/bench_login
[ -x "$MR" ] && [ -x "$BL" ] || { echo "build first: $MR and $BL"; exit 1; }
dir=$(mktemp -d /tmp/mr-bench-login.XXXXXX)
DPID=
trap 'if [ -n "$DPID" ]; then kill -9 "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; fi; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
SOCK=$dir/mr.sock
wait_sock() { for _ in $(seq 1 400); do "$MR" status --socket "$SOCK" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "no daemon"; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"

if [ -z "${ONLY3:-}" ]; then
# 1. the socket, 10,000 queued users
N=10000
seq -f "user%05g" 1 "$N" > "$dir/users"
mkdir -p "$dir/S" "$dir/T"
"$MR" daemon --source "$dir/S" --target "$dir/T" --users "$dir/users" --background off \
  --socket "$SOCK" 2>"$dir/daemon1.log" & DPID=$!
wait_sock
"$MR" pause --socket "$SOCK" >/dev/null
"$MR" enqueue --socket "$SOCK" --priority --file "$dir/users" >/dev/null
echo "queued: $("$MR" status --socket "$SOCK" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["queued"])')"
echo "-- socket, paced at 10,000 req/s (8 connections, 100,000 logins of queued users)"
"$BL" "$SOCK" "$N" user 8 100000 10000
echo "-- socket, flat out (4 connections, 200,000 logins)"
"$BL" "$SOCK" "$N" user 4 200000 0
echo "-- socket, flat out (64 connections, 200,000 logins)"
"$BL" "$SOCK" "$N" user 64 200000 0

# 2. the CLI, one process per login, beside /bin/true
R=2000
t0=$(date +%s.%N)
for i in $(seq 1 $R); do /bin/true; done
t1=$(date +%s.%N)
for i in $(seq 1 $R); do "$MR" login --socket "$SOCK" "user0$((i % 9000 + 1000))" >/dev/null || true; done
t2=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$R" <<'PY'
import sys
t0, t1, t2, r = map(float, sys.argv[1:])
print("-- CLI: /bin/true %.0f us per run; mailrestore login %.0f us per run (%d runs, sequential)" % ((t1 - t0) / r * 1e6, (t2 - t1) / r * 1e6, r))
PY
kill -TERM "$DPID"; wait "$DPID" || true; DPID=
fi

# 3. a login while both workers restore large background users
S=$dir/S3 B=$dir/B3 T=$dir/T3
mkdir -p "$S" "$B"
mkbig() { mkdir -p "$S/$1"/{cur,new,tmp}; for i in $(seq 1 "$2"); do head -c "$3" /dev/urandom > "$S/$1/cur/17$i.M${i}P1.h:2,S"; done; }
mkbig small 20 3000
for u in big1 big2 big3; do mkbig "$u" 4000 60000; done
"$MR" backup --source "$S" --out "$B" --compress none >/dev/null
# only requested users run: the big ones come through the plain enqueue
# lane (not priority), the small one through a login
"$MR" daemon --backups "$B" --source "$S" --target "$T" --jobs 2 --socket "$SOCK" \
  --background off 2>"$dir/daemon3.log" & DPID=$!
wait_sock
"$MR" enqueue --socket "$SOCK" big1 big2 big3 >/dev/null
for _ in $(seq 1 200); do
  busy=$("$MR" status --socket "$SOCK" --json | python3 -c 'import json,sys; print(sum(1 for w in json.load(sys.stdin)["workers"] if w["user"] and w["user"].startswith("big")))')
  [ "$busy" = 2 ] && break; sleep 0.02
done
sleep 0.3
"$MR" login --socket "$SOCK" small >/dev/null || true
for _ in $(seq 1 1000); do
  [ "$("$MR" show --socket "$SOCK" --json small | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = active ] && break
  sleep 0.02
done
"$MR" show --socket "$SOCK" --json small | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("-- login while 2 workers restore big users (3 x 240 MB, plain enqueue): small user started %.3f s after its login, active after %.3f s (state %s)" % (d["started_at"] - d["requested_at"], d["finished_at"] - d["requested_at"], d["state"]))'
sed -n 's/.*\(big[0-9]: active in [0-9.]* s\).*/   daemon: \1/p' "$dir/daemon3.log"
grep -E "pausing|paused after" "$dir/daemon3.log" | sed 's/^/   daemon: /' | head -4
kill -TERM "$DPID"; wait "$DPID" || true; DPID=
