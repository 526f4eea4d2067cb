#!/usr/bin/env bash
# `mailrestore deliver --id ID`: a delivery the MTA repeats with the same id
# (its answer was lost) is stored once, held or delivered, also across
# kill -9 and a restart of the daemon, and after a client hung up before
# the answer (the message stored, the confirmation lost); ids with spaces, '%' or non-ASCII
# bytes are carried escaped; a different id is a different message; an
# empty --id is a usage error. (Old code: --id was an unknown option, and a
# repeat without it doubled the message.)
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir deliver-once
mkuser u01
mkuser u02
"$MR" backup --source "$S" --out "$B" >/dev/null
start_daemon --background off --jobs 1

msg() { printf 'Subject: %s\n\nbody\n' "$1"; }
held_files() { find "$T/.mailrestore/state/held/$1" -name '*.mrmail' 2>/dev/null | wc -l; }
copies() { { grep -lx -F "Subject: $2" "$T/$1"/new/* "$T/$1"/cur/* 2>/dev/null || true; } | wc -l; }

# held (u01 waits): twice the same id, once stored
for _ in 1 2; do
  msg one | "$MR" deliver --socket "$SOCK" --id "4XyZ1/u01@example.org" u01 >/dev/null \
    || fail "deliver --id: exit $?"
done
[ "$(held_files u01)" = 1 ] || fail "a repeated id was held $(held_files u01) times"
out=$(msg one | "$MR" deliver --socket "$SOCK" --json --id "4XyZ1/u01@example.org" u01)
echo "$out" | grep -q '"repeat":true' || fail "a repeat is not reported as one: $out"
# an id with a space, '%' and a non-ASCII byte; '=' form of the option
msg two | "$MR" deliver --socket "$SOCK" --id=$'odd id 100% \xe9' -- u01 >/dev/null || fail "odd id"
msg two | "$MR" deliver --socket "$SOCK" --id=$'odd id 100% \xe9' -- u01 >/dev/null || fail "odd id again"
# the escaped form of another id must not meet it
msg two | "$MR" deliver --socket "$SOCK" --id='odd%20id%20100%25%20%E9' -- u01 >/dev/null || fail "escaped id"
[ "$(held_files u01)" = 3 ] || fail "want 3 held messages, have $(held_files u01)"
set +e
msg x | "$MR" deliver --socket "$SOCK" --id "" u01 2>/dev/null; rc=$?
set -e
[ $rc = 64 ] || fail "empty --id: exit $rc, want 64"

# the answer is lost: a client sends the message and hangs up before the
# reply (what Postfix sees when the daemon dies before answering); the
# daemon stores it, and the MTA's retry with the same id adds nothing
python3 - "$SOCK" <<'PY' || fail "hang-up client"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
body = b"Subject: lost answer\n\nbody\n"
s.sendall(b"DELIVER u01 %d 7LoSt/u01@example.org\n" % len(body))
assert b'"send"' in s.makefile("rb").readline()
s.sendall(body)
s.close()
PY
for _ in $(seq 100); do [ "$(held_files u01)" = 4 ] && break; sleep 0.05; done
[ "$(held_files u01)" = 4 ] || fail "the message of the client that hung up was not stored"
msg "lost answer" | "$MR" deliver --socket "$SOCK" --id "7LoSt/u01@example.org" u01 >/dev/null ||
  fail "the retry after a lost answer: exit $?"
[ "$(held_files u01)" = 4 ] || fail "the retry after a lost answer stored a second copy"

# kill -9 and restart: the ids are remembered
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
start_daemon --background off --jobs 1
msg one | "$MR" deliver --socket "$SOCK" --id "4XyZ1/u01@example.org" u01 >/dev/null || fail "after restart"
[ "$(held_files u01)" = 4 ] || fail "a repeat after kill -9 was held again"
"$MR" enqueue --socket "$SOCK" --priority u01 u02 >/dev/null
wait_state u01 active
wait_state u02 active
[ "$(copies u01 one)" = 1 ] || fail "u01 has $(copies u01 one) copies of 'one'"
[ "$(copies u01 two)" = 2 ] || fail "u01 has $(copies u01 two) copies of 'two', want 2 (two ids)"
[ "$(copies u01 "lost answer")" = 1 ] || fail "u01 has $(copies u01 "lost answer") copies of 'lost answer'"
# released, then repeated: still once
msg one | "$MR" deliver --socket "$SOCK" --id "4XyZ1/u01@example.org" u01 >/dev/null || fail "repeat after release"
[ "$(copies u01 one)" = 1 ] || fail "a repeat after the release was delivered again"
# delivered (u02 active): once
for _ in 1 2; do
  msg three | "$MR" deliver --socket "$SOCK" --id "5AbC2/u02@example.org" u02 >/dev/null || fail "deliver u02"
done
[ "$(copies u02 three)" = 1 ] || fail "u02 has $(copies u02 three) copies of 'three'"
stop_daemon
echo "deliver --id: ok"
