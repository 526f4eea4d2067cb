/*
 * test_extract.c: restore_extract() round trips over every format and
 * compression, resuming over a partial work copy, type conflicts, the bomb
 * guard, ENOSPC and cancellation.
 */
#include "tests/restore/archgen.h"

#include <sys/wait.h>
#include <unistd.h>

struct fmt_case {
	const char *name;
	int format;
	int filter;
	int has_nsec;      /* the format keeps sub-second mtimes */
	int has_symlinks;
};

static const struct fmt_case cases[] = {
	{ "ustar.tar", ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, 0, 1 },
	{ "pax.tar", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE, 1, 1 },
	{ "gnu.tar", ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_NONE, 0, 1 },
	{ "x.tar.gz", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_GZIP, 1, 1 },
	{ "x.tgz", ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, 0, 1 },
	{ "x.tar.lz4", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_LZ4, 1, 1 },
	{ "x.tar.zst", ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_ZSTD, 1, 1 },
	{ "x.tar.xz", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ, 0, 1 },
	{ "x.tar.bz2", ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_BZIP2, 0, 1 },
	{ "x.zip", ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, 0, 1 },
	{ "x.cpio", ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, ARCHIVE_FILTER_NONE, 0, 1 },
	{ "odc.cpio", ARCHIVE_FORMAT_CPIO_POSIX, ARCHIVE_FILTER_NONE, 0, 1 },
};

static char big[300 * 1024 + 17];

static void fill_big(void)
{
	size_t i;
	uint32_t x = 12345;

	for (i = 0; i < sizeof(big); i++) {
		x = x * 1103515245 + 12345;
		big[i] = (char)(x >> 16);
	}
}

/* The same small user tree in any format. */
static void write_tree(const char *path, const struct fmt_case *c)
{
	struct archive *a = ag_open(path, c->format, c->filter);

	ag_dir(a, "./", 0751, 1500000000);
	ag_dir(a, "./cur/", 0750, 1500000100);
	ag_file(a, "./cur/1500000000.M1P1.host:2,S", "hello\n", 6, 0640, 1500000200, 123456789);
	ag_file(a, "big.bin", big, sizeof(big), 0600, 1500000302, 0);
	ag_file(a, "deep/er/still/file", "x", 1, 0644, 1500000400, 0);
	ag_file(a, "suid", "#!/bin/sh\n", 10, 06755, 1500000500, 0);
	ag_file(a, "empty", "", 0, 0444, 1500000600, 0);
	if (c->has_symlinks)
		ag_symlink(a, "cur/link", "1500000000.M1P1.host:2,S");
	ag_close(a);
}

static void check_tree(const char *work, const struct fmt_case *c)
{
	struct stat sb;

	ag_assert_content(work, "cur/1500000000.M1P1.host:2,S", "hello\n", 6);
	ag_assert_content(work, "big.bin", big, sizeof(big));
	ag_assert_content(work, "deep/er/still/file", "x", 1);
	ag_assert_content(work, "empty", "", 0);

	sb = ag_lstat(work, "cur/1500000000.M1P1.host:2,S");
	assert_int_equal(sb.st_mode & 07777, 0640);
	assert_int_equal(sb.st_mtim.tv_sec, 1500000200);
	if (c->has_nsec)
		assert_int_equal(sb.st_mtim.tv_nsec, 123456789);
	sb = ag_lstat(work, "big.bin");
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(sb.st_mtim.tv_sec, 1500000302);
	sb = ag_lstat(work, "suid");
	assert_int_equal(sb.st_mode & 07777, 0755);
	sb = ag_lstat(work, "empty");
	assert_int_equal(sb.st_mode & 07777, 0444);
	sb = ag_lstat(work, "cur");
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0750);
	assert_int_equal(sb.st_mtim.tv_sec, 1500000100);
	sb = ag_lstat(work, ".");
	assert_int_equal(sb.st_mode & 07777, 0751);
	assert_int_equal(sb.st_mtim.tv_sec, 1500000000);
	if (c->has_symlinks) {
		char *p = tu_path(work, "cur/link"), buf[256];
		ssize_t n = readlink(p, buf, sizeof(buf) - 1);

		assert_true(n > 0);
		buf[n] = '\0';
		assert_string_equal(buf, "1500000000.M1P1.host:2,S");
		free(p);
	}
}

static void test_roundtrip_every_format(void **state)
{
	size_t i;

	(void)state;
	fill_big();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *root = tu_tmpdir(), *arc = tu_path(root, cases[i].name);
		char *work = tu_path(root, "work");
		struct mr_problems pb = { NULL, 0, 0, 0 };
		struct restore_stats st;
		struct mr_error err;
		int rc;

		write_tree(arc, &cases[i]);
		rc = ag_extract(arc, work, NULL, &st, &pb, &err);
		if (rc != 0) {
			char sum[2048];
			mr_problems_summary(&pb, sum, sizeof(sum), 5);
			fail_msg("%s: rc %d: %s %s", cases[i].name, rc, err.msg, sum);
		}
		assert_int_equal(pb.n, 0);
		assert_int_equal(st.files, 5);
		assert_int_equal(st.refused, 0);
		assert_int_equal(st.bytes, 6 + sizeof(big) + 1 + 10);
		check_tree(work, &cases[i]);
		mr_problems_reset(&pb);
		free(work);
		free(arc);
		tu_rmtree(root);
	}
}

static void test_resume_skips_complete(void **state)
{
	const struct fmt_case *c = &cases[1];
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1400000000, 0 } };
	char *p;

	(void)state;
	fill_big();
	write_tree(arc, c);
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	assert_int_equal(st.files, 5);

	/* Again over the complete copy: nothing is written. */
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	assert_int_equal(st.files, 0);
	assert_int_equal(st.symlinks, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.skipped, st.entries - 1);  /* all but the root entry */
	check_tree(work, c);

	/* A partial copy: one file missing, one with another mtime, one
	 * with another size, one with another nanosecond. */
	p = tu_path(work, "deep/er/still/file");
	assert_int_equal(unlink(p), 0);
	free(p);
	p = tu_path(work, "big.bin");
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	free(p);
	tu_write_file(work, "empty", "zz", 2);
	p = tu_path(work, "cur/1500000000.M1P1.host:2,S");
	ts[1].tv_sec = 1500000200;
	ts[1].tv_nsec = 5;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	free(p);
	/* What a file written in place looks like when the run stopped before
	 * it was complete: no permission bits yet. Size and mtime match the
	 * entry, the content does not: it must be written again. */
	tu_write_file(work, "suid", "torn......", 10);
	p = tu_path(work, "suid");
	ts[1].tv_sec = 1500000500;
	ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	assert_int_equal(chmod(p, 0), 0);
	free(p);
	/* One such file the archive no longer holds (the run that stopped
	 * had an older backup): it is removed, not left for the sync. */
	tu_write_file(work, "cur/unfinished", "half a mess", 11);
	p = tu_path(work, "cur/unfinished");
	assert_int_equal(chmod(p, 0), 0);
	free(p);
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	assert_false(ag_exists(work, "cur/unfinished"));
	assert_int_equal(st.files, 5);
	assert_int_equal(st.bytes, 1 + sizeof(big) + 6 + 10);
	ag_assert_content(work, "suid", "#!/bin/sh\n", 10);
	check_tree(work, c);
	assert_int_equal(pb.n, 0);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_type_conflicts_later_wins(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct archive *a;

	(void)state;
	a = ag_open(arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
	ag_file(a, "a", "file", 4, 0644, 1500000000, 0);
	ag_file(a, "a/b", "under", 5, 0644, 1500000000, 0);    /* dir wins over file a */
	ag_dir(a, "c", 0755, 1500000000);
	ag_file(a, "c/x", "x", 1, 0644, 1500000000, 0);
	ag_file(a, "c", "now a file", 10, 0644, 1500000000, 0); /* file wins over dir c */
	ag_symlink(a, "d", "c");
	ag_dir(a, "d", 0700, 1500000000);                      /* dir replaces the link */
	ag_file(a, "d/in", "in", 2, 0644, 1500000000, 0);
	ag_file(a, "e", "e1", 2, 0644, 1500000000, 0);
	ag_symlink(a, "e", "a/b");                             /* link replaces file */
	ag_file(a, "twice", "first", 5, 0644, 1500000000, 0);
	ag_file(a, "twice", "second", 6, 0644, 1500000000, 0);
	/* The same below a folder (the parent stays cached). */
	ag_dir(a, "n/c", 0755, 1500000000);
	ag_file(a, "n/c/x", "x", 1, 0644, 1500000000, 0);
	ag_file(a, "n/c", "file c", 6, 0644, 1500000000, 0);
	ag_file(a, "n/s", "s", 1, 0644, 1500000000, 0);
	ag_dir(a, "n/s", 0755, 1500000000);
	ag_symlink(a, "n/l", "s");
	ag_file(a, "n/l", "file l", 6, 0644, 1500000000, 0);
	ag_file(a, "n/after", "after", 5, 0644, 1500000000, 0);
	ag_file(a, "n/d", "d", 1, 0644, 1500000000, 0);
	ag_file(a, "n/d/e/f", "deep", 4, 0644, 1500000000, 0);
	ag_close(a);

	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	assert_int_equal(pb.n, 0);
	ag_assert_content(work, "a/b", "under", 5);
	ag_assert_content(work, "c", "now a file", 10);
	assert_true(S_ISDIR(ag_lstat(work, "d").st_mode));
	ag_assert_content(work, "d/in", "in", 2);
	assert_true(S_ISLNK(ag_lstat(work, "e").st_mode));
	ag_assert_content(work, "twice", "second", 6);
	ag_assert_content(work, "n/c", "file c", 6);
	assert_true(S_ISDIR(ag_lstat(work, "n/s").st_mode));
	ag_assert_content(work, "n/l", "file l", 6);
	ag_assert_content(work, "n/after", "after", 5);
	ag_assert_content(work, "n/d/e/f", "deep", 4);
	/* No temporary names left behind. */
	assert_int_equal(tu_sh("test -z \"$(find '%s' -name '.mrx.*')\"", work), 0);

	/* The same over the result (not a fresh copy): same outcome. */
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	ag_assert_content(work, "a/b", "under", 5);
	ag_assert_content(work, "c", "now a file", 10);
	ag_assert_content(work, "twice", "second", 6);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_scratch_folder_used(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar"), *work = tu_path(root, "work");
	char *scratch = tu_path(root, "scratch");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_settings s;
	struct restore_stats st;
	struct mr_error err;

	(void)state;
	fill_big();
	write_tree(arc, &cases[5]);
	mkdir(scratch, 0700);
	restore_settings_init(&s);
	s.tmp_dirfd = tu_open_dir(scratch);
	assert_int_equal(ag_extract(arc, work, &s, &st, &pb, &err), 0);
	check_tree(work, &cases[5]);
	close(s.tmp_dirfd);
	/* Every temporary file was renamed out of the scratch folder. */
	assert_int_equal(tu_sh("test -z \"$(ls -A '%s')\"", scratch), 0);
	mr_problems_reset(&pb);
	free(scratch);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_bomb_stopped(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "bomb.tar.gz"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_settings s;
	struct restore_stats st;
	struct mr_error err;
	struct archive *a;
	struct archive_entry *e;
	static char zeros[1 << 20];
	int i;

	(void)state;
	/* 96 MiB of zeros: about 100 KiB gzipped, so ratio 1 allows only
	 * about 64 MiB. */
	a = ag_open(arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_GZIP);
	ag_file(a, "small", "ok", 2, 0644, 1500000000, 0);
	e = ag_entry("zeros", AE_IFREG, 0644, 1500000000, 0);
	archive_entry_set_size(e, 96 << 20);
	assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
	for (i = 0; i < 96; i++)
		assert_int_equal(archive_write_data(a, zeros, sizeof(zeros)), (la_ssize_t)sizeof(zeros));
	archive_entry_free(e);
	ag_file(a, "after", "no", 2, 0644, 1500000000, 0);
	ag_close(a);

	restore_settings_init(&s);
	s.max_expand_ratio = 1;
	assert_int_equal(ag_extract(arc, work, &s, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "expands beyond"));
	ag_assert_content(work, "small", "ok", 2);
	assert_false(ag_exists(work, "zeros"));
	assert_false(ag_exists(work, "after"));
	assert_true(st.bytes <= (64ULL << 20) + (1 << 20));
	assert_int_equal(tu_sh("test -z \"$(find '%s' -name '.mrx.*')\"", work), 0);
	mr_problems_reset(&pb);

	/* The absolute cap stops it too, before writing a byte of it. */
	tu_sh("rm -rf '%s'", work);
	restore_settings_init(&s);
	s.max_bytes = 1 << 20;
	assert_int_equal(ag_extract(arc, work, &s, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "expands beyond"));
	assert_int_equal(st.bytes, 2);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_enospc_is_fatal(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar.lz4"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct mr_io_fault f = { MR_IO_WRITE, NULL, ENOSPC, 1, 0, 0 };
	struct restore_settings s;
	struct restore_stats st;
	struct mr_error err;

	(void)state;
	fill_big();
	write_tree(arc, &cases[5]);
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), -1);
	mr_io_fault_clear();
	assert_int_equal(err.errnum, ENOSPC);
	assert_non_null(strstr(err.msg, "pwrite"));
	/* The failed file is not left at its final name or as a temp. */
	assert_int_equal(tu_sh("test -z \"$(find '%s' -name '.mrx.*')\"", work), 0);

	/* A later run resumes and completes. */
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
	check_tree(work, &cases[5]);

	/* The free-space reserve: a target that can never keep it. */
	tu_sh("rm -rf '%s'", work);
	restore_settings_init(&s);
	s.reserve_bytes = UINT64_MAX / 4;
	assert_int_equal(ag_extract(arc, work, &s, &st, &pb, &err), -1);
	assert_int_equal(err.errnum, ENOSPC);
	assert_int_equal(st.bytes, 0);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void progress_cancel(void *arg, uint64_t done, uint64_t total)
{
	atomic_int *flag = arg;

	(void)done;
	(void)total;
	*flag = 1;
}

static void test_cancel(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_settings s;
	struct restore_stats st;
	struct mr_error err;
	static atomic_int flag;

	(void)state;
	fill_big();
	write_tree(arc, &cases[1]);
	flag = 0;
	restore_settings_init(&s);
	s.cancel = &flag;
	s.progress = progress_cancel;
	s.progress_arg = &flag;
	assert_int_equal(ag_extract(arc, work, &s, &st, &pb, &err), -1);
	assert_int_equal(err.errnum, ECANCELED);
	assert_int_equal(st.entries, 1);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_preserve_owner(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "a.tar"), *work = tu_path(root, "work");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_settings s;
	struct restore_stats st;
	struct mr_error err;
	struct stat sb;

	(void)state;
	if (geteuid() != 0) {
		tu_rmtree(root);
		free(work);
		free(arc);
		skip();
	}
	fill_big();
	write_tree(arc, &cases[1]);
	restore_settings_init(&s);
	s.preserve_owner = 1;
	assert_int_equal(ag_extract(arc, work, &s, &st, &pb, &err), 0);
	sb = ag_lstat(work, "big.bin");
	assert_int_equal(sb.st_uid, 1234);
	assert_int_equal(sb.st_gid, 2345);
	sb = ag_lstat(work, "cur");
	assert_int_equal(sb.st_uid, 1234);
	sb = ag_lstat(work, "cur/link");
	assert_int_equal(sb.st_uid, 1234);
	sb = ag_lstat(work, "suid");
	assert_int_equal(sb.st_mode & 07777, 0755);
	mr_problems_reset(&pb);
	free(work);
	free(arc);
	tu_rmtree(root);
}

/* Extracts arc into work as user nobody in a child process: 0 when
 * restore_extract returned 0 and path (if given) is gone afterwards. */
static int extract_as_nobody(const char *arc, const char *work, const char *gone)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct mr_problems pb = { NULL, 0, 0, 0 };
		struct restore_stats st;
		struct mr_error err;
		int afd, wfd, rc;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		afd = open(arc, O_RDONLY | O_CLOEXEC);
		wfd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (afd < 0 || wfd < 0)
			_exit(4);
		rc = restore_extract(afd, wfd, NULL, &st, &pb, &err);
		if (rc != 0) {
			fprintf(stderr, "extract as nobody: %d %s\n", rc, err.msg);
			_exit(5);
		}
		_exit(gone != NULL && access(gone, F_OK) == 0 ? 6 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Without root: a folder that got the archive's mode 0500 and holds an
 * unfinished file (a run stopped, then the folder's mode was applied by a
 * later run that stopped too) does not stop the next extraction: the sweep
 * gives the folder u+rwx before it removes the file (a reviewer's find). */
static void test_sweep_without_root(void **state)
{
	char *root, *arc, *work, *p;
	struct archive *a;
	int r;

	(void)state;
	if (geteuid() != 0) {
		skip();   /* needs root to set the scene and switch to nobody */
		return;
	}
	root = tu_tmpdir();
	arc = tu_path(root, "a.tar");
	work = tu_path(root, "work");
	a = ag_open(arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
	ag_dir(a, "ro", 0500, 1500000000);
	ag_file(a, "ro/a", "a", 1, 0600, 1500000000, 0);
	ag_file(a, "b", "b", 1, 0600, 1500000000, 0);
	ag_close(a);
	assert_int_equal(mkdir(work, 0700), 0);
	assert_int_equal(tu_sh("chown -R 65534:65534 '%s'", root), 0);
	r = extract_as_nobody(arc, work, NULL);
	if (r == 4) {
		/* TMPDIR is not open to nobody: nothing to test here. */
		fprintf(stderr, "skipped: nobody cannot reach %s\n", root);
		free(work);
		free(arc);
		tu_rmtree(root);
		skip();
		return;
	}
	assert_int_equal(r, 0);
	assert_int_equal(ag_lstat(work, "b").st_size, 1);
	assert_int_equal(ag_lstat(work, "ro").st_mode & 07777, 0500);
	/* The unfinished file, as root: mode 0, owned by nobody. */
	p = tu_path(work, "ro/unfinished");
	tu_write_file(work, "ro/unfinished", "half", 4);
	assert_int_equal(chown(p, 65534, 65534), 0);
	assert_int_equal(chmod(p, 0), 0);
	assert_int_equal(extract_as_nobody(arc, work, p), 0);
	ag_assert_content(work, "ro/a", "a", 1);
	assert_int_equal(ag_lstat(work, "ro").st_mode & 07777, 0500);
	free(p);
	free(work);
	free(arc);
	tu_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_every_format),
		cmocka_unit_test(test_resume_skips_complete),
		cmocka_unit_test(test_type_conflicts_later_wins),
		cmocka_unit_test(test_scratch_folder_used),
		cmocka_unit_test(test_bomb_stopped),
		cmocka_unit_test(test_enospc_is_fatal),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_preserve_owner),
		cmocka_unit_test(test_sweep_without_root),
	};

	mr_log_quiet = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
