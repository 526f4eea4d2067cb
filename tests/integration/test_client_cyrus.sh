#!/usr/bin/env bash
# What a user's mail client sees after a restore, on Cyrus IMAP (Debian's
# cyrus-imapd 3.6). A private Cyrus (its own imapd.conf and cyrus.conf,
# run as the cyrus user, legacy mailbox folders user/<name>) serves
# partition 1; alice gets folders and mail (LMTP and APPEND) and flags;
# client A (mbsync) pulls. The spool's user folders are backed up, a day of
# changes goes through Cyrus (new mail, flags, an expunge, a move, a new
# folder), client B pulls, Cyrus stops: partition 1 is now the damaged,
# read-only source S. mailrestore restores alice to partition 2 (T), the
# configuration directory (mailboxes.db, the users' .sub and seen files)
# survives as it is, partition-default points at partition 2, and Cyrus
# starts WITHOUT reconstruct. Then: login, LIST, every message fetches, the
# same UIDVALIDITY, UIDs, flags, bodies and subscriptions as on the source
# before the damage; client A fetches exactly what is new to it, client B
# nothing, neither sees a UIDVALIDITY change; new mail delivered after the
# restore gets the UID the source would have given it. A side check proves
# that a message whose file is gone (Cyrus answers its FETCH with nothing)
# is caught.
#
# amy's cyrus.index is torn on the source: the daemon restores her and its
# --on-active hook (contrib/cyrus/mailrestore-cyrus-reconstruct) runs
# reconstruct; every UID comes back. Last, the configuration folder is lost
# too: the hook rebuilds alice's mailboxes.db records from her spool.
#
# With --format cyrus (the default; MR_CYRUS_FORMAT=off leaves the option
# out) two more users: anna, whose cyrus.index lists messages whose files
# are gone on the source, must go to attention with nothing lost; adam, who
# expunged half his mail (files removed by cyr_expire), goes through and
# opens in Cyrus as on the source.
#
# Skips (77) without root, or when Cyrus or mbsync cannot be had.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
SRC=${MR_SRC:?MR_SRC must point at the source tree}
skip() { echo "SKIP: $*"; exit 77; }
fail() {
	echo "FAIL: $*"
	[ -f "${dir:-/nonexistent}/run/master.log" ] && { echo "--- master.log (tail)"; tail -n 20 "$dir/run/master.log"; }
	exit 1
}
. "$SRC/tests/integration/imap_lib.sh"

# on (the default): the backup, the restores, verify and the daemon say
# --format cyrus; off: none does (the store is what mailrestore finds).
# S and T are the partitions' folder MR_CYRUS_SUB (user/, or a/user/ when
# hashed: each user is S/<name>, as the plain sync needs too).
CYRUS_FORMAT=${MR_CYRUS_FORMAT:-on}
CYRUS_SUB=${MR_CYRUS_SUB-user}
# MR_CYRUS_HASHED=1 (test_client_cyrus_hashed.sh): hashimapspool: yes, where
# a user's folder is <partition>/<first letter>/user/<name>. Every user here
# starts with an "a", so S and T are the partitions' a/user/.
CYRUS_HASHED=${MR_CYRUS_HASHED:-0}
HASH=
[ "$CYRUS_HASHED" = 1 ] && HASH=a/
case $CYRUS_FORMAT in on|off) ;; *) echo "MR_CYRUS_FORMAT must be on or off, not '$CYRUS_FORMAT'" >&2; exit 2 ;; esac
FORMAT_OPTS=()
[ "$CYRUS_FORMAT" = on ] && FORMAT_OPTS=(--format cyrus)

[ "$(id -u)" = 0 ] || skip "needs root: Cyrus runs as the cyrus user, set up by root"
command -v python3 >/dev/null || skip "python3 is not installed (the IMAP checks)"
mr_need_mbsync
CYRBIN=/usr/lib/cyrus/bin
if [ ! -x $CYRBIN/master ] || [ ! -x $CYRBIN/lmtpd ] || ! command -v saslpasswd2 >/dev/null; then
	echo "Cyrus is not installed; trying apt-get install cyrus-common sasl2-bin"
	mr_apt_install cyrus-common sasl2-bin ||
		skip "cyrus-common could not be installed from Debian's packages"
fi
[ -x $CYRBIN/master ] && command -v saslpasswd2 >/dev/null || skip "no Cyrus master or saslpasswd2 after installing"
getent passwd cyrus >/dev/null || skip "the cyrus user is missing (broken cyrus-common install)"

dir=$(mktemp -d /tmp/mr-client-cyrus.XXXXXX)
chmod 755 "$dir"
daemon_pid=
cleanup() {
	set +e
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	cyrus_stop
	[ -n "${MR_KEEP_TMP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Cyrus's imapd comes with cyrus-imapd, which conflicts with dovecot-imapd:
# when it is not installed (or MR_IMAP_UNPACK=1), run it from its unpacked
# package.
IMAPD=$CYRBIN/imapd
if [ ! -x "$IMAPD" ] || [ -n "${MR_IMAP_UNPACK:-}" ]; then
	ver=$(dpkg-query -W -f '${Version}' cyrus-common 2>/dev/null) || skip "cyrus-common is not a Debian package here"
	mr_unpack_deb cyrus-imapd "$ver" "$dir/deb" ||
		skip "cyrus-imapd $ver is neither installed nor obtainable from Debian's packages"
	IMAPD=$dir/deb/root/usr/lib/cyrus/bin/imapd
	echo "using imapd from the unpacked cyrus-imapd $ver (not installed: it conflicts with dovecot-imapd)"
fi

P1=$dir/spool1 P2=$dir/spool2 CONF=$dir/conf B=$dir/B
S=$P1${CYRUS_SUB:+/$HASH$CYRUS_SUB} T=$P2${CYRUS_SUB:+/$HASH$CYRUS_SUB}
mkdir -p "$P1" "$P2" "$CONF" "$B" "$dir/run/lock" "$dir/sieve" "$T"
ADDR=$(mr_free_addr)
PORT=$(mr_free_port "$ADDR")
LMTP=$dir/run/lmtp

# ---- a private Cyrus ---------------------------------------------------------
cat > "$dir/imapd.conf" <<EOF
configdirectory: $CONF
partition-default: $P1
sievedir: $dir/sieve
admins: admin
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $dir/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
mailbox_legacy_dirs: yes
hashimapspool: $([ "$CYRUS_HASHED" = 1 ] && echo yes || echo no)
lmtpsocket: $LMTP
idlesocket: $dir/run/idle
notifysocket: $dir/run/notify
mboxname_lockpath: $dir/run/lock
syslog_prefix: mr-client-$PORT
EOF
cat > "$dir/cyrus.conf" <<EOF
START {
  recover cmd="ctl_cyrusdb -r -C $dir/imapd.conf"
}
SERVICES {
  imap cmd="$IMAPD -C $dir/imapd.conf" listen="$ADDR:$PORT" prefork=0
  lmtpunix cmd="lmtpd -C $dir/imapd.conf" listen="$LMTP" prefork=0
}
EOF
for u in admin alice anna adam amy; do
	echo "$u-pw" | saslpasswd2 -f "$dir/sasldb2" -p -c "$u" || skip "saslpasswd2 failed"
done
chown -R cyrus:mail "$dir"
chown root:root "$dir"
chmod 755 "$dir"

cyrus_start() { # PARTITION: serve the mailboxes of partition-default PARTITION
	sed -i "s|^partition-default:.*|partition-default: $1|" "$dir/imapd.conf"
	rm -f "$dir/run/master.pid"
	runuser -u cyrus -- $CYRBIN/master -C "$dir/imapd.conf" -M "$dir/cyrus.conf" \
		-p "$dir/run/master.pid" -L "$dir/run/master.log" -d ||
		skip "Cyrus's master does not start here: $(tail -c 500 "$dir/run/master.log" 2>/dev/null)"
	mr_wait_port "$ADDR" "$PORT" || fail "Cyrus does not answer on $ADDR:$PORT"
	for _ in $(seq 100); do [ -S "$LMTP" ] && return 0; sleep 0.1; done
	fail "Cyrus's LMTP socket $LMTP did not appear"
}
cyrus_stop() {
	local pid
	[ -f "$dir/run/master.pid" ] || return 0
	pid=$(cat "$dir/run/master.pid" 2>/dev/null)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	for _ in $(seq 100); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
	rm -f "$dir/run/master.pid"
	# the port is free again before the next start
	for _ in $(seq 100); do
		"$PY" -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))' \
			"$ADDR" "$PORT" 2>/dev/null && break
		sleep 0.1
	done
}

# imap USER: python3 imaplib logged in as USER (password USER-pw) as m,
# running the code on stdin; lmtp() delivers through Cyrus's LMTP socket.
imap() {
	"$PY" - "$ADDR" "$PORT" "$1" "$LMTP" <<PY || fail "IMAP as $1 failed"
import imaplib, smtplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=30)
m.login(sys.argv[3], sys.argv[3] + "-pw")
user = sys.argv[3]
def ok(r):
    if r[0] != "OK":
        raise SystemExit("IMAP: %s" % (r,))
    return r
def text(n, tag):
    return ("From: sender%d@example.org\r\nTo: %s@example.org\r\nMessage-ID: <%s-%d@example.org>\r\n"
            "Subject: message %d\r\n\r\nbody of message %d\r\n" % (n, user, tag, n, n, n))
def msg(n, folder="INBOX", flags=None):
    ok(m.append(folder, flags, imaplib.Time2Internaldate(1700000000 + n), text(n, folder.lower()).encode()))
def lmtp(rcpt, first, last, tag="lmtp"):
    l = smtplib.LMTP(sys.argv[4])
    for n in range(first, last + 1):
        l.sendmail("sender@example.org", [rcpt], text(n, tag))
    l.quit()
$(cat)
m.logout()
PY
}

# ---- the source before the damage -----------------------------------------------
cyrus_start "$P1"
imap admin <<'PY'
for u in ("alice", "anna", "adam", "amy"):
    ok(m.create("user/" + u))
for f in ("Work", "Archive", "Sent"):
    ok(m.create("user/alice/" + f))
lmtp("alice", 1, 6)
lmtp("anna", 1, 10)
lmtp("adam", 1, 10)
lmtp("amy", 1, 6)
PY
imap amy <<'PY'
ok(m.select("INBOX"))
ok(m.uid("STORE", "1:3", "+FLAGS", "(\\Seen)"))
PY
imap alice <<'PY'
for f in ("Work", "Archive"):
    ok(m.subscribe(f))
for n in range(1, 5):
    msg(n, flags="(\\Seen)" if n % 2 else None)
for n in range(1, 4):
    msg(n, "Work", "(\\Seen \\Flagged)" if n == 2 else "(\\Seen)")
msg(1, "Archive", "(\\Seen \\Answered)")
ok(m.select("INBOX"))
ok(m.uid("STORE", "1:3", "+FLAGS", "(\\Seen)"))
ok(m.uid("STORE", "4", "+FLAGS", "(\\Flagged $Important)"))
PY
[ -f "$S/alice/cyrus.index" ] && [ -f "$S/alice/Work/cyrus.header" ] ||
	fail "no legacy mailbox folders under $S (mailbox_legacy_dirs or hashimapspool not honoured?): $(cd "$P1" && find . -name cyrus.header | head -n 3)"
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/before.json" >/dev/null || fail "snapshot before"
mr_mbsync_conf "$dir/a.rc" "$ADDR" "$PORT" alice alice-pw "$dir/clientA"
mr_mbsync "$dir/a.rc" "$dir/a1.log" || { tail "$dir/a1.log"; fail "mbsync A (first pull) failed"; }
[ "$(imap_check fetched "$dir/a1.log" | wc -l)" = 14 ] ||
	fail "mbsync A: first pull fetched $(imap_check fetched "$dir/a1.log" | wc -l) bodies, want 14"
imap_check local "$dir/clientA" "$dir/before.json" >/dev/null || fail "client A after its first pull"

# ---- the nightly backup (Cyrus idle, as a snapshot would see it) -----------------------
"$MR" backup "${FORMAT_OPTS[@]}" --source "$S" --out "$B" >/dev/null || fail "mailrestore backup"

# ---- a day of changes through Cyrus -----------------------------------------------------
imap alice <<'PY'
lmtp("alice", 7, 8)                                    # new mail
msg(5, flags="(\\Seen)")
ok(m.select("INBOX"))
ok(m.uid("STORE", "1", "-FLAGS", "(\\Seen)"))
ok(m.uid("STORE", "2", "+FLAGS", "(\\Answered)"))
ok(m.uid("STORE", "4", "-FLAGS", "(\\Flagged)"))
ok(m.uid("MOVE", "3", "Archive"))
ok(m.uid("STORE", "5", "+FLAGS", "(\\Deleted)"))
ok(m.expunge())
ok(m.create("Projects")); ok(m.subscribe("Projects"))
msg(1, "Projects", "(\\Seen \\Draft)")
ok(m.select("Work"))
ok(m.uid("STORE", "1:*", "+FLAGS", "($Done)"))
PY
imap adam <<'PY'
ok(m.select("INBOX"))
for u in (2, 4, 6, 8, 10):
    ok(m.uid("STORE", str(u), "+FLAGS", "(\\Deleted)"))
ok(m.expunge())
PY
imap amy <<'PY'
lmtp("amy", 7, 8)
PY
# adam's expunged files really go (delayed expunge keeps them until cyr_expire).
# "Older than 0 days" counts in whole seconds: an expunge in this very second
# is not older yet, so try again (bounded) until the files are gone.
files=
for _ in $(seq 10); do
	runuser -u cyrus -- $CYRBIN/cyr_expire -C "$dir/imapd.conf" -X 0 -a -u adam >/dev/null 2>&1 ||
		fail "cyr_expire -X 0 for adam"
	files=$(find "$S/adam" -maxdepth 1 -name '*.' | wc -l)
	[ "$files" = 5 ] && break
	sleep 0.5
done
[ "$files" = 5 ] || fail "adam: want 5 message files after cyr_expire, have $files"
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/source.json" || fail "snapshot of the source"
imap_check snapshot "$ADDR" "$PORT" adam adam-pw "$dir/adam.json" >/dev/null || fail "snapshot of adam"
imap_check snapshot "$ADDR" "$PORT" amy amy-pw "$dir/amy.json" >/dev/null || fail "snapshot of amy"
mr_mbsync_conf "$dir/b.rc" "$ADDR" "$PORT" alice alice-pw "$dir/clientB"
mr_mbsync "$dir/b.rc" "$dir/b1.log" || { tail "$dir/b1.log"; fail "mbsync B (first pull) failed"; }
imap_check local "$dir/clientB" "$dir/source.json" >/dev/null || fail "client B after its first pull"
uidnext=$("$PY" -c 'import json,sys; print(max(map(int, json.load(open(sys.argv[1]))["folders"]["INBOX"]["messages"])))' "$dir/source.json")

# ---- the damage: Cyrus stops; anna's index lists files that are gone --------------------
cyrus_stop
rm -f "$S/anna"/{2,3,4,5,6,7,8}.
# amy's cyrus.index is torn: Cyrus cannot open her INBOX from it
truncate -s 100 "$S/amy/cyrus.index"

# ---- the restore: partition 1 -> partition 2 ------------------------------------------------
set +e
"$MR" restore-user "${FORMAT_OPTS[@]}" --backups "$B" --source "$S" --target "$T" alice \
	> "$dir/restore.out" 2> "$dir/restore.err"
rc=$?
set -e
[ "$rc" = 0 ] || { cat "$dir/restore.err"; fail "restore-user alice: exit $rc"; }
[ -f "$T/alice/cyrus.index" ] && [ -f "$T/alice/Projects/cyrus.header" ] || fail "alice is not complete on T"
"$MR" verify "${FORMAT_OPTS[@]}" --source "$S" --target "$T" alice >/dev/null || fail "verify alice"

# ---- Cyrus on partition 2, no reconstruct: what the clients see -------------------------------
cyrus_start "$P2"
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/restored.json" || fail "snapshot of the restored user"
imap_check same "$dir/source.json" "$dir/restored.json" || fail "the restored mailbox differs from the source"
imap_check kept "$dir/before.json" "$dir/restored.json" || fail "client A's messages were renumbered"

imap_check newer "$dir/before.json" "$dir/restored.json" | sort > "$dir/a.want"
[ "$(wc -l < "$dir/a.want")" = 5 ] || { cat "$dir/a.want"; fail "expected 5 messages new to client A"; }
mr_mbsync "$dir/a.rc" "$dir/a2.log" || { tail "$dir/a2.log"; fail "mbsync A after the restore failed"; }
imap_check fetched "$dir/a2.log" | sort > "$dir/a.got"
diff "$dir/a.want" "$dir/a.got" > "$dir/a.diff" || { cat "$dir/a.diff"; fail "client A fetched other bodies than the new ones"; }
imap_check uidvalidity "$dir/a2.log" || fail "mbsync A reports a UIDVALIDITY change"
imap_check local "$dir/clientA" "$dir/restored.json" || fail "client A's store after the restore"

mr_mbsync "$dir/b.rc" "$dir/b2.log" || { tail "$dir/b2.log"; fail "mbsync B after the restore failed"; }
[ -z "$(imap_check fetched "$dir/b2.log")" ] || { imap_check fetched "$dir/b2.log"; fail "client B downloaded messages it had"; }
imap_check uidvalidity "$dir/b2.log" || fail "mbsync B reports a UIDVALIDITY change"
imap_check local "$dir/clientB" "$dir/restored.json" || fail "client B's store after the restore"

# new mail on the restored partition: Cyrus counts on where the source stopped
imap alice <<'PY'
lmtp("alice", 9, 9)
PY
mr_mbsync "$dir/b.rc" "$dir/b3.log" || fail "mbsync B after new mail"
[ "$(imap_check fetched "$dir/b3.log")" = "INBOX $((uidnext + 1))" ] ||
	fail "new mail after the restore: fetched '$(imap_check fetched "$dir/b3.log")', want 'INBOX $((uidnext + 1))'"
# side check: a message the index lists but whose file is gone is caught
# (Cyrus answers its FETCH with nothing at all, and OK)
mv "$T/alice/1." "$dir/alice-1"
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/holed.json" >/dev/null
mv "$dir/alice-1" "$T/alice/1."
imap_check same "$dir/source.json" "$dir/holed.json" > "$dir/holed.diff" && fail "side check: same missed an unfetchable message"
grep -q "UIDs 1 listed but their bodies cannot be fetched" "$dir/holed.diff" || { cat "$dir/holed.diff"; fail "side check: wrong reason"; }
echo "restored alice opens in Cyrus without reconstruct: same UIDVALIDITY, UIDs, flags, bodies, subscriptions; client A fetched $(wc -l < "$dir/a.got") new, client B 0, then UID $((uidnext + 1)) for new mail"

# ---- a torn cyrus.index: the daemon's --on-active hook runs reconstruct ------------------
# (docs/RUNBOOK.md, "Cyrus IMAP: the spool, and when reconstruct is
# needed"). Without the Cyrus guard the torn index is restored as it is
# and the hook rebuilds it from the files (every UID kept, a new
# UIDVALIDITY, flags lost); with it, amy
# stops in attention, the operator keeps the backup's index in her work
# copy, adds the message files the source has beyond it, activates her, and
# the hook adds those under their own UIDs (UIDVALIDITY kept).
HOOK=$SRC/contrib/cyrus/mailrestore-cyrus-reconstruct
printf '#!/bin/sh\n"%s" "$@" >> "%s/hook.out" 2>&1\necho "$1 $?" >> "%s/hook.log"\n' "$HOOK" "$dir" "$dir" > "$dir/hook"
chmod 755 "$dir/hook"
echo amy > "$dir/users"
SOCK=$dir/mr.sock
MAILRESTORE_CYRUS_CONF=$dir/imapd.conf "$MR" daemon "${FORMAT_OPTS[@]}" --backups "$B" --source "$S" \
	--target "$T" --users "$dir/users" --socket "$SOCK" --on-active "$dir/hook" 2> "$dir/daemon.log" &
daemon_pid=$!
state=
for _ in $(seq 300); do
	state=$("$MR" show --socket "$SOCK" --json amy 2>/dev/null |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null) || true
	case $state in active|attention) break ;; esac
	kill -0 "$daemon_pid" 2>/dev/null || { cat "$dir/daemon.log"; fail "the daemon exited"; }
	sleep 0.1
done
case $state in
active) [ "$CYRUS_FORMAT" = off ] || fail "amy (torn cyrus.index) went active with the Cyrus guard on" ;;
attention)
	"$MR" show --socket "$SOCK" amy
	# -p: the files keep the cyrus user as owner (root-owned ones break
	# Cyrus's reconstruct)
	cp -np "$S/amy"/*. "$T/.mailrestore/work/amy/"
	"$MR" activate --socket "$SOCK" amy >/dev/null || fail "activate amy" ;;
*) cat "$dir/daemon.log"; fail "amy: state '$state' after 30 s" ;;
esac
for _ in $(seq 300); do grep -q '^amy ' "$dir/hook.log" 2>/dev/null && break; sleep 0.1; done
grep -qx 'amy 0' "$dir/hook.log" || { cat "$dir/daemon.log"; fail "the --on-active hook for amy: $(cat "$dir/hook.log" 2>/dev/null)"; }
kill "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
imap_check snapshot "$ADDR" "$PORT" amy amy-pw "$dir/amy-restored.json" >/dev/null || fail "amy does not open after the hook"
"$PY" - "$dir/amy.json" "$dir/amy-restored.json" "$CYRUS_FORMAT" <<'PY' || fail "amy after the hook"
import json, sys
a, b = (json.load(open(p))["folders"]["INBOX"] for p in sys.argv[1:3])
if sorted(a["messages"], key=int) != sorted(b["messages"], key=int) or b["unfetchable"]:
    raise SystemExit("UIDs %s, want %s (unfetchable %s)" % (sorted(b["messages"], key=int),
                     sorted(a["messages"], key=int), b["unfetchable"]))
if any(a["messages"][u]["sha1"] != b["messages"][u]["sha1"] for u in a["messages"]):
    raise SystemExit("a message's bytes changed")
kept = a["uidvalidity"] == b["uidvalidity"]
if sys.argv[3] == "on" and not kept:
    raise SystemExit("UIDVALIDITY %d became %d" % (a["uidvalidity"], b["uidvalidity"]))
print("amy after the hook: UIDs 1-%d all fetch; UIDVALIDITY %s" % (len(a["messages"]),
      "kept" if kept else "new (the index was rebuilt from the files)"))
PY

# ---- the Cyrus store's own guard (--format cyrus) -------------------------------------------------
if [ "$CYRUS_FORMAT" != on ]; then
	echo "SKIP (anna, adam): MR_CYRUS_FORMAT=off (they are checked with --format cyrus)"
else
	cyrus_stop
	set +e
	"$MR" restore-user "${FORMAT_OPTS[@]}" --backups "$B" --source "$S" --target "$T" anna adam \
		> "$dir/restore2.out" 2> "$dir/restore2.err"
	rc=$?
	set -e
	cat "$dir/restore2.err"
	[ "$rc" = 1 ] || fail "restore-user anna adam: exit $rc, want 1 (anna in attention)"
	grep -q "anna.*attention" "$dir/restore2.err" || fail "anna is not in attention"
	grep -qi "index" "$dir/restore2.err" || fail "anna's reason does not name her mailbox index"
	[ ! -e "$T/anna" ] || fail "anna went active with messages her index lists missing"
	[ "$(find "$T/.mailrestore/work/anna" -maxdepth 1 -name '*.' | wc -l)" -ge 10 ] ||
		fail "anna's work copy lost messages"
	[ -f "$T/adam/cyrus.index" ] || fail "adam, who expunged half his mail, did not go active"
	cyrus_start "$P2"
	imap_check snapshot "$ADDR" "$PORT" adam adam-pw "$dir/adam-restored.json" >/dev/null || fail "snapshot of adam"
	imap_check same "$dir/adam.json" "$dir/adam-restored.json" || fail "adam differs from the source"
	echo "anna (index lists files that are gone) in attention, nothing lost; adam (expunged half) active and as on the source"
fi

# ---- mailboxes.db lost too: the hook brings alice back from her headers and indexes ---------------
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/final.json" >/dev/null || fail "snapshot of alice"
cyrus_stop
mv "$CONF" "$dir/conf.lost"
mkdir "$CONF"
chown cyrus:mail "$CONF"
cyrus_start "$P2"
MAILRESTORE_CYRUS_CONF=$dir/imapd.conf "$HOOK" alice "$T/alice" > "$dir/hook-alice.out" 2>&1 ||
	{ cat "$dir/hook-alice.out"; fail "the hook for alice with mailboxes.db lost"; }
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/rebuilt.json" >/dev/null ||
	fail "snapshot after mailboxes.db was rebuilt"
imap_check same "$dir/final.json" "$dir/rebuilt.json" nosubs > "$dir/rebuilt.diff" ||
	{ cat "$dir/rebuilt.diff"; fail "alice after reconstruct -P differs (beyond her subscriptions)"; }
imap_check same "$dir/final.json" "$dir/rebuilt.json" >/dev/null &&
	fail "subscriptions survived a lost config folder: this part no longer loses it"
# the subscriptions come back with the user's .sub file from the old config folder
sub=$(cd "$dir/conf.lost" && find user -name alice.sub)
[ -n "$sub" ] || fail "no alice.sub in the configuration folder"
mkdir -p "$CONF/$(dirname "$sub")"
cp -a "$dir/conf.lost/$sub" "$CONF/$sub"
chown -R cyrus:mail "$CONF/user"
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/rebuilt2.json" >/dev/null || fail "snapshot with alice.sub back"
imap_check same "$dir/final.json" "$dir/rebuilt2.json" || fail "alice with her .sub file back"
echo "mailboxes.db lost: alice's folders, UIDVALIDITY, UIDs and flags come back from cyrus.header and cyrus.index; her subscriptions with $sub"
echo ok
