/*
 * eta.h: how long the work ahead of a user takes, measured from the work
 * itself. The one model behind every time the daemon tells (login, show,
 * queue, status, watch).
 *
 * How to use it (the daemon is the one user; tests drive it alone):
 *   1. eta_model_new() makes an empty model; eta_model_load(state_dirfd)
 *      fills it with the rates a previous run measured ("eta.rates"), so a
 *      restarted daemon does not start from a guess.
 *   2. After each finished run, eta_model_observe() with the user's cost
 *      key (its newest backup's size, the queue's size_hint), what the run
 *      did (bytes, files) and how long each phase took on its worker (the
 *      whole run: from taking the user off the queue to its activation
 *      recorded, so every per-user cost is in it); eta_model_observe_at()
 *      with the moment it ended too, so that runs that stalled together
 *      are told from sizes that cost more.
 *      eta_model_save() keeps the rates durable (temporary file, fsync,
 *      rename, fsync of the folder).
 *   3. eta_model_cost() predicts one worker's seconds for a user of a given
 *      size; it returns -1 while nothing was measured ("estimating").
 *   4. An estimate: eta_sched_init() with the workers and the seconds left
 *      of the running jobs, eta_sched_background() for each worker whose
 *      job is a background one, then each user's cost in the order the
 *      queue serves them: eta_sched_add_priority() for the priority lane
 *      (in request order: a worker running a background job is theirs
 *      after ETA_PREEMPT_S, the job's rest comes back later), then
 *      eta_sched_add() for plain enqueues and waiting users (smallest
 *      first). Each call returns the seconds until that user is done: the
 *      work ahead of it divided among the workers as they free up, plus its
 *      own run.
 *
 * The model, per phase (extract, sync, whole run): seconds = a * size + b
 * for a user with a backup, b what every user costs whatever its size
 * (taking it from the queue, opening its backup, listing its source
 * folder, the fsyncs and syncfs of the work copy, activation and its
 * records), a the inverse of a worker's rate in bytes of backup per
 * second. Three parts:
 *   - the shape (a and b up to a factor) is a least-squares line over size
 *     bins (ETA_BINS, 2^k KiB each) that keep every size seen, so a slope
 *     does not swing with the latest runs, which are users of about one
 *     size (the background goes smallest first); it is pulled toward a
 *     prior slope as hard as the runs' scatter outweighs the bins' spread
 *     in size; where bins were seen, the cost is read off the segment
 *     between their means (each pulled toward the line by 8 runs' worth);
 *     past the largest bin, the lower of the line and a power of size
 *     fitted to the bins (0.7 to 1: bigger mailboxes hold bigger messages
 *     and cost less per MiB); bins that span less than 1 MiB (tiny users:
 *     their cost is their fixed part) give their slope for about their
 *     span past the largest, and the prior slope goes on beyond. A run over
 *     3x what its size cost counts as 3x in a bin that holds fewer runs
 *     than that prior, a new bin past every size seen included (a stall
 *     of the disk's journal among four logins is not what the size costs;
 *     among many runs, stalls are part of the mean), and two such runs
 *     that ended together (both workers waiting on the disk) count as
 *     what their sizes cost;
 *   - the level: the latest ETA_WINDOW runs, newer ones weighing more
 *     (each older one by ETA_DECAY less) and runs far off weighing less
 *     (Huber weights, so the slow first runs after a start do not set
 *     every estimate), say by what factor the machine now runs above or
 *     below the shape (the ratio of their sums: a wait is a sum of runs);
 *   - the prior slope: the cost per MiB written that the runs showed (from
 *     every run, users without a backup included: they copy MiBs each)
 *     times the MiB written per MiB of backup; ETA_PRIOR_S_PER_MIB before
 *     the runs showed it.
 * A user without a backup (size 0) copies its whole source, which no size
 * tells: it costs the mean of such runs (recent ones weighing more), or a
 * mean run before any. The bytes and files the runs wrote are counted as
 * well, for the rates operators read (bytes and files per second per
 * worker).
 *
 * File format of "eta.rates": a header {magic "MRER", u16 major 3, u16
 * minor 0, u32 header size 16, u32 hash id 1 (xxh3-64)}, then ETA_PHASES
 * blocks of little-endian IEEE doubles {runs, n, bytes, files, seconds,
 * per_written, ratio, nb_sum, nb_w, then ETA_BINS triples {weight, MiB,
 * seconds} (sums), then ETA_WINDOW triples {MiB of backup, MiB written,
 * seconds} of which the first n are the window, oldest first}, then the
 * u64 xxh3-64 of the blocks. A short file, a bad checksum, a foreign magic,
 * another major version (1 kept sums, 2 neither writes nor bins) or a value
 * out of range is refused with a log line (the model stays empty; nothing
 * is guessed).
 *
 * Thread safety: a model holds its own lock; a schedule belongs to its
 * caller.
 */
#ifndef MR_QUEUE_ETA_H
#define MR_QUEUE_ETA_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

#define ETA_RATES_FILE "eta.rates"
/* Runs the line is fitted to, the newest. */
#define ETA_WINDOW 64
/* Size bins of the model's shape: 2^k KiB and up, k = 0..ETA_BINS-1. */
#define ETA_BINS 32
/* Weight of a run against the next newer one. */
#define ETA_DECAY 0.97
/* Seconds per MiB of backup until the runs carry a slope (a worker that
 * writes 50 MiB/s). */
#define ETA_PRIOR_S_PER_MIB 0.02
/* The most workers a schedule follows. */
#define ETA_MAX_WORKERS 256

enum eta_phase {
	ETA_EXTRACT = 0, /* the backup into the work copy */
	ETA_SYNC,        /* the work copy against the source, and activation */
	ETA_RUN,         /* the whole run, start to active */
	ETA_PHASES
};

/* What a phase's measurements say, for status. */
struct eta_rates {
	double runs;              /* runs measured (kept across restarts) */
	double seconds_per_byte;  /* a (0 before any run) */
	double seconds_per_user;  /* b */
	double bytes_per_second;  /* written per worker, over the runs seen */
	double files_per_second;
};

struct eta_model;

/* A new empty model, or NULL (out of memory). Free with eta_model_free(). */
struct eta_model *eta_model_new(void);
/* Frees *m and sets it NULL. Accepts NULL. */
void eta_model_free(struct eta_model **m);

/* Records one phase of a finished run on one worker: size is the user's
 * cost key (backup size), bytes and files what the phase wrote, seconds
 * its duration. Negative or non-finite seconds are ignored. */
void eta_model_observe(struct eta_model *m, enum eta_phase phase, uint64_t size, uint64_t bytes,
		       uint64_t files, double seconds);
/* eta_model_observe(), with the moment the run ended (seconds on any clock
 * the caller keeps for every run, such as CLOCK_MONOTONIC; < 0 unknown).
 * Two runs far above what their sizes cost that ended together (within 10 %
 * of the shorter one) waited on the disk together, not on their sizes:
 * the model counts both at what their sizes cost. */
void eta_model_observe_at(struct eta_model *m, enum eta_phase phase, uint64_t size,
			  uint64_t bytes, uint64_t files, double seconds, double ended);
/* One worker's predicted seconds for a phase of a user of this size; -1
 * when the phase has no measurement yet. Never below 0 otherwise. */
double eta_model_cost(struct eta_model *m, enum eta_phase phase, uint64_t size);
/* 1 when the whole-run line has at least one run behind it. */
int eta_model_measured(struct eta_model *m);
/* Fills rates_r for a phase. */
void eta_model_rates(struct eta_model *m, enum eta_phase phase, struct eta_rates *rates_r);

/* Reads ETA_RATES_FILE from dirfd into m (replacing what m held). Returns
 * 1 when loaded, 0 when there is no file, -1 with err when the file is
 * unreadable or refused (m is left empty then). */
int eta_model_load(struct eta_model *m, int dirfd, struct mr_error *err);
/* Writes m to ETA_RATES_FILE in dirfd durably: "eta.rates.tmp" written and
 * fsync'd, renamed over, the folder fsync'd. 0 or -1 with err (the old
 * file, if any, is then still whole). */
int eta_model_save(struct eta_model *m, int dirfd, struct mr_error *err);

/* Logins yet to come. A login takes a waiting user out of the line and
 * ahead of everyone still in it, so the wait of a user in the line grows
 * by the runs of the users behind it who log in before its turn: no
 * figure from the line as it stands can know them, and in a morning's
 * rush they are most of the wait. What the logins so far say is their
 * hazard h, the logins of waiting users per waiting user per second
 * (a decayed count over a decayed sum of waiting users times seconds).
 * A user whose line-as-it-stands wait is t, with the runs of the users
 * behind it costing C seconds on one worker, is then done after
 *   t' = t + h * C * t' / workers, so t' = t / (1 - h * C / workers):
 * each second it waits, h * C seconds of runs arrive ahead of it. When
 * logins would take more than ETA_JUMP_MAX of the workers' time, that
 * share is used (the line then moves at a quarter of its speed or less;
 * the figure says so without promising more). */
#define ETA_JUMP_TAU 600.0
/* A prior of no login over this many seconds of the line as it is: one
 * early login among a few waiting users is not a rush. */
#define ETA_JUMP_PRIOR_S 10.0
#define ETA_JUMP_MAX 0.75

struct eta_jumps {
	double at;       /* the time of the last note (any clock in seconds) */
	double waiting;  /* users in the line since then */
	double n;        /* logins of waiting users, decayed by ETA_JUMP_TAU */
	double exposure; /* waiting users times seconds, decayed alike */
};

/* Starts at `now` with `waiting` users in the line. */
void eta_jumps_init(struct eta_jumps *j, double now, double waiting);
/* Advances to `now`, counting `jumped` users who just left the line for
 * the priority lane, and `waiting` users in the line from now on. */
void eta_jumps_note(struct eta_jumps *j, double now, double waiting, unsigned jumped);
/* The hazard at `now` (per waiting user per second; 0 before any login). */
double eta_jumps_hazard(const struct eta_jumps *j, double now);
/* The factor a waiting user's time grows by: 1 / (1 - h * behind /
 * workers), behind the seconds of runs of the users behind it; at most
 * 1 / (1 - ETA_JUMP_MAX). */
double eta_jumps_stretch(double hazard, double behind, unsigned workers);

/* Seconds a priority user waits for a worker busy with a background job:
 * the daemon's tick notices the request (every 0.1 s), the job stops at
 * its next file boundary, the worker takes the user. */
#define ETA_PREEMPT_S 0.1

/* A schedule: when each worker is free next, in seconds from now. */
struct eta_sched {
	unsigned workers;
	double free_at[ETA_MAX_WORKERS];
	unsigned char background[ETA_MAX_WORKERS]; /* its running job gives way */
	double deferred[ETA_MAX_WORKERS]; /* the rest of jobs that gave way */
	unsigned ndeferred;
	double preempt_at; /* when the next job can give way (one at a time) */
	double last;  /* the latest finish handed out so far */
};

/* Starts a schedule of `workers` workers (at least 1, at most
 * ETA_MAX_WORKERS) of which the first nrunning are busy for running_left[i]
 * more seconds (values below 0 count as 0; extra values are ignored). */
void eta_sched_init(struct eta_sched *s, unsigned workers, const double *running_left,
		    size_t nrunning);
/* Worker i (< nrunning of eta_sched_init) runs a background job: a
 * priority user takes the worker after ETA_PREEMPT_S, and the job's rest
 * goes back to the queue, ahead of the users who are not priority. */
void eta_sched_background(struct eta_sched *s, unsigned i);
/* The next user in the order, costing `cost` seconds on one worker: it
 * starts on the worker free first (after the rest of jobs that gave way to
 * priority users). Returns the seconds until it is done. */
double eta_sched_add(struct eta_sched *s, double cost);
/* The same for a user of the priority lane: a worker running a background
 * job counts as free after ETA_PREEMPT_S (the daemon stops one job at a
 * time: each further one ETA_PREEMPT_S later). */
double eta_sched_add_priority(struct eta_sched *s, double cost);
/* Seconds until every worker is free (the whole schedule is done). */
double eta_sched_end(const struct eta_sched *s);

#endif
