#!/usr/bin/env bash
# The daemon and its clients end to end, on a real socket: login positions
# in the order of the first ask (and kept on repeats), exit codes of every
# command as documented, the --json fields, enqueue/bump/pause/resume, held
# mail released at activation, attention/retry/activate, --on-active, a
# second daemon refused, and --exit-when-done finishing with every healthy
# user equal to the source.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir daemon

for i in 1 2 3 4 5 6 7 8; do mkuser "u0$i"; done
"$MR" backup --source "$S" --out "$B" >/dev/null
rm -rf "$S/u08"                                   # lost on the source: attention
echo "changed" > "$S/u02/new/1700300000.M9P1.host"  # a day of changes
cat > "$dir/hook.sh" <<HOOK
#!/bin/sh
echo "\$1 \$2" >> "$dir/hook.log"
HOOK
chmod +x "$dir/hook.sh"

# no daemon yet: 69, with the socket named
set +e
"$MR" login --socket "$SOCK" u01 2>"$dir/err"; rc=$?
set -e
[ "$rc" = 69 ] || fail "login without daemon: exit $rc, want 69"
grep -q "daemon unreachable at $SOCK" "$dir/err" || fail "unreachable message: $(cat "$dir/err")"

start_daemon --background off --jobs 2 --on-active "$dir/hook.sh"
[ "$(stat -c %a "$SOCK")" = 666 ] || fail "socket mode $(stat -c %a "$SOCK")"
"$MR" pause --socket "$SOCK" >/dev/null

# logins: positions in the order of the first ask, kept on repeats
expect_login() { # user position
  local out rc
  set +e; out=$("$MR" login --socket "$SOCK" "$1"); rc=$?; set -e
  [ "$rc" = 75 ] || fail "login $1: exit $rc, want 75"
  [ "$(echo "$out" | wc -l)" = 1 ] || fail "login $1: more than one line: $out"
  case $2 in
    0) echo "$out" | grep -q "You are next" || fail "login $1: $out" ;;
    1) echo "$out" | grep -q "There is 1 request in the queue before you" || fail "login $1: $out" ;;
    *) echo "$out" | grep -q "There are $2 requests in the queue before you" || fail "login $1: $out" ;;
  esac
  echo "$out" | grep -q "about" || fail "login $1: no estimate: $out"
}
expect_login u03 0
expect_login u01 1
expect_login u05 2
expect_login u01 1
expect_login u03 0
set +e; "$MR" login --socket "$SOCK" --json u05 > "$dir/l.json"; rc=$?; set -e
[ "$rc" = 75 ] || fail "login --json: exit $rc"
[ "$(json 'd["position"]' < "$dir/l.json")" = 2 ] || fail "login --json position"
for f in user state position eta_seconds; do
  json "d[\"$f\"]" < "$dir/l.json" >/dev/null || fail "login --json lacks $f"
done

# not affected: may log in; invalid: 65
[ "$("$MR" login --socket "$SOCK" stranger)" = active ] || fail "unknown user login"
set +e; "$MR" login --socket "$SOCK" '../etc' 2>"$dir/err"; rc=$?; set -e
[ "$rc" = 65 ] && grep -q "invalid user name" "$dir/err" || fail "invalid name: exit $rc"
set +e; "$MR" show --socket "$SOCK" 'a b' 2>/dev/null; rc=$?; set -e
[ "$rc" = 65 ] || fail "show invalid: exit $rc"

# queue --json: order and fields
"$MR" queue --socket "$SOCK" --json > "$dir/q.json"
[ "$(json '[u["user"] for u in d]' < "$dir/q.json")" = '["u03", "u01", "u05"]' ] || fail "queue order $(cat "$dir/q.json")"
[ "$(json '[u["position"] for u in d]' < "$dir/q.json")" = '[0, 1, 2]' ] || fail "queue positions"
json '[u["eta_seconds"] >= 0 and u["state"] == "queued" for u in d] == [True]*3' < "$dir/q.json" | grep -q True || fail "queue fields"

# enqueue (plain: after the logins), bump (to the front), status
"$MR" enqueue --socket "$SOCK" u07 >/dev/null
"$MR" bump --socket "$SOCK" u05 >/dev/null
"$MR" queue --socket "$SOCK" --json > "$dir/q.json"
[ "$(json '[u["user"] for u in d]' < "$dir/q.json")" = '["u05", "u03", "u01", "u07"]' ] || fail "after bump: $(cat "$dir/q.json")"
[ "$(json '[u["position"] for u in d]' < "$dir/q.json")" = '[0, 1, 2, 3]' ] || fail "positions after bump"
set +e; "$MR" enqueue --socket "$SOCK" u06 'bad/name' 2>/dev/null >/dev/null; rc=$?; set -e
[ "$rc" = 65 ] || fail "enqueue with an invalid name: exit $rc, want 65"
[ "$(state_of u06)" = queued ] || fail "the valid name of a mixed enqueue was not queued"
set +e; printf 'u04\nnobody-here\n' | "$MR" enqueue --socket "$SOCK" --file - 2>/dev/null >/dev/null; rc=$?; set -e
[ "$rc" = 67 ] || fail "enqueue of an unknown user: exit $rc, want 67"
set +e; "$MR" bump --socket "$SOCK" nobody-here 2>/dev/null; rc=$?; set -e
[ "$rc" = 67 ] || fail "bump unknown: exit $rc"

"$MR" status --socket "$SOCK" --json > "$dir/s.json"
json 'sorted(d["counts"].keys()) == sorted(["waiting","queued","restoring","syncing","active","attention","unknown"])' < "$dir/s.json" | grep -q True || fail "status counts $(cat "$dir/s.json")"
[ "$(json 'd["counts"]["queued"]' < "$dir/s.json")" = 6 ] || fail "queued count"
[ "$(json 'len(d["workers"])' < "$dir/s.json")" = 2 ] || fail "workers"
json 'd["throughput"]["users_per_minute"] >= 0 and d["eta_seconds"] >= 0 and d["paused"]' < "$dir/s.json" | grep -q True || fail "status fields"
"$MR" status --socket "$SOCK" | grep -q "queued 6" || fail "human status"
"$MR" status --socket "$SOCK" --prometheus | grep -q 'mailrestore_users{state="queued"} 6' || fail "prometheus"
"$MR" watch --socket "$SOCK" --once | grep -q "next in line" || fail "watch --once"

# show --json fields; unknown users are "unknown", exit 0
"$MR" show --socket "$SOCK" --json u01 > "$dir/sh.json"
for f in user state position eta_seconds requested_at started_at finished_at reason counters held_mail; do
  json "d[\"$f\"]" < "$dir/sh.json" >/dev/null || fail "show --json lacks $f"
done
[ "$(json 'd["started_at"]' < "$dir/sh.json")" = None ] || fail "started_at not null"
[ "$(state_of stranger)" = unknown ] || fail "show unknown"

# held mail: delivered while queued, released at activation
printf 'Subject: held one\n\nfirst\n' | "$MR" deliver --socket "$SOCK" u01 >/dev/null || fail "deliver held"
printf 'Subject: held two\n\nsecond\n' | "$MR" deliver --socket "$SOCK" u01 >/dev/null || fail "deliver held 2"
[ "$("$MR" show --socket "$SOCK" --json u01 | json 'd["held_mail"]')" = 2 ] || fail "held count"
set +e
echo x | "$MR" deliver --socket "$SOCK" stranger 2>/dev/null; rc=$?
[ "$rc" = 67 ] || fail "deliver to an unaffected user: exit $rc, want 67"
echo x | "$MR" deliver --socket "$SOCK" '../x' 2>/dev/null; rc=$?
[ "$rc" = 65 ] || fail "deliver invalid: exit $rc"
set -e

# a second daemon on the same state refuses: 75
set +e
"$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$dir/other.sock" 2>"$dir/err2"; rc=$?
set -e
[ "$rc" = 75 ] || fail "second daemon: exit $rc, want 75 ($(cat "$dir/err2"))"

# resume: the queue runs in order
"$MR" resume --socket "$SOCK" >/dev/null
wait_state u01 active
[ "$("$MR" login --socket "$SOCK" u01)" = active ] || fail "login after activation"
grep -rq "held one" "$T/u01/new" && grep -rq "held two" "$T/u01/new" || fail "held mail not released"
[ "$(grep -rl "held" "$T/u01/new" | wc -l)" = 2 ] || fail "held mail released more than once"
printf 'Subject: direct\n\nnow\n' | "$MR" deliver --socket "$SOCK" u01 >/dev/null
grep -rq "Subject: direct" "$T/u01/new" || fail "delivery to an active user"
for u in u05 u03 u07 u06 u04; do wait_state "$u" active; done
"$MR" show --socket "$SOCK" --json u03 | json 'd["finished_at"] >= d["started_at"] >= d["requested_at"] > 0' | grep -q True || fail "times"
grep -q "^u01 $T/u01\$" "$dir/hook.log" || fail "--on-active did not run for u01: $(cat "$dir/hook.log" 2>/dev/null)"
"$MR" verify --source "$S" --target "$T" u03 u04 u05 u06 u07 >/dev/null || fail "verify after the daemon"  # u01 has mail the source lacks

# attention: u08 has no source folder
"$MR" enqueue --socket "$SOCK" --priority u08 >/dev/null
wait_state u08 attention
"$MR" show --socket "$SOCK" --json u08 | json 'd["reason"]' | grep -q . || fail "attention without a reason"
set +e; out=$("$MR" login --socket "$SOCK" u08); rc=$?; set -e
[ "$rc" = 75 ] && echo "$out" | grep -q "operator" || fail "login of an attention user: $rc $out"
"$MR" retry --socket "$SOCK" u08 >/dev/null || fail "retry"
wait_state u08 attention
set +e; "$MR" retry --socket "$SOCK" u01 2>/dev/null; rc=$?; set -e
[ "$rc" = 65 ] || fail "retry of an active user: exit $rc"
"$MR" activate --socket "$SOCK" u08 >/dev/null || fail "activate"
[ "$(state_of u08)" = active ] && [ -d "$T/u08" ] || fail "activate did not make T/u08"

# shutdown: clean stop, socket removed
"$MR" shutdown --socket "$SOCK" >/dev/null || fail "shutdown"
rc=0; wait "$DPID" || rc=$?; DPID=
[ "$rc" = 0 ] || fail "daemon exit $rc after shutdown"
[ ! -e "$SOCK" ] || fail "socket left behind"

# restart with the background on: the rest (u02 with its change) finishes
rc=0
timeout 120 "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
  --jobs 2 --exit-when-done >>"$dir/daemon.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "--exit-when-done: exit $rc"
"$MR" verify --source "$S" --target "$T" u02 u03 u04 u05 u06 u07 >/dev/null || fail "verify at the end"
echo "ok"
