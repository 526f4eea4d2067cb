/*
 * merge.c: bringing what an existing T/<user> holds into a user's restore
 * (engine_merge_tree). A T/<user> that mailrestore did not activate (the
 * mail server made it when the user logged in before the login hook was
 * wired, or mail was delivered there) is never skipped and never
 * overwritten: what it holds that the restore lacks is added to the
 * restore, and the restore then takes its place (engine.c).
 *
 * "Lacks" means: a Maildir message (a file in a folder named cur or new)
 * whose unique base name (the part before ':') neither cur nor new of the
 * same folder holds; any other file, link or folder whose name the
 * restore does not have at that path. The mail server's own index files
 * (dovecot*, courierimap*) are never brought over: they describe the tree
 * they were made for, and the server rebuilds them for the merged one.
 * Nothing under a Maildir's tmp is brought over (unfinished deliveries).
 */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The length of a Maildir message's unique base name: up to its ':'. */
static size_t base_len(const char *name)
{
	const char *c = strchr(name, ':');

	return c ? (size_t)(c - name) : strlen(name);
}

/* 1 when folder dirfd (a Maildir's cur or new) or its sibling holds a
 * message with the base name of name. */
static int have_message(int parent_fd, const char *name)
{
	static const char *const subs[] = { "cur", "new" };
	size_t blen = base_len(name), i, k;
	int rc = 0;

	for (k = 0; k < 2 && !rc; k++) {
		struct mr_dirlist list = { 0 };
		int fd = mr_io->openat(parent_fd, subs[k], O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);

		if (fd < 0)
			continue;
		if (mr_listdir(fd, &list, NULL) == 0) {
			for (i = 0; i < list.n && !rc; i++)
				rc = base_len(list.v[i].name) == blen &&
				     memcmp(list.v[i].name, name, blen) == 0;
			mr_dirlist_free(&list);
		}
		mr_close(fd);
	}
	return rc;
}

static int server_index(const char *name)
{
	return strncmp(name, "dovecot", 7) == 0 || strncmp(name, "courierimap", 11) == 0;
}

/* Copies regular file name from from_fd into to_fd (new, never replacing),
 * with its mode and times. 0 or -1 with err. */
static int copy_file(int from_fd, int to_fd, const char *name, struct mr_error *err)
{
	char buf[65536];
	struct stat st;
	struct timespec ts[2];
	int in = -1, out = -1, rc = -1;
	ssize_t n;

	in = mr_io->openat(from_fd, name, O_RDONLY | O_NOFOLLOW, 0);
	if (in < 0 || mr_io->fstat(in, &st) < 0) {
		mr_error_set(err, errno, "open(%s) failed", name);
		goto out;
	}
	out = mr_io->openat(to_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (out < 0) {
		mr_error_set(err, errno, "create(%s) failed", name);
		goto out;
	}
	while ((n = mr_io->read(in, buf, sizeof(buf))) > 0)
		if (mr_write_all(out, buf, (size_t)n) < 0) {
			mr_error_set(err, errno, "write(%s) failed", name);
			goto out;
		}
	if (n < 0) {
		mr_error_set(err, errno, "read(%s) failed", name);
		goto out;
	}
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	if (mr_io->fchmod(out, st.st_mode & 07777) < 0 || futimens(out, ts) < 0) {
		mr_error_set(err, errno, "chmod/utimes(%s) failed", name);
		goto out;
	}
	rc = 0;
out:
	mr_close(in);
	mr_close(out);
	return rc;
}

/* Brings one entry of from_fd that to_fd lacks over. 0 or -1 with err. */
static int bring(int from_fd, int to_fd, const char *name, const struct stat *st, int move,
		 struct mr_error *err)
{
	char target[4096];
	ssize_t n;

	if (move) {
		if (mr_io->renameat(from_fd, name, to_fd, name) < 0) {
			mr_error_set(err, errno, "rename(%s) failed", name);
			return -1;
		}
		return 0;
	}
	if (S_ISREG(st->st_mode))
		return copy_file(from_fd, to_fd, name, err);
	if (S_ISLNK(st->st_mode)) {
		n = mr_io->readlinkat(from_fd, name, target, sizeof(target) - 1);
		if (n < 0) {
			mr_error_set(err, errno, "readlink(%s) failed", name);
			return -1;
		}
		target[n] = '\0';
		if (mr_io->symlinkat(target, to_fd, name) < 0) {
			mr_error_set(err, errno, "symlink(%s) failed", name);
			return -1;
		}
	}
	return 0;  /* devices, FIFOs, sockets: not mail */
}

/* One folder of the merge walk (side 0 the old tree, side 1 the restore). */
struct mframe {
	struct mr_dirlist list;
	size_t i;
	int listed;
};

static void mframe_free(void *p)
{
	mr_dirlist_free(&((struct mframe *)p)->list);
}

/* Brings entry name of the top folders of w over. 0, 1 when it is a
 * folder both have that the walk has entered, -1 with err. */
static int merge_entry(struct mr_walk *w, const char *name, int move, uint64_t *entries_r,
		       struct mr_error *err)
{
	int from_fd = mr_walk_fd(w, 0), to_fd = mr_walk_fd(w, 1);
	const char *path = mr_walk_path(w), *dirname = strrchr(path, '/');
	int in_maildir, have, to_parent_fd;
	struct stat st, ours;

	dirname = dirname ? dirname + 1 : path;
	in_maildir = mr_walk_depth(w) > 0 &&
		     (strcmp(dirname, "cur") == 0 || strcmp(dirname, "new") == 0);
	if (mr_io->fstatat(from_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		mr_error_set(err, errno, "stat(%s) failed", name);
		return -1;
	}
	have = mr_io->fstatat(to_fd, name, &ours, AT_SYMLINK_NOFOLLOW) == 0;
	if (!have && errno != ENOENT) {
		mr_error_set(err, errno, "stat(%s) failed", name);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		int fds[MR_WALK_SIDES];

		if (strcmp(name, "tmp") == 0)
			return 0;
		if (have && !S_ISDIR(ours.st_mode))
			return 0;  /* the restore's entry wins */
		if (!have && move) {
			if (bring(from_fd, to_fd, name, &st, 1, err) < 0)
				return -1;
			(*entries_r)++;
			return 0;
		}
		if (!have && mr_io->mkdirat(to_fd, name, st.st_mode & 07777) < 0) {
			mr_error_set(err, errno, "mkdir(%s) failed", name);
			return -1;
		}
		fds[0] = mr_walk_openat(w, 0, name);
		fds[1] = fds[0] < 0 ? -1 : mr_walk_openat(w, 1, name);
		if (fds[0] < 0 || fds[1] < 0) {
			mr_error_set(err, errno, "open(%s) failed", name);
			mr_close(fds[0]);
			return -1;
		}
		if (!have)
			(*entries_r)++;
		return mr_walk_push(w, name, fds, err) < 0 ? -1 : 1;
	}
	if (have || server_index(name))
		return 0;
	if (in_maildir && S_ISREG(st.st_mode)) {
		to_parent_fd = mr_walk_parent_fd(w, 1, err);
		if (to_parent_fd < 0)
			return -1;
		if (have_message(to_parent_fd, name))
			return 0;
	}
	if (bring(from_fd, to_fd, name, &st, move, err) < 0)
		return -1;
	(*entries_r)++;
	return 0;
}

/* Walks both trees without recursion (any depth, a bounded number of
 * descriptors). */
static int merge_walk(int from_fd, int to_fd, int move, uint64_t *entries_r,
		      struct mr_error *err)
{
	int roots[MR_WALK_SIDES] = { from_fd, to_fd };
	struct mr_walk *w;
	int rc = -1;

	w = mr_walk_new(roots, 2, "", sizeof(struct mframe), mframe_free, 0, err);
	if (w == NULL)
		return -1;
	for (;;) {
		struct mframe *f = mr_walk_frame(w);
		const char *name;

		if (!f->listed) {
			f->listed = 1;
			if (mr_listdir(mr_walk_fd(w, 0), &f->list, err) < 0)
				goto out;
		}
		if (f->i == f->list.n) {
			if (mr_walk_depth(w) == 0)
				break;
			if (mr_walk_pop(w, err) < 0)
				goto out;
			continue;
		}
		name = f->list.v[f->i++].name;
		if (merge_entry(w, name, move, entries_r, err) < 0)
			goto out;
	}
	rc = 0;
out:
	mr_walk_free(&w);
	return rc;
}

int engine_merge_tree(int from_fd, int to_fd, int move, uint64_t *entries_r,
		      struct mr_error *err)
{
	int rc;

	*entries_r = 0;
	rc = merge_walk(from_fd, to_fd, move, entries_r, err);
	if (rc < 0)
		mr_error_prefix(err, "merging the existing mailbox");
	return rc;
}
