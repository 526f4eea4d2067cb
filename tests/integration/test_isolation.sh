#!/usr/bin/env bash
# One user's broken mailbox must not stall the others, nor the daemon's
# start (issue 10, findings 1 and 2):
#  - mallory's source tmp/ is a symlink and new/ a plain file, with mail
#    held for her: she goes to attention at once with a reason that names
#    tmp/ and keeps her held mail, and bob, carol and dave, asked for after
#    her, are active at once; `activate` then sets the odd entries aside in
#    the attic, makes real folders and delivers her mail;
#  - eve's attic folder is taken by a file: her run fails with an error no
#    retry cures, she goes to attention with the reason at once and keeps
#    her held mail, and the others still go on (the worker used to back
#    off up to 60 s with her at the front of the queue);
#  - a restart with an active user whose tmp/ is a symlink and mail held
#    (what an older version left behind) does not stop the daemon (it used
#    to exit 74 on every start): her mail is released.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir isolation
for u in mallory eve bob carol dave zed; do mkuser "$u" 4; done
"$MR" backup --source "$S" --out "$B" >/dev/null
rm -rf "$S/mallory/tmp" "$S/mallory/new"
ln -s /etc "$S/mallory/tmp"
echo "not a folder" > "$S/mallory/new"

mkdir -p "$T/.mailrestore/attic"
echo "in the way" > "$T/.mailrestore/attic/eve"
start_daemon --background off --jobs 1
"$MR" pause --socket "$SOCK" >/dev/null
printf 'Subject: held m\n\nfor mallory\n' | "$MR" deliver --socket "$SOCK" mallory >/dev/null ||
  fail "deliver to mallory"
printf 'Subject: held e\n\nfor eve\n' | "$MR" deliver --socket "$SOCK" eve >/dev/null ||
  fail "deliver to eve"
for u in mallory eve bob carol dave; do "$MR" login --socket "$SOCK" "$u" >/dev/null 2>&1 || true; done
t0=$(date +%s)
"$MR" resume --socket "$SOCK" >/dev/null
for u in bob carol dave; do wait_state "$u" active 20; done
[ $(( $(date +%s) - t0 )) -le 10 ] || fail "the others took $(( $(date +%s) - t0 )) s"
wait_state mallory attention 10
wait_state eve attention 10
reason=$("$MR" show --socket "$SOCK" --json mallory | json 'd["reason"]')
echo "$reason" | grep -q "tmp is a symlink" || fail "mallory's reason: $reason"
[ "$("$MR" show --socket "$SOCK" --json mallory | json 'd["held_mail"]')" = 1 ] ||
  fail "mallory's held mail not kept"
"$MR" activate --socket "$SOCK" mallory >/dev/null || fail "activate mallory"
wait_state mallory active 10
[ -d "$T/mallory/tmp" ] && [ ! -L "$T/mallory/tmp" ] && [ -d "$T/mallory/new" ] ||
  fail "mallory's Maildir folders are not real folders"
grep -rq "for mallory" "$T/mallory/new" || fail "mallory's held mail not released"
# show counts what the operator's activate released (it said 0)
[ "$("$MR" show --socket "$SOCK" --json mallory | json 'd["counters"]["released_mail"]')" = 1 ] ||
  fail "show does not count the mail activate released"
[ "$(find "$T/.mailrestore/attic/mallory" -maxdepth 1 -name 'tmp*' -type l | wc -l)" = 1 ] ||
  fail "mallory's tmp symlink not in the attic"
grep -qs "not a folder" "$T"/.mailrestore/attic/mallory/new* || fail "mallory's new file not in the attic"
grep -q "mallory: the Maildir's tmp was a symlink" "$dir/daemon.log" || fail "no log line for mallory"
reason=$("$MR" show --socket "$SOCK" --json eve | json 'd["reason"]')
echo "$reason" | grep -q "attic" || fail "eve's reason: $reason"
[ "$("$MR" show --socket "$SOCK" --json eve | json 'd["held_mail"]')" = 1 ] || fail "eve's mail not kept"

# An active user left with a symlinked tmp/ and held mail (by an older
# version): the start recovers her and goes on.
"$MR" pause --socket "$SOCK" >/dev/null
printf 'Subject: held z\n\nfor zed\n' | "$MR" deliver --socket "$SOCK" zed >/dev/null || fail "deliver to zed"
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
cp -a "$S/zed" "$T/zed"
touch "$T/.mailrestore/active/zed"   # activated by mailrestore, not made by the server
rm -rf "$T/zed/tmp"; ln -s /etc "$T/zed/tmp"
start_daemon --background off --jobs 1
sleep 0.5
kill -0 "$DPID" 2>/dev/null || fail "the daemon stopped after the restart"
grep -rq "for zed" "$T/zed/new" || fail "zed's held mail not released at the restart"
[ -d "$T/zed/tmp" ] && [ ! -L "$T/zed/tmp" ] || fail "zed's tmp still a symlink"
[ "$(state_of bob)" = active ] || fail "bob is $(state_of bob) after the restart"
stop_daemon
echo ok
