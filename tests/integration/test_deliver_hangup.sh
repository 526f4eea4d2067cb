#!/usr/bin/env bash
# Regression: clients that announce a large DELIVER and hang up mid-body
# must give back the in-memory budget (256 MiB for all clients); before the
# fix four of them starved every later delivery with "too many deliveries
# at once" until the daemon restarted.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir deliver-hangup
mkuser u01
"$MR" backup --source "$S" --out "$B" >/dev/null
start_daemon --background off --jobs 1

for i in 1 2 3 4 5 6; do
  python3 - "$SOCK" <<'PY' || fail "hang-up client $i"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"DELIVER u01 67108864\n")
reply = s.makefile().readline()
assert '"send"' in reply, reply
s.sendall(b"x" * 10)
s.close()
PY
done
sleep 0.3
printf 'Subject: after the hang-ups\r\n\r\nbody\r\n' | "$MR" deliver --socket "$SOCK" u01 \
  || fail "deliver after clients hung up mid-body: exit $?"
stop_daemon
echo "deliver after hang-ups: ok"
