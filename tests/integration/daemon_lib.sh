# daemon_lib.sh: shared helpers of the daemon's integration tests (sourced,
# not a test itself). Each test makes its own temporary folder $dir, builds
# a small partition in bash, backs it up with `mailrestore backup`, and runs
# the real daemon on a socket inside $dir.
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }

fail() { echo "FAIL: $*" >&2; [ -n "${dir:-}" ] && [ -f "$dir/daemon.log" ] && tail -n 30 "$dir/daemon.log" >&2; exit 1; }

# mkuser NAME [FILES [SIZE]]: a small Maildir user on the source.
mkuser() {
  local u=$1 n=${2:-8} size=${3:-300} i
  mkdir -p "$S/$u"/{cur,new,tmp} "$S/$u/.Sent"/{cur,new,tmp}
  for i in $(seq 1 "$n"); do
    head -c $((size + i * 37)) /dev/urandom > "$S/$u/cur/17000$i.M${i}P1.host,S=$i:2,S"
  done
  echo "sent $u" > "$S/$u/.Sent/cur/1700.M1P1.host:2,S"
  echo "uidlist $u" > "$S/$u/dovecot-uidlist"
}

# jq-less JSON: json EXPR < doc prints EXPR evaluated with d = the document.
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); r=eval(sys.argv[1]); print(json.dumps(r) if isinstance(r,(dict,list)) else r)' "$1"; }

# start_daemon ARGS...: runs the daemon in the background on $SOCK, logs to
# $dir/daemon.log (appended), waits until it answers. Sets $DPID.
start_daemon() {
  "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" "$@" \
    >>"$dir/daemon.log" 2>&1 &
  DPID=$!
  local i
  for i in $(seq 1 200); do
    if "$MR" status --socket "$SOCK" >/dev/null 2>&1; then return 0; fi
    kill -0 "$DPID" 2>/dev/null || { wait "$DPID" || true; fail "daemon exited at start"; }
    sleep 0.05
  done
  fail "daemon did not answer on $SOCK"
}

# stop_daemon: SIGTERM and wait; fails when it does not exit 0.
stop_daemon() {
  [ -n "${DPID:-}" ] || return 0
  kill -TERM "$DPID" 2>/dev/null || true
  local rc=0
  wait "$DPID" || rc=$?
  DPID=
  [ "$rc" = 0 ] || fail "daemon exited $rc after SIGTERM"
}

# state_of USER
state_of() { "$MR" show --socket "$SOCK" --json "$1" | json 'd["state"]'; }

# wait_state USER STATE [SECONDS]
wait_state() {
  local i n=$(( ${3:-30} * 20 ))
  for i in $(seq 1 "$n"); do
    [ "$(state_of "$1")" = "$2" ] && return 0
    sleep 0.05
  done
  fail "$1 did not reach $2 (is $(state_of "$1"))"
}

setup_dir() {
  dir=$(mktemp -d "/tmp/mr-$1.XXXXXX")
  S=$dir/S B=$dir/B T=$dir/T SOCK=$dir/run/mr.sock DPID=
  mkdir -p "$S" "$B"
  trap 'rc=$?; if [ -n "${DPID:-}" ]; then kill -9 "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; fi; rm -rf "$dir"; exit $rc' EXIT
}

# check_order ANSWERED QUEUE_JSON: ANSWERED holds "user position" lines of
# answered priority requests in the order they were answered; QUEUE_JSON is
# `queue --json`. Every answered user still queued must appear in the queue
# in the answered order, and the users no longer queued (started) must be a
# prefix of it. Prints the problem and returns 1 otherwise.
check_order() {
  python3 - "$1" "$2" <<'PY'
import json, sys
answered = [l.split()[0] for l in open(sys.argv[1]) if l.strip()]
seen = set(); order = []
for u in answered:
    if u not in seen:
        seen.add(u); order.append(u)
queue = [u["user"] for u in json.load(open(sys.argv[2])) if u.get("priority")]
inq = set(queue)
still = [u for u in order if u in inq]
rest = [u for u in queue if u in seen]
if still != rest:
    print("answered users out of order in the queue"); sys.exit(1)
gone = [u for u in order if u not in inq]
if order[:len(gone)] != gone:
    print("a user left the queue before an earlier request: %s" % [u for u in gone if order.index(u) >= len(gone)][:5]); sys.exit(1)
PY
}
