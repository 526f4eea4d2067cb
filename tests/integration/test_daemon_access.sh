#!/usr/bin/env bash
# Who may do what on the socket, and what one local user can no longer do
# to everyone else (issue 10, finding 6): the socket's group decides who
# connects (77 for others); other users are seen by operators only, a user
# sees itself; DELIVER needs root, the daemon's user or --deliver-group;
# one uid cannot take every connection, nor the whole delivery memory; a
# body trickled in is cut off; clients that ask QUEUE and never read do not
# grow the daemon. Needs root (acts as nobody and as daemon).
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 &&
  id daemon >/dev/null 2>&1 || { echo "SKIP: needs root, setpriv and the users nobody and daemon"; exit 77; }
setup_dir access
chmod 755 "$dir"
NOGROUP=$(id -gn nobody)
as_nobody() { setpriv --reuid=nobody --regid="$NOGROUP" --clear-groups "$@"; }
as_daemon() { setpriv --reuid=daemon --regid=daemon --clear-groups "$@"; }
as_nobody test -x "$MR" || { echo "SKIP: $MR is not reachable for nobody"; exit 77; }
{ seq -f "u%02g" 1 9; echo nobody; } > "$dir/users"
ulimit -n 4096

# --- the socket's group, and who sees whom -------------------------------
start_daemon --users "$dir/users" --background off --jobs 1 --socket-group "$NOGROUP" --operator-group adm
"$MR" pause --socket "$SOCK" >/dev/null
[ "$(stat -c '%a %G' "$SOCK")" = "660 $NOGROUP" ] || fail "socket mode/group: $(stat -c '%a %G' "$SOCK")"
set +e; as_daemon "$MR" login --socket "$SOCK" u01 >/dev/null 2>"$dir/err"; rc=$?; set -e
[ "$rc" = 77 ] && grep -q "permission denied" "$dir/err" || fail "login outside the socket group: exit $rc $(cat "$dir/err")"
set +e; as_nobody "$MR" login --socket "$SOCK" u01 >/dev/null; rc=$?; set -e
[ "$rc" = 75 ] || fail "login in the socket group: exit $rc"
as_nobody "$MR" login --socket "$SOCK" nobody >/dev/null || true
set +e; as_nobody "$MR" show --socket "$SOCK" u01 >/dev/null 2>"$dir/err"; rc=$?; set -e
[ "$rc" = 77 ] && grep -q "permission denied" "$dir/err" || fail "show of another user: exit $rc $(cat "$dir/err")"
[ "$(as_nobody "$MR" show --socket "$SOCK" --json nobody | json 'd["state"]')" = queued ] || fail "show of oneself"
[ "$(as_nobody "$MR" queue --socket "$SOCK" --json | json '[u["user"] for u in d]')" = '["nobody"]' ] ||
  fail "queue as nobody shows others: $(as_nobody "$MR" queue --socket "$SOCK" --json)"
[ "$("$MR" queue --socket "$SOCK" --json | json 'len(d)')" = 2 ] || fail "queue as root"
set +e; echo forged | as_nobody "$MR" deliver --socket "$SOCK" u02 2>"$dir/err"; rc=$?; set -e
[ "$rc" = 77 ] && grep -q "permission denied" "$dir/err" || fail "deliver by nobody: exit $rc $(cat "$dir/err")"
[ ! -d "$T/.mailrestore/state/held/u02" ] || [ -z "$(ls "$T/.mailrestore/state/held/u02")" ] || fail "forged mail held"
set +e; as_nobody "$MR" bump --socket "$SOCK" u03 2>/dev/null; rc=$?; set -e
[ "$rc" = 77 ] || fail "bump by nobody: exit $rc"
as_nobody "$MR" status --socket "$SOCK" >/dev/null || fail "status by nobody"
# a supplementary group of the peer process counts (SO_PEERGROUPS)
setpriv --reuid=nobody --regid="$NOGROUP" --groups="$(getent group adm | cut -d: -f3)" \
  "$MR" show --socket "$SOCK" u01 >/dev/null || fail "show by a process in --operator-group"
stop_daemon

# --- limits: connections per uid, delivery memory, slow bodies ------------
start_daemon --users "$dir/users" --background off --jobs 1 --deliver-group "$NOGROUP" --idle-timeout 2
"$MR" pause --socket "$SOCK" >/dev/null
as_nobody sh -c 'echo "Subject: by the deliver group" | "$0" deliver --socket "$1" u05' "$MR" "$SOCK" >/dev/null ||
  fail "deliver by a member of --deliver-group"
python3 - "$SOCK" "$MR" <<'PY' || fail "limits"
import json, os, resource, signal, socket, subprocess, sys, time
path, mr = sys.argv[1], sys.argv[2]
def check(cond, what):
    if not cond:
        print("FAIL:", what); sys.exit(1)

def as_nobody(job):
    """Runs job() in a child as nobody; returns (pid, read end of a pipe on
    which the child writes one line when it is ready)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
            os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
            job(w)
        finally:
            os._exit(0)
    os.close(w)
    return pid, os.fdopen(r)

def flood(w):
    conns = []
    for i in range(1100):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        try:
            s.sendall(b"PING\n")
        except OSError:
            pass  # refused and closed before the write (a busy machine's timing)
        conns.append(s)
    time.sleep(0.5)
    alive = 0
    for s in conns:
        s.settimeout(2)
        try:
            line = s.recv(4096)
            alive += b'"pong"' in line
        except OSError:
            pass
    os.write(w, b"%d\n" % alive)
    time.sleep(30)

pid, rd = as_nobody(flood)
alive = int(rd.readline())
check(0 < alive <= 256, "one uid held %d connections" % alive)
# root and another uid still get in
out = subprocess.run([mr, "login", "--socket", path, "--json", "u06"], capture_output=True, text=True)
check(out.returncode == 75 and json.loads(out.stdout)["state"] == "queued", "login as root behind the flood: %r" % (out,))
out = subprocess.run(["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups", mr, "login", "--socket", path, "u07"], capture_output=True, text=True)
check(out.returncode == 75, "login as another uid behind the flood: %r" % (out,))
os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)

def trickle(w):
    conns, answers = [], []
    for i in range(4):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path); s.settimeout(5)
        s.sendall(b"DELIVER u08 67108864\n")
        answers.append(json.loads(s.recv(4096).split(b"\n")[0]))
        conns.append(s)
    os.write(w, (json.dumps(answers) + "\n").encode())
    for k in range(60):
        for s in conns:
            try: s.send(b"x")
            except OSError: pass
        time.sleep(1)

pid, rd = as_nobody(trickle)
answers = json.loads(rd.readline())
check(sum(1 for a in answers if a.get("ok")) <= 2, "one uid took the delivery memory: %r" % answers)
out = subprocess.run([mr, "deliver", "--socket", path, "u09"], input=b"Subject: real\n\nreal mail\n", capture_output=True)
check(out.returncode == 0, "a real delivery behind 4 trickling ones: %r" % (out,))
os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)

# a body slower than the rate allows is cut off, though bytes keep coming
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path); s.settimeout(10)
s.sendall(b"DELIVER u08 100\n")
check(json.loads(s.recv(4096).split(b"\n")[0]).get("send") == 100, "deliver go-ahead")
t0 = time.monotonic(); got = b""
while time.monotonic() - t0 < 8:
    try:
        s.send(b"x")
    except OSError:
        break
    time.sleep(0.5)
    s.setblocking(False)
    try:
        got += s.recv(4096)
    except BlockingIOError:
        pass
    s.setblocking(True); s.settimeout(10)
    if got:
        break
check(b"too slow" in got and time.monotonic() - t0 < 6, "trickled body: %r after %.1f s" % (got, time.monotonic() - t0))
PY
stop_daemon

# --- held mail has limits: over one, deliver says try again later (75) ---
start_daemon --users "$dir/users" --background off --jobs 1 --held-max-messages 2
"$MR" pause --socket "$SOCK" >/dev/null
for i in 1 2; do echo "Subject: $i" | "$MR" deliver --socket "$SOCK" u04 >/dev/null || fail "held $i"; done
set +e; echo "Subject: 3" | "$MR" deliver --socket "$SOCK" u04 2>"$dir/err"; rc=$?; set -e
[ "$rc" = 75 ] && grep -q "held mail limit" "$dir/err" || fail "third held message: exit $rc $(cat "$dir/err")"
[ "$(ls "$T/.mailrestore/state/held/u04" | grep -c mrmail)" = 2 ] || fail "held files"
stop_daemon

# --- QUEUE asked and never read ------------------------------------------
seq -f "q%05g" 1 6000 > "$dir/many"
start_daemon --users "$dir/many" --background off --jobs 1 --state "$dir/state-many"
"$MR" pause --socket "$SOCK" >/dev/null
"$MR" enqueue --socket "$SOCK" --file "$dir/many" >/dev/null
python3 - "$SOCK" "$DPID" <<'PY' || fail "unread replies"
import json, socket, sys, time
path, pid = sys.argv[1], sys.argv[2]
def rss():
    for l in open("/proc/%s/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1]) * 1024
def full(req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path); s.settimeout(10); s.sendall(req)
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(65536)
        if not c: break
        buf += c
    s.close()
    return json.loads(buf)
# a reader gets the whole queue, in order, however many pieces it takes
r = full(b"QUEUE\n")
names = [u["user"] for u in r["queue"]]
if names != ["q%05d" % i for i in range(1, 6001)] or r["total"] != 6000:
    print("FAIL: QUEUE gave %d users (total %s), first %s" % (len(names), r.get("total"), names[:3])); sys.exit(1)
r = full(b"QUEUE 130\n")
if [u["user"] for u in r["queue"]] != ["q%05d" % i for i in range(1, 131)]:
    print("FAIL: QUEUE 130 gave %d users" % len(r["queue"])); sys.exit(1)
before = rss()
conns = []
for i in range(400):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(path); s.sendall(b"QUEUE\n"); conns.append(s)
time.sleep(1.5)
grown = rss() - before
print("daemon grew by %.1f MB with 400 unread QUEUE replies" % (grown / 1e6))
if grown > 40e6:
    print("FAIL: grew by %.1f MB" % (grown / 1e6)); sys.exit(1)
PY
"$MR" status --socket "$SOCK" >/dev/null || fail "status after the unread replies"
stop_daemon
echo "ok: socket access and limits"
