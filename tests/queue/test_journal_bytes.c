/*
 * test_journal_bytes.c: the journal's bytes on disk are pinned: a fixed
 * series of changes (users added, requests, runs with counters and a
 * reason, a requeue, a retry, a pause, a compaction, more records after
 * it) must write exactly the same file, byte for byte, as the version that
 * defined the format. A change of the encoding (the little-endian codec,
 * the record header, the snapshot) fails here even when replay still
 * agrees with itself.
 */
#include "tests/testutil.h"
#include "queue/queue.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

/* Length and XXH3-64 of the file the series below writes (format 2.x,
 * taken from the journal code before its codec was shared). */
#define WANT_LEN 7157
#define WANT_HASH 0x444155bacb23d23aull

static void write_series(int dirfd)
{
	struct queue_settings s = { 0, 1 };
	struct queue_counters c;
	struct mr_error err;
	struct queue *q = NULL;
	char name[32], next[MR_USER_NAME_MAX + 1], first_attention[MR_USER_NAME_MAX + 1];
	int i, prio;

	assert_int_equal(queue_open(dirfd, &s, &q, &err), 0);
	memset(&c, 0, sizeof(c));
	for (i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "user%02d", i);
		assert_int_equal(queue_add_user(q, name, 1000u * (unsigned)i, &err), 1);
	}
	assert_int_equal(queue_request(q, "user07", 100.5, NULL, NULL, &err), 0);
	assert_int_equal(queue_enqueue(q, "user09", 101.25, NULL, NULL, &err), 0);
	assert_int_equal(queue_bump(q, "user11", 102.0, NULL, NULL, &err), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(queue_next(q, 0, 200.0 + i, next, &prio, &err), 1);
		if (i == 0)
			snprintf(first_attention, sizeof(first_attention), "%s", next);
		c.backup_files = 7u + (unsigned)i;
		c.copied_bytes = 123456789012ull;
		c.source_bytes_read = 42;
		assert_int_equal(queue_set_state(q, next, i % 2 ? QUEUE_ACTIVE : QUEUE_ATTENTION,
						 i % 2 ? NULL : "a reason", &c, 300.0 + i, &err),
				 0);
	}
	/* a run preempted: back to the queue */
	assert_int_equal(queue_next(q, 0, 350.0, next, &prio, &err), 1);
	assert_int_equal(queue_requeue(q, next, &err), 0);
	/* the first attention user retried */
	assert_int_equal(queue_retry(q, first_attention, 400.0, &err), 0);
	assert_int_equal(queue_set_paused(q, 1, &err), 0);
	assert_int_equal(queue_compact(q, &err), 0);
	assert_int_equal(queue_set_paused(q, 0, &err), 0);
	assert_int_equal(queue_request(q, "user30", 500.0, NULL, NULL, &err), 0);
	assert_int_equal(queue_add_user(q, "late", 5, &err), 1);
	queue_close(&q);
}

static void same_bytes_as_the_format(void **state)
{
	char *dir = tu_tmpdir(), *data;
	size_t len;
	int dfd = tu_open_dir(dir);

	(void)state;
	write_series(dfd);
	data = tu_read_file(dir, "queue.journal", &len);
	assert_non_null(data);
	if (len != WANT_LEN || XXH3_64bits(data, len) != WANT_HASH)
		fail_msg("queue.journal: %zu bytes, XXH3 0x%016llx; the format wants %d bytes, "
			 "XXH3 0x%016llx", len, (unsigned long long)XXH3_64bits(data, len), WANT_LEN,
			 WANT_HASH);
	free(data);
	close(dfd);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_bytes_as_the_format),
	};

	mr_log_quiet = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
