/*
 * durable.c: making a finished work copy durable before it is renamed into
 * place. syncfs() writes back every file of the file system and, since
 * Linux 5.8, reports a write-back error that happened after dst_dirfd was
 * opened; every folder is fsync'd on top so its entries (the renames of the
 * sync) are on disk too. Any failure means "not done".
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

static int fsync_dirs(int dfd, const char *rel, struct mr_error *err)
{
	struct mr_dirlist list = { 0 };
	size_t i;
	int rc = -1;

	if (mr_io->fsync(dfd) < 0) {
		mr_error_set(err, errno, "fsync(%s) failed", *rel ? rel : ".");
		return -1;
	}
	if (mr_listdir(dfd, &list, err) < 0) {
		mr_error_prefix(err, "listing %s", *rel ? rel : ".");
		return -1;
	}
	for (i = 0; i < list.n; i++) {
		struct stat st;
		char *child;
		int cfd, r;

		if (list.v[i].type != DT_DIR && list.v[i].type != DT_UNKNOWN)
			continue;
		child = sync_join(rel, list.v[i].name);
		if (child == NULL) {
			mr_error_set(err, ENOMEM, "durable");
			goto out;
		}
		if (list.v[i].type == DT_UNKNOWN &&
		    (mr_io->fstatat(dfd, list.v[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		     !S_ISDIR(st.st_mode))) {
			free(child);
			continue;
		}
		cfd = mr_io->openat(dfd, list.v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (cfd < 0) {
			mr_error_set(err, errno, "openat(%s) failed", child);
			free(child);
			goto out;
		}
		r = fsync_dirs(cfd, child, err);
		mr_close(cfd);
		free(child);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	mr_dirlist_free(&list);
	return rc;
}

/* Makes everything below dst_dirfd durable. See sync.h. */
int sync_make_durable(int dst_dirfd, struct mr_error *err)
{
	if (mr_io->syncfs(dst_dirfd) < 0) {
		mr_error_set(err, errno, "syncfs of the work copy failed");
		return -1;
	}
	return fsync_dirs(dst_dirfd, "", err);
}
