#!/usr/bin/env bash
# A source that is not mounted is not damage (issue 12, finding 1): with an
# empty S every user used to go to attention (or be restored from its
# backup alone). The daemon and restore-user now refuse such a start with
# exit 66 and say what to do; --allow-empty-source is the operator's way on.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir source-check
for i in $(seq -w 1 12); do mkuser "u$i" 2; done
"$MR" backup --source "$S" --out "$B" >/dev/null
mv "$S" "$dir/S.mounted"
mkdir "$S"

# An empty source: refused, both ways in.
set +e
timeout 20 "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
  --background off 2>"$dir/err"
rc=$?
set -e
[ "$rc" = 66 ] || fail "daemon on an empty source: exit $rc, want 66 ($(cat "$dir/err"))"
grep -q "looks unmounted" "$dir/err" || fail "daemon message: $(cat "$dir/err")"
grep -q -- "--allow-empty-source" "$dir/err" || fail "no way on named: $(cat "$dir/err")"
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --all 2>"$dir/err"
rc=$?
set -e
[ "$rc" = 66 ] || fail "restore-user on an empty source: exit $rc, want 66"
grep -q "looks unmounted" "$dir/err" || fail "restore-user message: $(cat "$dir/err")"
[ ! -e "$T/u01" ] || fail "restore-user activated a user from an unmounted source"

# Far fewer folders than backups (2 of 12): refused too.
mkdir -p "$S/u01" "$S/u02"
set +e
timeout 20 "$MR" daemon --backups "$B" --source "$S" --target "$T" --socket "$SOCK" \
  --background off 2>"$dir/err"
rc=$?
set -e
[ "$rc" = 66 ] || fail "daemon with 2 of 12 source folders: exit $rc, want 66"
rmdir "$S/u01" "$S/u02"

# The operator says go on: the daemon starts and serves.
start_daemon --background off --allow-empty-source
grep -q "going on as --allow-empty-source says" "$dir/daemon.log" || fail "no log line for the override"
stop_daemon

# Mounted, one user's folder lost: the normal case starts without a word.
rmdir "$S"
mv "$dir/S.mounted" "$S"
rm -rf "${S:?}/u07"
start_daemon --background off
stop_daemon
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --quiet u01 ||
  fail "restore-user with the source mounted"
echo "ok: an unmounted source is refused"
