#!/usr/bin/env bash
# restore.sh: extraction speed of restore_extract() against bsdtar -xpf on
# the same archives, in one run.
#
#   1. one big user (Maildir, thousands of 2-50 KiB messages plus a few
#      index files): bsdtar -xpf vs bench_extract --jobs 1, median of REPS
#      runs each, for .tar.lz4 and plain .tar;
#   2. many users: a sequential bsdtar loop vs bench_extract --jobs 2.
#
# Archives are made with "mailrestore backup" from a generated tree. The
# figures go to docs/BENCHMARKS.md under "## Restore (extraction)" (only
# that section is rewritten) and to stdout.
#
# Env: MR_BUILD (build dir, default build), BENCH_DIR (scratch, default a
# temp dir), BIG_FILES (3000), USERS (40), USER_FILES (300), REPS (5),
# BENCH_NO_DOC=1 to leave docs/BENCHMARKS.md alone.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=${MR_BUILD:-build}
MR=$build/mailrestore
BX=$build/bench/bench_extract
BIG_FILES=${BIG_FILES:-3000}
USERS=${USERS:-40}
USER_FILES=${USER_FILES:-300}
REPS=${REPS:-5}
for t in "$MR" "$BX"; do
	[ -x "$t" ] || { echo "restore.sh: $t not built (cmake --build $build)" >&2; exit 1; }
done
command -v bsdtar >/dev/null || { echo "restore.sh: bsdtar missing" >&2; exit 1; }
command -v python3 >/dev/null || { echo "restore.sh: python3 missing" >&2; exit 1; }

tmp=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
S=$tmp/S A=$tmp/A X=$tmp/x

echo "== generating $BIG_FILES + $USERS x $USER_FILES messages in $tmp"
python3 - "$S" "$BIG_FILES" "$USERS" "$USER_FILES" <<'EOF'
import base64, os, random, sys
root, big, users, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(42)
pool = base64.encodebytes(os.urandom(3 << 20))  # mail-like text, compresses ~25%
def maildir(user, n, index_mib):
    u = os.path.join(root, user)
    folders = ["", ".Sent", ".Archive", ".Trash"]
    for f in folders:
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(u, f, d), exist_ok=True)
    for i in range(n):
        f = folders[0] if i % 10 < 7 else folders[1 + i % 3]
        size = rnd.randint(2 << 10, 50 << 10)
        off = rnd.randint(0, len(pool) - size)
        name = "%d.M%dP%d.mail.example.org,S=%d:2,S" % (1700000000 + i, i, 4242, size)
        with open(os.path.join(u, f, "cur", name), "wb") as fh:
            fh.write(b"From: a@example.org\nSubject: %d\n\n" % i + pool[off:off + size])
    for name in ("dovecot.index", "dovecot.index.cache", "dovecot.index.log"):
        with open(os.path.join(u, name), "wb") as fh:
            fh.write(os.urandom(index_mib << 20))
maildir("big", big, 4)
for k in range(users):
    maildir("user%02d" % k, per, 1)
EOF
echo "== backing up"
"$MR" backup --source "$S" --out "$A/lz4" --compress lz4 >/dev/null
"$MR" backup --source "$S" --out "$A/tar" --compress none >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
fresh() { rm -rf "$X"; mkdir -p "$X"; sync; }

# One archive: bsdtar vs bench_extract, interleaved, median of REPS.
single() {
	local arc=$1 i t0 t1 bt=() mt=()
	for ((i = 0; i < REPS; i++)); do
		fresh; mkdir "$X/b"
		t0=$(now); bsdtar -xpf "$arc" -C "$X/b"; t1=$(now)
		bt+=("$(echo "$t1 - $t0" | bc -l)")
		fresh
		mt+=("$("$BX" --jobs 1 --out "$X" "$arc")")
	done
	b=$(printf '%s\n' "${bt[@]}" | median)
	m=$(printf '%s\n' "${mt[@]}" | median)
	echo "$b $m $(echo "$m / $b" | bc -l)"
}

# Many archives: sequential bsdtar loop vs bench_extract --jobs 2.
many() {
	local dir=$1 suf=$2 i t0 t1 bt=() mt=() arcs
	arcs=("$dir"/user*"$suf")
	for ((i = 0; i < REPS; i++)); do
		fresh
		t0=$(now)
		for a in "${arcs[@]}"; do
			d=$X/$(basename "$a"); mkdir "$d"; bsdtar -xpf "$a" -C "$d"
		done
		t1=$(now)
		bt+=("$(echo "$t1 - $t0" | bc -l)")
		fresh
		mt+=("$("$BX" --jobs 2 --out "$X" "${arcs[@]}")")
	done
	b=$(printf '%s\n' "${bt[@]}" | median)
	m=$(printf '%s\n' "${mt[@]}" | median)
	echo "$b $m $(echo "$m / $b" | bc -l)"
}

# The extraction must be right before it is fast.
fresh; mkdir "$X/b"
bsdtar -xpf "$A/lz4/big.tar.lz4" -C "$X/b"
"$BX" --jobs 1 --out "$X" "$A/lz4/big.tar.lz4" >/dev/null
diff -r "$X/b" "$X/0" >/dev/null || { echo "restore.sh: extraction differs from bsdtar" >&2; exit 1; }

echo "== one user, $BIG_FILES messages, median of $REPS"
read -r b1 m1 r1 < <(single "$A/lz4/big.tar.lz4")
printf '  .tar.lz4: bsdtar %.3fs  restore_extract %.3fs  ratio %.2f\n' "$b1" "$m1" "$r1"
read -r b2 m2 r2 < <(single "$A/tar/big.tar")
printf '  .tar:     bsdtar %.3fs  restore_extract %.3fs  ratio %.2f\n' "$b2" "$m2" "$r2"
echo "== $USERS users x $USER_FILES messages: sequential bsdtar vs --jobs 2"
read -r b3 m3 r3 < <(many "$A/lz4" .tar.lz4)
printf '  .tar.lz4: bsdtar loop %.3fs  --jobs 2 %.3fs  ratio %.2f\n' "$b3" "$m3" "$r3"
read -r b4 m4 r4 < <(many "$A/tar" .tar)
printf '  .tar:     bsdtar loop %.3fs  --jobs 2 %.3fs  ratio %.2f\n' "$b4" "$m4" "$r4"

[ "${BENCH_NO_DOC:-0}" = 1 ] && exit 0
size_big=$(du -sh "$S/big" | cut -f1)
size_all=$(du -sh "$S" | cut -f1)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
section=$(cat <<EOF
## Restore (extraction)

Measured $(date -u +%Y-%m-%d) by \`bench/restore.sh\` on $(nproc) CPUs ($cpu),
$(bsdtar --version | head -1). Archives written by \`mailrestore backup\` from a
generated Maildir tree (messages of 2-50 KiB, three index files per user);
times are wall-clock medians of $REPS runs, page cache warm, \`sync\` before
each run. Ratio = restore_extract / bsdtar (lower is better; the goal is at
most 1.1 for one archive and below 1 for many users on 2 jobs).

| case | bsdtar | restore_extract | ratio |
|---|---|---|---|
| one user ($BIG_FILES messages, $size_big), .tar.lz4 | $(printf '%.3f s' "$b1") | $(printf '%.3f s' "$m1") | $(printf '%.2f' "$r1") |
| one user, plain .tar | $(printf '%.3f s' "$b2") | $(printf '%.3f s' "$m2") | $(printf '%.2f' "$r2") |
| $USERS users x $USER_FILES messages ($size_all in all), .tar.lz4: sequential bsdtar vs \`--jobs 2\` | $(printf '%.3f s' "$b3") | $(printf '%.3f s' "$m3") | $(printf '%.2f' "$r3") |
| same, plain .tar | $(printf '%.3f s' "$b4") | $(printf '%.3f s' "$m4") | $(printf '%.2f' "$r4") |

Reproduce: \`cmake --build build && bench/restore.sh\` (env BIG_FILES, USERS,
USER_FILES, REPS scale it).
EOF
)
python3 - "$src/docs/BENCHMARKS.md" "$section" <<'EOF'
import os, re, sys
path, section = sys.argv[1], sys.argv[2].rstrip("\n") + "\n"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
m = re.search(r"^## Restore \(extraction\)\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
if m:
    text = text[:m.start()] + section + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
EOF
echo "== written to docs/BENCHMARKS.md"
