/*
 * queue_private.h: what the files of queue/ share behind queue.h: the user
 * record, the two request lanes (Fenwick trees over sequence slots), the
 * waiting heap, the journal writer state, and the "apply" functions that
 * both the live calls and the journal replay go through, so a replayed
 * queue is the queue that was written.
 *
 * Who calls whom: queue.c and lane.c call down into the lanes and the heap;
 * queue.c writes every change through journal.c. The one call back up is
 * deliberate: journal.c's replay (and compaction's snapshot) calls queue.c's
 * queue_apply_* functions, so that a replayed queue is built by the very
 * code that built the live one, never by a second copy of it.
 */
#ifndef MR_QUEUE_PRIVATE_H
#define MR_QUEUE_PRIVATE_H

#include "queue/queue.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Which lane a request put a user in. */
enum lane_id {
	LANE_NONE = 0,
	LANE_PRIO = 1,
	LANE_ENQ = 2,
};

/* How a request record came about (kept in the journal for `show`-style
 * forensics; replay treats them alike). */
enum request_kind {
	REQ_PRIORITY = 0,
	REQ_BUMP = 1,
	REQ_ENQUEUE = 2,
	REQ_RETRY = 3,
};

/* Sequence numbers far outside this range can only come from a corrupt
 * journal; refusing them keeps the slot arithmetic free of overflow. */
#define QUEUE_SEQ_LIMIT ((int64_t)1 << 40)
/* The widest window of pending sequence numbers a lane will index. A real
 * run assigns a few sequence numbers per user; this is far beyond that and
 * bounds the memory a corrupt journal can make us allocate. */
#define QUEUE_SPAN_LIMIT ((int64_t)1 << 24)

struct quser {
	uint64_t hash;
	uint32_t id;            /* index in queue.users, order of adding */
	uint8_t state;          /* enum queue_state */
	uint8_t lane;           /* lane of the latest request (enum lane_id) */
	uint8_t run_lane;       /* lane the current run was taken from */
	uint8_t in_heap;        /* has an entry in the waiting heap */
	uint8_t opened;         /* in the list of activations of this run */
	int64_t seq;            /* sequence number in lane */
	double requested_at, started_at, finished_at;
	uint64_t size_hint;
	uint32_t attempts;
	uint32_t failures;      /* failed runs in a row (memory only) */
	double not_before;      /* a failed run's back-off: not taken before
	                         * this time (memory only) */
	struct queue_counters counters;
	char *reason;           /* NULL when none */
	uint16_t name_len;
	char name[];
};

/* One request lane: pending users indexed by sequence number. slot[i] holds
 * id + 1 of the pending user with seq i - offset (0: none); bit[] is a
 * Fenwick tree over the same slots counting them, so "how many pending
 * before seq s" and "the k-th pending" are O(log cap). */
struct lane {
	int64_t offset;
	size_t cap;             /* number of slots, a power of two (or 0) */
	uint32_t *slot;
	uint32_t *bit;          /* 1-based, cap + 1 entries */
	uint64_t count;         /* pending users in the lane */
	int64_t front;          /* next seq for a bump (goes down) */
	int64_t back;           /* next seq at the end (goes up) */
};

/* What queue_open is for: serving, or `journal check` / `salvage`. */
enum queue_mode {
	QUEUE_MODE_SERVE = 0,
	QUEUE_MODE_CHECK,   /* read only; damage is counted, nothing written */
	QUEUE_MODE_SALVAGE, /* damage skipped, a clean journal written */
};

/* While a version 2 journal is replayed: its snapshot blocks, so records
 * a compaction carried over can be skipped when their user's block already
 * holds them. */
struct snap_block {
	uint32_t first, end;    /* users [first, end) */
	uint64_t as_of;         /* records of them with a smaller seq are in it */
};
struct snap_replay {
	struct snap_block *blocks;
	size_t n, cap;
	int last_seen;          /* the block flagged last was read */
	uint64_t final_as_of;   /* of that block: for global records (PAUSE) */
	uint64_t next;          /* seq of the record due after it */
};

/* Records appended during a compaction, in fixed chunks (never moved, so
 * adding one costs the same however many came before). */
struct carry_chunk {
	struct carry_chunk *next;
	size_t len;
	uint8_t data[256 * 1024];
};
struct carry {
	struct carry_chunk *head, *tail;
	uint64_t bytes;
};

struct jbuf {
	uint8_t *p;
	size_t len, cap;
};

struct queue {
	pthread_mutex_t mu;
	pthread_cond_t commit_cv;   /* a batch finished (durable moved or broke) */
	pthread_cond_t gather_cv;   /* a gathering committer may stop waiting */
	struct queue_settings settings;
	enum queue_mode mode;
	struct queue_journal_report *report; /* check and salvage only */

	int dirfd;                  /* the state folder (dup'd) */
	int lockfd;                 /* queue.lock, flock'd */
	int fd;                     /* queue.journal, opened O_APPEND-free, at its end */

	/* users */
	struct quser **users;
	uint32_t nusers, users_cap;
	uint32_t *table;            /* open addressing: id + 1, 0 = empty */
	size_t table_cap;           /* power of two */
	uint64_t counts[QUEUE_STATE_COUNT];

	struct lane prio, enq;
	uint32_t *heap;             /* waiting users by (size_hint, name), lazy */
	size_t heap_len, heap_cap;

	/* journal writer; LSNs count bytes appended since open (never reset,
	 * so tickets stay comparable across compactions) */
	struct jbuf buf, spare;
	uint64_t append_lsn;        /* end of what is in memory */
	uint64_t durable_lsn;       /* end of what is on disk */
	uint64_t file_size;         /* bytes in queue.journal on disk */
	uint64_t live_bytes;        /* estimated size of a snapshot */
	uint64_t next_seq;          /* sequence number of the next record */
	int paused;                 /* `pause` (journaled) */

	/* The activations of this run (queue_activations): user ids in the
	 * order they became active or got dial tone, seeded at open with the
	 * users already active; memory only, named by a random epoch. */
	uint32_t *opened;
	size_t nopened, opened_cap;
	uint64_t epoch;
	int opened_ready;           /* seeded: apply_state appends from now on */
	struct snap_replay snap;    /* during queue_journal_open only */
	uint32_t *remap;            /* check/salvage: journal id -> id + 1 */
	size_t nremap;

	/* compaction (journal.c): a thread of its own takes the snapshot in
	 * short turns under mu and writes it outside; records appended
	 * meanwhile are copied to carry and written after it */
	int compacting;
	struct carry carry;
	pthread_t compactor;
	int compactor_started, compactor_stop, compact_wanted;
	pthread_cond_t compact_cv;
	int committing;             /* a thread is writing a batch */
	unsigned waiters;           /* threads inside queue_commit_wait */
	int broken;                 /* a write or fsync failed: refuse more */
	struct mr_error broken_err;
	struct queue_journal_stats stats;
};

/* ---- lane.c --------------------------------------------------------- */

/* Inserts id at seq (growing the window when needed). 0, or -1 with err
 * when the slot is taken or the window would be absurd. */
int queue_lane_insert(struct lane *l, int64_t seq, uint32_t id, struct mr_error *err);
/* Removes the pending entry at seq (which must be there). */
void queue_lane_remove(struct lane *l, int64_t seq);
/* Number of pending entries with a smaller seq than seq (which is pending). */
uint64_t queue_lane_rank(const struct lane *l, int64_t seq);
/* Number of pending entries with a seq up to seq (any seq). */
uint64_t queue_lane_count_upto(const struct lane *l, int64_t seq);
/* id + 1 of the k-th pending entry (0-based), 0 when k >= count. */
uint32_t queue_lane_kth(const struct lane *l, uint64_t k);
/* Notes that seq was handed out, so front/back move past it. */
void queue_lane_note_seq(struct lane *l, int64_t seq);
void queue_lane_free(struct lane *l);
void queue_lane_init(struct lane *l);

/* Waiting heap, ordered by (size_hint, name). */
int queue_heap_push(struct queue *q, uint32_t id);
/* Removes and returns id + 1 of the smallest entry, 0 when empty. */
uint32_t queue_heap_pop(struct queue *q);
/* id + 1 of the smallest entry without removing it, 0 when empty. */
uint32_t queue_heap_peek(const struct queue *q);

/* ---- queue.c: applying changes (live and replay alike) -------------- */

int queue_apply_add(struct queue *q, uint32_t id, const char *name, size_t name_len,
	      uint64_t size_hint, struct mr_error *err);
int queue_apply_request(struct queue *q, uint32_t id, enum lane_id lane, int64_t seq, double now,
		  struct mr_error *err);
int queue_apply_start(struct queue *q, uint32_t id, double now, struct mr_error *err);
int queue_apply_state(struct queue *q, uint32_t id, enum queue_state state, double now,
		const struct queue_counters *c, const char *reason, size_t reason_len,
		struct mr_error *err);
int queue_apply_requeue(struct queue *q, uint32_t id, struct mr_error *err);
/* A whole user from a snapshot block (id must be the next one). */
int queue_apply_snapshot_user(struct queue *q, const struct quser *u, const char *reason,
			size_t reason_len, struct mr_error *err);
void queue_free_memory(struct queue *q);

/* ---- journal.c ------------------------------------------------------- */

enum rec_type {
	REC_ADD = 1,
	REC_REQUEST = 2,
	REC_START = 3,
	REC_STATE = 4,
	REC_REQUEUE = 5,
	REC_RETRY = 6,
	REC_SNAPSHOT = 7,
	REC_PAUSE = 8,
};

/* Journal records, appended to the in-memory buffer under q->mu. Each
 * returns 0 or -1 with err (out of memory, or the journal is broken). */
int queue_journal_add(struct queue *q, const struct quser *u, struct mr_error *err);
int queue_journal_request(struct queue *q, enum rec_type type, enum request_kind kind,
		    const struct quser *u, double now, struct mr_error *err);
int queue_journal_start(struct queue *q, const struct quser *u, double now, struct mr_error *err);
int queue_journal_state(struct queue *q, const struct quser *u, double now, struct mr_error *err);
int queue_journal_requeue(struct queue *q, const struct quser *u, struct mr_error *err);
int queue_journal_pause(struct queue *q, int paused, struct mr_error *err);

/* Opens queue.journal in q->dirfd (creating it), replays it into q and cuts
 * off a torn tail. 0 or -1 with err. */
int queue_journal_open(struct queue *q, struct mr_error *err);
/* Makes everything up to ticket durable; called with q->mu held. */
int queue_journal_commit_locked(struct queue *q, uint64_t ticket, struct mr_error *err);
/* Rewrites the journal as a snapshot without holding q->mu for more than
 * a short turn (called without it); records appended meanwhile are kept.
 * 0 or -1 with err (the old journal then stays as it was). */
int queue_journal_compact(struct queue *q, struct mr_error *err);
/* The thread that compacts when a commit finds the journal grown. */
int queue_journal_start_compactor(struct queue *q, struct mr_error *err);
/* Stops and joins it (accepts a queue whose thread never started). */
void queue_journal_stop_compactor(struct queue *q);
/* Snapshot size estimate of one user (for q->live_bytes). */
uint64_t queue_journal_user_bytes(const struct quser *u);

#endif
