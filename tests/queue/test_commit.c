/*
 * test_commit.c: group commit under concurrency (queue/journal.c): a login
 * storm from many threads gets exactly the positions 0..N-1, repeats keep
 * theirs, far fewer fsyncs than requests are paid, everything survives a
 * reopen, and a failing fsync fails every waiter of the batch.
 */
#include "tests/queue/qtest.h"

#include <errno.h>
#include <pthread.h>

enum { THREADS = 8, PER_THREAD = 150, N = THREADS * PER_THREAD };

struct worker {
	struct qt *t;
	int index;
	int64_t pos[PER_THREAD];
	int failures;
	int errnum;
};

static void *storm(void *arg)
{
	struct worker *w = arg;
	char name[32];
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		struct queue_user_info info;
		struct mr_error err;
		queue_ticket ticket;

		snprintf(name, sizeof(name), "u%04d", w->index + i * THREADS);
		if (queue_request(w->t->q, name, 1.0, &info, &ticket, &err) != 0 ||
		    queue_commit_wait(w->t->q, ticket, &err) != 0) {
			w->failures++;
			w->errnum = err.errnum;
			continue;
		}
		w->pos[i] = info.position;
	}
	return NULL;
}

static void run_storm(struct qt *t, struct worker *w)
{
	pthread_t th[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].t = t;
		w[i].index = i;
		assert_int_equal(pthread_create(&th[i], NULL, storm, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
}

static void test_login_storm(void **state)
{
	static struct worker w[THREADS], again[THREADS];
	static unsigned char seen[N];
	struct queue_journal_stats st;
	struct qt t;
	char name[32];
	int i, j;

	(void)state;
	qt_setup(&t, 1);
	qt_add_n(&t, N);
	queue_journal_stats(t.q, &st);
	run_storm(&t, w);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		for (j = 0; j < PER_THREAD; j++) {
			int64_t p = w[i].pos[j];

			assert_true(p >= 0 && p < N);
			assert_false(seen[p]);
			seen[p] = 1;
			/* Each thread's own requests are in its order. */
			if (j > 0)
				assert_true(p > w[i].pos[j - 1]);
		}
	}
	{
		struct queue_journal_stats after;

		queue_journal_stats(t.q, &after);
		print_message("%d requests from %d threads: %llu fsync'd batches\n", N, THREADS,
			      (unsigned long long)(after.batches - st.batches));
		assert_true(after.batches - st.batches < (uint64_t)N * 3 / 4);
	}
	/* Repeats keep their place. */
	run_storm(&t, again);
	for (i = 0; i < THREADS; i++)
		assert_memory_equal(again[i].pos, w[i].pos, sizeof(w[i].pos));
	/* And so does a restart. */
	qt_reopen(&t);
	for (i = 0; i < THREADS; i++) {
		for (j = 0; j < PER_THREAD; j++) {
			snprintf(name, sizeof(name), "u%04d", i + j * THREADS);
			assert_int_equal(qt_pos(&t, name), w[i].pos[j]);
		}
	}
	qt_teardown(&t);
}

static void test_fsync_failure_fails_all(void **state)
{
	static struct worker w[THREADS];
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .errnum = EIO };
	struct qt t;
	int i;

	(void)state;
	qt_setup(&t, 1);
	qt_add_n(&t, N);
	assert_int_equal(mr_io_fault_add(&f), 0);
	run_storm(&t, w);
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(w[i].failures, PER_THREAD);
		assert_int_equal(w[i].errnum, EIO);
	}
	mr_io_fault_clear();
	qt_teardown(&t);
}

/* A commit delay gathers a storm into fewer batches and still answers. */
static void test_commit_delay(void **state)
{
	static struct worker w[THREADS];
	struct queue_journal_stats st;
	struct qt t;
	int i;

	(void)state;
	memset(&t, 0, sizeof(t));
	mr_log_quiet = 1;
	t.dir = tu_tmpdir();
	t.dirfd = tu_open_dir(t.dir);
	t.settings.commit_delay = 0.001;
	qt_open(&t);
	qt_add_n(&t, N);
	run_storm(&t, w);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(w[i].failures, 0);
	queue_journal_stats(t.q, &st);
	assert_true(st.batches < (uint64_t)N * 3 / 4);
	assert_int_equal(queue_pending(t.q), N);
	qt_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_storm),
		cmocka_unit_test(test_fsync_failure_fails_all),
		cmocka_unit_test(test_commit_delay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
