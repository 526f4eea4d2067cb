/* test_faults.c: damage is not absence, and a failing destination never
 * leaves anything half-written. Faults come from the I/O layer
 * (mr_io_fault_add): source stat, open, read and listing errors, a full
 * destination, short reads and writes, fsync errors in sync_make_durable. */
#include "tests/sync/synctest.h"

#define MIB (1024 * 1024)

static void add_fault(enum mr_io_op op, const char *name, int errnum, long after, long count,
		      size_t short_len)
{
	struct mr_io_fault fl = { op, name, errnum, after, count, short_len };

	assert_int_equal(mr_io_fault_add(&fl), 0);
}

/* A small user: three messages, one changed since the backup. */
static void small_user(struct sfx *f)
{
	tu_write_file(f->src, "cur/msg1:2,S", "one", 3);
	tu_write_file(f->src, "cur/msg2:2,S", "two", 3);
	tu_write_file(f->src, "cur/msg3:2,S", "three", 5);
	sfx_backup(f);
	tu_write_file(f->src, "cur/msg2:2,S", "two, edited", 11);
	tu_write_file(f->src, "cur/msg4:2,", "four", 4);
}

static void assert_content(const char *dir, const char *rel, const char *want)
{
	size_t len = 0;
	char *got = tu_read_file(dir, rel, &len);

	assert_non_null(got);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
}

static void assert_empty_dir(const char *dir)
{
	assert_int_equal(tu_sh("test -z \"$(ls -A '%s')\"", dir), 0);
}

static void source_stat_eio(void **state)
{
	struct sfx f;
	char *snap;

	(void)state;
	sfx_setup(&f);
	small_user(&f);
	snap = tu_path(f.dir, "snap");
	sfx_snapshot(f.src, snap);
	add_fault(MR_IO_STAT, "msg2", EIO, 0, 1, 0);
	assert_int_equal(sfx_sync(&f), 1);
	mr_io_fault_clear();
	assert_int_equal(f.stats.unreadable, 1);
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_UNREADABLE), 1);
	assert_string_equal(f.problems.v[0].path, "cur/msg2:2,S");
	assert_int_equal(f.problems.v[0].errnum, EIO);
	assert_non_null(strstr(f.problems.v[0].message, "fstatat"));
	/* The backup's version stays; the rest is synced. */
	assert_content(f.dst, "cur/msg2:2,S", "two");
	assert_content(f.dst, "cur/msg4:2,", "four");
	assert_empty_dir(f.attic);
	sfx_snapshot_same(f.src, snap);
	/* Once the source reads again, a rerun finishes the job. */
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	free(snap);
	sfx_teardown(&f);
}

static void source_open_eio(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	small_user(&f);
	add_fault(MR_IO_OPEN, "msg4", EIO, 0, 0, 0);
	assert_int_equal(sfx_sync(&f), 1);
	mr_io_fault_clear();
	assert_int_equal(f.stats.unreadable, 1);
	assert_false(sfx_exists(f.dst, "cur/msg4:2,"));
	assert_content(f.dst, "cur/msg2:2,S", "two, edited");
	assert_empty_dir(f.tmp);
	sfx_teardown(&f);
}

static void source_read_eio_mid_file(void **state)
{
	struct sfx f;
	size_t len = 900000;
	char *old = malloc(len), *newer = malloc(len + 1000), *snap;

	(void)state;
	sfx_setup(&f);
	sfx_random(old, len, 21);
	sfx_random(newer, len + 1000, 22);
	tu_write_file(f.src, "big", old, len);
	tu_write_file(f.src, "small", "s", 1);
	sfx_backup(&f);
	tu_write_file(f.src, "big", newer, len + 1000);
	snap = tu_path(f.dir, "snap");
	sfx_snapshot(f.src, snap);
	/* The first 256 KiB read works, the second fails. */
	add_fault(MR_IO_READ, "big", EIO, 1, 0, 0);
	f.set.patch_min_size = 100 * MIB;
	assert_int_equal(sfx_sync(&f), 1);
	mr_io_fault_clear();
	{
		size_t got_len = 0;
		char *got = tu_read_file(f.dst, "big", &got_len);
		assert_int_equal(got_len, len);
		assert_memory_equal(got, old, len);
		free(got);
	}
	assert_non_null(strstr(f.problems.v[0].message, "read(big)"));
	assert_empty_dir(f.tmp);
	sfx_snapshot_same(f.src, snap);
	free(snap);
	free(old);
	free(newer);
	sfx_teardown(&f);
}

/* A grown large file is patched; the source fails while its new tail is
 * appended: the file goes back to exactly the backup's version. */
static void source_read_eio_in_patch_tail(void **state)
{
	struct sfx f;
	size_t len = 2 * MIB, add = 600 * 1024;
	char *data = malloc(len + add), *got;
	size_t got_len = 0;
	struct stat before, after;

	(void)state;
	sfx_setup(&f);
	sfx_random(data, len + add, 23);
	tu_write_file(f.src, "mbox", data, len);
	sfx_backup(&f);
	data[100] ^= 1;  /* one in-place block changes too */
	tu_write_file(f.src, "mbox", data, len + add);
	before = sfx_lstat(f.dst, "mbox");
	/* Source and destination reads alternate over the common 2 MiB in
	 * 256 KiB chunks (16 reads); then the tail: one 256 KiB chunk, and
	 * the next fails. */
	add_fault(MR_IO_READ, "mbox", EIO, 17, 0, 0);
	assert_int_equal(sfx_sync(&f), 1);
	mr_io_fault_clear();
	assert_int_equal(f.stats.unreadable, 1);
	after = sfx_lstat(f.dst, "mbox");
	assert_int_equal(after.st_size, len);
	assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	data[100] ^= 1;
	got = tu_read_file(f.dst, "mbox", &got_len);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, data, len);
	free(got);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

/* A folder of the source fails to list: nothing under it is pruned,
 * replaced or added, and the reason names it. */
static void source_getdents_eio(void **state)
{
	struct sfx f;
	char *snap;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, ".Trash/cur/t1:2,S", "t1", 2);
	tu_write_file(f.src, ".Trash/cur/t2:2,S", "t2", 2);
	tu_write_file(f.src, ".Trash/t3", "t3", 2);
	tu_write_file(f.src, "cur/m1:2,S", "m1", 2);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s/.Trash' && rm cur/t1:2,S t3 && echo t4 > cur/t4:2,", f.src),
			 0);
	tu_write_file(f.src, "cur/m2:2,S", "m2", 2);
	snap = tu_path(f.dir, "snap");
	sfx_snapshot(f.src, snap);
	/* The source's folder is listed before the destination's. */
	add_fault(MR_IO_GETDENTS, ".Trash", EIO, 0, 1, 0);
	assert_int_equal(sfx_sync(&f), 1);
	mr_io_fault_clear();
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_UNREADABLE), 1);
	assert_string_equal(f.problems.v[0].path, ".Trash");
	assert_true(sfx_exists(f.dst, ".Trash/cur/t1:2,S"));
	assert_true(sfx_exists(f.dst, ".Trash/t3"));
	assert_false(sfx_exists(f.dst, ".Trash/cur/t4:2,"));
	assert_true(sfx_exists(f.dst, "cur/m2:2,S"));
	assert_empty_dir(f.attic);
	sfx_snapshot_same(f.src, snap);
	free(snap);
	sfx_teardown(&f);
}

static void destination_enospc(void **state)
{
	struct sfx f;
	int beside;

	(void)state;
	for (beside = 0; beside < 2; beside++) {
		sfx_setup(&f);
		f.beside = beside;
		small_user(&f);
		add_fault(MR_IO_WRITE, NULL, ENOSPC, 0, 0, 0);
		assert_int_equal(sfx_sync(&f), -1);
		mr_io_fault_clear();
		assert_int_equal(f.err.errnum, ENOSPC);
		assert_non_null(strstr(f.err.msg, "write("));
		assert_content(f.dst, "cur/msg2:2,S", "two");
		assert_content(f.dst, "cur/msg1:2,S", "one");
		assert_empty_dir(f.tmp);
		assert_int_equal(tu_sh("test -z \"$(find '%s' -name '.mrsync-*')\"", f.dst), 0);
		/* Space again: the next run completes. */
		assert_int_equal(sfx_sync(&f), 0);
		assert_int_equal(sfx_verify(&f), 0);
		sfx_teardown(&f);
	}
}

/* ENOSPC while patching a large file: the file keeps its old time, so the
 * next run's quick check redoes it. */
static void destination_enospc_in_patch(void **state)
{
	struct sfx f;
	size_t len = 2 * MIB;
	char *data = malloc(len + 100000);
	struct stat before, after;

	(void)state;
	sfx_setup(&f);
	sfx_random(data, len + 100000, 24);
	tu_write_file(f.src, "mbox", data, len);
	sfx_backup(&f);
	data[5] ^= 1;
	tu_write_file(f.src, "mbox", data, len + 100000);
	before = sfx_lstat(f.dst, "mbox");
	add_fault(MR_IO_WRITE, "mbox", ENOSPC, 0, 0, 0);
	assert_int_equal(sfx_sync(&f), -1);
	mr_io_fault_clear();
	assert_int_equal(f.err.errnum, ENOSPC);
	after = sfx_lstat(f.dst, "mbox");
	assert_int_equal(after.st_size, len);
	assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

static void short_reads_and_writes(void **state)
{
	struct sfx f;
	size_t len = 3 * MIB;
	char *data = malloc(len);

	(void)state;
	sfx_setup(&f);
	sfx_random(data, len, 25);
	tu_write_file(f.src, "mbox", data, len);
	small_user(&f);
	data[MIB] ^= 1;
	tu_write_file(f.src, "mbox", data, len - 3);
	tu_write_file(f.src, "new/big", data, 700000);
	add_fault(MR_IO_WRITE, NULL, 0, 0, 0, 1000);
	add_fault(MR_IO_READ, NULL, 0, 0, 0, 777);
	assert_int_equal(sfx_sync(&f), 0);
	assert_true(mr_io_fault_fired() > 0);
	mr_io_fault_clear();
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

static void durable_fsync_errors(void **state)
{
	struct sfx f;
	struct mr_error err = { 0 };
	int d;

	(void)state;
	sfx_setup(&f);
	small_user(&f);
	assert_int_equal(sfx_sync(&f), 0);
	d = tu_open_dir(f.dst);
	assert_int_equal(sync_make_durable(d, &err), 0);

	add_fault(MR_IO_FSYNC, NULL, EIO, 0, 1, 0);
	assert_int_equal(sync_make_durable(d, &err), -1);
	assert_int_equal(err.errnum, EIO);
	mr_io_fault_clear();

	close(d);
	sfx_teardown(&f);
}

/* The destination failing at other points (rename into place, attic
 * move, mkdir, metadata) always comes back as an error; a rerun without
 * faults then completes and nothing the user had is lost. */
static void destination_faults_resume(void **state)
{
	static const enum mr_io_op ops[] = { MR_IO_RENAME, MR_IO_MKDIR, MR_IO_META, MR_IO_OPEN };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct sfx f;
		long after;

		for (after = 0; after < 6; after++) {
			int rc;

			sfx_setup(&f);
			small_user(&f);
			assert_int_equal(tu_sh("cd '%s' && mkdir -p .Sent/cur && mv cur/msg1:2,S "
					       ".Sent/cur/msg1:2,RS && rm cur/msg3:2,S", f.src), 0);
			add_fault(ops[i], NULL, EIO, after, 1, 0);
			rc = sfx_sync(&f);
			mr_io_fault_clear();
			assert_true(rc == -1 || rc == 0 || rc == 1);
			assert_int_equal(sfx_sync(&f), 0);
			assert_int_equal(sfx_verify(&f), 0);
			assert_content(f.attic, "cur/msg3:2,S", "three");
			sfx_teardown(&f);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(source_stat_eio),
		cmocka_unit_test(source_open_eio),
		cmocka_unit_test(source_read_eio_mid_file),
		cmocka_unit_test(source_read_eio_in_patch_tail),
		cmocka_unit_test(source_getdents_eio),
		cmocka_unit_test(destination_enospc),
		cmocka_unit_test(destination_enospc_in_patch),
		cmocka_unit_test(short_reads_and_writes),
		cmocka_unit_test(durable_fsync_errors),
		cmocka_unit_test(destination_faults_resume),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
