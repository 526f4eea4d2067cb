/* test_concurrency.c: the hold lock (mail/held.c): two threads holding for
 * the same user get distinct sequence numbers and lose nothing; a second
 * locker waits for the first. */
#include "mailtest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define PER_THREAD 100

struct worker {
	struct mt *t;
	int id;
	uint64_t seqs[PER_THREAD];
	int failed;
};

static void *hold_many(void *arg)
{
	struct worker *w = arg;
	struct mr_error err;
	char msg[128];
	int i, lock;

	for (i = 0; i < PER_THREAD; i++) {
		int n = snprintf(msg, sizeof(msg), "X-Id: %d.%d\r\n\r\nbody %d of thread %d\r\n",
				 w->id, i, i, w->id);
		if (mail_hold_lock(w->t->store, "alice", &lock, &err) < 0) {
			w->failed = 1;
			break;
		}
		if (mail_hold(w->t->store, "alice", msg, (size_t)n, &w->seqs[i], &err) < 0)
			w->failed = 1;
		mail_hold_unlock(lock);
		if (w->failed)
			break;
	}
	return NULL;
}

static void two_threads_one_user(void **state)
{
	struct mt *t = mt_new();
	struct worker w[2];
	pthread_t th[2];
	struct mr_error err;
	uint64_t count, released;
	static unsigned char seen_seq[2 * PER_THREAD + 1];
	int last[2] = { -1, -1 };
	unsigned long long last_seq[2] = { 0, 0 };
	char **v;
	size_t n, i;
	int k;

	(void)state;
	memset(seen_seq, 0, sizeof(seen_seq));
	for (k = 0; k < 2; k++) {
		memset(&w[k], 0, sizeof(w[k]));
		w[k].t = t;
		w[k].id = k;
		assert_int_equal(pthread_create(&th[k], NULL, hold_many, &w[k]), 0);
	}
	for (k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
		assert_int_equal(w[k].failed, 0);
		for (i = 0; i < PER_THREAD; i++) {
			assert_true(w[k].seqs[i] >= 1 && w[k].seqs[i] <= 2 * PER_THREAD);
			assert_int_equal(seen_seq[w[k].seqs[i]], 0);
			seen_seq[w[k].seqs[i]] = 1;
		}
	}
	assert_int_equal(mail_held_count(t->store, "alice", &count, NULL, &err), 0);
	assert_int_equal(count, 2 * PER_THREAD);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 2 * PER_THREAD);

	/* Every message once, and each thread's messages in its own order. */
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 2 * PER_THREAD);
	{
		/* Visit in seq order: names sort by arrival time, which can
		 * tie at the microsecond, so order by the Q<seq> number. */
		char **by_seq = calloc(2 * PER_THREAD + 1, sizeof(*by_seq));
		assert_non_null(by_seq);
		for (i = 0; i < n; i++) {
			unsigned long long q = mt_name_seq(v[i]);
			assert_true(q >= 1 && q <= 2 * PER_THREAD);
			assert_null(by_seq[q]);
			by_seq[q] = v[i];
		}
		for (i = 1; i <= 2 * PER_THREAD; i++) {
			char *rel = tu_path("new", by_seq[i]), *data;
			int tid, idx;
			size_t len;

			data = tu_read_file(t->maildir, rel, &len);
			assert_non_null(data);
			assert_int_equal(sscanf(data, "X-Id: %d.%d", &tid, &idx), 2);
			assert_true(tid == 0 || tid == 1);
			assert_int_equal(idx, last[tid] + 1);
			assert_int_equal(w[tid].seqs[idx], i);
			assert_true(i > last_seq[tid]);
			last[tid] = idx;
			last_seq[tid] = i;
			free(data);
			free(rel);
		}
		free(by_seq);
	}
	assert_int_equal(last[0], PER_THREAD - 1);
	assert_int_equal(last[1], PER_THREAD - 1);
	mt_names_free(v, n);
	mt_free(t);
}

struct waiter {
	struct mt *t;
	atomic_int got_lock;
};

static void *take_lock(void *arg)
{
	struct waiter *wt = arg;
	struct mr_error err;
	int lock;

	if (mail_hold_lock(wt->t->store, "alice", &lock, &err) == 0) {
		atomic_store(&wt->got_lock, 1);
		mail_hold_unlock(lock);
	} else {
		atomic_store(&wt->got_lock, -1);
	}
	return NULL;
}

static void second_locker_waits(void **state)
{
	struct mt *t = mt_new();
	struct waiter wt = { .t = t };
	struct mr_error err;
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	pthread_t th;
	int lock, other;

	(void)state;
	atomic_init(&wt.got_lock, 0);
	assert_int_equal(mail_hold_lock(t->store, "alice", &lock, &err), 0);
	assert_int_equal(pthread_create(&th, NULL, take_lock, &wt), 0);
	nanosleep(&pause, NULL);
	assert_int_equal(atomic_load(&wt.got_lock), 0);
	/* Another user's lock is independent. */
	assert_int_equal(mail_hold_lock(t->store, "bob", &other, &err), 0);
	mail_hold_unlock(other);
	mail_hold_unlock(lock);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&wt.got_lock), 1);
	mt_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_threads_one_user),
		cmocka_unit_test(second_locker_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
