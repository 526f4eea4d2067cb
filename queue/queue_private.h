/*
 * queue_private.h: what the files of queue/ share behind queue.h: the user
 * record, the two request lanes (Fenwick trees over sequence slots), the
 * waiting heap, the journal writer state, and the "apply" functions that
 * both the live calls and the journal replay go through, so a replayed
 * queue is the queue that was written.
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
	int64_t seq;            /* sequence number in lane */
	double requested_at, started_at, finished_at;
	uint64_t size_hint;
	uint32_t attempts;
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

struct jbuf {
	uint8_t *p;
	size_t len, cap;
};

struct queue {
	pthread_mutex_t mu;
	pthread_cond_t commit_cv;   /* a batch finished (durable moved or broke) */
	pthread_cond_t gather_cv;   /* a gathering committer may stop waiting */
	struct queue_settings settings;

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

	/* estimate: exponential average of run durations */
	double avg_run;
	uint64_t runs_measured;

	/* journal writer; LSNs count bytes appended since open (never reset,
	 * so tickets stay comparable across compactions) */
	struct jbuf buf, spare;
	uint64_t append_lsn;        /* end of what is in memory */
	uint64_t durable_lsn;       /* end of what is on disk */
	uint64_t file_size;         /* bytes in queue.journal on disk */
	uint64_t live_bytes;        /* estimated size of a snapshot */
	int committing;             /* a thread is writing a batch */
	unsigned waiters;           /* threads inside queue_commit_wait */
	int broken;                 /* a write or fsync failed: refuse more */
	struct mr_error broken_err;
	struct queue_journal_stats stats;
};

/* ---- lane.c --------------------------------------------------------- */

/* Inserts id at seq (growing the window when needed). 0, or -1 with err
 * when the slot is taken or the window would be absurd. */
int lane_insert(struct lane *l, int64_t seq, uint32_t id, struct mr_error *err);
/* Removes the pending entry at seq (which must be there). */
void lane_remove(struct lane *l, int64_t seq);
/* Number of pending entries with a smaller seq than seq (which is pending). */
uint64_t lane_rank(const struct lane *l, int64_t seq);
/* Number of pending entries with a seq up to seq (any seq). */
uint64_t lane_count_upto(const struct lane *l, int64_t seq);
/* id + 1 of the k-th pending entry (0-based), 0 when k >= count. */
uint32_t lane_kth(const struct lane *l, uint64_t k);
/* Notes that seq was handed out, so front/back move past it. */
void lane_note_seq(struct lane *l, int64_t seq);
void lane_free(struct lane *l);
void lane_init(struct lane *l);

/* Waiting heap, ordered by (size_hint, name). */
int heap_push(struct queue *q, uint32_t id);
/* Removes and returns id + 1 of the smallest entry, 0 when empty. */
uint32_t heap_pop(struct queue *q);
/* id + 1 of the smallest entry without removing it, 0 when empty. */
uint32_t heap_peek(const struct queue *q);

/* ---- queue.c: applying changes (live and replay alike) -------------- */

int apply_add(struct queue *q, uint32_t id, const char *name, size_t name_len,
	      uint64_t size_hint, struct mr_error *err);
int apply_request(struct queue *q, uint32_t id, enum lane_id lane, int64_t seq, double now,
		  struct mr_error *err);
int apply_start(struct queue *q, uint32_t id, double now, struct mr_error *err);
int apply_state(struct queue *q, uint32_t id, enum queue_state state, double now,
		const struct queue_counters *c, const char *reason, size_t reason_len,
		struct mr_error *err);
int apply_requeue(struct queue *q, uint32_t id, struct mr_error *err);
/* A whole user from a snapshot block (id must be the next one). */
int apply_snapshot_user(struct queue *q, const struct quser *u, const char *reason,
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
};

/* Journal records, appended to the in-memory buffer under q->mu. Each
 * returns 0 or -1 with err (out of memory, or the journal is broken). */
int journal_add(struct queue *q, const struct quser *u, struct mr_error *err);
int journal_request(struct queue *q, enum rec_type type, enum request_kind kind,
		    const struct quser *u, double now, struct mr_error *err);
int journal_start(struct queue *q, const struct quser *u, double now, struct mr_error *err);
int journal_state(struct queue *q, const struct quser *u, double now, struct mr_error *err);
int journal_requeue(struct queue *q, const struct quser *u, struct mr_error *err);

/* Opens queue.journal in q->dirfd (creating it), replays it into q and cuts
 * off a torn tail. 0 or -1 with err. */
int journal_open(struct queue *q, struct mr_error *err);
/* Makes everything up to ticket durable; called with q->mu held. */
int journal_commit_locked(struct queue *q, uint64_t ticket, struct mr_error *err);
/* Rewrites the journal as a snapshot; called with q->mu held while no batch
 * is being written. */
int journal_compact_locked(struct queue *q, struct mr_error *err);
/* Snapshot size estimate of one user (for q->live_bytes). */
uint64_t journal_user_bytes(const struct quser *u);

#endif
