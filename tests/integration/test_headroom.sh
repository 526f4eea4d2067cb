#!/usr/bin/env bash
# A user whose files do not fit on a small target (issue 10, findings 2 and
# 5): big's new 24 MiB message would leave less than the 64 MiB headroom on
# an 80 MiB T. Her run fails with ENOSPC and the sizes before anything is
# written, she is retried on her own back-off (1 s, 2 s) while small1 and
# small2 are restored at once, and after 3 failures in a row she goes to
# attention with the reason; T never fills up. A 2 GiB sparse file (truncate)
# in small2's source costs T nothing. Needs root (a tmpfs for T).
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to mount a small tmpfs as the target"; exit 77; }
setup_dir headroom
mkdir -p "$T"
mount -t tmpfs -o size=80m tmpfs "$T" 2>/dev/null ||
  { echo "SKIP: cannot mount a tmpfs here"; exit 77; }
trap 'rc=$?; if [ -n "${DPID:-}" ]; then kill -9 "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; fi; umount "$T" 2>/dev/null || true; rm -rf "$dir"; exit $rc' EXIT
for u in big small1 small2; do mkuser "$u" 4; done
"$MR" backup --source "$S" --out "$B" >/dev/null
head -c $((24 << 20)) /dev/urandom > "$S/big/cur/1700009999.M1P1.host,S=25165824:2,S"
truncate -s 2G "$S/small2/cur/1700009998.M1P1.host,S=2147483648:2,S"

start_daemon --jobs 1 --background off
for u in big small1 small2; do "$MR" login --socket "$SOCK" "$u" >/dev/null 2>&1 || true; done
wait_state small1 active 10
wait_state small2 active 10
wait_state big attention 20
reason=$("$MR" show --socket "$SOCK" --json big | json 'd["reason"]')
echo "$reason" | grep -q "failed 3 times in a row" || fail "big's reason: $reason"
echo "$reason" | grep -q "not enough room on the target" || fail "big's reason: $reason"
[ "$(stat -c %s "$T/small2/cur/1700009998.M1P1.host,S=2147483648:2,S")" = 2147483648 ] ||
  fail "sparse file size"
used=$(df -k --output=used "$T" | tail -1)
[ "$used" -lt 20000 ] || fail "T holds $used KiB: the sparse file or big's message was written"
grep -q "big: failed (.*not enough room" "$dir/daemon.log" || fail "no back-off log line"
stop_daemon
echo ok
