#!/usr/bin/env bash
# Many users restored at once: every user's newest backup is found.
# Regression for a race where all workers listed the backups folder through
# one shared descriptor (its file position moved under each other's feet),
# so some users' dated backups looked absent: users lost from the source
# ended "no backup either", users still on the source were restored from
# the source alone or from an older plain backup.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
# on tmpfs where there is one: thousands of users' fsyncs on a disk take
# a minute, and what is checked here is the finding, not the writing
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
dir=$(mktemp -d "$base/mr-restore-many.XXXXXX")
trap 'rm -rf "$dir"' EXIT
S=$dir/S B=$dir/B T=$dir/T
N=${MR_MANY_USERS:-1000}
mkdir -p "$S" "$B/2026-11-21"
fail() { echo "FAIL: $*"; exit 1; }
user() { printf -v u 'user%05d' "$1"; }

# an older plain backup of every user (B/<user>.tar.lz4, what `backup`
# writes by default) holding "from-plain", then the newest dated one
# holding "from-dated": the dated one must win for every user
for ((i = 1; i <= N; i++)); do
  user "$i"; mkdir "$S/$u"; : > "$S/$u/from-plain"
done
"$MR" backup --source "$S" --out "$B" >/dev/null
for ((i = 1; i <= N; i++)); do
  user "$i"; rm "$S/$u/from-plain"; : > "$S/$u/from-dated"
done
"$MR" backup --source "$S" --out "$B/2026-11-21" >/dev/null
mkdir "$B/2026-11-19" "$B/2026-11-20"   # older dated folders, empty
# half the users lost their source folder (the backup is all there is),
# the others kept it as it was
for ((i = 1; i <= N; i += 2)); do
  user "$i"; rm "$S/$u/from-dated"; rmdir "$S/$u"
done
mkdir "$S/zz-source-only"   # a user the backups never saw

set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --jobs 8 --all \
  > "$dir/out" 2> "$dir/err"
rc=$?
set -e
[ "$rc" = 1 ] || { tail -5 "$dir/err"; fail "restore-user exited $rc, want 1 (lost users in attention)"; }
if grep -q 'no backup either' "$dir/err"; then
  grep 'no backup either' "$dir/err" | head -3
  fail "$(grep -c 'no backup either' "$dir/err") users' backups were not found"
fi
n=$(grep -c '; backup 1 files' "$dir/out" || true)
if [ "$n" != "$N" ]; then
  grep -v '; backup 1 files' "$dir/out" | grep -v '^zz-source-only' | head -5
  fail "$((N - n)) of $N users restored without their backup"
fi
lost=$(grep -c 'missing from the source' "$dir/err" || true)
[ "$lost" = $(( (N + 1) / 2 )) ] || fail "$lost users reported missing, want $(( (N + 1) / 2 ))"
for ((i = 1; i <= N; i++)); do
  user "$i"
  if (( i % 2 )); then w=$T/.mailrestore/work/$u; else w=$T/$u; fi
  [ -e "$w/from-dated" ] || fail "$u: not restored from its newest backup ($w)"
  [ ! -e "$w/from-plain" ] && [ ! -e "$T/.mailrestore/attic/$u/from-plain" ] \
    || fail "$u: restored from its older plain backup"
done
[ -d "$T/zz-source-only" ] || fail "the user only on the source is not active"
echo "ok: $N users, every newest backup found"
