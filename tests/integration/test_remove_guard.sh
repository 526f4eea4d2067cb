#!/usr/bin/env bash
# The remove guard end to end through the real daemon: the mailbox's own
# index (dovecot-uidlist) tells a user's deletions from damage. A POP user
# who deleted everything, a tiny mailbox without an index and a user who
# deleted a folder go active; a folder that lists empty while its index
# still names 40 messages puts the user in attention with the folder and
# the count in `show` and `show --json`, the 40 kept in the work copy.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir guard

# msgs USER FOLDER FIRST LAST: messages in FOLDER/cur (FOLDER "" the INBOX)
msgs() {
  local d=$S/$1${2:+/$2} i
  mkdir -p "$d"/{cur,new,tmp}
  for i in $(seq "$3" "$4"); do
    echo "Subject: $i" > "$d/cur/17000$i.M${i}P7.mx,S=$i:2,S"
  done
}
# uidlist USER FOLDER FIRST LAST: Dovecot's index naming those messages
uidlist() {
  local d=$S/$1${2:+/$2} i
  { echo "3 V1700000000 N$(( $4 + 1 ))"
    for i in $(seq "$3" "$4"); do echo "$i W$((i + 20)) :17000$i.M${i}P7.mx,S=$i"; done
  } > "$d/dovecot-uidlist"
}

msgs pop "" 1 40; uidlist pop "" 1 40
msgs cleared "" 1 40; uidlist cleared "" 1 40; msgs cleared .Sent 41 45; uidlist cleared .Sent 41 45
msgs tiny "" 1 1
msgs folders "" 1 5; uidlist folders "" 1 5; msgs folders .Old 50 80; uidlist folders .Old 50 80
printf 'Sent\nOld\n' > "$S/folders/subscriptions"
"$MR" backup --source "$S" --out "$B" pop cleared tiny folders >/dev/null

# The day after: pop fetched and deleted all, three new arrived.
rm "$S"/pop/cur/*; msgs pop "" 41 43; uidlist pop "" 41 43
rm "$S"/cleared/cur/*                       # fsck: lists empty, index intact
rm "$S"/tiny/cur/*                          # the one message deleted
rm -r "$S/folders/.Old"; printf 'Sent\n' > "$S/folders/subscriptions"

# --min-remove takes a number of files.
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --min-remove x pop 2>/dev/null; rc1=$?
"$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" --min-remove -1 2>/dev/null; rc2=$?
set -e
[ "$rc1" = 64 ] && [ "$rc2" = 64 ] || fail "--min-remove with a bad value: exit $rc1 / $rc2, want 64"
"$MR" restore-user --help | grep -q -- "--min-remove N" || fail "restore-user --help: --min-remove"
"$MR" daemon --help | grep -q -- "--min-remove N" || fail "daemon --help: --min-remove"

start_daemon --jobs 2 --min-remove 10
for u in pop tiny folders; do wait_state "$u" active; done
wait_state cleared attention
for u in pop tiny folders; do
  "$MR" verify --source "$S" --target "$T" "$u" >/dev/null || fail "$u differs from the source"
done
[ "$(ls "$T/.mailrestore/attic/pop/cur" | wc -l)" = 40 ] || fail "pop: 40 in the attic"
[ -d "$T/.mailrestore/attic/folders/.Old/cur" ] || fail "folders: .Old in the attic"

want="INBOX: 40 messages the mailbox index still lists are missing on the source"
reason=$("$MR" show --socket "$SOCK" --json cleared | json 'd["reason"]')
case $reason in *"$want"*) ;; *) fail "show --json reason: $reason" ;; esac
"$MR" show --socket "$SOCK" cleared | grep -qF "$want" || fail "show: no reason line"
[ "$(ls "$T/.mailrestore/work/cleared/cur" | wc -l)" = 40 ] || fail "cleared: the 40 left the work copy"
[ ! -e "$T/.mailrestore/attic/cleared/cur" ] || fail "cleared: the guard moved messages"
[ ! -e "$T/cleared" ] || fail "cleared went active"
stop_daemon
echo ok
