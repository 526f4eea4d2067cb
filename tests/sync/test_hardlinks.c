/* test_hardlinks.c: the restore extracts an archive's hard links as hard
 * links, so two names of the work copy may share an inode the source keeps
 * as two files. Whatever the sync changes of one name (a block patch, a
 * time fix, a mode fix, the metadata after a Maildir rename, a symlink's
 * time) must leave the other name as it was: every case below ends with
 * the trees equal. */
#include "tests/sync/synctest.h"

#define MIB (1024 * 1024)
#define T0 1500000000
#define T1 1600000000

/* Source files a and b with the same content and time, and a work copy in
 * which b is a hard link of a, as the backup holds them. */
static void linked_pair(struct sfx *f, const char *a, const char *b, const void *data,
			size_t len)
{
	struct stat sa, sb;

	tu_write_file(f->src, a, data, len);
	tu_write_file(f->src, b, data, len);
	sfx_set_mtime(f->src, a, T0, 0);
	sfx_set_mtime(f->src, b, T0, 0);
	sfx_backup(f);
	assert_int_equal(tu_sh("cd '%s' && ln -f '%s' '%s'", f->dst, a, b), 0);
	sa = sfx_lstat(f->dst, a);
	sb = sfx_lstat(f->dst, b);
	assert_int_equal(sa.st_ino, sb.st_ino);
	assert_int_equal(sa.st_nlink, 2);
}

/* Syncs; the trees must then be equal and b hold want. */
static void sync_and_check_b(struct sfx *f, const char *b, const void *want, size_t len)
{
	size_t got_len = 0;
	char *got;

	assert_int_equal(sfx_sync(f), 0);
	sfx_print_problems(f);
	assert_int_equal(sfx_verify(f), 0);
	got = tu_read_file(f->dst, b, &got_len);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, want, len);
	free(got);
	/* And the next run has nothing left to do. */
	assert_int_equal(sfx_sync(f), 0);
	assert_int_equal(f->stats.bytes_written, 0);
	assert_int_equal(f->stats.meta_fixed, 0);
}

/* The reviewer's case: a 2 MiB file with 8 bytes changed in the source,
 * its hard link unchanged. A patch in place would write the link too. */
static void patch_leaves_the_other_link(void **state)
{
	size_t len = 2 * MIB;
	char *data = malloc(len), *old = malloc(len);
	struct sfx f;

	(void)state;
	assert_non_null(data);
	assert_non_null(old);
	sfx_setup(&f);
	sfx_random(data, len, 7);
	memcpy(old, data, len);
	linked_pair(&f, "a", "b", data, len);
	memcpy(data + MIB + 100, "CHANGED!", 8);
	tu_write_file(f.src, "a", data, len);
	sfx_set_mtime(f.src, "a", T1, 0);
	sync_and_check_b(&f, "b", old, len);
	free(data);
	free(old);
	sfx_teardown(&f);
}

/* Equal content, another time in the source: the time fix in place (small
 * files) and the patch that finds no block changed (large files) would set
 * the link's time too. */
static void time_fix_leaves_the_other_link(void **state)
{
	size_t len = 2 * MIB;
	char *data = malloc(len);
	struct sfx f;

	(void)state;
	assert_non_null(data);
	sfx_setup(&f);
	sfx_random(data, len, 9);
	linked_pair(&f, "small", "small.link", "same text", 9);
	linked_pair(&f, "large", "large.link", data, len);
	/* linked_pair backs up the whole source: link both pairs again. */
	assert_int_equal(tu_sh("cd '%s' && ln -f small small.link", f.dst), 0);
	sfx_set_mtime(f.src, "small", T1, 5);
	sfx_set_mtime(f.src, "large", T1, 5);
	sync_and_check_b(&f, "small.link", "same text", 9);
	free(data);
	sfx_teardown(&f);
}

/* Only the mode differs: a chmod in place would reach the link. */
static void mode_fix_leaves_the_other_link(void **state)
{
	struct sfx f;
	struct stat st;

	(void)state;
	sfx_setup(&f);
	linked_pair(&f, "cur/m1", "cur/m1.copy", "message", 7);
	assert_int_equal(tu_sh("chmod 0600 '%s/cur/m1'", f.src), 0);
	sync_and_check_b(&f, "cur/m1.copy", "message", 7);
	st = sfx_lstat(f.dst, "cur/m1.copy");
	assert_int_equal(st.st_mode & 07777, 0644);
	sfx_teardown(&f);
}

/* A message copied between folders by Dovecot (a hard link) whose backup
 * kept whole seconds only: its time alone must change. The name gets an
 * inode of its own from its own bytes; the damaged source is not read. */
static void time_fix_reads_nothing_from_the_source(void **state)
{
	struct sfx f;
	struct stat a, b;

	(void)state;
	sfx_setup(&f);
	linked_pair(&f, "cur/1.M1.h:2,S", ".Archive/cur/2.M1.h:2,S", "message", 7);
	sfx_set_mtime(f.src, "cur/1.M1.h:2,S", T0, 123456789);
	sfx_set_mtime(f.src, ".Archive/cur/2.M1.h:2,S", T0, 123456789);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.source_bytes_read, 0);
	assert_int_equal(f.stats.copied_files, 0);
	assert_int_equal(f.stats.meta_fixed, 2);
	a = sfx_lstat(f.dst, "cur/1.M1.h:2,S");
	b = sfx_lstat(f.dst, ".Archive/cur/2.M1.h:2,S");
	assert_int_equal(a.st_mtim.tv_nsec, 123456789);
	assert_int_equal(b.st_mtim.tv_nsec, 123456789);
	sfx_teardown(&f);
}

/* A Maildir rename of a hard-linked file moves only its name; when the
 * renamed file's time changed too, fixing it in place would reach the
 * link, so the moved name gets an inode of its own, copied from its own
 * bytes: the source is not read for either message. */
static void rename_leaves_the_other_link(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	f.set.max_remove_pct = 100;
	linked_pair(&f, "cur/1.M1.h:2,", "keep", "message one", 11);
	tu_write_file(f.src, "cur/2.M2.h:2,", "message two", 11);
	sfx_set_mtime(f.src, "cur/2.M2.h:2,", T0, 0);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s' && ln -f 'cur/1.M1.h:2,' keep && "
			       "ln -f 'cur/2.M2.h:2,' keep2", f.dst), 0);
	assert_int_equal(tu_sh("cd '%s' && cp -p 'cur/2.M2.h:2,' keep2", f.src), 0);
	assert_int_equal(tu_sh("cd '%s/cur' && mv '1.M1.h:2,' '1.M1.h:2,S' && "
			       "mv '2.M2.h:2,' '2.M2.h:2,S'", f.src), 0);
	sfx_set_mtime(f.src, "cur/1.M1.h:2,S", T1, 0);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.renamed, 2);
	assert_int_equal(f.stats.copied_files, 0);
	assert_int_equal(f.stats.source_bytes_read, 0);
	assert_int_equal(sfx_lstat(f.dst, "keep").st_mtim.tv_sec, T0);
	assert_int_not_equal(sfx_lstat(f.dst, "keep").st_ino,
			     sfx_lstat(f.dst, "cur/1.M1.h:2,S").st_ino);
	sfx_teardown(&f);
}

/* The bench's find (issue 20): a Dovecot copy (hard link) of the only
 * message of a folder, restored from a whole-second backup, then
 * re-flagged on the source. It used to be no rename (its time needed a
 * fix), so the old name went to the attic while the folder's uidlist still
 * named it: the remove guard stopped the user's sync. */
static void reflagged_link_does_not_trip_the_guard(void **state)
{
	static const char uidlist[] = "3 V1 N2 G094e47ad05829f2594f2bea19328cf82\n"
				      "1 :1741234956.M6165P52642.h,S=7\n";
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, ".Archive/dovecot-uidlist", uidlist, sizeof(uidlist) - 1);
	sfx_set_mtime(f.src, ".Archive/dovecot-uidlist", T0, 0);
	linked_pair(&f, ".Archive/cur/1741234956.M6165P52642.h,S=7:2,S",
		    ".Trash/cur/1741234957.M6165Q52642.h,S=7:2,S", "message", 7);
	assert_int_equal(tu_sh("cd '%s' && mv '.Archive/cur/1741234956.M6165P52642.h,S=7:2,S' "
			       "'.Archive/cur/1741234956.M6165P52642.h,S=7:2,FS'", f.src), 0);
	sfx_set_mtime(f.src, ".Archive/cur/1741234956.M6165P52642.h,S=7:2,FS", T0, 557408803);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_GUARD), 0);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.renamed, 1);
	assert_int_equal(f.stats.source_bytes_read, 0);
	sfx_teardown(&f);
}

/* A symlink hard-linked to another (link(2) on a symlink) whose time alone
 * changed in the source. */
static void symlink_time_leaves_the_other_link(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "m1", "message", 7);
	assert_int_equal(tu_sh("cd '%s' && ln -s m1 l1 && ln -s m1 l2", f.src), 0);
	sfx_set_mtime(f.src, "l1", T0, 0);
	sfx_set_mtime(f.src, "l2", T0, 0);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s' && ln -f -P l1 l2 && test $(stat -c %%h l2) = 2", f.dst),
			 0);
	sfx_set_mtime(f.src, "l1", T1, 0);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(patch_leaves_the_other_link),
		cmocka_unit_test(time_fix_leaves_the_other_link),
		cmocka_unit_test(mode_fix_leaves_the_other_link),
		cmocka_unit_test(time_fix_reads_nothing_from_the_source),
		cmocka_unit_test(rename_leaves_the_other_link),
		cmocka_unit_test(reflagged_link_does_not_trip_the_guard),
		cmocka_unit_test(symlink_time_leaves_the_other_link),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
