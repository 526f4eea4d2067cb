#!/usr/bin/env bash
# The end of the outage (issue 12, finding 3): once the daemon is stopped
# the login hook must still answer rightly. With the target known it
# answers from T: 0 for a user mailrestore activated or one the outage never
# touched, 75 for a touched user not active yet (a T/<user> the mail server
# made does not count), 69 only when the target is unknown. Both binaries.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
HOOK=${MR_BUILD:-$(dirname "$MR")}/mailrestore-login
setup_dir login-disk
for u in u1 u2 u3 u4; do mkuser "$u" 2; done
"$MR" backup --source "$S" --out "$B" >/dev/null
start_daemon --background off
"$MR" enqueue --socket "$SOCK" --priority u1 u2 >/dev/null
wait_state u1 active
wait_state u2 active
stop_daemon
[ -f "$T/.mailrestore/affected" ] || fail "the daemon wrote no list of affected users"
mkdir -p "$T/u3/new"   # the mail server made it: not an activation

expect() { # expect CODE WORD-IN-OUTPUT ARGS...
  local want=$1 word=$2 rc; shift 2
  set +e; out=$("$@" 2>&1); rc=$?; set -e
  [ "$rc" = "$want" ] || fail "$*: exit $rc, want $want ($out)"
  echo "$out" | grep -q -- "$word" || fail "$*: output '$out' lacks '$word'"
}
# "$MR login" and the lean hook binary, which takes the same arguments.
for bin in "$MR login" "$HOOK"; do
  [ -x "${bin%% *}" ] || { [ "$bin" = "$HOOK" ] && continue; fail "no $bin"; }
  expect 0 active $bin --socket "$SOCK" --target "$T" u1
  expect 0 active env MAILRESTORE_TARGET="$T" $bin --socket "$SOCK" u2
  expect 75 "try again later" $bin --socket "$SOCK" --target "$T" u3
  expect 75 "try again later" $bin --socket "$SOCK" --target "$T" u4
  expect 0 active $bin --socket "$SOCK" --target "$T" stranger
  expect 69 unreachable $bin --socket "$SOCK" u1
  expect 65 "invalid user name" $bin --socket "$SOCK" --target "$T" -- --help
  expect 0 '"from":"disk"' $bin --socket "$SOCK" --target "$T" --json u1
done
# Without the daemon's list nobody can be called untouched.
rm "$T/.mailrestore/affected"
expect 75 "try again later" "$MR" login --socket "$SOCK" --target "$T" stranger
expect 0 active "$MR" login --socket "$SOCK" --target "$T" u1
echo "ok: login answers from the disk"

# Delivery once the daemon is gone, with the target known.
printf 'affected\nu1\nu2\nu3\nu4\n' | sort > "$T/.mailrestore/affected"
printf 'Subject: late\n\nfor u1\n' | "$MR" deliver --socket "$SOCK" --target "$T" --id Q1/u1 u1 ||
  fail "deliver to an active user without the daemon"
printf 'Subject: late\n\nfor u1\n' | "$MR" deliver --socket "$SOCK" --target "$T" --id Q1/u1 u1 ||
  fail "repeat of the same id"
[ "$(grep -rl 'for u1' "$T/u1/new" | wc -l)" = 1 ] || fail "u1's late mail is not there once"
set +e
printf 'x\n' | MAILRESTORE_TARGET="$T" "$MR" deliver --socket "$SOCK" u3; rc=$?
set -e
[ "$rc" = 75 ] || fail "deliver to u3 (not restored) without the daemon: exit $rc, want 75"
[ -z "$(ls "$T/u3/new")" ] || fail "mail went into u3's mailbox before its restore"
set +e
printf 'x\n' | "$MR" deliver --socket "$SOCK" --target "$T" stranger; rc=$?
set -e
[ "$rc" = 67 ] || fail "deliver to a user with no mailbox: exit $rc, want 67"
echo "ok: deliver from the disk when the daemon is gone"
