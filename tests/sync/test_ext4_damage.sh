#!/bin/bash
# test_ext4_damage.sh: a real damaged partition. Builds a small ext4 image
# holding one user, keeps a "backup" of an older state (cp -a), damages one
# file's inode (debugfs clri) and one folder's block (dd), attaches the
# image read-only and runs `mailrestore sync` from it. Checks: exit 1, the
# damaged file and folder keep the backup's content in DST and are named
# on stderr, healthy files equal the source, and the image is unchanged.
# Skips (exit 77) where the machine allows no loop mounts.
set -u
skip() { echo "skipped: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

BIN=${MR_BIN:-}
[ -n "$BIN" ] && [ -x "$BIN" ] || skip "MR_BIN does not name the built mailrestore"
[ "$(id -u)" = 0 ] || skip "needs root for loop devices and mount"
for tool in mkfs.ext4 debugfs losetup mount umount dd sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed"
done

T=$(mktemp -d)
DEV=
MNT=$T/mnt
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	[ -n "$DEV" ] && losetup -d "$DEV" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

# The user's older state, then the backup of it.
STAGE=$T/stage
U=$STAGE/alice
mkdir -p "$U/cur" "$U/new" "$U/tmp" "$U/.Trash/cur" "$U/.Sent/cur"
for i in 1 2 3 4 5; do
	head -c $((i * 3000)) /dev/urandom > "$U/cur/170000000$i.M$i.host:2,S"
done
echo "victim, as in the backup" > "$U/cur/victim:2,S"
echo "trash one" > "$U/.Trash/cur/t1:2,S"
echo "trash two" > "$U/.Trash/cur/t2:2,S"
echo "sent" > "$U/.Sent/cur/s1:2,S"
head -c 200000 /dev/urandom > "$U/dovecot.index"
W=$T/work
mkdir -p "$W"
cp -a "$U" "$W/alice" || fail "cp -a backup"

# A day on the server: what the sync should bring over.
mv "$U/cur/1700000001.M1.host:2,S" "$U/cur/1700000001.M1.host:2,RS"
echo "new mail" > "$U/new/1700000100.M9.host"
rm "$U/cur/1700000002.M2.host:2,S"
head -c 5000 /dev/urandom >> "$U/dovecot.index"
echo "victim, changed on the server since" > "$U/cur/victim:2,S"
echo "trash three" > "$U/.Trash/cur/t3:2,S"
rm "$U/.Trash/cur/t1:2,S"

IMG=$T/disk.img
truncate -s 64M "$IMG"
mkfs.ext4 -q -F -b 4096 -d "$STAGE" "$IMG" >/dev/null 2>&1 ||
	skip "mkfs.ext4 -d (populating an image) is not supported here"

ino=$(debugfs -R "stat /alice/cur/victim:2,S" "$IMG" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
[ -n "$ino" ] || fail "debugfs found no inode for the victim"
blk=$(debugfs -R "blocks /alice/.Trash/cur" "$IMG" 2>/dev/null | awk '{print $1}')
[ -n "$blk" ] || fail "debugfs found no block for .Trash/cur"
debugfs -w -R "clri <$ino>" "$IMG" >/dev/null 2>&1 || fail "debugfs clri"
dd if=/dev/zero of="$IMG" bs=4096 seek="$blk" count=1 conv=notrunc status=none || fail "dd"
before=$(sha256sum "$IMG" | cut -d' ' -f1)

# Read-only twice over: a read-only loop device, mounted read-only.
DEV=$(losetup -r -f --show "$IMG" 2>/dev/null) || { DEV=; skip "losetup -r failed (no loop devices?)"; }
mkdir -p "$MNT"
mount -t ext4 -o ro,noload "$DEV" "$MNT" 2>/dev/null || mount -t ext4 -o ro "$DEV" "$MNT" 2>/dev/null ||
	skip "mounting a loop device is not allowed here"
if ls "$MNT/alice/.Trash/cur" >/dev/null 2>&1; then
	skip "the kernel still lists the zeroed folder block; the damage did not take"
fi

"$BIN" sync "$MNT/alice" "$W/alice" >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out"
cat "$T/err"
[ "$rc" = 1 ] || fail "sync exited $rc, wanted 1"
grep -q "cur/victim:2,S" "$T/err" || fail "the damaged file is not named on stderr"
grep -q "\.Trash/cur" "$T/err" || fail "the damaged folder is not named on stderr"

# Damage is not absence: the backup's versions stay.
grep -qx "victim, as in the backup" "$W/alice/cur/victim:2,S" || fail "victim lost its backup content"
[ -f "$W/alice/.Trash/cur/t1:2,S" ] || fail "a file under the unlisted folder was pruned"
grep -qx "trash two" "$W/alice/.Trash/cur/t2:2,S" || fail "t2 changed"
[ ! -e "$W/alice/.Trash/cur/t3:2,S" ] || fail "t3 cannot have come from an unlistable folder"
[ -z "$(ls -A "$W/.mailrestore-attic/.Trash" 2>/dev/null)" ] || fail "attic took from .Trash"

# Healthy entries equal the source.
for f in "cur/1700000001.M1.host:2,RS" "new/1700000100.M9.host" "dovecot.index" \
	"cur/1700000003.M3.host:2,S" ".Sent/cur/s1:2,S"; do
	cmp -s "$MNT/alice/$f" "$W/alice/$f" || fail "$f differs from the source"
	[ "$(stat -c '%a %.9Y' "$MNT/alice/$f")" = "$(stat -c '%a %.9Y' "$W/alice/$f")" ] ||
		fail "$f: mode or time differs"
done
[ ! -e "$W/alice/cur/1700000002.M2.host:2,S" ] || fail "a removed message is still there"
[ -f "$W/.mailrestore-attic/cur/1700000002.M2.host:2,S" ] || fail "the removed message is not in the attic"

# verify names only the damage.
"$BIN" verify --source "$MNT" --target "$W" alice >"$T/vout" 2>&1
vrc=$?
cat "$T/vout"
[ "$vrc" = 1 ] || fail "verify exited $vrc, wanted 1"
if grep -v -e "^alice: cur/victim:2,S: " -e "^alice: \.Trash/cur: " "$T/vout" | grep -q .; then
	fail "verify found differences beyond the damage"
fi

umount "$MNT" || fail "umount"
losetup -d "$DEV" && DEV=
after=$(sha256sum "$IMG" | cut -d' ' -f1)
[ "$before" = "$after" ] || fail "the image changed"
echo "ok"
