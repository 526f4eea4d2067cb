/*
 * qtest.h: small helpers shared by the queue tests: a queue in a fresh
 * temporary state folder, and assertions on a user's state and position.
 */
#ifndef MR_TESTS_QTEST_H
#define MR_TESTS_QTEST_H

#include "tests/testutil.h"
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct qt {
	char *dir;
	int dirfd;
	struct queue *q;
	struct queue_settings settings;
};

static inline void qt_open(struct qt *t)
{
	struct mr_error err;

	if (queue_open(t->dirfd, &t->settings, &t->q, &err) < 0)
		fail_msg("queue_open: %s", err.msg);
}

/* A fresh state folder and a queue in it; fsync off unless durable. */
static inline void qt_setup(struct qt *t, int durable)
{
	memset(t, 0, sizeof(*t));
	mr_log_quiet = 1;
	t->dir = tu_tmpdir();
	t->dirfd = tu_open_dir(t->dir);
	t->settings.no_fsync = !durable;
	qt_open(t);
}

static inline void qt_reopen(struct qt *t)
{
	queue_close(&t->q);
	qt_open(t);
}

static inline void qt_teardown(struct qt *t)
{
	queue_close(&t->q);
	mr_io_fault_clear();
	close(t->dirfd);
	tu_rmtree(t->dir);
}

static inline void qt_add(struct qt *t, const char *name, uint64_t size)
{
	struct mr_error err;

	if (queue_add_user(t->q, name, size, &err) < 0)
		fail_msg("queue_add_user(%s): %s", name, err.msg);
}

/* Adds users u0000 .. u<n-1>, sizes from size_of (or 100 each). */
static inline void qt_add_n(struct qt *t, int n)
{
	char name[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "u%04d", i);
		qt_add(t, name, 100);
	}
}

/* kind: 'r' request, 'b' bump, 'e' enqueue. Returns the position. */
static inline int64_t qt_ask(struct qt *t, int kind, const char *name)
{
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;
	int rc;

	if (kind == 'b')
		rc = queue_bump(t->q, name, 1000.0, &info, &ticket, &err);
	else if (kind == 'e')
		rc = queue_enqueue(t->q, name, 1000.0, &info, &ticket, &err);
	else
		rc = queue_request(t->q, name, 1000.0, &info, &ticket, &err);
	if (rc < 0)
		fail_msg("request(%c, %s): %s", kind, name, err.msg);
	if (rc == 1)
		fail_msg("request(%c, %s): unknown user", kind, name);
	if (queue_commit_wait(t->q, ticket, &err) < 0)
		fail_msg("queue_commit_wait: %s", err.msg);
	return info.position;
}

static inline int64_t qt_pos(struct qt *t, const char *name)
{
	struct queue_user_info info;

	if (queue_lookup(t->q, name, &info) != 0)
		fail_msg("queue_lookup(%s): unknown", name);
	return info.position;
}

static inline enum queue_state qt_state(struct qt *t, const char *name)
{
	struct queue_user_info info;

	queue_lookup(t->q, name, &info);
	return info.state;
}

/* Takes the next user; asserts it is `expect` (NULL: nothing runnable). */
static inline void qt_next(struct qt *t, int lanes_only, const char *expect)
{
	char name[MR_USER_NAME_MAX + 1];
	struct mr_error err;
	int prio, rc = queue_next(t->q, lanes_only, 2000.0, name, &prio, &err);

	if (rc < 0)
		fail_msg("queue_next: %s", err.msg);
	if (expect == NULL) {
		if (rc != 0)
			fail_msg("queue_next gave %s, expected nothing", name);
		return;
	}
	if (rc != 1)
		fail_msg("queue_next gave nothing, expected %s", expect);
	if (strcmp(name, expect) != 0)
		fail_msg("queue_next gave %s, expected %s", name, expect);
}

static inline void qt_set(struct qt *t, const char *name, enum queue_state s, const char *reason)
{
	struct mr_error err;

	if (queue_set_state(t->q, name, s, reason, NULL, 3000.0, &err) < 0)
		fail_msg("queue_set_state(%s, %s): %s", name, queue_state_name(s), err.msg);
}

/* Every user's info, in name order, for comparing two queues. */
struct qt_dump {
	struct queue_user_info *v;
	size_t n, cap;
};

static inline int qt_dump_one(void *arg, const struct queue_user_info *info)
{
	struct qt_dump *d = arg;

	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->v = realloc(d->v, d->cap * sizeof(*d->v));
		assert_non_null(d->v);
	}
	d->v[d->n++] = *info;
	return 0;
}

static inline struct qt_dump qt_dump(struct qt *t)
{
	struct qt_dump d = { 0 };

	queue_foreach_user(t->q, qt_dump_one, &d);
	return d;
}

static inline void qt_dump_equal(const struct qt_dump *a, const struct qt_dump *b)
{
	size_t i;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		const struct queue_user_info *x = &a->v[i], *y = &b->v[i];

		assert_string_equal(x->name, y->name);
		if (x->state != y->state || x->position != y->position)
			fail_msg("%s: %s/%lld vs %s/%lld", x->name, queue_state_name(x->state),
				 (long long)x->position, queue_state_name(y->state),
				 (long long)y->position);
		assert_int_equal(x->priority, y->priority);
		assert_true(x->requested_at == y->requested_at);
		assert_true(x->started_at == y->started_at);
		assert_true(x->finished_at == y->finished_at);
		assert_int_equal(x->size_hint, y->size_hint);
		assert_int_equal(x->attempts, y->attempts);
		assert_string_equal(x->reason, y->reason);
		assert_memory_equal(&x->counters, &y->counters, sizeof(x->counters));
	}
}

static inline void qt_dump_free(struct qt_dump *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}

#endif
