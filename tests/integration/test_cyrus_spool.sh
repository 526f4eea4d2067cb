#!/usr/bin/env bash
# A Cyrus IMAP spool end to end (no Cyrus server needed: the generator
# writes the spool, cyrus.index included): the store is found by itself,
# users are found in the hashed layout (a '.' of a name is '^' on disk),
# a day of Cyrus changes (appends, delayed expunges, flag changes) is
# synced with every message file read at most once, T gets the spool's
# layout, --on-active gets the user's folder, `login --target` answers
# from T, the seen and subscription files are restored into the live
# config folder (a newer one there is kept), and the guard: a user whose
# index still lists messages gone from S, or whose cyrus.index is
# truncated or of an unknown version, goes to attention with the folder or
# the file in the reason, while a user who expunged half the mail goes
# active. The real-server checks (Cyrus 3.6 serving T) are in
# test_client_cyrus.sh.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
setup_dir cyrus
GENPART=${MR_BUILD:?MR_BUILD must name the build folder}/bench/genpart
[ -x "$GENPART" ] || fail "no $GENPART"

"$GENPART" --cyrus --users 6 --messages 40 --folders 2 --prefix u generate "$S" >/dev/null
# a name with a dot (unixhierarchysep): user/j^smith on disk
"$GENPART" --cyrus --users 1 --messages 20 --folders 1 --prefix j.smith --seed 7 generate "$S" >/dev/null
[ -d "$S/j/user/j^smith0" ] || fail "generator: no j/user/j^smith0"
[ -f "$S/u/user/u0/cyrus.index" ] || fail "generator: no u/user/u0/cyrus.index"
"$MR" backup --source "$S" --out "$B" >/dev/null
[ -f "$B/j.smith0.tar.lz4" ] && [ -f "$B/u5.tar.lz4" ] || fail "backup: one archive per Cyrus user"
# the seen and subscription files of the damaged server's config folder
C=$dir/conf-old L=$dir/conf-live
mkdir -p "$C/user/u" "$L/user/u"
echo "u1 seen state" > "$C/user/u/u1.seen"
echo "INBOX.Sent" > "$C/user/u/u1.sub"
echo "u2 seen, old" > "$C/user/u/u2.seen"; touch -d '2020-01-01' "$C/user/u/u2.seen"
echo "u2 seen, live and newer" > "$L/user/u/u2.seen"

"$GENPART" --cyrus --users 6 --messages 40 --folders 2 --prefix u day "$S" >/dev/null

# damage: u3's INBOX lost most files its index still lists; u4's Trash
# index is cut short; u5's is of a version Cyrus never wrote
ls "$S/u/user/u3" | grep -E '^[0-9]+\.$' | head -n -2 | while read -r f; do rm "$S/u/user/u3/$f"; done
truncate -s 200 "$S/u/user/u4/Trash/cyrus.index"
printf '\0\0\0\1\0\0\0\0\0\0\0\x14' | dd of="$S/u/user/u5/cyrus.index" conv=notrunc 2>/dev/null
# u0 expunged half its INBOX the Cyrus way: records flagged, files gone
python3 - "$S/u/user/u0/cyrus.index" <<'EOF'
import struct, sys, zlib, os
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
n = struct.unpack('>I', b[20:24])[0]
for i in range(0, n, 2):
    r = 160 + i * 112
    uid, = struct.unpack('>I', b[r:r+4])
    fl, = struct.unpack('>I', b[r+32:r+36])
    if fl & 0x80000000:
        continue
    b[r+32:r+36] = struct.pack('>I', fl | 0x80000000)
    b[r+108:r+112] = struct.pack('>I', zlib.crc32(bytes(b[r:r+108])))
    f = os.path.join(os.path.dirname(p), '%d.' % uid)
    if os.path.exists(f):
        os.unlink(f)
b[156:160] = struct.pack('>I', zlib.crc32(bytes(b[0:156])))
open(p, 'wb').write(b)
EOF

# --cyrus-* options need each other and a Cyrus store
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --cyrus-config-dir "$C" u1 2>/dev/null; rc1=$?
"$MR" restore-user --backups "$B" --source "$S" --target "$T" --format mbox u1 2>/dev/null; rc2=$?
set -e
[ "$rc1" = 64 ] && [ "$rc2" = 64 ] || fail "usage errors: exit $rc1 / $rc2, want 64"
"$MR" restore-user --help | grep -q -- "--format maildir|cyrus" || fail "restore-user --help: --format"
"$MR" daemon --help | grep -q -- "--cyrus-config-dir DIR" || fail "daemon --help: --cyrus-config-dir"

cat > "$dir/on-active" <<EOF
#!/bin/sh
echo "\$1 \$2" >> "$dir/activated"
EOF
chmod +x "$dir/on-active"
start_daemon --jobs 2 --cyrus-config-dir "$C" --cyrus-target-config-dir "$L" \
  --on-active "$dir/on-active"
for u in u0 u1 u2 j.smith0; do wait_state "$u" active; done
for u in u3 u4 u5; do wait_state "$u" attention; done

for u in u0 u1 u2 j.smith0; do
  "$MR" verify --source "$S" --target "$T" "$u" >/dev/null || fail "$u differs from the source"
done
[ -d "$T/j/user/j^smith0" ] && [ -d "$T/u/user/u1/Sent" ] || fail "T does not have the spool's layout"
[ "$(cat "$T/.mailrestore/store")" = "cyrus simple" ] || fail "store: $(cat "$T/.mailrestore/store")"
grep -qx "u1 $T/u/user/u1" "$dir/activated" || fail "--on-active did not get T/u/user/u1: $(cat "$dir/activated")"
grep -qx "j.smith0 $T/j/user/j^smith0" "$dir/activated" || fail "--on-active: j.smith0"
# u0's expunged half went to the attic, nothing of it stayed
n=$(find "$T/.mailrestore/attic/u0" -name '*.' | wc -l)
[ "$n" -gt 5 ] || fail "u0: only $n expunged messages in the attic"

reason() { "$MR" show --socket "$SOCK" --json "$1" | json 'd["reason"]'; }
reason u3 | grep -q "INBOX: [0-9]* messages the mailbox index still lists are missing" ||
  fail "u3: $(reason u3)"
reason u4 | grep -q "Trash/cyrus.index: truncated" || fail "u4: $(reason u4)"
reason u5 | grep -q "cyrus.index: minor version 20 is not one that Cyrus 2.4 to 3.12 writes" ||
  fail "u5: $(reason u5)"
[ ! -e "$T/u/user/u3" ] || fail "u3 went active"

# the config files: u1's restored with the user, u2's newer live one kept
cmp -s "$C/user/u/u1.seen" "$L/user/u/u1.seen" && cmp -s "$C/user/u/u1.sub" "$L/user/u/u1.sub" ||
  fail "u1's seen and sub files were not restored"
[ "$(cat "$L/user/u/u2.seen")" = "u2 seen, live and newer" ] || fail "u2's live seen file was overwritten"

# login from the disk, no daemon
stop_daemon
"$MR" login --target "$T" u1 >/dev/null || fail "login --target: u1 is active"
set +e; "$MR" login --target "$T" u3 >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 75 ] || fail "login --target u3: exit $rc, want 75"

# a second day: message files already there are never read again
"$GENPART" --cyrus --users 6 --messages 40 --folders 2 --prefix u day "$S" >/dev/null
out=$("$MR" restore-user --backups "$B" --source "$S" --target "$dir/T2" --json u1)
read1=$(echo "$out" | json 'd["source_bytes_read"]')
"$MR" sync --json --attic "$dir/attic2" "$S/u/user/u1" "$T/u/user/u1" > "$dir/sync.json" ||
  fail "sync of u1's Cyrus folder: $(cat "$dir/sync.json")"
read2=$(json 'd["source_bytes_read"]' < "$dir/sync.json")
copied=$(json 'd["copied_bytes"]' < "$dir/sync.json")
[ "$read2" -le $((copied + 65536)) ] || fail "the second sync read $read2 bytes for $copied copied"
[ "$read1" -gt 0 ] || fail "restore-user read nothing"
"$MR" verify --source "$S" --target "$T" u1 >/dev/null || fail "u1 differs after the second sync"
# S and T may be a spool's user/ folder (or <h>/user/) themselves
mkdir -p "$dir/T5/u/user"
"$MR" restore-user --backups "$B" --source "$S/u/user" --target "$dir/T5/u/user" --quiet u1 u2 ||
  fail "restore-user from the user/ folder S/u/user"
[ -f "$dir/T5/u/user/u1/cyrus.index" ] || fail "T5/u/user/u1 not made"
[ "$(cat "$dir/T5/u/user/.mailrestore/store")" = "cyrus flat" ] || fail "T5: not the flat layout"
"$MR" verify --source "$S/u/user" --target "$dir/T5/u/user" u1 u2 >/dev/null || fail "T5 differs"
"$MR" login --target "$dir/T5/u/user" u1 >/dev/null || fail "login --target T5: u1 is active"

# a mailbox Cyrus made on T before the restore is not merged file by file
mkdir -p "$dir/T3/u/user/u1"
set +e
"$MR" restore-user --backups "$B" --source "$S" --target "$dir/T3" u1 2>"$dir/t3.err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "restore-user over a Cyrus-made T3/u/user/u1: exit $rc, want 1"
grep -q "T/u/user/u1 exists and mailrestore did not make it" "$dir/t3.err" ||
  fail "restore-user over T3/u/user/u1: $(cat "$dir/t3.err")"
# deliver and dial tone are Maildir's
set +e
echo "Subject: x" | "$MR" deliver --target "$T" u1 >/dev/null 2>&1; rc=$?
"$MR" daemon --backups "$B" --source "$S" --target "$dir/T4" --socket "$dir/run/t4.sock" \
  --dial-tone >/dev/null 2>&1; rc2=$?
set -e
[ "$rc" = 75 ] || fail "deliver into a Cyrus store: exit $rc, want 75"
[ "$rc2" = 64 ] || fail "daemon --dial-tone on a Cyrus store: exit $rc2, want 64"
echo "PASS"
