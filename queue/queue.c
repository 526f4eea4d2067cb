/*
 * queue.c: the public side of queue.h: the user table (open addressing by
 * name), the state machine of a user, and the order it is served in.
 *
 * Every change goes through one apply_*() function, used both by the live
 * calls (which then append the matching journal record) and by the journal
 * replay, so the queue after a restart is the queue that was written.
 * lane.c keeps the order, journal.c the file.
 */
#include "queue/queue_private.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#define REASON_MAX 1023

static const char *const state_names[QUEUE_STATE_COUNT] = {
	[QUEUE_WAITING] = "waiting",
	[QUEUE_QUEUED] = "queued",
	[QUEUE_RESTORING] = "restoring",
	[QUEUE_SYNCING] = "syncing",
	[QUEUE_ACTIVE] = "active",
	[QUEUE_ATTENTION] = "attention",
	[QUEUE_UNKNOWN] = "unknown",
};

const char *queue_state_name(enum queue_state s)
{
	if ((unsigned)s >= QUEUE_STATE_COUNT)
		return "unknown";
	return state_names[s];
}

int queue_state_parse(const char *name)
{
	int s;

	for (s = 0; s < QUEUE_STATE_COUNT; s++)
		if (strcmp(name, state_names[s]) == 0)
			return s;
	return -1;
}

/* ---- the user table ------------------------------------------------- */

static uint64_t name_hash(const char *name, size_t len)
{
	return XXH3_64bits(name, len);
}

static struct quser *find_user(const struct queue *q, const char *name, size_t len)
{
	uint64_t h;
	size_t i, mask;

	if (q->table_cap == 0 || len == 0 || len > MR_USER_NAME_MAX)
		return NULL;
	h = name_hash(name, len);
	mask = q->table_cap - 1;
	for (i = (size_t)h & mask;; i = (i + 1) & mask) {
		uint32_t slot = q->table[i];
		struct quser *u;

		if (slot == 0)
			return NULL;
		u = q->users[slot - 1];
		if (u->hash == h && u->name_len == len && memcmp(u->name, name, len) == 0)
			return u;
	}
}

static void table_put(uint32_t *table, size_t cap, const struct quser *u)
{
	size_t i, mask = cap - 1;

	for (i = (size_t)u->hash & mask; table[i] != 0; i = (i + 1) & mask)
		;
	table[i] = u->id + 1;
}

/* Makes room for one more user in users[] and the hash table. */
static int table_reserve(struct queue *q)
{
	if (q->nusers == q->users_cap) {
		uint32_t ncap = q->users_cap ? q->users_cap * 2 : 1024;
		struct quser **n = realloc(q->users, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		q->users = n;
		q->users_cap = ncap;
	}
	if ((size_t)(q->nusers + 1) * 2 > q->table_cap) {
		size_t ncap = q->table_cap ? q->table_cap * 2 : 2048;
		uint32_t *n = calloc(ncap, sizeof(*n));
		uint32_t i;

		if (n == NULL)
			return -1;
		for (i = 0; i < q->nusers; i++)
			table_put(n, ncap, q->users[i]);
		free(q->table);
		q->table = n;
		q->table_cap = ncap;
	}
	return 0;
}

static void set_ustate(struct queue *q, struct quser *u, enum queue_state s)
{
	q->counts[u->state]--;
	q->counts[s]++;
	u->state = (uint8_t)s;
}

static int set_reason(struct queue *q, struct quser *u, const char *reason, size_t len)
{
	char *r = NULL;

	if (len > REASON_MAX)
		len = REASON_MAX;
	if (reason != NULL && len > 0) {
		r = malloc(len + 1);
		if (r == NULL)
			return -1;
		memcpy(r, reason, len);
		r[len] = '\0';
		/* The journal and `show` keep one line per reason. */
		for (size_t i = 0; i < len; i++) {
			if (r[i] == '\0' || r[i] == '\n')
				r[i] = ' ';
		}
	}
	q->live_bytes -= queue_journal_user_bytes(u);
	free(u->reason);
	u->reason = r;
	q->live_bytes += queue_journal_user_bytes(u);
	return 0;
}

static struct lane *lane_of(struct queue *q, enum lane_id id)
{
	return id == LANE_PRIO ? &q->prio : &q->enq;
}

static int bad_user(uint32_t id, const char *what, struct mr_error *err)
{
	mr_error_set(err, EINVAL, "queue: %s of unknown user #%u", what, id);
	return -1;
}

/* ---- the list of activations (queue_activations) -------------------- */

/* Appends u to the list of this run unless it is there. 0 or -1 (memory). */
static int opened_add(struct queue *q, struct quser *u)
{
	uint32_t *n;
	size_t cap;

	if (u->opened)
		return 0;
	if (q->nopened == q->opened_cap) {
		cap = q->opened_cap ? q->opened_cap * 2 : 1024;
		n = realloc(q->opened, cap * sizeof(*n));
		if (n == NULL)
			return -1;
		q->opened = n;
		q->opened_cap = cap;
	}
	q->opened[q->nopened++] = u->id;
	u->opened = 1;
	return 0;
}

/* After the replay: every user already active, in the order added, and a
 * fresh epoch (never 0, the value a follower starts with). */
static int opened_seed(struct queue *q, struct mr_error *err)
{
	uint64_t e = 0;
	uint32_t i;

	if (getrandom(&e, sizeof(e), GRND_NONBLOCK) != (ssize_t)sizeof(e)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		e = XXH3_64bits_withSeed(&ts, sizeof(ts), (uint64_t)getpid());
	}
	q->epoch = e ? e : 1;
	for (i = 0; i < q->nusers; i++)
		if (q->users[i]->state == QUEUE_ACTIVE && opened_add(q, q->users[i]) < 0) {
			mr_error_set(err, ENOMEM, "queue: the list of activations");
			return -1;
		}
	q->opened_ready = 1;
	return 0;
}

/* ---- apply: the state machine (live and replay) --------------------- */

static struct quser *new_user(struct queue *q, uint32_t id, const char *name, size_t len,
			      uint64_t size_hint, struct mr_error *err)
{
	char copy[MR_USER_NAME_MAX + 1];
	struct quser *u;

	if (id != q->nusers) {
		mr_error_set(err, EINVAL, "queue: user #%u added out of order (expected #%u)", id,
			     q->nusers);
		return NULL;
	}
	if (len == 0 || len > MR_USER_NAME_MAX) {
		mr_error_set(err, EINVAL, "queue: invalid user name of %zu bytes", len);
		return NULL;
	}
	memcpy(copy, name, len);
	copy[len] = '\0';
	if (!mr_user_name_valid(copy)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return NULL;
	}
	if (find_user(q, copy, len) != NULL) {
		mr_error_set(err, EEXIST, "queue: user %s added twice", copy);
		return NULL;
	}
	if (table_reserve(q) < 0 || (u = calloc(1, sizeof(*u) + len + 1)) == NULL) {
		mr_error_set(err, ENOMEM, "queue: adding user %s", copy);
		return NULL;
	}
	memcpy(u->name, copy, len + 1);
	u->name_len = (uint16_t)len;
	u->hash = name_hash(copy, len);
	u->id = id;
	u->state = QUEUE_WAITING;
	u->size_hint = size_hint;
	q->users[q->nusers++] = u;
	table_put(q->table, q->table_cap, u);
	q->counts[QUEUE_WAITING]++;
	q->live_bytes += queue_journal_user_bytes(u);
	return u;
}

int queue_apply_add(struct queue *q, uint32_t id, const char *name, size_t name_len,
	      uint64_t size_hint, struct mr_error *err)
{
	struct quser *u = new_user(q, id, name, name_len, size_hint, err);

	if (u == NULL)
		return -1;
	if (queue_heap_push(q, id) < 0) {
		mr_error_set(err, ENOMEM, "queue: waiting list");
		return -1;
	}
	return 0;
}

int queue_apply_request(struct queue *q, uint32_t id, enum lane_id lane, int64_t seq, double now,
		  struct mr_error *err)
{
	struct quser *u;
	int was_queued;

	if (id >= q->nusers)
		return bad_user(id, "request", err);
	u = q->users[id];
	if (lane != LANE_PRIO && lane != LANE_ENQ) {
		mr_error_set(err, EINVAL, "queue: request of %s into lane %d", u->name, (int)lane);
		return -1;
	}
	if (u->state != QUEUE_WAITING && u->state != QUEUE_QUEUED && u->state != QUEUE_ATTENTION) {
		mr_error_set(err, EINVAL, "queue: request of %s while %s", u->name,
			     queue_state_name(u->state));
		return -1;
	}
	was_queued = u->state == QUEUE_QUEUED;
	if (was_queued)
		queue_lane_remove(lane_of(q, u->lane), u->seq);
	if (queue_lane_insert(lane_of(q, lane), seq, id, err) < 0) {
		/* Put it back where it was: that slot is still in its window. */
		if (was_queued)
			queue_lane_insert(lane_of(q, u->lane), u->seq, id, NULL);
		mr_error_prefix(err, "queue: request of %s", u->name);
		return -1;
	}
	if (!was_queued)
		u->requested_at = now;
	if (u->state == QUEUE_ATTENTION) {
		(void)set_reason(q, u, NULL, 0);
		/* `retry`: a fresh count of failures. */
		u->failures = 0;
		u->not_before = 0;
	}
	u->lane = (uint8_t)lane;
	u->seq = seq;
	set_ustate(q, u, QUEUE_QUEUED);
	return 0;
}

int queue_apply_start(struct queue *q, uint32_t id, double now, struct mr_error *err)
{
	struct quser *u;

	if (id >= q->nusers)
		return bad_user(id, "start", err);
	u = q->users[id];
	if (u->state == QUEUE_QUEUED) {
		queue_lane_remove(lane_of(q, u->lane), u->seq);
		u->run_lane = u->lane;
	} else if (u->state == QUEUE_WAITING) {
		u->run_lane = LANE_NONE;
	} else {
		mr_error_set(err, EINVAL, "queue: start of %s while %s", u->name,
			     queue_state_name(u->state));
		return -1;
	}
	set_ustate(q, u, QUEUE_RESTORING);
	u->not_before = 0;
	u->started_at = now;
	u->finished_at = 0;
	u->attempts++;
	/* Dropping a reason allocates nothing, so it cannot fail. */
	(void)set_reason(q, u, NULL, 0);
	return 0;
}

int queue_apply_state(struct queue *q, uint32_t id, enum queue_state state, double now,
		const struct queue_counters *c, const char *reason, size_t reason_len,
		struct mr_error *err)
{
	struct quser *u;
	int running;

	if (id >= q->nusers)
		return bad_user(id, "state change", err);
	u = q->users[id];
	running = u->state == QUEUE_RESTORING || u->state == QUEUE_SYNCING;
	switch (state) {
	case QUEUE_SYNCING:
		if (!running)
			goto bad;
		break;
	case QUEUE_ACTIVE:
	case QUEUE_ATTENTION:
		if (state == QUEUE_ACTIVE && q->opened_ready && opened_add(q, u) < 0) {
			mr_error_set(err, ENOMEM, "queue: the list of activations");
			return -1;
		}
		u->not_before = 0;
		if (state == QUEUE_ACTIVE)
			u->failures = 0;
		if (u->state == QUEUE_QUEUED)
			queue_lane_remove(lane_of(q, u->lane), u->seq);
		u->finished_at = now;
		break;
	default:
		goto bad;
	}
	if (set_reason(q, u, state == QUEUE_ATTENTION ? reason : NULL, reason_len) < 0) {
		mr_error_set(err, ENOMEM, "queue: reason of %s", u->name);
		return -1;
	}
	if (c != NULL)
		u->counters = *c;
	set_ustate(q, u, state);
	return 0;
bad:
	mr_error_set(err, EINVAL, "queue: %s cannot go from %s to %s", u->name,
		     queue_state_name(u->state), queue_state_name(state));
	return -1;
}

int queue_apply_requeue(struct queue *q, uint32_t id, struct mr_error *err)
{
	struct quser *u;

	if (id >= q->nusers)
		return bad_user(id, "requeue", err);
	u = q->users[id];
	if (u->state != QUEUE_RESTORING && u->state != QUEUE_SYNCING) {
		mr_error_set(err, EINVAL, "queue: requeue of %s while %s (not running)", u->name,
			     queue_state_name(u->state));
		return -1;
	}
	if (u->run_lane == LANE_PRIO || u->run_lane == LANE_ENQ) {
		/* Its own sequence number: nobody else can have taken it. */
		if (queue_lane_insert(lane_of(q, u->run_lane), u->seq, id, err) < 0) {
			mr_error_prefix(err, "queue: requeue of %s", u->name);
			return -1;
		}
		u->lane = u->run_lane;
		set_ustate(q, u, QUEUE_QUEUED);
		return 0;
	}
	if (!u->in_heap && queue_heap_push(q, id) < 0) {
		mr_error_set(err, ENOMEM, "queue: waiting list");
		return -1;
	}
	set_ustate(q, u, QUEUE_WAITING);
	return 0;
}

int queue_apply_snapshot_user(struct queue *q, const struct quser *t, const char *reason,
			size_t reason_len, struct mr_error *err)
{
	struct quser *u;

	if (t->state >= QUEUE_UNKNOWN || t->lane > LANE_ENQ || t->run_lane > LANE_ENQ ||
	    t->seq <= -QUEUE_SEQ_LIMIT || t->seq >= QUEUE_SEQ_LIMIT) {
		mr_error_set(err, EINVAL, "queue: snapshot of user #%u is invalid", t->id);
		return -1;
	}
	if (t->state == QUEUE_QUEUED && t->lane == LANE_NONE) {
		mr_error_set(err, EINVAL, "queue: snapshot of queued user #%u has no lane", t->id);
		return -1;
	}
	u = new_user(q, t->id, t->name, t->name_len, t->size_hint, err);
	if (u == NULL)
		return -1;
	u->lane = t->lane;
	u->run_lane = t->run_lane;
	u->seq = t->seq;
	u->requested_at = t->requested_at;
	u->started_at = t->started_at;
	u->finished_at = t->finished_at;
	u->attempts = t->attempts;
	u->counters = t->counters;
	if (set_reason(q, u, reason, reason_len) < 0) {
		mr_error_set(err, ENOMEM, "queue: reason of %s", u->name);
		return -1;
	}
	if (u->lane != LANE_NONE)
		queue_lane_note_seq(lane_of(q, u->lane), u->seq);
	if (t->state == QUEUE_QUEUED) {
		if (queue_lane_insert(lane_of(q, u->lane), u->seq, u->id, err) < 0)
			return -1;
	} else if (t->state == QUEUE_WAITING) {
		if (queue_heap_push(q, u->id) < 0) {
			mr_error_set(err, ENOMEM, "queue: waiting list");
			return -1;
		}
	}
	set_ustate(q, u, (enum queue_state)t->state);
	return 0;
}

/* ---- helpers of the public calls ------------------------------------ */

static int64_t position_of(const struct queue *q, const struct quser *u)
{
	if (u->state != QUEUE_QUEUED)
		return -1;
	if (u->lane == LANE_PRIO)
		return (int64_t)queue_lane_rank(&q->prio, u->seq);
	return (int64_t)(q->prio.count + queue_lane_rank(&q->enq, u->seq));
}

static void fill_info(const struct queue *q, const struct quser *u, struct queue_user_info *info)
{
	memcpy(info->name, u->name, (size_t)u->name_len + 1);
	info->state = (enum queue_state)u->state;
	info->position = position_of(q, u);
	info->priority = u->lane == LANE_PRIO;
	info->requested_at = u->requested_at;
	info->started_at = u->started_at;
	info->finished_at = u->finished_at;
	info->size_hint = u->size_hint;
	info->attempts = u->attempts;
	info->failures = u->failures;
	info->retry_at = u->not_before;
	info->counters = u->counters;
	if (u->reason != NULL)
		strcpy(info->reason, u->reason);
	else
		info->reason[0] = '\0';
}

static void unknown_info(const char *name, struct queue_user_info *info)
{
	if (info == NULL)
		return;
	memset(info, 0, sizeof(*info));
	if (name != NULL)
		snprintf(info->name, sizeof(info->name), "%s", name);
	info->state = QUEUE_UNKNOWN;
	info->position = -1;
}

/* 0 when the journal still takes records, else -1 with the first failure. */
static int writable(struct queue *q, struct mr_error *err)
{
	if (!q->broken)
		return 0;
	if (err != NULL) {
		*err = q->broken_err;
		mr_error_prefix(err, "queue journal unusable since an earlier failure");
	}
	return -1;
}

static struct quser *lookup_name(const struct queue *q, const char *name)
{
	return name == NULL ? NULL : find_user(q, name, strnlen(name, MR_USER_NAME_MAX + 1));
}

/* Under the lock, for a change of user name: the user when the queue can
 * be written and knows it, else NULL with err (ENOENT for an unknown user:
 * "queue: <what> of unknown user <name>"). */
static struct quser *user_to_change(struct queue *q, const char *name, const char *what,
				    struct mr_error *err)
{
	struct quser *u;

	if (writable(q, err) < 0)
		return NULL;
	u = lookup_name(q, name);
	if (u == NULL)
		mr_error_set(err, ENOENT, "queue: %s of unknown user %s", what,
			     name ? name : "(null)");
	return u;
}

/* ---- the public calls ----------------------------------------------- */

static int take_lock(int dirfd, struct mr_error *err)
{
	int fd = mr_io->openat(dirfd, "queue.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		mr_error_set(err, errno, "openat(queue.lock) failed");
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		mr_close(fd);
		if (e == EWOULDBLOCK) {
			mr_error_set(err, 0, "another mailrestore daemon is using this state folder");
			if (err != NULL)
				err->errnum = EWOULDBLOCK;
		} else {
			mr_error_set(err, e, "flock(queue.lock) failed");
		}
		return -1;
	}
	return fd;
}

void queue_free_memory(struct queue *q)
{
	uint32_t i;

	for (i = 0; i < q->nusers; i++) {
		free(q->users[i]->reason);
		free(q->users[i]);
	}
	free(q->users);
	free(q->table);
	free(q->heap);
	free(q->opened);
	queue_lane_free(&q->prio);
	queue_lane_free(&q->enq);
	free(q->buf.p);
	free(q->spare.p);
	while (q->carry.head != NULL) {
		struct carry_chunk *c = q->carry.head;

		q->carry.head = c->next;
		free(c);
	}
}

/* Commits everything up to ticket as one more waiter (the count is what
 * tells the committer's group-commit delay that others are waiting). Call
 * with q->mu held. 0 or -1 with err. */
static int commit_waiting(struct queue *q, uint64_t ticket, struct mr_error *err)
{
	int rc;

	q->waiters++;
	rc = queue_journal_commit_locked(q, ticket, err);
	q->waiters--;
	return rc;
}

static int open_mode(int state_dirfd, const struct queue_settings *settings,
		     enum queue_mode mode, struct queue_journal_report *report, struct queue **q_r,
		     struct mr_error *err)
{
	struct queue *q;
	uint32_t i;
	int rc = -1;

	*q_r = NULL;
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		mr_error_set(err, ENOMEM, "queue_open");
		return -1;
	}
	q->dirfd = q->lockfd = q->fd = -1;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->commit_cv, NULL);
	pthread_cond_init(&q->gather_cv, NULL);
	pthread_cond_init(&q->compact_cv, NULL);
	if (settings != NULL)
		q->settings = *settings;
	q->mode = mode;
	q->report = report;
	q->next_seq = 1;
	if (!(q->settings.commit_delay > 0))
		q->settings.commit_delay = 0.002;
	queue_lane_init(&q->prio);
	queue_lane_init(&q->enq);

	q->dirfd = fcntl(state_dirfd, F_DUPFD_CLOEXEC, 0);
	if (q->dirfd < 0) {
		mr_error_set(err, errno, "fcntl(F_DUPFD_CLOEXEC) of the state folder failed");
		goto out;
	}
	q->lockfd = take_lock(q->dirfd, err);
	if (q->lockfd < 0)
		goto out;
	if (queue_journal_open(q, err) < 0)
		goto out;
	if (mode != QUEUE_MODE_SERVE) {
		rc = 0;
		goto out;
	}

	/* A crash mid-run: the work copy resumes, so the user goes back to
	 * where it was taken from. */
	pthread_mutex_lock(&q->mu);
	for (i = 0; i < q->nusers; i++) {
		struct quser *u = q->users[i];

		if (u->state != QUEUE_RESTORING && u->state != QUEUE_SYNCING)
			continue;
		if (queue_apply_requeue(q, i, err) < 0 || queue_journal_requeue(q, u, err) < 0) {
			pthread_mutex_unlock(&q->mu);
			goto out;
		}
	}
	rc = queue_journal_commit_locked(q, q->append_lsn, err);
	if (rc == 0)
		rc = opened_seed(q, err);
	pthread_mutex_unlock(&q->mu);
	if (rc == 0)
		rc = queue_journal_start_compactor(q, err);
out:
	if (rc < 0) {
		/* Nothing of a failed open may reach the disk. */
		q->broken = 1;
		queue_close(&q);
		return -1;
	}
	*q_r = q;
	return 0;
}

int queue_open(int state_dirfd, const struct queue_settings *settings, struct queue **q_r,
	       struct mr_error *err)
{
	return open_mode(state_dirfd, settings, QUEUE_MODE_SERVE, NULL, q_r, err);
}

int queue_journal_check(int state_dirfd, int salvage, struct queue_journal_report *report,
			struct mr_error *err)
{
	struct queue *q = NULL;

	memset(report, 0, sizeof(*report));
	if (open_mode(state_dirfd, NULL, salvage ? QUEUE_MODE_SALVAGE : QUEUE_MODE_CHECK, report,
		      &q, err) < 0)
		return -1;
	q->broken = 1; /* nothing more to write */
	queue_close(&q);
	return report->damaged_regions > 0 || report->unapplied > 0;
}

int queue_set_paused(struct queue *q, int paused, struct mr_error *err)
{
	queue_ticket t;
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	if (writable(q, err) < 0)
		goto out;
	if (q->paused == (paused != 0)) {
		rc = 0;
		goto out;
	}
	if (queue_journal_pause(q, paused, err) < 0)
		goto out;
	q->paused = paused != 0;
	t = q->append_lsn;
	rc = commit_waiting(q, t, err);
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int queue_paused(struct queue *q)
{
	int p;

	pthread_mutex_lock(&q->mu);
	p = q->paused;
	pthread_mutex_unlock(&q->mu);
	return p;
}

void queue_close(struct queue **qp)
{
	struct queue *q = qp ? *qp : NULL;
	struct mr_error err;

	if (q == NULL)
		return;
	queue_journal_stop_compactor(q);
	if (q->fd >= 0) {
		pthread_mutex_lock(&q->mu);
		if (!q->broken && q->durable_lsn < q->append_lsn &&
		    queue_journal_commit_locked(q, q->append_lsn, &err) < 0)
			mr_log("queue: last records not saved: %s", err.msg);
		pthread_mutex_unlock(&q->mu);
	}
	mr_close(q->fd);
	mr_close(q->lockfd);
	mr_close(q->dirfd);
	queue_free_memory(q);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->commit_cv);
	pthread_cond_destroy(&q->gather_cv);
	pthread_cond_destroy(&q->compact_cv);
	free(q);
	*qp = NULL;
}

int queue_add_user(struct queue *q, const char *name, uint64_t size_hint, struct mr_error *err)
{
	int rc = -1;

	if (name == NULL || !mr_user_name_valid(name)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	pthread_mutex_lock(&q->mu);
	if (writable(q, err) < 0)
		goto out;
	if (lookup_name(q, name) != NULL) {
		rc = 0;
		goto out;
	}
	if (queue_apply_add(q, q->nusers, name, strlen(name), size_hint, err) < 0)
		goto out;
	if (queue_journal_add(q, q->users[q->nusers - 1], err) < 0)
		goto out;
	rc = 1;
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

/* The three kinds of request: decides what changes, applies it and
 * journals it. */
static int request(struct queue *q, const char *name, double now, enum request_kind kind,
		   struct queue_user_info *info_r, queue_ticket *ticket_r, struct mr_error *err)
{
	struct quser *u;
	enum lane_id lane = LANE_NONE;
	int64_t seq = 0;
	int rc = -1;

	if (ticket_r != NULL)
		*ticket_r = 0;
	pthread_mutex_lock(&q->mu);
	if (writable(q, err) < 0)
		goto out;
	u = lookup_name(q, name);
	if (u == NULL) {
		unknown_info(name, info_r);
		rc = 1;
		goto out;
	}
	switch (kind) {
	case REQ_PRIORITY:
		if (u->state == QUEUE_WAITING || (u->state == QUEUE_QUEUED && u->lane == LANE_ENQ))
			lane = LANE_PRIO, seq = q->prio.back;
		break;
	case REQ_BUMP:
		if (u->state == QUEUE_WAITING || (u->state == QUEUE_QUEUED &&
		    !(u->lane == LANE_PRIO && queue_lane_rank(&q->prio, u->seq) == 0)))
			lane = LANE_PRIO, seq = q->prio.front;
		break;
	case REQ_ENQUEUE:
		if (u->state == QUEUE_WAITING)
			lane = LANE_ENQ, seq = q->enq.back;
		break;
	default:
		break;
	}
	if (lane != LANE_NONE) {
		if (queue_apply_request(q, u->id, lane, seq, now, err) < 0)
			goto out;
		if (queue_journal_request(q, REC_REQUEST, kind, u, now, err) < 0)
			goto out;
	}
	/* A repeat waits for whatever is buffered, its first request included. */
	if (ticket_r != NULL)
		*ticket_r = q->append_lsn;
	if (info_r != NULL)
		fill_info(q, u, info_r);
	rc = 0;
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int queue_request(struct queue *q, const char *name, double now, struct queue_user_info *info_r,
		  queue_ticket *ticket_r, struct mr_error *err)
{
	return request(q, name, now, REQ_PRIORITY, info_r, ticket_r, err);
}

int queue_bump(struct queue *q, const char *name, double now, struct queue_user_info *info_r,
	       queue_ticket *ticket_r, struct mr_error *err)
{
	return request(q, name, now, REQ_BUMP, info_r, ticket_r, err);
}

int queue_enqueue(struct queue *q, const char *name, double now, struct queue_user_info *info_r,
		  queue_ticket *ticket_r, struct mr_error *err)
{
	return request(q, name, now, REQ_ENQUEUE, info_r, ticket_r, err);
}

int queue_commit_wait(struct queue *q, queue_ticket ticket, struct mr_error *err)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	rc = commit_waiting(q, ticket, err);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

/* The first user of lane whose back-off is over, or NULL. Users in
 * back-off are few (they go to attention after a few failures), so the
 * scan past them is short. */
static struct quser *lane_first_due(struct queue *q, struct lane *l, double now)
{
	uint32_t slot;
	uint64_t k;

	for (k = 0; k < l->count && (slot = queue_lane_kth(l, k)) != 0; k++)
		if (q->users[slot - 1]->not_before <= now)
			return q->users[slot - 1];
	return NULL;
}

/* The smallest waiting user whose back-off is over (*u_r NULL when none);
 * those passed over go back into the heap. 0 or -1 (ENOMEM). */
static int heap_first_due(struct queue *q, double now, struct quser **u_r, struct mr_error *err)
{
	uint32_t *later = NULL, *grown, slot;
	size_t n = 0, cap = 0, i;
	struct quser *u;
	int rc = 0;

	*u_r = NULL;
	/* Lazy deletion: entries of users who left waiting are dropped. */
	while ((slot = queue_heap_pop(q)) != 0) {
		u = q->users[slot - 1];
		if (u->state != QUEUE_WAITING)
			continue;
		if (u->not_before <= now) {
			*u_r = u;
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(later, cap * sizeof(*later));
			if (grown == NULL) {
				queue_heap_push(q, u->id);
				mr_error_set(err, ENOMEM, "queue: waiting list");
				rc = -1;
				break;
			}
			later = grown;
		}
		later[n++] = u->id;
	}
	/* queue_heap_pop() cleared in_heap: the ids go back in. */
	for (i = 0; i < n; i++)
		if (queue_heap_push(q, later[i]) < 0 && rc == 0) {
			mr_error_set(err, ENOMEM, "queue: waiting list");
			rc = -1;
		}
	free(later);
	return rc;
}

int queue_next(struct queue *q, int lanes_only, double now, char *name_r, int *was_priority,
	       struct mr_error *err)
{
	struct quser *u = NULL;
	queue_ticket ticket;
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	if (writable(q, err) < 0)
		goto out;
	u = lane_first_due(q, &q->prio, now);
	if (u == NULL)
		u = lane_first_due(q, &q->enq, now);
	if (u == NULL && !lanes_only && heap_first_due(q, now, &u, err) < 0)
		goto out;
	if (u == NULL) {
		rc = 0;
		goto out;
	}
	if (queue_apply_start(q, u->id, now, err) < 0 || queue_journal_start(q, u, now, err) < 0)
		goto out;
	memcpy(name_r, u->name, (size_t)u->name_len + 1);
	if (was_priority != NULL)
		*was_priority = u->run_lane == LANE_PRIO;
	ticket = q->append_lsn;
	rc = commit_waiting(q, ticket, err) < 0 ? -1 : 1;
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int queue_set_state(struct queue *q, const char *name, enum queue_state state,
		    const char *reason, const struct queue_counters *counters, double now,
		    struct mr_error *err)
{
	struct quser *u;
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	u = user_to_change(q, name, "state change", err);
	if (u == NULL)
		goto out;
	if (queue_apply_state(q, u->id, state, now, counters, reason, reason ? strlen(reason) : 0,
			err) < 0)
		goto out;
	if (queue_journal_state(q, u, now, err) < 0)
		goto out;
	rc = 0;
	if (state == QUEUE_ACTIVE || state == QUEUE_ATTENTION) {
		rc = commit_waiting(q, q->append_lsn, err);
	}
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int queue_requeue(struct queue *q, const char *name, struct mr_error *err)
{
	struct quser *u;
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	u = user_to_change(q, name, "requeue", err);
	if (u == NULL)
		goto out;
	if (queue_apply_requeue(q, u->id, err) < 0 || queue_journal_requeue(q, u, err) < 0)
		goto out;
	rc = 0;
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int queue_requeue_failed(struct queue *q, const char *name, double not_before,
			 struct mr_error *err)
{
	struct quser *u;

	if (queue_requeue(q, name, err) < 0)
		return -1;
	pthread_mutex_lock(&q->mu);
	u = lookup_name(q, name);
	if (u != NULL) {
		u->failures++;
		u->not_before = not_before;
	}
	pthread_mutex_unlock(&q->mu);
	return 0;
}

int queue_retry(struct queue *q, const char *name, double now, struct mr_error *err)
{
	struct quser *u;
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	if (writable(q, err) < 0)
		goto out;
	u = lookup_name(q, name);
	if (u != NULL && u->state != QUEUE_ATTENTION && u->not_before > 0) {
		/* Waiting out a failed run's back-off: it may run now. */
		u->not_before = 0;
		u->failures = 0;
		rc = 0;
		goto out;
	}
	if (u == NULL || u->state != QUEUE_ATTENTION) {
		rc = 1;
		goto out;
	}
	if (queue_apply_request(q, u->id, LANE_PRIO, q->prio.back, now, err) < 0 ||
	    queue_journal_request(q, REC_RETRY, REQ_RETRY, u, now, err) < 0)
		goto out;
	rc = commit_waiting(q, q->append_lsn, err);
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int queue_lookup(struct queue *q, const char *name, struct queue_user_info *info_r)
{
	struct quser *u;

	pthread_mutex_lock(&q->mu);
	u = lookup_name(q, name);
	if (u != NULL)
		fill_info(q, u, info_r);
	pthread_mutex_unlock(&q->mu);
	if (u == NULL) {
		unknown_info(name, info_r);
		return 1;
	}
	return 0;
}

void queue_foreach_queued(struct queue *q, size_t max,
			  int (*fn)(void *arg, const struct queue_user_info *info), void *arg)
{
	struct queue_cursor cur = { 0, 0, 0 };

	queue_foreach_queued_after(q, &cur, max, fn, arg);
}

void queue_foreach_queued_after(struct queue *q, struct queue_cursor *cur, size_t max,
				int (*fn)(void *arg, const struct queue_user_info *info),
				void *arg)
{
	struct queue_user_info *info = malloc(sizeof(*info));
	uint64_t k, given = 0;
	int l;

	if (info == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	/* The priority lane, then the other, each in sequence order: what
	 * comes after the cursor is found by its lane and seq, not by a
	 * position that moves whenever someone starts or asks. */
	for (l = cur->given ? cur->lane : 0; l < 2; l++) {
		const struct lane *lane = l == 0 ? &q->prio : &q->enq;

		k = cur->given && l == cur->lane ? queue_lane_count_upto(lane, cur->seq) : 0;
		for (; k < lane->count; k++) {
			const struct quser *u = q->users[queue_lane_kth(lane, k) - 1];

			if (max != 0 && given == max)
				goto out;
			fill_info(q, u, info);
			given++;
			cur->given = 1;
			cur->lane = l;
			cur->seq = u->seq;
			if (fn(arg, info) != 0)
				goto out;
		}
	}
out:
	pthread_mutex_unlock(&q->mu);
	free(info);
}

int queue_foreach_in_state(struct queue *q, int state, uint64_t *cursor, size_t max,
			   int (*fn)(void *arg, const struct queue_user_info *info), void *arg)
{
	struct queue_user_info *info = malloc(sizeof(*info));
	uint64_t id = *cursor;
	size_t given = 0;
	int more = 0;

	if (info == NULL)
		return -1;
	pthread_mutex_lock(&q->mu);
	for (; id < q->nusers; id++) {
		const struct quser *u = q->users[id];

		if (state >= 0 && u->state != state)
			continue;
		if (max != 0 && given == max) {
			more = 1;
			break;
		}
		fill_info(q, u, info);
		given++;
		if (fn(arg, info) != 0) {
			id++;
			more = id < q->nusers;
			break;
		}
	}
	pthread_mutex_unlock(&q->mu);
	*cursor = id;
	free(info);
	return more;
}

/* The background order of queue_next(): (size_hint, name). */
static int by_size(const void *a, const void *b)
{
	const struct quser *ua = *(const struct quser *const *)a;
	const struct quser *ub = *(const struct quser *const *)b;

	if (ua->size_hint != ub->size_hint)
		return ua->size_hint < ub->size_hint ? -1 : 1;
	return strcmp(ua->name, ub->name);
}

void queue_foreach_order(struct queue *q, int with_waiting,
			 int (*fn)(void *arg, const struct queue_user_info *info), void *arg)
{
	struct queue_user_info *info = malloc(sizeof(*info));
	struct quser **waiting = NULL;
	size_t i, n = 0;
	uint64_t k;
	int l;

	if (info == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	for (l = 0; l < 2; l++) {
		const struct lane *lane = l == 0 ? &q->prio : &q->enq;

		for (k = 0; k < lane->count; k++) {
			fill_info(q, q->users[queue_lane_kth(lane, k) - 1], info);
			if (fn(arg, info) != 0)
				goto out;
		}
	}
	if (!with_waiting || q->heap_len == 0)
		goto out;
	/* The heap is lazy: users who left the waiting state stay in it
	 * until popped. */
	waiting = malloc(q->heap_len * sizeof(*waiting));
	if (waiting == NULL)
		goto out;
	for (i = 0; i < q->heap_len; i++)
		if (q->users[q->heap[i]]->state == QUEUE_WAITING)
			waiting[n++] = q->users[q->heap[i]];
	qsort(waiting, n, sizeof(*waiting), by_size);
	for (i = 0; i < n; i++) {
		fill_info(q, waiting[i], info);
		if (fn(arg, info) != 0)
			break;
	}
out:
	pthread_mutex_unlock(&q->mu);
	free(waiting);
	free(info);
}

static int by_name(const void *a, const void *b)
{
	const struct quser *ua = *(const struct quser *const *)a;
	const struct quser *ub = *(const struct quser *const *)b;

	return strcmp(ua->name, ub->name);
}

void queue_foreach_user(struct queue *q, int (*fn)(void *arg, const struct queue_user_info *info),
			void *arg)
{
	struct queue_user_info *info = malloc(sizeof(*info));
	struct quser **sorted = NULL;
	uint32_t i, n;

	pthread_mutex_lock(&q->mu);
	n = q->nusers;
	if (info == NULL || (n > 0 && (sorted = malloc(n * sizeof(*sorted))) == NULL))
		goto out;
	if (n > 0) {
		memcpy(sorted, q->users, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), by_name);
	}
	for (i = 0; i < n; i++) {
		fill_info(q, sorted[i], info);
		if (fn(arg, info) != 0)
			break;
	}
out:
	pthread_mutex_unlock(&q->mu);
	free(sorted);
	free(info);
}

void queue_activations(struct queue *q, uint64_t epoch, uint64_t next, size_t max,
		       int (*fn)(void *arg, const char *name), void *arg,
		       struct queue_activations *r)
{
	size_t i, end;

	pthread_mutex_lock(&q->mu);
	if (epoch != q->epoch || next > q->nopened)
		next = 0;
	end = q->nopened;
	if (max > 0 && end - (size_t)next > max)
		end = (size_t)next + max;
	for (i = (size_t)next; i < end; i++)
		if (fn(arg, q->users[q->opened[i]]->name) != 0)
			break;
	r->epoch = q->epoch;
	r->first = next;
	r->total = q->nopened;
	pthread_mutex_unlock(&q->mu);
}

int queue_note_open(struct queue *q, const char *name, struct mr_error *err)
{
	struct quser *u;
	int rc = 1;

	pthread_mutex_lock(&q->mu);
	u = lookup_name(q, name);
	if (u != NULL && !u->opened && q->opened_ready) {
		rc = 0;
		if (opened_add(q, u) < 0) {
			mr_error_set(err, ENOMEM, "queue: the list of activations");
			rc = -1;
		}
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void queue_counts(struct queue *q, uint64_t counts[QUEUE_STATE_COUNT])
{
	pthread_mutex_lock(&q->mu);
	memcpy(counts, q->counts, sizeof(q->counts));
	pthread_mutex_unlock(&q->mu);
}

uint64_t queue_pending(struct queue *q)
{
	uint64_t n;

	pthread_mutex_lock(&q->mu);
	n = q->prio.count + q->enq.count;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void queue_journal_stats(struct queue *q, struct queue_journal_stats *st)
{
	pthread_mutex_lock(&q->mu);
	*st = q->stats;
	st->file_size = q->file_size;
	pthread_mutex_unlock(&q->mu);
}

int queue_compact(struct queue *q, struct mr_error *err)
{
	pthread_mutex_lock(&q->mu);
	if (writable(q, err) < 0) {
		pthread_mutex_unlock(&q->mu);
		return -1;
	}
	pthread_mutex_unlock(&q->mu);
	return queue_journal_compact(q, err);
}
