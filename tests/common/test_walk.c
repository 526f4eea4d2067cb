/* test_walk.c: struct mr_walk, the stack-free walker: depth bounded by
 * memory, descriptors bounded whatever the depth, a tree changed during
 * the walk is an error and never a walk into another place, and the cursor
 * (mr_walk_goto) used by a sync's apply phase and the extraction. */
#include "tests/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Open descriptors of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;  /* opendir's own */
}

/* d/d/d/... levels deep below dirfd with a file "f" every 500 levels and
 * "bottom" at the end; one descriptor at a time. */
static void build_deep(int dirfd, int levels)
{
	int fd = tu_build_deep(dirfd, levels), sub;

	sub = openat(fd, "bottom", O_WRONLY | O_CREAT, 0600);
	assert_true(sub >= 0);
	close(sub);
	close(fd);
}

struct frame {
	struct mr_dirlist list;
	size_t next;
	int listed;
};

static void frame_free(void *p)
{
	mr_dirlist_free(&((struct frame *)p)->list);
}

struct counts {
	size_t dirs, files, maxdepth, maxpath;
	int maxfds;
};

/* A plain depth-first walk of root with the walker, the way the modules
 * use it. 0, or -1 with err. */
static int walk_all(int root, struct counts *c, struct mr_error *err)
{
	int roots[1] = { root };
	struct mr_walk *w = mr_walk_new(roots, 1, "", sizeof(struct frame), frame_free, 1, err);
	int rc = -1;

	if (w == NULL)
		return -1;
	memset(c, 0, sizeof(*c));
	for (;;) {
		struct frame *f = mr_walk_frame(w);

		if (!f->listed) {
			if (mr_listdir(mr_walk_fd(w, 0), &f->list, err) < 0)
				goto out;
			f->listed = 1;
			if (mr_walk_depth(w) > c->maxdepth) {
				int n = count_fds();
				c->maxdepth = mr_walk_depth(w);
				c->maxpath = strlen(mr_walk_path(w));
				if (n > c->maxfds)
					c->maxfds = n;
			}
		}
		if (f->next < f->list.n) {
			const char *name = f->list.v[f->next++].name;
			struct stat st;
			int fds[MR_WALK_SIDES] = { -1, -1 };

			if (mr_io->fstatat(mr_walk_fd(w, 0), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				mr_error_set(err, errno, "fstatat(%s)", name);
				goto out;
			}
			if (!S_ISDIR(st.st_mode)) {
				c->files++;
				continue;
			}
			fds[0] = mr_walk_openat(w, 0, name);
			if (fds[0] < 0) {
				mr_error_set(err, errno, "openat(%s)", name);
				goto out;
			}
			if (mr_walk_push(w, name, fds, err) < 0)
				goto out;
			c->dirs++;
			continue;
		}
		if (mr_walk_depth(w) == 0)
			break;
		if (mr_walk_pop(w, err) < 0)
			goto out;
	}
	rc = 0;
out:
	mr_walk_free(&w);
	return rc;
}

/* 10000 levels: walked completely with the descriptor limit at 64 and a
 * bounded number of descriptors at the deepest point. */
static void deep_tree_bounded_fds(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_error err = { 0 };
	struct counts c = { 0 };
	struct rlimit rl, low;
	int root = tu_open_dir(dir), before;

	(void)state;
	build_deep(root, 10000);
	before = count_fds();
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(walk_all(root, &c, &err), 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(c.dirs, 10000);
	assert_int_equal(c.files, 21);  /* 20 "f" and the bottom */
	assert_int_equal(c.maxdepth, 10000);
	assert_int_equal(c.maxpath, 2 * 10000 - 1);  /* longer than PATH_MAX */
	/* the held levels, a listing's own descriptor, /proc's */
	assert_true(c.maxfds <= before + MR_WALK_HELD + 2);
	assert_int_equal(count_fds(), before);
	close(root);
	tu_rmtree(dir);
}

/* Two sides: parent descriptors come back through "..", paths grow. */
static void two_sides_and_parent(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_error err = { 0 };
	struct mr_walk *w;
	int a, b, roots[2], i, fd;
	struct stat st, pst;

	(void)state;
	assert_int_equal(tu_sh("mkdir -p '%s/a' '%s/b'", dir, dir), 0);
	{
		char *p = tu_path(dir, "a");
		a = tu_open_dir(p);
		free(p);
		p = tu_path(dir, "b");
		b = tu_open_dir(p);
		free(p);
	}
	build_deep(a, 60);
	build_deep(b, 60);
	roots[0] = a;
	roots[1] = b;
	w = mr_walk_new(roots, 2, "base", 0, NULL, 0, &err);
	assert_non_null(w);
	assert_string_equal(mr_walk_path(w), "base");
	for (i = 0; i < 60; i++) {
		int fds[2];
		fds[0] = mr_walk_openat(w, 0, "d");
		/* side 1 lacks the folder from level 30 on */
		fds[1] = i < 30 ? mr_walk_openat(w, 1, "d") : -1;
		assert_true(fds[0] >= 0);
		assert_int_equal(mr_walk_push(w, "d", fds, &err), 0);
	}
	assert_int_equal(mr_walk_depth(w), 60);
	assert_int_equal(strlen(mr_walk_path(w)), 4 + 2 * 60);
	assert_int_equal(mr_walk_fd(w, 1), -1);
	/* a push on a side whose parent is absent is refused */
	{
		int fds[2] = { -1, dup(a) };
		assert_int_equal(mr_walk_push(w, "x", fds, &err), -1);
		assert_int_equal(err.errnum, EINVAL);
	}
	/* back up to 20: every level given away comes back right, side 1's
	 * last level (30, far above the held ones) included */
	while (mr_walk_depth(w) > 20)
		assert_int_equal(mr_walk_pop(w, &err), 0);
	fd = mr_walk_parent_fd(w, 0, &err);
	assert_true(fd >= 0);
	assert_int_equal(fstatat(fd, "d", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fstat(mr_walk_fd(w, 0), &pst), 0);
	assert_int_equal(st.st_ino, pst.st_ino);
	assert_true(mr_walk_fd(w, 1) >= 0);
	while (mr_walk_depth(w) > 0)
		assert_int_equal(mr_walk_pop(w, &err), 0);
	assert_string_equal(mr_walk_path(w), "base");
	assert_int_equal(mr_walk_pop(w, &err), -1);
	mr_walk_free(&w);
	assert_null(w);
	close(a);
	close(b);
	tu_rmtree(dir);
}

/* A folder replaced by a symlink before the walk enters it: refused. A
 * level moved out of the tree while the walk was deeper (its descriptor
 * given away): going back up is ESTALE, not a walk outside. */
static void changed_tree_is_an_error(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_error err = { 0 };
	struct mr_walk *w;
	int root, roots[1], fds[2] = { -1, -1 }, i;
	char path[4096];

	(void)state;
	assert_int_equal(tu_sh("mkdir -p '%s/root/x' '%s/outside/secret'", dir, dir), 0);
	{
		char *p = tu_path(dir, "root");
		root = tu_open_dir(p);
		free(p);
	}
	build_deep(root, 40);
	roots[0] = root;
	w = mr_walk_new(roots, 1, "", 0, NULL, 0, &err);
	assert_non_null(w);
	/* x becomes a link to the outside between listing and entering */
	assert_int_equal(tu_sh("rmdir '%s/root/x' && ln -s ../outside '%s/root/x'", dir, dir), 0);
	fds[0] = mr_walk_openat(w, 0, "x");
	assert_int_equal(fds[0], -1);
	assert_true(errno == ELOOP || errno == ENOTDIR);
	/* the cursor refuses it as well */
	assert_int_equal(mr_walk_goto(w, "x/secret", 0, &err), -1);
	assert_non_null(strstr(err.msg, "link"));
	assert_int_equal(mr_walk_depth(w), 0);

	for (i = 0; i < 30; i++) {
		fds[0] = mr_walk_openat(w, 0, "d");
		assert_true(fds[0] >= 0);
		assert_int_equal(mr_walk_push(w, "d", fds, &err), 0);
	}
	/* root/d/d/d/d/d (level 5, no descriptor now) moves to the outside,
	 * a link to it takes its place */
	strcpy(path, "d/d/d/d/d");
	assert_int_equal(tu_sh("cd '%s/root' && mv %s ../outside/moved && ln -s "
			       "../../../../../outside/moved %s", dir, path, path), 0);
	for (;;) {
		int r = mr_walk_pop(w, &err);
		if (r < 0)
			break;
		assert_true(mr_walk_depth(w) >= 5);  /* never above the move */
	}
	assert_int_equal(err.errnum, ESTALE);
	mr_walk_free(&w);
	close(root);
	tu_rmtree(dir);
}

/* The cursor: goes up to the common folder and down the rest, creates
 * with a mode, refuses unsafe paths, and takes paths beyond PATH_MAX. */
static void cursor_goto(void **state)
{
	char *dir = tu_tmpdir();
	struct mr_error err = { 0 };
	struct mr_walk *w;
	struct stat st;
	int root = tu_open_dir(dir), roots[1] = { root }, fd, i, before;
	char *deep;
	size_t len;

	(void)state;
	before = count_fds();
	w = mr_walk_new(roots, 1, "", 0, NULL, 0, &err);
	assert_non_null(w);
	fd = mr_walk_goto(w, "a/b/c", 0750, &err);
	assert_true(fd >= 0);
	assert_int_equal(mr_walk_depth(w), 3);
	assert_int_equal(fstatat(root, "a/b/c", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	assert_true(mr_walk_goto(w, "a/b/x", 0700, &err) >= 0);
	assert_string_equal(mr_walk_path(w), "a/b/x");
	assert_true(mr_walk_goto(w, "a/bb", 0700, &err) >= 0);
	assert_string_equal(mr_walk_path(w), "a/bb");
	assert_int_equal(mr_walk_goto(w, "", 0, &err), root);
	assert_int_equal(mr_walk_goto(w, "nothere/x", 0, &err), -1);
	assert_int_equal(err.errnum, ENOENT);
	assert_int_equal(mr_walk_goto(w, "../x", 0700, &err), -1);
	assert_int_equal(err.errnum, EPERM);
	assert_int_equal(mr_walk_goto(w, "/etc", 0, &err), -1);
	assert_int_equal(mr_walk_goto(w, "a//b", 0, &err), -1);
	assert_int_equal(mr_walk_goto(w, "a/./b", 0, &err), -1);
	assert_int_equal(fstatat(root, "x", &st, 0), -1);

	/* 3000 levels one by one, then back up: few descriptors throughout */
	deep = malloc(2 * 3000 + 1);
	assert_non_null(deep);
	for (i = 0, len = 0; i < 3000; i++) {
		if (i > 0)
			deep[len++] = '/';
		deep[len++] = 'd';
		deep[len] = '\0';
		assert_true(mr_walk_goto(w, deep, 0700, &err) >= 0);
	}
	assert_int_equal(mr_walk_depth(w), 3000);
	assert_true(count_fds() <= before + MR_WALK_HELD);
	deep[2 * 1500 - 1] = '\0';
	assert_true(mr_walk_goto(w, deep, 0, &err) >= 0);
	assert_int_equal(mr_walk_depth(w), 1500);
	assert_true(mr_walk_goto(w, "a/b", 0, &err) >= 0);
	assert_int_equal(mr_walk_depth(w), 2);
	free(deep);
	mr_walk_free(&w);
	assert_int_equal(count_fds(), before);
	close(root);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(deep_tree_bounded_fds),
		cmocka_unit_test(two_sides_and_parent),
		cmocka_unit_test(changed_tree_is_an_error),
		cmocka_unit_test(cursor_goto),
	};

	/* 10000 folders: made and removed on a tmpfs when there is one (on a
	 * disk that takes most of this test's time) */
	if (getenv("TMPDIR") == NULL && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
