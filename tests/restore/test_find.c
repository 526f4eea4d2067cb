/*
 * test_find.c: restore_find_backup(), the index (restore_index_find(),
 * which must give the same answers) and restore_list_backup_users():
 * plain and dated folders, the newest date wins, every suffix, names with
 * dots, '@' and '+', names that only look alike; the index reads B once
 * and again when B or a date folder changes.
 */
#include "tests/restore/archgen.h"

#include <time.h>

static void touch(const char *dir, const char *rel, time_t mtime)
{
	char *p = tu_path(dir, rel);
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

	tu_write_file(dir, rel, "x", 1);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	free(p);
}

static void expect_index(int bfd, const char *user, const char *want)
{
	struct restore_index *idx = NULL;
	struct mr_error err;
	char *rel = NULL;
	int r;

	assert_int_equal(restore_index_open(bfd, &idx, &err), 0);
	r = restore_index_find(idx, user, 1, &rel, &err);
	if (want == NULL) {
		if (r != 0)
			fail_msg("%s: index: expected no backup, got %d %s", user, r, rel ? rel : err.msg);
	} else {
		if (r != 1)
			fail_msg("%s: index: expected %s, got %d (%s)", user, want, r, err.msg);
		assert_string_equal(rel, want);
	}
	free(rel);
	restore_index_close(&idx);
	assert_null(idx);
}

/* Finds user in B and checks the answer (NULL: none), by a listing and
 * through the index. */
static void expect(int bfd, const char *user, const char *want)
{
	struct mr_error err;
	char *rel = NULL;
	int r = restore_find_backup(bfd, user, &rel, &err);

	expect_index(bfd, user, want);

	if (want == NULL) {
		if (r != 0)
			fail_msg("%s: expected no backup, got %d %s", user, r, rel ? rel : err.msg);
		assert_null(rel);
		return;
	}
	if (r != 1)
		fail_msg("%s: expected %s, got %d (%s)", user, want, r, err.msg);
	assert_string_equal(rel, want);
	free(rel);
}

static void test_plain_and_dated(void **state)
{
	char *b = tu_tmpdir();
	int bfd;

	(void)state;
	touch(b, "plain.tar.lz4", 1000);
	touch(b, "both.tar", 1000);
	touch(b, "2026-11-19/both.tgz", 1000);
	touch(b, "2026-11-20/both.tar.zst", 1000);
	touch(b, "2026-11-20/newest.zip", 1000);
	touch(b, "2026-11-18/old.cpio", 1000);   /* only in an older date */
	touch(b, "2026-11-21/other.tar.xz", 1000);
	touch(b, "2026-11-19/both.tar.bz2", 1000);
	touch(b, "not-a-date/both.tar.gz", 1000);       /* ignored folder */
	touch(b, "2026-11-2/both.tar.gz", 1000);        /* ignored folder */
	touch(b, "2026-11-22x/both.tar.gz", 1000);      /* ignored folder */
	touch(b, "2026-13-40/both.tar.gz", 1000);       /* not a date */
	bfd = tu_open_dir(b);
	expect(bfd, "plain", "plain.tar.lz4");
	expect(bfd, "both", "2026-11-20/both.tar.zst");
	expect(bfd, "newest", "2026-11-20/newest.zip");
	expect(bfd, "old", "2026-11-18/old.cpio");
	expect(bfd, "other", "2026-11-21/other.tar.xz");
	expect(bfd, "nobody", NULL);
	close(bfd);
	tu_rmtree(b);
}

static void test_names_that_look_alike(void **state)
{
	char *b = tu_tmpdir();
	struct mr_error err;
	char **names = NULL, *rel = NULL;
	size_t n = 0;
	int bfd;

	(void)state;
	touch(b, "a.b.tar", 1000);
	touch(b, "a.b.c.tar.gz", 1000);
	touch(b, "bob.tar.gz", 1000);
	touch(b, "bob.tar.tar", 1000);          /* user "bob.tar" */
	touch(b, "j.doe@example.org.tar.lz4", 1000);
	touch(b, "first+tag.tgz", 1000);
	touch(b, "2026-01-02/a.tar", 1000);
	touch(b, ".hidden.tar", 1000);           /* invalid name: ignored */
	touch(b, "bad name.tar", 1000);          /* invalid name: ignored */
	touch(b, "README", 1000);
	touch(b, ".tar", 1000);
	bfd = tu_open_dir(b);
	expect(bfd, "a.b", "a.b.tar");
	expect(bfd, "a.b.c", "a.b.c.tar.gz");
	expect(bfd, "a", "2026-01-02/a.tar");
	expect(bfd, "a.b.c.tar", NULL);
	expect(bfd, "bob", "bob.tar.gz");
	expect(bfd, "bob.tar", "bob.tar.tar");
	expect(bfd, "j.doe@example.org", "j.doe@example.org.tar.lz4");
	expect(bfd, "first+tag", "first+tag.tgz");
	expect(bfd, "first", NULL);
	/* An invalid name is an error, never a path. */
	assert_int_equal(restore_find_backup(bfd, "../x", &rel, &err), -1);
	assert_null(rel);

	assert_int_equal(restore_list_backup_users(bfd, &names, &n, &err), 0);
	assert_int_equal(n, 7);
	assert_string_equal(names[0], "a");
	assert_string_equal(names[1], "a.b");
	assert_string_equal(names[2], "a.b.c");
	assert_string_equal(names[3], "bob");
	assert_string_equal(names[4], "bob.tar");
	assert_string_equal(names[5], "first+tag");
	assert_string_equal(names[6], "j.doe@example.org");
	mr_names_free(names, n);
	close(bfd);
	tu_rmtree(b);
}

static void test_list_dedups_across_dates(void **state)
{
	char *b = tu_tmpdir();
	struct mr_error err;
	char **names = NULL;
	size_t n = 0;
	int bfd;

	(void)state;
	touch(b, "x.tar", 1000);
	touch(b, "2026-11-19/x.tar.gz", 1000);
	touch(b, "2026-11-20/x.tar.gz", 1000);
	touch(b, "2026-11-20/y.tar.gz", 1000);
	touch(b, "junk/z.tar.gz", 1000);
	bfd = tu_open_dir(b);
	assert_int_equal(restore_list_backup_users(bfd, &names, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "x");
	assert_string_equal(names[1], "y");
	mr_names_free(names, n);
	close(bfd);
	tu_rmtree(b);
}

/* Several suffixes of one user in one folder: the newest archive wins,
 * and on equal times the first in restore_suffixes. */
static void test_several_suffixes(void **state)
{
	char *b = tu_tmpdir();
	int bfd;

	(void)state;
	touch(b, "u.tar", 2000);
	touch(b, "u.tar.gz", 1000);
	touch(b, "v.tar", 1000);
	touch(b, "v.tar.gz", 1000);
	touch(b, "v.zip", 1000);
	bfd = tu_open_dir(b);
	expect(bfd, "u", "u.tar");
	expect(bfd, "v", "v.tar.gz");
	close(bfd);
	tu_rmtree(b);
}

/* Many lookups read B once; a new date folder, an archive added to a date
 * folder or to B, or a removed one makes the next checked lookup read B
 * again. An unchecked lookup (a hint) trusts what it has. */
static void test_index_refresh(void **state)
{
	struct restore_index *idx = NULL;
	struct mr_error err;
	char *b = tu_tmpdir(), *rel = NULL, *p;
	char name[64];
	struct timespec later[2] = { { 5000, 0 }, { 5000, 0 } };
	int bfd, i;

	(void)state;
	for (i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "2026-11-20/u%d.tar.lz4", i);
		touch(b, name, 1000);
		snprintf(name, sizeof(name), "u%d.tar", i);
		touch(b, name, 1000);
	}
	bfd = tu_open_dir(b);
	assert_int_equal(restore_index_open(bfd, &idx, &err), 0);
	for (i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(restore_index_find(idx, name, 1, &rel, &err), 1);
		free(rel);
	}
	assert_int_equal(restore_index_builds(idx), 1);

	/* a new date folder */
	touch(b, "2026-11-21/u7.tgz", 1000);
	assert_int_equal(restore_index_find(idx, "u7", 0, &rel, &err), 1);
	assert_string_equal(rel, "2026-11-20/u7.tar.lz4");   /* a hint: as it was */
	free(rel);
	assert_int_equal(restore_index_find(idx, "u7", 1, &rel, &err), 1);
	assert_string_equal(rel, "2026-11-21/u7.tgz");
	free(rel);
	assert_int_equal(restore_index_builds(idx), 2);

	/* a new archive in an existing date folder (its mtime moves on, B's
	 * does not) */
	p = tu_path(b, "2026-11-21");
	tu_write_file(b, "2026-11-21/u8.zip", "x", 1);
	assert_int_equal(utimensat(AT_FDCWD, p, later, 0), 0);
	free(p);
	assert_int_equal(restore_index_find(idx, "u8", 1, &rel, &err), 1);
	assert_string_equal(rel, "2026-11-21/u8.zip");
	free(rel);

	/* a user new to B, then a removed archive */
	touch(b, "newcomer.tar", 1000);
	assert_int_equal(restore_index_find(idx, "newcomer", 1, &rel, &err), 1);
	assert_string_equal(rel, "newcomer.tar");
	free(rel);
	p = tu_path(b, "newcomer.tar");
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(restore_index_find(idx, "newcomer", 1, &rel, &err), 0);
	assert_null(rel);
	assert_int_equal(restore_index_builds(idx), 5);

	assert_int_equal(restore_index_find(idx, "../x", 1, &rel, &err), -1);
	restore_index_close(&idx);
	close(bfd);
	tu_rmtree(b);
}

static void test_suffix_table(void **state)
{
	size_t i, j;

	(void)state;
	/* Every documented suffix is there, and no suffix is preceded
	 * by a shorter one it ends with (longest match first). */
	for (i = 0; restore_suffixes[i] != NULL; i++)
		for (j = i + 1; restore_suffixes[j] != NULL; j++) {
			size_t li = strlen(restore_suffixes[i]), lj = strlen(restore_suffixes[j]);

			if (li < lj)
				assert_string_not_equal(restore_suffixes[j] + lj - li, restore_suffixes[i]);
		}
	assert_int_equal(i, 9);
}

/* The date of an archive's date folder: what the sync's whole-second
 * quick check falls back on where the file system keeps no birth times. */
static void test_dated_day(void **state)
{
	int64_t day = 0;

	(void)state;
	assert_int_equal(restore_dated_day("2025-11-19/alice.tgz", &day), 1);
	assert_int_equal(day, 1763510400);   /* 2025-11-19T00:00:00Z */
	assert_int_equal(restore_dated_day("alice.tar.lz4", &day), 0);
	assert_int_equal(restore_dated_day("2025-13-19/alice.tgz", &day), 0);
	assert_int_equal(restore_dated_day("2025-11-19", &day), 0);
	assert_int_equal(restore_dated_day("2025-11-1x/a", &day), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_dated),
		cmocka_unit_test(test_dated_day),
		cmocka_unit_test(test_names_that_look_alike),
		cmocka_unit_test(test_list_dedups_across_dates),
		cmocka_unit_test(test_several_suffixes),
		cmocka_unit_test(test_index_refresh),
		cmocka_unit_test(test_suffix_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
