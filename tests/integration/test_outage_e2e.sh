#!/usr/bin/env bash
# An outage from the first minute to the last, the way docs/RUNBOOK.md runs
# it, with a real Dovecot (the checkpassword hook, Python's imaplib as the
# client) and the Postfix wrapper as pipe(8) runs it:
#   1. a source that is not mounted (empty S) is refused at start: exit 66;
#   2. a T/<user> that exists before the restore (Dovecot made it, mail
#      landed there) is merged: every message once, none lost;
#   3. users in attention are listed and retried in bulk;
#   4. --dial-tone: users log in at once, get new mail, and find their
#      history after the merge;
#   5. after the daemon is gone, with the target known, logins and
#      deliveries are still answered rightly.
# Each part that needs a feature the binary does not have says so and is
# skipped on its own (the test then exits 77 if nothing ran).
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
ran=0 skipped=()
part_skip() { echo "SKIP part: $*"; skipped+=("$*"); }

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

dir=$(mktemp -d /tmp/mr-outage.XXXXXX)
chmod 755 "$dir"
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

S=$dir/S B=$dir/B T=$dir/T SOCK=$dir/mr.sock EMPTY=$dir/empty
MAILUID=65534 MAILGID=$(getent passwd nobody | cut -d: -f4)
mkdir -p "$S" "$B" "$T" "$EMPTY" "$dir/run" "$dir/state"
chmod 755 "$T"

# mkmaildir USER COUNT: COUNT messages "fixture N of USER" in cur/
mkmaildir() {
	local u=$1 n=$2 i
	mkdir -p "$S/$u"/{cur,new,tmp}
	for i in $(seq 1 "$n"); do
		printf 'Subject: fixture %d of %s\n\nmessage %d\n' "$i" "$u" "$i" \
			> "$S/$u/cur/170000000$i.M${i}P1.fixture:2,S"
	done
	chmod 700 "$S/$u"
}
users="alice carl dan erin fay gus"
for u in $users; do mkmaildir "$u" 3; done
mkmaildir hal 3
chown -R "$MAILUID:$MAILGID" "$S"
"$MR" backup --source "$S" --out "$B" >/dev/null || fail "mailrestore backup"
# hal's folder is gone from the damaged partition: attention
rm -rf "$S/hal"
passwd=""
for u in $users hal outsider; do passwd="$passwd$u:$u-pw\n"; done
printf "$passwd" > "$dir/passwd"
chmod 600 "$dir/passwd"

json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
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
stop_daemon() {
	"$MR" shutdown --socket "$SOCK" >/dev/null 2>&1 || kill "$daemon_pid"
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
}
state_of() { "$MR" show --socket "$SOCK" --json -- "$1" | json 'd["state"]'; }
wait_state() { # USER STATE
	local s=
	for _ in $(seq 300); do
		s=$(state_of "$1") || true
		[ "$s" = "$2" ] && return 0
		sleep 0.1
	done
	fail "$1 did not become $2 (state $s)"
}
# copies USER SUBJECT: messages of T/USER with exactly that Subject line
copies() {
	{ grep -lx -F "Subject: $2" "$T/$1"/new/* "$T/$1"/cur/* 2>/dev/null || true; } | wc -l
}
deliver() { # USER SUBJECT [ENV...]: through the Postfix wrapper
	local u=$1 subj=$2
	shift 2
	printf 'Subject: %s\n\nbody\n' "$subj" |
		env MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK "$@" "$WRAP" --id "Q-$subj/$u@example.org" -- "$u" >/dev/null
}

# ---- 1. the source is not mounted ---------------------------------------
rc=0
timeout 20 "$MR" daemon --backups "$B" --source "$EMPTY" --target "$dir/T-unused" \
	--socket "$dir/unused.sock" --background off 2>"$dir/unmounted.log" &
upid=$!
for _ in $(seq 50); do kill -0 $upid 2>/dev/null || break; sleep 0.1; done
if kill -0 $upid 2>/dev/null; then
	kill $upid; wait $upid 2>/dev/null || true
	if "$MR" daemon --help 2>&1 | grep -q -i -e unmounted -e 'not mounted'; then
		fail "a daemon on an empty source kept running"
	fi
	part_skip "1 (unmounted source): this daemon does not check the source at start"
else
	wait $upid || rc=$?
	[ $rc = 66 ] || fail "daemon on an empty source: exit $rc, want 66: $(cat "$dir/unmounted.log")"
	echo "1. an empty source is refused: $(tail -n 1 "$dir/unmounted.log")"
	ran=$((ran + 1))
fi

# ---- a private Dovecot ----------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/dovecot.conf" <<EOF
base_dir = $dir/run
state_dir = $dir/state
instance_name = mr-outage-$port
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
auth_failure_delay = 0
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %u
mail_location = maildir:$T/%u
first_valid_uid = 1
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
  user = root
}
passdb {
  driver = checkpassword
  args = /usr/bin/env MAILRESTORE=$MR MAILRESTORE_SOCKET=$SOCK MAILRESTORE_TARGET=$T MAILRESTORE_PASSWD_FILE=$dir/passwd $HOOK
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
# imap USER: "OK <messages in INBOX>" or "NO <text>"
imap() {
	python3 - "$port" "$1" "$1-pw" <<'PY'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
try:
    m.login(sys.argv[2], sys.argv[3])
except imaplib.IMAP4.error as e:
    print("NO", e)
    sys.exit(0)
typ, data = m.select("INBOX")
print("OK", int(data[0]) if typ == "OK" else "SELECT-FAILED")
m.logout()
PY
}

# ---- 2. a mailbox that exists on T before its restore ---------------------
# Dovecot made T/carl (a login before the hook was wired) and a message was
# delivered there.
mkdir -p "$T/carl"/{cur,new,tmp}
printf 'Subject: landed before the restore\n\nx\n' > "$T/carl/new/1800000000.M1P1.mx"
chown -R "$MAILUID:$MAILGID" "$T/carl"
start_daemon
if "$MR" daemon --help 2>&1 | grep -q "left alone"; then
	part_skip "2 (merge): this daemon takes an existing T/<user> as active"
else
	"$MR" enqueue --socket "$SOCK" --priority carl >/dev/null || fail "enqueue carl"
	wait_state carl active
	for i in 1 2 3; do
		[ "$(copies carl "fixture $i of carl")" = 1 ] || fail "carl: fixture $i not there once after the merge"
	done
	[ "$(copies carl "landed before the restore")" = 1 ] || fail "carl: the message that landed on T was lost or doubled"
	out=$(imap carl)
	[ "$out" = "OK 4" ] || fail "carl over IMAP after the merge: '$out', want 'OK 4'"
	ls "$T/.mailrestore/attic" 2>/dev/null | grep -q '^carl' || fail "carl's old tree is not in the attic"
	echo "2. T/carl merged: 3 restored + 1 that was there, each once"
	ran=$((ran + 1))
fi

# ---- 3. attention, in bulk -------------------------------------------------
"$MR" enqueue --socket "$SOCK" --priority hal >/dev/null || fail "enqueue hal"
wait_state hal attention
if ! "$MR" queue --help 2>&1 | grep -q -- "--state"; then
	part_skip "3 (attention in bulk): queue has no --state"
else
	out=$("$MR" queue --socket "$SOCK" --state attention --json)
	echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
rows = d["users"] if isinstance(d, dict) and "users" in d else d
names = [r["user"] for r in rows]
assert names == ["hal"], names
assert rows[0].get("reason"), rows[0]' || fail "queue --state attention: $out"
	"$MR" retry --socket "$SOCK" --state attention >/dev/null || fail "retry --state attention"
	wait_state hal attention   # the folder is still missing on S
	echo "3. attention listed with its reason and retried in bulk"
	ran=$((ran + 1))
fi
stop_daemon

# ---- 4. dial tone ------------------------------------------------------------
if ! "$MR" daemon --help 2>&1 | grep -q -- "--dial-tone"; then
	part_skip "4 (dial tone): the daemon has no --dial-tone"
	start_daemon
else
	start_daemon --dial-tone
	# Paused, so that dan's login finds the restore not begun.
	"$MR" pause --socket "$SOCK" >/dev/null || fail "pause"
	out=$(imap dan)
	[ "$out" = "OK 0" ] || fail "dan with dial tone: '$out', want 'OK 0' (in at once, empty)"
	deliver dan "new during the outage" || fail "deliver to dan (dial tone): exit $?"
	out=$(imap dan)
	[ "$out" = "OK 1" ] || fail "dan's new mail with dial tone: '$out', want 'OK 1'"
	[ "$("$MR" show --socket "$SOCK" --json dan | json 'd["mode"]')" = dial-tone ] ||
		fail "show does not say dan is on dial tone"
	"$MR" resume --socket "$SOCK" >/dev/null || fail "resume"
	"$MR" enqueue --socket "$SOCK" --priority dan >/dev/null || fail "enqueue dan"
	wait_state dan active
	out=$(imap dan)
	[ "$out" = "OK 4" ] || fail "dan after the merge: '$out', want 'OK 4' (history + new mail)"
	[ "$(copies dan "new during the outage")" = 1 ] || fail "dan's new mail lost or doubled"
	echo "4. dial tone: in at once, new mail kept, history merged in"
	ran=$((ran + 1))
fi

# ---- 5. after the daemon is gone ---------------------------------------------
"$MR" enqueue --socket "$SOCK" --priority erin >/dev/null || fail "enqueue erin"
wait_state erin active
stop_daemon
if ! "$MR" login --help 2>&1 | grep -q -e "--target" -e MAILRESTORE_TARGET; then
	part_skip "5 (without the daemon): login has no --target"
else
	out=$(imap erin)
	[ "$out" = "OK 3" ] || fail "erin (active) without the daemon: '$out', want 'OK 3'"
	out=$(imap outsider)
	case $out in OK*) ;; *) fail "a user the outage never touched, without the daemon: $out" ;; esac
	out=$(imap fay)
	case $out in NO*) ;; *) fail "fay (not restored) got in without the daemon: $out" ;; esac
	[ ! -e "$T/fay/cur" ] || fail "fay got a mailbox without her restore"
	deliver erin "after the daemon" MAILRESTORE_TARGET="$T" || fail "deliver to erin without the daemon: exit $?"
	[ "$(copies erin "after the daemon")" = 1 ] || fail "erin's mail after the daemon is not there once"
	# fay is not restored: her mail is deferred (75) or held on the disk
	# (0), never put into a T/fay that does not exist yet
	rc=0
	deliver fay "for fay, later" MAILRESTORE_TARGET="$T" 2>/dev/null || rc=$?
	case $rc in
	75) ;;
	0) [ -n "$(find "$T/.mailrestore/state/held/fay" -name '*.mrmail' 2>/dev/null)" ] ||
		fail "deliver to fay without the daemon said 0 but nothing is held" ;;
	*) fail "deliver to fay (not restored) without the daemon: exit $rc, want 75 or held" ;;
	esac
	[ ! -e "$T/fay/new" ] || fail "fay's mail went into a mailbox before her restore"
	echo "5. without the daemon: erin in, outsider in, fay refused; mail for erin delivered, for fay kept back (exit $rc)"
	ran=$((ran + 1))
fi

if [ $ran = 0 ]; then
	skip "none of the outage features is in this binary: ${skipped[*]}"
fi
echo "PASS: $ran parts${skipped:+; skipped: ${skipped[*]}}"
