#!/usr/bin/env bash
# mailrestore-login (the lean hook binary) answers exactly like
# `mailrestore login`: same lines, same exit codes, and it loads only libc
# and carries the login code alone.
set -euo pipefail
MR=${MR_BIN:?}
ML=$(dirname "$MR")/mailrestore-login
[ -x "$ML" ] || { echo "FAIL: $ML was not built"; exit 1; }
dir=$(mktemp -d /tmp/mr-login-bin.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# (a sanitizer build brings its runtime and that runtime's libraries along;
# ldd's output is taken whole first: with pipefail, grep -q ending the pipe
# early made ldd die of SIGPIPE now and then, and the check misfire)
deps=$(ldd "$ML")
if ! grep -q -e libasan -e libubsan -e libtsan <<<"$deps"; then
  libs=$(grep -v -e linux-vdso -e 'libc\.so' -e 'ld-linux' <<<"$deps" || true)
  [ -z "$libs" ] || fail "mailrestore-login loads more than libc: $libs"
fi

# It is built from the login path alone: no view, control or deliver code.
for u in "usage: mailrestore status" "usage: mailrestore deliver" "usage: mailrestore enqueue"; do
  ! grep -qaF "$u" "$ML" || fail "mailrestore-login carries other subcommands ('$u')"
done
grep -qaF "usage: mailrestore login" "$ML" || fail "mailrestore-login has no login usage"

mkdir -p "$dir/S" "$dir/B"
for u in u1 u2 u3; do mkdir -p "$dir/S/$u/cur"; echo "m $u" > "$dir/S/$u/cur/1.M1:2,S"; done
"$MR" backup --source "$dir/S" --out "$dir/B" >/dev/null
"$MR" daemon --backups "$dir/B" --source "$dir/S" --target "$dir/T" --socket "$dir/sock" \
  --background off --jobs 1 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/sock" ] && break; sleep 0.05; done
"$MR" pause --socket "$dir/sock" >/dev/null   # keep positions still while comparing

ask() { set +e; out=$("$@" 2>&1); rc=$?; set -e; echo "$rc:$out"; }
for u in u1 u2 u1 nobody-here '../x' ''; do
  a=$(ask "$MR" login --socket "$dir/sock" "$u")
  b=$(ask "$ML" --socket "$dir/sock" "$u")
  [ "$a" = "$b" ] || fail "login '$u': mailrestore says [$a], mailrestore-login says [$b]"
done
a=$(ask "$ML" --socket "$dir/sock" u2)
case "$a" in 75:*"1 request in the queue before you"*) ;; *) fail "u2: [$a]";; esac
a=$(ask "$ML" --socket "$dir/nosock" u1)
case "$a" in 69:*unreachable*) ;; *) fail "no daemon: [$a]";; esac
a=$(ask "$ML" --socket "$dir/sock" --json u1)
echo "${a#*:}" | python3 -c 'import json,sys; o=json.load(sys.stdin); assert o["user"]=="u1" and o["position"]==0 and "eta_seconds" in o, o' \
  || fail "--json"
echo "mailrestore-login: all checks passed"
