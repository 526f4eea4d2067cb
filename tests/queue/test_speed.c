/*
 * test_speed.c: a sanity check that lookups and requests stay cheap with
 * 100,000 users (queue/queue.c): the login hook asks thousands of times a
 * second. The bound is generous (debug and sanitizer builds pass it by far);
 * the measured rates are printed.
 */
#include "tests/queue/qtest.h"

enum { USERS = 100000 };

static void name_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "user%06d@example.org", i);
}

static void test_lookup_and_request_speed(void **state)
{
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;
	struct qt t;
	char name[64];
	double t0, first, repeat, lookup, open;
	int i;

	(void)state;
	qt_setup(&t, 0);
	for (i = 0; i < USERS; i++) {
		name_of(name, sizeof(name), i);
		qt_add(&t, name, (uint64_t)(i * 7919) % 100000);
	}
	t0 = mr_monotonic();
	for (i = 0; i < USERS; i++) {
		name_of(name, sizeof(name), (int)(((uint64_t)i * 7) % USERS));
		assert_int_equal(queue_request(t.q, name, 1.0, &info, &ticket, &err), 0);
		assert_int_equal(info.position, i);
	}
	first = mr_monotonic() - t0;
	t0 = mr_monotonic();
	for (i = 0; i < USERS; i++) {
		name_of(name, sizeof(name), (int)(((uint64_t)i * 7) % USERS));
		assert_int_equal(queue_request(t.q, name, 2.0, &info, &ticket, &err), 0);
		assert_int_equal(info.position, i);
	}
	repeat = mr_monotonic() - t0;
	t0 = mr_monotonic();
	for (i = 0; i < USERS; i++) {
		name_of(name, sizeof(name), (int)(((uint64_t)i * 13) % USERS));
		assert_int_equal(queue_lookup(t.q, name, &info), 0);
	}
	lookup = mr_monotonic() - t0;
	assert_int_equal(queue_commit_wait(t.q, ticket, &err), 0);
	t0 = mr_monotonic();
	qt_reopen(&t);
	open = mr_monotonic() - t0;
	name_of(name, sizeof(name), 7 * 1234);
	assert_int_equal(qt_pos(&t, name), 1234);
	print_message("100k users: first request %.2f us, repeat %.2f us, lookup %.2f us, "
		      "reopen %.0f ms\n", first * 10, repeat * 10, lookup * 10, open * 1e3);
	assert_true(first < 1.0);
	assert_true(repeat < 1.0);
	assert_true(lookup < 1.0);
	qt_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_and_request_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
