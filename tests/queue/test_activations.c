/*
 * test_activations.c: the stream of activations (queue_activations in
 * queue/queue.c): users in the order they went active or got dial tone,
 * each once; seeded at open with the users already active; a new epoch
 * after a restart; reading in pieces; an unknown epoch reads from 0.
 */
#include "tests/queue/qtest.h"

struct got {
	char names[64][32];
	int n;
};

static int take(void *arg, const char *name)
{
	struct got *g = arg;

	if (g->n < 64)
		snprintf(g->names[g->n++], sizeof(g->names[0]), "%s", name);
	return 0;
}

static void read_from(struct qt *t, uint64_t epoch, uint64_t next, size_t max, struct got *g,
		      struct queue_activations *a)
{
	memset(g, 0, sizeof(*g));
	queue_activations(t->q, epoch, next, max, take, g, a);
}

static void run_to_active(struct qt *t, const char *name)
{
	qt_ask(t, 'r', name);
	qt_next(t, 1, name);
	qt_set(t, name, QUEUE_ACTIVE, NULL);
}

/* In the order they went active; every user once; attention is not in it. */
static void activations_in_order(void **state)
{
	struct queue_activations a;
	struct got g;
	struct qt t;
	struct mr_error err;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 6);
	read_from(&t, 0, 0, 0, &g, &a);
	assert_int_equal(g.n, 0);
	assert_int_equal(a.total, 0);
	assert_true(a.epoch != 0);
	run_to_active(&t, "u0004");
	run_to_active(&t, "u0001");
	qt_ask(&t, 'r', "u0002");
	qt_next(&t, 1, "u0002");
	qt_set(&t, "u0002", QUEUE_ATTENTION, "guard");
	read_from(&t, a.epoch, 0, 0, &g, &a);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.names[0], "u0004");
	assert_string_equal(g.names[1], "u0001");
	assert_int_equal(a.first, 0);
	assert_int_equal(a.total, 2);
	/* An operator's activate of an attention user comes next. */
	if (queue_set_state(t.q, "u0002", QUEUE_ACTIVE, "by hand", NULL, 4000.0, &err) < 0)
		fail_msg("%s", err.msg);
	/* Dial tone: once, and not again when the user goes active later. */
	assert_int_equal(queue_note_open(t.q, "u0005", &err), 0);
	assert_int_equal(queue_note_open(t.q, "u0005", &err), 1);
	assert_int_equal(queue_note_open(t.q, "nobody", &err), 1);
	run_to_active(&t, "u0005");
	read_from(&t, a.epoch, 2, 0, &g, &a);
	assert_int_equal(a.first, 2);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.names[0], "u0002");
	assert_string_equal(g.names[1], "u0005");
	assert_int_equal(a.total, 4);
	/* Caught up: nothing, the same epoch. */
	read_from(&t, a.epoch, 4, 0, &g, &a);
	assert_int_equal(g.n, 0);
	assert_int_equal(a.first, 4);
	qt_teardown(&t);
}

/* Pieces of at most max; a foreign epoch or a place beyond the end reads
 * from 0. */
static void activations_pieces_and_epochs(void **state)
{
	struct queue_activations a, b;
	struct got g;
	struct qt t;
	char name[32];
	int i;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 10);
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "u%04d", i);
		run_to_active(&t, name);
	}
	read_from(&t, 0, 0, 3, &g, &a);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.names[2], "u0002");
	read_from(&t, a.epoch, 9, 3, &g, &b);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.names[0], "u0009");
	read_from(&t, a.epoch ^ 1, 5, 3, &g, &b);
	assert_int_equal(b.first, 0);
	assert_string_equal(g.names[0], "u0000");
	read_from(&t, a.epoch, 11, 0, &g, &b);
	assert_int_equal(b.first, 0);
	assert_int_equal(g.n, 10);
	qt_teardown(&t);
}

/* A restart: a new epoch, and every user active before it comes first. */
static void activations_after_restart(void **state)
{
	struct queue_activations a, b;
	struct got g;
	struct qt t;

	(void)state;
	qt_setup(&t, 1);
	qt_add_n(&t, 4);
	run_to_active(&t, "u0003");
	run_to_active(&t, "u0000");
	read_from(&t, 0, 0, 0, &g, &a);
	qt_reopen(&t);
	read_from(&t, a.epoch, 2, 0, &g, &b);
	assert_true(b.epoch != a.epoch);
	assert_int_equal(b.first, 0);
	assert_int_equal(g.n, 2);
	/* Seeded in the order added (the order they went active is gone). */
	assert_string_equal(g.names[0], "u0000");
	assert_string_equal(g.names[1], "u0003");
	run_to_active(&t, "u0001");
	read_from(&t, b.epoch, 2, 0, &g, &b);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.names[0], "u0001");
	qt_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(activations_in_order),
		cmocka_unit_test(activations_pieces_and_epochs),
		cmocka_unit_test(activations_after_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
