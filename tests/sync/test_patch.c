/* test_patch.c: large files changed in place are patched block by block
 * (sync/patch.c): only differing blocks are written, then the file is
 * extended or truncated. */
#include "tests/sync/synctest.h"

#define MIB (1024 * 1024)

static char *big(size_t len, unsigned seed)
{
	char *p = malloc(len);

	assert_non_null(p);
	sfx_random(p, len, seed);
	return p;
}

static void one_block_changed(void **state)
{
	struct sfx f;
	size_t len = 4 * MIB;
	char *data = big(len, 11), *got;
	size_t got_len = 0;

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "mbox", data, len);
	sfx_backup(&f);
	memcpy(data + 2 * MIB + 100, "CHANGED!", 8);
	tu_write_file(f.src, "mbox", data, len);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.patched_files, 1);
	assert_int_equal(f.stats.copied_files, 0);
	/* One 4 KiB block (the default) for 8 changed bytes. */
	assert_int_equal(f.stats.bytes_written, 4096);
	assert_int_equal(f.stats.patched_bytes, 4096);
	got = tu_read_file(f.dst, "mbox", &got_len);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, data, len);
	assert_int_equal(sfx_verify(&f), 0);
	free(got);
	free(data);
	sfx_teardown(&f);
}

static void grown(void **state)
{
	struct sfx f;
	size_t len = 2 * MIB, add = 300000;
	char *data = big(len + add, 12);

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "mbox", data, len);
	sfx_backup(&f);
	tu_write_file(f.src, "mbox", data, len + add);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.patched_files, 1);
	assert_int_equal(f.stats.bytes_written, add);
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

static void truncated(void **state)
{
	struct sfx f;
	size_t len = 3 * MIB;
	char *data = big(len, 13);

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "dovecot.index.log", data, len);
	sfx_backup(&f);
	tu_write_file(f.src, "dovecot.index.log", data, 2 * MIB + 5);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.patched_files, 1);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(sfx_lstat(f.dst, "dovecot.index.log").st_size, 2 * MIB + 5);
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

/* Changed in a few places, grown at the end, with a small block size: the
 * bytes written stay within the changed blocks. */
static void scattered_changes(void **state)
{
	struct sfx f;
	size_t len = 5 * MIB, add = 4096, i;
	char *data = big(len + add, 14);

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "dovecot.index.cache", data, len);
	sfx_backup(&f);
	for (i = 0; i < 10; i++)
		data[i * (len / 10) + 7] ^= 0x5a;
	tu_write_file(f.src, "dovecot.index.cache", data, len + add);
	f.set.block_size = 4096;
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.patched_files, 1);
	assert_int_equal(f.stats.bytes_written, 10 * 4096 + add);
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

/* Below patch_min_size a changed file is copied whole. */
static void small_files_copied(void **state)
{
	struct sfx f;
	size_t len = 60000;   /* below the default 64 KiB */
	char *data = big(len, 15);

	(void)state;
	sfx_setup(&f);
	tu_write_file(f.src, "f", data, len);
	sfx_backup(&f);
	data[5] ^= 1;
	tu_write_file(f.src, "f", data, len - 10);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.patched_files, 0);
	assert_int_equal(f.stats.copied_files, 1);
	assert_int_equal(f.stats.bytes_written, len - 10);
	assert_int_equal(sfx_verify(&f), 0);
	free(data);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_block_changed),
		cmocka_unit_test(grown),
		cmocka_unit_test(truncated),
		cmocka_unit_test(scattered_changes),
		cmocka_unit_test(small_files_copied),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
