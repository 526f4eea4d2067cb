#!/usr/bin/env bash
# source_reads.sh: how much of the damaged disk a restore reads. The source
# partition S lives on its own loop-mounted ext4 image (mounted read-only);
# the page cache is dropped before each variant and the sectors read are
# taken from /sys/block/loopN/stat, so what is counted is what the disk
# itself was asked for (file data, directories, inodes: all of it).
#
#   bench/source_reads.sh [BUILD_DIR]     (root: loop devices, drop_caches)
#   USERS=40 MESSAGES=300 SEED=1 JOBS=2
#
# Variants, each onto a fresh spare folder on /dev/shm:
#   stock   per user: bsdtar -xpf B/u.tar.lz4 -C W/u && rsync -a --delete S/u/ W/u/
#   ours    mailrestore restore-user --all --jobs JOBS
# Also printed, as what any reader must read at the least:
#   changed     the bytes of new or changed data as `genpart day` reports
#               them (renames count as nothing: they need no data; only the
#               bytes rewritten or appended inside a file count)
#   files       the whole size of every file that is new or whose content
#               changed (a reader cannot find the changed blocks of a file
#               without reading all of it), from a walk before and after
#               the day; Maildir messages and other files apart
#   metadata    what the device reads to list every folder and stat every
#               file, cold (`find -printf` of size and time): directories
#               and inodes, read by any restore that compares
# and our own count (source_bytes_read summed over users, from --json).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
USERS=${USERS:-40} MESSAGES=${MESSAGES:-300} SEED=${SEED:-1} JOBS=${JOBS:-2}
MR=$BUILD/mailrestore GENPART=$BUILD/bench/genpart
[ "$(id -u)" = 0 ] || { echo "needs root (loop devices, drop_caches)"; exit 77; }
for t in bsdtar rsync mkfs.ext4 losetup; do command -v $t >/dev/null || { echo "needs $t"; exit 77; }; done
work=$(mktemp -d /dev/shm/mr-reads.XXXXXX)
mnt=$work/mnt loop=
cleanup() { umount "$mnt" 2>/dev/null || true; [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
opts=(--users "$USERS" --messages "$MESSAGES" --seed "$SEED")
"$GENPART" "${opts[@]}" generate "$work/S" >/dev/null
"$MR" backup --source "$work/S" --out "$work/B" >/dev/null
snap() { # DIR OUT: path size sha1 of every file
  python3 - "$1" "$2" <<'PY'
import hashlib, json, os, sys
root, out = sys.argv[1], sys.argv[2]
m = {}
for d, dirs, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        with open(p, "rb") as fh:
            m[os.path.relpath(p, root)] = [os.path.getsize(p), hashlib.sha1(fh.read()).hexdigest()]
json.dump(m, open(out, "w"))
PY
}
snap "$work/S" "$work/before.json"
"$GENPART" "${opts[@]}" day "$work/S" > "$work/day"
snap "$work/S" "$work/after.json"
read -r files_msg files_other < <(python3 - "$work/before.json" "$work/after.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
seen = {v[1] for v in a.values()}   # content seen before (a renamed message is not new data)
msg = other = 0
for p, (size, h) in b.items():
    if p in a and a[p][1] == h:
        continue
    is_msg = "/cur/" in "/" + p or "/new/" in "/" + p
    if is_msg and h in seen:
        continue
    if is_msg:
        msg += size
    else:
        other += size
print(msg, other)
PY
)
changed=$(awk -F= '/^new_bytes=|^changed_bytes=/ {s += $2} END {print s}' "$work/day")
sbytes=$(du -sb "$work/S" | cut -f1)
img=$work/s.img
truncate -s $(( (sbytes * 2 / 1048576 + 64) * 1048576 )) "$img"
mkfs.ext4 -q -F "$img"
mkdir -p "$mnt"
loop=$(losetup -f --show "$img")
mount "$loop" "$mnt"
cp -a "$work/S/." "$mnt/"
umount "$mnt"
mount -o ro,noatime "$loop" "$mnt"
dev=$(basename "$loop")
sectors() { awk '{print $3}' "/sys/block/$dev/stat"; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
users=$(ls "$mnt" | grep -v lost+found)

cold; s0=$(sectors)
find "$mnt" -printf '%s %T@\n' >/dev/null
meta=$(( ($(sectors) - s0) * 512 ))

cold; s0=$(sectors)
mkdir "$work/W"
for u in $users; do
  mkdir -p "$work/W/$u"
  [ -f "$work/B/$u.tar.lz4" ] && bsdtar -xpf "$work/B/$u.tar.lz4" -C "$work/W/$u"
  rsync -a --delete "$mnt/$u/" "$work/W/$u/"
done
stock=$(( ($(sectors) - s0) * 512 ))
rm -rf "$work/W"

cold; s0=$(sectors)
set +e
"$MR" restore-user --backups "$work/B" --source "$mnt" --target "$work/T" --jobs "$JOBS" --all --json \
  > "$work/ours.json"
set -e
ours=$(( ($(sectors) - s0) * 512 ))
counted=$(python3 -c 'import json,sys; print(sum(json.loads(l)["source_bytes_read"] for l in open(sys.argv[1])))' "$work/ours.json")
"$MR" verify --source "$mnt" --target "$work/T" $users >/dev/null || echo "WARNING: verify found differences"

echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, commit $(git -C "$(dirname "$0")" rev-parse --short HEAD)"
echo "# $USERS users x ~$MESSAGES messages (seed $SEED), source $(( sbytes / 1048576 )) MiB"
printf 'new or changed bytes (genpart day)   %12d\n' "$changed"
least=$(( files_msg + files_other + meta ))
printf 'new or changed files, whole          %12d  (messages %d, other files %d)\n' \
  "$(( files_msg + files_other ))" "$files_msg" "$files_other"
printf 'metadata (cold find of size and time)%12d\n' "$meta"
printf 'least: changed files + metadata      %12d\n' "$least"
printf 'bsdtar+rsync: read from the device   %12d  (%.2fx changed, %.2fx least)\n' "$stock" \
  "$(python3 -c "print($stock/$changed)")" "$(python3 -c "print($stock/$least)")"
printf 'ours: read from the device           %12d  (%.2fx changed, %.2fx least, %.2fx stock)\n' "$ours" \
  "$(python3 -c "print($ours/$changed)")" "$(python3 -c "print($ours/$least)")" "$(python3 -c "print($ours/$stock)")"
printf 'ours: file data read (our count)     %12d\n' "$counted"
