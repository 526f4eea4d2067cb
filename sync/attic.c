/*
 * attic.c: what the source no longer has leaves the work copy for the attic
 * (docs/LAYOUT.md, "attic"), under the same relative path, by rename on the same
 * file system: user data is never unlinked. An entry already in the attic
 * from an earlier run is kept too; the newcomer gets ".1", ".2", ... and so
 * does a folder on its way whose name the attic holds as a file.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTIC_SUFFIX_MAX 100000

/* Finds a free name for name in folder afd: name itself, else name.N.
 * 0 or -1 with ctx->err. */
static int free_name(struct sync_ctx *ctx, int afd, const char *name, const char *rel,
		     char *buf, size_t len)
{
	struct stat st;
	long n;

	for (n = 0; n <= ATTIC_SUFFIX_MAX; n++) {
		if (n == 0)
			snprintf(buf, len, "%s", name);
		else if ((size_t)snprintf(buf, len, "%s.%ld", name, n) >= len) {
			mr_error_set(ctx->err, ENAMETOOLONG, "attic name for %s", rel);
			return -1;
		}
		if (mr_io->fstatat(afd, buf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				return 0;
			mr_error_set(ctx->err, errno, "fstatat(%s) in the attic failed", rel);
			return -1;
		}
	}
	mr_error_set(ctx->err, EEXIST, "the attic holds too many versions of %s", rel);
	return -1;
}

/* Opens folder parent of the attic, creating what is missing, one
 * component at a time. A component the attic already holds as something
 * else than a folder (a file an earlier run moved there, where the
 * destination has a folder now) is taken as "name.1", "name.2", ...: the
 * first that is a folder or free, as free_name() does for the entry
 * itself. Returns an fd of it, or -1 with ctx->err. */
static int attic_dir(struct sync_ctx *ctx, const char *parent, const char *rel)
{
	char *copy = strdup(parent), *comp, *slash, buf[NAME_MAX + 32];
	int cur = ctx->set->attic_dirfd, fd = -1;
	long n;

	if (copy == NULL) {
		mr_error_set(ctx->err, ENOMEM, "attic");
		return -1;
	}
	for (comp = copy; comp != NULL; comp = slash != NULL ? slash + 1 : NULL) {
		slash = strchr(comp, '/');
		if (slash != NULL)
			*slash = '\0';
		for (n = 0, fd = -1; fd < 0 && n <= ATTIC_SUFFIX_MAX; n++) {
			if (n == 0)
				snprintf(buf, sizeof(buf), "%s", comp);
			else if ((size_t)snprintf(buf, sizeof(buf), "%s.%ld", comp, n) >=
				 sizeof(buf)) {
				mr_error_set(ctx->err, ENAMETOOLONG, "attic folder for %s", rel);
				goto fail;
			}
			if (mr_io->mkdirat(cur, buf, 0700) < 0 && errno != EEXIST) {
				mr_error_set(ctx->err, errno, "mkdirat(%s) in the attic failed for %s",
					     buf, rel);
				goto fail;
			}
			fd = mr_io->openat(cur, buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
			if (fd < 0 && errno != ENOTDIR && errno != ELOOP) {
				mr_error_set(ctx->err, errno, "openat(%s) in the attic failed for %s",
					     buf, rel);
				goto fail;
			}
		}
		if (fd < 0) {
			mr_error_set(ctx->err, EEXIST, "the attic holds too many versions of %s",
				     rel);
			goto fail;
		}
		if (cur != ctx->set->attic_dirfd)
			mr_close(cur);
		cur = fd;
	}
	free(copy);
	return cur;
fail:
	if (cur != ctx->set->attic_dirfd)
		mr_close(cur);
	free(copy);
	return -1;
}

/* Moves destination entry rel (nfiles non-directories) to the attic. See
 * sync_private.h. */
int sync_attic_move(struct sync_ctx *ctx, const char *rel, uint64_t nfiles)
{
	const char *name;
	char *parent = NULL, aname[NAME_MAX + 32];
	int afd = -1, ddir, rc = -1;

	if (sync_split(rel, &parent, &name) < 0) {
		mr_error_set(ctx->err, ENOMEM, "attic");
		return -1;
	}
	if (*parent == '\0') {
		afd = ctx->set->attic_dirfd;
	} else {
		afd = attic_dir(ctx, parent, rel);
		if (afd < 0)
			goto out;
	}
	if (free_name(ctx, afd, name, rel, aname, sizeof(aname)) < 0)
		goto out;
	ddir = sync_dir_fd(ctx, 0, parent);
	if (ddir < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed",
			     *parent ? parent : ".");
		goto out;
	}
	if (mr_io->renameat(ddir, name, afd, aname) < 0) {
		if (errno == EXDEV)
			mr_error_set(ctx->err, EXDEV,
				     "moving %s to the attic failed: the attic must be on the "
				     "destination's file system", rel);
		else
			mr_error_set(ctx->err, errno, "moving %s to the attic failed", rel);
		goto out;
	}
	/* The entry may have been a folder the cache holds. */
	sync_dircache_drop(&ctx->dst_cache);
	ctx->stats->attic_files += nfiles;
	rc = 0;
out:
	if (afd >= 0 && afd != ctx->set->attic_dirfd)
		mr_close(afd);
	free(parent);
	return rc;
}
