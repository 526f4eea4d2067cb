#!/usr/bin/env bash
# kill -9 at random moments over a real restore of 30 users (--jobs 2),
# fifteen times, restarting each time, while a client keeps logging users
# in and delivering mail. After every restart: each login that was answered
# with a queue position is still queued (in the order answered) or has
# started; every T/<user> equals the source (never a half-synced user). At
# the end (--exit-when-done) every user equals the source, and every
# delivery that was answered is in its Maildir exactly once.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir crash
USERS=$(seq -f "u%02g" 1 30)
MAILU=(u05 u15 u25)
for u in $USERS; do mkuser "$u" 300 4000; done
"$MR" backup --source "$S" --out "$B" >/dev/null
for u in u02 u07 u11 u19 u23; do   # a day of changes
  echo "new mail" > "$S/$u/new/1701000000.M1P2.host"
  mv "$S/$u/cur/170001.M1P1.host,S=1:2,S" "$S/$u/cur/170001.M1P1.host,S=1:2,RS"
  rm "$S/$u/cur/170002.M2P1.host,S=2:2,S"
done
touch "$dir/answered" "$dir/delivered" "$dir/tried"

client() { # logins and deliveries until killed; records what was answered
  local round=$1 n=0 u out rc m id
  while :; do
    u=$(printf "u%02d" $((RANDOM % 30 + 1)))
    set +e; out=$("$MR" login --socket "$SOCK" "$u" 2>/dev/null); rc=$?; set -e
    if [ "$rc" = 75 ] && echo "$out" | grep -qE "You are next|before you"; then
      echo "$u" >> "$dir/answered"
    fi
    if [ $((RANDOM % 3)) = 0 ]; then
      m=${MAILU[$((RANDOM % 3))]}; n=$((n + 1)); id="r$round-m$n"
      echo "$m $id" >> "$dir/tried"
      if printf 'Subject: %s\n\nbody %s\n' "$id" "$id" | "$MR" deliver --socket "$SOCK" "$m" >/dev/null 2>&1; then
        echo "$m $id" >> "$dir/delivered"
      fi
    fi
  done
}

# every T/<user> equals the source (mail users: apart from delivered mail)
check_target() {
  local u diffs
  for u in $USERS; do
    [ -d "$T/$u" ] || continue
    diffs=$("$MR" verify --source "$S" --target "$T" "$u" 2>&1 || true)
    # mail users differ by the delivered mail (new/, and tmp/ leftovers
    # of a delivery killed between its tmp/ write and its link to new/)
    case " ${MAILU[*]} " in *" $u "*) diffs=$(echo "$diffs" | grep -v -e "^$u: new/" -e "^$u: tmp/" -e "^$u: new: " -e "^$u: tmp: " -e "^$" -e "differ" || true) ;; esac
    [ -z "$diffs" ] || fail "round $1: T/$u differs from the source: $(echo "$diffs" | head -3)"
  done
}

check_answered() { # every answered login is still queued in order, or started
  "$MR" queue --socket "$SOCK" --json > "$dir/q.json"
  for u in $(sort -u "$dir/answered"); do
    [ "$(state_of "$u")" != waiting ] || fail "round $1: $u was answered with a position and is waiting again"
  done
  python3 - "$dir/answered" "$dir/q.json" <<'PY' || fail "round $1: answered logins out of order"
import json, sys
order = []
for l in open(sys.argv[1]):
    u = l.strip()
    if u and u not in order:
        order.append(u)
queue = [u["user"] for u in json.load(open(sys.argv[2])) if u.get("priority")]
inq = [u for u in order if u in queue]
if inq != [u for u in queue if u in order]:
    print("queue", queue, "answered", order); sys.exit(1)
PY
}

for round in $(seq 1 15); do
  start_daemon --jobs 2
  [ "$round" = 1 ] || { check_answered "$round"; check_target "$round"; }
  client "$round" & CPID=$!
  sleep "0.$(printf %03d $((RANDOM % 500)))"
  kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
  kill -9 "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true
done

rc=0
timeout 120 "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
  --jobs 2 --exit-when-done >>"$dir/daemon.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "--exit-when-done: exit $rc"
for u in $USERS; do [ -d "$T/$u" ] || fail "$u not active at the end"; done
check_target final
healthy=$(for u in $USERS; do case " ${MAILU[*]} " in *" $u "*) ;; *) echo "$u" ;; esac; done)
"$MR" verify --source "$S" --target "$T" $healthy >/dev/null || fail "verify at the end"

# answered deliveries: exactly once; the others at most once
while read -r m id; do
  c=$( (grep -rl "Subject: $id\$" "$T/$m/new" "$T/$m/cur" 2>/dev/null || true) | wc -l)
  if grep -qx "$m $id" "$dir/delivered"; then
    [ "$c" = 1 ] || fail "answered message $id for $m found $c times"
  else
    [ "$c" -le 1 ] || fail "unanswered message $id for $m found $c times"
  fi
done < "$dir/tried"
echo "ok: $(sort -u "$dir/answered" | wc -l) answered logins, $(wc -l < "$dir/delivered") answered deliveries"
