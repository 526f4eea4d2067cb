#!/usr/bin/env bash
# Many machines on one (issue 18): three loopback addresses play three hosts.
#   store  $STORE: the mailrestore daemon and a private Dovecot (the IMAP
#          backend serving T, passwords from a passwd file);
#   proxy  $PROXY: a private nginx mail proxy (IMAP) whose auth_http is
#          `mailrestore agent --auth-http` with a backend map;
#   MX     $MX:    a private Postfix with `check_policy_service` pointing at
#          `mailrestore release-agent --policy`, delivering to the store
#          with contrib/postfix/mailrestore-deliver --id.
# It shows:
#   - a login through nginx (Python's imaplib) for a user not back gets NO
#     with the queue line and jumps the queue; once active, the same login
#     gets in through nginx and sees every message;
#   - mail for a waiting user sits in Postfix's hold queue, is never
#     released early, and is released at activation in arrival order,
#     delivered once, never bounced, none lost across kill -9 of the daemon
#     and, separately, of the agent (each restarted);
#   - while the daemon is away, the proxy and the MX answer from their
#     snapshots: a user known back logs in and gets mail, anyone else is
#     told to try again later (NO / 4xx), never let in, never bounced.
# The daemon listens on $STORE (--listen) and the agents on the proxy and
# the MX reach it over TCP (--connect $STORE:PORT) as network peers: SHOW,
# LOGIN and ACTIVATIONS are all they need. Every client on loopback
# connects from 127.0.0.1 whatever address it dials, so the listeners
# allow 127.0.0.0/8 (on real hosts: --allow the proxy's and the MX's own
# addresses). Postfix's delivery pipe runs on the store's socket (DELIVER
# is not a network verb; on real hosts the MX delivers by LMTP or SMTP).
# Skips (77) without root, nginx's mail module, Dovecot or Postfix.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
SRC=${MR_SRC:?MR_SRC must point at the source tree}
. "$SRC/tests/integration/postfix_lib.sh"
WRAP=$SRC/contrib/postfix/mailrestore-deliver

skip() { echo "SKIP: $*"; exit 77; }
fail() {
	echo "FAIL: $*"
	for f in daemon.log mx-agent.log proxy-agent.log maillog nginx/error.log dovecot.log; do
		[ -f "${dir:-/nonexistent}/$f" ] && { echo "--- $f (tail)"; tail -n 25 "$dir/$f"; }
	done
	exit 1
}

command -v python3 >/dev/null || skip "python3 is not installed (the IMAP and SMTP clients)"
[ "$(id -u)" = 0 ] || skip "needs root: nginx, Dovecot and Postfix masters run as root"
NGINX_MOD=/usr/lib/nginx/modules/ngx_mail_module.so
if [ ! -x /usr/sbin/nginx ] || [ ! -f "$NGINX_MOD" ]; then
	echo "nginx's mail module is not installed; trying apt-get install nginx-light libnginx-mod-mail"
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends \
		nginx-light libnginx-mod-mail >/dev/null 2>&1 || skip "nginx's mail module could not be installed"
fi
[ -x /usr/sbin/nginx ] && [ -f "$NGINX_MOD" ] || skip "no nginx or no $NGINX_MOD"
if [ ! -x /usr/sbin/dovecot ]; then
	# dovecot-core, not dovecot-imapd: that one would remove cyrus-imapd
	# (both are imap-server); imap_lib.sh unpacks its IMAP processes.
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y dovecot-core >/dev/null 2>&1 ||
		skip "dovecot-core could not be installed"
fi
[ -x /usr/sbin/dovecot ] || skip "no dovecot binary"
if [ ! -x /usr/sbin/postfix ]; then
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections 2>/dev/null || true
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends \
		postfix >/dev/null 2>&1 || skip "postfix could not be installed"
fi
[ -x /usr/sbin/postfix ] || skip "no postfix binary"
getent passwd postfix >/dev/null && getent group postdrop >/dev/null || skip "broken postfix install"
getent passwd dovenull >/dev/null && getent passwd dovecot >/dev/null || skip "broken dovecot install"
pf_daemons=/usr/lib/postfix/sbin

dir=$(mktemp -d /tmp/mr-multihost.XXXXXX)
chmod 755 "$dir"
PF=$dir/pf
daemon_pid= mx_pid= proxy_pid=
cleanup() {
	set +e
	for p in $mx_pid $proxy_pid $daemon_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -f "$dir/nginx/nginx.pid" ] && kill "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null
	[ -f "$dir/run/master.pid" ] && /usr/sbin/dovecot -c "$dir/dovecot.conf" stop >/dev/null 2>&1
	mr_postfix_stop "$PF"
	[ -n "${MR_KEEP_TMP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# Dovecot's IMAP processes: from dovecot-imapd, or its unpacked package
# where cyrus-imapd holds the imap-server place (imap_lib.sh).
. "$SRC/tests/integration/imap_lib.sh"
dv_imap=$(mr_dovecot_imap_conf "$dir") || skip "no Dovecot IMAP processes (see above)"

# Three "hosts": 127.N.M.1, .2, .3 with N.M picked at random.
net="127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))"
STORE=$net.1 PROXY=$net.2 MX=$net.3
free_port() { # ADDR
	python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
wait_port() { # ADDR PORT
	for _ in $(seq 100); do
		python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$1" "$2" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- the store: users, backups, the daemon --------------------------------
S=$dir/S B=$dir/B T=$dir/T SOCK=$dir/mr.sock
MAILUID=65534 MAILGID=$(getent passwd nobody | cut -d: -f4)
mkdir -p "$S" "$B" "$T" "$dir/run" "$dir/state"
chmod 755 "$T"
for u in alice bob dave u1 u2; do
	mkdir -p "$S/$u"/{cur,new,tmp}
	for i in 1 2 3; do
		printf 'From: x@example.org\r\nSubject: old %s %d\r\n\r\nfrom the backup\r\n' "$u" "$i" \
			> "$S/$u/cur/170000000$i.M${i}P1.fixture,S=50:2,S"
	done
done
chown -R "$MAILUID:$MAILGID" "$S"
"$MR" backup --source "$S" --out "$B" >/dev/null || fail "mailrestore backup"

daemon_port=$(free_port "$STORE")
DAEMON_AT=(--connect "$STORE:$daemon_port")   # the agents: from their hosts, over TCP
start_daemon() {
	"$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
		--listen "$STORE:$daemon_port" --allow 127.0.0.0/8 \
		--background off --deliver-group "$(id -gn nobody)" 2>>"$dir/daemon.log" &
	daemon_pid=$!
	for _ in $(seq 100); do
		"$MR" status --socket "$SOCK" >/dev/null 2>&1 && return 0
		kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon exited at start"
		sleep 0.1
	done
	fail "the daemon does not answer"
}
start_daemon
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
show() { "$MR" show --socket "$SOCK" --json -- "$1" | json "$2"; }
wait_active() {
	for _ in $(seq 300); do
		[ "$(show "$1" 'd["state"]')" = active ] && return 0
		sleep 0.1
	done
	fail "$1 did not become active"
}
"$MR" pause --socket "$SOCK" >/dev/null || fail "pause"

# ---- the store: a private Dovecot serving T --------------------------------
imap_port=$(free_port "$STORE")
printf 'alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\n' > "$dir/passwd"
cat > "$dir/dovecot.conf" <<EOF
base_dir = $dir/run
state_dir = $dir/state
instance_name = mr-multihost-$imap_port
log_path = $dir/dovecot.log
protocols = imap
listen = $STORE
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:$T/%u
auth_username_format = %u
first_valid_uid = 1
default_vsz_limit = 0
login_trusted_networks = $PROXY/32
service imap-login {
  inet_listener imap {
    address = $STORE
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN $dir/passwd
}
userdb {
  driver = static
  args = uid=$MAILUID gid=$MAILGID home=$T/%u
}
$dv_imap
EOF
/usr/sbin/dovecot -c "$dir/dovecot.conf" 2>"$dir/dovecot.start" ||
	skip "dovecot does not start here: $(head -c 300 "$dir/dovecot.start")"
wait_port "$STORE" "$imap_port" || skip "dovecot does not listen on $STORE:$imap_port"

# ---- the proxy: the agent's auth_http and nginx's mail proxy -----------------
auth_port=$(free_port "$PROXY")
echo "* $STORE:$imap_port" > "$dir/backends"
start_proxy_agent() {
	"$MR" agent "${DAEMON_AT[@]}" --state "$dir/proxy-state" --interval 1 \
		--auth-http "$PROXY:$auth_port" --backend-map "$dir/backends" --allow 127.0.0.0/8 \
		2>>"$dir/proxy-agent.log" &
	proxy_pid=$!
	wait_port "$PROXY" "$auth_port" || fail "the proxy's agent does not listen"
}
start_proxy_agent
nginx_port=$(free_port "$PROXY")
mkdir -p "$dir/nginx"
cat > "$dir/nginx/nginx.conf" <<EOF
load_module $NGINX_MOD;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log info;
worker_processes 1;
events { worker_connections 64; }
mail {
  server_name proxy.test.invalid;
  auth_http $PROXY:$auth_port/auth;
  auth_http_timeout 20s;
  server {
    listen $PROXY:$nginx_port;
    protocol imap;
  }
}
EOF
/usr/sbin/nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" \
	2>"$dir/nginx.start" || skip "nginx does not start here: $(head -c 300 "$dir/nginx.start")"
wait_port "$PROXY" "$nginx_port" || skip "nginx does not listen on $PROXY:$nginx_port"

# imap USER PASSWORD: through nginx; "OK <messages in INBOX>" or "NO <text>"
imap() {
	python3 - "$PROXY" "$nginx_port" "$@" <<'PY'
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=30)
try:
    m.login(sys.argv[3], sys.argv[4])
except imaplib.IMAP4.error as e:
    print("NO", e)
    sys.exit(0)
typ, data = m.select("INBOX")
print("OK", int(data[0]) if typ == "OK" else "SELECT-FAILED")
m.logout()
PY
}

# ---- the MX: the release agent's policy service and Postfix ------------------
policy_port=$(free_port "$MX")
start_mx_agent() {
	"$MR" release-agent "${DAEMON_AT[@]}" --state "$dir/mx-state" --interval 1 --rescan 1 \
		--policy "$MX:$policy_port" --allow 127.0.0.0/8 --postfix-config "$PF/etc" \
		2>>"$dir/mx-agent.log" &
	mx_pid=$!
	wait_port "$MX" "$policy_port" || fail "the MX's agent does not listen"
}
smtp_port=$(free_port "$MX")
mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
chown postfix "$PF/data"
cat > "$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
daemon_directory = $pf_daemons
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.invalid
mydestination =
# Postfix knows only the interfaces' own addresses (127.0.0.1 on lo);
# master.cf binds smtpd to $MX itself.
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
biff = no
relay_domains = example.org
relay_transport = mailrestore
relay_recipient_maps =
mailrestore_destination_recipient_limit = 1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# mailrestore's policy on this MX: HOLD for a recipient not back yet
smtpd_recipient_restrictions = check_policy_service inet:$MX:$policy_port
smtpd_policy_service_default_action = 451 4.3.5 policy service unavailable
queue_run_delay = 1s
minimal_backoff_time = 1s
# queue ids that sort by arrival to the microsecond (the release order)
enable_long_queue_ids = yes
maximal_backoff_time = 2s
delay_warning_time = 0
EOF
cat > "$PF/etc/master.cf" <<EOF
$MX:$smtp_port inet n - n - - smtpd
$(mr_postfix_services)
mailrestore unix  -       n       n       -       -       pipe
  flags=DR user=nobody argv=/usr/bin/env MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK $WRAP --id \${queue_id}/\${recipient} -- \${mailbox}
EOF
start_mx_agent
postfix -c "$PF/etc" start >"$dir/postfix.start" 2>&1 ||
	skip "postfix does not start here: $(head -c 300 "$dir/postfix.start")"
wait_port "$MX" "$smtp_port" || skip "postfix does not listen on $MX:$smtp_port"

# send RCPT SUBJECT...: prints "ok" or the SMTP refusal code per message
send() {
	python3 - "$MX" "$smtp_port" "$@" <<'PY'
import smtplib, sys
host, port, rcpt, subjects = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
s = smtplib.SMTP(host, port, timeout=30)
for subj in subjects:
    msg = "From: s@test.invalid\r\nTo: %s\r\nSubject: %s\r\n\r\nbody\r\n" % (rcpt, subj)
    try:
        s.sendmail("s@test.invalid", [rcpt], msg)
        print("ok")
    except smtplib.SMTPRecipientsRefused as e:
        print(list(e.recipients.values())[0][0])
    s.rset()
s.quit()
PY
}
# held: "ID ARRIVAL RCPT" per message in the hold queue, oldest first
held() {
	postqueue -c "$PF/etc" -j | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
for r in sorted((r for r in rows if r["queue_name"] == "hold"), key=lambda r: (r["arrival_time"], r["queue_id"])):
    print(r["queue_id"], r["arrival_time"], r["recipients"][0]["address"])'
}
copies() { # USER SUBJECT
	{ grep -lx -F "Subject: $2" "$T/$1"/new/* "$T/$1"/cur/* 2>/dev/null || true; } | wc -l
}

# ---- a login through nginx jumps the queue ------------------------------
"$MR" enqueue --socket "$SOCK" --priority u1 u2 >/dev/null || fail "enqueue u1 u2"
out=$(imap alice alice-pw)
echo "alice through nginx, not back: $out"
case $out in
*"There are 2 requests in the queue before you"*) ;;
*) fail "alice's login through nginx should be refused with her place, got: $out" ;;
esac
[ "$(show alice 'd["position"]')" = 2 ] || fail "alice did not join the queue at 2"
[ "$(show alice 'd["priority"]')" = True ] || fail "alice's login was no priority request"

# ---- mail for a waiting user is held on the MX --------------------------
[ "$(send bob@example.org "held 1" "held 2" "held 3" | sort -u)" = ok ] || fail "postfix refused mail for bob"
for _ in $(seq 100); do [ "$(held | wc -l)" = 3 ] && break; sleep 0.1; done
[ "$(held | wc -l)" = 3 ] || fail "3 messages for bob should be held: $(held)"
"$MR" resume --socket "$SOCK" >/dev/null
wait_active alice
wait_active u1
sleep 3 # the agent scans the hold queue every second meanwhile
[ "$(held | wc -l)" = 3 ] || fail "mail for bob was released before bob is back"
[ ! -e "$T/bob" ] || fail "bob has a mailbox before his turn"

out=$(imap alice alice-pw)
[ "$out" = "OK 3" ] || fail "alice back, through nginx: '$out', want 'OK 3'"
out=$(imap alice wrong-pw)
case $out in NO*) ;; *) fail "a wrong password got through nginx: $out" ;; esac
echo "nginx: refused with the queue line, then in with every message"

# ---- kill -9 of the daemon: the fronts answer from their snapshots ------
kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
out=$(imap alice alice-pw)
[ "$out" = "OK 3" ] || fail "alice (known back) while the daemon is away: '$out'"
out=$(imap bob bob-pw)
case $out in *"cannot be reached"*) ;; *) fail "bob while the daemon is away: $out" ;; esac
code=$(send bob@example.org "while away")
case $code in 4*) ;; *) fail "mail for bob while the daemon is away: '$code', want a 4xx" ;; esac
[ "$(send alice@example.org "to alice while away")" = ok ] || fail "mail for alice (known back) refused"
echo "daemon away: alice in and mail accepted, bob told to wait ($code)"
start_daemon
[ "$(send bob@example.org "held 4")" = ok ] || fail "mail for bob after the restart"
for _ in $(seq 100); do [ "$(held | wc -l)" = 4 ] && break; sleep 0.1; done
[ "$(held | wc -l)" = 4 ] || fail "4 messages for bob should be held: $(held)"
held | awk '{print $1}' > "$dir/bob-arrival-order"

# ---- kill -9 of the agent, then bob comes back --------------------------
kill -9 "$mx_pid"; wait "$mx_pid" 2>/dev/null || true; mx_pid=
start_mx_agent
"$MR" enqueue --socket "$SOCK" --priority bob >/dev/null
wait_active bob
for _ in $(seq 300); do
	[ "$(copies bob "held 4")" = 1 ] && [ -z "$(held)" ] && break
	sleep 0.1
done
for s in "held 1" "held 2" "held 3" "held 4"; do
	[ "$(copies bob "$s")" = 1 ] || fail "bob has $(copies bob "$s") copies of '$s', want 1"
done
[ "$(copies bob "while away")" = 0 ] || fail "a refused message arrived"
grep -o 'agent: released [A-Za-z0-9]*' "$dir/mx-agent.log" | awk '{print $3}' > "$dir/release-order"
grep -Fxf "$dir/bob-arrival-order" "$dir/release-order" | diff - "$dir/bob-arrival-order" >/dev/null ||
	fail "bob's mail was not released in arrival order: $(cat "$dir/release-order")"
# deferred by the delivery while the daemon was down: Postfix retries on its
# own; a flush now and then (as after any restart, RUNBOOK.md) hurries it
for i in $(seq 600); do
	[ "$(copies alice "to alice while away")" = 1 ] && break
	[ $((i % 50)) = 0 ] && postqueue -c "$PF/etc" -f >/dev/null 2>&1
	sleep 0.1
done
[ "$(copies alice "to alice while away")" = 1 ] ||
	fail "alice's mail from the outage of the daemon is lost: $(postqueue -c "$PF/etc" -p 2>&1 | tail -n 5)"

# ---- the agent away at the activation: it catches up when back ---------
[ "$(send dave@example.org "for dave 1" "for dave 2" | sort -u)" = ok ] || fail "mail for dave"
for _ in $(seq 100); do [ "$(held | wc -l)" = 2 ] && break; sleep 0.1; done
kill -9 "$mx_pid"; wait "$mx_pid" 2>/dev/null || true; mx_pid=
"$MR" enqueue --socket "$SOCK" --priority dave >/dev/null
wait_active dave
[ "$(held | wc -l)" = 2 ] || fail "dave's mail left the hold queue without an agent"
start_mx_agent
for _ in $(seq 300); do [ "$(copies dave "for dave 2")" = 1 ] && break; sleep 0.1; done
for s in "for dave 1" "for dave 2"; do
	[ "$(copies dave "$s")" = 1 ] || fail "dave has $(copies dave "$s") copies of '$s', want 1"
done
! grep -q "status=bounced" "$dir/maillog" || fail "postfix bounced mail: $(grep status=bounced "$dir/maillog" | head -3)"
echo "PASS: nginx refused and then let alice in; mail held, released in arrival order once each across kill -9 of the daemon and of the agent; never bounced"
