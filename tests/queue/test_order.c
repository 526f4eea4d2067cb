/*
 * test_order.c: the order users are served in and the positions they are
 * told (queue/queue.c, queue/lane.c): priority FIFO, bump to the front, the
 * plain enqueue lane, waiting users smallest first, exact positions, asking
 * again never moving back, requeue keeping the place, retry.
 */
#include "tests/queue/qtest.h"

static void test_priority_fifo(void **state)
{
	struct qt t;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 10);
	assert_int_equal(qt_ask(&t, 'r', "u0003"), 0);
	assert_int_equal(qt_ask(&t, 'r', "u0001"), 1);
	assert_int_equal(qt_ask(&t, 'r', "u0007"), 2);
	assert_int_equal(qt_state(&t, "u0001"), QUEUE_QUEUED);
	assert_int_equal(qt_pos(&t, "u0000"), -1);
	assert_int_equal(qt_state(&t, "u0000"), QUEUE_WAITING);
	assert_int_equal(queue_pending(t.q), 3);
	qt_next(&t, 1, "u0003");
	assert_int_equal(qt_pos(&t, "u0001"), 0);
	assert_int_equal(qt_pos(&t, "u0007"), 1);
	assert_int_equal(qt_pos(&t, "u0003"), -1);
	assert_int_equal(qt_state(&t, "u0003"), QUEUE_RESTORING);
	qt_next(&t, 1, "u0001");
	qt_next(&t, 1, "u0007");
	qt_next(&t, 1, NULL);
	qt_teardown(&t);
}

static void test_bump_to_front(void **state)
{
	struct qt t;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 10);
	qt_ask(&t, 'r', "u0000");
	qt_ask(&t, 'r', "u0001");
	qt_ask(&t, 'r', "u0002");
	assert_int_equal(qt_ask(&t, 'b', "u0002"), 0);
	assert_int_equal(qt_pos(&t, "u0000"), 1);
	assert_int_equal(qt_pos(&t, "u0001"), 2);
	/* A bump of a waiting user goes before everyone too. */
	assert_int_equal(qt_ask(&t, 'b', "u0005"), 0);
	assert_int_equal(qt_pos(&t, "u0002"), 1);
	/* Bumping the first one changes nothing. */
	assert_int_equal(qt_ask(&t, 'b', "u0005"), 0);
	assert_int_equal(qt_pos(&t, "u0002"), 1);
	qt_next(&t, 1, "u0005");
	qt_next(&t, 1, "u0002");
	qt_next(&t, 1, "u0000");
	qt_next(&t, 1, "u0001");
	qt_teardown(&t);
}

static void test_enqueue_lane(void **state)
{
	struct qt t;
	struct queue_user_info info;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 10);
	assert_int_equal(qt_ask(&t, 'e', "u0004"), 0);
	assert_int_equal(qt_ask(&t, 'e', "u0005"), 1);
	/* A priority request goes before every plain one. */
	assert_int_equal(qt_ask(&t, 'r', "u0006"), 0);
	assert_int_equal(qt_pos(&t, "u0004"), 1);
	assert_int_equal(qt_pos(&t, "u0005"), 2);
	queue_lookup(t.q, "u0004", &info);
	assert_int_equal(info.priority, 0);
	/* A login of a plainly enqueued user moves it forward. */
	assert_int_equal(qt_ask(&t, 'r', "u0005"), 1);
	assert_int_equal(qt_pos(&t, "u0004"), 2);
	/* A plain enqueue of a priority user changes nothing. */
	assert_int_equal(qt_ask(&t, 'e', "u0006"), 0);
	queue_lookup(t.q, "u0005", &info);
	assert_int_equal(info.priority, 1);
	qt_next(&t, 1, "u0006");
	qt_next(&t, 1, "u0005");
	qt_next(&t, 1, "u0004");
	qt_next(&t, 1, NULL);
	qt_teardown(&t);
}

static void test_waiting_by_size(void **state)
{
	struct qt t;
	int prio = -1;
	char name[MR_USER_NAME_MAX + 1];
	struct mr_error err;

	(void)state;
	qt_setup(&t, 0);
	qt_add(&t, "dave", 30);
	qt_add(&t, "bob", 10);
	qt_add(&t, "carol", 20);
	qt_add(&t, "alice", 10);
	qt_add(&t, "erin", 5);
	qt_ask(&t, 'r', "carol");
	qt_next(&t, 1, "carol");
	qt_next(&t, 1, NULL);
	assert_int_equal(queue_next(t.q, 0, 1.0, name, &prio, &err), 1);
	assert_string_equal(name, "erin");
	assert_int_equal(prio, 0);
	qt_next(&t, 0, "alice");
	qt_next(&t, 0, "bob");
	qt_next(&t, 0, "dave");
	qt_next(&t, 0, NULL);
	qt_teardown(&t);
}

static void test_positions_exact(void **state)
{
	enum { N = 2000 };
	struct qt t;
	char name[32];
	int i;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, N);
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "u%04d", i);
		assert_int_equal(qt_ask(&t, 'r', name), i);
	}
	/* Repeats keep their place. */
	for (i = N - 1; i >= 0; i -= 7) {
		snprintf(name, sizeof(name), "u%04d", i);
		assert_int_equal(qt_ask(&t, 'r', name), i);
		assert_int_equal(qt_ask(&t, 'e', name), i);
	}
	qt_next(&t, 1, "u0000");
	for (i = 1; i < N; i++) {
		snprintf(name, sizeof(name), "u%04d", i);
		assert_int_equal(qt_pos(&t, name), i - 1);
	}
	assert_int_equal(qt_ask(&t, 'b', "u1500"), 0);
	assert_int_equal(qt_pos(&t, "u0001"), 1);
	assert_int_equal(qt_pos(&t, "u1499"), 1499);
	assert_int_equal(qt_pos(&t, "u1501"), 1500);
	assert_int_equal(queue_pending(t.q), N - 1);
	qt_teardown(&t);
}

static void test_never_moves_back(void **state)
{
	struct qt t;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 5);
	qt_ask(&t, 'r', "u0000");
	qt_ask(&t, 'r', "u0001");
	qt_next(&t, 1, "u0000");
	/* Running, active and attention users are not moved. */
	assert_int_equal(qt_ask(&t, 'r', "u0000"), -1);
	assert_int_equal(qt_ask(&t, 'b', "u0000"), -1);
	assert_int_equal(qt_state(&t, "u0000"), QUEUE_RESTORING);
	qt_set(&t, "u0000", QUEUE_SYNCING, NULL);
	qt_set(&t, "u0000", QUEUE_ACTIVE, NULL);
	assert_int_equal(qt_ask(&t, 'r', "u0000"), -1);
	assert_int_equal(qt_ask(&t, 'e', "u0000"), -1);
	assert_int_equal(qt_state(&t, "u0000"), QUEUE_ACTIVE);
	assert_int_equal(qt_pos(&t, "u0001"), 0);
	qt_teardown(&t);
}

static void test_requeue_keeps_place(void **state)
{
	struct qt t;
	struct mr_error err;

	(void)state;
	qt_setup(&t, 0);
	qt_add(&t, "big", 1000);
	qt_add(&t, "a", 5);
	qt_add(&t, "b", 5);
	qt_add(&t, "c", 5);
	qt_ask(&t, 'r', "a");
	qt_ask(&t, 'r', "b");
	qt_ask(&t, 'r', "c");
	qt_next(&t, 1, "a");
	assert_int_equal(qt_pos(&t, "b"), 0);
	assert_int_equal(queue_requeue(t.q, "a", &err), 0);
	assert_int_equal(qt_state(&t, "a"), QUEUE_QUEUED);
	assert_int_equal(qt_pos(&t, "a"), 0);
	assert_int_equal(qt_pos(&t, "b"), 1);
	qt_next(&t, 1, "a");
	qt_next(&t, 1, "b");
	qt_next(&t, 1, "c");
	/* A background user goes back to waiting. */
	qt_next(&t, 0, "big");
	assert_int_equal(queue_requeue(t.q, "big", &err), 0);
	assert_int_equal(qt_state(&t, "big"), QUEUE_WAITING);
	assert_int_equal(qt_pos(&t, "big"), -1);
	qt_next(&t, 0, "big");
	/* Only running users can be requeued. */
	qt_set(&t, "big", QUEUE_ACTIVE, NULL);
	assert_int_equal(queue_requeue(t.q, "big", &err), -1);
	assert_int_equal(queue_requeue(t.q, "nobody", &err), -1);
	qt_teardown(&t);
}

static void test_retry(void **state)
{
	struct qt t;
	struct queue_user_info info;
	struct queue_counters c = { .copied_files = 7, .unreadable = 2 };
	struct mr_error err;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 4);
	qt_ask(&t, 'r', "u0000");
	qt_next(&t, 1, "u0000");
	assert_int_equal(queue_set_state(t.q, "u0000", QUEUE_ATTENTION, "2 unreadable: cur/x",
					 &c, 50.0, &err), 0);
	queue_lookup(t.q, "u0000", &info);
	assert_int_equal(info.state, QUEUE_ATTENTION);
	assert_string_equal(info.reason, "2 unreadable: cur/x");
	assert_int_equal(info.counters.copied_files, 7);
	assert_true(info.finished_at == 50.0);
	assert_int_equal(info.attempts, 1);
	/* A login of a user in attention leaves it there. */
	assert_int_equal(qt_ask(&t, 'r', "u0000"), -1);
	qt_ask(&t, 'r', "u0001");
	assert_int_equal(queue_retry(t.q, "u0001", 60.0, &err), 1);
	assert_int_equal(queue_retry(t.q, "nobody", 60.0, &err), 1);
	assert_int_equal(queue_retry(t.q, "u0000", 60.0, &err), 0);
	queue_lookup(t.q, "u0000", &info);
	assert_int_equal(info.state, QUEUE_QUEUED);
	assert_int_equal(info.position, 1);
	assert_string_equal(info.reason, "");
	assert_true(info.requested_at == 60.0);
	qt_next(&t, 1, "u0001");
	qt_next(&t, 1, "u0000");
	queue_lookup(t.q, "u0000", &info);
	assert_int_equal(info.attempts, 2);
	assert_true(info.finished_at == 0);
	qt_teardown(&t);
}

static void test_states_and_counts(void **state)
{
	struct qt t;
	uint64_t counts[QUEUE_STATE_COUNT];
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 6);
	assert_int_equal(queue_add_user(t.q, "u0001", 5, &err), 0);
	assert_int_equal(queue_add_user(t.q, "../x", 5, &err), -1);
	assert_int_equal(queue_request(t.q, "nobody", 1.0, &info, &ticket, &err), 1);
	assert_int_equal(info.state, QUEUE_UNKNOWN);
	assert_int_equal(info.position, -1);
	assert_int_equal(queue_lookup(t.q, "nobody", &info), 1);
	assert_int_equal(queue_lookup(t.q, "../../etc", &info), 1);
	qt_ask(&t, 'r', "u0001");
	qt_ask(&t, 'e', "u0002");
	qt_next(&t, 1, "u0001");
	/* A user found active at start goes straight there. */
	qt_set(&t, "u0003", QUEUE_ACTIVE, NULL);
	/* A queued user can be accepted as it is, which takes it out. */
	qt_set(&t, "u0002", QUEUE_ACTIVE, NULL);
	assert_int_equal(queue_pending(t.q), 0);
	assert_int_equal(queue_set_state(t.q, "u0000", QUEUE_SYNCING, NULL, NULL, 1, &err), -1);
	assert_int_equal(queue_set_state(t.q, "u0001", QUEUE_QUEUED, NULL, NULL, 1, &err), -1);
	assert_int_equal(queue_set_state(t.q, "zz", QUEUE_ACTIVE, NULL, NULL, 1, &err), -1);
	qt_set(&t, "u0001", QUEUE_SYNCING, NULL);
	queue_counts(t.q, counts);
	assert_int_equal(counts[QUEUE_WAITING], 3);
	assert_int_equal(counts[QUEUE_QUEUED], 0);
	assert_int_equal(counts[QUEUE_SYNCING], 1);
	assert_int_equal(counts[QUEUE_ACTIVE], 2);
	assert_string_equal(queue_state_name(QUEUE_ATTENTION), "attention");
	assert_string_equal(queue_state_name(QUEUE_STATE_COUNT), "unknown");
	qt_teardown(&t);
}

struct names {
	char v[8][MR_USER_NAME_MAX + 1];
	int64_t pos[8];
	int n;
};

static int collect(void *arg, const struct queue_user_info *info)
{
	struct names *n = arg;

	snprintf(n->v[n->n], sizeof(n->v[0]), "%s", info->name);
	n->pos[n->n] = info->position;
	n->n++;
	return n->n == 8;
}

static void test_foreach(void **state)
{
	struct qt t;
	struct names n = { .n = 0 };

	(void)state;
	qt_setup(&t, 0);
	qt_add(&t, "zed", 1);
	qt_add(&t, "amy", 2);
	qt_add(&t, "kim", 3);
	qt_add(&t, "lou", 4);
	qt_ask(&t, 'e', "kim");
	qt_ask(&t, 'r', "zed");
	qt_ask(&t, 'r', "lou");
	queue_foreach_queued(t.q, 0, collect, &n);
	assert_int_equal(n.n, 3);
	assert_string_equal(n.v[0], "zed");
	assert_string_equal(n.v[1], "lou");
	assert_string_equal(n.v[2], "kim");
	assert_int_equal(n.pos[2], 2);
	n.n = 0;
	queue_foreach_queued(t.q, 2, collect, &n);
	assert_int_equal(n.n, 2);
	n.n = 0;
	queue_foreach_user(t.q, collect, &n);
	assert_int_equal(n.n, 4);
	assert_string_equal(n.v[0], "amy");
	assert_string_equal(n.v[3], "zed");
	assert_int_equal(n.pos[0], -1);
	qt_teardown(&t);
}

/* The walk the estimates are built on: the priority lane in request order,
 * the enqueue lane, then waiting users by size (as queue_next takes them);
 * running and finished users are not in it. */
static void test_foreach_order(void **state)
{
	struct qt t;
	struct names n = { .n = 0 };

	(void)state;
	qt_setup(&t, 0);
	qt_add(&t, "big", 900);
	qt_add(&t, "mid", 500);
	qt_add(&t, "tiny", 10);
	qt_add(&t, "zed", 1);
	qt_add(&t, "amy", 2);
	qt_add(&t, "kim", 3);
	qt_add(&t, "lou", 4);
	qt_ask(&t, 'e', "kim");
	qt_ask(&t, 'r', "big");
	qt_ask(&t, 'r', "lou");
	qt_next(&t, 0, "big"); /* running: no longer ahead of anyone */
	queue_foreach_order(t.q, 1, collect, &n);
	assert_int_equal(n.n, 6);
	assert_string_equal(n.v[0], "lou");
	assert_string_equal(n.v[1], "kim");
	assert_string_equal(n.v[2], "zed");
	assert_string_equal(n.v[3], "amy");
	assert_string_equal(n.v[4], "tiny");
	assert_string_equal(n.v[5], "mid");
	/* Background off: the lanes only. */
	n.n = 0;
	queue_foreach_order(t.q, 0, collect, &n);
	assert_int_equal(n.n, 2);
	/* The walk's order is the order queue_next() really takes. */
	qt_next(&t, 0, "lou");
	qt_next(&t, 0, "kim");
	qt_next(&t, 0, "zed");
	qt_next(&t, 0, "amy");
	qt_next(&t, 0, "tiny");
	qt_next(&t, 0, "mid");
	qt_teardown(&t);
}

/* Issue 10, finding 2: a user whose run failed waits out its own back-off
 * without holding up the users behind it (it used to go back to the front
 * and be taken again at once), counts its failures, and is taken again
 * when the back-off is over; the same for waiting (background) users. A
 * retry from attention starts a fresh count. */
static void test_failed_backoff_passes_over(void **state)
{
	struct qt t;
	struct queue_user_info info;
	struct mr_error err;
	char name[MR_USER_NAME_MAX + 1];
	int prio;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 4);
	qt_ask(&t, 'r', "u0002");
	qt_ask(&t, 'r', "u0003");
	qt_next(&t, 1, "u0002");
	assert_int_equal(queue_requeue_failed(t.q, "u0002", 2010.0, &err), 0);
	assert_int_equal(qt_state(&t, "u0002"), QUEUE_QUEUED);
	queue_lookup(t.q, "u0002", &info);
	assert_int_equal(info.failures, 1);
	assert_true(info.retry_at == 2010.0);
	/* At 2000 (qt_next's time) u0003 goes first, then the waiting ones. */
	qt_next(&t, 1, "u0003");
	qt_next(&t, 1, NULL);
	qt_next(&t, 0, "u0000");
	assert_int_equal(queue_requeue_failed(t.q, "u0000", 2010.0, &err), 0);
	qt_next(&t, 0, "u0001");
	qt_next(&t, 0, NULL);
	/* After the back-off both are taken again, the lane first. */
	assert_int_equal(queue_next(t.q, 0, 2011.0, name, &prio, &err), 1);
	assert_string_equal(name, "u0002");
	assert_int_equal(queue_next(t.q, 0, 2011.0, name, &prio, &err), 1);
	assert_string_equal(name, "u0000");
	/* A second failure counts on; attention then retry starts afresh. */
	assert_int_equal(queue_requeue_failed(t.q, "u0002", 2020.0, &err), 0);
	queue_lookup(t.q, "u0002", &info);
	assert_int_equal(info.failures, 2);
	assert_int_equal(queue_next(t.q, 0, 2021.0, name, &prio, &err), 1);
	assert_string_equal(name, "u0002");
	/* `retry` of a user in back-off lets it run at once. */
	assert_int_equal(queue_requeue_failed(t.q, "u0002", 2030.0, &err), 0);
	qt_next(&t, 1, NULL);
	assert_int_equal(queue_retry(t.q, "u0002", 2000.0, &err), 0);
	queue_lookup(t.q, "u0002", &info);
	assert_int_equal(info.failures, 0);
	qt_next(&t, 1, "u0002");
	assert_int_equal(queue_retry(t.q, "u0002", 2000.0, &err), 1);
	qt_set(&t, "u0002", QUEUE_ATTENTION, "failed 3 times");
	assert_int_equal(queue_retry(t.q, "u0002", 2022.0, &err), 0);
	queue_lookup(t.q, "u0002", &info);
	assert_int_equal(info.failures, 0);
	assert_true(info.retry_at == 0);
	qt_next(&t, 1, "u0002");
	qt_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_priority_fifo),
		cmocka_unit_test(test_bump_to_front),
		cmocka_unit_test(test_enqueue_lane),
		cmocka_unit_test(test_waiting_by_size),
		cmocka_unit_test(test_positions_exact),
		cmocka_unit_test(test_never_moves_back),
		cmocka_unit_test(test_requeue_keeps_place),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_failed_backoff_passes_over),
		cmocka_unit_test(test_states_and_counts),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_foreach_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
