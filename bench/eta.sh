#!/usr/bin/env bash
# eta.sh: are the daemon's time estimates right? (issue 13)
#
# One run, in a fresh temporary folder:
#   1. genpart writes a partition S of mixed sizes: four groups of users
#      (PART, "count:messages" each, default 250 x 60, 150 x 180, 75 x 600,
#      25 x 1800 messages: 500 users from a few hundred KiB to about
#      100 MiB, 7 GB in all, in sizes mixed the way a real partition is:
#      many small, a few big);
#      `mailrestore backup` writes one lz4 archive per user to B; then
#      DAYS (1) days of changes are applied to S, so each user's sync has
#      real work (new mail to copy, renames, deletions) as after a real
#      crash. `sync` then flushes what the set-up wrote, so the daemon's
#      first users do not pay for writing the generated partition back.
#   2. The daemon restores all of them (--jobs JOBS, background on) on a
#      fresh target, from an empty state folder (no rates yet), with
#      MAILRESTORE_ETA_TRACE=1: its log (KEEP=1) has each run against what
#      the model said when it started. The sizes
#      are picked so that the run lasts a minute or more on a 2-CPU
#      machine: long enough that times are not sub-second noise.
#   3. Early in the run (once EARLY_PCT % of the users are active), a
#      SAMPLE of the users still waiting, spread evenly over the background
#      order, are asked `show --json` (which does not move them) for their
#      eta_seconds. Each is then followed until it goes active (its
#      finished_at), and the estimate is compared with what really
#      happened: error = |estimate - actual| / actual.
#   4. Median and worst error against the targets (median <= 25 %, worst
#      <= 100 %); the `status` estimate of the whole run at the same moment
#      against when the last user really went active.
#
# Environment: BUILD (build folder, default build), BENCH_DIR (parent of the
# temporary folder, default /tmp), PART, DAYS (1), JOBS (2), PARTITION (a
# folder that keeps S and B for the next runs: generated once, reused while
# it holds them; the target and the state are always fresh), SAMPLE (30), EARLY_PCT
# (10), SEED (1), KEEP=1 keeps the folder, RECORD=1 adds the run (date,
# machine, load, commit, figures) at the end of the "## Estimates" section
# of docs/BENCHMARKS.md.
#
# Exit: 0 measured (targets met or not: the report says), 1 a step failed,
# 77 a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
MR=$build/mailrestore
GP=$build/bench/genpart
PART=${PART:-"250:60 150:180 75:600 25:1800"}
DAYS=${DAYS:-1}
JOBS=${JOBS:-2}
SAMPLE=${SAMPLE:-30}
EARLY_PCT=${EARLY_PCT:-10}
SEED=${SEED:-1}
for t in "$MR" "$GP"; do
	[ -x "$t" ] || { echo "eta.sh: $t not built (cmake --build $build)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "eta.sh: python3 missing" >&2; exit 77; }

tmp=$(mktemp -d "${BENCH_DIR:-/tmp}/mr-eta.XXXXXX")
daemon_pid=
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ "${KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
S=$tmp/S B=$tmp/B T=$tmp/T ST=$tmp/state SOCK=$tmp/sock
if [ -n "${PARTITION:-}" ]; then
	S=$PARTITION/S B=$PARTITION/B
fi
mkdir -p "$T"

if [ -n "${PARTITION:-}" ] && [ "$(cat "$PARTITION/done" 2>/dev/null)" = "$PART days $DAYS seed $SEED" ]; then
	echo "== the partition of an earlier run: $PARTITION"
else
echo "== generating the partition ($PART) in ${PARTITION:-$tmp}"
rm -rf "$S" "$B"
mkdir -p "$S" "$B"
g=0
for grp in $PART; do
	n=${grp%%:*} m=${grp#*:}
	"$GP" --users "$n" --messages "$m" --seed $((SEED + g)) --index-kib 64 \
		--prefix "g${g}u" generate "$S" >/dev/null
	g=$((g + 1))
done
"$MR" backup --source "$S" --out "$B" --compress lz4 >/dev/null
for d in $(seq "$DAYS"); do
	g=0
	for grp in $PART; do
		n=${grp%%:*} m=${grp#*:}
		"$GP" --users "$n" --messages "$m" --seed $((SEED + g)) --index-kib 64 \
			--prefix "g${g}u" day "$S" >/dev/null
		g=$((g + 1))
	done
done
[ -n "${PARTITION:-}" ] && echo "$PART days $DAYS seed $SEED" >"$PARTITION/done"
fi
sync
nusers=$(ls "$B" | wc -l)
echo "   $nusers users with a backup, $(du -sh "$S" | cut -f1) of mail after $DAYS day(s), backups $(du -sh "$B" | cut -f1)"

echo "== restoring with the daemon (--jobs $JOBS, background on)"
t0=$(date +%s.%N)
load0=$(cut -d' ' -f1 /proc/loadavg)
MAILRESTORE_ETA_TRACE=1 "$MR" daemon --backups "$B" --source "$S" --target "$T" --state "$ST" --jobs "$JOBS" \
	--background on --socket "$SOCK" 2>"$tmp/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "eta.sh: the daemon did not start" >&2; cat "$tmp/daemon.log" >&2; exit 1; }

python3 - "$MR" "$SOCK" "$B" "$SAMPLE" "$EARLY_PCT" "$tmp/result.json" <<'EOF'
import json, os, statistics, subprocess, sys, time
mr, sock, bdir, sample, early_pct, out = sys.argv[1], sys.argv[2], sys.argv[3], \
    int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]

def call(*args):
    r = subprocess.run([mr, *args, "--socket", sock, "--json"], capture_output=True, text=True)
    if r.stdout.strip() == "":
        raise SystemExit("eta.sh: %s: exit %d: %s" % (args[0], r.returncode, r.stderr))
    return json.loads(r.stdout)

# The background order the daemon uses: (backup size, name).
order = sorted((os.path.getsize(os.path.join(bdir, f)), f.split(".tar")[0])
               for f in os.listdir(bdir))
nusers = len(order)
# 1. early in the run: EARLY_PCT % active
while True:
    st = call("status")
    if st["counts"]["active"] >= nusers * early_pct / 100:
        break
    time.sleep(0.05)
asked_status = time.time()
total_est = st["eta_seconds"]
total_status = st["eta_status"]
active_then = st["counts"]["active"]
# 2. a sample spread evenly over the users not started yet (skip a margin
#    past the active ones: those may start while we ask)
rest = order[active_then + 4:]
step = max(1, len(rest) // sample)
picks = [rest[i][1] for i in range(0, len(rest), step)][:sample]
asked = []
for u in picks:
    t = time.time()
    d = call("show", u)
    if d["state"] != "waiting":
        continue
    asked.append({"user": u, "size": d["size_hint"], "asked_at": t,
                  "eta": d["eta_seconds"], "eta_status": d["eta_status"]})
# 3. follow them until the end of the run
while True:
    st = call("status")
    c = st["counts"]
    if c["waiting"] + c["queued"] + c["restoring"] + c["syncing"] == 0:
        break
    time.sleep(0.5)
last_done = 0
rows = []
for a in asked:
    d = call("show", a["user"])
    actual = d["finished_at"] - a["asked_at"]
    a["actual"] = actual
    if a["eta"] is None:
        a["error"] = None
    else:
        a["error"] = abs(a["eta"] - actual) / actual
    rows.append(a)
ends = []
for _, u in order:
    d = call("show", u)
    if d["finished_at"]:
        ends.append(d["finished_at"])
run_end = max(ends)
errs = [a["error"] for a in rows if a["error"] is not None]
res = {
    "users": nusers, "active_when_asked": active_then, "asked": len(rows),
    "no_estimate": sum(1 for a in rows if a["error"] is None),
    "median_error": statistics.median(errs) if errs else None,
    "worst_error": max(errs) if errs else None,
    "total_estimate": total_est, "total_status": total_status,
    "total_actual": run_end - asked_status,
    "rows": rows,
}
json.dump(res, open(out, "w"), indent=1)
for a in rows:
    print("   %-8s %9d B  estimate %7s s  actual %7.1f s  error %s" % (
        a["user"], a["size"], "%.1f" % a["eta"] if a["eta"] is not None else a["eta_status"],
        a["actual"], "%.0f %%" % (100 * a["error"]) if a["error"] is not None else "-"))
EOF
"$MR" shutdown --socket "$SOCK" >/dev/null 2>&1 || true
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
elapsed=$(python3 -c "import sys,time; print('%.0f' % (time.time() - float(sys.argv[1])))" "$t0")

read -r median worst asked noest total_est total_act active <<<"$(python3 - "$tmp/result.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda v: "%.0f" % (100 * v) if v is not None else "n/a"
print(f(r["median_error"]), f(r["worst_error"]), r["asked"], r["no_estimate"],
      "%.0f" % r["total_estimate"] if r["total_estimate"] is not None else r["total_status"],
      "%.0f" % r["total_actual"], r["active_when_asked"])
EOF
)"
verdict="met"
if [ "$median" = n/a ] || [ "$median" -gt 25 ] || [ "$worst" -gt 100 ] || [ "$noest" != 0 ]; then
	verdict="missed"
fi
summary="$nusers users ($PART), --jobs $JOBS, asked $asked waiting users once $active were active: median error $median %, worst $worst % (targets 25 %, 100 %): $verdict. Whole run: status said ${total_est} s, it took ${total_act} s. Run ${elapsed} s."
echo "== $summary"

if [ "${RECORD:-0}" = 1 ]; then
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	machine="$(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $load0 at the start, $(cut -d' ' -f1 /proc/loadavg) at the end"
	python3 - docs/BENCHMARKS.md "$summary" "$commit" "$machine" "$tmp/result.json" <<'EOF'
import datetime, json, re, sys
path, summary, commit, machine, res = sys.argv[1:6]
r = json.load(open(res))
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = ["### Run of %s (commit %s)" % (date, commit), "",
         "- Machine: %s." % machine,
         "- " + summary, "",
         "| user | backup bytes | estimate (s) | actual (s) | error |",
         "|---|---:|---:|---:|---:|"]
for a in r["rows"]:
    lines.append("| %s | %d | %s | %.1f | %s |" % (
        a["user"], a["size"], "%.1f" % a["eta"] if a["eta"] is not None else a["eta_status"],
        a["actual"], "%.0f %%" % (100 * a["error"]) if a["error"] is not None else "-"))
block = "\n".join(lines) + "\n\n"
text = open(path).read()
# Each run is added at the end of the "## Estimates" section (made when
# missing): the runs of a round stay side by side.
m = re.search(r"^## Estimates\n.*?(?=^## |\Z)", text, re.S | re.M)
if m:
    body = text[m.start():m.end()].rstrip("\n") + "\n\n"
    text = text[:m.start()] + body + block + text[m.end():]
else:
    text = text.rstrip("\n") + "\n\n## Estimates\n\n" + block
open(path, "w").write(text)
EOF
	echo "== recorded in docs/BENCHMARKS.md"
fi
