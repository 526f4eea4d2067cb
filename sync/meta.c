/*
 * meta.c: permission bits, owners and times of destination entries, taken
 * from the source (the truth). Owner first (chown may clear set-id bits),
 * then mode, then times last, since the time is what the quick check of a
 * later run trusts.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>

/* 1 when both mtimes are equal to the nanosecond. */
int sync_same_mtime(const struct stat *a, const struct stat *b)
{
	return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The Maildir unique name of a file name. See sync_private.h. */
size_t sync_maildir_key(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon ? (size_t)(colon - name) : strlen(name);
}

int sync_maildir_message(const char *rel, uint64_t size)
{
	const char *name = strrchr(rel, '/'), *folder, *sz;
	size_t keylen;
	uint64_t v = 0;

	if (name == NULL)
		return 0;
	folder = name;
	while (folder > rel && folder[-1] != '/')
		folder--;
	if (!((name - folder == 3 && (memcmp(folder, "cur", 3) == 0 ||
				      memcmp(folder, "new", 3) == 0))))
		return 0;
	name++;
	/* a unique name starts with the delivery time: "1700000000.M1P2.host" */
	keylen = sync_maildir_key(name);
	for (sz = name; *sz >= '0' && *sz <= '9'; sz++)
		;
	if (sz == name || *sz != '.' || (size_t)(sz - name) + 1 >= keylen)
		return 0;
	/* ",S=<size>" within the unique name: it must agree */
	for (sz = name; (sz = strstr(sz, ",S=")) != NULL && (size_t)(sz - name) < keylen; sz += 3) {
		const char *p = sz + 3;

		if (*p < '0' || *p > '9')
			continue;
		for (v = 0; *p >= '0' && *p <= '9' && (size_t)(p - name) < keylen; p++)
			v = v * 10 + (uint64_t)(*p - '0');
		return v == size;
	}
	return 1;
}

int sync_same_file_quick(const char *rel, const struct stat *s, const struct stat *d,
			 int64_t backup_started)
{
	if (s->st_size != d->st_size)
		return 0;
	if (sync_same_mtime(s, d))
		return 1;
	/* Changed after the backup read it? Then its mtime is at least the
	 * backup's start: a second before that start rules it out. */
	if (d->st_mtim.tv_nsec == 0 && s->st_mtim.tv_sec == d->st_mtim.tv_sec &&
	    backup_started > 0 && (int64_t)s->st_mtim.tv_sec < backup_started)
		return 1;
	return sync_maildir_message(rel, (uint64_t)s->st_size);
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
