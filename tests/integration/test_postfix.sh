#!/usr/bin/env bash
# Postfix in front of mailrestore, end to end (contrib/postfix): a private
# Postfix from Debian's packages on 127.0.0.1 relays the test domain to the
# contrib pipe transport (mailrestore-deliver, as master.cf in
# contrib/postfix/README.md has it) in front of a real mailrestore daemon;
# mail goes in with Python's smtplib.
#   - names as Postfix sends them: Odd.User and odd+name keep their case and
#     "+ext" and reach their own mailbox; "--help" and "-rf" bounce (they are
#     no user names), never read as options;
#   - exactly once: kill -9 of the daemon while Postfix delivers a stream of
#     messages, then a restart: Postfix retries what was not confirmed and
#     every message is there once; the same queue id and recipient given
#     twice is stored once.
# Skips (77) where Postfix cannot be installed or run.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
SRC=${MR_SRC:?MR_SRC must point at the source tree}
. "$SRC/tests/integration/postfix_lib.sh"
WRAP=$SRC/contrib/postfix/mailrestore-deliver

skip() { echo "SKIP: $*"; exit 77; }
fail() {
	echo "FAIL: $*"
	for f in "${dir:-/nonexistent}"/maillog "${dir:-/nonexistent}"/daemon.log; do
		[ -f "$f" ] && { echo "--- $f (tail)"; tail -n 40 "$f"; }
	done
	exit 1
}

command -v python3 >/dev/null || skip "python3 is not installed (the SMTP client)"
[ "$(id -u)" = 0 ] || skip "needs root: Postfix's master runs as root"
if [ ! -x /usr/sbin/postfix ]; then
	echo "postfix is not installed; trying apt-get install postfix"
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections 2>/dev/null || true
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends \
		postfix >/dev/null 2>&1 || skip "postfix could not be installed from Debian's packages"
fi
[ -x /usr/sbin/postfix ] || skip "no postfix binary after installing postfix"
getent passwd postfix >/dev/null && getent group postdrop >/dev/null ||
	skip "the postfix user or the postdrop group is missing (broken postfix install)"
daemon_dir=/usr/lib/postfix/sbin
[ -x "$daemon_dir/pipe" ] || skip "postfix's pipe(8) is missing"

dir=$(mktemp -d /tmp/mr-postfix.XXXXXX)
chmod 755 "$dir"   # the pipe user (nobody) reaches the socket
daemon_pid=
PF=$dir/pf
cleanup() {
	set +e
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	mr_postfix_stop "$PF"
	[ -n "${MR_KEEP_TMP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

S=$dir/S B=$dir/B T=$dir/T SOCK=$dir/mr.sock
mkdir -p "$S" "$B" "$T"
chmod 755 "$T"
for u in alice Odd.User odd+name bob; do
	mkdir -p "$S/$u"/{cur,new,tmp}
	printf 'Subject: old mail of %s\r\n\r\nfrom the backup\r\n' "$u" > "$S/$u/cur/1700000001.M1P1.fixture,S=40:2,S"
done
"$MR" backup --source "$S" --out "$B" >/dev/null || fail "mailrestore backup"

start_daemon() {
	"$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
		--background off "$@" 2>>"$dir/daemon.log" &
	daemon_pid=$!
	for _ in $(seq 100); do
		"$MR" status --socket "$SOCK" >/dev/null 2>&1 && return 0
		kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon exited at start"
		sleep 0.1
	done
	fail "the daemon does not answer on $SOCK"
}
# The pipe runs as nobody: let it deliver where the daemon asks for a group.
deliver_group=()
if "$MR" daemon --help 2>&1 | grep -q -- --deliver-group; then
	deliver_group=(--deliver-group "$(id -gn nobody)")
fi
start_daemon "${deliver_group[@]}"

json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
state_of() { "$MR" show --socket "$SOCK" --json -- "$1" | json 'd["state"]'; }
wait_active() {
	local s
	for _ in $(seq 300); do
		s=$(state_of "$1") || true
		[ "$s" = active ] && return 0
		sleep 0.1
	done
	fail "$1 did not become active (state $s)"
}
# copies USER SUBJECT: messages of T/USER whose Subject line is exactly that
copies() {
	{ grep -lx -F "Subject: $2" "$T/$1"/new/* "$T/$1"/cur/* 2>/dev/null || true; } | wc -l
}

# ---- a private Postfix ------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
chown postfix "$PF/data"
cat > "$PF/etc/main.cf" <<EOF
# Written by test_postfix.sh; nothing from /etc/postfix is used.
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
daemon_directory = $daemon_dir
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.invalid
mydomain = test.invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
biff = no
# The affected domain goes to mailrestore, one recipient per delivery.
relay_domains = example.org
relay_transport = mailrestore
relay_recipient_maps =
mailrestore_destination_recipient_limit = 1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Postfix refuses addresses that start with "-" by default; let them through
# here so that the transport's own defence is what is tested.
allow_min_user = yes
# Quick retries in the test (the defaults are minutes).
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
EOF
cat > "$PF/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
$(mr_postfix_services)
# The transport of contrib/postfix/README.md, with this test's paths.
mailrestore unix  -       n       n       -       -       pipe
  flags=DR user=nobody argv=/usr/bin/env MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK $WRAP --id \${queue_id}/\${recipient} -- \${mailbox}
EOF
postfix -c "$PF/etc" check >"$dir/postfix.start" 2>&1 || true
postfix -c "$PF/etc" start >>"$dir/postfix.start" 2>&1 ||
	skip "postfix does not start here: $(head -c 500 "$dir/postfix.start")"
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null && break
	sleep 0.1
done
python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null ||
	skip "postfix does not listen on 127.0.0.1:$port: $(tail -c 500 "$dir/maillog" 2>/dev/null)"

# send RCPT SUBJECT...: one message per subject, through SMTP
send() {
	python3 - "$port" "$@" <<'PY'
import smtplib, sys
port, rcpt, subjects = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
for subj in subjects:
    msg = "From: sender@test.invalid\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (rcpt, subj, subj)
    s.sendmail("sender@test.invalid", [rcpt], msg)
s.quit()
PY
}
queue_empty() { [ -z "$(find "$PF/queue/incoming" "$PF/queue/active" "$PF/queue/deferred" "$PF/queue/maildrop" -type f 2>/dev/null)" ]; }
wait_queue_empty() {
	for _ in $(seq "${1:-300}"); do
		queue_empty && return 0
		sleep 0.1
	done
	fail "postfix's queue did not drain: $(postqueue -c "$PF/etc" -p 2>&1 | tail -n 8)"
}
# log_status RCPT: the last delivery status Postfix logged for RCPT
log_status() {
	grep -F "to=<$1>" "$dir/maillog" 2>/dev/null | sed -n 's/.*status=\([a-z]*\).*/\1/p' | tail -n 1
}
wait_status() { # RCPT STATUS
	for _ in $(seq 200); do
		[ "$(log_status "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "no status=$2 for $1 (last: '$(log_status "$1")')"
}

# ---- names as Postfix sends them ---------------------------------------
send Odd.User@example.org "for the odd user"
send odd+name@example.org "for odd plus name"
wait_status Odd.User@example.org sent
wait_status odd+name@example.org sent
for u in Odd.User odd+name; do
	[ "$(state_of "$u")" = waiting ] || fail "$u should be waiting (held mail), is $(state_of "$u")"
done
"$MR" enqueue --socket "$SOCK" --priority -- Odd.User odd+name >/dev/null || fail "enqueue"
wait_active Odd.User
wait_active odd+name
[ "$(copies Odd.User "for the odd user")" = 1 ] || fail "Odd.User did not get its mail once"
[ "$(copies odd+name "for odd plus name")" = 1 ] || fail "odd+name did not get its mail once"
[ ! -e "$T/odd.user" ] && [ ! -e "$T/odd" ] || fail "a lower-cased or cut name got a mailbox"
# names that are options, not users: bounced, never delivered as "--help"
send "--help@example.org" "not a user"
send "-rf@example.org" "not a user either"
wait_status "--help@example.org" bounced
wait_status "-rf@example.org" bounced
[ ! -e "$T/--help" ] && [ ! -e "$T/-rf" ] || fail "an option-like name got a folder"
echo "names: Odd.User and odd+name delivered, --help and -rf bounced"

# ---- exactly once -------------------------------------------------------
# the same queue id and recipient given twice (a lost confirmation): once
for _ in 1 2; do
	printf 'Subject: same id\n\nx\n' |
		MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK "$WRAP" --id 4XyZ1/alice@example.org -- alice >/dev/null ||
		fail "wrapper with --id: exit $?"
done
# kill -9 of the daemon while Postfix delivers a stream for bob (held)
n=30
subjects=()
for i in $(seq 1 $n); do subjects+=("stream $i"); done
send bob@example.org "${subjects[@]}" &
sender=$!
for _ in $(seq 100); do
	grep -q "to=<bob@example.org>.*status=sent" "$dir/maillog" 2>/dev/null && break
	sleep 0.05
done
kill -9 "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
wait "$sender" || fail "smtplib could not hand the stream to postfix"
sleep 1   # some deliveries now fail (no daemon) and are deferred
start_daemon "${deliver_group[@]}"
postqueue -c "$PF/etc" -f >/dev/null 2>&1 || true
wait_queue_empty 600
"$MR" enqueue --socket "$SOCK" --priority bob alice >/dev/null || fail "enqueue bob alice"
wait_active bob
wait_active alice
for i in $(seq 1 $n); do
	c=$(copies bob "stream $i")
	[ "$c" = 1 ] || fail "bob has $c copies of 'stream $i', want 1"
done
c=$(copies alice "same id")
[ "$c" = 1 ] || fail "alice has $c copies of the message given twice with one id"
deferred=$(grep -c "to=<bob@example.org>.*status=deferred" "$dir/maillog" || true)
echo "PASS: odd names end to end; $n messages once each after kill -9 ($deferred deferrals)"
