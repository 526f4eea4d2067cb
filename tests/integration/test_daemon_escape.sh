#!/usr/bin/env bash
# Untrusted bytes are escaped in every human-readable output and log line
# (issue 10, finding 8): a source file named with ESC, BEL, a newline and a
# byte that is not UTF-8 puts its user in attention; `show`, the error of
# `activate`-style refusals and the daemon's log show the name escaped, on
# one line, never the raw bytes (terminal control, forged log lines).
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir escape
mkuser u01 2
"$MR" backup --source "$S" --out "$B" >/dev/null
evil=$(printf 'cur/\033[31mevil\007\nforged: line\377')
mkfifo "$S/u01/$evil"
start_daemon --background off --jobs 1
"$MR" login --socket "$SOCK" u01 >/dev/null || true
wait_state u01 attention
"$MR" show --socket "$SOCK" u01 > "$dir/show"
"$MR" show --socket "$SOCK" --json u01 > "$dir/show.json"
stop_daemon
raw() { LC_ALL=C grep -c $'\033\\|\007\\|\377' "$1" || true; }
[ "$(raw "$dir/show")" = 0 ] || fail "raw control bytes in show: $(cat -v "$dir/show")"
grep -Eq '^reason: .*\\x1b\[31mevil\\x07(\\n| )forged: line\\xff' "$dir/show" || fail "show: $(cat -v "$dir/show")"
! grep -q '^forged' "$dir/show" || fail "a forged line in show"
[ "$(raw "$dir/daemon.log")" = 0 ] || fail "raw control bytes in the log: $(cat -v "$dir/daemon.log")"
! grep -q '^forged' "$dir/daemon.log" || fail "a forged line in the log"
grep -q 'evil\\x07\\nforged' "$dir/daemon.log" || fail "the log does not name the file: $(cat -v "$dir/daemon.log")"
# JSON keeps the name exactly (as JSON escapes).
python3 -c 'import json,re,sys; r=json.load(open(sys.argv[1]))["reason"]; sys.exit(0 if re.search("\x1b\\[31mevil\x07[\n ]forged", r) else 1)' "$dir/show.json" ||
  fail "json reason: $(cat "$dir/show.json")"
echo "ok: escaped"
