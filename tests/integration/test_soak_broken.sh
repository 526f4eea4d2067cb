#!/usr/bin/env bash
# Soak (issue 10, "Done when"): 20 users, of which 3 are broken in
# different ways, and one local client that misbehaves, with the real
# daemon killed -9 in the middle and started again:
#  - mallory: her source tmp/ is a symlink, and mail is held for her;
#  - lena: a 255-byte message name that an earlier run already moved to the
#    attic, moved there again by this run's extraction and sync (the
#    attic's ".1" name used to exceed NAME_MAX: "File name too long" on
#    every run);
#  - dora: a 6000-level d/d/d/... folder made in her source after the
#    backup (the walk used to crash the daemon with SIGSEGV on every start,
#    then a 128-level cap sent her to attention; the walks are stack-free
#    now and she is restored with the whole tree);
#  - a client that sends QUEUE again and again and never reads a reply.
# The 17 healthy users, lena and dora are activated, mallory ends in
# attention with a reason that says what is wrong (she keeps her held
# mail), and the daemon survives kill -9 and finishes.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir soak
HEALTHY=$(seq -f "u%02g" 1 17)
for u in $HEALTHY mallory lena dora; do mkuser "$u" 8 1000; done
long=$(printf 'x%.0s' $(seq 1 240))
long="1700000000.M1P1.$long"; long=${long:0:255}
echo "long one" > "$S/lena/cur/$long"
"$MR" backup --source "$S" --out "$B" >/dev/null
# lena: the message is gone from the source and an earlier run already
# put a version of it in the attic
rm "$S/lena/cur/$long"
mkdir -p "$T/.mailrestore/attic/lena/cur"
echo "earlier" > "$T/.mailrestore/attic/lena/cur/$long"
# mallory: tmp/ is a symlink
rm -rf "$S/mallory/tmp"; ln -s /etc "$S/mallory/tmp"
# dora: 6000 levels
python3 - "$S/dora/.Deep" <<'PY'
import os, sys
os.mkdir(sys.argv[1])
fd = os.open(sys.argv[1], os.O_RDONLY)
for i in range(6000):
    os.mkdir("d", dir_fd=fd)
    sub = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = sub
os.close(fd)
PY

# first only the users asked for (background off), killed -9 as soon as
# one of them is active; the restart (background on) does the rest
start_daemon --jobs 2 --background off
"$MR" pause --socket "$SOCK" >/dev/null
printf 'Subject: held\n\nfor mallory\n' | "$MR" deliver --socket "$SOCK" mallory >/dev/null ||
  fail "deliver to mallory"
# the client that never reads: QUEUE lines as fast as the socket takes them
python3 - "$SOCK" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.setblocking(False)
end = time.time() + 30
while time.time() < end:
    try:
        s.send(b"QUEUE\n" * 100)
    except (BlockingIOError, OSError):
        time.sleep(0.05)
PY
RUDE=$!
trap 'kill $RUDE 2>/dev/null || true' RETURN
for u in mallory dora lena u05 u11; do "$MR" login --socket "$SOCK" "$u" >/dev/null 2>&1 || true; done
"$MR" resume --socket "$SOCK" >/dev/null
wait_state u05 active 20
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
[ ! -d "$T/u01" ] || fail "u01 ran before the restart (background was off)"
start_daemon --jobs 2 --background on
for u in $HEALTHY lena dora; do wait_state "$u" active 30; done
wait_state mallory attention 20
kill "$RUDE" 2>/dev/null || true; wait "$RUDE" 2>/dev/null || true

reason() { "$MR" show --socket "$SOCK" --json "$1" | json 'd["reason"]'; }
reason mallory | grep -q "tmp is a symlink" || fail "mallory's reason: $(reason mallory)"
[ "$("$MR" show --socket "$SOCK" --json mallory | json 'd["held_mail"]')" = 1 ] ||
  fail "mallory's held mail not kept"
[ "$(ls "$T/.mailrestore/attic/lena/cur" | wc -l)" = 2 ] || fail "lena's attic: $(ls "$T/.mailrestore/attic/lena/cur")"
for u in $HEALTHY dora; do
  d=$("$MR" verify --source "$S" --target "$T" "$u" 2>&1) || fail "verify $u: $d"
done
"$MR" status --socket "$SOCK" --json >"$dir/status.json"
[ "$(json 'd["counts"]["active"]' <"$dir/status.json")" = 19 ] ||
  fail "active: $(json 'd["counts"]' <"$dir/status.json")"
stop_daemon
echo ok
