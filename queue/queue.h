/*
 * queue.h: the affected users, their states, and the order they are served
 * in, kept durable across crashes by a journal.
 *
 * How to use it (the daemon is the one user):
 *   1. queue_open(state_dirfd, &settings, &q, &err) takes an exclusive lock
 *      on the state folder (a second daemon on the same state refuses to
 *      start) and replays the journal; a torn or corrupt tail is dropped.
 *   2. queue_add_user() registers each affected user once (at start; a user
 *      already known keeps its state).
 *   3. Requests: queue_request() (a login, `enqueue --priority`), queue_bump()
 *      (to the front), queue_enqueue() (a batch script's plain enqueue).
 *      Each returns a commit ticket; queue_commit_wait(ticket) returns once
 *      the request is on disk, so the caller answers only what survives a
 *      crash. Many callers share one fsync (group commit).
 *   4. Workers take users with queue_next() and report with
 *      queue_set_state(); queue_requeue() puts a preempted or failed user
 *      back where it was.
 *   5. queue_lookup() answers "where does this user stand" in O(log n):
 *      no scan, so thousands of logins a second can ask.
 *
 * Order: priority requests first, in the order they were made (a bump goes
 * before all of them); then plain enqueues in the order made; then waiting
 * users, smallest size_hint first (so most users come back soonest). A
 * user's position is the number of priority requests ahead of it that have
 * not started (for plain-enqueued users: every pending priority request plus
 * the plain requests ahead). Asking again never moves a user back.
 *
 * Thread safety: every function may be called from any thread; the queue
 * holds one internal lock.
 *
 * The journal is the file "queue.journal" in the state folder; its format
 * (header, records, checksums), what counts as damage and how compaction
 * works are described once, at the top of queue/journal.c. What a caller
 * sees: a torn tail (a crash mid-write) is cut back at open; damage followed
 * by a valid record makes queue_open() fail with errnum EBADMSG and a
 * message naming the offset, the file left as it is (queue_journal_check()
 * reports it and, with salvage, keeps every valid record); a foreign file or
 * an unknown major version is refused and left as it is. Compaction runs
 * without stopping the queue (queue_compact()). Users found restoring or
 * syncing at open (a crash mid-run) are put back as by queue_requeue(): their
 * work copies resume. The lock is flock() on "queue.lock".
 */
#ifndef MR_QUEUE_H
#define MR_QUEUE_H

#include "common/common.h"

#include <stdint.h>

enum queue_state {
	QUEUE_WAITING = 0, /* affected, nobody asked yet */
	QUEUE_QUEUED,      /* a login or an operator asked */
	QUEUE_RESTORING,
	QUEUE_SYNCING,
	QUEUE_ACTIVE,
	QUEUE_ATTENTION,   /* needs an operator; reason says why */
	QUEUE_UNKNOWN,     /* not an affected user */
	QUEUE_STATE_COUNT
};

/* "waiting", "queued", ... */
const char *queue_state_name(enum queue_state s);
/* The state named name ("attention", ...), or -1 for no such state. */
int queue_state_parse(const char *name);

/* Counters of a user's last run, kept with its state for `show`. */
struct queue_counters {
	uint64_t backup_files, backup_bytes;   /* extracted from the backup */
	uint64_t copied_files, copied_bytes;   /* copied from the source */
	uint64_t renamed, patched_files, attic_files, unreadable;
	uint64_t held_mail;                    /* messages released at activation */
	uint64_t source_bytes_read;            /* file data read from the source */
};

/* What queue_lookup() tells. Strings point into buffers inside the struct. */
struct queue_user_info {
	char name[MR_USER_NAME_MAX + 1];
	enum queue_state state;
	int64_t position;      /* -1 when not waiting in the priority/enqueue lanes */
	int priority;          /* 1 when it came through a priority request */
	double requested_at;   /* 0 when never requested */
	double started_at;     /* 0 until its latest run started */
	double finished_at;    /* 0 until it went active or to attention */
	uint64_t size_hint;
	uint32_t attempts;     /* runs started */
	uint32_t failures;     /* runs that failed in a row since the last
	                        * success or retry (not journaled: a restart
	                        * starts counting afresh) */
	double retry_at;       /* 0, or when a failed run's back-off ends */
	char reason[1024];     /* attention reason, "" otherwise */
	struct queue_counters counters;
};

struct queue_settings {
	/* Group commit: wait at most this long to gather records into one
	 * fsync. 0 means the default (2 ms). */
	double commit_delay;
	/* Don't fsync (tests and benchmarks of pure ordering only). */
	int no_fsync;
};

struct queue;

/* Opens (creating when missing) the journal in state_dirfd and replays it.
 * Fails with errnum EWOULDBLOCK when another process holds the state, with
 * EBADMSG when damage in the middle of the journal is followed by valid
 * records, and with the record's error (EINVAL, ENOMEM) when a whole record
 * of the journal does not apply (the file is left as it is in both cases).
 * settings may be NULL. */
int queue_open(int state_dirfd, const struct queue_settings *settings, struct queue **q_r,
	       struct mr_error *err);
/* Commits what is pending, closes and frees *q, sets it NULL. Accepts NULL. */
void queue_close(struct queue **q);

/* Registers an affected user (waiting when new). Returns 1 when added, 0
 * when already known (its state and place are kept), -1 on error. */
int queue_add_user(struct queue *q, const char *name, uint64_t size_hint, struct mr_error *err);

/* A commit ticket: pass to queue_commit_wait() before answering. */
typedef uint64_t queue_ticket;

/* A priority request (login, `enqueue --priority`). A waiting or plainly
 * enqueued user joins the end of the priority lane; a user already there,
 * running, active or in attention is left where it is. info_r (may be NULL)
 * gets the user's state and position after the request. Returns 0, 1 when
 * the user is not known (QUEUE_UNKNOWN, nothing changed), -1 on error. */
int queue_request(struct queue *q, const char *name, double now, struct queue_user_info *info_r,
		  queue_ticket *ticket_r, struct mr_error *err);
/* `bump`: to the front of the priority lane (also when already in it).
 * Same returns as queue_request. A running, active or attention user is
 * not moved. */
int queue_bump(struct queue *q, const char *name, double now, struct queue_user_info *info_r,
	       queue_ticket *ticket_r, struct mr_error *err);
/* A plain `enqueue`: a waiting user joins the end of the enqueue lane. Same
 * returns as queue_request. */
int queue_enqueue(struct queue *q, const char *name, double now, struct queue_user_info *info_r,
		  queue_ticket *ticket_r, struct mr_error *err);

/* Waits until everything up to ticket is durable. 0, or -1 when the
 * journal write or fsync failed (err says which; the request must then be
 * answered as failed). */
int queue_commit_wait(struct queue *q, queue_ticket ticket, struct mr_error *err);

/* Takes the next user to run: the priority lane first, then the enqueue
 * lane, then (unless lanes_only) waiting users by size; a user in a failed
 * run's back-off (queue_requeue_failed) is passed over until it ends. The
 * user goes to
 * QUEUE_RESTORING, started_at = now, attempts+1 (journaled). Returns 1 with
 * the name copied into name_r (MR_USER_NAME_MAX + 1 bytes) and *was_priority
 * set, 0 when nothing is runnable, -1 on error. */
int queue_next(struct queue *q, int lanes_only, double now, char *name_r, int *was_priority,
	       struct mr_error *err);

/* Records a state change of a running user: QUEUE_SYNCING, QUEUE_ACTIVE or
 * QUEUE_ATTENTION (with reason and finished_at = now); counters may be NULL.
 * QUEUE_ACTIVE and QUEUE_ATTENTION are committed durably before return. */
int queue_set_state(struct queue *q, const char *name, enum queue_state state,
		    const char *reason, const struct queue_counters *counters, double now,
		    struct mr_error *err);

/* Puts a running user back: to the front of its lane when it came from one
 * (a priority user keeps its place at the front), else back to waiting.
 * Used for preemption (a paused background run) and for runs that failed
 * for a reason worth retrying. */
int queue_requeue(struct queue *q, const char *name, struct mr_error *err);

/* A run that failed for a reason worth retrying: the user is put back as
 * by queue_requeue() (journaled), its failure count goes up by one, and
 * queue_next() passes it over until not_before (wall-clock seconds), taking
 * the users behind it instead, so one failing user never holds up the
 * others. The count and the back-off live in memory only. 0 or -1. */
int queue_requeue_failed(struct queue *q, const char *name, double not_before,
			 struct mr_error *err);

/* `retry`: an attention user goes back to queued at the end of the priority
 * lane; a user waiting out a failed run's back-off (queue_requeue_failed)
 * may run at once, with a fresh count of failures. Returns 0, 1 when the
 * user is neither, -1 on error. */
int queue_retry(struct queue *q, const char *name, double now, struct mr_error *err);

/* Looks a user up (O(1) by name, O(log n) for the position). Returns 0 and
 * fills info_r, or 1 when unknown (info_r->state QUEUE_UNKNOWN). */
int queue_lookup(struct queue *q, const char *name, struct queue_user_info *info_r);

/* Calls fn for each user in the priority lane then the enqueue lane, in
 * order, until fn returns nonzero or max (0: all) were given. fn runs with
 * the queue's lock held: it must be quick and must not call the queue. */
void queue_foreach_queued(struct queue *q, size_t max,
			  int (*fn)(void *arg, const struct queue_user_info *info), void *arg);
/* Where a list given in pieces stands: the lane and sequence number of
 * the last user given. Zeroed: nothing given yet (the front). */
struct queue_cursor {
	int given;      /* 0: nothing given yet */
	int lane;       /* the last user's lane (0 priority, 1 enqueue) */
	int64_t seq;    /* its place in that lane */
};
/* Same, going on after *cur and moving *cur past each user given: for a
 * long list sent in pieces, each piece a short hold of the lock. A user
 * who moved ahead of the cursor meanwhile (bumped, asked by a login) is
 * not given again, and one who left the queue shifts nobody past it. */
void queue_foreach_queued_after(struct queue *q, struct queue_cursor *cur, size_t max,
				int (*fn)(void *arg, const struct queue_user_info *info),
				void *arg);
/* Calls fn for the users in state (or in any state when state < 0), in the
 * order they were added, starting at *cursor (0: the first) and at most max
 * of them (0: no limit), for lists sent in pieces: each call is one short
 * hold of the lock and costs the users it passes. *cursor is set where the
 * next call goes on. fn runs with the lock held, as above. Returns 1 when
 * more users may follow, 0 at the end, -1 when out of memory. */
int queue_foreach_in_state(struct queue *q, int state, uint64_t *cursor, size_t max,
			   int (*fn)(void *arg, const struct queue_user_info *info), void *arg);
/* Calls fn for every user not started yet in the order queue_next() takes
 * them: the priority lane, the enqueue lane, then (when with_waiting) the
 * waiting users by (size_hint, name). Stops when fn returns nonzero. fn
 * runs with the queue's lock held, as above; the time estimates
 * (queue/eta.h) are built on this walk. */
void queue_foreach_order(struct queue *q, int with_waiting,
			 int (*fn)(void *arg, const struct queue_user_info *info), void *arg);
/* Calls fn for every known user (any state), in name order. fn runs with
 * the queue's lock held, as above. */
void queue_foreach_user(struct queue *q, int (*fn)(void *arg, const struct queue_user_info *info),
			void *arg);

/* ---- the stream of activations ----------------------------------------
 * For followers on other machines (an MX's release agent, a proxy's
 * snapshot): the users who may log in and receive mail, in the order they
 * came to, for this run of the queue. At queue_open the list is seeded
 * with every user already active (in the order they were added), then
 * each user that goes active (a worker's run, an operator's `activate`, a
 * start that finds T/<user> activated) is appended once, as is a user
 * given dial tone (queue_note_open). Nobody leaves the list: a user never
 * goes back from active (no call of this queue moves an active user), and
 * a dial-tone mailbox stays until the restore merges into it. The list
 * lives in memory; a random 64-bit epoch names the run, so a follower that
 * sees another epoch knows the daemon restarted and reads it again from 0
 * (users active before the restart are seeded first, so nothing is lost). */

/* What queue_activations() answered. */
struct queue_activations {
	uint64_t epoch;  /* this run's epoch (never 0) */
	uint64_t first;  /* index of the first user given */
	uint64_t total;  /* users in the list now */
};

/* Calls fn(arg, name) for the users of the list from index next on, at
 * most max of them (0: no limit), stopping early when fn returns nonzero.
 * When epoch is not the current one (0, or a run before a restart) or
 * next lies beyond the list, it starts from 0. fn runs with the queue's
 * lock held: it must be quick and must not call the queue. *r is filled. */
void queue_activations(struct queue *q, uint64_t epoch, uint64_t next, size_t max,
		       int (*fn)(void *arg, const char *name), void *arg,
		       struct queue_activations *r);

/* A user who may now log in and receive mail though its restore has not
 * run (dial tone): appended to the list of activations unless already
 * there. Returns 0 when appended, 1 when already there or not an affected
 * user, -1 when out of memory. */
int queue_note_open(struct queue *q, const char *name, struct mr_error *err);

/* Users per state into counts[QUEUE_STATE_COUNT]. */
void queue_counts(struct queue *q, uint64_t counts[QUEUE_STATE_COUNT]);
/* Number of requests (priority + enqueue lanes) not started yet. */
uint64_t queue_pending(struct queue *q);

/* What the journal writer has done since queue_open (for `status` and
 * tests of group commit). */
struct queue_journal_stats {
	uint64_t batches;       /* writes of the buffer, each with one fsync */
	uint64_t bytes_written; /* by those writes */
	uint64_t compactions;   /* snapshots written */
	double compact_hold_max;   /* longest a compaction held the queue lock
				    * in one turn (seconds) */
	double compact_hold_cpu_max; /* the CPU time of the thread in that
				      * longest turn (the rest is preemption) */
	double compact_final_max;  /* longest its final write and rename kept
				    * commits waiting (seconds) */
	uint64_t file_size;     /* queue.journal now */
};
void queue_journal_stats(struct queue *q, struct queue_journal_stats *st);

/* Rewrites the journal as a snapshot of the live state (everything still
 * buffered becomes durable with it). A thread of the queue does this on
 * its own when the journal grows past 4 x a snapshot + 1 MiB. The queue is
 * never locked for the whole of it: users are copied in short turns,
 * written and fsync'd outside the lock, and what changed meanwhile is
 * carried over; commits wait only for the final small write and rename.
 * 0 or -1 (the old journal then stays in use). */
int queue_compact(struct queue *q, struct mr_error *err);

/* `pause`: no new user is started while paused. The change is journaled
 * and durable before return, so a pause survives a crash. 0 or -1. */
int queue_set_paused(struct queue *q, int paused, struct mr_error *err);
/* 1 when paused (as restored by queue_open), 0 otherwise. */
int queue_paused(struct queue *q);

/* What queue_journal_check() found. Offsets are bytes from the file's
 * start; a field of "none" holds the file size. */
struct queue_journal_report {
	unsigned version;         /* the file's major version */
	uint64_t size;            /* bytes in queue.journal */
	uint64_t records;         /* valid records that applied */
	uint64_t users;           /* users known after them */
	uint64_t unapplied;       /* whole records that did not apply (skipped) */
	uint64_t damaged_regions; /* damaged stretches followed by valid records */
	uint64_t damaged_bytes;   /* bytes in them */
	uint64_t first_damage;    /* offset of the first one */
	char first_damage_why[128];
	uint64_t torn_bytes;      /* a torn tail (nothing valid after it) */
	uint64_t torn_offset;
	char torn_why[128];
	char aside[64];           /* salvage: name the original was kept under
				   * in the state folder ("" when untouched) */
};

/* `mailrestore journal check|salvage`: reads queue.journal in state_dirfd
 * (under the state's lock: fails with EWOULDBLOCK while a daemon runs)
 * and fills *report. Check writes nothing. Salvage replays every valid
 * record, skipping damaged stretches and records that do not apply, and
 * when anything was not clean (or the file is version 1) keeps the
 * original as report->aside (a hard link) and replaces the journal with a
 * snapshot of what was read. A torn tail is no damage. Returns 0 when no
 * damage was found, 1 when some was (salvage: and was left behind), -1
 * with err. */
int queue_journal_check(int state_dirfd, int salvage, struct queue_journal_report *report,
			struct mr_error *err);

#endif
