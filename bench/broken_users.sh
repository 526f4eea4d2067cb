#!/usr/bin/env bash
# broken_users.sh: how much 3 broken users and a misbehaving local client
# delay everyone else (issue 10): the daemon restores HEALTHY users
# (default 40, --jobs 2, background on, --exit-when-done) twice from the
# same backups:
#   clean   the healthy users only;
#   broken  the same plus mallory (source tmp/ a symlink, mail held for
#           her), lena (a 255-byte message name the attic already holds)
#           and dora (a 6000-level folder), with a client that sends QUEUE
#           without ever reading the replies.
# Reported: wall time until the daemon is done, median of REPS runs each,
# and the ratio broken / clean (1.0 = no delay at all). Each run starts from
# a fresh T; the page cache is warm for both.
# Usage: cmake --build build && bench/broken_users.sh   (env HEALTHY, REPS)
set -euo pipefail
MR=${MR_BIN:-$(dirname "$0")/../build/mailrestore}
HEALTHY=${HEALTHY:-40}
REPS=${REPS:-3}
dir=$(mktemp -d /tmp/mr-bench-broken.XXXXXX)
trap 'rm -rf "$dir"' EXIT

mkpart() { # mkpart S B WITH_BROKEN
  local S=$1 B=$2 u i
  mkdir -p "$S" "$B"
  for u in $(seq -f "u%03g" 1 "$HEALTHY") ${3:+mallory lena dora}; do
    mkdir -p "$S/$u"/{cur,new,tmp} "$S/$u/.Sent"/{cur,new,tmp}
    for i in $(seq 1 100); do
      head -c $((2000 + i * 97)) /dev/urandom > "$S/$u/cur/17000$i.M${i}P1.host,S=$i:2,S"
    done
  done
  [ -n "${3:-}" ] || { "$MR" backup --source "$S" --out "$B" >/dev/null; return; }
  long=$(printf 'x%.0s' $(seq 1 255)); long=${long:0:255}
  echo "long" > "$S/lena/cur/$long"
  "$MR" backup --source "$S" --out "$B" >/dev/null
  rm "$S/lena/cur/$long"
  rm -rf "$S/mallory/tmp"; ln -s /etc "$S/mallory/tmp"
  python3 - "$S/dora/.Deep" <<'PY'
import os, sys
os.mkdir(sys.argv[1]); fd = os.open(sys.argv[1], os.O_RDONLY)
for i in range(6000):
    os.mkdir("d", dir_fd=fd); sub = os.open("d", os.O_RDONLY, dir_fd=fd); os.close(fd); fd = sub
os.close(fd)
PY
}

run() { # run S B WITH_BROKEN -> prints seconds
  local S=$1 B=$2 T=$dir/T sock=$dir/mr.sock rude= t0 t1
  rm -rf "$T"; mkdir -p "$T"
  if [ -n "$3" ]; then
    mkdir -p "$T/.mailrestore/attic/lena/cur"
    echo earlier > "$T/.mailrestore/attic/lena/cur/$long"
  fi
  sync
  t0=$(date +%s.%N)
  "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$sock" --jobs 2 \
    --exit-when-done >>"$dir/daemon.log" 2>&1 &
  local dpid=$!
  if [ -n "$3" ]; then
    for i in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.01; done
    printf 'Subject: held\n\nx\n' | "$MR" deliver --socket "$sock" mallory >/dev/null 2>&1 || true
    python3 - "$sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.setblocking(False)
while True:
    try: s.send(b"QUEUE\n" * 100)
    except (BlockingIOError, OSError): time.sleep(0.05)
PY
    rude=$!
  fi
  wait "$dpid" || true
  t1=$(date +%s.%N)
  [ -z "$rude" ] || { kill "$rude" 2>/dev/null; wait "$rude" 2>/dev/null || true; }
  echo "$t1 - $t0" | bc
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

mkpart "$dir/S1" "$dir/B1" ""
mkpart "$dir/S2" "$dir/B2" broken
: >"$dir/clean"; : >"$dir/broken"
for r in $(seq 1 "$REPS"); do
  run "$dir/S1" "$dir/B1" "" >>"$dir/clean"
  run "$dir/S2" "$dir/B2" broken >>"$dir/broken"
done
c=$(median <"$dir/clean"); b=$(median <"$dir/broken")
echo "healthy users: $HEALTHY, reps: $REPS, commit $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "clean:  $c s (median)"
echo "broken: $b s (median; 3 broken users + a client that never reads)"
echo "ratio broken/clean: $(echo "scale=2; $b / $c" | bc)"
