#!/usr/bin/env bash
# The daemon's network listeners (issue 18): --listen on IPv4 and IPv6
# loopback with --allow; an allowed peer logs in over TCP and jumps the
# queue; a peer outside --allow gets not one byte; network peers may only
# LOGIN, SHOW and PING (77 for the rest, DELIVER also closes) while the
# same verbs work on the socket; one address is held to the per-peer
# connection limit; the CLI with --connect and MAILRESTORE_CONNECT, the
# lean login binary with --connect; --listen without --allow warns and
# refuses everyone; TLS with client certificates (a good one works; none,
# one from another CA, a client that trusts another CA, plain TCP and a
# stalled handshake are refused without a protocol byte); during start-up
# allowed network peers hear "starting" (75).
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl CLI"; exit 77; }
ML=$(dirname "$MR")/mailrestore-login
setup_dir network
for u in u1 u2 u3 u4; do mkuser "$u" 3; done
"$MR" backup --source "$S" --out "$B" >/dev/null

# A loopback address of its own (other tests run beside this one) and free
# ports on it. The clients connect from 127.0.0.1 (the loopback route's
# source); the refused peer binds 127.0.0.9.
A=127.0.0.$((RANDOM % 150 + 60))
freeport() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"; }
P=$(freeport "$A")
V6=
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  V6=1; P6=$(freeport ::1)
else
  echo "note: ::1 is not available here; the IPv6 part is skipped"
fi
ask() { set +e; out=$("$@" 2>&1); rc=$?; set -e; }
expect() { # CODE WHAT: the last ask exited CODE
  [ "$rc" = "$1" ] || fail "$2: exit $rc, wanted $1: $out"
}
# raw ADDR PORT SRC|- LINES...: sends the lines (then its end), prints every
# byte the daemon sends until it closes (timeout 5 s), then "EOF".
raw() {
  python3 - "$@" <<'PY'
import socket, sys
addr, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam)
if src != "-":
    s.bind((src, 0))
s.settimeout(5)
s.connect((addr, port))
try:
    for l in sys.argv[4:]:
        s.sendall(l.encode() + b"\n")
    if len(sys.argv) > 4:
        s.shutdown(socket.SHUT_WR)  # no lines: a peer that just sits there
except OSError:
    pass  # closed on us already: what came before still counts
got = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except ConnectionResetError:
    pass
sys.stdout.write(got.decode(errors="replace"))
print("EOF")
PY
}

# --- during start-up: "starting" (75) over TCP too, refusals as ever -------
# (held in its start by a --users file that is a FIFO nobody wrote yet)
mkfifo "$dir/users"
"$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" --background off \
  --users "$dir/users" --listen "$A:$P" --allow 127.0.0.1/32 >>"$dir/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || fail "no socket while the daemon starts"
ask "$MR" login --connect "$A:$P" u1; expect 75 "login over TCP during start-up"
case "$out" in *starting*) ;; *) fail "login over TCP during start-up: $out";; esac
got=$(raw "$A" "$P" 127.0.0.9 "LOGIN u1")
[ "$got" = EOF ] || fail "a peer outside --allow got bytes during start-up: $got"
printf 'u1\nu2\nu3\nu4\n' > "$dir/users"
"$MR" status --socket "$SOCK" >/dev/null || fail "status after the start-up"   # waits it out
"$MR" shutdown --socket "$SOCK" >/dev/null
wait "$DPID" || fail "daemon exit $? after the start-up phase"
DPID=
grep -q "clients told the daemon is starting" "$dir/daemon.log" || fail "no start-up answers logged"

# --- plain TCP ------------------------------------------------------------
listen=(--listen "$A:$P" --allow 127.0.0.1/32)
[ -n "$V6" ] && listen+=(--listen "[::1]:$P6" --allow ::1)
start_daemon --background off --jobs 1 --max-clients-per-uid 3 "${listen[@]}"
"$MR" pause --socket "$SOCK" >/dev/null
grep -q "listening on $A:$P (plain TCP)" "$dir/daemon.log" || fail "no listener line in the log"

# An allowed peer logs in and jumps the queue, with its position.
ask "$MR" login --connect "$A:$P" u2; expect 75 "login u2 over TCP"
case "$out" in *"You are next"*) ;; *) fail "login u2: $out";; esac
ask "$MR" login --connect "$A:$P" u1; expect 75 "login u1 over TCP"
case "$out" in *"1 request in the queue before you"*) ;; *) fail "login u1: $out";; esac
[ "$("$MR" queue --socket "$SOCK" --json | json '[u["user"] for u in d]')" = '["u2", "u1"]' ] ||
  fail "the network logins are not first in the queue: $("$MR" queue --socket "$SOCK" --json)"
# SHOW of any user, its place and times, not what the mailbox holds.
"$MR" show --connect "$A:$P" --json u1 > "$dir/show.json" || fail "show over TCP"
[ "$(json '[d["position"], d["state"], d["reason"], "counters" in d, "held_mail" in d]' < "$dir/show.json")" = '[1, "queued", null, false, false]' ] ||
  fail "show over TCP: $(cat "$dir/show.json")"
[ "$("$MR" show --socket "$SOCK" --json u1 | json '"counters" in d')" = True ] || fail "show on the socket lost its counters"
# MAILRESTORE_CONNECT, and --socket winning over it.
[ "$(MAILRESTORE_CONNECT="$A:$P" "$MR" show --json u2 | json 'd["position"]')" = 0 ] || fail "MAILRESTORE_CONNECT"
ask env MAILRESTORE_CONNECT="$A:$P" "$MR" pause --socket "$SOCK"; expect 0 "--socket over MAILRESTORE_CONNECT"
# The lean binary, with --connect and with the environment.
a=$("$MR" login --connect "$A:$P" u1 2>&1 || true)
b=$("$ML" --connect "$A:$P" u1 2>&1 || true)
[ "$a" = "$b" ] && [ -n "$a" ] || fail "mailrestore-login --connect says [$b], mailrestore login [$a]"
ask env MAILRESTORE_CONNECT="$A:$P" "$ML" u2; expect 75 "mailrestore-login with MAILRESTORE_CONNECT"
ask "$ML" --connect "$A:1" u2; expect 69 "mailrestore-login, nobody on the port"
PING=$(raw "$A" "$P" - PING)
case "$PING" in *'"pong":true'*EOF) ;; *) fail "PING over TCP: $PING";; esac

# A peer outside --allow: closed with not one byte.
got=$(raw "$A" "$P" 127.0.0.9 "LOGIN u3")
[ "$got" = EOF ] || fail "a peer outside --allow got bytes: $got"
grep -q "refused 127.0.0.9:[0-9]* on $A:$P: not in any --allow" "$dir/daemon.log" || fail "the refusal is not logged"
[ "$("$MR" show --socket "$SOCK" --json u3 | json 'd["state"]')" = waiting ] || fail "a refused peer's LOGIN counted"

# Network peers ask about users; everything else is for the socket.
for c in "pause" "resume" "retry u1" "activate u1" "enqueue u3" "enqueue --priority u3" "bump u3" \
         "shutdown" "status" "queue" "queue --state attention"; do
  ask "$MR" $c --connect "$A:$P"; expect 77 "$c over TCP"
  case "$out" in *"only on the Unix socket"*) ;; *) fail "$c over TCP: $out";; esac
done
ask sh -c "echo 'Subject: x' | '$MR' deliver --connect '$A:$P' u1"; expect 77 "deliver over TCP"
got=$(raw "$A" "$P" - "DELIVER u1 5" "hello" "PING")
case "$got" in *'"code":77'*EOF) ;; *) fail "DELIVER over TCP: $got";; esac
case "$got" in *pong*) fail "the connection went on after a refused DELIVER: $got";; esac
[ ! -d "$T/.mailrestore/state/held/u1" ] || [ -z "$(ls -A "$T/.mailrestore/state/held/u1")" ] ||
  fail "mail held from a network peer"
# ... while the same verbs still work on the socket.
"$MR" enqueue --socket "$SOCK" u3 >/dev/null || fail "enqueue on the socket"
"$MR" bump --socket "$SOCK" u3 >/dev/null || fail "bump on the socket"
"$MR" status --socket "$SOCK" >/dev/null || fail "status on the socket"
"$MR" pause --socket "$SOCK" >/dev/null || fail "pause on the socket" # (stays paused: nobody goes active)
echo "Subject: y" | "$MR" deliver --socket "$SOCK" u4 >/dev/null || fail "deliver on the socket"

# One address is held to --max-clients-per-uid (3 here) like one uid.
python3 - "$A" "$P" <<'PY' || fail "per-address connection limit"
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
held = []
for i in range(3):
    s = socket.create_connection((addr, port), timeout=5); held.append(s)
s = socket.create_connection((addr, port), timeout=5)
got = s.recv(4096)
assert b"too many connections from this address" in got, got
s.close()
held[0].sendall(b"PING\n"); assert b"pong" in held[0].recv(4096)
PY

if [ -n "$V6" ]; then
  ask "$MR" login --connect "[::1]:$P6" u4; expect 75 "login over IPv6"
  case "$out" in *"in the queue before you"*) ;; *) fail "login over IPv6: $out";; esac
  ask "$MR" pause --connect "[::1]:$P6"; expect 77 "pause over IPv6"
fi
stop_daemon

# --- --listen without --allow: starts, warns, refuses every peer ----------
start_daemon --background off --jobs 1 --listen "$A:$P"
grep -q "warning: --listen without --allow: every network peer will be refused" "$dir/daemon.log" ||
  fail "no warning for --listen without --allow"
got=$(raw "$A" "$P" - "PING")
[ "$got" = EOF ] || fail "a peer got bytes with no --allow: $got"
stop_daemon

# --- TLS with client certificates -------------------------------------------
pki=$dir/pki
mkdir -p "$pki"
mkca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$pki/$1.key" -out "$pki/$1.crt" -subj "/CN=$1 test CA" 2>/dev/null; }
mkcert() { # NAME CA SAN
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\n' "$3" > "$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -CAcreateserial \
    -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}
mkca ca; mkca other
mkcert server ca "IP:$A,IP:::1"
mkcert proxy ca "DNS:proxy.example"
mkcert stranger other "DNS:stranger.example"
start_daemon --background off --jobs 1 --idle-timeout 2 --listen "$A:$P" --allow 127.0.0.1/32 \
  --tls-cert "$pki/server.crt" --tls-key "$pki/server.key" --tls-client-ca "$pki/ca.crt"
grep -q "listening on $A:$P (TLS, client certificates required)" "$dir/daemon.log" || fail "no TLS listener line"
good=(--connect "$A:$P" --tls-ca "$pki/ca.crt" --tls-cert "$pki/proxy.crt" --tls-key "$pki/proxy.key")
ask "$MR" login "${good[@]}" u3; expect 75 "login over TLS with a good certificate"
case "$out" in *"in the queue before you"*|*"You are next"*) ;; *) fail "login over TLS: $out";; esac
[ "$("$MR" show "${good[@]}" --json u3 | json 'd["state"]')" = queued ] || fail "show over TLS"
ask "$ML" "${good[@]}" u3; expect 75 "mailrestore-login over TLS (through the full binary)"
ask "$MR" pause "${good[@]}"; expect 77 "pause over TLS"
# Requests sent ahead in one go: the TLS session reads more than a line
# buffer at once, and the bytes it holds are served without a new event.
python3 - "$A" "$P" "$pki" <<'PY' || fail "pipelined requests over TLS"
import socket, ssl, sys
addr, port, pki = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/proxy.crt", pki + "/proxy.key")
s = ctx.wrap_socket(socket.create_connection((addr, port), timeout=10), server_hostname=addr)
n = 2000
s.sendall(b"PING\n" * n + b"SHOW u3\n")
got = b""
while got.count(b"\n") < n + 1:
    b = s.recv(65536)
    assert b, "closed after %d replies" % got.count(b"\n")
    got += b
lines = got.split(b"\n")
assert all(b'"pong":true' in l for l in lines[:n]), lines[:3]
assert b'"user":"u3"' in lines[n], lines[n]
PY
ask "$MR" login --connect "$A:$P" --tls-ca "$pki/ca.crt" u3; expect 69 "TLS without a client certificate"
ask "$MR" login --connect "$A:$P" --tls-ca "$pki/ca.crt" --tls-cert "$pki/stranger.crt" \
  --tls-key "$pki/stranger.key" u3; expect 69 "TLS with a certificate of another CA"
ask "$MR" login --connect "$A:$P" --tls-ca "$pki/other.crt" --tls-cert "$pki/proxy.crt" \
  --tls-key "$pki/proxy.key" u3; expect 69 "a client that trusts another CA"
case "$out" in *"certificate"*) ;; *) fail "the client does not say why: $out";; esac
ask "$MR" login --connect "$A:$P" u3; expect 69 "plain TCP to a TLS listener"
# No protocol byte for any of them (the handshake failed first), and a
# peer that stalls the handshake is closed after the idle time.
got=$(raw "$A" "$P" - "LOGIN u3")
case "$got" in *'"ok"'*) fail "plain bytes got a protocol answer: $got";; esac
got=$(raw "$A" "$P" -)
[ "$got" = EOF ] || fail "a stalled handshake got bytes: $got"
grep -q "TLS handshake not done within the idle time" "$dir/daemon.log" || fail "the stall is not logged"
grep -q "TLS handshake failed" "$dir/daemon.log" || fail "failed handshakes are not logged"
stop_daemon
echo "network listeners: all checks passed"
