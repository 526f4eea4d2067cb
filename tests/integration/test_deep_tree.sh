#!/usr/bin/env bash
# A 6000-level d/d/d/... folder in a user's source (issue 10, finding 4):
# the walks used to recurse once per level (restore-user and the daemon
# crashed with SIGSEGV, verify near 860 levels, backup near 1500). Now:
# restore-user ends the user in attention with a reason that names the
# nesting (not "unreadable"), sync and verify report it and finish,
# backup leaves the deep part out and finishes, no temporary file is left.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir deep
mkuser u1 4
mkuser u2 4
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
deep "$S/u1/.Deep"
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" u1 u2 >"$dir/out" 2>&1; rc=$?
set -e
[ "$rc" = 1 ] || fail "restore-user exit $rc, want 1: $(tail -3 "$dir/out")"
grep -q "nested deeper than" "$dir/out" || fail "no reason naming the nesting: $(cat "$dir/out")"
grep -qi "unreadable: open\|source unreadable" "$dir/out" && fail "misleading reason: $(cat "$dir/out")"
[ -d "$T/u2" ] || fail "u2 not active"
[ ! -e "$T/u1" ] || fail "u1 active despite the deep tree"

# sync and verify of the same tree finish and report it
mkdir -p "$dir/copy"
set +e
"$MR" sync "$S/u1" "$dir/copy" >"$dir/sync.out" 2>&1; rc=$?
set -e
[ "$rc" = 1 ] || fail "sync exit $rc, want 1: $(tail -3 "$dir/sync.out")"
grep -q "nested deeper than" "$dir/sync.out" || fail "sync: $(cat "$dir/sync.out")"
# T/u2 and S/u2 both get one: verify walks it on both sides
deep "$S/u2/.Deep"; deep "$T/u2/.Deep"
set +e
"$MR" verify --source "$S" --target "$T" u2 >"$dir/verify.out" 2>&1; rc=$?
set -e
[ "$rc" -lt 64 ] || fail "verify exit $rc: $(tail -3 "$dir/verify.out")"
[ "$rc" != 0 ] || fail "verify found no difference"

# backup leaves the deep part out and finishes
rm -rf "$dir/B2"; mkdir "$dir/B2"
set +e
"$MR" backup --source "$S" --out "$dir/B2" >"$dir/backup.out" 2>&1; rc=$?
set -e
[ "$rc" = 1 ] || fail "backup exit $rc, want 1: $(tail -3 "$dir/backup.out")"
grep -q "nested deeper than" "$dir/backup.out" || fail "backup: $(cat "$dir/backup.out")"
[ -z "$(find "$dir/B2" -name '*.tmp*' -o -name '.*' -type f)" ] || fail "temporary file left in B2"
echo ok
