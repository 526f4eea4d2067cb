#!/usr/bin/env bash
# restore-user end to end: real archives from bsdtar and from our own
# `backup`, a day of changes on the source, exit codes as documented,
# every active user equal to the source (checked by rsync itself and by
# our verify), damaged users in attention with their backup kept.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
command -v rsync >/dev/null || { echo "SKIP: rsync is not installed"; exit 77; }
command -v bsdtar >/dev/null || { echo "SKIP: bsdtar is not installed"; exit 77; }
dir=$(mktemp -d /tmp/mr-restore-user.XXXXXX)
trap 'rm -rf "$dir"' EXIT
S=$dir/S B=$dir/B T=$dir/T
mkdir -p "$S" "$B"

fail() { echo "FAIL: $*"; exit 1; }
same() { # trees equal in content, modes, times, links (rsync's own view)
  local out; out=$(rsync -anc --delete --itemize-changes "$1/" "$2/" 2>&1)
  [ -z "$out" ] || { echo "$out" | head; fail "$1 and $2 differ"; }
}
mkuser() {
  local u=$1 n=${2:-30}
  mkdir -p "$S/$u"/{cur,new,tmp} "$S/$u/.Trash"/{cur,new,tmp}
  for i in $(seq 1 "$n"); do
    head -c $((200 + i * 97)) /dev/urandom > "$S/$u/cur/170000$i.M${i}P9.mx,S=$i:2,S"
  done
  echo "hello" > "$S/$u/new/1700100000.M1P9.mx"
  head -c 300000 /dev/urandom > "$S/$u/dovecot.index.cache"
  ln -s cur "$S/$u/cur-link"
  chmod 0700 "$S/$u"
}

# users: plain, dotted/@/+ names, one only on the source, one lost on the source
for u in alice bob.smith carol@example.org dan+x; do mkuser "$u"; done
# an older plain backup with a file the dated one lacks: it must not be used
( cd "$S/alice" && echo plain > from-plain && bsdtar -cf "$B/alice.tar" . && rm from-plain )
mkdir -p "$B/2026-11-20" "$B/2026-11-21"
( cd "$S/alice" && bsdtar --zstd -cf "$B/2026-11-21/alice.tar.zst" . )
"$MR" backup --source "$S" --out "$B/2026-11-21" bob.smith carol@example.org dan+x >/dev/null
mkuser erin; "$MR" backup --source "$S" --out "$B" erin >/dev/null; rm -rf "$S/erin"  # lost
mkuser only-on-source

# a day of changes on the source
mv "$S/alice/cur/1700001.M1P9.mx,S=1:2,S" "$S/alice/cur/1700001.M1P9.mx,S=1:2,RS"
mv "$S/bob.smith/new/1700100000.M1P9.mx" "$S/bob.smith/cur/1700100000.M1P9.mx:2,S"
mv "$S/carol@example.org/cur/1700002.M2P9.mx,S=2:2,S" "$S/carol@example.org/.Trash/cur/"
rm "$S/dan+x/cur/1700003.M3P9.mx,S=3:2,S"
printf 'XXXX' | dd of="$S/alice/dovecot.index.cache" bs=1 seek=150000 conv=notrunc 2>/dev/null
head -c 5000 /dev/urandom > "$S/alice/new/1700200000.M5P9.mx"

# usage and bad names
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" '../x' 2>"$dir/err"; rc=$?
set -e
[ "$rc" = 65 ] || fail "invalid name: exit $rc, want 65"
grep -q "invalid user name" "$dir/err" || fail "no 'invalid user name' on stderr"
[ ! -e "$dir/x" ] && [ ! -e "$T/../x" ] || fail "an invalid name became a path"
set +e; "$MR" restore-user --source "$S" >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 64 ] || fail "usage: exit $rc, want 64"
"$MR" restore-user --help | grep -q "restore-user" || fail "--help"

# healthy users: exit 0, equal to the source
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --jobs 2 \
  alice bob.smith carol@example.org dan+x only-on-source > "$dir/out"
for u in alice bob.smith carol@example.org dan+x only-on-source; do
  [ -d "$T/$u" ] || fail "$u not active"
  same "$S/$u" "$T/$u"
done
grep -q "^alice: active" "$dir/out" || fail "no per-user summary line"
"$MR" verify --source "$S" --target "$T" alice bob.smith carol@example.org dan+x only-on-source \
  || fail "verify disagrees"
# the deleted message went to the attic, not away
[ -f "$T/.mailrestore/attic/dan+x/cur/1700003.M3P9.mx,S=3:2,S" ] || fail "attic"
# the newest dated backup was used (zstd one): alice's restore counts files from it
grep -q '^alice: active; backup [1-9]' "$dir/out" || fail "alice's backup not used"
[ ! -e "$T/.mailrestore/attic/alice/from-plain" ] || fail "the older plain backup was used"

# a name given twice is restored once (regression: two runs raced on one
# work copy and the command exited 74)
rm -rf "$T/dan+x"
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --jobs 2 dan+x dan+x dan+x > "$dir/out" \
  || fail "repeated name: exit $?"
[ "$(grep -c '^dan+x: active' "$dir/out")" = 1 ] || fail "repeated name restored more than once"
same "$S/dan+x" "$T/dan+x"

# the lost user: exit 1, attention with a reason, backup kept in the work copy
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" erin > "$dir/out" 2> "$dir/err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "lost user: exit $rc, want 1"
grep -q "erin: attention" "$dir/err" || fail "no attention reason on stderr"
[ ! -e "$T/erin" ] || fail "lost user became active"
[ -f "$T/.mailrestore/work/erin/dovecot.index.cache" ] || fail "backup not kept in the work copy"

# A damaged lz4 backup whose damage shows only in the frame's content
# checksum, after the tar's end: stored (incompressible) 64 KiB blocks, one
# byte flipped inside a file's data. The source has the right bytes, so the
# user becomes active, and with the source's content, not the backup's
# (regression: the sync trusted size and time and kept the damaged copy).
mkdir -p "$S/fay/cur"
head -c 300000 /dev/urandom > "$S/fay/cur/1700000001.M1P9.mx,S=300000:2,S"
"$MR" backup --source "$S" --out "$B" fay >/dev/null
python3 - "$B/fay.tar.lz4" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
d[150000] ^= 0x20      # inside the second 64 KiB block's data
open(p, "wb").write(bytes(d))
PY
"$MR" restore-user --backups "$B" --source "$S" --target "$T" fay > "$dir/out" 2> "$dir/err" \
  || { cat "$dir/err"; fail "damaged backup, healthy source: exit $?"; }
grep -q "^fay: active" "$dir/out" || fail "fay not active"
cmp -s "$S/fay/cur/1700000001.M1P9.mx,S=300000:2,S" "$T/fay/cur/1700000001.M1P9.mx,S=300000:2,S" \
  || fail "a damaged backup's bytes were activated"
grep -qi "checksum" "$dir/err" "$dir/out" || fail "the damaged backup was not reported"

# A damaged newer backup extracted over a work copy that a clean older one
# made (the user held in attention: the source folder is away), then
# removed. The newer backup's new message keeps its damaged bytes behind
# the right size and time, and the older backup extracted again does not
# hold it. The sync must still compare contents (a reviewer's find: the user
# went active with the wrong bytes).
mkdir -p "$S/gil/cur" "$B/2026-11-22" "$B/2026-11-23" "$dir/away"
head -c 1000 /dev/urandom > "$S/gil/cur/1700000000.M0P9.mx,S=1000:2,S"
"$MR" backup --source "$S" --out "$B/2026-11-22" gil >/dev/null
mv "$S/gil" "$dir/away/gil"
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" gil >/dev/null 2>&1; rc=$?
[ "$rc" = 1 ] || fail "gil, source away: exit $rc, want 1"
head -c 300000 /dev/urandom > "$dir/away/gil/cur/1700000001.M1P9.mx,S=300000:2,S"
"$MR" backup --source "$dir/away" --out "$B/2026-11-23" gil >/dev/null
python3 - "$B/2026-11-23/gil.tar.lz4" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
d[150000] ^= 0x20      # inside the new message's data
open(p, "wb").write(bytes(d))
PY
"$MR" restore-user --backups "$B" --source "$S" --target "$T" gil >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 1 ] || fail "gil, damaged backup, source away: exit $rc, want 1"
[ -e "$T/.mailrestore/damaged/gil" ] || fail "the damaged work copy was not recorded"
rm "$B/2026-11-23/gil.tar.lz4"
mv "$dir/away/gil" "$S/gil"
"$MR" restore-user --backups "$B" --source "$S" --target "$T" gil > "$dir/out" 2>&1 \
  || { cat "$dir/out"; fail "gil, back: exit $?"; }
cmp -s "$S/gil/cur/1700000001.M1P9.mx,S=300000:2,S" "$T/gil/cur/1700000001.M1P9.mx,S=300000:2,S" \
  || fail "a damaged backup's bytes were activated after a clean backup was extracted over them"
[ ! -e "$T/.mailrestore/damaged/gil" ] || fail "the damage record outlived the work copy"

# --json: one object per user with the counters
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --json alice > "$dir/json"
python3 -c 'import json,sys; o=json.loads(open(sys.argv[1]).readline()); assert o["user"]=="alice" and o["state"]=="active", o' "$dir/json" \
  || fail "--json"
echo "restore-user: all checks passed"
