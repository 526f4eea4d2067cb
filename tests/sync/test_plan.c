/* test_plan.c: phase 1 of a sync (sync/plan.c) when memory runs out: every
 * failure of the plan says what failed (ENOMEM, "sync plan"), so a job's
 * reason is never an empty "sync: ". Memory faults come from a strdup()
 * of this program's own, which the linker takes before libc's. */
#include "tests/sync/synctest.h"

/* The path whose next strdup() fails; NULL: none does. */
static const char *nomem_path;

char *strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *p;

	if (nomem_path != NULL && strcmp(s, nomem_path) == 0) {
		nomem_path = NULL;
		errno = ENOMEM;
		return NULL;
	}
	p = malloc(len);
	if (p != NULL)
		memcpy(p, s, len);
	return p;
}

/* A sync of a tree whose only change is rel's mode, with the strdup() of
 * rel's path failing: an error with errno and message, nothing changed. */
static void meta_op_nomem(struct sfx *f, const char *rel)
{
	char *snap = tu_path(f->dir, "snap");

	sfx_snapshot(f->dst, snap);
	nomem_path = rel;
	assert_int_equal(sfx_sync(f), -1);
	assert_null(nomem_path);
	assert_int_equal(f->err.errnum, ENOMEM);
	if (strstr(f->err.msg, "sync plan") == NULL)
		fail_msg("error \"%s\" does not say what failed", f->err.msg);
	sfx_snapshot_same(f->dst, snap);
	/* With memory back the same sync goes through. */
	assert_int_equal(sfx_sync(f), 0);
	assert_int_equal(sfx_verify(f), 0);
	free(snap);
}

static void meta_file_nomem_sets_error(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "cur/m1", "message", 7);
	sfx_backup(&f);
	assert_int_equal(tu_sh("chmod 0600 '%s/cur/m1'", f.src), 0);
	meta_op_nomem(&f, "cur/m1");
	sfx_teardown(&f);
}

static void meta_symlink_nomem_sets_error(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "cur/m1", "message", 7);
	assert_int_equal(tu_sh("ln -s m1 '%s/cur/link'", f.src), 0);
	sfx_backup(&f);
	/* Only the link's time differs: a META op of a symlink. */
	sfx_set_mtime(f.src, "cur/link", 1500000000, 42);
	meta_op_nomem(&f, "cur/link");
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(meta_file_nomem_sets_error),
		cmocka_unit_test(meta_symlink_nomem_sets_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
