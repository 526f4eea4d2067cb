/* test_merge.c: the merged walk of sync/plan.c and its application in
 * sync/sync.c: additions, changes, removals to the attic, type changes,
 * symlinks, modes, times (folders after their contents), the attic's
 * collisions, the --max-remove guard, and a source left untouched. */
#include "tests/sync/synctest.h"
#include "sync/sync_private.h"

#include <sys/stat.h>

static void build_base(struct sfx *f)
{
	tu_write_file(f->src, "a.txt", "alpha", 5);
	tu_write_file(f->src, "dir/b.txt", "bravo", 5);
	tu_write_file(f->src, "dir/sub/c", "charlie", 7);
	tu_write_file(f->src, "x", "x was a file", 12);
	tu_write_file(f->src, "y/inside", "y was a folder", 14);
	tu_write_file(f->src, "z", "z was a file", 12);
	tu_write_file(f->src, "keep", "keep me", 7);
	assert_int_equal(tu_sh("cd '%s' && ln -s a.txt link && ln -s dir dirlink && "
			       "chmod 0640 a.txt && chmod 0750 dir", f->src), 0);
	sfx_backup(f);
}

static void merge_basics(void **state)
{
	struct sfx f;
	char *snap;
	struct stat st;

	(void)state;
	sfx_setup(&f);
	build_base(&f);
	/* What changed on the server since the backup. */
	tu_write_file(f.src, "new/fresh", "fresh mail", 10);
	tu_write_file(f.src, "a.txt", "alpha, longer now", 17);
	assert_int_equal(tu_sh("cd '%s' && rm dir/b.txt && rm x && mkdir x && echo in > x/f && "
			       "rm -r y && echo y > y && rm z && ln -s keep z && "
			       "rm link && ln -s dir/sub/c link && chmod 0600 keep && "
			       "chmod 0700 dir/sub", f.src), 0);
	sfx_set_mtime(f.src, "keep", 1500000000, 123456789);
	sfx_set_mtime(f.src, "dir/sub", 1400000000, 5);
	sfx_set_mtime(f.src, "dir", 1300000000, 7);
	sfx_set_mtime(f.src, "link", 1200000000, 9);
	snap = tu_path(f.dir, "snap");
	sfx_snapshot(f.src, snap);

	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_snapshot_same(f.src, snap);

	/* Removed and replaced entries wait in the attic under their paths. */
	assert_true(sfx_exists(f.attic, "dir/b.txt"));
	assert_true(sfx_exists(f.attic, "x"));
	assert_true(sfx_exists(f.attic, "y/inside"));
	assert_true(sfx_exists(f.attic, "z"));
	st = sfx_lstat(f.dst, "z");
	assert_true(S_ISLNK(st.st_mode));
	st = sfx_lstat(f.dst, "dir");
	assert_int_equal(st.st_mtim.tv_sec, 1300000000);
	assert_int_equal(st.st_mtim.tv_nsec, 7);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(f.stats.attic_files, 4);
	assert_int_equal(f.stats.unreadable, 0);

	/* A second run finds nothing to do. */
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(f.stats.copied_files, 0);
	assert_int_equal(f.stats.meta_fixed, 0);
	assert_int_equal(f.stats.attic_files, 0);
	sfx_snapshot_same(f.src, snap);
	free(snap);
	sfx_teardown(&f);
}

static void empty_destination_gets_everything(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	build_base(&f);
	assert_int_equal(tu_sh("rm -rf '%s' && mkdir '%s'", f.dst, f.dst), 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.copied_files, 9);
	sfx_teardown(&f);
}

static void temporaries_beside(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	build_base(&f);
	f.beside = 1;
	tu_write_file(f.src, "dir/sub/c", "charlie two", 11);
	tu_write_file(f.src, "dir/sub/d", "delta", 5);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(tu_sh("test -z \"$(find '%s' -name '.mrsync-*')\"", f.dst), 0);
	sfx_teardown(&f);
}

static void attic_collisions(void **state)
{
	struct sfx f;
	char *a, *b;

	(void)state;
	sfx_setup(&f);
	for (int i = 0; i < 6; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cur/m%d", i);
		tu_write_file(f.src, name, name, strlen(name));
	}
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm '%s/cur/m1'", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	/* The backup is unpacked again over the work copy and the same file
	 * goes a second time, now with other content. */
	tu_write_file(f.dst, "cur/m1", "second", 6);
	assert_int_equal(sfx_sync(&f), 0);
	a = tu_read_file(f.attic, "cur/m1", NULL);
	b = tu_read_file(f.attic, "cur/m1.1", NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, "cur/m1");
	assert_string_equal(b, "second");
	assert_int_equal(sfx_verify(&f), 0);
	free(a);
	free(b);
	sfx_teardown(&f);
}


/* Issue 10, finding 3: a 255-byte message name goes to the attic twice
 * (the backup unpacked again over the work copy): the second version's
 * name must stay within NAME_MAX ("File name too long" stopped every
 * later run). Also for a folder on the way that the attic holds as a
 * file, with a 255-byte name. */
static void attic_collisions_at_name_max(void **state)
{
	struct sfx f;
	char name[256], rel[300], sub[600], *b;
	struct stat st;

	(void)state;
	sfx_setup(&f);
	f.set.max_remove_pct = 100;
	memset(name, 'm', 255);
	name[255] = '\0';
	snprintf(rel, sizeof(rel), "cur/%s", name);
	tu_write_file(f.src, "keep", "keep", 4);
	tu_write_file(f.src, "cur/keep", "keep", 4);
	sfx_backup(&f);
	tu_write_file(f.dst, rel, "first", 5);
	assert_int_equal(sfx_sync(&f), 0);
	tu_write_file(f.dst, rel, "second", 6);
	assert_int_equal(sfx_sync(&f), 0);
	tu_write_file(f.dst, rel, "third", 5);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 1);
	snprintf(sub, sizeof(sub), "cur/%.253s.1", name);
	b = tu_read_file(f.attic, sub, NULL);
	assert_non_null(b);
	assert_string_equal(b, "second");
	free(b);
	snprintf(sub, sizeof(sub), "cur/%.253s.2", name);
	assert_true(sfx_exists(f.attic, sub));

	/* The 255-byte name in the attic is a file; now a folder of that
	 * name goes, with something inside. */
	snprintf(sub, sizeof(sub), "%s/x", rel);
	assert_int_equal(tu_sh("rm -f '%s/%s'", f.dst, rel), 0);
	tu_write_file(f.dst, sub, "x", 1);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	snprintf(sub, sizeof(sub), "cur/%.253s.3", name);
	st = sfx_lstat(f.attic, sub);
	assert_true(S_ISDIR(st.st_mode));
	sfx_teardown(&f);
}


/* Issue 10, finding 5: a sparse source file (truncate -s 256M costs nothing
 * on S) is copied with its holes (it used to be written out in full and
 * filled a small target), data in the middle included; a file that grew
 * by a hole is patched without writing the hole either. */
static void sparse_files_stay_sparse(void **state)
{
	struct sfx f;
	struct stat st;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "keep", "keep", 4);
	tu_write_file(f.src, "grows", "small start", 11);
	sfx_backup(&f);
	assert_int_equal(tu_sh("truncate -s 256M '%s/big' && printf middle | dd of='%s/big' "
			       "bs=1 seek=100000000 conv=notrunc status=none", f.src, f.src), 0);
	assert_int_equal(tu_sh("truncate -s 256M '%s/grows'", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	st = sfx_lstat(f.dst, "big");
	assert_int_equal(st.st_size, 256LL << 20);
	assert_true(st.st_blocks * 512 < (1 << 20));
	st = sfx_lstat(f.dst, "grows");
	assert_int_equal(st.st_size, 256LL << 20);
	assert_true(st.st_blocks * 512 < (1 << 20));
	assert_true(f.stats.bytes_written < (1 << 20));
	assert_int_equal(tu_sh("cmp -s -i 99999990:99999990 -n 100 '%s/big' '%s/big'", f.src,
			       f.dst), 0);
	assert_int_equal(tu_sh("head -c 11 '%s/grows' | grep -q 'small start'", f.dst), 0);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}


/* The free-space headroom before a large write: a file that would leave
 * less than MR_HEADROOM_BYTES free fails with ENOSPC and the sizes, before
 * anything is written (a sparse 2G file used to take the target to 0 bytes
 * free on every retry). */
static void headroom_refuses_before_writing(void **state)
{
	struct sync_ctx ctx;
	struct mr_error err = { 0 };
	char *dir = tu_tmpdir();
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	uint64_t avail;

	(void)state;
	assert_true(fd >= 0);
	memset(&ctx, 0, sizeof(ctx));
	ctx.err = &err;
	avail = mr_free_bytes(fd);
	if (avail == UINT64_MAX || avail < 2 * MR_HEADROOM_BYTES) {
		close(fd);
		tu_rmtree(dir);
		skip();
	}
	assert_int_equal(sync_room_for(&ctx, fd, 1 << 20, "small"), 0);
	assert_int_equal(sync_room_for(&ctx, fd, avail - MR_HEADROOM_BYTES / 2, "cur/big"), -1);
	assert_int_equal(err.errnum, ENOSPC);
	assert_non_null(strstr(err.msg, "cur/big"));
	assert_non_null(strstr(err.msg, "kept free"));
	close(fd);
	tu_rmtree(dir);
}

/* Run 1 moved file a to the attic; later the destination has a folder a
 * whose x the source no longer has: x goes to a.1/x beside the file. */
static void attic_file_where_a_folder_goes(void **state)
{
	struct sfx f;
	char *x;
	struct stat st;

	(void)state;
	sfx_setup(&f);
	f.set.max_remove_pct = 100;
	tu_write_file(f.src, "keep", "keep", 4);
	sfx_backup(&f);
	tu_write_file(f.dst, "a", "a was a file", 12);
	assert_int_equal(sfx_sync(&f), 0);
	st = sfx_lstat(f.attic, "a");
	assert_true(S_ISREG(st.st_mode));

	tu_write_file(f.src, "a/y", "y", 1);
	tu_write_file(f.dst, "a/x", "x in a folder", 13);
	tu_write_file(f.dst, "a/y", "y", 1);
	assert_int_equal(tu_sh("touch -r '%s/a/y' '%s/a/y'", f.src, f.dst), 0);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 1);
	x = tu_read_file(f.attic, "a.1/x", NULL);
	assert_non_null(x);
	assert_string_equal(x, "x in a folder");
	st = sfx_lstat(f.attic, "a");
	assert_true(S_ISREG(st.st_mode));
	free(x);
	/* Once more, a.1 is a folder and takes the next one. */
	tu_write_file(f.dst, "a/x", "x again", 7);
	assert_int_equal(sfx_sync(&f), 0);
	assert_true(sfx_exists(f.attic, "a.1/x.1"));
	sfx_teardown(&f);
}

static void guard_trips_and_changes_nothing(void **state)
{
	static char big[64 * 1024];
	struct sfx f;
	char *snap;
	int i;

	(void)state;
	sfx_setup(&f);
	for (i = 0; i < 10; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cur/m%d", i);
		tu_write_file(f.src, name, name, strlen(name));
	}
	tu_write_file(f.src, "big", big, sizeof(big));
	sfx_backup(&f);
	/* Six of ten files gone, and a bit of everything else the sync does:
	 * a new file, a flag rename, a changed file, a patch, a mode, a time. */
	assert_int_equal(tu_sh("cd '%s/cur' && rm m0 m1 m2 m3 m4 m5 && echo new > m99 && "
			       "mv m6 m6:2,S && echo changed > m7 && chmod 0600 m8", f.src), 0);
	sfx_set_mtime(f.src, "cur/m9", 1500000000, 1);
	big[1000] ^= 1;
	tu_write_file(f.src, "big", big, sizeof(big));
	snap = tu_path(f.dir, "dst.snap");
	sfx_snapshot(f.dst, snap);
	f.set.patch_min_size = 4096;
	/* No mailbox index here: the count guard decides, from any number. */
	f.set.min_remove_files = 0;
	assert_int_equal(sfx_sync(&f), 1);
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_GUARD), 1);
	if (strstr(f.problems.v[0].message, "6 of 11 files") == NULL)
		fail_msg("guard message: %s", f.problems.v[0].message);
	assert_int_equal(f.stats.attic_files, 0);
	assert_int_equal(f.stats.renamed, 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(tu_sh("test -z \"$(ls -A '%s')\"", f.attic), 0);
	assert_int_equal(tu_sh("test -z \"$(ls -A '%s')\"", f.tmp), 0);
	/* The guard stops the sync before it changes anything at all. */
	sfx_snapshot_same(f.dst, snap);

	/* Under a higher limit (the rename not counted) it goes through. */
	f.set.max_remove_pct = 60;
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.attic_files, 6);
	assert_int_equal(f.stats.renamed, 1);
	assert_int_equal(f.stats.patched_files, 1);
	assert_int_equal(sfx_verify(&f), 0);
	free(snap);
	sfx_teardown(&f);
}

static void guard_keeps_type_changes(void **state)
{
	struct sfx f;
	struct stat st;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "t", "file", 4);
	tu_write_file(f.src, "u", "file", 4);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s' && rm t u && mkdir t && echo x > t/in", f.src), 0);
	f.set.min_remove_files = 0;
	assert_int_equal(sfx_sync(&f), 1);
	st = sfx_lstat(f.dst, "t");
	assert_true(S_ISREG(st.st_mode));
	assert_true(sfx_exists(f.dst, "u"));
	sfx_teardown(&f);
}

static void special_files_are_reported(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "a", "a", 1);
	assert_int_equal(tu_sh("mkfifo '%s/fifo'", f.src), 0);
	assert_int_equal(sfx_sync(&f), 1);
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_OTHER), 1);
	assert_false(sfx_exists(f.dst, "fifo"));
	assert_true(sfx_exists(f.dst, "a"));
	sfx_teardown(&f);
}

static void owners_as_root(void **state)
{
	struct sfx f;
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	sfx_setup(&f);
	tu_write_file(f.src, "cur/m", "m", 1);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s' && chown 1234:5678 cur/m && chown 4321:8765 cur && "
			       "ln -s m cur/l && chown -h 777:888 cur/l", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	st = sfx_lstat(f.dst, "cur/m");
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	st = sfx_lstat(f.dst, "cur");
	assert_int_equal(st.st_uid, 4321);
	st = sfx_lstat(f.dst, "cur/l");
	assert_int_equal(st.st_uid, 777);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

static atomic_int cancel_flag;
static void cancel_on_progress(void *arg, uint64_t files, uint64_t bytes)
{
	(void)arg;
	(void)bytes;
	if (files >= 2)
		cancel_flag = 1;
}

static void cancel_stops_and_resumes(void **state)
{
	struct sfx f;
	int i;

	(void)state;
	sfx_setup(&f);
	for (i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cur/m%02d", i);
		tu_write_file(f.src, name, name, strlen(name));
	}
	cancel_flag = 0;
	f.set.cancel = &cancel_flag;
	f.set.progress = cancel_on_progress;
	assert_int_equal(sfx_sync(&f), -1);
	assert_int_equal(f.err.errnum, ECANCELED);
	f.set.cancel = NULL;
	f.set.progress = NULL;
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.copied_files, 18);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

/* Reading the source leaves access times alone (O_NOATIME), so even a
 * read-write mounted source is not written to by the sync. */
static void source_atime_untouched(void **state)
{
	struct sfx f;
	struct stat before, after, dbefore, dafter;

	(void)state;
	if (geteuid() != 0)
		skip();
	sfx_setup(&f);
	tu_write_file(f.src, "cur/m", "message", 7);
	tu_write_file(f.src, "cur/n", "other", 5);
	sfx_backup(&f);
	tu_write_file(f.src, "cur/m", "message 2", 9);
	tu_write_file(f.src, "cur/n", "OTHER", 5);
	/* atime <= mtime: relatime would update it on any plain read. */
	sfx_set_mtime(f.src, "cur/m", 1000000000, 0);
	sfx_set_mtime(f.src, "cur/n", 1000000000, 0);
	sfx_set_mtime(f.src, "cur", 1000000000, 0);
	before = sfx_lstat(f.src, "cur/n");
	dbefore = sfx_lstat(f.src, "cur");
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	after = sfx_lstat(f.src, "cur/n");
	dafter = sfx_lstat(f.src, "cur");
	assert_int_equal(before.st_atim.tv_sec, after.st_atim.tv_sec);
	assert_int_equal(before.st_atim.tv_nsec, after.st_atim.tv_nsec);
	assert_int_equal(dbefore.st_atim.tv_sec, dafter.st_atim.tv_sec);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(merge_basics),
		cmocka_unit_test(empty_destination_gets_everything),
		cmocka_unit_test(temporaries_beside),
		cmocka_unit_test(attic_collisions),
		cmocka_unit_test(attic_collisions_at_name_max),
		cmocka_unit_test(sparse_files_stay_sparse),
		cmocka_unit_test(headroom_refuses_before_writing),
		cmocka_unit_test(attic_file_where_a_folder_goes),
		cmocka_unit_test(guard_trips_and_changes_nothing),
		cmocka_unit_test(guard_keeps_type_changes),
		cmocka_unit_test(special_files_are_reported),
		cmocka_unit_test(owners_as_root),
		cmocka_unit_test(cancel_stops_and_resumes),
		cmocka_unit_test(source_atime_untouched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
