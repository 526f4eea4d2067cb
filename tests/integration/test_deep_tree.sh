#!/usr/bin/env bash
# A 6000-level d/d/d/... folder in a user's source (issue 10, finding 4).
# The walks used to recurse once per level: restore-user and the daemon
# crashed with SIGSEGV, verify near 860 levels, backup near 1500 (leaving
# a temporary file), and then a 128-level cap sent the user to attention.
# Now every walk keeps its levels on the heap and holds a bounded number
# of descriptors: with the descriptor limit at 64, restore-user activates
# the user with the whole tree, verify finds no difference, backup writes
# it whole and a restore from that archive brings it back; the daemon
# restores such a user too, across a kill -9 and a restart.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir deep
# 6 trees of 6000 folders: on a tmpfs when there is one (creating and
# removing them on a disk takes most of this test's time there)
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  rm -rf "$dir"
  dir=$(mktemp -d /dev/shm/mr-deep.XXXXXX)
  S=$dir/S B=$dir/B T=$dir/T SOCK=$dir/run/mr.sock
  mkdir -p "$S" "$B"
fi
mkuser u1 4
mkuser u2 4
mkuser u3 4
"$MR" backup --source "$S" --out "$B" >/dev/null
deep() { # deep DIR: DIR/d/d/... 6000 levels with a file at the bottom
python3 - "$1" <<'PY'
import os, sys
os.mkdir(sys.argv[1])
fd = os.open(sys.argv[1], os.O_RDONLY)
for i in range(6000):
    os.mkdir("d", dir_fd=fd)
    sub = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = sub
with open(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as f:
    f.write("x")
os.close(fd)
PY
}
# levels DIR: prints how deep DIR/d/d/... goes and whether the bottom is there
levels() {
python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
n = 0
while True:
    try:
        sub = os.open("d", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    except FileNotFoundError:
        break
    os.close(fd)
    fd = sub
    n += 1
try:
    os.stat("bottom", dir_fd=fd)
    print(n, "bottom")
except FileNotFoundError:
    print(n, "nobottom")
PY
}
deep "$S/u1/.Deep"
deep "$S/u3/.Deep"
lim() { (ulimit -n 64; exec "$@"); }

set +e
lim "$MR" restore-user --backups "$B" --source "$S" --target "$T" u1 u2 >"$dir/out" 2>&1; rc=$?
set -e
[ "$rc" = 0 ] || fail "restore-user exit $rc, want 0: $(tail -5 "$dir/out")"
[ -d "$T/u1" ] && [ -d "$T/u2" ] || fail "not active: $(cat "$dir/out")"
[ "$(levels "$T/u1/.Deep")" = "6000 bottom" ] || fail "T/u1/.Deep: $(levels "$T/u1/.Deep")"

# verify walks both trees: no difference; one changed file at the bottom is found
lim "$MR" verify --source "$S" --target "$T" u1 >"$dir/verify.out" 2>&1 \
  || fail "verify: $(tail -5 "$dir/verify.out")"

# backup writes it whole (no temporary file left), and it restores back
mkdir "$dir/B2"
lim "$MR" backup --source "$S" --out "$dir/B2" >"$dir/backup.out" 2>&1 \
  || fail "backup: $(tail -5 "$dir/backup.out")"
[ -z "$(find "$dir/B2" -name '.*' -type f)" ] || fail "temporary file left in B2"
# the restore from it: with no u1 in the source the tree can only come
# from the archive (u1 then waits in attention with its work copy)
mkdir "$dir/S2" "$dir/T2"
lim "$MR" restore-user --backups "$dir/B2" --source "$dir/S2" --target "$dir/T2" \
  --allow-empty-source u1 >"$dir/out2" 2>&1 || true
grep -q "backup 7 files" "$dir/out2" || fail "restore from B2: $(tail -5 "$dir/out2")"
[ "$(levels "$dir/T2/.mailrestore/work/u1/.Deep")" = "6000 bottom" ] \
  || fail "restored from the backup: $(tail -5 "$dir/out2")"

# the daemon: u3 with the deep tree, a kill -9 while it works, a restart
start_daemon --jobs 1
"$MR" enqueue --socket "$SOCK" u3 >/dev/null
sleep 0.3
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
start_daemon --jobs 1
"$MR" login --socket "$SOCK" u3 >/dev/null 2>&1 || true
wait_state u3 active 60
[ "$(levels "$T/u3/.Deep")" = "6000 bottom" ] || fail "T/u3/.Deep: $(levels "$T/u3/.Deep")"
stop_daemon
echo ok
