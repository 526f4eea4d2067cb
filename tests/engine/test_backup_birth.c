/*
 * test_backup_birth.c: when the backup began, where the backups' file
 * system keeps no birth times (engine.c, backup_birth(); issue 20). The
 * whole-second quick check of the sync trusts a file's second only when it
 * is before the backup began; without a bound every file a whole-second
 * backup (GNU tar) restored is read again from the damaged source.
 *
 * statx is wrapped (-Wl,--wrap=statx, tests/CMakeLists.txt) to answer
 * without STATX_BTIME, as NFS or 9p do.
 */
#include "tests/testutil.h"
#include "engine/engine.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int __real_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *sx);
int __wrap_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *sx);

int __wrap_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *sx)
{
	int r = __real_statx(dirfd, path, flags, mask, sx);

	if (r == 0)
		sx->stx_mask &= ~(unsigned int)STATX_BTIME;
	return r;
}

#define CACHE_SIZE 8192
#define FILE_TIME 1700000000   /* 2023-11-14T22:13:20Z */

/* S/alice: an index file and a message, last changed at FILE_TIME.5;
 * backed up by GNU tar (whole seconds) to B/<where>/alice.tgz. Runs the
 * engine and returns the job's source_bytes_read; *started_r gets the
 * bound the engine used. */
static uint64_t run(const char *where, int64_t *started_r)
{
	char *dir = tu_tmpdir(), *b = tu_path(dir, "B"), *s = tu_path(dir, "S"),
	     *t = tu_path(dir, "T");
	struct engine_config cfg = { .max_remove_pct = -1, .preserve_owner = -1 };
	struct mr_error err = { 0 };
	struct engine *e = NULL;
	struct engine_job job;
	char cache[CACHE_SIZE];
	uint64_t read;

	memset(cache, 'c', sizeof(cache));
	assert_int_equal(tu_sh("mkdir -p '%s/alice/cur' '%s/alice/new' '%s/alice/tmp' '%s'", s, s, s,
			       b), 0);
	tu_write_file(s, "alice/dovecot.index.cache", cache, sizeof(cache));
	tu_write_file(s, "alice/cur/1700000000.M1P1.host,S=5:2,S", "hello", 5);
	assert_int_equal(tu_sh("touch -d @%d.5 '%s/alice/dovecot.index.cache' "
			       "'%s/alice/cur/1700000000.M1P1.host,S=5:2,S'", FILE_TIME, s, s), 0);
	assert_int_equal(tu_sh("mkdir -p '%s/%s' && tar -C '%s/alice' --format=gnu -czf "
			       "'%s/%s/alice.tgz' .", b, where, s, b, where), 0);
	cfg.backups = b;
	cfg.source = s;
	cfg.target = t;
	if (engine_open(&cfg, &e, &err) < 0)
		fail_msg("engine_open: %s", err.msg);
	engine_job_init(&job, "alice");
	assert_int_equal(engine_run(e, &job), ENGINE_ACTIVE);
	read = job.sync.source_bytes_read;
	*started_r = job.backup_started;
	engine_job_free(&job);
	engine_close(&e);
	free(b);
	free(s);
	free(t);
	tu_rmtree(dir);   /* frees dir */
	return read;
}

/* A dated folder: the day before its date bounds the start. */
static void dated_folder_bounds_the_start(void **state)
{
	int64_t started = 0;

	(void)state;
	assert_int_equal(run("2025-11-19", &started), 0);
	assert_int_equal(started, 1763510400 - 86400);
}

/* A backup dated the day the file last changed: the file's second is not
 * before the bound, so it is compared (read), as it must be. */
static void file_changed_that_day_is_compared(void **state)
{
	int64_t started = 0;

	(void)state;
	assert_int_equal(run("2023-11-14", &started), CACHE_SIZE);
	assert_int_equal(started, 1699920000 - 86400);
}

/* A flat B: a day before the archive was written. */
static void flat_backup_uses_its_mtime(void **state)
{
	int64_t started = 0;

	(void)state;
	assert_int_equal(run(".", &started), 0);
	assert_true(started > FILE_TIME);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dated_folder_bounds_the_start),
		cmocka_unit_test(file_changed_that_day_is_compared),
		cmocka_unit_test(flat_backup_uses_its_mtime),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
