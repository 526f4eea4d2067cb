/*
 * test_model.c: a differential test of the queue (queue/queue.c, lane.c,
 * journal.c) against a naive model that scans arrays: thousands of random
 * requests, bumps, enqueues, runs, requeues, retries, state changes,
 * reopens and compactions, after each of which every position and every
 * "next user" must agree. Exercises the Fenwick windows growing at both
 * ends and the lazy waiting heap.
 */
#include "tests/queue/qtest.h"

enum { USERS = 300, STEPS = 30000 };

struct muser {
	char name[16];
	uint64_t size;
	enum queue_state state;
	int lane, run_lane; /* 0 none, 1 priority, 2 enqueue */
	int64_t seq;
};

struct model {
	struct muser u[USERS];
	int64_t front, back, enq_back;
};

static uint64_t rng = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static int64_t model_pos(const struct model *m, int i)
{
	const struct muser *x = &m->u[i];
	int64_t pos = 0;
	int j;

	if (x->state != QUEUE_QUEUED)
		return -1;
	for (j = 0; j < USERS; j++) {
		const struct muser *y = &m->u[j];

		if (y->state != QUEUE_QUEUED)
			continue;
		if (x->lane == 2 && y->lane == 1)
			pos++;
		else if (y->lane == x->lane && y->seq < x->seq)
			pos++;
	}
	return pos;
}

/* The model's next user, -1 when none. */
static int model_next(const struct model *m, int lanes_only)
{
	int best = -1, lane, j;

	for (lane = 1; lane <= 2; lane++) {
		for (j = 0; j < USERS; j++) {
			const struct muser *y = &m->u[j];

			if (y->state == QUEUE_QUEUED && y->lane == lane &&
			    (best < 0 || y->seq < m->u[best].seq))
				best = j;
		}
		if (best >= 0)
			return best;
	}
	if (lanes_only)
		return -1;
	for (j = 0; j < USERS; j++) {
		const struct muser *y = &m->u[j];

		if (y->state != QUEUE_WAITING)
			continue;
		if (best < 0 || y->size < m->u[best].size ||
		    (y->size == m->u[best].size && strcmp(y->name, m->u[best].name) < 0))
			best = j;
	}
	return best;
}

static int is_first_prio(const struct model *m, int i)
{
	return m->u[i].state == QUEUE_QUEUED && m->u[i].lane == 1 && model_pos(m, i) == 0;
}

static void model_requeue(struct muser *x)
{
	if (x->run_lane) {
		x->state = QUEUE_QUEUED;
		x->lane = x->run_lane;
	} else {
		x->state = QUEUE_WAITING;
	}
}

static void check_all(struct qt *t, const struct model *m)
{
	int i;

	for (i = 0; i < USERS; i++) {
		struct queue_user_info info;

		assert_int_equal(queue_lookup(t->q, m->u[i].name, &info), 0);
		if (info.state != m->u[i].state || info.position != model_pos(m, i))
			fail_msg("%s: queue says %s/%lld, model %s/%lld", m->u[i].name,
				 queue_state_name(info.state), (long long)info.position,
				 queue_state_name(m->u[i].state), (long long)model_pos(m, i));
	}
}

static void step(struct qt *t, struct model *m)
{
	int i = (int)rnd(USERS), k;
	struct muser *x = &m->u[i];
	struct mr_error err;

	switch (rnd(16)) {
	case 0: case 1: case 2: case 3:
		if (x->state == QUEUE_WAITING || (x->state == QUEUE_QUEUED && x->lane == 2)) {
			x->state = QUEUE_QUEUED;
			x->lane = 1;
			x->seq = m->back++;
		}
		qt_ask(t, 'r', x->name);
		break;
	case 4:
		if ((x->state == QUEUE_WAITING || x->state == QUEUE_QUEUED) &&
		    !is_first_prio(m, i)) {
			x->state = QUEUE_QUEUED;
			x->lane = 1;
			x->seq = m->front--;
		}
		qt_ask(t, 'b', x->name);
		break;
	case 5: case 6:
		if (x->state == QUEUE_WAITING) {
			x->state = QUEUE_QUEUED;
			x->lane = 2;
			x->seq = m->enq_back++;
		}
		qt_ask(t, 'e', x->name);
		break;
	case 7: case 8: case 9: {
		int lanes_only = (int)rnd(2);

		k = model_next(m, lanes_only);
		qt_next(t, lanes_only, k < 0 ? NULL : m->u[k].name);
		if (k >= 0) {
			m->u[k].run_lane = m->u[k].state == QUEUE_QUEUED ? m->u[k].lane : 0;
			m->u[k].state = QUEUE_RESTORING;
		}
		break;
	}
	case 10:
		if (x->state == QUEUE_RESTORING || x->state == QUEUE_SYNCING) {
			assert_int_equal(queue_requeue(t->q, x->name, &err), 0);
			model_requeue(x);
		}
		break;
	case 11:
		if (x->state == QUEUE_RESTORING) {
			qt_set(t, x->name, QUEUE_SYNCING, NULL);
			x->state = QUEUE_SYNCING;
		}
		break;
	case 12:
		if (x->state == QUEUE_RESTORING || x->state == QUEUE_SYNCING) {
			k = (int)rnd(2);
			qt_set(t, x->name, k ? QUEUE_ACTIVE : QUEUE_ATTENTION, "guard tripped");
			x->state = k ? QUEUE_ACTIVE : QUEUE_ATTENTION;
		}
		break;
	case 13:
		k = queue_retry(t->q, x->name, 5.0, &err);
		assert_int_equal(k, x->state == QUEUE_ATTENTION ? 0 : 1);
		if (k == 0) {
			x->state = QUEUE_QUEUED;
			x->lane = 1;
			x->seq = m->back++;
		}
		break;
	default: {
		struct queue_user_info info;

		assert_int_equal(queue_lookup(t->q, x->name, &info), 0);
		assert_int_equal(info.state, x->state);
		assert_int_equal(info.position, model_pos(m, i));
		break;
	}
	}
}

static void test_against_model(void **state)
{
	static struct model m;
	struct qt t;
	int i, s;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.front = -1;
	qt_setup(&t, 0);
	for (i = 0; i < USERS; i++) {
		snprintf(m.u[i].name, sizeof(m.u[i].name), "m%03d", i);
		m.u[i].size = rnd(20);
		m.u[i].state = QUEUE_WAITING;
		qt_add(&t, m.u[i].name, m.u[i].size);
	}
	for (s = 1; s <= STEPS; s++) {
		step(&t, &m);
		if (s % 1000 == 0)
			check_all(&t, &m);
		if (s % 4000 == 0) {
			if (rnd(2))
				assert_int_equal(queue_compact(t.q, NULL), 0);
			/* A restart puts running users back where they came from. */
			qt_reopen(&t);
			for (i = 0; i < USERS; i++) {
				if (m.u[i].state == QUEUE_RESTORING || m.u[i].state == QUEUE_SYNCING)
					model_requeue(&m.u[i]);
			}
			check_all(&t, &m);
		}
	}
	qt_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
