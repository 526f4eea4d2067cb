#!/usr/bin/env bash
# The socket answers from the first moment of a start: while the daemon is
# still reading its queue and registering users (held here by a --users
# file that is a FIFO nobody has written yet), a login hears "starting"
# with 75 (try again), never 69 (no daemon); once up, the usual answers,
# and `show` tells the bytes a user's run read from the source.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
dir=$(mktemp -d /tmp/mr-starting.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; [ -f "$dir/log" ] && tail -5 "$dir/log"; exit 1; }
mkdir -p "$dir/S/u1/cur" "$dir/B"
echo "m" > "$dir/S/u1/cur/1.M1:2,S"
"$MR" backup --source "$dir/S" --out "$dir/B" >/dev/null
# a message the backup lacks: the one file the restore must read from S
head -c 1234 /dev/zero > "$dir/S/u1/cur/2.M2:2,S"
mkfifo "$dir/users"
"$MR" daemon --backups "$dir/B" --source "$dir/S" --target "$dir/T" --socket "$dir/sock" \
  --background off --users "$dir/users" 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/sock" ] && break; sleep 0.05; done
[ -S "$dir/sock" ] || fail "no socket while the daemon starts"
set +e
out=$("$MR" login --socket "$dir/sock" u1 2>&1); rc=$?
set -e
[ "$rc" = 75 ] || fail "login during start-up: exit $rc ($out), want 75"
case "$out" in *starting*) ;; *) fail "login during start-up: [$out]";; esac
kill -0 "$pid" || fail "the daemon exited"
echo u1 > "$dir/users"        # the start-up goes on
set +e
"$MR" status --socket "$dir/sock" >/dev/null 2>&1; rc=$?   # waits out the start
out=$("$MR" login --socket "$dir/sock" u1 2>&1); lrc=$?
set -e
[ "$rc" = 0 ] || fail "status after start-up: exit $rc"
case "$lrc:$out" in 0:*active*|75:*queue*|75:*next*) ;; *) fail "login once up: $lrc [$out]";; esac
# once active, show tells how much of the source its run read
for _ in $(seq 100); do
  "$MR" show --socket "$dir/sock" --json u1 > "$dir/show.json"
  grep -q '"state":"active"' "$dir/show.json" && break
  sleep 0.1
done
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); n=o["counters"]["source_bytes_read"]; assert n == 1234, o' \
  "$dir/show.json" || fail "show: source_bytes_read is not the 1234 bytes read"
grep -q "u1: active in .*1234 B read from the source" "$dir/log" || fail "no bytes read in the log line"
"$MR" shutdown --socket "$dir/sock" >/dev/null
wait "$pid" || fail "daemon exit $?"
pid=
grep -q "told the daemon is starting" "$dir/log" || fail "no log line for the clients told"
echo "ok: logins during start-up hear 'starting' (75)"
