#!/usr/bin/env bash
# source_reads.sh: how much of the damaged disk a restore reads, measured
# at the disk. The source partition S is an ext4 image on its own loop
# device, mounted read-only; before each variant the page cache is dropped
# (drop_caches, blockdev --flushbufs) and the sectors read are taken from
# /sys/block/loopN/stat (field 3): file data, directories, inodes,
# readahead, all of it. The in-process count (source_bytes_read) is
# printed beside it.
#
#   bench/source_reads.sh [--short] [BUILD_DIR]        (root: loop devices)
#
# The partition is a workload nobody tuned for (issue 20):
#   - users of mixed sizes: PART groups of "count:messages" (default
#     "40:4 20:12 8:40 2:150": many tiny users, a long tail of a few 50x
#     the median), Dovecot index files in every folder, an mbox for one
#     of the largest;
#   - what a real Dovecot leaves that the generator does not: a rotated
#     transaction log (dovecot.index.log.2) in every folder, and messages
#     copied between folders as hard links (maildir_copy_with_hardlinks);
#   - dated backups: every user in B/2025-11-19/<user>.tgz (GNU tar:
#     whole-second times), a day of changes, then the smaller half again
#     by `mailrestore backup --dated` (pax, lz4, nanoseconds), then one more
#     day of changes (the larger half is two days behind); two users lost
#     their backups, and each day adds two users that exist only on S.
# Variants, each onto a fresh target on the bench folder:
#   find     a cold `find -printf '%s %T@'` of S: the directories and
#            inodes any comparison must read
#   stock    per user: bsdtar -xpf the newest backup, rsync -a --delete S/u/
#   ours     mailrestore restore-user --all --jobs JOBS
#   traced   the same with --jobs 1 and MAILRESTORE_READS_TRACE: the sectors
#            each phase of each sync read (plan walk, rename hashes, the
#            remove guard's indexes, copies and patches), the breakdown
#   daemon   mailrestore daemon --exit-when-done --jobs JOBS with a few
#            logins while it runs
# And the least any reader that trusts the quick check must read ("floor"):
# the whole of every source file that is new or fails the quick check
# against the user's backup (a Maildir message whose name and size the
# backup has, under any folder or flags, counts as nothing), plus `find`.
#
# Environment: PART, SEED (1), JOBS (2), BACKUPS (mixed; tar: the second
# backup of the smaller half by GNU tar too, in B/2025-11-20/, so every
# user's newest backup keeps whole seconds only), BENCH_DIR (parent of the work
# folder; default /dev/shm when it exists, else /tmp), KEEP=1 keeps it.
# --short: a tiny partition, only checks that every figure comes out and
# the restore verifies (for ctest; no size or time asserts).
# Exit: 0 measured, 1 a step failed, 77 no root or no loop devices.
set -euo pipefail
short=0
if [ "${1:-}" = --short ]; then
	short=1
	shift
fi
here=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$here/../build}" && pwd)
. "$here/lib.sh"
PART=${PART:-"40:4 20:12 8:40 2:150"}
[ "$short" = 1 ] && PART="6:3 2:12"
SEED=${SEED:-1} JOBS=${JOBS:-2}
MR=$BUILD/mailrestore GP=$BUILD/bench/genpart
[ "$(id -u)" = 0 ] || { echo "source_reads.sh: skipped: needs root (loop devices, drop_caches)"; exit 77; }
for t in bsdtar rsync tar mkfs.ext4 losetup blockdev python3; do
	command -v $t >/dev/null || { echo "source_reads.sh: skipped: needs $t"; exit 77; }
done
for t in "$MR" "$GP"; do
	[ -x "$t" ] || { echo "source_reads.sh: $t not built" >&2; exit 1; }
done
base=${BENCH_DIR:-/tmp}
[ -z "${BENCH_DIR:-}" ] && [ -d /dev/shm ] && base=/dev/shm
work=$(mktemp -d "$base/mr-reads.XXXXXX")
mnt=$work/mnt loop= dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	umount "$mnt" 2>/dev/null || true
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
	[ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
if [ "$(spare_kind "$work")" != loop ]; then
	echo "source_reads.sh: skipped: this machine cannot mount an ext4 image on a loop device"
	exit 77
fi

# ---- the partition --------------------------------------------------------
S=$work/S B=$work/B
mkdir -p "$S" "$B/2025-11-19"
groups() { # CMD: runs genpart CMD over every group
	local g=0 grp n m
	for grp in $PART; do
		n=${grp%%:*} m=${grp#*:}
		# mboxes only in the largest group: 2-6 MiB each would swamp the rest
		"$GP" --users "$n" --messages "$m" --seed $((SEED + g)) --index-kib 64 \
			$([ $g = 3 ] || [ "$short" = 1 -a $g = 1 ] || echo --no-mbox) \
			--prefix "g${g}u" "$1" "$S" >/dev/null
		# genpart adds two users a day per group: a partition gains a
		# few accounts a day, not two per size class; only the first
		# group keeps its new ones.
		if [ "$1" = day ] && [ $g -gt 0 ]; then
			for k in $(seq "$n" $((n + 8))); do rm -rf "${S:?}/g${g}u$k"; done
		fi
		g=$((g + 1))
	done
}
groups generate
python3 - "$S" "$SEED" <<'PY'
# What a real Dovecot leaves: dovecot.index.log.2 (the log rotated a month
# ago) in every folder, and messages copied between folders as hard links
# under a new unique name. Folder times are kept.
import os, random, sys
S, r = sys.argv[1], random.Random(int(sys.argv[2]))
for u in sorted(os.listdir(S)):
    ud = os.path.join(S, u)
    keep = {d: os.stat(d).st_mtime_ns for d, _, _ in os.walk(ud)}
    folders = [ud] + [os.path.join(ud, f) for f in sorted(os.listdir(ud)) if f.startswith(".")]
    for f in folders:
        log = os.path.join(f, "dovecot.index.log")
        if os.path.exists(log):
            data = open(log, "rb").read()
            with open(log + ".2", "wb") as out:
                out.write((data * 64)[:max(len(data), 32768)])
            t = os.stat(log).st_mtime_ns - 30 * 86400 * 10**9
            os.utime(log + ".2", ns=(t, t))
    cur = os.path.join(ud, "cur")
    dst = [f for f in folders[1:] if os.path.isdir(os.path.join(f, "cur"))]
    if os.path.isdir(cur) and dst:
        for m in sorted(os.listdir(cur)):
            if r.random() < 0.3:
                t, rest = m.split(".", 1)
                new = "%d.%s" % (int(t) + 1, rest.replace("P", "Q", 1))
                os.link(os.path.join(cur, m), os.path.join(r.choice(dst), "cur", new))
    for d, t in keep.items():
        os.utime(d, ns=(t, t))
PY
for u in $(ls "$S"); do tar -C "$S/$u" -czf "$B/2025-11-19/$u.tgz" .; done
groups day
half=$(ls "$S" | grep -E '^g[01]u' || true)
if [ "${BACKUPS:-mixed}" = tar ]; then
	mkdir -p "$B/2025-11-20"
	for u in $half; do tar -C "$S/$u" -czf "$B/2025-11-20/$u.tgz" .; done
else
	"$MR" backup --source "$S" --out "$B" --dated $half >/dev/null
fi
groups day
for u in g0u3 g1u5; do rm -f "$B"/*/"$u".*; done
nusers=$(ls "$S" | wc -l)
sbytes=$(du -sb "$S" | cut -f1)

# ---- the image --------------------------------------------------------------
img=$work/s.img
truncate -s $(( (sbytes * 2 / 1048576 + 64) * 1048576 )) "$img"
mkfs.ext4 -q -F "$img"
mkdir -p "$mnt"
loop=$(losetup -f --show "$img")
mount "$loop" "$mnt"
cp -a "$S/." "$mnt/"
umount "$mnt"
mount -o ro,noatime "$loop" "$mnt"
dev=$(basename "$loop")
users=$(ls "$mnt" | grep -v lost+found)
sectors() { awk '{print $3}' "/sys/block/$dev/stat"; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; blockdev --flushbufs "$loop"; }
newest() { ls "$B"/*/"$1".* 2>/dev/null | sort | tail -1 || true; }
measure() { # NAME CMD...: device bytes read by CMD into $bytes_NAME
	local name=$1 s0
	shift
	cold
	s0=$(sectors)
	"$@"
	eval "bytes_$name=\$(( (\$(sectors) - s0) * 512 ))"
}

# ---- the floor: what a reader trusting the quick check must read ------------
mkdir "$work/X"
for u in $users; do
	mkdir "$work/X/$u"
	a=$(newest "$u")
	[ -n "$a" ] && bsdtar -xpf "$a" -C "$work/X/$u"
done
read -r floor_msg floor_other renamed < <(python3 - "$S" "$work/X" <<'PY'
import os, sys
S, X = sys.argv[1], sys.argv[2]
def msg(rel):
    parts = rel.split("/")
    return len(parts) >= 2 and parts[-2] in ("cur", "new")
msg_b = other_b = renamed = 0
for u in sorted(os.listdir(S)):
    keys = set()
    for d, _, fs in os.walk(os.path.join(X, u)):
        for f in fs:
            rel = os.path.relpath(os.path.join(d, f), X)
            if msg(rel):
                keys.add((f.split(":")[0], os.path.getsize(os.path.join(d, f))))
    for d, _, fs in os.walk(os.path.join(S, u)):
        for f in fs:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, S)
            st = os.lstat(p)
            try:
                b = os.lstat(os.path.join(X, rel))
                same = b.st_size == st.st_size and int(b.st_mtime) == int(st.st_mtime)
            except FileNotFoundError:
                same = False
            if same:
                continue
            if msg(rel) and (f.split(":")[0], st.st_size) in keys:
                renamed += st.st_size   # a rename: no data needed, rsync reads it
                continue
            if msg(rel):
                msg_b += st.st_size
            else:
                other_b += st.st_size
print(msg_b, other_b, renamed)
PY
)
rm -rf "$work/X"

# ---- the variants -----------------------------------------------------------
measure find find "$mnt" -printf '%s %T@\n' >/dev/null

stock() {
	local u a
	mkdir "$work/W"
	for u in $users; do
		mkdir "$work/W/$u"
		a=$(newest "$u")
		[ -n "$a" ] && bsdtar -xpf "$a" -C "$work/W/$u"
		rsync -a --delete "$mnt/$u/" "$work/W/$u/"
	done
}
measure stock stock
rm -rf "$work/W"

ours() { # JOBS TARGET [env...]
	local jobs=$1 t=$2
	shift 2
	mkdir "$t"
	env "$@" "$MR" restore-user --backups "$B" --source "$mnt" --target "$t" --jobs "$jobs" \
		--all --json >"$t.json" 2>"$t.log" || true
}
measure ours ours "$JOBS" "$work/T"
counted=$(python3 -c 'import json,sys; print(sum(json.loads(l)["source_bytes_read"] for l in open(sys.argv[1])))' "$work/T.json")
bad=$("$MR" verify --source "$mnt" --target "$work/T" $users >/dev/null 2>&1 && echo 0 || echo 1)
rm -rf "$work/T"

measure traced ours 1 "$work/T1" MAILRESTORE_READS_TRACE="/sys/block/$dev/stat"
read -r tr_plan tr_renames tr_guard tr_apply tr_data < <(awk '
	/reads trace:/ { for (i = 1; i <= NF; i++) {
		if ($i == "plan") p += $(i + 1); if ($i == "renames") r += $(i + 1)
		if ($i == "guard") g += $(i + 1); if ($i == "apply") a += $(i + 1)
		if ($i == "data") d += $(i + 1) } }
	END { printf "%d %d %d %d %d\n", p * 512, r * 512, g * 512, a * 512, d }' "$work/T1.log")
rm -rf "$work/T1"

daemon_run() {
	local sock=$work/sock i u
	mkdir "$work/TD"
	"$MR" daemon --backups "$B" --source "$mnt" --target "$work/TD" --jobs "$JOBS" \
		--exit-when-done --socket "$sock" 2>"$work/daemon.log" &
	dpid=$!
	for i in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
	# A few users log in while it runs: the largest of each group jump the queue.
	for u in $(ls "$mnt" | grep -E 'u(0|1)$' | sort -r); do
		"$MR" login --socket "$sock" "$u" >/dev/null 2>&1 || true
	done
	wait "$dpid" || true
	dpid=
}
measure daemon daemon_run
bad_d=$("$MR" verify --source "$mnt" --target "$work/TD" $users >/dev/null 2>&1 && echo 0 || echo 1)
rm -rf "$work/TD"

# ---- the report -------------------------------------------------------------
floor=$(( floor_msg + floor_other + bytes_find ))
ratio() { python3 -c "import sys; a, b = int(sys.argv[1]), int(sys.argv[2]); print('%.2f' % (a / b) if b else 'n/a')" "$1" "$2"; }
mib() { python3 -c "import sys; print('%.1f' % (int(sys.argv[1]) / 1048576))" "$1"; }
echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# PART \"$PART\" seed $SEED, backups ${BACKUPS:-mixed}: $nusers users, source $(mib "$sbytes") MiB; loop read_ahead_kb $(cat /sys/block/$dev/queue/read_ahead_kb)"
printf '%-52s %12s %8s\n' "what (bytes read from the source's device)" bytes MiB
row() { printf '%-52s %12d %8s  %s\n' "$1" "$2" "$(mib "$2")" "${3:-}"; }
row "metadata: cold find of size and time" "$bytes_find"
row "floor: new or changed files whole (messages)" "$floor_msg"
row "floor: new or changed files whole (other files)" "$floor_other"
row "floor: those + metadata" "$floor"
row "renamed or re-flagged messages (need no data)" "$renamed"
row "bsdtar + rsync -a --delete, per user" "$bytes_stock" "$(ratio "$bytes_stock" "$floor")x floor"
row "ours: restore-user --all --jobs $JOBS" "$bytes_ours" "$(ratio "$bytes_ours" "$floor")x floor, $(ratio "$bytes_ours" "$bytes_stock")x stock"
row "ours: file data (source_bytes_read)" "$counted"
row "ours: daemon --jobs $JOBS, logins while it runs" "$bytes_daemon" "$(ratio "$bytes_daemon" "$bytes_stock")x stock"
row "ours, one job, traced: all" "$bytes_traced"
row "  plan walk (directories, inodes, symlinks)" "$tr_plan"
row "  rename match (hashes of non-message renames)" "$tr_renames"
row "  remove guard (mailbox indexes)" "$tr_guard"
row "  copies and patches (file data)" "$tr_apply" "of which file data $tr_data"
row "  readahead and block maps beyond the file data" "$(( tr_apply > tr_data ? tr_apply - tr_data : 0 ))"
row "  outside the syncs (start, listing S)" "$(( bytes_traced - tr_plan - tr_renames - tr_guard - tr_apply ))"
echo "ratio ours/stock $(ratio "$bytes_ours" "$bytes_stock")  daemon/stock $(ratio "$bytes_daemon" "$bytes_stock")  ours/floor $(ratio "$bytes_ours" "$floor")  stock/floor $(ratio "$bytes_stock" "$floor")"
if [ "$bad" != 0 ] || [ "$bad_d" != 0 ]; then
	echo "source_reads.sh: verify found differences between S and the restored target" >&2
	exit 1
fi
if [ "$short" = 1 ]; then
	# Sanity only: every variant read something, ours no more than the
	# whole image, and the trace saw the syncs.
	for v in "$bytes_find" "$bytes_stock" "$bytes_ours" "$bytes_traced" "$bytes_daemon" "$tr_plan"; do
		[ "$v" -gt 0 ] || { echo "source_reads.sh: a variant read nothing from the device" >&2; exit 1; }
	done
	[ "$bytes_ours" -le "$(stat -c %s "$img")" ] || { echo "source_reads.sh: read more than the image" >&2; exit 1; }
fi
exit 0
