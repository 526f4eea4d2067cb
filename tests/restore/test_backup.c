/*
 * test_backup.c: restore_backup_user() writes what restore_extract() reads
 * back identically (paths, types, contents, modes, nanosecond mtimes,
 * symlinks, hard links) for every compression; unreadable entries are
 * left out and reported.
 */
#include "tests/restore/archgen.h"

/* A Maildir-like user tree with the awkward cases. */
static void make_source(const char *src)
{
	assert_int_equal(tu_sh(
		"set -e; cd '%s'; mkdir -p cur new tmp .Sent/cur '.Folder with space/cur' empty; "
		"for i in 1 2 3 4 5; do head -c $((i * 3000)) /dev/urandom > cur/$i.M$i.host:2,S; done; "
		"printf 'hello' > new/1.M1.host; printf '' > zero; "
		"head -c 3000000 /dev/urandom > dovecot.index.cache; "
		"ln -s cur/1.M1.host:2,S link; ln -s ../cur .Sent/up; ln -s /nonexistent/abs dangling; "
		"ln cur/2.M2.host:2,S .Sent/cur/hard; "
		"chmod 0600 cur/*; chmod 0640 zero; chmod 0700 .Sent; chmod 0555 empty; "
		"touch -h -d '2021-02-03 04:05:06.123456789' link; "
		"touch -d '2020-01-01 00:00:00.987654321' cur/*; "
		"touch -d '2019-05-06 07:08:09.5' cur new .Sent/cur empty; "
		"touch -d '2018-01-01 01:01:01.000000001' .", src), 0);
}

/* Same paths, types, sizes, modes, mtimes (ns), link targets and link
 * counts, as listed by find. */
static void assert_same_tree(const char *a, const char *b)
{
	char *la = ag_snapshot(a, "-none-"), *lb = ag_snapshot(b, "-none-");

	assert_string_equal(la, lb);
	free(la);
	free(lb);
	assert_int_equal(tu_sh("diff -r --no-dereference '%s' '%s' >/dev/null", a, b), 0);
}

static void roundtrip(enum restore_compression c)
{
	char *root = tu_tmpdir(), *src = tu_path(root, "src"), *work = tu_path(root, "work");
	char *arc = tu_path(root, "user.archive");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats bst, st;
	struct mr_error err;
	int sfd, ofd;

	mkdir(src, 0755);
	make_source(src);
	sfd = tu_open_dir(src);
	ofd = open(arc, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(ofd >= 0);
	assert_int_equal(restore_backup_user_stats(sfd, ofd, c, &bst, &pb, &err), 0);
	close(ofd);
	close(sfd);
	assert_int_equal(pb.n, 0);
	assert_int_equal(bst.files, 8);
	assert_int_equal(bst.hardlinks, 1);
	assert_int_equal(bst.symlinks, 3);
	assert_int_equal(bst.bytes, 3000 * 15 + 5 + 3000000);
	/* bsdtar reads it and sees the compression asked for. */
	assert_int_equal(tu_sh("bsdtar -tvf '%s' | grep -q 'dovecot.index.cache'", arc), 0);
	if (c == RESTORE_COMPRESS_LZ4)
		assert_int_equal(tu_sh("file -b '%s' | grep -qi lz4", arc), 0);
	else if (c == RESTORE_COMPRESS_ZSTD)
		assert_int_equal(tu_sh("file -b '%s' | grep -qi zstandard", arc), 0);
	else if (c == RESTORE_COMPRESS_GZIP)
		assert_int_equal(tu_sh("file -b '%s' | grep -qi gzip", arc), 0);
	else
		assert_int_equal(tu_sh("file -b '%s' | grep -qi tar", arc), 0);

	/* The symlink leading out of the user's root is refused on the way
	 * back (it leads outside); everything else comes back the same. */
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	assert_int_equal(st.refused, 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "dangling"));
	assert_int_equal(tu_sh("rm '%s/dangling'", src), 0);
	assert_int_equal(tu_sh("touch -d '2018-01-01 01:01:01.000000001' '%s'", src), 0);
	assert_same_tree(src, work);
	assert_int_equal(ag_lstat(work, ".Sent/cur/hard").st_ino,
			 ag_lstat(work, "cur/2.M2.host:2,S").st_ino);
	assert_int_equal(ag_lstat(work, "link").st_mtim.tv_nsec, 123456789);
	assert_int_equal(ag_lstat(work, "cur").st_mtim.tv_nsec, 500000000);
	mr_problems_reset(&pb);
	free(arc);
	free(work);
	free(src);
	tu_rmtree(root);
}

static void test_roundtrip_lz4(void **state)
{
	(void)state;
	roundtrip(RESTORE_COMPRESS_LZ4);
}

static void test_roundtrip_zstd(void **state)
{
	(void)state;
	roundtrip(RESTORE_COMPRESS_ZSTD);
}

static void test_roundtrip_gzip(void **state)
{
	(void)state;
	roundtrip(RESTORE_COMPRESS_GZIP);
}

static void test_roundtrip_none(void **state)
{
	(void)state;
	roundtrip(RESTORE_COMPRESS_NONE);
}

static void test_unreadable_left_out(void **state)
{
	char *root = tu_tmpdir(), *src = tu_path(root, "src"), *work = tu_path(root, "work");
	char *arc = tu_path(root, "user.tar");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct mr_io_fault f1 = { MR_IO_OPEN, "secret", EIO, 0, 0, 0 };
	struct mr_io_fault f2 = { MR_IO_GETDENTS, "broken", EIO, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	int sfd, ofd, rc;

	(void)state;
	mkdir(src, 0755);
	tu_write_file(src, "ok", "fine", 4);
	tu_write_file(src, "secret", "unreadable", 10);
	tu_write_file(src, "broken/x", "in an unlistable folder", 23);
	sfd = tu_open_dir(src);
	ofd = open(arc, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_int_equal(mr_io_fault_add(&f1), 0);
	assert_int_equal(mr_io_fault_add(&f2), 0);
	rc = restore_backup_user(sfd, ofd, RESTORE_COMPRESS_NONE, &pb, &err);
	mr_io_fault_clear();
	close(ofd);
	close(sfd);
	assert_int_equal(rc, 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_UNREADABLE, "secret"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_UNREADABLE, "broken"));
	assert_int_equal(mr_problems_count(&pb, 0), 2);
	mr_problems_reset(&pb);
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	ag_assert_content(work, "ok", "fine", 4);
	assert_false(ag_exists(work, "secret"));
	assert_false(ag_exists(work, "broken"));
	mr_problems_reset(&pb);
	free(arc);
	free(work);
	free(src);
	tu_rmtree(root);
}

static void test_write_failure(void **state)
{
	char *root = tu_tmpdir(), *src = tu_path(root, "src"), *arc = tu_path(root, "user.tar");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct mr_io_fault f = { MR_IO_WRITE, "user.tar", ENOSPC, 0, 0, 0 };
	struct mr_error err;
	int sfd, ofd, rc;

	(void)state;
	mkdir(src, 0755);
	tu_write_file(src, "ok", "fine", 4);
	sfd = tu_open_dir(src);
	assert_int_equal(mr_io_fault_add(&f), 0);
	ofd = mr_io->openat(AT_FDCWD, arc, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(ofd >= 0);
	rc = restore_backup_user(sfd, ofd, RESTORE_COMPRESS_GZIP, &pb, &err);
	mr_io->close(ofd);
	mr_io_fault_clear();
	close(sfd);
	assert_int_equal(rc, -1);
	assert_int_equal(err.errnum, ENOSPC);
	mr_problems_reset(&pb);
	free(arc);
	free(src);
	tu_rmtree(root);
}

static void test_compression_names(void **state)
{
	enum restore_compression c;

	(void)state;
	assert_int_equal(restore_compression_parse("lz4", &c), 0);
	assert_string_equal(restore_compression_suffix(c), ".tar.lz4");
	assert_int_equal(restore_compression_parse("zstd", &c), 0);
	assert_string_equal(restore_compression_suffix(c), ".tar.zst");
	assert_int_equal(restore_compression_parse("gzip", &c), 0);
	assert_string_equal(restore_compression_suffix(c), ".tar.gz");
	assert_int_equal(restore_compression_parse("none", &c), 0);
	assert_string_equal(restore_compression_suffix(c), ".tar");
	assert_int_equal(restore_compression_parse("bzip2", &c), -1);
	assert_int_equal(restore_compression_parse("", &c), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_lz4),
		cmocka_unit_test(test_roundtrip_zstd),
		cmocka_unit_test(test_roundtrip_gzip),
		cmocka_unit_test(test_roundtrip_none),
		cmocka_unit_test(test_unreadable_left_out),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_compression_names),
	};

	mr_log_quiet = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
