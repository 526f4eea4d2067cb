#!/usr/bin/env bash
# whole_job.sh: the whole job (restore-user of every user) against what an
# operator would otherwise script (bsdtar -xpf, then rsync -a --delete, per
# user), the sync alone against rsync alone, and the bytes our sync writes
# against the bytes that really changed (issue 3, item 7).
#
# One run, in a fresh temporary folder:
#   1. genpart generates a partition S (USERS x ~MESSAGES, Dovecot index
#      files, an mbox for every 5th user); `mailrestore backup` writes one
#      lz4 archive per user to B; `genpart day` applies a day of changes to
#      S (new mail, flag renames, moves, deletions, index updates, mbox
#      appends, two new users without a backup) and says how many bytes
#      really changed.
#   2. Whole job, RUNS times, the variants alternating (page cache is not
#      dropped, we cannot; every variant starts after a `sync` so no
#      writeback of another one is charged to it; the median counts). Each
#      run writes to a fresh spare disk: a new loop-mounted ext4 when run as
#      root (SPARE=loop), else a new folder (SPARE=dir; old ones are only
#      removed at the end, because creating files right after deleting
#      thousands slows ext4 down and would be charged to the next run):
#        stock-seq  for each user: mkdir -p W/u && bsdtar -xpf B/u.tar.lz4
#                   -C W/u && rsync -a --delete S/u/ W/u/
#        stock-p2   the same through xargs -P JOBS (the fair comparison
#                   against --jobs JOBS)
#        ours       mailrestore restore-user --jobs JOBS <every user>
#        cp-a       cp -a S/. onto the spare, then sync: the cost of simply
#                   copying the surviving partition (no backup used)
#      Our restore makes its result durable (fsync before activation); the
#      stock pipeline does not, so its time is also given with a final
#      `sync`, and the ratios are given against both.
#   3. Results checked: `mailrestore verify` against S exits 0, and the
#      stock result equals ours (diff -r, and verify with the stock tree as
#      the source, which also compares modes and times).
#   4. Sync alone, RUNS times (order alternating): copies of the same
#      extracted backups on fresh spares, then per user
#      `rsync -a --delete S/u/ X/u/` versus `mailrestore sync --json S/u X2/u`.
#   5. Bytes written by our sync (its bytes_written) against the day's
#      new_bytes + changed_bytes (renames cost nothing); rsync's "Total
#      transferred file size" beside it.
#
# FORMAT=cyrus measures the same on a Cyrus spool (genpart --cyrus: users in
# <h>/user/<name>/ with N. files and cyrus.index; a day of appends, delayed
# expunges and flag changes, no new users); each user's folder there is
# what bsdtar, rsync and `mailrestore sync` get; restore-user runs with
# --format cyrus. Its section is "$SECTION, Cyrus spool".
#
# Environment: BUILD (build folder, default build, relative to the source
# tree), BENCH_DIR (parent of the temporary folder, default /tmp), USERS
# (40), MESSAGES (600), INDEX_KIB (512), SEED (1), JOBS (2), RUNS (3),
# SPARE (auto: loop when root and a loop mount works, else dir; or loop,
# dir), KEEP=1 keeps the temporary folder, RECORD=1 writes the figures into the
# "## $SECTION" section of docs/BENCHMARKS.md (SECTION: default "Whole job and
# sync"; BENCH_DIR=/dev/shm with SECTION="Whole job and sync, spare disk in
# RAM" measures with the spare disk's image in memory).
#
# Exit: 0 measured (targets met or not: the report says), 1 a result was
# wrong (verify or diff failed, a command failed), 77 a command is missing.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$SRC_DIR/$BUILD ;; esac
MR=$BUILD/mailrestore
GENPART=$BUILD/bench/genpart
USERS=${USERS:-40}
MESSAGES=${MESSAGES:-600}
INDEX_KIB=${INDEX_KIB:-512}
SEED=${SEED:-1}
JOBS=${JOBS:-2}
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp}
FORMAT=${FORMAT:-maildir}
case $FORMAT in
maildir) SECTION=${SECTION:-Whole job and sync} ;;
cyrus) SECTION="${SECTION:-Whole job and sync}, Cyrus spool" ;;
*) printf 'whole_job: FORMAT is maildir or cyrus\n' >&2; exit 64 ;;
esac

say() { printf '%s\n' "$*" >&2; }
die() { say "whole_job: $*"; exit 1; }

for tool in bsdtar rsync xargs awk diff; do
	command -v "$tool" >/dev/null || { say "whole_job: $tool is not installed"; exit 77; }
done
[ -x "$MR" ] || { say "whole_job: $MR not built"; exit 77; }
[ -x "$GENPART" ] || { say "whole_job: $GENPART not built"; exit 77; }
for cmd in backup restore-user sync verify; do
	if "$MR" "$cmd" --help 2>&1 | grep -q 'not built yet'; then
		say "whole_job: mailrestore $cmd is not built yet"
		exit 77
	fi
done

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d "$BENCH_DIR/whole_job.XXXXXX")
declare -A CUR
SPARE=${SPARE:-auto}
SPARE_GB=4
SEQNO=0

# spare NAME: a new, empty target for NAME (its path in CUR[NAME]), after
# dropping NAME's previous one.
spare() {
	local name=$1 path
	drop "$name"
	SEQNO=$((SEQNO + 1))
	path=$WORK/$name.$SEQNO
	mkdir -p "$path"
	if [ "$SPARE" = loop ]; then
		truncate -s "${SPARE_GB}G" "$path.img"
		# Inode tables and journal written now, not by a background
		# thread during the timed run.
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$path.img"
		mount -o loop "$path.img" "$path"
	fi
	CUR[$name]=$path
	sync
}
drop() {
	local path=${CUR[$1]:-}
	[ -n "$path" ] || return 0
	if [ "$SPARE" = loop ]; then
		umount "$path" && rm -f "$path.img" && rmdir "$path"
	fi
	unset "CUR[$1]"
}
cleanup() {
	local name
	for name in "${!CUR[@]}"; do drop "$name" || true; done
	if [ "${KEEP:-0}" = 1 ]; then
		say "whole_job: kept $WORK"
	else
		chmod -R u+rwx "$WORK" 2>/dev/null || true
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

. "$SRC_DIR/bench/lib.sh"
[ "$SPARE" != auto ] || SPARE=$(spare_kind "$WORK")

S=$WORK/S B=$WORK/B E=$WORK/E
export S B

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v a="$1" 'BEGIN { printf "%.1f", a / 1048576 }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r <= t) ? "met" : "MISSED" }'; }

# ---- 1. data -------------------------------------------------------------
GENOPTS=(--users "$USERS" --messages "$MESSAGES" --index-kib "$INDEX_KIB" --seed "$SEED")
[ "$FORMAT" = cyrus ] && GENOPTS+=(--cyrus)
say "whole_job: generating $USERS users x ~$MESSAGES messages in $WORK"
"$GENPART" "${GENOPTS[@]}" generate "$S" >"$WORK/gen.txt"
GEN_FILES=$(sed -n 's/^files=//p' "$WORK/gen.txt")
GEN_BYTES=$(sed -n 's/^bytes=//p' "$WORK/gen.txt")
say "whole_job: backing up ($GEN_FILES files, $(mib "$GEN_BYTES") MiB)"
"$MR" backup --source "$S" --out "$B" >"$WORK/backup.txt" || die "mailrestore backup failed"
BACKUP_BYTES=$(du -sb "$B" | awk '{ print $1 }')
# A spare disk holds a restored partition twice over, and an attic.
SPARE_GB=$(awk -v b="$GEN_BYTES" 'BEGIN { printf "%d", b * 2 / 1073741824 + 4 }')
"$GENPART" "${GENOPTS[@]}" day "$S" >"$WORK/day.txt"
day() { sed -n "s/^$1=//p" "$WORK/day.txt"; }
DAY_USERS=$(day users) DAY_FILES=$(day files) DAY_BYTES=$(day bytes)
NEW_FILES=$(day new_files) NEW_BYTES=$(day new_bytes) RENAMED=$(day renamed)
DELETED=$(day deleted) CHANGED_FILES=$(day changed_files) CHANGED_BYTES=$(day changed_bytes)
REAL_CHANGE=$((NEW_BYTES + CHANGED_BYTES))
# REL[u]: user u's folder below S and every target (S/u, or Cyrus's
# <h>/user/<name> with a '.' of the name as '^').
declare -A REL
if [ "$FORMAT" = cyrus ]; then
	mapfile -t USER_LIST < <(find "$S" -mindepth 3 -maxdepth 3 -type d -path "$S/?/user/*" \
		-printf '%f\n' | tr '^' . | sort)
	for u in "${USER_LIST[@]}"; do
		d=$(find "$S" -mindepth 3 -maxdepth 3 -type d -path "$S/?/user/${u//./^}")
		REL[$u]=${d#"$S"/}
	done
else
	mapfile -t USER_LIST < <(find "$S" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
	for u in "${USER_LIST[@]}"; do REL[$u]=$u; done
fi
# "u<TAB>rel" lines for the stock pipeline's xargs
for u in "${USER_LIST[@]}"; do printf '%s\t%s\n' "$u" "${REL[$u]}"; done >"$WORK/users.tsv"
say "whole_job: day applied: ${#USER_LIST[@]} users, $NEW_FILES new files ($(mib "$NEW_BYTES") MiB)," \
	"$RENAMED renamed, $DELETED deleted, $CHANGED_FILES changed in place ($(mib "$CHANGED_BYTES") MiB)"

# ---- 2. the whole job ------------------------------------------------------
stock_one() {
	local u=$1 w=$2 r=${3:-$1}
	mkdir -p "$w/$r"
	if [ -f "$B/$u.tar.lz4" ]; then
		bsdtar -xpf "$B/$u.tar.lz4" -C "$w/$r" || return 1
	fi
	rsync -a --delete "$S/$r/" "$w/$r/"
}
export -f stock_one

run_stock_seq() {
	local u
	for u in "${USER_LIST[@]}"; do
		stock_one "$u" "${CUR[seq]}" "${REL[$u]}" || return 1
	done
}
run_ours() {
	"$MR" restore-user --format "$FORMAT" --backups "$B" --source "$S" --target "${CUR[ours]}" \
		--jobs "$JOBS" "${USER_LIST[@]}" >"$WORK/ours.out" 2>"$WORK/ours.err"
}

declare -a T_SEQ T_SEQ_SYNC T_P2 T_P2_SYNC T_OURS T_CPA
for run in $(seq 1 "$RUNS"); do
	# Rotate the order so no variant always runs first or last.
	case $(( (run - 1) % 3 )) in
		0) order="seq p2 ours cpa" ;;
		1) order="p2 ours cpa seq" ;;
		*) order="ours cpa seq p2" ;;
	esac
	for v in $order; do
		case $v in
		seq)
			spare seq
			t0=$(now); run_stock_seq || die "stock pipeline failed"; t1=$(now); sync; t2=$(now)
			T_SEQ+=("$(elapsed "$t0" "$t1")"); T_SEQ_SYNC+=("$(elapsed "$t0" "$t2")")
			;;
		p2)
			spare p2
			t0=$(now)
			tr '\t' '\n' <"$WORK/users.tsv" |
				xargs -d '\n' -n 2 -P "$JOBS" bash -c 'stock_one "$2" "$1" "$3"' _ \
				"${CUR[p2]}" ||
				die "stock pipeline (xargs -P$JOBS) failed"
			t1=$(now); sync; t2=$(now)
			T_P2+=("$(elapsed "$t0" "$t1")"); T_P2_SYNC+=("$(elapsed "$t0" "$t2")")
			;;
		ours)
			spare ours
			t0=$(now)
			run_ours || { cat "$WORK/ours.err" >&2; die "restore-user failed"; }
			t1=$(now)
			T_OURS+=("$(elapsed "$t0" "$t1")")
			;;
		cpa)
			spare cpa
			t0=$(now); cp -a "$S/." "${CUR[cpa]}/" || die "cp -a failed"; sync; t1=$(now)
			T_CPA+=("$(elapsed "$t0" "$t1")")
			drop cpa
			;;
		esac
		say "whole_job: run $run $v done"
	done
done

# ---- 3. the results are right ---------------------------------------------
"$MR" verify --source "$S" --target "${CUR[ours]}" "${USER_LIST[@]}" >"$WORK/verify.txt" 2>&1 ||
	{ head -20 "$WORK/verify.txt" >&2; die "verify of our result against S failed"; }
for u in "${USER_LIST[@]}"; do
	r=${REL[$u]}
	diff -r "${CUR[seq]}/$r" "${CUR[ours]}/$r" >/dev/null || die "stock and ours differ for $u (diff -r)"
	diff -r "${CUR[p2]}/$r" "${CUR[ours]}/$r" >/dev/null || die "stock -P$JOBS and ours differ for $u"
done
"$MR" verify --source "${CUR[seq]}" --target "${CUR[ours]}" "${USER_LIST[@]}" >"$WORK/verify2.txt" 2>&1 ||
	{ head -20 "$WORK/verify2.txt" >&2; die "stock and ours differ in metadata"; }
say "whole_job: results verified (ours = S, stock = ours)"
drop seq
drop p2
drop ours

# ---- 4. sync alone ----------------------------------------------------------
# The same extracted backups for both tools; new users start empty.
mkdir -p "$E"
for u in "${USER_LIST[@]}"; do
	mkdir -p "$E/${REL[$u]}"
	if [ -f "$B/$u.tar.lz4" ]; then bsdtar -xpf "$B/$u.tar.lz4" -C "$E/${REL[$u]}"; fi
done
declare -a T_RSYNC T_SYNC
RSYNC_XFER=0 OUR_WRITTEN=0
time_rsync() {
	local u t0 t1 xfer=0 n
	t0=$(now)
	for u in "${USER_LIST[@]}"; do
		n=$(rsync -a --delete --stats "$S/${REL[$u]}/" "${CUR[x]}/${REL[$u]}/" |
			sed -n 's/^Total transferred file size: \([0-9,]*\) bytes.*/\1/p' | tr -d ,)
		xfer=$((xfer + ${n:-0}))
	done
	t1=$(now)
	T_RSYNC+=("$(elapsed "$t0" "$t1")")
	RSYNC_XFER=$xfer
}
time_ours_sync() {
	local u t0 t1 w=0 n
	t0=$(now)
	for u in "${USER_LIST[@]}"; do
		"$MR" sync --format "$FORMAT" --attic "${CUR[x2]}/.attic" --json "$S/${REL[$u]}" \
			"${CUR[x2]}/${REL[$u]}" >"$WORK/sync.json" 2>"$WORK/sync.err" ||
			{ cat "$WORK/sync.err" >&2; die "mailrestore sync failed for $u"; }
		n=$(sed -n 's/.*"bytes_written":\([0-9]*\).*/\1/p' "$WORK/sync.json")
		w=$((w + ${n:-0}))
	done
	t1=$(now)
	T_SYNC+=("$(elapsed "$t0" "$t1")")
	OUR_WRITTEN=$w
}
for run in $(seq 1 "$RUNS"); do
	spare x
	cp -a "$E/." "${CUR[x]}/"
	spare x2
	cp -a "$E/." "${CUR[x2]}/"
	sync
	if [ $((run % 2)) = 1 ]; then
		time_rsync; sync; time_ours_sync
	else
		time_ours_sync; sync; time_rsync
	fi
	say "whole_job: sync run $run done"
done
for u in "${USER_LIST[@]}"; do
	diff -r "${CUR[x]}/${REL[$u]}" "${CUR[x2]}/${REL[$u]}" >/dev/null ||
		die "sync and rsync differ for $u"
done

# ---- 5. report --------------------------------------------------------------
M_SEQ=$(median "${T_SEQ[@]}") M_SEQ_SYNC=$(median "${T_SEQ_SYNC[@]}")
M_P2=$(median "${T_P2[@]}") M_P2_SYNC=$(median "${T_P2_SYNC[@]}")
M_OURS=$(median "${T_OURS[@]}") M_CPA=$(median "${T_CPA[@]}")
R_CPA=$(ratio "$M_OURS" "$M_CPA")
M_RSYNC=$(median "${T_RSYNC[@]}") M_SYNC=$(median "${T_SYNC[@]}")
R_P2_SYNC=$(ratio "$M_OURS" "$M_P2_SYNC") R_P2=$(ratio "$M_OURS" "$M_P2")
R_SEQ_SYNC=$(ratio "$M_OURS" "$M_SEQ_SYNC") R_SEQ=$(ratio "$M_OURS" "$M_SEQ")
R_SYNC=$(ratio "$M_SYNC" "$M_RSYNC")
R_BYTES=$(ratio "$OUR_WRITTEN" "$REAL_CHANGE")
R_RSYNC_BYTES=$(ratio "$RSYNC_XFER" "$REAL_CHANGE")
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
MARK='<!-- end of the figures written by bench/whole_job.sh (RECORD=1); notes below are kept -->'
if [ "$SPARE" = loop ]; then
	TARGETS="each run's target a fresh loop-mounted ext4 (${SPARE_GB} GiB image on $(stat -f -c %T "$WORK") under $BENCH_DIR)"
else
	TARGETS="targets in fresh folders on $(stat -f -c %T "$WORK") under $BENCH_DIR"
fi
list() { local IFS=' '; echo "$*"; }

if [ "$FORMAT" = cyrus ]; then
	DATA_TEXT="**Data** (genpart, Cyrus spool, seed $SEED): a Cyrus spool, $USERS users x ~$MESSAGES messages
(folders of N. files with cyrus.header, cyrus.index, cyrus.cache): $GEN_FILES files,
$(mib "$GEN_BYTES") MiB; lz4 backups $(mib "$BACKUP_BYTES") MiB. One day of Cyrus's changes:
$NEW_FILES new messages ($(mib "$NEW_BYTES") MiB, new UIDs, index records appended), $DELETED
expunged (flagged in the index, files removed), flag changes in the index only;
$CHANGED_FILES indexes rewritten ($(mib "$CHANGED_BYTES") MiB). Bytes that really changed:
$(mib "$REAL_CHANGE") MiB. restore-user and sync run with --format cyrus."
else
	DATA_TEXT="**Data** (genpart seed $SEED): $USERS users x ~$MESSAGES messages, index cache $INDEX_KIB KiB,
an mbox for every 5th user: $GEN_FILES files, $(mib "$GEN_BYTES") MiB; lz4 backups
$(mib "$BACKUP_BYTES") MiB. One day of changes, after which the source has $DAY_USERS users
(2 new, without a backup), $DAY_FILES files, $(mib "$DAY_BYTES") MiB:
$NEW_FILES new files ($(mib "$NEW_BYTES") MiB, new users included), $RENAMED renames (flags,
new/ to cur/, folder moves), $DELETED deletions, $CHANGED_FILES files changed in place
($(mib "$CHANGED_BYTES") MiB). Bytes that really changed: $(mib "$REAL_CHANGE") MiB."
fi
cat >"$WORK/section.md" <<EOF
## $SECTION

Measured by \`bench/whole_job.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs
($CPU), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -r); $TARGETS;
source and backups on $(stat -f -c %T "$WORK") under $BENCH_DIR; build $(basename "$BUILD")
(commit $(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)).

$DATA_TEXT

**Method**: $RUNS runs of each variant, variants alternating, median reported; the page
cache is not dropped (the data fits in RAM, so these are warm-cache figures); a \`sync\`
before each variant. Our restore-user fsyncs before it activates a user; the stock
pipeline does not, so it is given with and without a final \`sync\`. Load average
when the script started: $LOAD_START; when it ended: $LOAD_END (the machine is shared,
so other work may have run beside the benchmark).

| whole job ($JOBS jobs where parallel) | median s | runs s |
|---|---:|---|
| stock, sequential (bsdtar + rsync per user) | $M_SEQ | $(list "${T_SEQ[@]}") |
| stock, sequential + final sync | $M_SEQ_SYNC | $(list "${T_SEQ_SYNC[@]}") |
| stock, xargs -P$JOBS | $M_P2 | $(list "${T_P2[@]}") |
| stock, xargs -P$JOBS + final sync | $M_P2_SYNC | $(list "${T_P2_SYNC[@]}") |
| ours, restore-user --jobs $JOBS (durable) | $M_OURS | $(list "${T_OURS[@]}") |
| cp -a of the source + sync (no backup) | $M_CPA | $(list "${T_CPA[@]}") |

| sync alone (per user, extracted backups) | median s | runs s |
|---|---:|---|
| rsync -a --delete | $M_RSYNC | $(list "${T_RSYNC[@]}") |
| mailrestore sync | $M_SYNC | $(list "${T_SYNC[@]}") |

| ratio | value | target |
|---|---:|---|
| ours / stock per-user loop (the issue's pipeline) | $R_SEQ | <= 0.5: $(verdict "$R_SEQ" 0.5) |
| ours / the same loop + final sync (equally durable) | $R_SEQ_SYNC | <= 0.5: $(verdict "$R_SEQ_SYNC" 0.5) |
| ours / stock xargs -P$JOBS + final sync (parallel, equally durable) | $R_P2_SYNC | <= 0.5: $(verdict "$R_P2_SYNC" 0.5) |
| ours / stock xargs -P$JOBS without sync (parallel, nothing durable) | $R_P2 | <= 0.5: $(verdict "$R_P2" 0.5) |
| ours / cp -a of the source + sync | $R_CPA | <= 1.0: $(verdict "$R_CPA" 1.0) |
| sync: ours / rsync | $R_SYNC | |
| bytes written by our sync / bytes changed | $R_BYTES ($(mib "$OUR_WRITTEN") / $(mib "$REAL_CHANGE") MiB) | <= 1.10: $(verdict "$R_BYTES" 1.10) |
| rsync's transferred bytes / bytes changed | $R_RSYNC_BYTES ($(mib "$RSYNC_XFER") MiB) | (for comparison) |

Checked in the same run: \`mailrestore verify\` of every user against the source exits 0,
and the stock result equals ours (\`diff -r\`, and \`verify\` with the stock tree as the
source, which compares modes and times too); the sync-alone trees of rsync and ours
are equal (\`diff -r\`).

$MARK
EOF
cat "$WORK/section.md"

if [ "${RECORD:-0}" = 1 ]; then
	DOC=$SRC_DIR/docs/BENCHMARKS.md
	mkdir -p "$SRC_DIR/docs"
	[ -f "$DOC" ] || printf '# Benchmarks\n' >"$DOC"
	# Replace our figures (up to the marker, or else the next "## "
	# heading) or append them; notes after the marker stay.
	awk -v secfile="$WORK/section.md" -v mark="$MARK" -v heading="$SECTION" '
		function emit() { while ((getline line < secfile) > 0) print line; close(secfile); done = 1 }
		skip && $0 == mark { skip = 0; next }
		/^## / { if (skip) { skip = 0; print "" } }
		substr($0, 1, 3) == "## " && substr($0, 4) == heading { emit(); skip = 1; next }
		!skip { print }
		END { if (!done) { print ""; emit() } }
	' "$DOC" >"$DOC.tmp"
	mv "$DOC.tmp" "$DOC"
	say "whole_job: recorded in $DOC"
fi
