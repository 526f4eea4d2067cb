#!/usr/bin/env bash
# Login storm: 2400 affected users, four clients logging in at once over
# disjoint sets, each user once: the answered positions are exactly
# 0..N-1 (no gaps, no duplicates), the queue lists them in that order, and
# asking again keeps every user's place.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir storm
N=2400
seq -f "user%05g" 1 "$N" > "$dir/users"
start_daemon --users "$dir/users" --background off --jobs 2
"$MR" pause --socket "$SOCK" >/dev/null   # nobody starts: positions stay put

login_pos() { # prints "user position" for each user on stdin
  local u out
  while read -r u; do
    out=$("$MR" login --socket "$SOCK" --json "$u") && { echo "login $u: exit 0" >&2; exit 1; }
    [ $? = 75 ] || { echo "login $u: bad exit" >&2; exit 1; }
    echo "$u $(echo "$out" | sed -n 's/.*"position":\([0-9]*\).*/\1/p')"
  done
}
export -f login_pos
export MR SOCK
split -n r/4 "$dir/users" "$dir/part."
ls "$dir"/part.* | xargs -P4 -I{} bash -c 'login_pos < {} > {}.out' || fail "a storm client failed"
cat "$dir"/part.*.out > "$dir/positions"
[ "$(wc -l < "$dir/positions")" = "$N" ] || fail "answers: $(wc -l < "$dir/positions") of $N"
cut -d' ' -f2 "$dir/positions" | sort -n > "$dir/got"
seq 0 $((N - 1)) > "$dir/want"
cmp -s "$dir/got" "$dir/want" || fail "positions are not exactly 0..$((N - 1)): $(diff "$dir/want" "$dir/got" | head -5)"

# the queue lists them in position order
"$MR" queue --socket "$SOCK" --json | json '"\n".join("%s %d" % (u["user"], u["position"]) for u in d)' > "$dir/queue"
sort -k2,2n "$dir/positions" > "$dir/by_pos"
cmp -s "$dir/queue" "$dir/by_pos" || fail "queue order differs from the answered positions"

# repeats keep their place (a sample of 300, from two clients at once)
shuf -n 300 --random-source=<(yes) "$dir/positions" > "$dir/sample"
cut -d' ' -f1 "$dir/sample" | split -n r/2 - "$dir/rep."
ls "$dir"/rep.* | xargs -P2 -I{} bash -c 'login_pos < {} > {}.out' || fail "a repeat client failed"
cat "$dir"/rep.*.out | sort > "$dir/rep_got"
sort "$dir/sample" > "$dir/rep_want"
cmp -s "$dir/rep_got" "$dir/rep_want" || fail "a repeated login moved: $(diff "$dir/rep_want" "$dir/rep_got" | head -4)"

# a kill -9 keeps every answered position
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
start_daemon --users "$dir/users" --background off --jobs 2
"$MR" pause --socket "$SOCK" >/dev/null
"$MR" queue --socket "$SOCK" --json > "$dir/queue2.json"
check_order "$dir/by_pos" "$dir/queue2.json" || fail "order changed across kill -9"
[ "$(json 'len(d)' < "$dir/queue2.json")" -gt $((N - 100)) ] || fail "requests lost across kill -9"
stop_daemon
echo ok
