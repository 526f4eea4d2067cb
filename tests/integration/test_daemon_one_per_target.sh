#!/usr/bin/env bash
# One daemon per target (issue 10, finding 8): a second daemon on the same
# T with a --state and a socket of its own used to start too, and mail held
# by one was never released by the other. Now it exits 75 naming the lock.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir one-per-target
mkuser u01 2
"$MR" backup --source "$S" --out "$B" >/dev/null
start_daemon --background off --state "$dir/state1"
set +e
timeout 20 "$MR" daemon --backups "$B" --source "$S" --target "$T" --background off \
  --state "$dir/state2" --socket "$dir/run/other.sock" 2>"$dir/err2"
rc=$?
set -e
[ "$rc" = 75 ] || fail "a second daemon on the same target: exit $rc, want 75 ($(cat "$dir/err2"))"
grep -q "another daemon is running on the target" "$dir/err2" || fail "message: $(cat "$dir/err2")"
"$MR" status --socket "$SOCK" >/dev/null || fail "the first daemon stopped answering"
stop_daemon
# Once the first is gone, the target is free again.
start_daemon --background off --state "$dir/state2"
stop_daemon
echo "ok: one daemon per target"
