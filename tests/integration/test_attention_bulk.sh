#!/usr/bin/env bash
# Attention in bulk (issue 12, finding 1): the operator lists who needs a
# look, with reasons (`queue --state attention`), and puts them back in one
# call: several names, a file of names, or every user in attention.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir attention-bulk
for i in $(seq -w 1 12); do mkuser "u$i" 2; done
"$MR" backup --source "$S" --out "$B" >/dev/null
rm -rf "${S:?}/u03" "${S:?}/u07" "${S:?}/u11"   # lost with the partition
start_daemon --jobs 2
for u in u03 u07 u11; do wait_state "$u" attention; done
for u in u01 u12; do wait_state "$u" active; done

out=$("$MR" queue --socket "$SOCK" --state attention)
echo "$out" | grep -q "^USER" || fail "no header: $out"
for u in u03 u07 u11; do
  echo "$out" | grep -q "^$u .*attention.*missing from the source" || fail "$u not listed with its reason: $out"
done
echo "$out" | grep -q "^u01 " && fail "an active user listed in attention: $out"
echo "$out" | tail -n 1 | grep -q "^3 users in state attention" || fail "count line: $out"
n=$("$MR" queue --socket "$SOCK" --state attention --json | json 'len(d)')
[ "$n" = 3 ] || fail "--json lists $n users, want 3"
"$MR" queue --socket "$SOCK" --state attention --json |
  json '[u["reason"] for u in d if u["state"] != "attention" or not u["reason"]]' | grep -q '^\[\]$' ||
  fail "--json objects lack state or reason"
n=$("$MR" queue --socket "$SOCK" --state any --json | json 'len(d)')
[ "$n" = 12 ] || fail "--state any lists $n users, want 12"
set +e
"$MR" queue --socket "$SOCK" --state nonsense >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 64 ] || fail "queue --state nonsense: exit $rc, want 64"

# Enqueueing an active user queues nothing and says so (it used to print
# "1 user in the enqueue queue").
out=$("$MR" enqueue --socket "$SOCK" u01)
echo "$out" | grep -q "^0 users in the enqueue queue; 1 already active" || fail "enqueue of an active user: $out"
[ "$("$MR" enqueue --socket "$SOCK" --json u01 | json 'd["queued"]')" = 0 ] || fail "enqueue --json counts an active user as queued"

# Several names: the ones in attention go back; an active one is refused
# and its code is the exit, the others are still retried.
"$MR" pause --socket "$SOCK" >/dev/null
set +e
out=$("$MR" retry --socket "$SOCK" u03 u01 u07 2>"$dir/err")
rc=$?
set -e
[ "$rc" = 65 ] || fail "retry with an active user: exit $rc, want 65 ($(cat "$dir/err"))"
echo "$out" | grep -q "^u03: queued" || fail "u03 not retried: $out"
echo "$out" | grep -q "^u07: queued" || fail "u07 not retried: $out"
echo "$out" | grep -q "2 of 3 users back in the queue" || fail "summary: $out"
[ "$(state_of u11)" = attention ] || fail "u11 moved though not named"

# A file of names (and - for stdin).
printf 'u11\n' > "$dir/names"
"$MR" retry --socket "$SOCK" --file "$dir/names" | grep -q "^u11: queued" || fail "retry --file"
"$MR" resume --socket "$SOCK" >/dev/null
for u in u03 u07 u11; do wait_state "$u" attention; done

# Everyone in attention at once.
"$MR" pause --socket "$SOCK" >/dev/null
out=$("$MR" retry --socket "$SOCK" --state attention)
echo "$out" | grep -q "3 of 3 users back in the queue" || fail "retry --state attention: $out"
for u in u03 u07 u11; do [ "$(state_of "$u")" = queued ] || fail "$u is $(state_of "$u")"; done
echo u07 | "$MR" retry --socket "$SOCK" --file - >/dev/null 2>&1 && fail "retry of a queued user succeeded"
"$MR" resume --socket "$SOCK" >/dev/null
stop_daemon
echo "ok: attention in bulk"
