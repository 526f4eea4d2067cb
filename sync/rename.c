/*
 * rename.c: Maildir renames. A flag change (":2,S" becoming ":2,RS"), a
 * message moving from new/ to cur/ or to another folder shows up in the
 * merged walk as a file the destination lacks and a file the source lacks.
 * When both carry the same Maildir unique name (the part before ':') and
 * size, and their contents hash equal, the destination's file is renamed
 * into place instead of copied: no data is written. Two Maildir messages
 * (in cur/ or new/, see sync_maildir_message()) need no hashing: their
 * name and size name their content, so the source is not read at all.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

static int key_cmp(const char *a, size_t alen, off_t asize, const char *b, size_t blen,
		   off_t bsize)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	if (alen != blen)
		return alen < blen ? -1 : 1;
	if (asize != bsize)
		return asize < bsize ? -1 : 1;
	return 0;
}

static int cand_cmp(const void *x, const void *y)
{
	const struct sync_cand *a = x, *b = y;

	return key_cmp(a->key, a->keylen, a->st.st_size, b->key, b->keylen, b->st.st_size);
}

/* Index of the first candidate with this key and size, or ncands. */
static size_t cand_find(const struct sync_plan *p, const char *key, size_t keylen, off_t size)
{
	size_t lo = 0, hi = p->ncands;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct sync_cand *c = &p->cands[mid];

		if (key_cmp(c->key, c->keylen, c->st.st_size, key, keylen, size) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Hash of source file rel. 0, or -1 when it cannot be read now (the copy
 * that follows records the failure). */
static int hash_src(struct sync_ctx *ctx, const char *rel, uint64_t *hash_r)
{
	const char *name;
	char *parent = NULL;
	int dfd, fd = -1, rc = -1;

	if (sync_split(rel, &parent, &name) < 0)
		return -1;
	dfd = sync_dir_fd(ctx, 1, parent);
	if (dfd >= 0)
		fd = sync_src_openat(dfd, name, O_RDONLY);
	if (fd >= 0 && sync_hash_fd(fd, ctx->buf_a, ctx->buf_size, hash_r) == 0) {
		struct stat st;

		if (mr_io->fstat(fd, &st) == 0)
			ctx->stats->source_bytes_read += (uint64_t)st.st_size;
		rc = 0;
	}
	mr_close(fd);
	free(parent);
	return rc;
}

/* Hash of destination file rel. 0 or -1 with ctx->err. */
static int hash_dst(struct sync_ctx *ctx, const char *rel, uint64_t *hash_r)
{
	int fd = mr_open_beneath(ctx->dst_root, rel, O_RDONLY, 0, ctx->err);

	if (fd < 0)
		return -1;
	if (sync_hash_fd(fd, ctx->buf_b, ctx->buf_size, hash_r) < 0) {
		mr_error_set(ctx->err, errno, "read(%s) in the destination failed", rel);
		mr_close(fd);
		return -1;
	}
	mr_close(fd);
	return 0;
}

/* Candidate c, inside a removed folder, has been renamed out of it: that
 * folder takes one file less to the attic. */
static void uncount(struct sync_ctx *ctx, const struct sync_cand *c)
{
	struct sync_op *rm = &ctx->plan.ops[c->dir_op];

	rm->nfiles--;
	/* A type change's new entry comes right after its REMOVE and is the
	 * one that moves the old folder to the attic (plan.c). */
	if (rm->typechange)
		ctx->plan.ops[c->dir_op + 1].nfiles--;
}

/* Renames candidate c to op's path. 1 done, 0 not possible here (the op
 * stays a copy), -1 with ctx->err. */
static int do_rename(struct sync_ctx *ctx, struct sync_op *op, struct sync_cand *c)
{
	struct mr_error lerr = { 0 };
	const char *name, *cname;
	char *parent = NULL, *cparent = NULL;
	int tfd = -1, cfd, rc = -1;

	if (sync_split(op->rel, &parent, &name) < 0 || sync_split(c->rel, &cparent, &cname) < 0) {
		mr_error_set(ctx->err, ENOMEM, "rename");
		goto out;
	}
	if (*parent == '\0') {
		tfd = ctx->dst_root;
	} else {
		/* New folders start 0700; their mode and time are set at the
		 * end like every folder's. */
		tfd = mr_mkdirs_beneath(ctx->dst_root, parent, 0700, &lerr);
		if (tfd < 0) {
			/* Something else stands there (a type change the
			 * copy will handle). */
			if (lerr.errnum == ENOTDIR || lerr.errnum == ELOOP ||
			    lerr.errnum == EEXIST) {
				rc = 0;
				goto out;
			}
			mr_error_set(ctx->err, lerr.errnum, "destination folder %s: %s", parent,
				     lerr.msg);
			goto out;
		}
	}
	cfd = sync_dir_fd(ctx, 0, cparent);
	if (cfd < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed",
			     *cparent ? cparent : ".");
		goto out;
	}
	if (mr_io->renameat(cfd, cname, tfd, name) < 0) {
		mr_error_set(ctx->err, errno, "rename(%s, %s) failed", c->rel, op->rel);
		goto out;
	}
	if (c->st.st_nlink > 1 && sync_meta_differs(&op->st, &c->st, ctx->set->preserve_owner)) {
		/* Moving a hard-linked file moves one name only, but fixing
		 * its mode or time in place would change its other names
		 * too: the moved name gets an inode of its own, copied from
		 * its own bytes (the source is not read). */
		struct sync_op u = *op;

		u.typechange = 0;
		if (sync_unshare_file(ctx, &u) < 0)
			goto out;
	} else if (sync_meta_apply_at(ctx, tfd, name, op->rel, &op->st, &c->st) < 0) {
		goto out;
	}
	if (c->op >= 0)
		ctx->plan.ops[c->op].done = 1;
	else
		uncount(ctx, c);
	op->done = 1;
	ctx->stats->renamed++;
	sync_progress(ctx, 0);
	rc = 1;
out:
	if (tfd >= 0 && tfd != ctx->dst_root)
		mr_close(tfd);
	free(parent);
	free(cparent);
	return rc;
}

/* Matches candidates to new files, changing nothing. See sync_private.h. */
int sync_renames_match(struct sync_ctx *ctx)
{
	struct sync_plan *p = &ctx->plan;
	size_t i;

	if (p->ncands == 0)
		return 0;
	qsort(p->cands, p->ncands, sizeof(p->cands[0]), cand_cmp);
	for (i = 0; i < p->nops; i++) {
		struct sync_op *op = &p->ops[i];
		const char *name;
		uint64_t hs = 0, hd;
		int have_hs = 0;
		size_t keylen, k;

		if (op->kind != SYNC_OP_FILE_NEW || op->typechange || op->done)
			continue;
		if (sync_cancelled(ctx)) {
			return -1;
		}
		name = strrchr(op->rel, '/');
		name = name ? name + 1 : op->rel;
		keylen = sync_maildir_key(name);
		for (k = cand_find(p, name, keylen, op->st.st_size); k < p->ncands; k++) {
			struct sync_cand *c = &p->cands[k];

			if (key_cmp(c->key, c->keylen, c->st.st_size, name, keylen,
				    op->st.st_size) != 0)
				break;
			if (c->used)
				continue;
			/* Maildir messages: the same unique name and size is the
			 * same message, nothing to read (unless the backup was
			 * damaged: then its contents must prove themselves). */
			if (!ctx->set->compare_content &&
			    sync_maildir_message(op->rel, (uint64_t)op->st.st_size) &&
			    sync_maildir_message(c->rel, (uint64_t)c->st.st_size)) {
				c->used = 1;
				op->cand = (long)k;
				p->matched++;
				break;
			}
			if (!have_hs) {
				if (hash_src(ctx, op->rel, &hs) < 0)
					break;
				have_hs = 1;
			}
			if (hash_dst(ctx, c->rel, &hd) < 0)
				return -1;
			if (hd != hs)
				continue;
			c->used = 1;
			op->cand = (long)k;
			p->matched++;
			break;
		}
	}
	return 0;
}

/* Renames what sync_renames_match() matched. See sync_private.h. */
int sync_renames_apply(struct sync_ctx *ctx)
{
	struct sync_plan *p = &ctx->plan;
	size_t i;

	for (i = 0; i < p->nops; i++) {
		struct sync_op *op = &p->ops[i];

		if (op->cand < 0 || op->done)
			continue;
		if (sync_cancelled(ctx)) {
			return -1;
		}
		/* 0: not possible here; the op stays a copy and the
		 * candidate goes to the attic. */
		if (do_rename(ctx, op, &p->cands[op->cand]) < 0)
			return -1;
	}
	return 0;
}
