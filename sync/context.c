/*
 * context.c: the small helpers every file of sync/ shares about one run:
 * its problems, paths split and joined, opening source entries, the cached
 * folder of each side, progress and cancelling. Nothing here calls another
 * file of sync/.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds a problem of this sync and counts it. */
void sync_problem(struct sync_ctx *ctx, enum mr_problem_kind kind, int errnum, const char *rel,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mr_problems_addv(ctx->problems, kind, errnum, rel, fmt, ap);
	va_end(ap);
	ctx->nproblems++;
}

/* "parent/name", or name for the root. malloc'd; NULL on ENOMEM. */
char *sync_join(const char *parent, const char *name)
{
	char *p;

	if (*parent == '\0')
		return strdup(name);
	if (asprintf(&p, "%s/%s", parent, name) < 0)
		return NULL;
	return p;
}

/* Splits rel into a malloc'd parent and its last component. 0 or -1. */
int sync_split(const char *rel, char **parent_r, const char **name_r)
{
	const char *slash = strrchr(rel, '/');

	*parent_r = slash ? strndup(rel, (size_t)(slash - rel)) : strdup("");
	*name_r = slash ? slash + 1 : rel;
	if (*parent_r == NULL) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* openat() for the source: read-only flags given by the caller, never a
 * link, O_NOATIME where allowed. fd or -1/errno. */
int sync_src_openat(int dirfd, const char *name, int flags)
{
	int fd = mr_io->openat(dirfd, name, flags | O_NOFOLLOW | O_NOATIME, 0);

	/* O_NOATIME is refused (EPERM) on files another user owns unless we
	 * are root; reading then is still reading. */
	if (fd < 0 && errno == EPERM)
		fd = mr_io->openat(dirfd, name, flags | O_NOFOLLOW, 0);
	return fd;
}

/* Closes and forgets the cached folder. */
void sync_dircache_drop(struct sync_dircache *c)
{
	mr_walk_free(&c->w);
}

/* A borrowed fd of folder rel_parent of one side, valid until the next
 * call for that side (the root fd for ""). -1/errno. */
int sync_dir_fd(struct sync_ctx *ctx, int is_src, const char *rel_parent)
{
	struct sync_dircache *c = is_src ? &ctx->src_cache : &ctx->dst_cache;
	int root = is_src ? ctx->src_root : ctx->dst_root;
	struct mr_error err = { 0 };
	int fd;

	if (*rel_parent == '\0')
		return root;
	if (c->w == NULL) {
		c->w = mr_walk_new(&root, 1, "", 0, NULL, is_src ? 1u : 0u, &err);
		if (c->w == NULL) {
			errno = err.errnum ? err.errnum : ENOMEM;
			return -1;
		}
	}
	fd = mr_walk_goto(c->w, rel_parent, 0, &err);
	if (fd < 0)
		errno = err.errnum ? err.errnum : EIO;
	return fd;
}

/* One more entry done with bytes written: tells the progress callback. */
void sync_progress(struct sync_ctx *ctx, uint64_t bytes)
{
	ctx->files_done++;
	ctx->bytes_done += bytes;
	if (ctx->set->progress != NULL)
		ctx->set->progress(ctx->set->progress_arg, ctx->files_done, ctx->bytes_done);
}

int sync_cancelled(struct sync_ctx *ctx)
{
	if (!mr_cancelled(ctx->set->cancel))
		return 0;
	mr_error_set(ctx->err, ECANCELED, "sync cancelled");
	return 1;
}
