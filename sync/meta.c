/*
 * meta.c: permission bits, owners and times of destination entries, taken
 * from the source (the truth). Owner first (chown may clear set-id bits),
 * then mode, then times last, since the time is what the quick check of a
 * later run trusts.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

/* 1 when both mtimes are equal to the nanosecond. */
int sync_same_mtime(const struct stat *a, const struct stat *b)
{
	return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* 1 when mode bits (not for links), owner (when owner) or mtime differ. */
int sync_meta_differs(const struct stat *s, const struct stat *d, int owner)
{
	if (!S_ISLNK(s->st_mode) && (s->st_mode & 07777) != (d->st_mode & 07777))
		return 1;
	if (owner && (s->st_uid != d->st_uid || s->st_gid != d->st_gid))
		return 1;
	return !sync_same_mtime(s, d);
}

/* Owner, mode, then times of dirfd/name from s, skipping what d already
 * has. 0 or -1 with ctx->err. */
int sync_meta_apply_at(struct sync_ctx *ctx, int dirfd, const char *name, const char *rel,
		       const struct stat *s, const struct stat *d)
{
	struct timespec ts[2];
	int link = S_ISLNK(s->st_mode);
	int chowned = 0;

	if (ctx->set->preserve_owner && (d == NULL || s->st_uid != d->st_uid ||
					 s->st_gid != d->st_gid)) {
		if (mr_io->fchownat(dirfd, name, s->st_uid, s->st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(ctx->err, errno, "lchown(%s) failed", rel);
			return -1;
		}
		chowned = 1;
	}
	if (!link && (d == NULL || chowned || (s->st_mode & 07777) != (d->st_mode & 07777))) {
		if (mr_io->fchmodat(dirfd, name, s->st_mode & 07777, 0) < 0) {
			mr_error_set(ctx->err, errno, "chmod(%s) failed", rel);
			return -1;
		}
	}
	if (d == NULL || !sync_same_mtime(s, d)) {
		ts[0] = s->st_atim;
		ts[1] = s->st_mtim;
		if (mr_io->utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(ctx->err, errno, "utimensat(%s) failed", rel);
			return -1;
		}
	}
	return 0;
}

/* Owner, mode, then times of an open file from s. 0 or -1 with ctx->err. */
int sync_meta_apply_fd(struct sync_ctx *ctx, int fd, const char *rel, const struct stat *s)
{
	struct timespec ts[2];

	if (ctx->set->preserve_owner &&
	    mr_io->fchownat(fd, "", s->st_uid, s->st_gid, AT_EMPTY_PATH) < 0) {
		mr_error_set(ctx->err, errno, "fchown(%s) failed", rel);
		return -1;
	}
	if (mr_io->fchmod(fd, s->st_mode & 07777) < 0) {
		mr_error_set(ctx->err, errno, "fchmod(%s) failed", rel);
		return -1;
	}
	ts[0] = s->st_atim;
	ts[1] = s->st_mtim;
	if (mr_io->futimens(fd, ts) < 0) {
		mr_error_set(ctx->err, errno, "futimens(%s) failed", rel);
		return -1;
	}
	return 0;
}
