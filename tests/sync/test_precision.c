/* test_precision.c: backups keep coarser times than the source (ustar:
 * seconds, zip: two seconds). A file whose content is equal is not copied
 * again because of that; only its time is fixed (sync/copy.c, patch.c). */
#include "tests/sync/synctest.h"

static void seconds_only_backup(void **state)
{
	struct sfx f;
	struct stat st;
	char data[5000];

	(void)state;
	sfx_setup(&f);
	sfx_random(data, sizeof(data), 1);
	tu_write_file(f.src, "cur/1.M1.h:2,S", data, sizeof(data));
	sfx_set_mtime(f.src, "cur/1.M1.h:2,S", 1600000000, 987654321);
	sfx_backup(&f);
	/* The archive kept seconds only. */
	sfx_set_mtime(f.dst, "cur/1.M1.h:2,S", 1600000000, 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(f.stats.copied_files, 0);
	assert_int_equal(f.stats.meta_fixed, 1);
	st = sfx_lstat(f.dst, "cur/1.M1.h:2,S");
	assert_int_equal(st.st_mtim.tv_nsec, 987654321);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

static void zip_two_seconds(void **state)
{
	struct sfx f;
	char data[100];

	(void)state;
	sfx_setup(&f);
	sfx_random(data, sizeof(data), 2);
	tu_write_file(f.src, "f", data, sizeof(data));
	sfx_set_mtime(f.src, "f", 1600000001, 500000000);
	sfx_backup(&f);
	sfx_set_mtime(f.dst, "f", 1600000000, 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

static void large_file_time_only(void **state)
{
	struct sfx f;
	size_t len = 3 * 1024 * 1024 + 17;
	char *data = malloc(len);

	(void)state;
	sfx_setup(&f);
	sfx_random(data, len, 3);
	tu_write_file(f.src, "dovecot.index.cache", data, len);
	sfx_set_mtime(f.src, "dovecot.index.cache", 1600000000, 1);
	sfx_backup(&f);
	sfx_set_mtime(f.dst, "dovecot.index.cache", 1600000000, 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(f.stats.patched_files, 0);
	assert_int_equal(f.stats.meta_fixed, 1);
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

static void same_size_other_content_is_copied(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "f", "aaaa", 4);
	sfx_set_mtime(f.src, "f", 1600000000, 0);
	sfx_backup(&f);
	tu_write_file(f.src, "f", "bbbb", 4);
	sfx_set_mtime(f.src, "f", 1600000005, 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.copied_files, 1);
	assert_int_equal(f.stats.bytes_written, 4);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

static void mode_only_change(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "f", "aaaa", 4);
	sfx_backup(&f);
	assert_int_equal(tu_sh("chmod 0604 '%s/f'", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(f.stats.meta_fixed, 1);
	assert_int_equal(sfx_lstat(f.dst, "f").st_mode & 07777, 0604);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seconds_only_backup),
		cmocka_unit_test(zip_two_seconds),
		cmocka_unit_test(large_file_time_only),
		cmocka_unit_test(same_size_other_content_is_copied),
		cmocka_unit_test(mode_only_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
