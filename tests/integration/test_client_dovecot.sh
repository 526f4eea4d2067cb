#!/usr/bin/env bash
# What a user's mail client sees after a restore, on Dovecot. A private
# Dovecot serves the partition S (Maildir); two mbsync clients pull
# alice's mail: one before the backup, one after a day of changes made
# through Dovecot (new mail, flags, a move, an expunge, a new folder). The
# partition dies (bob's folder is gone too), mailrestore restores it to T,
# and the same Dovecot configuration serves T. Then, judged by IMAP and by
# mbsync itself:
#   - every folder, UIDVALIDITY, UID, flag and message body on T is as it
#     was on the source just before the damage (imap_check.py same);
#   - every message the first client had keeps its UID (kept);
#   - mbsync fetches exactly the messages that are new to it, none twice
#     (the bodies it asks for, from its -Dn log), and nothing on a second
#     run; it reports no UIDVALIDITY change; its Maildir holds every
#     message once, with the server's flags;
#   - bob, whose folder vanished, goes to attention and is not activated.
# Side checks prove the judges can fail: a copy of alice with renumbered
# UIDs is caught by `same`, `kept` and by mbsync fetching again; one with a
# new UIDVALIDITY by `same` and by mbsync's own notice (isync 1.4 recovers
# by matching headers; other clients download the whole folder again).
# Skips (77) without root, or when Dovecot or mbsync cannot be had.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
SRC=${MR_SRC:?MR_SRC must point at the source tree}
skip() { echo "SKIP: $*"; exit 77; }
fail() {
	echo "FAIL: $*"
	[ -f "${dir:-/nonexistent}/dovecot.log" ] && { echo "--- dovecot.log (tail)"; tail -n 20 "$dir/dovecot.log"; }
	exit 1
}
. "$SRC/tests/integration/imap_lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root: Dovecot's master runs as root to drop to the mail user"
command -v python3 >/dev/null || skip "python3 is not installed (the IMAP checks)"
mr_need_mbsync
if ! command -v dovecot >/dev/null && [ ! -x /usr/sbin/dovecot ]; then
	echo "dovecot is not installed; trying apt-get install dovecot-core"
	mr_apt_install dovecot-core ||
		skip "dovecot-core could not be installed from Debian's packages"
fi
DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)
getent passwd dovenull >/dev/null && getent passwd dovecot >/dev/null ||
	skip "the dovecot and dovenull users are missing (broken dovecot-core install)"

dir=$(mktemp -d /tmp/mr-client-dovecot.XXXXXX)
chmod 755 "$dir"   # the mail user (nobody) walks down to the Maildirs
cleanup() {
	set +e
	dovecot_stop
	[ -n "${MR_KEEP_TMP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Dovecot's IMAP processes come with dovecot-imapd, which conflicts with
# cyrus-imapd: when it is not installed, they run from its unpacked package.
dv_imap=$(mr_dovecot_imap_conf "$dir") || skip "no Dovecot IMAP processes (see above)"

S=$dir/S B=$dir/B T=$dir/T
MAILGID=$(getent passwd nobody | cut -d: -f4)
mkdir -p "$S" "$B" "$T" "$dir/run" "$dir/state"
chmod 755 "$S" "$T"
ADDR=$(mr_free_addr)
PORT=$(mr_free_port "$ADDR")

# ---- a private Dovecot; $dir/mail points at S, later at T ---------------
cat > "$dir/dovecot.conf" <<EOF
# Written by test_client_dovecot.sh; nothing from /etc/dovecot is included.
base_dir = $dir/run
state_dir = $dir/state
instance_name = mr-client-$PORT
log_path = $dir/dovecot.log
protocols = imap
listen = $ADDR
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:$dir/mail/%u
first_valid_uid = 1
default_vsz_limit = 0
service imap-login {
  inet_listener imap {
    address = $ADDR
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=65534 gid=$MAILGID home=$dir/mail/%u
}
$dv_imap
EOF
for u in alice bob renumbered revalidated; do echo "$u:{PLAIN}$u-pw"; done > "$dir/passwd"
chmod 644 "$dir/passwd"

dovecot_start() { # ROOT: serve the Maildirs under ROOT
	ln -sfn "$1" "$dir/mail"
	"$DOVECOT" -c "$dir/dovecot.conf" 2>"$dir/dovecot.start" ||
		skip "dovecot does not start here: $(head -c 500 "$dir/dovecot.start")"
	mr_wait_port "$ADDR" "$PORT" || fail "Dovecot does not answer on $ADDR:$PORT"
}
dovecot_stop() {
	local pid
	[ -f "$dir/run/master.pid" ] || return 0
	pid=$(cat "$dir/run/master.pid" 2>/dev/null)
	"$DOVECOT" -c "$dir/dovecot.conf" stop >/dev/null 2>&1
	for _ in $(seq 100); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
	rm -f "$dir/run/master.pid"
}

# imap USER: python3 imaplib logged in as USER (password USER-pw) as m,
# running the code on stdin.
imap() {
	"$PY" - "$ADDR" "$PORT" "$1" <<PY || fail "IMAP as $1 failed"
import imaplib, sys, time
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=30)
m.login(sys.argv[3], sys.argv[3] + "-pw")
def ok(r):
    if r[0] != "OK":
        raise SystemExit("IMAP: %s" % (r,))
    return r
def msg(n, folder="INBOX", flags=None):
    body = ("From: sender%d@example.org\r\nTo: alice@example.org\r\nMessage-ID: <%s-%d@example.org>\r\n"
            "Subject: message %d\r\n\r\nbody of message %d\r\n" % (n, folder.lower(), n, n, n)).encode()
    ok(m.append(folder, flags, imaplib.Time2Internaldate(1700000000 + n), body))
$(cat)
m.logout()
PY
}

# ---- the source before the damage -----------------------------------------
mkdir -p "$S/alice" "$S/bob"
chown nobody:"$MAILGID" "$S/alice" "$S/bob"
dovecot_start "$S"
imap alice <<'PY'
for f in ("Work", "Archive"):
    ok(m.create(f)); ok(m.subscribe(f))
for n in range(1, 11):
    msg(n, flags="(\\Seen)" if n % 3 else None)
for n in range(1, 5):
    msg(n, "Work", "(\\Seen \\Flagged)" if n == 2 else "(\\Seen)")
for n in range(1, 4):
    msg(n, "Archive", "(\\Seen \\Answered)")
ok(m.select("INBOX"))
ok(m.uid("STORE", "4", "+FLAGS", "(\\Flagged $Important)"))
PY
imap bob <<'PY'
for n in range(1, 4):
    msg(n)
PY
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/before.json" >/dev/null || fail "snapshot before"
# client A pulls now, before the backup
mr_mbsync_conf "$dir/a.rc" "$ADDR" "$PORT" alice alice-pw "$dir/clientA"
mr_mbsync "$dir/a.rc" "$dir/a1.log" || { tail "$dir/a1.log"; fail "mbsync A (first pull) failed"; }
[ "$(imap_check fetched "$dir/a1.log" | wc -l)" = 17 ] || fail "mbsync A: first pull fetched $(imap_check fetched "$dir/a1.log" | wc -l) bodies, want 17"
imap_check local "$dir/clientA" "$dir/before.json" >/dev/null || fail "client A after its first pull"

# ---- the nightly backup -----------------------------------------------------
"$MR" backup --source "$S" --out "$B" >/dev/null || fail "mailrestore backup"

# ---- a day of changes through Dovecot -----------------------------------------
imap alice <<'PY'
msg(11)                                   # new mail, through Dovecot
msg(12, flags="(\\Seen)")
ok(m.select("INBOX"))
ok(m.uid("STORE", "1", "-FLAGS", "(\\Seen)"))          # read -> unread
ok(m.uid("STORE", "3", "+FLAGS", "(\\Seen \\Answered)"))
ok(m.uid("STORE", "4", "-FLAGS", "(\\Flagged)"))
ok(m.uid("MOVE", "5", "Archive"))                      # moved: a new UID there
ok(m.uid("STORE", "6", "+FLAGS", "(\\Deleted)"))       # deleted
ok(m.expunge())
ok(m.create("Projects")); ok(m.subscribe("Projects"))
msg(1, "Projects", "(\\Seen \\Draft)")
ok(m.select("Work"))
ok(m.uid("STORE", "1:*", "+FLAGS", "($Done)"))
PY
# and one message as an MTA writes it, straight into new/
printf 'From: late@example.org\r\nMessage-ID: <late-1@example.org>\r\nSubject: late\r\n\r\nlate\r\n' \
	> "$S/alice/new/1700000900.M1P1.mta"
chown nobody:"$MAILGID" "$S/alice/new/1700000900.M1P1.mta"
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/source.json" || fail "snapshot of the source"
# client B pulls now, just before the damage
mr_mbsync_conf "$dir/b.rc" "$ADDR" "$PORT" alice alice-pw "$dir/clientB"
mr_mbsync "$dir/b.rc" "$dir/b1.log" || { tail "$dir/b1.log"; fail "mbsync B (first pull) failed"; }
imap_check local "$dir/clientB" "$dir/source.json" >/dev/null || fail "client B after its first pull"

# ---- the damage: Dovecot stops, bob's folder is gone ------------------------
dovecot_stop
rm -rf "$S/bob"

# ---- the restore ----------------------------------------------------------------
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" alice bob > "$dir/restore.out" 2> "$dir/restore.err"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$dir/restore.err"; fail "restore-user alice bob: exit $rc, want 1 (bob in attention)"; }
grep -q bob "$dir/restore.err" || { cat "$dir/restore.err"; fail "no reason given for bob"; }
[ -d "$T/alice" ] || fail "alice is not active on T"
[ ! -e "$T/bob" ] || fail "bob went active although his folder was gone from the source"
"$MR" verify --source "$S" --target "$T" alice >/dev/null || fail "verify alice"

# ---- the same Dovecot on T: what the clients see ------------------------------------
dovecot_start "$T"
imap_check snapshot "$ADDR" "$PORT" alice alice-pw "$dir/restored.json" || fail "snapshot of the restored user"
imap_check same "$dir/source.json" "$dir/restored.json" || fail "the restored mailbox differs from the source"
imap_check kept "$dir/before.json" "$dir/restored.json" || fail "client A's messages were renumbered"

# client A: fetches exactly what is new to it, once
imap_check newer "$dir/before.json" "$dir/restored.json" | sort > "$dir/a.want"
[ "$(wc -l < "$dir/a.want")" = 5 ] || { cat "$dir/a.want"; fail "expected 5 messages new to client A"; }
mr_mbsync "$dir/a.rc" "$dir/a2.log" || { tail "$dir/a2.log"; fail "mbsync A after the restore failed"; }
imap_check fetched "$dir/a2.log" | sort > "$dir/a.got"
diff "$dir/a.want" "$dir/a.got" > "$dir/a.diff" || { cat "$dir/a.diff"; fail "client A fetched other bodies than the new ones"; }
imap_check uidvalidity "$dir/a2.log" || fail "mbsync A reports a UIDVALIDITY change"
imap_check local "$dir/clientA" "$dir/restored.json" || fail "client A's store after the restore"
mr_mbsync "$dir/a.rc" "$dir/a3.log" || fail "mbsync A, second run"
[ -z "$(imap_check fetched "$dir/a3.log")" ] || fail "client A fetched again on its second run"

# client B: had everything, fetches nothing
mr_mbsync "$dir/b.rc" "$dir/b2.log" || { tail "$dir/b2.log"; fail "mbsync B after the restore failed"; }
[ -z "$(imap_check fetched "$dir/b2.log")" ] || { imap_check fetched "$dir/b2.log"; fail "client B downloaded messages it had"; }
imap_check uidvalidity "$dir/b2.log" || fail "mbsync B reports a UIDVALIDITY change"
imap_check local "$dir/clientB" "$dir/restored.json" || fail "client B's store after the restore"
echo "restored alice: same UIDVALIDITY, UIDs, flags and bodies; client A fetched $(wc -l < "$dir/a.got") new, client B 0"

# ---- side checks: the judges catch a renumbered mailbox ------------------------------
dovecot_stop
for u in renumbered revalidated; do
	cp -a "$T/alice" "$T/$u"
	rm -f "$T/$u"/dovecot.index* "$T/$u"/.*/dovecot.index* "$T/$u"/dovecot.list.index*
done
"$PY" - "$T/renumbered/dovecot-uidlist" "$T/revalidated/dovecot-uidlist" <<'PY'
import re, sys
def rewrite(path, shift, uv_shift):
    lines = open(path).read().split("\n")
    head = lines[0].split(" ")
    for i, tok in enumerate(head):
        if tok[:1] == "N":
            head[i] = "N%d" % (int(tok[1:]) + shift)
        if tok[:1] == "V":
            head[i] = "V%d" % (int(tok[1:]) + uv_shift)
    out = [" ".join(head)]
    for line in lines[1:]:
        m = re.match(r"^(\d+)(.*)$", line)
        out.append("%d%s" % (int(m.group(1)) + shift, m.group(2)) if m else line)
    open(path, "w").write("\n".join(out))
rewrite(sys.argv[1], 100, 0)   # same UIDVALIDITY, every UID moved up
rewrite(sys.argv[2], 0, 1)     # same UIDs, a new UIDVALIDITY
PY
dovecot_start "$T"
imap_check snapshot "$ADDR" "$PORT" renumbered renumbered-pw "$dir/renumbered.json" >/dev/null
imap_check same "$dir/source.json" "$dir/renumbered.json" >/dev/null && fail "side check: same missed renumbered UIDs"
imap_check kept "$dir/before.json" "$dir/renumbered.json" >/dev/null && fail "side check: kept missed renumbered UIDs"
cp -a "$dir/clientB" "$dir/clientR"
mr_mbsync_conf "$dir/r.rc" "$ADDR" "$PORT" renumbered renumbered-pw "$dir/clientR"
mr_mbsync "$dir/r.rc" "$dir/r.log" || true
[ -n "$(imap_check fetched "$dir/r.log")" ] || fail "side check: mbsync fetched nothing from a renumbered INBOX"
imap_check snapshot "$ADDR" "$PORT" revalidated revalidated-pw "$dir/revalidated.json" >/dev/null
imap_check same "$dir/source.json" "$dir/revalidated.json" >/dev/null && fail "side check: same missed a new UIDVALIDITY"
cp -a "$dir/clientB" "$dir/clientV"
mr_mbsync_conf "$dir/v.rc" "$ADDR" "$PORT" revalidated revalidated-pw "$dir/clientV"
mr_mbsync "$dir/v.rc" "$dir/v.log" || true
imap_check uidvalidity "$dir/v.log" > "$dir/v.found" && fail "side check: no UIDVALIDITY complaint from mbsync"
echo "side checks: renumbered UIDs and a new UIDVALIDITY are caught ($(head -n 1 "$dir/v.found"))"
echo ok
