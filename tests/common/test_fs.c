/* test_fs.c: walking below a held directory, listings, and the fault layer. */
#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

static void beneath_refuses_links_and_dotdot(void **state)
{
	char *dir = tu_tmpdir();
	int root, fd;
	struct mr_error err = { 0 };

	(void)state;
	tu_write_file(dir, "root/a/b/file", "x", 1);
	tu_write_file(dir, "outside/secret", "s", 1);
	assert_int_equal(tu_sh("ln -s ../../outside '%s/root/a/link'", dir), 0);
	assert_int_equal(tu_sh("ln -s /etc '%s/root/abs'", dir), 0);
	{
		char *rootpath = tu_path(dir, "root");
		root = tu_open_dir(rootpath);
		free(rootpath);
	}

	fd = mr_open_beneath(root, "a/b/file", O_RDONLY, 0, &err);
	assert_true(fd >= 0);
	close(fd);
	fd = mr_open_beneath(root, "./a/b/file", O_RDONLY, 0, &err);
	assert_true(fd >= 0);
	close(fd);
	/* through a link, to a link, up, absolute: all refused */
	assert_int_equal(mr_open_beneath(root, "a/link/secret", O_RDONLY, 0, &err), -1);
	assert_non_null(strstr(err.msg, "link"));
	assert_int_equal(mr_open_beneath(root, "abs/passwd", O_RDONLY, 0, &err), -1);
	assert_int_equal(mr_open_beneath(root, "a/link", O_RDONLY, 0, &err), -1);
	assert_int_equal(mr_open_beneath(root, "../outside/secret", O_RDONLY, 0, &err), -1);
	assert_int_equal(err.errnum, EPERM);
	assert_int_equal(mr_open_beneath(root, "/etc/passwd", O_RDONLY, 0, &err), -1);
	/* mkdirs stops at a link too and creates nothing outside */
	assert_int_equal(mr_mkdirs_beneath(root, "a/link/new", 0700, &err), -1);
	assert_int_equal(tu_sh("test -e '%s/outside/new'", dir), 1);
	fd = mr_mkdirs_beneath(root, "x/y/z", 0700, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(tu_sh("test -d '%s/root/x/y/z'", dir), 0);
	close(root);
	tu_rmtree(dir);
}

static void listdir_sorted(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_dirlist list;
	struct mr_error err = { 0 };
	int fd;

	(void)state;
	tu_write_file(dir, "c", "", 0);
	tu_write_file(dir, "a", "", 0);
	tu_write_file(dir, "B", "", 0);
	tu_write_file(dir, "sub/x", "", 0);
	fd = tu_open_dir(dir);
	assert_int_equal(mr_listdir(fd, &list, &err), 0);
	assert_int_equal(list.n, 4);
	assert_string_equal(list.v[0].name, "B");
	assert_string_equal(list.v[1].name, "a");
	assert_string_equal(list.v[2].name, "c");
	assert_string_equal(list.v[3].name, "sub");
	mr_dirlist_free(&list);
	close(fd);
	tu_rmtree(dir);
}

static void faults_fire_where_asked(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_io_fault f = { .op = MR_IO_READ, .name_contains = "bad", .errnum = EIO };
	struct mr_io_fault w = { .op = MR_IO_WRITE, .name_contains = "full", .errnum = ENOSPC,
				 .after = 1 };
	struct mr_io_fault g = { .op = MR_IO_GETDENTS, .name_contains = "sub", .errnum = EIO };
	struct mr_dirlist list;
	struct mr_error err = { 0 };
	char buf[16];
	int root, fd, sub;

	(void)state;
	tu_write_file(dir, "good", "hello", 5);
	tu_write_file(dir, "bad", "hello", 5);
	tu_write_file(dir, "sub/x", "", 0);
	root = tu_open_dir(dir);
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(mr_io_fault_add(&w), 0);
	assert_int_equal(mr_io_fault_add(&g), 0);

	fd = mr_io->openat(root, "good", O_RDONLY, 0);
	assert_int_equal(mr_read_full(fd, buf, sizeof(buf)), 5);
	mr_io->close(fd);
	fd = mr_io->openat(root, "bad", O_RDONLY, 0);
	assert_int_equal(mr_read_full(fd, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EIO);
	mr_io->close(fd);

	fd = mr_io->openat(root, "full", O_WRONLY | O_CREAT, 0600);
	assert_int_equal(mr_write_all(fd, "a", 1), 0);   /* the first write passes */
	assert_int_equal(mr_write_all(fd, "b", 1), -1);
	assert_int_equal(errno, ENOSPC);
	mr_io->close(fd);

	sub = mr_io->openat(root, "sub", O_RDONLY | O_DIRECTORY, 0);
	assert_int_equal(mr_listdir(sub, &list, &err), -1);
	assert_int_equal(err.errnum, EIO);
	assert_int_equal(list.n, 0);
	mr_io->close(sub);
	assert_true(mr_io_fault_fired() >= 3);

	mr_io_fault_clear();
	assert_ptr_equal(mr_io, &mr_io_libc);
	close(root);
	tu_rmtree(dir);
}

static void short_writes_still_complete(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_io_fault s = { .op = MR_IO_WRITE, .name_contains = "out", .short_len = 3 };
	char data[1000], *back;
	size_t len = 0;
	int root, fd, i;

	(void)state;
	for (i = 0; i < 1000; i++)
		data[i] = (char)('a' + i % 26);
	root = tu_open_dir(dir);
	mr_io_fault_add(&s);
	fd = mr_io->openat(root, "out", O_WRONLY | O_CREAT, 0600);
	assert_int_equal(mr_write_all(fd, data, sizeof(data)), 0);
	mr_io->close(fd);
	mr_io_fault_clear();
	back = tu_read_file(dir, "out", &len);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(back, data, sizeof(data));
	free(back);
	close(root);
	tu_rmtree(dir);
}

static void problems_and_errors(void **state)
{
	struct mr_problems p = { 0 };
	struct mr_error err = { 0 };
	char buf[256];

	(void)state;
	mr_problems_add(&p, MR_PROBLEM_UNREADABLE, EIO, "cur/x", "read(cur/x) failed: %s", "EIO");
	mr_problems_add(&p, MR_PROBLEM_REFUSED, 0, "../evil", "refused");
	assert_int_equal(mr_problems_count(&p, 0), 2);
	assert_int_equal(mr_problems_count(&p, MR_PROBLEM_UNREADABLE), 1);
	mr_problems_summary(&p, buf, sizeof(buf), 1);
	assert_non_null(strstr(buf, "cur/x"));
	assert_non_null(strstr(buf, "1 more"));
	mr_problems_reset(&p);
	assert_int_equal(p.n, 0);

	mr_error_set(&err, ENOSPC, "write(%s) failed", "x");
	assert_string_equal(err.msg, "write(x) failed: No space left on device");
	mr_error_prefix(&err, "user %s", "bob");
	assert_string_equal(err.msg, "user bob: write(x) failed: No space left on device");
	assert_int_equal(err.errnum, ENOSPC);
}

/* Regression: listings of one shared directory fd from several threads
 * once shared its file position (lseek + getdents), so a listing could miss
 * entries another thread had read: a user's backup seemed absent. */
enum { SHARED_ENTRIES = 600, SHARED_THREADS = 8, SHARED_ROUNDS = 40 };

struct shared_lister {
	int dirfd;
	int short_listings;
	int errors;
};

static void *list_shared(void *arg)
{
	struct shared_lister *l = arg;
	int round;

	for (round = 0; round < SHARED_ROUNDS; round++) {
		struct mr_dirlist list;
		struct mr_error err = { 0 };
		if (mr_listdir(l->dirfd, &list, &err) < 0) {
			l->errors++;
			continue;
		}
		if (list.n != SHARED_ENTRIES)
			l->short_listings++;
		mr_dirlist_free(&list);
	}
	return NULL;
}

static void listdir_shared_fd_across_threads(void **state)
{
	char *dir = tu_tmpdir();
	struct shared_lister l[SHARED_THREADS];
	pthread_t th[SHARED_THREADS];
	int fd, i;

	(void)state;
	assert_int_equal(tu_sh("cd '%s' && for i in $(seq 1 %d); do : > user$i.tar.lz4; done", dir,
			       SHARED_ENTRIES), 0);
	fd = tu_open_dir(dir);
	for (i = 0; i < SHARED_THREADS; i++) {
		l[i] = (struct shared_lister){ fd, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, list_shared, &l[i]), 0);
	}
	for (i = 0; i < SHARED_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(l[i].errors, 0);
		assert_int_equal(l[i].short_listings, 0);
	}
	close(fd);
	tu_rmtree(dir);
}


/* Builds d/d/d/... levels deep below dirfd, with a file and a read-only
 * folder at the bottom; one descriptor at a time. */
static void build_deep(int dirfd, int levels)
{
	int fd = tu_build_deep(dirfd, levels);

	assert_int_equal(mkdirat(fd, "ro", 0500), 0);
	close(fd);
}

/* Issue 10, finding 4: removing a 6000-level tree (scratch, a discarded
 * work copy) neither overflows the stack nor needs a descriptor per
 * level: run with the descriptor limit at 64. */
static void remove_deep_tree(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_error err = { 0 };
	struct rlimit rl, low;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	(void)state;
	assert_true(dfd >= 0);
	assert_int_equal(mkdirat(dfd, "top", 0755), 0);
	{
		int top = openat(dfd, "top", O_RDONLY | O_DIRECTORY);
		assert_true(top >= 0);
		build_deep(top, 6000);
		close(top);
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(mr_remove_tree_at(dfd, "top", &err), 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(faccessat(dfd, "top", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(mr_path_depth(""), 0);
	assert_int_equal(mr_path_depth("."), 0);
	assert_int_equal(mr_path_depth("./a/b"), 2);
	assert_int_equal(mr_path_depth("a/b/c"), 3);
	close(dfd);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(beneath_refuses_links_and_dotdot),
		cmocka_unit_test(listdir_sorted),
		cmocka_unit_test(listdir_shared_fd_across_threads),
		cmocka_unit_test(faults_fire_where_asked),
		cmocka_unit_test(short_writes_still_complete),
		cmocka_unit_test(problems_and_errors),
		cmocka_unit_test(remove_deep_tree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
