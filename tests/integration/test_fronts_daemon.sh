#!/usr/bin/env bash
# The fronts on the store host itself (single-host set-ups): `daemon
# --auth-http --backend-map --policy` answer nginx's auth_http and Postfix's
# policy from threads of the daemon (front/, cli/cmd_daemon.c); a peer
# outside --allow is closed before any byte; `login --state DIR` remembers
# what the daemon said and answers from it once the daemon is gone (0 for a
# user known back or untouched, 75 "cannot be reached" for anyone else),
# the lean mailrestore-login too; the ACTIVATIONS verb on the socket (a new
# epoch after a restart, dial tone joining the stream). From another host:
# the daemon's --listen with TLS and client certificates, an agent that
# reaches it with --connect (SHOW and ACTIVATIONS as a network peer), one
# without a certificate that is refused and answers "try again later", and
# login --connect --state answering from its snapshot once the daemon is
# gone (both binaries).
set -euo pipefail
SRC=${MR_SRC:?MR_SRC must point at the source tree}
. "$SRC/tests/integration/daemon_lib.sh"
LOGIN_BIN=${MR_BUILD:-$(dirname "$MR")}/mailrestore-login

dir=$(mktemp -d /tmp/mr-fronts.XXXXXX)
DPID=
APIDS=
trap 'for p in $APIDS $DPID; do kill -9 "$p" 2>/dev/null; done; rm -rf "$dir"' EXIT
S=$dir/S B=$dir/B T=$dir/T SOCK=$dir/mr.sock
mkdir -p "$S" "$B" "$T"
for u in alice bob dan eve; do mkuser "$u" 3; done
"$MR" backup --source "$S" --out "$B" >/dev/null || fail "backup"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ah=$(free_port) po=$(free_port)
printf '* 127.0.0.1:1143\n' > "$dir/map"
start_daemon --background off --auth-http "127.0.0.1:$ah" --backend-map "$dir/map" \
	--policy "127.0.0.1:$po"

# ask KIND ARG: one auth_http request (KIND http, ARG the user) or one
# policy request (KIND policy, ARG the recipient); prints the answer's
# interesting line(s)
ask() {
	python3 - "$ah" "$po" "$@" <<'PY'
import socket, sys
ah, po, kind, arg = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if kind == "http":
    s = socket.create_connection(("127.0.0.1", ah), 5)
    s.sendall(("GET /auth HTTP/1.0\r\nAuth-Method: plain\r\nAuth-User: %s\r\nAuth-Pass: x\r\n"
               "Auth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\n\r\n" % arg).encode())
else:
    s = socket.create_connection(("127.0.0.1", po), 5)
    s.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=%s\n\n" % arg).encode())
d = b""
while not d.endswith(b"\n\n") and not d.endswith(b"\r\n\r\n"):
    x = s.recv(4096)
    if not x:
        break
    d += x
print(" ".join(l for l in d.decode().splitlines() if l.startswith(("Auth-", "action="))))
PY
}
out=$(ask policy bob@example.org)
[ "$out" = "action=HOLD mailrestore: bob is being restored" ] || fail "policy for bob: $out"
out=$(ask policy nobody@example.org)
[ "$out" = "action=DUNNO" ] || fail "policy for an unaffected user: $out"
out=$(ask http alice)
case $out in "Auth-Status: Your mailbox is being restored"*"Auth-Wait: 3") ;; *) fail "auth_http for alice: $out" ;; esac
wait_state alice active
out=$(ask http alice)
[ "$out" = "Auth-Status: OK Auth-Server: 127.0.0.1 Auth-Port: 1143" ] || fail "auth_http for alice back: $out"
out=$(ask policy alice@example.org)
[ "$out" = "action=DUNNO" ] || fail "policy for alice back: $out"

# ACTIVATIONS on the socket: alice, then nothing new in the same epoch
act() { python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2] + "\n").encode())
d = b""
while not d.endswith(b"\n"): d += s.recv(65536)
print(d.decode().strip())' "$SOCK" "$1"; }
a=$(act "ACTIVATIONS 0 0")
[ "$(echo "$a" | json 'd["users"]')" = '["alice"]' ] || fail "ACTIVATIONS: $a"
epoch=$(echo "$a" | json 'd["epoch"]')
a=$(act "ACTIVATIONS $epoch 1")
[ "$(echo "$a" | json '[d["users"], d["first"], d["total"]]')" = '[[], 1, 1]' ] || fail "ACTIVATIONS from 1: $a"

# login --state: remembered while the daemon answers ...
"$MR" login --socket "$SOCK" --state "$dir/cs" alice >/dev/null || fail "login alice"
"$MR" login --socket "$SOCK" --state "$dir/cs" carol >/dev/null || fail "login carol (unaffected)"
set +e
"$MR" login --socket "$SOCK" --state "$dir/cs" bob >/dev/null; rc=$?
set -e
[ $rc = 75 ] || fail "login bob: exit $rc, want 75"
[ -f "$dir/cs/active/alice" ] && [ -f "$dir/cs/unaffected/carol" ] && [ ! -e "$dir/cs/active/bob" ] ||
	fail "the snapshot does not hold what the daemon said: $(find "$dir/cs" -type f)"

# ... a peer outside --allow gets no byte
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
ah=$(free_port) po=$(free_port)
start_daemon --background off --policy "127.0.0.1:$po" --allow 192.0.2.0/24 --dial-tone
out=$(python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
try:
    s.sendall(b"request=smtpd_access_policy\nrecipient=bob@example.org\n\n")
    print(repr(s.recv(100)))
except ConnectionResetError:
    print(repr(b""))' "$po")
[ "$out" = "b''" ] || fail "a peer outside --allow got: $out"
grep -q "is not allowed (--allow): closed" "$dir/daemon.log" || fail "the refusal is not logged"
# a new run: a new epoch, alice and bob (active: bob's login queued him)
# seeded; dan given dial tone by a login joins the stream (he may log in
# and take mail from now on)
a=$(act "ACTIVATIONS $epoch 1")
[ "$(echo "$a" | json '[d["epoch"] != "'"$epoch"'", d["first"], d["users"]]')" = '[true, 0, ["alice", "bob"]]' ] ||
	fail "ACTIVATIONS after a restart: $a"
"$MR" login --socket "$SOCK" dan | grep -qx active || fail "dan with dial tone"
a=$(act "ACTIVATIONS 0 0")
[ "$(echo "$a" | json 'd["users"]')" = '["alice", "bob", "dan"]' ] || fail "ACTIVATIONS with dial tone: $a"

# ... and answered from once the daemon is gone
stop_daemon
MAILRESTORE_CLIENT_STATE=$dir/cs "$MR" login --socket "$SOCK" alice | grep -qx active ||
	fail "alice from the snapshot (MAILRESTORE_CLIENT_STATE)"
"$LOGIN_BIN" --socket "$SOCK" --state "$dir/cs" alice | grep -qx active ||
	fail "mailrestore-login: alice from the snapshot"
"$MR" login --socket "$SOCK" --state "$dir/cs" carol | grep -qx active || fail "carol from the snapshot"
set +e
out=$("$MR" login --socket "$SOCK" --state "$dir/cs" bob); rc=$?
set -e
[ $rc = 75 ] || fail "bob without a daemon: exit $rc, want 75"
case $out in *"cannot be reached; try again later"*) ;; *) fail "bob's message: $out" ;; esac
set +e
"$LOGIN_BIN" --socket "$SOCK" --state "$dir/cs" dave >/dev/null; rc=$?
set -e
[ $rc = 75 ] || fail "mailrestore-login, unknown user without a daemon: exit $rc, want 75"

# ---- from another host: --listen with TLS and client certificates -------
command -v openssl >/dev/null || {
	echo "PASS (without the TLS part: no openssl CLI): the daemon's auth_http and policy; --allow; ACTIVATIONS; login --state"
	exit 0
}
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
mkca ca
mkcert store ca "IP:127.0.0.1"
mkcert mx ca "DNS:mx.example"
lp=$(free_port)
start_daemon --background off --listen "127.0.0.1:$lp" --allow 127.0.0.0/8 \
	--tls-cert "$pki/store.crt" --tls-key "$pki/store.key" --tls-client-ca "$pki/ca.crt"
tls=(--connect "127.0.0.1:$lp" --tls-ca "$pki/ca.crt" --tls-cert "$pki/mx.crt" --tls-key "$pki/mx.key")
# an agent with its certificate: eve (waiting) is held, which only the
# daemon can say (the agent's snapshot is new); the stream fills the snapshot
po=$(free_port)
"$MR" release-agent "${tls[@]}" --state "$dir/as" --policy "127.0.0.1:$po" --interval 1 \
	--rescan 3600 --postfix-config "$dir/no-postfix" 2>>"$dir/agent.log" &
APIDS="$APIDS $!"
for _ in $(seq 100); do [ -f "$dir/as/active/alice" ] && break; sleep 0.1; done
[ -f "$dir/as/active/alice" ] || fail "the agent over TLS did not follow the activations: $(tail -n 5 "$dir/agent.log")"
out=$(ask policy eve@example.org)
[ "$out" = "action=HOLD mailrestore: eve is being restored" ] || fail "policy for eve over TLS: $out"
out=$(ask policy alice@example.org)
[ "$out" = "action=DUNNO" ] || fail "policy for alice over TLS: $out"
# an agent without a certificate: the daemon refuses the handshake, the
# agent says try again later
po=$(free_port)
"$MR" agent --connect "127.0.0.1:$lp" --tls-ca "$pki/ca.crt" --state "$dir/as2" \
	--policy "127.0.0.1:$po" 2>>"$dir/agent2.log" &
APIDS="$APIDS $!"
for _ in $(seq 100); do
	python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$po" 2>/dev/null && break
	sleep 0.1
done
out=$(ask policy eve@example.org)
case $out in "action=DEFER_IF_PERMIT"*) ;; *) fail "policy without a client certificate: $out" ;; esac
grep -q "TLS handshake failed" "$dir/daemon.log" || fail "the refused handshake is not logged"
# login --connect --state: remembered over TLS, answered from once the
# daemon is gone (the lean binary connects without TLS: refused, then the
# snapshot answers)
"$MR" login "${tls[@]}" --state "$dir/ns" alice | grep -qx active || fail "login --connect alice"
[ -f "$dir/ns/active/alice" ] || fail "login --connect --state did not remember alice"
# a handshake that fails while the daemon runs is answered from the
# snapshot too: the daemon's certificate not from the CA we trust (as
# with an expired one; named on stderr), or ours refused by the daemon
# (no client certificate: TLS 1.3 says so at the first read); a user the
# snapshot does not know back waits
mkca other
set +e
out=$("$MR" login --connect "127.0.0.1:$lp" --tls-ca "$pki/other.crt" --tls-cert "$pki/mx.crt" \
	--tls-key "$pki/mx.key" --state "$dir/ns" alice 2>"$dir/tlsfail.err"); rc=$?
set -e
[ $rc = 0 ] && [ "$out" = active ] || fail "login --state, a foreign daemon certificate: exit $rc, $out"
grep -q "TLS to 127.0.0.1:$lp failed: TLS: the daemon's certificate" "$dir/tlsfail.err" ||
	fail "the failed handshake is not named: $(cat "$dir/tlsfail.err")"
for who in alice:0 eve:75; do
	set +e
	out=$("$MR" login --connect "127.0.0.1:$lp" --tls-ca "$pki/ca.crt" --state "$dir/ns" "${who%:*}" 2>/dev/null); rc=$?
	set -e
	[ $rc = "${who#*:}" ] || fail "login --state without a client certificate, ${who%:*}: exit $rc ($out)"
done
stop_daemon
"$MR" login "${tls[@]}" --state "$dir/ns" alice | grep -qx active ||
	fail "login --connect: alice from the snapshot"
MAILRESTORE_CONNECT=127.0.0.1:$lp MAILRESTORE_CLIENT_STATE=$dir/ns "$LOGIN_BIN" alice | grep -qx active ||
	fail "mailrestore-login --connect: alice from the snapshot"
set +e
out=$("$LOGIN_BIN" --connect "127.0.0.1:$lp" --state "$dir/ns" eve); rc=$?
set -e
[ $rc = 75 ] || fail "mailrestore-login --connect, eve without a daemon: exit $rc, want 75"
case $out in *"cannot be reached; try again later"*) ;; *) fail "eve's message: $out" ;; esac
echo "PASS: the daemon's auth_http and policy; --allow; ACTIVATIONS; login --state; an agent and login over TLS with client certificates"
