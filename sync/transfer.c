/*
 * transfer.c: what copy.c and patch.c both do with a source file: open it
 * read-only and record a failure as the user's problem, notice that it
 * changed while it was read and try again, hash it, copy its bytes keeping
 * holes, and check that the target has room first.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* 1 when the source file changed between two fstats. See sync_private.h. */
int sync_changed_since(const struct stat *before, const struct stat *now)
{
	return before->st_size != now->st_size || !sync_same_mtime(before, now) ||
	       before->st_ctim.tv_sec != now->st_ctim.tv_sec ||
	       before->st_ctim.tv_nsec != now->st_ctim.tv_nsec;
}

/* XXH3 of a whole open file, read with pread. 0 or -1/errno. */
int sync_hash_fd(int fd, unsigned char *buf, size_t buflen, uint64_t *hash_r)
{
	XXH3_state_t *state = XXH3_createState();
	off_t off = 0;
	int rc = -1;

	if (state == NULL) {
		errno = ENOMEM;
		return -1;
	}
	XXH3_64bits_reset(state);
	for (;;) {
		ssize_t n = mr_pread_full(fd, buf, buflen, off);
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		XXH3_64bits_update(state, buf, (size_t)n);
		off += n;
	}
	*hash_r = XXH3_64bits_digest(state);
	rc = 0;
out:
	XXH3_freeState(state);
	return rc;
}

/* Records that call failed on source entry rel; the destination keeps
 * its version. */
void sync_src_failed(struct sync_ctx *ctx, const char *call, const char *rel, int e)
{
	ctx->stats->unreadable++;
	sync_problem(ctx, MR_PROBLEM_UNREADABLE, e, rel,
		     "%s(%s) in the source failed: %s; the backup's version is kept", call, rel,
		     strerror(e));
}

int sync_open_dst_file(struct sync_ctx *ctx, int ddir, const char *name, const char *rel,
		       int flags, int refused, struct stat *st)
{
	int fd;

	fd = mr_io->openat(ddir, name, flags | O_NOFOLLOW, 0);
	if (fd < 0 && refused && (errno == EACCES || errno == EPERM || errno == ETXTBSY))
		return -2;
	if (fd < 0 || mr_io->fstat(fd, st) < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed", rel);
		mr_close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		mr_error_set(ctx->err, EINVAL, "%s in the destination is no longer a file", rel);
		mr_close(fd);
		return -1;
	}
	return fd;
}

/* Opens source file rel read-only (O_NOATIME, O_NOFOLLOW) and fstats it;
 * -1 after recording the problem. */
int sync_open_src_file(struct sync_ctx *ctx, const char *parent, const char *name,
			 const char *rel, struct stat *st)
{
	int dfd, fd;

	dfd = sync_dir_fd(ctx, 1, parent);
	if (dfd < 0) {
		sync_src_failed(ctx, "open", *parent ? parent : ".", errno);
		return -1;
	}
	fd = sync_src_openat(dfd, name, O_RDONLY);
	if (fd < 0) {
		sync_src_failed(ctx, "openat", rel, errno);
		return -1;
	}
	if (mr_io->fstat(fd, st) < 0) {
		sync_src_failed(ctx, "fstat", rel, errno);
		mr_close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		sync_src_failed(ctx, "fstat", rel, EINVAL);
		mr_close(fd);
		return -1;
	}
	return fd;
}

/* See sync_private.h. */
int sync_room_for(struct sync_ctx *ctx, int fd, uint64_t need, const char *rel)
{
	uint64_t avail = mr_free_bytes(fd);
	char hn[32], ha[32], hh[32];

	if (avail == UINT64_MAX || need + MR_HEADROOM_BYTES <= avail)
		return 0;
	mr_error_set(ctx->err, ENOSPC,
		     "not enough room on the target for %s: it needs %s, %s are free and %s "
		     "are kept free", rel, mr_human_bytes(need, hn, sizeof(hn)),
		     mr_human_bytes(avail, ha, sizeof(ha)),
		     mr_human_bytes(MR_HEADROOM_BYTES, hh, sizeof(hh)));
	return -1;
}

/* See sync_private.h. */
uint64_t sync_alloc_bytes(const struct stat *st, off_t from)
{
	uint64_t alloc = (uint64_t)st->st_blocks * 512;
	uint64_t span = st->st_size > from ? (uint64_t)(st->st_size - from) : 0;

	return alloc < span ? alloc : span;
}

/* 1 when len bytes of buf are all zero. */
static int all_zero(const unsigned char *buf, size_t len)
{
	return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

/* See sync_private.h. */
enum sync_result sync_copy_sparse(struct sync_ctx *ctx, int sfd, int tfd, off_t from, off_t size,
		     const char *rel, uint64_t *total_r, uint64_t *written_r)
{
	off_t off = from, data, hole;
	ssize_t n;

	*total_r = *written_r = 0;
	while (off < size) {
		/* Where the next data starts and ends; a file system without
		 * SEEK_DATA (or a damaged one that fails it) is read whole. */
		data = mr_io->lseek(sfd, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {
			data = off;
			hole = size;
		} else {
			hole = mr_io->lseek(sfd, data, SEEK_HOLE);
			if (hole < 0 || hole > size)
				hole = size;
		}
		for (off = data; off < hole; off += n) {
			size_t want = ctx->buf_size;

			if ((off_t)want > hole - off)
				want = (size_t)(hole - off);
			n = mr_pread_full(sfd, ctx->buf_a, want, off);
			if (n < 0) {
				sync_src_failed(ctx, "read", rel, errno);
				return SYNC_SOURCE_PROBLEM;
			}
			if (n == 0)
				return SYNC_SOURCE_CHANGED;   /* shrank under us */
			ctx->stats->source_bytes_read += (uint64_t)n;
			/* Zeros stay a hole in the copy too. */
			if (all_zero(ctx->buf_a, (size_t)n))
				continue;
			if (mr_pwrite_all(tfd, ctx->buf_a, (size_t)n, off) < 0) {
				mr_error_set(ctx->err, errno, "write(%s) failed", rel);
				return SYNC_FAILED;
			}
			*written_r += (uint64_t)n;
		}
		*total_r = (uint64_t)(off - from);
	}
	/* The holes at the end and the size itself. */
	if (mr_io->ftruncate(tfd, size) < 0) {
		mr_error_set(ctx->err, errno, "ftruncate(%s) failed", rel);
		return SYNC_FAILED;
	}
	*total_r = (uint64_t)(size - from);
	return SYNC_DONE;
}

/* See sync_private.h. */
enum sync_result sync_retry_source(struct sync_ctx *ctx, const struct sync_op *op,
				   enum sync_result (*once)(struct sync_ctx *ctx,
							    const struct sync_op *op,
							    const char *parent, const char *name),
				   const char *verb)
{
	enum sync_result r = SYNC_DONE;
	const char *name;
	char *parent = NULL;
	int i;

	if (sync_split(op->rel, &parent, &name) < 0) {
		mr_error_set(ctx->err, ENOMEM, "sync");
		return SYNC_FAILED;
	}
	for (i = 0; i < SYNC_COPY_TRIES; i++) {
		r = once(ctx, op, parent, name);
		if (r != SYNC_SOURCE_CHANGED)
			break;
	}
	free(parent);
	if (r == SYNC_SOURCE_CHANGED) {
		ctx->stats->unreadable++;
		sync_problem(ctx, MR_PROBLEM_UNREADABLE, EAGAIN, op->rel,
			     "%s kept changing while it was %s; the backup's version is kept",
			     op->rel, verb);
		return SYNC_SOURCE_PROBLEM;
	}
	return r;
}
