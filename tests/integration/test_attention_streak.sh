#!/usr/bin/env bash
# Many users in a row in attention for the same kind of reason is the
# setup's fault, not theirs (issue 12): background restores are held after
# 10, status says why, priority requests still run, `resume` goes on.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir attention-streak
# Smallest first: the 12 that will fail come before the 2 healthy ones.
for i in $(seq -w 1 12); do mkuser "u$i" 1; done
for i in 13 14; do mkuser "u$i" 30 3000; done
"$MR" backup --source "$S" --out "$B" >/dev/null
for i in $(seq -w 1 12); do rm -rf "${S:?}/u$i"; done
start_daemon --jobs 1 --allow-empty-source
for i in $(seq 1 200); do
  held=$("$MR" status --socket "$SOCK" --json | json 'd["background_held"] or ""')
  [ -n "$held" ] && break
  sleep 0.1
done
[ -n "$held" ] || fail "background not held after a streak of attention"
echo "$held" | grep -q "10 users in a row" || fail "reason: $held"
"$MR" status --socket "$SOCK" | grep -q "BACKGROUND HELD" || fail "status text does not say it"
grep -q "users in a row went to attention" "$dir/daemon.log" || fail "no log line"
sleep 1
n=$("$MR" status --socket "$SOCK" --json | json 'd["counts"]["attention"]')
[ "$n" = 10 ] || fail "$n users in attention, want 10 (the hold did not stop the background)"
# A login still runs.
waiting=$("$MR" queue --socket "$SOCK" --state waiting --json | json 'd[0]["user"]')
"$MR" login --socket "$SOCK" "$waiting" >/dev/null || true
wait_state "$waiting" attention
# resume: the rest goes on.
"$MR" resume --socket "$SOCK" >/dev/null
for i in $(seq 1 200); do
  [ "$("$MR" status --socket "$SOCK" --json | json 'd["counts"]["waiting"]')" = 0 ] && break
  sleep 0.1
done
[ "$("$MR" status --socket "$SOCK" --json | json 'd["counts"]["waiting"]')" = 0 ] || fail "resume did not go on"
[ "$("$MR" status --socket "$SOCK" --json | json 'd["background_held"]')" = None ] || fail "still held"
stop_daemon
echo "ok: a streak of attention holds the background"
