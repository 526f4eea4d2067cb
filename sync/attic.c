/*
 * attic.c: what the source no longer has leaves the work copy for the attic
 * (CONTRACT "attic"), under the same relative path, by rename on the same
 * file system: user data is never unlinked. An entry already in the attic
 * from an earlier run is kept too; the newcomer gets ".1", ".2", ...
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
		afd = mr_mkdirs_beneath(ctx->set->attic_dirfd, parent, 0700, ctx->err);
		if (afd < 0) {
			mr_error_prefix(ctx->err, "attic folder for %s", rel);
			goto out;
		}
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
