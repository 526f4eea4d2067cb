/* test_publish.c: temporary names (unique across threads), publishing a
 * file (temp, fsync, rename, fsync of the folder) with faults at every
 * step, and the cancel check. */
#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define PER_THREAD 2000

static char names[THREADS][PER_THREAD][64];

static void *make_names(void *arg)
{
	char (*mine)[64] = arg;
	int i;

	for (i = 0; i < PER_THREAD; i++)
		mr_tmp_name(".t.", mine[i], sizeof(mine[i]));
	return NULL;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void tmp_names_unique_across_threads(void **state)
{
	pthread_t t[THREADS];
	char want[32];
	int i, j;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, make_names, names[i]), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	snprintf(want, sizeof(want), ".t.%ld.", (long)getpid());
	for (i = 0; i < THREADS; i++)
		for (j = 0; j < PER_THREAD; j++)
			assert_memory_equal(names[i][j], want, strlen(want));
	qsort(names, THREADS * PER_THREAD, sizeof(names[0][0]), str_cmp);
	for (i = 1; i < THREADS * PER_THREAD; i++)
		assert_string_not_equal(((char (*)[64])names)[i - 1], ((char (*)[64])names)[i]);
}

/* Number of entries of dir (not counting "." and ".."). */
static size_t count_entries(int dirfd)
{
	struct mr_dirlist l = { NULL, 0 };
	size_t n;

	assert_int_equal(mr_listdir(dirfd, &l, NULL), 0);
	n = l.n;
	mr_dirlist_free(&l);
	return n;
}

static void publish_replaces_whole_file(void **state)
{
	char *dir = tu_tmpdir(), *got;
	struct mr_error err;
	size_t len;
	int dfd = tu_open_dir(dir);

	(void)state;
	tu_write_file(dir, "f", "old", 3);
	assert_int_equal(mr_publish_file(dfd, "x", "f", ".p.", "new contents", 12, 0640, 0, &err),
			 0);
	got = tu_read_file(dir, "f", &len);
	assert_int_equal(len, 12);
	assert_memory_equal(got, "new contents", 12);
	free(got);
	assert_int_equal(count_entries(dfd), 1);
	assert_int_equal(tu_sh("test \"$(stat -c %%a '%s/f')\" = 640", dir), 0);
	close(dfd);
	tu_rmtree(dir);
}

/* A fault at each step: the error names the call and the path, the old
 * file stays whole, and no temporary file is left. */
static void publish_fault_at_each_step(void **state)
{
	static const struct {
		enum mr_io_op op;
		const char *in;    /* name_contains */
		long after;
		const char *msg;   /* start of the error message */
		int renamed;
	} cases[] = {
		{ MR_IO_OPEN, ".p.", 0, "openat(shown/.p.", 0 },
		{ MR_IO_WRITE, ".p.", 0, "write(shown/.p.", 0 },
		{ MR_IO_FSYNC, ".p.", 0, "fsync(shown/.p.", 0 },
		{ MR_IO_RENAME, NULL, 0, "renameat(shown/.p.", 0 },
		/* the folder's fsync comes after the file's */
		{ MR_IO_FSYNC, NULL, 1, "fsync(shown) failed", 1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mr_io_fault f = { .op = cases[i].op, .name_contains = cases[i].in,
					 .errnum = EIO, .after = cases[i].after, .count = 1 };
		char *dir = tu_tmpdir(), *got;
		struct mr_publish p;
		struct mr_error err;
		size_t len;
		int dfd = tu_open_dir(dir), rc;

		tu_write_file(dir, "f", "old", 3);
		mr_error_clear(&err);
		assert_int_equal(mr_io_fault_add(&f), 0);
		rc = mr_publish_begin(&p, dfd, "shown", "f", ".p.", 0600, 0, &err);
		if (rc == 0)
			rc = mr_publish_write(&p, "new", 3, &err);
		if (rc == 0)
			rc = mr_publish_commit(&p, &err);
		mr_publish_abort(&p);
		assert_int_equal(mr_io_fault_fired(), 1);
		mr_io_fault_clear();
		assert_int_equal(rc, -1);
		assert_int_equal(err.errnum, EIO);
		assert_memory_equal(err.msg, cases[i].msg, strlen(cases[i].msg));
		assert_int_equal(p.renamed, cases[i].renamed);
		got = tu_read_file(dir, "f", &len);
		assert_int_equal(len, 3);
		assert_memory_equal(got, cases[i].renamed ? "new" : "old", 3);
		free(got);
		assert_int_equal(count_entries(dfd), 1);
		close(dfd);
		tu_rmtree(dir);
	}
}

static void publish_no_fsync_and_fixed_tmp(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .errnum = EIO };
	char *dir = tu_tmpdir(), *got;
	struct mr_error err;
	size_t len;
	int dfd = tu_open_dir(dir);

	(void)state;
	/* A leftover under the fixed name is written over. */
	tu_write_file(dir, "f.tmp", "leftover of a crash", 19);
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(mr_publish_file(dfd, "", "f", "f.tmp", "abc", 3, 0600,
					 MR_PUBLISH_FIXED_TMP | MR_PUBLISH_NO_FSYNC, &err),
			 0);
	assert_int_equal(mr_io_fault_fired(), 0);
	mr_io_fault_clear();
	got = tu_read_file(dir, "f", &len);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "abc", 3);
	free(got);
	assert_int_equal(count_entries(dfd), 1);
	close(dfd);
	tu_rmtree(dir);
}

/* Names up to 255 bytes, a fixed temporary name of 255 bytes too (a
 * progress marker of a user with a 255-byte name). */
static void publish_longest_names(void **state)
{
	char *dir = tu_tmpdir(), name[256], tmp[256];
	struct mr_error err;
	int dfd = tu_open_dir(dir);

	(void)state;
	memset(name, 'n', 255);
	name[255] = '\0';
	memset(tmp, 't', 255);
	tmp[255] = '\0';
	assert_int_equal(mr_publish_file(dfd, "", name, tmp, "x", 1, 0600,
					 MR_PUBLISH_FIXED_TMP | MR_PUBLISH_NO_FSYNC, &err),
			 0);
	assert_int_equal(count_entries(dfd), 1);
	name[0] = 'm';
	assert_int_equal(mr_publish_file(dfd, "", name, ".p.", "x", 1, 0600, 0, &err), 0);
	assert_int_equal(count_entries(dfd), 2);
	close(dfd);
	tu_rmtree(dir);
}

/* KEEP_OPEN hands the published file's descriptor to the caller, opened
 * for appending (the queue journal's compaction). */
static void publish_keep_open_appends(void **state)
{
	char *dir = tu_tmpdir(), *got;
	struct mr_publish p;
	struct mr_error err;
	size_t len;
	int dfd = tu_open_dir(dir), fd;

	(void)state;
	assert_int_equal(mr_publish_begin(&p, dfd, "", "j", "j.new", 0600,
					  MR_PUBLISH_FIXED_TMP | MR_PUBLISH_APPEND |
						  MR_PUBLISH_KEEP_OPEN,
					  &err),
			 0);
	assert_int_equal(mr_publish_write(&p, "12", 2, &err), 0);
	assert_int_equal(mr_publish_commit(&p, &err), 0);
	fd = p.fd;
	p.fd = -1;
	mr_publish_abort(&p);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(write(fd, "3", 1), 1);
	close(fd);
	got = tu_read_file(dir, "j", &len);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "123", 3);
	free(got);
	assert_int_equal(count_entries(dfd), 1);
	close(dfd);
	tu_rmtree(dir);
}

static void cancel_check(void **state)
{
	atomic_int flag = 0;

	(void)state;
	assert_int_equal(mr_cancelled(NULL), 0);
	assert_int_equal(mr_cancelled(&flag), 0);
	atomic_store(&flag, 1);
	assert_int_equal(mr_cancelled(&flag), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tmp_names_unique_across_threads),
		cmocka_unit_test(publish_replaces_whole_file),
		cmocka_unit_test(publish_fault_at_each_step),
		cmocka_unit_test(publish_no_fsync_and_fixed_tmp),
		cmocka_unit_test(publish_longest_names),
		cmocka_unit_test(publish_keep_open_appends),
		cmocka_unit_test(cancel_check),
	};

	mr_log_quiet = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
