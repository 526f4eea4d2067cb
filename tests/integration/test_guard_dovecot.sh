#!/usr/bin/env bash
# The remove guard against the files a real Dovecot writes: its LDA
# delivers into a Maildir (appending to dovecot-uidlist), doveadm expunges
# as a POP3 client's QUIT would. Dovecot unlinks the expunged files at once
# but leaves their names in the uidlist until a later sync of the folder;
# its transaction log (dovecot.index.log) records the expunges. A sync
# against such a source goes through, and so does one where the user
# deleted a subscribed folder (Dovecot's mailbox log records it); the
# same folder emptied behind Dovecot's back (its log knows of no expunge)
# stops the sync.
# Skips (77) without Dovecot or root (the LDA runs as nobody).
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
LDA=/usr/lib/dovecot/dovecot-lda
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$LDA" ] && command -v doveadm >/dev/null || skip "Dovecot (dovecot-lda, doveadm) is not installed"
[ "$(id -u)" = 0 ] && command -v runuser >/dev/null || skip "needs root to run Dovecot's tools as nobody"
dir=$(mktemp -d /tmp/mr-guard-dovecot.XXXXXX)
trap 'rm -rf "$dir"' EXIT
chmod 0755 "$dir"
mkdir -p "$dir/S" "$dir/W" "$dir/log"; chown nobody "$dir/log"

# dv USER CMD...: a Dovecot tool as nobody on S/USER (its Maildir).
dv() {
  local u=$1; shift
  cat > "$dir/$u.conf" <<CONF
base_dir = $dir/run-$u
log_path = $dir/log/dovecot.log
mail_location = maildir:$dir/S/$u
ssl = no
CONF
  mkdir -p "$dir/S/$u" "$dir/run-$u"
  chown nobody "$dir/S/$u" "$dir/run-$u"
  runuser -u nobody -- env USER=nobody HOME="$dir/S/$u" "$1" -c "$dir/$u.conf" "${@:2}"
}
deliver() { # USER FIRST LAST
  local i
  for i in $(seq "$2" "$3"); do
    printf 'From: a@example.org\nSubject: message %s\n\nbody %s\n' "$i" "$i" |
      dv "$1" "$LDA" -f a@example.org || fail "dovecot-lda failed (see $dir/log/dovecot.log)"
  done
}
count() { find "$1" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l; }

for u in pop cleared; do deliver "$u" 1 12; done
# folders: a subscribed folder the user deletes (IMAP DELETE: not unsubscribed)
deliver folders 1 4
dv folders doveadm mailbox create -s Old
for i in 1 2 3; do printf 'Subject: old %s\n\nold\n' "$i" | dv folders doveadm save -m Old; done
[ -f "$dir/S/folders/.Old/dovecot-uidlist" ] || fail "no .Old from Dovecot"
grep -q '^3 V' "$dir/S/pop/dovecot-uidlist" || fail "no version 3 uidlist from Dovecot"
cp -a "$dir/S/pop" "$dir/S/cleared" "$dir/S/folders" "$dir/W/"   # the backup

# pop: POP3 QUIT expunges everything; two new messages arrive later.
dv pop doveadm expunge mailbox INBOX all
deliver pop 13 14
[ "$(count "$dir/S/pop")" = 2 ] || fail "pop: expected 2 messages on the source"
[ "$(grep -c ' :' "$dir/S/pop/dovecot-uidlist")" -ge 12 ] ||
  skip "this Dovecot dropped expunged names at once; the log is not needed"
"$MR" sync "$dir/S/pop" "$dir/W/pop" > "$dir/out" 2> "$dir/err" || { cat "$dir/err"; fail "pop: sync stopped"; }
"$MR" verify --source "$dir/S" --target "$dir/W" pop >/dev/null || fail "pop differs from the source"
[ "$(count "$dir/W/.mailrestore-attic")" = 12 ] || fail "pop: 12 in the attic"

# folders: Old deleted, still subscribed; Dovecot's mailbox log knows.
dv folders doveadm mailbox delete Old
[ ! -e "$dir/S/folders/.Old" ] && grep -qx Old "$dir/S/folders/subscriptions" ||
  fail "folders: expected .Old gone and still subscribed"
"$MR" sync "$dir/S/folders" "$dir/W/folders" > "$dir/out" 2> "$dir/err" ||
  { cat "$dir/err"; fail "folders: sync stopped"; }
"$MR" verify --source "$dir/S" --target "$dir/W" folders >/dev/null || fail "folders differ"
[ -d "$dir/W/.mailrestore-attic/.Old" ] || fail "folders: .Old not in the attic"

# cleared: emptied behind Dovecot's back (fsck): its index still lists 12.
rm -f "$dir/S/cleared"/cur/* "$dir/S/cleared"/new/*
set +e; "$MR" sync "$dir/S/cleared" "$dir/W/cleared" > "$dir/out" 2> "$dir/err"; rc=$?; set -e
[ "$rc" = 1 ] || { cat "$dir/err"; fail "cleared: exit $rc, want 1"; }
grep -q "INBOX: 12 messages the mailbox index still lists are missing on the source" "$dir/err" ||
  { cat "$dir/err"; fail "cleared: guard reason"; }
[ "$(count "$dir/W/cleared")" = 12 ] || fail "cleared: the work copy lost messages"
echo ok
