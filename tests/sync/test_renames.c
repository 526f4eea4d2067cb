/* test_renames.c: Maildir renames (sync/rename.c). A flag change, a move
 * from new/ to cur/ and a move between folders reuse the file already in
 * the work copy: counted as renamed, nothing written, same inode. */
#include "tests/sync/synctest.h"

static void one_rename(const char *from, const char *to, int change_time)
{
	struct sfx f;
	char data[7000], *snap;
	struct stat before, after;

	sfx_setup(&f);
	sfx_random(data, sizeof(data), 7);
	tu_write_file(f.src, from, data, sizeof(data));
	tu_write_file(f.src, "cur/other:2,S", "x", 1);
	assert_int_equal(tu_sh("mkdir -p '%s/.Trash/cur' '%s/new'", f.src, f.src), 0);
	sfx_backup(&f);
	before = sfx_lstat(f.dst, from);
	assert_int_equal(tu_sh("cd '%s' && mkdir -p \"$(dirname '%s')\" && mv '%s' '%s'", f.src, to,
			       from, to), 0);
	if (change_time)
		sfx_set_mtime(f.src, to, 1700000000, 42);
	snap = tu_path(f.dir, "snap");
	sfx_snapshot(f.src, snap);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(f.stats.renamed, 1);
	assert_int_equal(f.stats.copied_files, 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(f.stats.attic_files, 0);
	after = sfx_lstat(f.dst, to);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_false(sfx_exists(f.dst, from));
	assert_int_equal(sfx_verify(&f), 0);
	sfx_snapshot_same(f.src, snap);
	free(snap);
	sfx_teardown(&f);
}

static void flag_change(void **state)
{
	(void)state;
	one_rename("cur/1700000000.M12P34.mail,S=7000:2,S", "cur/1700000000.M12P34.mail,S=7000:2,RS",
		   0);
}

static void new_to_cur(void **state)
{
	(void)state;
	one_rename("new/1700000001.M1P2.mail", "cur/1700000001.M1P2.mail:2,S", 0);
}

static void between_folders(void **state)
{
	(void)state;
	one_rename("cur/1700000002.M1P2.mail:2,S", ".Trash/cur/1700000002.M1P2.mail:2,ST", 0);
}

static void into_new_folder_with_new_time(void **state)
{
	(void)state;
	one_rename("cur/1700000003.M1P2.mail:2,", ".Archive.2026/cur/1700000003.M1P2.mail:2,S", 1);
}

/* Same unique name and size, other content, outside a Maildir folder
 * (not a message whose name names its content): not the same file. */
static void content_must_match(void **state)
{
	struct sfx f;
	char *a;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "cur/x/5.M1.h:2,S", "aaaa", 4);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s/cur/x' && rm '5.M1.h:2,S' && printf bbbb > '5.M1.h:2,RS'",
			       f.src), 0);
	f.set.max_remove_pct = 100;
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.renamed, 0);
	assert_int_equal(f.stats.copied_files, 1);
	assert_int_equal(f.stats.attic_files, 1);
	a = tu_read_file(f.attic, "cur/x/5.M1.h:2,S", NULL);
	assert_non_null(a);
	assert_string_equal(a, "aaaa");
	free(a);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

/* Maildir messages are not read: a flag change, a move to another folder
 * and a time change of a message in place cost no byte of the source; a
 * new message costs its size. With compare_content (a damaged backup) the
 * same changes are read and checked. */
static void messages_are_not_read(void **state)
{
	int compare;

	(void)state;
	for (compare = 0; compare <= 1; compare++) {
		struct sfx f;

		sfx_setup(&f);
		tu_write_file(f.src, "cur/1700000001.M1P2.host,S=5:2,S", "hello", 5);
		tu_write_file(f.src, "cur/1700000002.M1P2.host:2,", "world!", 6);
		tu_write_file(f.src, "cur/1700000003.M1P2.host,S=4:2,", "same", 4);
		tu_write_file(f.src, "k1", "k", 1);
		tu_write_file(f.src, "k2", "k", 1);
		sfx_backup(&f);
		assert_int_equal(tu_sh("cd '%s' && mkdir -p .Sent/cur && "
				       "mv 'cur/1700000001.M1P2.host,S=5:2,S' 'cur/1700000001.M1P2.host,S=5:2,RS' && "
				       "mv 'cur/1700000002.M1P2.host:2,' '.Sent/cur/1700000002.M1P2.host:2,S' && "
				       "printf 'new message' > 'cur/1700000009.M1P2.host:2,'", f.src), 0);
		sfx_set_mtime(f.src, "cur/1700000003.M1P2.host,S=4:2,", 1700000000, 7);
		f.set.compare_content = compare;
		assert_int_equal(sfx_sync(&f), 0);
		assert_int_equal(f.stats.renamed, 2);
		if (!compare)
			assert_int_equal(f.stats.source_bytes_read, 11);
		else   /* the two moved (5 + 6), the new (11), every kept one (4 + 1 + 1) */
			assert_int_equal(f.stats.source_bytes_read, 5 + 6 + 11 + 4 + 1 + 1);
		assert_int_equal(sfx_verify(&f), 0);
		sfx_teardown(&f);
	}
}

/* A message copied to a second folder: one rename, one copy. */
static void two_claims_one_file(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "new/9.M1.h", "message", 7);
	tu_write_file(f.src, "keep1", "k", 1);
	tu_write_file(f.src, "keep2", "k", 1);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s' && mkdir -p cur .Sent/cur && cp -p new/9.M1.h 'cur/9.M1.h:2,S' && "
			       "mv new/9.M1.h '.Sent/cur/9.M1.h:2,S'", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.renamed, 1);
	assert_int_equal(f.stats.copied_files, 1);
	assert_int_equal(f.stats.attic_files, 0);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

/* Many renames at once (a whole folder read by the user). */
static void many_flag_changes(void **state)
{
	struct sfx f;
	int i;

	(void)state;
	sfx_setup(&f);
	for (i = 0; i < 200; i++) {
		char name[64], data[300];
		snprintf(name, sizeof(name), "new/17000%05d.M%dP1.mail", i, i);
		sfx_random(data, sizeof(data), (unsigned)i);
		tu_write_file(f.src, name, data, 100 + (size_t)i % 200);
	}
	assert_int_equal(tu_sh("mkdir '%s/cur'", f.src), 0);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s/new' && for m in *; do mv \"$m\" \"../cur/$m:2,S\"; done",
			       f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.renamed, 200);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

/* Messages moved out of a folder the source then removed (or replaced by
 * a file) are renamed, not taken to the attic: attic_files counts only the
 * files that really went there. */
static void renamed_out_of_a_removed_folder(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	f.set.max_remove_pct = 100;
	tu_write_file(f.src, ".Old/cur/1.M1.h:2,S", "message one", 11);
	tu_write_file(f.src, ".Old/cur/2.M2.h:2,S", "message two", 11);
	tu_write_file(f.src, ".Old/cur/3.M3.h:2,S", "message three", 13);
	tu_write_file(f.src, "x/4.M4.h:2,", "message four", 12);
	tu_write_file(f.src, "x/5.M5.h:2,", "message five", 12);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s' && mkdir -p cur && mv '.Old/cur/1.M1.h:2,S' cur/ && "
			       "mv 'x/4.M4.h:2,' 'cur/4.M4.h:2,S' && rm -r .Old x && "
			       "echo x is a file now > x", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(f.stats.renamed, 2);
	/* .Old/cur/2, .Old/cur/3 and x/5: not the two renamed away. */
	assert_int_equal(f.stats.attic_files, 3);
	assert_int_equal(tu_sh("test $(find '%s' -type f | wc -l) = 3", f.attic), 0);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flag_change),
		cmocka_unit_test(new_to_cur),
		cmocka_unit_test(between_folders),
		cmocka_unit_test(into_new_folder_with_new_time),
		cmocka_unit_test(content_must_match),
		cmocka_unit_test(messages_are_not_read),
		cmocka_unit_test(two_claims_one_file),
		cmocka_unit_test(many_flag_changes),
		cmocka_unit_test(renamed_out_of_a_removed_folder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
