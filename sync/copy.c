/*
 * copy.c: whole-file copies and symlinks. New content is always written to
 * a temporary name (in the scratch folder, or beside its final place) and
 * renamed over the destination only when complete, so a read error on the
 * damaged source, a full disk or a crash never leaves a half-written file
 * where the backup's version was.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <xxhash.h>

/* The folder temporary files of entries of parent go to: the scratch
 * folder, or a folder fd of parent of our own (the shared cache may be
 * dropped while the temporary file exists). -1 with ctx->err. */
static int tmp_dir(struct sync_ctx *ctx, const char *parent, int *owned_r)
{
	int fd;

	if (ctx->set->tmp_dirfd >= 0)
		return ctx->set->tmp_dirfd;
	fd = sync_dir_fd(ctx, 0, parent);
	if (fd >= 0)
		fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed",
			     *parent ? parent : ".");
		return -1;
	}
	*owned_r = fd;
	return fd;
}

/* The new version of op's entry at tdir/tmp is complete: only now does
 * the old entry of a type change leave for the attic, and the new one is
 * renamed over the destination's parent/name. 0 or -1 with ctx->err. */
static int put_in_place(struct sync_ctx *ctx, const struct sync_op *op, int tdir,
			const char *tmp, const char *parent, const char *name)
{
	int ddir;

	if (op->typechange && sync_attic_move(ctx, op->rel, op->nfiles) < 0)
		return -1;
	ddir = sync_dir_fd(ctx, 0, parent);
	if (ddir < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed", parent);
		return -1;
	}
	if (mr_io->renameat(tdir, tmp, ddir, name) < 0) {
		mr_error_set(ctx->err, errno, "rename(%s) into place failed", op->rel);
		return -1;
	}
	return 0;
}

/* Creates a new temporary file for op's entry below parent's temporary
 * folder (tmp_dir): its name into tmp (len bytes), that folder into *tdir_r
 * (and *owned_r when it is a descriptor of our own). The file's fd, or -1
 * with ctx->err. */
static int open_tmp(struct sync_ctx *ctx, const struct sync_op *op, const char *parent,
		    char *tmp, size_t len, int *tdir_r, int *owned_r)
{
	int tfd;

	*tdir_r = tmp_dir(ctx, parent, owned_r);
	if (*tdir_r < 0)
		return -1;
	mr_tmp_name(SYNC_TMP_PREFIX, tmp, len);
	tfd = mr_io->openat(*tdir_r, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (tfd < 0)
		mr_error_set(ctx->err, errno, "creating a temporary file for %s failed", op->rel);
	return tfd;
}

/* The temporary file tfd holds op's new content: gives it st's metadata,
 * closes it (always) and puts it in place. 0 or -1 with ctx->err. */
static int finish_tmp(struct sync_ctx *ctx, const struct sync_op *op, int tfd,
		      const struct stat *st, int tdir, const char *tmp, const char *parent,
		      const char *name)
{
	if (sync_meta_apply_fd(ctx, tfd, op->rel, st) < 0) {
		mr_close(tfd);
		return -1;
	}
	if (mr_io->close(tfd) < 0) {
		mr_error_set(ctx->err, errno, "close(%s) failed", op->rel);
		return -1;
	}
	return put_in_place(ctx, op, tdir, tmp, parent, name);
}

/* One attempt at copying: SYNC_DONE, SYNC_SOURCE_PROBLEM,
 * SYNC_SOURCE_CHANGED (try again) or SYNC_FAILED. */
static enum sync_result copy_once(struct sync_ctx *ctx, const struct sync_op *op, const char *parent,
		     const char *name)
{
	struct stat before, after;
	char tmp[64];
	enum sync_result rc = SYNC_FAILED, r;
	int sfd = -1, tfd = -1, tdir = -1, tdir_owned = -1, have_tmp = 0, placed;
	uint64_t total = 0, written = 0;

	sfd = sync_open_src_file(ctx, parent, name, op->rel, &before);
	if (sfd < 0)
		return SYNC_SOURCE_PROBLEM;
	tfd = open_tmp(ctx, op, parent, tmp, sizeof(tmp), &tdir, &tdir_owned);
	if (tfd < 0)
		goto out;
	have_tmp = 1;
	if (sync_room_for(ctx, tfd, sync_alloc_bytes(&before, 0), op->rel) < 0)
		goto out;
	r = sync_copy_sparse(ctx, sfd, tfd, 0, before.st_size, op->rel, &total, &written);
	if (r != SYNC_DONE) {
		rc = r;
		goto out;
	}
	if (mr_io->fstat(sfd, &after) < 0) {
		sync_src_failed(ctx, "fstat", op->rel, errno);
		rc = SYNC_SOURCE_PROBLEM;
		goto out;
	}
	if (sync_changed_since(&before, &after) || total != (uint64_t)after.st_size) {
		rc = SYNC_SOURCE_CHANGED;
		goto out;
	}
	placed = finish_tmp(ctx, op, tfd, &after, tdir, tmp, parent, name);
	tfd = -1;
	if (placed < 0)
		goto out;
	have_tmp = 0;
	ctx->stats->copied_files++;
	ctx->stats->copied_bytes += total;
	ctx->stats->bytes_written += written;
	sync_progress(ctx, total);
	rc = SYNC_DONE;
out:
	mr_close(tfd);
	if (have_tmp)
		mr_io->unlinkat(tdir, tmp, 0);
	mr_close(tdir_owned);
	mr_close(sfd);
	return rc;
}

/* Copies a source file whole through a temporary file. 0 done or source
 * problem recorded, -1 destination failure. */
int sync_copy_file(struct sync_ctx *ctx, const struct sync_op *op)
{
	return sync_retry_source(ctx, op, copy_once, "copied") == SYNC_FAILED ? -1 : 0;
}

/* One attempt at unsharing: the destination's own bytes of op->rel into a
 * temporary file (a clone where the file system shares blocks, else a
 * copy), the source's metadata, renamed over the name. 0 or -1 with
 * ctx->err. */
static int unshare_once(struct sync_ctx *ctx, const struct sync_op *op, const char *parent,
			const char *name)
{
	struct stat dst;
	char tmp[64];
	int dfd = -1, tfd = -1, tdir = -1, tdir_owned = -1, ddir, have_tmp = 0, rc = -1;
	off_t off = 0;

	ddir = sync_dir_fd(ctx, 0, parent);
	if (ddir < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed", op->rel);
		goto out;
	}
	dfd = sync_open_dst_file(ctx, ddir, name, op->rel, O_RDONLY, 0, &dst);
	if (dfd < 0)
		goto out;
	tfd = open_tmp(ctx, op, parent, tmp, sizeof(tmp), &tdir, &tdir_owned);
	if (tfd < 0)
		goto out;
	have_tmp = 1;
	if (ioctl(tfd, FICLONE, dfd) < 0) {
		if (sync_room_for(ctx, tfd, sync_alloc_bytes(&dst, 0), op->rel) < 0)
			goto out;
		for (;;) {
			ssize_t n = mr_pread_full(dfd, ctx->buf_b, ctx->buf_size, off);

			if (n < 0) {
				mr_error_set(ctx->err, errno, "read(%s) in the destination failed",
					     op->rel);
				goto out;
			}
			if (n == 0)
				break;
			if (mr_pwrite_all(tfd, ctx->buf_b, (size_t)n, off) < 0) {
				mr_error_set(ctx->err, errno, "write(%s) failed", op->rel);
				goto out;
			}
			off += n;
			ctx->stats->bytes_written += (uint64_t)n;
		}
	}
	rc = finish_tmp(ctx, op, tfd, &op->st, tdir, tmp, parent, name);
	tfd = -1;
	if (rc < 0)
		goto out;
	have_tmp = 0;
	rc = 0;
out:
	mr_close(tfd);
	if (have_tmp)
		mr_io->unlinkat(tdir, tmp, 0);
	mr_close(tdir_owned);
	mr_close(dfd);
	return rc;
}

/* See sync_private.h. */
int sync_unshare_file(struct sync_ctx *ctx, const struct sync_op *op)
{
	const char *name;
	char *parent = NULL;
	int rc;

	if (sync_split(op->rel, &parent, &name) < 0) {
		mr_error_set(ctx->err, ENOMEM, "sync");
		return -1;
	}
	rc = unshare_once(ctx, op, parent, name);
	free(parent);
	return rc;
}

/* Compares the contents of source and destination file rel by hash:
 * SYNC_SAME, SYNC_DIFFERENT, SYNC_SOURCE_PROBLEM or SYNC_FAILED. */
static enum sync_result same_content(struct sync_ctx *ctx, const struct sync_op *op, const char *parent,
			const char *name)
{
	struct stat st;
	uint64_t hs, hd;
	enum sync_result rc = SYNC_FAILED;
	int sfd, dfd = -1, ddir;

	sfd = sync_open_src_file(ctx, parent, name, op->rel, &st);
	if (sfd < 0)
		return SYNC_SOURCE_PROBLEM;
	if (sync_hash_fd(sfd, ctx->buf_a, ctx->buf_size, &hs) < 0) {
		sync_src_failed(ctx, "read", op->rel, errno);
		rc = SYNC_SOURCE_PROBLEM;
		goto out;
	}
	ctx->stats->source_bytes_read += (uint64_t)st.st_size;
	ddir = sync_dir_fd(ctx, 0, parent);
	if (ddir >= 0)
		dfd = mr_io->openat(ddir, name, O_RDONLY | O_NOFOLLOW, 0);
	if (dfd < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed", op->rel);
		goto out;
	}
	if (sync_hash_fd(dfd, ctx->buf_b, ctx->buf_size, &hd) < 0) {
		mr_error_set(ctx->err, errno, "read(%s) in the destination failed", op->rel);
		goto out;
	}
	rc = hs == hd ? SYNC_SAME : SYNC_DIFFERENT;
out:
	mr_close(sfd);
	mr_close(dfd);
	return rc;
}

/* A file both sides have that failed the quick check: time fix, patch or
 * copy (always a copy when the destination file has other hard links). 0,
 * or -1 destination failure. */
int sync_change_file(struct sync_ctx *ctx, const struct sync_op *op)
{
	const char *name;
	char *parent = NULL;
	enum sync_result r;
	int rc = -1, ddir;

	if (sync_split(op->rel, &parent, &name) < 0) {
		mr_error_set(ctx->err, ENOMEM, "sync");
		return -1;
	}
	if (op->dst.st_nlink > 1) {
		/* Other names share this inode (the backup's hard links): a
		 * patch or a time fix in place would change them too. The
		 * copy gives this name an inode of its own. */
	} else if ((uint64_t)op->st.st_size >= ctx->patch_min && op->dst.st_size > 0) {
		/* Large files: the patch compares block by block and writes
		 * nothing when only the time differs. */
		r = sync_patch_file(ctx, op);
		if (r != SYNC_COPY_WHOLE) {
			rc = r == SYNC_FAILED ? -1 : 0;
			goto out;
		}
	} else if (op->st.st_size == op->dst.st_size) {
		/* Backups keep coarser times (ustar: seconds, zip: two
		 * seconds): equal content only needs its time fixed. */
		r = same_content(ctx, op, parent, name);
		if (r == SYNC_FAILED)
			goto out;
		if (r == SYNC_SOURCE_PROBLEM) {
			rc = 0;
			goto out;
		}
		if (r == SYNC_SAME && sync_same_mtime(&op->st, &op->dst) &&
		    !sync_meta_differs(&op->st, &op->dst, ctx->set->preserve_owner)) {
			/* Only checked (compare_content): nothing to fix. */
			sync_progress(ctx, 0);
			rc = 0;
			goto out;
		}
		if (r == SYNC_SAME) {
			ddir = sync_dir_fd(ctx, 0, parent);
			if (ddir < 0) {
				mr_error_set(ctx->err, errno, "open(%s) in the destination failed",
					     parent);
				goto out;
			}
			if (sync_meta_apply_at(ctx, ddir, name, op->rel, &op->st, &op->dst) < 0)
				goto out;
			ctx->stats->meta_fixed++;
			sync_progress(ctx, 0);
			rc = 0;
			goto out;
		}
	}
	rc = sync_copy_file(ctx, op);
out:
	free(parent);
	return rc;
}

/* Creates or replaces a symlink by renaming a new one over it. 0 or -1. */
int sync_make_symlink(struct sync_ctx *ctx, const struct sync_op *op)
{
	const char *name;
	char *parent = NULL, tmp[64];
	int tdir, tdir_owned = -1, rc = -1, have_tmp = 0;

	if (sync_split(op->rel, &parent, &name) < 0) {
		mr_error_set(ctx->err, ENOMEM, "sync");
		return -1;
	}
	tdir = tmp_dir(ctx, parent, &tdir_owned);
	if (tdir < 0)
		goto out;
	mr_tmp_name(SYNC_TMP_PREFIX, tmp, sizeof(tmp));
	if (mr_io->symlinkat(op->target, tdir, tmp) < 0) {
		mr_error_set(ctx->err, errno, "symlink(%s) failed", op->rel);
		goto out;
	}
	have_tmp = 1;
	if (sync_meta_apply_at(ctx, tdir, tmp, op->rel, &op->st, NULL) < 0)
		goto out;
	/* renamed over the old link: there is never a moment without one. */
	if (put_in_place(ctx, op, tdir, tmp, parent, name) < 0)
		goto out;
	have_tmp = 0;
	ctx->stats->copied_files++;
	sync_progress(ctx, 0);
	rc = 0;
out:
	if (have_tmp)
		mr_io->unlinkat(tdir, tmp, 0);
	mr_close(tdir_owned);
	free(parent);
	return rc;
}
