#!/usr/bin/env bash
# test_backup_cli.sh: "mailrestore backup" end to end: every compression,
# --dated, explicit users, invalid names (65), usage (64), unreadable
# source folders (1), and archives that stock bsdtar lists and extracts to
# the same tree.
set -u
MR_BIN=${MR_BIN:-}
[ -x "$MR_BIN" ] || { echo "MR_BIN not built; skipping"; exit 77; }
command -v bsdtar >/dev/null || { echo "bsdtar missing; skipping"; exit 77; }

tmp=$(mktemp -d)
trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

S=$tmp/S B=$tmp/B
mkdir -p "$S/bob/cur" "$S/bob/new" "$S/j.doe@example.org/cur" "$S/first+tag" "$S/.hidden" "$S/bad name"
printf 'hello\n' > "$S/bob/cur/1.M1.host:2,S"
head -c 100000 /dev/urandom > "$S/bob/new/2.M2.host"
ln -s cur/1.M1.host:2,S "$S/bob/link"
ln "$S/bob/new/2.M2.host" "$S/bob/hard"
touch -d '2020-01-01 00:00:00.123456789' "$S/bob/cur/1.M1.host:2,S"
printf 'x' > "$S/j.doe@example.org/cur/m"
printf 'not a user' > "$S/file.tar"

# Usage and names.
"$MR_BIN" backup --help | grep -q -- '--compress' || fail "--help"
"$MR_BIN" backup --source "$S" >/dev/null 2>&1; [ $? -eq 64 ] || fail "missing --out not 64"
"$MR_BIN" backup --source "$S" --out "$B" --compress rar >/dev/null 2>&1; [ $? -eq 64 ] || fail "bad --compress not 64"
err=$("$MR_BIN" backup --source "$S" --out "$B" ../x 2>&1 >/dev/null); rc=$?
[ $rc -eq 65 ] || fail "../x gave $rc"
[ "$err" = "mailrestore backup: invalid user name" ] || fail "message: $err"
[ ! -e "$tmp/x.tar.lz4" ] && [ ! -e "$B/../x.tar.lz4" ] || fail "../x became a path"
"$MR_BIN" backup --source "$S" --out "$B" bob 'a/b' >/dev/null 2>&1; [ $? -eq 65 ] || fail "a/b not 65"
[ ! -e "$B/bob.tar.lz4" ] || fail "wrote before validating every name"

# Every valid user folder, lz4 by default.
out=$("$MR_BIN" backup --source "$S" --out "$B") || fail "backup exit $?"
echo "$out" | grep -q "^bob files=2 bytes=100006 archive=$B/bob.tar.lz4$" || fail "line: $out"
[ "$(echo "$out" | wc -l)" -eq 3 ] || fail "expected 3 users: $out"
[ -f "$B/j.doe@example.org.tar.lz4" ] && [ -f "$B/first+tag.tar.lz4" ] || fail "users missing"
[ ! -e "$B/.hidden.tar.lz4" ] && [ ! -e "$B/bad name.tar.lz4" ] || fail "invalid names backed up"
ls -A "$B" | grep -q tmp && fail "temporary file left"
bsdtar -tvf "$B/bob.tar.lz4" | grep -q 'cur/1.M1.host:2,S' || fail "bsdtar can't list"
mkdir "$tmp/x" && bsdtar -xpf "$B/bob.tar.lz4" -C "$tmp/x" || fail "bsdtar can't extract"
cmp "$tmp/x/new/2.M2.host" "$S/bob/new/2.M2.host" || fail "content differs"
[ "$(stat -c %y "$tmp/x/cur/1.M1.host:2,S")" = "$(stat -c %y "$S/bob/cur/1.M1.host:2,S")" ] ||
	fail "nanosecond mtime lost"
[ "$(readlink "$tmp/x/link")" = "cur/1.M1.host:2,S" ] || fail "symlink"
[ "$(stat -c %i "$tmp/x/hard")" = "$(stat -c %i "$tmp/x/new/2.M2.host")" ] || fail "hard link"

# Other compressions, explicit users, --dated.
for c in zstd:tar.zst gzip:tar.gz none:tar; do
	name=${c%%:*} suf=${c#*:}
	"$MR_BIN" backup --source "$S" --out "$B" --compress "$name" bob >/dev/null || fail "$name"
	bsdtar -tf "$B/bob.$suf" | grep -q new/2.M2.host || fail "bsdtar $name"
done
file -b "$B/bob.tar.zst" | grep -qi zstandard || fail "not zstd"
today=$(date -u +%Y-%m-%d)
"$MR_BIN" backup --source "$S" --out "$B" --dated j.doe@example.org >/dev/null || fail "--dated"
[ -f "$B/$today/j.doe@example.org.tar.lz4" ] || fail "dated archive missing"

# A user folder that is missing: reported, exit 1, the others still done.
"$MR_BIN" backup --source "$S" --out "$tmp/B2" nobody bob >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "missing user gave $rc"
grep -q nobody "$tmp/err" || fail "missing user not named"
[ -f "$tmp/B2/bob.tar.lz4" ] || fail "bob not written after a failure"

# An unreadable folder (only meaningful when not root).
if [ "$(id -u)" != 0 ]; then
	chmod 000 "$S/bob/cur"
	"$MR_BIN" backup --source "$S" --out "$tmp/B3" bob >/dev/null 2>"$tmp/err"; rc=$?
	chmod 755 "$S/bob/cur"
	[ $rc -eq 1 ] || fail "unreadable gave $rc"
	grep -q cur "$tmp/err" || fail "unreadable not listed"
fi
echo "ok"
