/*
 * test_hostile.c: hostile archive entries are refused one by one and
 * nothing outside the work copy changes: absolute paths, "..", links that
 * lead out and files written through them, hard links to outside, device
 * nodes, FIFOs, sockets, setuid bits.
 */
#include "tests/restore/archgen.h"

struct world {
	char *root;     /* temp root: outside/, work/, the archive */
	char *work;
	char *outside;
	char *arc;
	char *before;   /* snapshot of root without work/ */
	struct stat passwd;
};

static void world_setup(struct world *w)
{
	char *p;

	w->root = tu_tmpdir();
	w->work = tu_path(w->root, "work");
	w->outside = tu_path(w->root, "outside");
	w->arc = tu_path(w->root, "evil.tar");
	mkdir(w->work, 0755);
	mkdir(w->outside, 0755);
	tu_write_file(w->outside, "secret", "do not touch\n", 13);
	tu_write_file(w->outside, "sub/keep", "keep\n", 5);
	/* A link already in the work copy that leads out (left by anything). */
	p = tu_path(w->work, "pre");
	assert_int_equal(symlink(w->outside, p), 0);
	free(p);
	assert_int_equal(stat("/etc/passwd", &w->passwd), 0);
}

/* Takes the "before" snapshot once the archive exists. */
static void world_freeze(struct world *w)
{
	w->before = ag_snapshot(w->root, "work");
}

static void world_check(struct world *w)
{
	char *after = ag_snapshot(w->root, "work");
	struct stat sb;

	assert_string_equal(w->before, after);
	free(after);
	ag_assert_content(w->outside, "secret", "do not touch\n", 13);
	assert_int_equal(stat("/etc/passwd", &sb), 0);
	assert_int_equal(sb.st_nlink, w->passwd.st_nlink);
	assert_int_equal(sb.st_mtim.tv_sec, w->passwd.st_mtim.tv_sec);
	assert_int_equal(sb.st_mtim.tv_nsec, w->passwd.st_mtim.tv_nsec);
	assert_int_equal(sb.st_size, w->passwd.st_size);
	assert_int_equal(tu_sh("test ! -e /evil-abs && test ! -e /tmp/evil-abs"), 0);
}

static void world_free(struct world *w)
{
	free(w->before);
	free(w->work);
	free(w->outside);
	free(w->arc);
	tu_rmtree(w->root);
}

static void test_every_hostile_kind(void **state)
{
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct world w;
	struct archive *a;
	char *abs_link;

	(void)state;
	world_setup(&w);
	if (asprintf(&abs_link, "%s/secret", w.outside) < 0)
		fail_msg("asprintf");
	a = ag_open(w.arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
	ag_file(a, "ok", "fine", 4, 0644, 1500000000, 0);
	ag_file(a, "/tmp/evil-abs", "x", 1, 0644, 1500000000, 0);          /* absolute */
	ag_file(a, "../outside/secret", "pwned", 5, 0644, 1500000000, 0);  /* .. */
	ag_file(a, "a/../../outside/secret", "pwned", 5, 0644, 1500000000, 0);
	ag_file(a, "./../outside/new", "pwned", 5, 0644, 1500000000, 0);
	ag_symlink(a, "esc", "../outside");                  /* link leading out */
	ag_file(a, "esc/secret", "pwned", 5, 0644, 1500000000, 0); /* through it */
	ag_symlink(a, "deep/esc2", "../../outside/secret");
	ag_symlink(a, "abs", "/etc");                        /* absolute target */
	ag_symlink(a, "abs2", abs_link);
	ag_symlink(a, "sneaky", "deep/../../outside");       /* ".." after a name */
	ag_symlink(a, "in", "deep");                         /* inside: allowed */
	ag_file(a, "in/through", "pwned", 5, 0644, 1500000000, 0); /* through an inside link */
	ag_file(a, "pre/secret", "pwned", 5, 0644, 1500000000, 0); /* through an existing link */
	ag_file(a, "pre/sub/keep", "pwned", 5, 0644, 1500000000, 0);
	ag_hardlink(a, "hl1", "../outside/secret");          /* hard link to outside */
	ag_hardlink(a, "hl2", "/etc/passwd");
	ag_hardlink(a, "hl3", "pre/secret");                 /* through the existing link */
	ag_hardlink(a, "hl4", "ok");                         /* inside: allowed */
	ag_special(a, "chr", AE_IFCHR);
	ag_special(a, "blk", AE_IFBLK);
	ag_special(a, "fifo", AE_IFIFO);
	ag_file(a, "suid", "x", 1, 06755, 1500000000, 0);
	ag_file(a, "sticky", "x", 1, 01777, 1500000000, 0);
	ag_dir(a, "sgid-dir", 02775, 1500000000);
	ag_file(a, "last", "still extracted", 15, 0644, 1500000000, 0);
	ag_close(a);
	world_freeze(&w);

	assert_int_equal(ag_extract(w.arc, w.work, NULL, &st, &pb, &err), 0);
	world_check(&w);

	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "/tmp/evil-abs"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "../outside/secret"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "a/../../outside/secret"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "./../outside/new"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "esc"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "deep/esc2"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "abs"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "abs2"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "sneaky"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "in/through"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "pre/secret"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "pre/sub/keep"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "hl1"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "hl2"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "hl3"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "character device"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "block device"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "FIFO"));
	/* "esc/secret" lands inside (esc was refused, so it is a folder). */
	assert_int_equal(st.refused, 18);
	assert_int_equal(mr_problems_count(&pb, MR_PROBLEM_REFUSED), 18);
	assert_int_equal(mr_problems_count(&pb, 0), 18);

	/* What was allowed is there. */
	ag_assert_content(w.work, "ok", "fine", 4);
	ag_assert_content(w.work, "last", "still extracted", 15);
	ag_assert_content(w.work, "esc/secret", "pwned", 5);
	assert_true(S_ISLNK(ag_lstat(w.work, "in").st_mode));
	assert_int_equal(ag_lstat(w.work, "hl4").st_ino, ag_lstat(w.work, "ok").st_ino);
	assert_int_equal(ag_lstat(w.work, "suid").st_mode & 07777, 0755);
	assert_int_equal(ag_lstat(w.work, "sticky").st_mode & 07777, 0777);
	assert_int_equal(ag_lstat(w.work, "sgid-dir").st_mode & 07777, 0775);
	assert_false(ag_exists(w.work, "chr"));
	assert_false(ag_exists(w.work, "fifo"));
	assert_false(ag_exists(w.work, "sock"));
	assert_false(ag_exists(w.work, "abs"));
	assert_false(ag_exists(w.work, "tmp"));
	mr_problems_reset(&pb);
	free(abs_link);
	world_free(&w);
}

/* Every format reaches the same checks: cpio and zip carry links too. */
static void test_hostile_in_cpio_and_zip(void **state)
{
	static const int formats[] = { ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, ARCHIVE_FORMAT_ZIP,
				       ARCHIVE_FORMAT_TAR_GNUTAR };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		struct mr_problems pb = { NULL, 0, 0, 0 };
		struct restore_stats st;
		struct mr_error err;
		struct world w;
		struct archive *a;

		world_setup(&w);
		a = ag_open(w.arc, formats[i], ARCHIVE_FILTER_NONE);
		ag_file(a, "../outside/secret", "pwned", 5, 0644, 1500000000, 0);
		ag_symlink(a, "esc", "../outside");
		ag_file(a, "pre/secret", "pwned", 5, 0644, 1500000000, 0);
		ag_symlink(a, "up", "..");
		ag_file(a, "fine", "ok", 2, 04644, 1500000000, 0);
		ag_close(a);
		world_freeze(&w);
		assert_int_equal(ag_extract(w.arc, w.work, NULL, &st, &pb, &err), 0);
		world_check(&w);
		assert_int_equal(st.refused, 4);
		ag_assert_content(w.work, "fine", "ok", 2);
		assert_int_equal(ag_lstat(w.work, "fine").st_mode & 07777, 0644);
		mr_problems_reset(&pb);
		world_free(&w);
	}
}

/* tar can't carry sockets; cpio can. */
static void test_special_files_in_cpio(void **state)
{
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct world w;
	struct archive *a;

	(void)state;
	world_setup(&w);
	a = ag_open(w.arc, ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, ARCHIVE_FILTER_GZIP);
	ag_special(a, "sock", AE_IFSOCK);
	ag_special(a, "fifo", AE_IFIFO);
	ag_special(a, "dev/null", AE_IFCHR);
	ag_special(a, "dev/sda", AE_IFBLK);
	ag_file(a, "after", "ok", 2, 0644, 1500000000, 0);
	ag_close(a);
	world_freeze(&w);
	assert_int_equal(ag_extract(w.arc, w.work, NULL, &st, &pb, &err), 0);
	world_check(&w);
	assert_int_equal(st.refused, 4);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "socket"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "FIFO"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "character device"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "block device"));
	assert_false(ag_exists(w.work, "sock"));
	assert_false(ag_exists(w.work, "dev/null"));
	ag_assert_content(w.work, "after", "ok", 2);
	mr_problems_reset(&pb);
	world_free(&w);
}

/* A symlink placed by the archive, then a directory entry and a file
 * below the same name: the directory replaces the link (it is not
 * followed), so the file lands inside. */
static void test_dir_entry_replaces_link(void **state)
{
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct world w;
	struct archive *a;

	(void)state;
	world_setup(&w);
	a = ag_open(w.arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
	ag_dir(a, "pre", 0755, 1500000000);
	ag_file(a, "pre/secret", "mine", 4, 0644, 1500000000, 0);
	ag_close(a);
	world_freeze(&w);
	assert_int_equal(ag_extract(w.arc, w.work, NULL, &st, &pb, &err), 0);
	world_check(&w);
	assert_true(S_ISDIR(ag_lstat(w.work, "pre").st_mode));
	ag_assert_content(w.work, "pre/secret", "mine", 4);
	mr_problems_reset(&pb);
	world_free(&w);
}

/* Regression: a hard link to a symlink that is safe where it stands moves
 * the link's relative target to another depth, where it leads out
 * (a/b/c/L -> ../../../other is inside from depth 3; M -> a/b/c/L at the
 * root would point at ../../../other = outside the work copy). */
static void test_hardlink_to_symlink_refused(void **state)
{
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct world w;
	struct archive *a;

	(void)state;
	world_setup(&w);
	a = ag_open(w.arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
	ag_dir(a, "a/b/c", 0755, 1500000000);
	ag_symlink(a, "a/b/c/L", "../../../other");
	ag_hardlink(a, "M", "a/b/c/L");
	ag_symlink(a, "a/up", "../victim");
	ag_hardlink(a, "N", "a/up");
	ag_close(a);
	world_freeze(&w);
	assert_int_equal(ag_extract(w.arc, w.work, NULL, &st, &pb, &err), 0);
	world_check(&w);
	assert_true(S_ISLNK(ag_lstat(w.work, "a/b/c/L").st_mode));
	assert_false(ag_exists(w.work, "M"));
	assert_false(ag_exists(w.work, "N"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "M"));
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "N"));
	mr_problems_reset(&pb);
	world_free(&w);
}

/* Regression (found by fuzz_extract): a name longer than any file system
 * allows, in a folder of the path, the file name or a hard link's target,
 * refuses that entry and extraction goes on (it was a fatal error). */
static void test_name_too_long_refused(void **state)
{
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct world w;
	struct archive *a;
	char longname[300], path[700];

	(void)state;
	memset(longname, 'N', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	world_setup(&w);
	a = ag_open(w.arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
	snprintf(path, sizeof(path), "cur/%s/msg", longname);
	ag_file(a, path, "deep", 4, 0644, 1500000000, 0);
	snprintf(path, sizeof(path), "cur/%s", longname);
	ag_file(a, path, "long", 4, 0644, 1500000000, 0);
	ag_hardlink(a, "cur/link", path);
	ag_file(a, "cur/ok", "fine", 4, 0644, 1500000000, 0);
	ag_close(a);
	world_freeze(&w);
	assert_int_equal(ag_extract(w.arc, w.work, NULL, &st, &pb, &err), 0);
	world_check(&w);
	ag_assert_content(w.work, "cur/ok", "fine", 4);
	assert_false(ag_exists(w.work, "cur/link"));
	assert_int_equal(mr_problems_count(&pb, MR_PROBLEM_REFUSED), 3);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_REFUSED, "longer than 255 bytes"));
	mr_problems_reset(&pb);
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_hostile_kind),
		cmocka_unit_test(test_hostile_in_cpio_and_zip),
		cmocka_unit_test(test_special_files_in_cpio),
		cmocka_unit_test(test_dir_entry_replaces_link),
		cmocka_unit_test(test_hardlink_to_symlink_refused),
		cmocka_unit_test(test_name_too_long_refused),
	};

	mr_log_quiet = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
