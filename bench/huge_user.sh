#!/usr/bin/env bash
# huge_user.sh: one user with a very large Maildir folder (issue 9: "one
# user with 1M messages"), ours against bsdtar + rsync, and the memory our
# restore needs per file.
#
#   bench/huge_user.sh [BUILD_DIR]
#
# Environment: MESSAGES (1000000), RUNS (2), BENCH_DIR (/tmp), KEEP=1 keeps
# the temporary folder.
#
# One run, in a fresh temporary folder below BENCH_DIR:
#   1. S/huge: one INBOX with MESSAGES small messages in cur/ (1 to 6 KiB,
#      Maildir names with S=<size>) and a dovecot-uidlist naming them all.
#      `mailrestore backup` writes B/huge.tar.lz4. Then a day of changes:
#      1 % new messages (new/ and cur/), 2 % flag changes (renames),
#      0.5 % deleted, the uidlist rewritten to match.
#   2. RUNS times, alternating, each on a fresh spare (a new loop-mounted
#      ext4 when root, else a new folder):
#        stock  bsdtar -xpf B/huge.tar.lz4 -C W/huge && rsync -a --delete
#               S/huge/ W/huge/ && sync
#        ours   mailrestore restore-user huge (fsyncs before it reports)
#      Time and peak memory (GNU time's maximum resident set size) of each.
#   3. `mailrestore verify` of ours against S must pass.
# Memory per file: our peak RSS minus the peak of the same restore of a
# 100-message user, divided by the files of the huge user.
#
# Exit: 0 measured (the report says whether the 0.8 aim is met), 1 a result
# was wrong, 77 a tool is missing.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${BUILD:-build}}
case $BUILD in /*) ;; *) BUILD=$SRC_DIR/$BUILD ;; esac
MR=$BUILD/mailrestore
MESSAGES=${MESSAGES:-1000000}
RUNS=${RUNS:-2}
BENCH_DIR=${BENCH_DIR:-/tmp}

say() { printf '%s\n' "$*" >&2; }
for t in bsdtar rsync python3; do
	command -v "$t" >/dev/null || { say "huge_user: $t is missing"; exit 77; }
done
[ -x /usr/bin/time ] || { say "huge_user: GNU time (/usr/bin/time) is missing"; exit 77; }
[ -x "$MR" ] || { say "huge_user: $MR not built"; exit 77; }

WORK=$(mktemp -d "$BENCH_DIR/mr-huge.XXXXXX")
cleanup() {
	local m
	# the spares are mounted in command substitutions (subshells): find them
	for m in $(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts); do
		umount "$m" 2>/dev/null || true
	done
	[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

. "$SRC_DIR/bench/lib.sh"
SPARE=$(spare_kind "$WORK")

# new_spare NAME: prints a fresh empty folder for one run.
new_spare() {
	local path=$WORK/spare-$1
	mkdir -p "$path"
	if [ "$SPARE" = loop ]; then
		truncate -s "$SPARE_GB"G "$path.img"
		mkfs.ext4 -q -F -i 4096 -E lazy_itable_init=0,lazy_journal_init=0 "$path.img"
		mount -o loop "$path.img" "$path"
	fi
	printf '%s\n' "$path"
}

# gen DIR USER N: one Maildir user with N messages, then prints its bytes.
gen() {
	python3 - "$@" <<'PY'
import os, sys, random
d, user, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(7)
root = os.path.join(d, user)
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
words = [("w%05d" % i).encode() for i in range(4096)]
total = 0
lines = []
t0 = 1700000000
for i in range(n):
    body = b" ".join(rnd.choice(words) for _ in range(rnd.randint(150, 1000)))
    msg = (b"From: a@example.org\nTo: %s@example.org\nSubject: message %d\n\n" %
           (user.encode(), i)) + body + b"\n"
    base = "%d.M%dP%d.bench,S=%d" % (t0 + i, i % 1000000, 4242, len(msg))
    with open(os.path.join(root, "cur", base + ":2,S"), "wb") as f:
        f.write(msg)
    lines.append("%d :%s" % (i + 1, base))
    total += len(msg)
with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
    f.write("3 V1700000000 N%d Gbench\n" % (n + 1))
    f.write("\n".join(lines) + "\n")
print(total)
PY
}

# day DIR USER: new mail, flag changes and deletions; prints changed bytes.
day() {
	python3 - "$@" <<'PY'
import os, sys, random
d, user = sys.argv[1], sys.argv[2]
rnd = random.Random(11)
root = os.path.join(d, user)
cur = sorted(os.listdir(os.path.join(root, "cur")))
n = len(cur)
changed = 0
gone = set(rnd.sample(range(n), n // 200))
for i in gone:
    os.unlink(os.path.join(root, "cur", cur[i]))
for i in rnd.sample([i for i in range(n) if i not in gone], n // 50):
    os.rename(os.path.join(root, "cur", cur[i]),
              os.path.join(root, "cur", cur[i].replace(":2,S", ":2,RS")))
names = {}
for line in open(os.path.join(root, "dovecot-uidlist")).read().splitlines()[1:]:
    uid, base = line.split(" :", 1)
    names[base] = int(uid)
for i in gone:
    del names[cur[i].split(":2,")[0]]
nxt = max(names.values()) + 1
for k in range(n // 100):
    msg = b"From: b@example.org\nSubject: new %d\n\n" % k + os.urandom(1500).hex().encode() + b"\n"
    base = "%d.M%dP%d.bench,S=%d" % (1800000000 + k, k, 4343, len(msg))
    sub, suffix = ("new", "") if k % 2 else ("cur", ":2,")
    with open(os.path.join(root, sub, base + suffix), "wb") as f:
        f.write(msg)
    names[base] = nxt
    nxt += 1
    changed += len(msg)
with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
    f.write("3 V1700000000 N%d Gbench\n" % nxt)
    for base, uid in sorted(names.items(), key=lambda x: x[1]):
        f.write("%d :%s\n" % (uid, base))
changed += os.path.getsize(os.path.join(root, "dovecot-uidlist"))
print(changed)
PY
}

now() { date +%s.%N; }

say "huge_user: generating $MESSAGES messages in $WORK"
mkdir -p "$WORK/S" "$WORK/B"
g0=$(now)
GEN_BYTES=$(gen "$WORK/S" huge "$MESSAGES")
gen "$WORK/S" small 100 >/dev/null
g1=$(now)
"$MR" backup --source "$WORK/S" --out "$WORK/B" >"$WORK/backup.txt" || { say "backup failed"; exit 1; }
CHANGED=$(day "$WORK/S" huge)
sync
FILES=$(find "$WORK/S/huge" -type f | wc -l)
SPARE_GB=$(awk -v b="$GEN_BYTES" -v f="$FILES" 'BEGIN { printf "%d", (b + f * 4096) * 2.5 / 1073741824 + 2 }')
say "huge_user: $FILES files, $GEN_BYTES bytes generated in $(python3 -c "print(round($g1-$g0))") s, $CHANGED changed"

declare -a T_STOCK T_OURS M_STOCK M_OURS
for ((r = 0; r < RUNS; r++)); do
	for v in stock ours; do
		[ $((r % 2)) = 1 ] && { [ "$v" = stock ] && v=ours || v=stock; }
		dst=$(new_spare "$v$r")
		sync
		if [ "$v" = stock ]; then
			/usr/bin/time -f '%e %M' -o "$WORK/time" sh -c \
				'mkdir -p "$1/huge" && bsdtar -xpf "$2/huge.tar.lz4" -C "$1/huge" &&
				 rsync -a --delete "$3/huge/" "$1/huge/" && sync' sh "$dst" "$WORK/B" "$WORK/S"
			read -r t m <"$WORK/time"
			T_STOCK+=("$t"); M_STOCK+=("$m")
		else
			/usr/bin/time -f '%e %M' -o "$WORK/time" "$MR" restore-user --backups "$WORK/B" \
				--source "$WORK/S" --target "$dst" huge >"$WORK/ours.txt" 2>&1 ||
				{ say "restore-user failed:"; cat "$WORK/ours.txt" >&2; exit 1; }
			read -r t m <"$WORK/time"
			T_OURS+=("$t"); M_OURS+=("$m")
			OURS_DST=$dst
		fi
		say "huge_user: run $r $v ${t} s, peak ${m} KiB"
	done
done
"$MR" verify --source "$WORK/S" --target "$OURS_DST" huge >"$WORK/verify.txt" 2>&1 ||
	{ say "verify of ours failed:"; cat "$WORK/verify.txt" >&2; exit 1; }

small=$(new_spare small)
/usr/bin/time -f '%e %M' -o "$WORK/time" "$MR" restore-user --backups "$WORK/B" \
	--source "$WORK/S" --target "$small" small >/dev/null 2>&1
read -r _ M_SMALL <"$WORK/time"

python3 - "$MESSAGES" "$FILES" "$M_SMALL" "${T_STOCK[*]}" "${T_OURS[*]}" "${M_STOCK[*]}" "${M_OURS[*]}" \
	"$(git -C "$SRC_DIR" rev-parse --short HEAD)" "$SPARE" <<'PY'
import sys, statistics, datetime, os
msgs, files, msmall = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ts = [float(x) for x in sys.argv[4].split()]
to = [float(x) for x in sys.argv[5].split()]
ms = [int(x) for x in sys.argv[6].split()]
mo = [int(x) for x in sys.argv[7].split()]
st, ot = statistics.median(ts), statistics.median(to)
print("# %s, %d cores, load %s, commit %s, spare %s" % (
    datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), os.cpu_count(),
    open("/proc/loadavg").read().split()[0], sys.argv[8], sys.argv[9]))
print("messages %d, files after the day %d" % (msgs, files))
print("stock (bsdtar + rsync + sync): %s s, median %.1f s, peak RSS %d KiB" % (ts, st, max(ms)))
print("ours (restore-user):           %s s, median %.1f s, peak RSS %d KiB" % (to, ot, max(mo)))
print("ratio ours/stock %.2f (aim <= 0.8: %s)" % (ot / st, "met" if ot / st <= 0.8 else "missed"))
print("memory per file: (%d - %d) KiB / %d files = %.0f bytes" % (
    max(mo), msmall, files, (max(mo) - msmall) * 1024.0 / files))
PY
