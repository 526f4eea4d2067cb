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

/* The whole-second rule reads nothing, but only for a second before the
 * backup began: a file last changed in the very second the backup read it
 * may have changed after, and is compared; so is any file when the
 * backup's start is unknown. */
static void seconds_rule_reads_nothing_before_the_backup(void **state)
{
	static const int64_t started[] = { 1600000001, 1600000000, 0 };
	size_t k;

	(void)state;
	for (k = 0; k < 3; k++) {
		struct sfx f;
		char data[5000];

		sfx_setup(&f);
		sfx_random(data, sizeof(data), 1);
		tu_write_file(f.src, "dovecot.index", data, sizeof(data));
		sfx_set_mtime(f.src, "dovecot.index", 1600000000, 987654321);
		sfx_backup(&f);
		sfx_set_mtime(f.dst, "dovecot.index", 1600000000, 0);
		f.set.backup_started = started[k];
		assert_int_equal(sfx_sync(&f), 0);
		assert_int_equal(f.stats.bytes_written, 0);
		assert_int_equal(f.stats.meta_fixed, 1);
		assert_int_equal(f.stats.source_bytes_read, k == 0 ? 0 : sizeof(data));
		assert_int_equal(sfx_verify(&f), 0);
		sfx_teardown(&f);
	}
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

/* compare_content: a destination damaged behind an intact size and time
 * (a backup that failed its checksum after its files were written) is
 * found and repaired; equal files are left alone. Without the setting the
 * quick check trusts it. */
static void compare_content_repairs(void **state)
{
	struct sfx f;
	size_t len = 200 * 1024;
	char *data = malloc(len), small[3000];
	struct stat st;

	(void)state;
	sfx_setup(&f);
	sfx_random(data, len, 7);
	sfx_random(small, sizeof(small), 8);
	tu_write_file(f.src, "cache", data, len);
	tu_write_file(f.src, "cur/1.M1.h:2,S", small, sizeof(small));
	tu_write_file(f.src, "cur/2.M2.h:2,S", "fine", 4);
	sfx_set_mtime(f.src, "cache", 1600000000, 5);
	sfx_set_mtime(f.src, "cur/1.M1.h:2,S", 1600000000, 6);
	sfx_set_mtime(f.src, "cur/2.M2.h:2,S", 1600000000, 7);
	sfx_backup(&f);
	/* Damage inside the destination, times put back. */
	data[100000] ^= 1;
	small[10] ^= 1;
	tu_write_file(f.dst, "cache", data, len);
	tu_write_file(f.dst, "cur/1.M1.h:2,S", small, sizeof(small));
	sfx_set_mtime(f.dst, "cache", 1600000000, 5);
	sfx_set_mtime(f.dst, "cur/1.M1.h:2,S", 1600000000, 6);
	data[100000] ^= 1;
	small[10] ^= 1;

	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.bytes_written, 0);   /* trusted */
	f.set.compare_content = 1;
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.patched_files, 1);   /* one 4 KiB block */
	assert_int_equal(f.stats.copied_files, 1);
	assert_int_equal(f.stats.bytes_written, 4096 + sizeof(small));
	assert_int_equal(f.stats.meta_fixed, 0);
	assert_int_equal(sfx_verify(&f), 0);
	st = sfx_lstat(f.dst, "cache");
	assert_int_equal(st.st_mtim.tv_nsec, 5);
	free(data);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seconds_only_backup),
		cmocka_unit_test(seconds_rule_reads_nothing_before_the_backup),
		cmocka_unit_test(zip_two_seconds),
		cmocka_unit_test(large_file_time_only),
		cmocka_unit_test(same_size_other_content_is_copied),
		cmocka_unit_test(mode_only_change),
		cmocka_unit_test(compare_content_repairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
