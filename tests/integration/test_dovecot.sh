#!/usr/bin/env bash
# Dovecot at the door, end to end (contrib/dovecot, contrib/postfix): a
# private Dovecot from Debian's packages on 127.0.0.1 uses the
# mailrestore-checkpassword hook against a real mailrestore daemon. A real
# IMAP client (Python's imaplib) trying to log in as a user who is not
# restored yet is refused with its queue position; once the user is active
# it logs in and finds every message of the fixture plus the one delivered
# (and held) during the outage. The Postfix wrapper's exit codes are checked
# on the same daemon. Skips (77) where Dovecot cannot be installed or run.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
SRC=${MR_SRC:?MR_SRC must point at the source tree}
HOOK=$SRC/contrib/dovecot/mailrestore-checkpassword
WRAP=$SRC/contrib/postfix/mailrestore-deliver

skip() { echo "SKIP: $*"; exit 77; }
fail() {
	echo "FAIL: $*"
	for f in "${dir:-/nonexistent}"/dovecot.log "${dir:-/nonexistent}"/daemon.log; do
		[ -f "$f" ] && { echo "--- $f (tail)"; tail -n 30 "$f"; }
	done
	exit 1
}

command -v python3 >/dev/null || skip "python3 is not installed (the IMAP client)"
[ "$(id -u)" = 0 ] || skip "needs root: Dovecot's master runs as root to drop to the mail user"
if ! command -v dovecot >/dev/null && [ ! -x /usr/sbin/dovecot ]; then
	# dovecot-core, not dovecot-imapd: that one would remove cyrus-imapd
	# (both are imap-server); imap_lib.sh unpacks its IMAP processes.
	echo "dovecot is not installed; trying apt-get install dovecot-core"
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y dovecot-core >/dev/null 2>&1 ||
		skip "dovecot-core could not be installed from Debian's packages"
fi
DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)
[ -x "$DOVECOT" ] || skip "no dovecot binary after installing dovecot-core"
getent passwd dovenull >/dev/null && getent passwd dovecot >/dev/null ||
	skip "the dovecot and dovenull users are missing (broken dovecot-core install)"
if "$MR" login --help 2>&1 | grep -q "not built yet"; then
	fail "mailrestore login is not built yet"
fi

dir=$(mktemp -d /tmp/mr-dovecot.XXXXXX)
chmod 755 "$dir"   # the mail user (nobody) walks down to T/<user>
daemon_pid=
cleanup() {
	set +e
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	if [ -f "$dir/run/master.pid" ]; then
		"$DOVECOT" -c "$dir/dovecot.conf" stop >/dev/null 2>&1
		pid=$(cat "$dir/run/master.pid" 2>/dev/null)
		for _ in $(seq 50); do
			[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	fi
	[ -n "${MR_KEEP_TMP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# Dovecot's IMAP processes: from dovecot-imapd, or its unpacked package
# where cyrus-imapd holds the imap-server place (tests/integration/imap_lib.sh).
. "$SRC/tests/integration/imap_lib.sh"
dv_imap=$(mr_dovecot_imap_conf "$dir") || skip "no Dovecot IMAP processes (see above)"

S=$dir/S B=$dir/B T=$dir/T SOCK=$dir/mr.sock
MAILUID=65534 MAILGID=$(getent passwd nobody | cut -d: -f4)
mkdir -p "$S" "$B" "$T" "$dir/run" "$dir/state"
chmod 755 "$T"

# ---- the fixture: two users' Maildirs, backed up, then a day of changes --
mkmaildir() { # user count
	local u=$1 n=$2 i
	mkdir -p "$S/$u"/{cur,new,tmp}
	for i in $(seq 1 "$n"); do
		printf 'From: sender%d@example.org\r\nTo: %s@example.org\r\nSubject: fixture %d\r\n\r\nmessage %d of %s\r\n' \
			"$i" "$u" "$i" "$i" "$u" > "$S/$u/cur/170000000$i.M${i}P1.fixture,S=60:2,S"
	done
	printf 'Subject: unread\r\n\r\nstill unread\r\n' > "$S/$u/new/1700000100.M1P1.fixture"
	chmod 700 "$S/$u"
}
mkmaildir alice 4   # 5 messages
mkmaildir bob 6     # 7 messages
mkmaildir Odd.User 2   # 3 messages: names as the client sends them
mkmaildir odd+name 1   # 2 messages
chown -R "$MAILUID:$MAILGID" "$S"
"$MR" backup --source "$S" --out "$B" >/dev/null || fail "mailrestore backup"
# after the backup: one more message for bob, only on the damaged source
printf 'Subject: after the backup\r\n\r\nlate\r\n' > "$S/bob/new/1700000200.M2P1.fixture"
chown "$MAILUID:$MAILGID" "$S/bob/new/1700000200.M2P1.fixture"
alice_count=5 bob_count=8

# "--help" and "-rf" have passwords too, so that it is the hook's name
# check that keeps them out, not a failed password.
printf 'alice:alice-pw\nbob:bob-pw\nOdd.User:odd-pw\nodd+name:plus-pw\n--help:x\n-rf:x\n' > "$dir/passwd"
chmod 600 "$dir/passwd"

# ---- the mailrestore daemon (no background restores: bob waits) ---------
"$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
	--background off 2>"$dir/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do
	"$MR" status --socket "$SOCK" >/dev/null 2>&1 && break
	kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon exited at start"
	sleep 0.1
done
"$MR" status --socket "$SOCK" >/dev/null 2>&1 || fail "the daemon does not answer on $SOCK"

state_of() { # user -> state from show --json
	"$MR" show --socket "$SOCK" --json "$1" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'
}
wait_active() {
	local s
	for _ in $(seq 600); do
		s=$(state_of "$1") || true
		[ "$s" = active ] && return 0
		[ "$s" = attention ] && fail "$1 went to attention"
		sleep 0.1
	done
	fail "$1 did not become active (state $s)"
}

# ---- a private Dovecot -----------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/dovecot.conf" <<EOF
# Written by test_dovecot.sh; nothing from /etc/dovecot is included.
base_dir = $dir/run
state_dir = $dir/state
instance_name = mr-test-$port
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
auth_verbose = yes
# No 0-2 s pause after a wrong password (the penalty per IP still applies).
auth_failure_delay = 0
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$T/%u
# Names as the client sends them: Dovecot lower-cases by default (%Lu), and
# "+" is not among its default user name characters.
auth_username_format = %u
auth_username_chars = abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@+
first_valid_uid = 1
# No address-space cap on Dovecot's processes: the hook runs our binary from
# the auth process, and a sanitizer build maps terabytes of shadow memory.
default_vsz_limit = 0
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
service auth {
  # The hook connects to the daemon's socket, which only root may use here.
  user = root
}
passdb {
  driver = checkpassword
  args = /usr/bin/env MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK MAILRESTORE_PASSWD_FILE=$dir/passwd $HOOK
}
userdb {
  driver = static
  args = uid=$MAILUID gid=$MAILGID home=$T/%u
}
$dv_imap
EOF
"$DOVECOT" -c "$dir/dovecot.conf" 2>"$dir/dovecot.start" ||
	skip "dovecot does not start here: $(head -c 500 "$dir/dovecot.start")"
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null && break
	sleep 0.1
done

# imap USER PASSWORD [SUBJECT]: logs in, selects INBOX; prints "OK <count>
# <found>" (found: messages whose Subject contains SUBJECT) or "NO <text>".
imap() {
	python3 - "$port" "$@" <<'PY'
import imaplib, sys
port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
subject = sys.argv[4] if len(sys.argv) > 4 else None
m = imaplib.IMAP4("127.0.0.1", port)
try:
    m.login(user, pw)
except imaplib.IMAP4.error as e:
    print("NO", e)
    sys.exit(0)
typ, data = m.select("INBOX")
if typ != "OK":
    print("SELECT-FAILED", data)
    sys.exit(0)
count = int(data[0])
found = 0
if subject:
    typ, data = m.search(None, "HEADER", "Subject", '"%s"' % subject)
    found = len(data[0].split())
print("OK", count, found)
m.logout()
PY
}

# ---- alice: restored on request, then her IMAP login works --------------
"$MR" enqueue --socket "$SOCK" --priority alice >/dev/null || fail "enqueue --priority alice"
wait_active alice
out=$(imap alice alice-pw)
[ "$out" = "OK $alice_count 0" ] || fail "alice after activation: '$out', want 'OK $alice_count 0'"
out=$(imap alice wrong-pw)
case $out in NO*) ;; *) fail "alice with a wrong password got in: $out" ;; esac

# mail for an active user goes straight into her Maildir, through the
# Postfix wrapper as a pipe(8) transport would run it
printf 'Subject: direct delivery\r\n\r\nfor alice\r\n' |
	MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK "$WRAP" alice || fail "wrapper deliver alice: exit $?"
out=$(imap alice alice-pw "direct delivery")
[ "$out" = "OK $((alice_count + 1)) 1" ] || fail "alice after direct delivery: '$out'"

# ---- bob: mail during the outage is held ----------------------------
[ "$(state_of bob)" = waiting ] || fail "bob should be waiting, is $(state_of bob)"
printf 'Subject: held during the outage\r\n\r\nfor bob\r\n' | "$MR" deliver --socket "$SOCK" bob ||
	fail "deliver bob (held): exit $?"
[ "$(state_of bob)" = waiting ] || fail "a delivery must not queue bob"

# the Postfix wrapper: a user the outage does not touch bounces (67), a
# daemon that does not answer defers (69 -> 75), bad usage is 64
set +e
printf 'Subject: x\r\n\r\nx\r\n' | MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK "$WRAP" nobody-here
rc=$?
[ $rc = 67 ] || fail "wrapper, unaffected user: exit $rc, want 67"
printf 'Subject: x\r\n\r\nx\r\n' | MAILRESTORE=$MR MAILRESTORE_SOCKET=$dir/no.sock "$WRAP" bob 2>/dev/null
rc=$?
[ $rc = 75 ] || fail "wrapper, daemon unreachable: exit $rc, want 75 (EX_TEMPFAIL)"
"$WRAP" </dev/null 2>/dev/null
rc=$?
[ $rc = 64 ] || fail "wrapper without a user: exit $rc, want 64"
set -e
# with a fallback, an unaffected user's mail goes to the usual delivery
printf '#!/bin/sh\ncat > "%s/fallback-$1"\n' "$dir" > "$dir/fallback"
chmod +x "$dir/fallback"
printf 'Subject: not ours\r\n\r\nx\r\n' | MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK \
	MAILRESTORE_FALLBACK="$dir/fallback" "$WRAP" nobody-here 2>/dev/null ||
	fail "wrapper with a fallback: exit $?"
grep -q "Subject: not ours" "$dir/fallback-nobody-here" || fail "the fallback did not get the message"

# a wrong password is refused without queueing bob
out=$(imap bob wrong-pw)
case $out in NO*) ;; *) fail "bob with a wrong password: $out" ;; esac
[ "$(state_of bob)" = waiting ] || fail "a failed password queued bob ($(state_of bob))"

# the right password while bob is not back: refused, with his position
out=$(imap bob bob-pw)
echo "first login as bob: $out"
case $out in
NO*"requests in the queue"* | NO*next*) ;;
*) fail "bob's refused login should name the queue position, got: $out" ;;
esac

# that first login queued him; also ask as an operator would, then wait
"$MR" enqueue --socket "$SOCK" --priority bob >/dev/null || fail "enqueue --priority bob"
wait_active bob
out=$(imap bob bob-pw "held during the outage")
[ "$out" = "OK $((bob_count + 1)) 1" ] ||
	fail "bob after activation: '$out', want 'OK $((bob_count + 1)) 1' (fixture + held mail)"
# released once: a second look finds the same
out=$(imap bob bob-pw "held during the outage")
[ "$out" = "OK $((bob_count + 1)) 1" ] || fail "bob, second login: '$out'"

# ---- names as the client sends them ------------------------------------
out=$(imap Odd.User odd-pw)
echo "first login as Odd.User: $out"
case $out in
NO*"requests in the queue"* | NO*next*) ;;
*) fail "Odd.User's refused login should name the queue position, got: $out" ;;
esac
[ "$(state_of Odd.User)" != waiting ] || fail "the login did not queue Odd.User"
[ ! -e "$T/odd.user" ] || fail "a lower-cased mailbox appeared"
# what the runbook checks by hand: doveadm auth test shows the refusal
if command -v doveadm >/dev/null; then
	out=$(doveadm -c "$dir/dovecot.conf" auth test odd+name plus-pw 2>&1) || true
	case $out in
	*nologin*"restored from backup"*) ;;
	*) fail "doveadm auth test odd+name: want nologin and the reason, got: $out" ;;
	esac
else
	out=$(imap odd+name plus-pw)
	case $out in NO*"requests in the queue"* | NO*next*) ;; *) fail "odd+name: $out" ;; esac
fi
"$MR" enqueue --socket "$SOCK" --priority Odd.User odd+name >/dev/null || fail "enqueue odd names"
wait_active Odd.User
wait_active odd+name
out=$(imap Odd.User odd-pw)
[ "$out" = "OK 3 0" ] || fail "Odd.User after activation: '$out', want 'OK 3 0'"
out=$(imap odd+name plus-pw)
[ "$out" = "OK 2 0" ] || fail "odd+name after activation: '$out', want 'OK 2 0'"
# option-like names are no user names: authentication fails (not a
# temporary failure, and never a login as "--help" into an empty mailbox)
for u in --help -rf; do
	out=$(imap "$u" x)
	case $out in
	NO*"Temporary"*) fail "$u: a temporary failure instead of a refusal: $out" ;;
	NO*) ;;
	*) fail "$u got in: $out" ;;
	esac
done
[ ! -e "$T/--help" ] && [ ! -e "$T/-rf" ] || fail "an option-like name got a mailbox"

echo "PASS: refused with the queue position, then in with $bob_count + 1 messages; odd names"
