/*
 * patch.c: large files changed in place (Dovecot index files, caches, mbox
 * files that grew) are patched block by block: both sides are read in
 * fixed-size blocks, each block hashed with xxh3, and only the blocks that
 * differ are written, then the file is extended or truncated. A file with
 * other hard links (the restore extracts an archive's links as links) is
 * never patched: writing into it would change the other names too, so it
 * is copied whole and its name gets an inode of its own.
 *
 * Why in place and not through a temporary copy: a copy writes the whole
 * file, which is what the "bytes written close to bytes changed" goal
 * forbids. Patching in place is safe here because
 *   - the work copy is not active yet: nobody reads it until the sync ended
 *     clean and the copy was made durable and renamed into place;
 *   - the source is read completely before anything is written (changed
 *     blocks are held in memory, at most SYNC_PATCH_MEM_MAX, else the file
 *     is copied whole instead), so a read error on the damaged source
 *     leaves the destination exactly as it was; the appended tail is
 *     written first and cut off again when reading it fails;
 *   - the file's time is set last: a crash or a destination error in the
 *     middle leaves a time other than the source's (the old one, or the
 *     time of the write), so the next run's quick check sees the file as
 *     changed and patches it again.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct pending {
	off_t *offs;
	size_t *lens;
	size_t n, cap;
	unsigned char *data;
	size_t used, datacap;
};

static void pending_free(struct pending *p)
{
	free(p->offs);
	free(p->lens);
	free(p->data);
	memset(p, 0, sizeof(*p));
}

/* Keeps a changed block. 0, 1 when over the memory budget, -1 ENOMEM. */
static int pending_add(struct pending *p, off_t off, const unsigned char *buf, size_t len)
{
	if (p->used + len > SYNC_PATCH_MEM_MAX)
		return 1;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		off_t *o = realloc(p->offs, cap * sizeof(*o));
		size_t *l;

		if (o == NULL)
			return -1;
		p->offs = o;
		l = realloc(p->lens, cap * sizeof(*l));
		if (l == NULL)
			return -1;
		p->lens = l;
		p->cap = cap;
	}
	if (p->used + len > p->datacap) {
		size_t cap = p->datacap ? p->datacap * 2 : 4 * len;
		unsigned char *d;

		while (cap < p->used + len)
			cap *= 2;
		d = realloc(p->data, cap);
		if (d == NULL)
			return -1;
		p->data = d;
		p->datacap = cap;
	}
	memcpy(p->data + p->used, buf, len);
	p->offs[p->n] = off;
	p->lens[p->n] = len;
	p->n++;
	p->used += len;
	return 0;
}

/* One attempt: SYNC_DONE, SYNC_COPY_WHOLE, SYNC_SOURCE_CHANGED (try
 * again), SYNC_SOURCE_PROBLEM or SYNC_FAILED. */
static enum sync_result patch_once(struct sync_ctx *ctx, const struct sync_op *op, const char *parent,
		      const char *name)
{
	struct pending pend = { 0 };
	struct stat before, after, dst;
	off_t off, common, tail_from = -1;
	uint64_t written = 0;
	size_t bs = ctx->block_size, chunk, i, at;
	enum sync_result rc = SYNC_FAILED, sr;
	int sfd, dfd = -1, ddir, r, truncated = 0;

	sfd = sync_open_src_file(ctx, parent, name, op->rel, &before);
	if (sfd < 0)
		return SYNC_SOURCE_PROBLEM;
	ddir = sync_dir_fd(ctx, 0, parent);
	if (ddir < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed", parent);
		goto out;
	}
	dfd = sync_open_dst_file(ctx, ddir, name, op->rel, O_RDWR, 1, &dst);
	if (dfd == -2) {
		dfd = -1;
		rc = SYNC_COPY_WHOLE;
		goto out;
	}
	if (dfd < 0)
		goto out;
	if (dst.st_nlink > 1) {
		/* A write in place would reach every hard link of it too. */
		rc = SYNC_COPY_WHOLE;
		goto out;
	}
	common = before.st_size < dst.st_size ? before.st_size : dst.st_size;

	/* Read all of the source's overlapping part first: nothing is written
	 * until the damaged disk gave every block. Both sides are read a
	 * buffer at a time and compared a block at a time. */
	chunk = ctx->buf_size / bs * bs;
	for (off = 0; off < common; off += (off_t)chunk) {
		size_t len = (size_t)(common - off) < chunk ? (size_t)(common - off) : chunk, b;
		ssize_t n = mr_pread_full(sfd, ctx->buf_a, len, off), m;

		if (n < 0) {
			sync_src_failed(ctx, "read", op->rel, errno);
			rc = SYNC_SOURCE_PROBLEM;
			goto out;
		}
		ctx->stats->source_bytes_read += (uint64_t)n;
		if ((size_t)n < len) {
			rc = SYNC_SOURCE_CHANGED;
			goto out;
		}
		m = mr_pread_full(dfd, ctx->buf_b, len, off);
		if (m < 0 || (size_t)m < len) {
			mr_error_set(ctx->err, m < 0 ? errno : EIO, "read(%s) in the destination failed",
				     op->rel);
			goto out;
		}
		for (b = 0; b < len; b += bs) {
			size_t blen = len - b < bs ? len - b : bs;

			if (XXH3_64bits(ctx->buf_a + b, blen) == XXH3_64bits(ctx->buf_b + b, blen))
				continue;
			r = pending_add(&pend, off + (off_t)b, ctx->buf_a + b, blen);
			if (r < 0) {
				mr_error_set(ctx->err, ENOMEM, "patch of %s", op->rel);
				goto out;
			}
			if (r > 0) {
				rc = SYNC_COPY_WHOLE;
				goto out;
			}
		}
	}

	/* The grown tail: appended, and cut off again if the source fails. */
	if (before.st_size > dst.st_size) {
		uint64_t covered = 0, tail_written = 0;

		/* Holes of the source's tail stay holes (a file grown by
		 * truncate costs nothing), and the room it takes is checked
		 * first. */
		if (sync_room_for(ctx, dfd, sync_alloc_bytes(&before, dst.st_size), op->rel) < 0)
			goto out;
		tail_from = dst.st_size;
		sr = sync_copy_sparse(ctx, sfd, dfd, dst.st_size, before.st_size, op->rel, &covered,
				      &tail_written);
		written += tail_written;
		if (sr != SYNC_DONE) {
			rc = sr;
			goto out;
		}
	}
	if (mr_io->fstat(sfd, &after) < 0) {
		sync_src_failed(ctx, "fstat", op->rel, errno);
		rc = SYNC_SOURCE_PROBLEM;
		goto out;
	}
	if (sync_changed_since(&before, &after)) {
		rc = SYNC_SOURCE_CHANGED;
		goto out;
	}
	tail_from = -1;
	for (i = 0, at = 0; i < pend.n; at += pend.lens[i], i++) {
		if (mr_pwrite_all(dfd, pend.data + at, pend.lens[i], pend.offs[i]) < 0) {
			mr_error_set(ctx->err, errno, "write(%s) failed", op->rel);
			goto out;
		}
		written += pend.lens[i];
	}
	if (before.st_size < dst.st_size) {
		if (mr_io->ftruncate(dfd, before.st_size) < 0) {
			mr_error_set(ctx->err, errno, "ftruncate(%s) failed", op->rel);
			goto out;
		}
		truncated = 1;
	}
	/* Time last: see the top of this file. */
	if (sync_meta_apply_fd(ctx, dfd, op->rel, &after) < 0)
		goto out;
	if (written > 0 || truncated) {
		ctx->stats->patched_files++;
		ctx->stats->patched_bytes += written;
		ctx->stats->bytes_written += written;
	} else if (!sync_same_mtime(&after, &dst) ||
		   sync_meta_differs(&after, &dst, ctx->set->preserve_owner)) {
		ctx->stats->meta_fixed++;
	}
	sync_progress(ctx, written);
	rc = SYNC_DONE;
out:
	/* A tail written before a failure goes again, and the time it had:
	 * the file is back to exactly the backup's version. */
	if (tail_from >= 0 && dfd >= 0 && mr_io->ftruncate(dfd, tail_from) == 0) {
		struct timespec ts[2] = { dst.st_atim, dst.st_mtim };

		mr_io->futimens(dfd, ts);
	}
	pending_free(&pend);
	mr_close(dfd);
	mr_close(sfd);
	return rc;
}

/* See sync_private.h. */
enum sync_result sync_patch_file(struct sync_ctx *ctx, const struct sync_op *op)
{
	enum sync_result r = sync_retry_source(ctx, op, patch_once, "patched");

	return r == SYNC_SOURCE_PROBLEM ? SYNC_DONE : r;
}
