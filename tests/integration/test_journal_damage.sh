#!/usr/bin/env bash
# Issue 10 finding 7 and the pause of finding 8. A paused daemon, 7 logins
# answered with their positions, kill -9, one bit flipped in the second of
# those 7 records of queue.journal. The old daemon cut the journal there and
# started with 6 answered positions gone; now the start is refused (exit 65)
# naming the offset, `journal check` reports it (exit 1), `journal salvage`
# keeps every valid record (the damaged original kept aside), and the
# daemon then starts with the 6 other logins queued in the order answered,
# still paused after the kill -9.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir jdamage
USERS="a1 a2 a3 a4 a5 a6 a7 a8"
for u in $USERS; do mkuser "$u" 3; done
"$MR" backup --source "$S" --out "$B" >/dev/null
start_daemon --jobs 1 --background off
"$MR" pause --socket "$SOCK" >/dev/null || fail "pause"
for u in a1 a2 a3 a4 a5 a6 a7; do
  set +e; "$MR" login --socket "$SOCK" "$u" >/dev/null 2>&1; rc=$?; set -e
  [ "$rc" = 75 ] || fail "login $u answered $rc, not 75"
done
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
J=$T/.mailrestore/state/queue.journal
[ -f "$J" ] || fail "no journal at $J"
cp "$J" "$dir/before"
# The 7 requests are the last 7 records, 46 bytes each (24 of header, 22 of
# payload): flip one bit in the payload of the second.
off=$(python3 - "$J" <<'PY'
import os, sys
p = sys.argv[1]; size = os.path.getsize(p); rec = 46
second = size - 6 * rec
with open(p, "r+b") as f:
    f.seek(second + 24 + 6); b = f.read(1); f.seek(second + 24 + 6)
    f.write(bytes([b[0] ^ 0x10]))
print(second)
PY
)
set +e
timeout 10 "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" --jobs 1 --background off \
  >"$dir/start.log" 2>&1
rc=$?
set -e
[ "$rc" = 65 ] || { cat "$dir/start.log" >&2; fail "daemon started over a damaged journal (exit $rc, not 65)"; }
grep -q "damaged at offset $off" "$dir/start.log" || { cat "$dir/start.log" >&2; fail "the refusal does not name offset $off"; }
grep -q "journal salvage" "$dir/start.log" || fail "the refusal does not say what to do"
cmp -s "$J" "$dir/before" && fail "the flip did not land"
[ "$(stat -c %s "$J")" = "$(stat -c %s "$dir/before")" ] || fail "the refused start changed the journal"

set +e; "$MR" journal check --target "$T" >"$dir/check.out" 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || { cat "$dir/check.out" >&2; fail "journal check exited $rc, not 1"; }
grep -q "offset $off" "$dir/check.out" || { cat "$dir/check.out" >&2; fail "check does not name offset $off"; }
"$MR" journal check --target "$T" --json >"$dir/check.json" 2>/dev/null || true
json 'd["first_damage"]' <"$dir/check.json" | grep -qx "$off" \
  || fail "check --json first_damage is not $off: $(cat "$dir/check.json")"
"$MR" journal salvage --target "$T" >"$dir/salvage.out" 2>&1 || { cat "$dir/salvage.out" >&2; fail "salvage failed"; }
ls "$T/.mailrestore/state/" | grep -q '^queue.journal.damaged-' || fail "the damaged original was not kept aside"
"$MR" journal check --target "$T" >/dev/null || fail "the salvaged journal is not clean"

start_daemon --jobs 1 --background off
"$MR" status --socket "$SOCK" --json | json 'd["paused"]' | grep -qx True \
  || fail "the pause did not survive kill -9"
"$MR" queue --socket "$SOCK" --json > "$dir/q.json"
got=$(json '" ".join(u["user"] for u in (d if isinstance(d, list) else d["queue"]))' < "$dir/q.json")
[ "$got" = "a1 a3 a4 a5 a6 a7" ] || fail "queue after salvage is '$got', not the 6 other answered logins in order"
[ "$(state_of a2)" = waiting ] || fail "a2 (the damaged record) is $(state_of a2)"
"$MR" resume --socket "$SOCK" >/dev/null || fail "resume"
stop_daemon
start_daemon --jobs 1 --background off
"$MR" status --socket "$SOCK" --json | json 'd["paused"]' | grep -qx False \
  || fail "resume did not last across a restart"
stop_daemon
echo "ok"
