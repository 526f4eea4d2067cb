/*
 * test_write_behind.c: a fresh extraction of many small files, where the
 * data, owner, mode and times of most files are written by writer.c's
 * helper thread: every file complete with its mode and times, in archive
 * order with folders, links and large files between them; a failure on
 * the helper's side stops the extraction with the path named, and a later
 * run completes the work copy.
 */
#include "tests/restore/archgen.h"

#define NFILES 700
#define BIG_AT 250
#define LINK_AT 300

static unsigned char content[NFILES][4096];
static size_t content_len[NFILES];
static unsigned char bigbuf[400 * 1024];

static void name_of(int i, char *buf, size_t len)
{
	snprintf(buf, len, "cur/f%04d", i);
}

static void make_archive(const char *path)
{
	struct archive *a = ag_open(path, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_LZ4);
	uint32_t x = 99;
	char name[64];
	int i;

	for (size_t k = 0; k < sizeof(bigbuf); k++) {
		x = x * 1103515245u + 12345u;
		bigbuf[k] = (unsigned char)(x >> 16);
	}
	ag_dir(a, "cur", 0700, 1500000000);
	for (i = 0; i < NFILES; i++) {
		content_len[i] = (size_t)(i * 37) % sizeof(content[i]);
		for (size_t k = 0; k < content_len[i]; k++)
			content[i][k] = (unsigned char)(i + k);
		name_of(i, name, sizeof(name));
		ag_file(a, name, content[i], content_len[i], i % 2 ? 0640 : 0600,
			1500000000 + i, i * 1000);
		if (i == BIG_AT)
			ag_file(a, "cur/big", bigbuf, sizeof(bigbuf), 0644, 1400000000, 7);
		if (i == LINK_AT) {
			ag_symlink(a, "cur/sym", "f0001");
			ag_hardlink(a, "cur/hard", "cur/f0002");
			ag_dir(a, "sub", 0750, 1500000001);
			ag_file(a, "sub/inner", "inner", 5, 0600, 1500000002, 0);
		}
	}
	ag_close(a);
}

static void check_work(const char *work)
{
	char name[64], *p;
	struct stat sb;
	int i;

	for (i = 0; i < NFILES; i++) {
		name_of(i, name, sizeof(name));
		ag_assert_content(work, name, content[i], content_len[i]);
		p = tu_path(work, name);
		assert_int_equal(lstat(p, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, i % 2 ? 0640 : 0600);
		assert_int_equal(sb.st_mtim.tv_sec, 1500000000 + i);
		assert_int_equal(sb.st_mtim.tv_nsec, i * 1000);
		if (i == 2)
			assert_int_equal(sb.st_nlink, 2);
		free(p);
	}
	ag_assert_content(work, "cur/big", bigbuf, sizeof(bigbuf));
	ag_assert_content(work, "cur/hard", content[2], content_len[2]);
	ag_assert_content(work, "sub/inner", "inner", 5);
	p = tu_path(work, "cur");
	assert_int_equal(lstat(p, &sb), 0);
	assert_int_equal(sb.st_mtim.tv_sec, 1500000000);
	free(p);
}

static void test_many_small_files(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar.lz4"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;

	(void)state;
	make_archive(arc);
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	assert_int_equal(st.files, NFILES + 2);
	assert_int_equal(pb.n, 0);
	check_work(work);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

/* A failure of one of the helper's calls (op) on file `at`: the run stops
 * with that path named and no file is taken for complete; the next run
 * completes the copy. */
static void fail_then_resume(enum mr_io_op op, int errnum, int at, const char *call)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar.lz4"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	char name[64];
	struct mr_io_fault f = { op, NULL, errnum, 0, 1, 0 };
	struct restore_stats st;
	struct mr_error err;

	make_archive(arc);
	snprintf(name, sizeof(name), "f%04d", at);
	f.name_contains = name;
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), -1);
	assert_int_equal(mr_io_fault_fired(), 1);
	mr_io_fault_clear();
	assert_int_equal(err.errnum, errnum);
	assert_non_null(strstr(err.msg, call));
	assert_non_null(strstr(err.msg, name));
	/* The failed file has no permission bits: never taken for done. */
	assert_int_equal(tu_sh("test -z \"$(find '%s/cur' -name '%s' -perm /0777)\"", work, name), 0);

	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	check_work(work);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_helper_write_fails(void **state)
{
	(void)state;
	fail_then_resume(MR_IO_WRITE, ENOSPC, 400, "pwrite");
}

static void test_helper_meta_fails(void **state)
{
	(void)state;
	fail_then_resume(MR_IO_META, EIO, 500, "f0500");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_small_files),
		cmocka_unit_test(test_helper_write_fails),
		cmocka_unit_test(test_helper_meta_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
