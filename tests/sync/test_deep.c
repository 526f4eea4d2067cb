/* test_deep.c: the sync's walks (plan, apply, verify) over trees deeper
 * than the old 128-level cap and than the walker's held descriptors: the
 * whole tree is copied and compares equal (the cap used to stop the plan
 * with "folders nested deeper than 128 levels"), and a deep folder that
 * fails to list is reported, never taken for empty: nothing below it is
 * removed, and verify says it could not read it rather than "missing". */
#include "tests/sync/synctest.h"

#define LEVELS 300
#define SECRET_AT 200

/* ".Deep/d/d/..." n levels below ".Deep". */
static char *deep_path(int n)
{
	char *p = malloc(6 + 2 * (size_t)n + 1);
	size_t len = 5;
	int i;

	assert_non_null(p);
	memcpy(p, ".Deep", 6);
	for (i = 0; i < n; i++) {
		memcpy(p + len, "/d", 3);
		len += 2;
	}
	return p;
}

/* The source: 300 levels, a file at the bottom, and at level 200 a folder
 * "secret" with two messages. */
static void deep_source(struct sfx *f)
{
	char *bottom = deep_path(LEVELS), *mid = deep_path(SECRET_AT), *rel;

	assert_true(asprintf(&rel, "%s/bottom", bottom) > 0);
	tu_write_file(f->src, rel, "b", 1);
	free(rel);
	assert_true(asprintf(&rel, "%s/secret/cur/s1:2,S", mid) > 0);
	tu_write_file(f->src, rel, "s1", 2);
	free(rel);
	assert_true(asprintf(&rel, "%s/secret/cur/s2:2,S", mid) > 0);
	tu_write_file(f->src, rel, "s2", 2);
	free(rel);
	tu_write_file(f->src, "cur/m1:2,S", "m1", 2);
	free(bottom);
	free(mid);
}

static void deep_tree_copied_whole(void **state)
{
	struct sfx f;
	char *bottom = deep_path(LEVELS), *rel;

	(void)state;
	sfx_setup(&f);
	deep_source(&f);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.problems.n, 0);
	assert_true(asprintf(&rel, "%s/bottom", bottom) > 0);
	assert_true(sfx_exists(f.dst, rel));
	assert_int_equal(sfx_verify(&f), 0);
	/* a second run has nothing to do */
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.copied_files, 0);
	free(rel);
	free(bottom);
	sfx_teardown(&f);
}

static void deep_unreadable_is_not_absent(void **state)
{
	struct sfx f;
	char *mid = deep_path(SECRET_AT), *rel;
	struct mr_problems diffs = { 0 };
	struct mr_error err = { 0 };
	int s, d;

	(void)state;
	sfx_setup(&f);
	deep_source(&f);
	assert_int_equal(sfx_sync(&f), 0);
	/* the source loses s1; then "secret" fails to list */
	assert_true(asprintf(&rel, "%s/secret/cur/s1:2,S", mid) > 0);
	assert_int_equal(tu_sh("cd '%s' && rm '%s'", f.src, rel), 0);
	assert_int_equal(mr_io_fault_add(&(struct mr_io_fault){ .op = MR_IO_GETDENTS,
			 .name_contains = "secret", .errnum = EIO }), 0);
	assert_int_equal(sfx_sync(&f), 1);
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_UNREADABLE), 1);
	assert_non_null(strstr(f.problems.v[0].path, "/secret"));
	assert_true(sfx_exists(f.dst, rel));  /* kept: damage is not absence */
	assert_true(sfx_exists(f.dst, ".Deep/d/d/d"));

	/* verify: an unreadable difference, nothing "missing" below it */
	s = tu_open_dir(f.src);
	d = tu_open_dir(f.dst);
	assert_int_equal(sync_verify(s, d, geteuid() == 0, &diffs, &err), 1);
	assert_int_equal(mr_problems_count(&diffs, MR_PROBLEM_UNREADABLE), 1);
	assert_int_equal(mr_problems_count(&diffs, MR_PROBLEM_DIFF), 0);
	mr_problems_reset(&diffs);
	mr_io_fault_clear();
	close(s);
	close(d);
	free(rel);
	free(mid);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(deep_tree_copied_whole),
		cmocka_unit_test(deep_unreadable_is_not_absent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
