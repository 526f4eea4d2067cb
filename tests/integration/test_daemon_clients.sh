#!/usr/bin/env bash
# Malformed, oversized, stalled and unprivileged clients: garbage gets an
# error and the connection lives on; a line without its newline is closed
# after the idle time; a 100 KiB line and an oversized DELIVER are refused;
# a stalled client does not slow anyone else; more clients than the limit
# are told so; operator commands from another uid are refused (77) unless
# it is in --operator-group.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir clients
chmod 755 "$dir"
seq -f "user%03g" 1 20 > "$dir/users"
start_daemon --users "$dir/users" --background off --jobs 1
"$MR" pause --socket "$SOCK" >/dev/null

ulimit -n 4096 2>/dev/null || true
python3 - "$SOCK" <<'PY' || fail "protocol checks"
import json, socket, sys, time
path = sys.argv[1]

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(5)
    return s

pending = {}
def reply(s):
    buf = pending.get(s.fileno(), b"")
    while b"\n" not in buf:
        c = s.recv(65536)
        if not c:
            break
        buf += c
    line, _, rest = buf.partition(b"\n")
    pending[s.fileno()] = rest
    return json.loads(line) if line else None

def check(cond, what):
    if not cond:
        print("FAIL:", what); sys.exit(1)

# garbage: an error, and the connection still serves
s = conn()
s.sendall(b"\x00\xff garbage here\n")
r = reply(s); check(r and r["ok"] is False and r["code"] == 64, "garbage: %r" % r)
s.sendall(b"LOGIN user001\n")
r = reply(s); check(r and r["ok"] and r["position"] == 0, "login after garbage: %r" % r)
# pipelined requests are answered in order
s.sendall(b"PING\nSHOW user001\nLOGIN ../x\n")
r1, r2, r3 = reply(s), reply(s), reply(s)
check(r1.get("pong") and r2["user"] == "user001" and r3["code"] == 65, "pipelining")
s.close()

# a 100 KiB line: refused and closed
s = conn()
try:
    s.sendall(b"LOGIN " + b"a" * 100 * 1024 + b"\n")
except OSError:
    pass
r = reply(s); check(r and r["ok"] is False and r["code"] == 64 and "longer" in r["error"], "long line: %r" % r)
check(s.recv(1) == b"", "long line: connection not closed")
s.close()

# DELIVER: oversized length refused before any body
s = conn()
s.sendall(b"DELIVER user002 %d\n" % (64 * 1024 * 1024 + 1))
r = reply(s); check(r and r["code"] == 65, "oversized deliver: %r" % r)
s.close()
s = conn()
s.sendall(b"DELIVER user002 -5\n")
r = reply(s); check(r and r["code"] == 64, "bad deliver length: %r" % r)
s.close()

# a stalled client (half a request) does not slow a login down
stall = conn()
stall.sendall(b"LOGIN user0")
t0 = time.monotonic()
s = conn(); s.sendall(b"LOGIN user003\n"); r = reply(s); s.close()
check(r and r["ok"] and time.monotonic() - t0 < 0.5, "login behind a stalled client took %.3f s" % (time.monotonic() - t0))
# a stalled DELIVER body neither
dl = conn(); dl.sendall(b"DELIVER user004 100\n"); r = reply(dl); check(r.get("send") == 100, "deliver go-ahead")
dl.sendall(b"partial")
s = conn(); s.sendall(b"SHOW user004\n"); r = reply(s); s.close()
check(r and r["state"] == "waiting", "show during a stalled deliver")

# the stalled line is closed after the idle time (10 s)
stall.settimeout(15)
t0 = time.monotonic()
r = reply(stall)
took = time.monotonic() - t0
check(r and r["error"] == "idle timeout" and 5 < took < 13, "idle close: %r after %.1f s" % (r, took))
check(stall.recv(1) == b"", "idle connection not closed")

# more connections than the limit: told, the daemon still serves
many = []
try:
    for i in range(1030):
        many.append(conn())
except OSError as e:
    print("FAIL: could not open 1030 connections:", e); sys.exit(1)
time.sleep(0.3)
refused = 0
for c in many[1000:]:
    c.settimeout(0.2)
    try:
        d = c.recv(4096)
        if b"too many connections" in d:
            refused += 1
    except socket.timeout:
        pass
check(refused >= 1, "no connection was told 'too many connections'")
for c in many:
    c.close()
time.sleep(0.2)
s = conn(); s.sendall(b"PING\n"); check(reply(s).get("pong"), "ping after the flood"); s.close()
PY

# operator commands from another uid
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
  as_nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$@"; }
  if as_nobody test -x "$MR"; then
    set +e; as_nobody "$MR" bump --socket "$SOCK" user005 2>"$dir/err"; rc=$?; set -e
    [ "$rc" = 77 ] && grep -q "permission denied" "$dir/err" || fail "bump as nobody: exit $rc $(cat "$dir/err")"
    set +e; as_nobody "$MR" shutdown --socket "$SOCK" 2>/dev/null; rc=$?; set -e
    [ "$rc" = 77 ] || fail "shutdown as nobody: exit $rc"
    set +e; as_nobody "$MR" login --socket "$SOCK" user005 >/dev/null; rc=$?; set -e
    [ "$rc" = 75 ] || fail "login as nobody: exit $rc, want 75"
    as_nobody "$MR" status --socket "$SOCK" >/dev/null || fail "status as nobody"
    stop_daemon
    start_daemon --users "$dir/users" --background off --operator-group "$(id -gn nobody)"
    as_nobody "$MR" pause --socket "$SOCK" >/dev/null || fail "pause by a member of --operator-group"
  else
    echo "note: $MR is not reachable for nobody; uid checks skipped"
  fi
else
  echo "note: not root (or no setpriv): the other-uid checks are skipped"
fi
stop_daemon
echo ok
