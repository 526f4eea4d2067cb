/*
 * plan.c: phase 1 of a sync. Walks the source and the destination together
 * (sorted listings merged by name, every entry reached below a held folder
 * fd with O_NOFOLLOW, the source opened read-only) and writes down what
 * phase 2 must do, without changing anything.
 *
 * Damage is not absence: a source folder that fails to list adds nothing to
 * the plan below it, so nothing there is removed or replaced; a source entry
 * that fails to stat or to read its link leaves the destination's entry
 * alone. Each such failure is recorded once here.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *nv;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	nv = realloc(*v, ncap * size);
	if (nv == NULL)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

/* Appends an op; takes rel. NULL on ENOMEM (rel freed, ctx->err set). */
static struct sync_op *add_op(struct sync_ctx *ctx, enum sync_op_kind kind, char *rel,
			      const struct stat *st, const struct stat *dst)
{
	struct sync_plan *p = &ctx->plan;
	struct sync_op *op;

	if (grow((void **)&p->ops, &p->capops, p->nops, sizeof(*op)) < 0) {
		free(rel);
		mr_error_set(ctx->err, ENOMEM, "sync plan");
		return NULL;
	}
	op = &p->ops[p->nops++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->rel = rel;
	op->cand = -1;
	if (st != NULL)
		op->st = *st;
	if (dst != NULL) {
		op->dst = *dst;
		op->have_dst = 1;
	}
	return op;
}

/* Appends a META op for rel. 0 or -1 with ctx->err. */
static int add_meta(struct sync_ctx *ctx, const char *rel, const struct stat *st,
		    const struct stat *dst)
{
	char *r = strdup(rel);

	if (r == NULL) {
		mr_error_set(ctx->err, ENOMEM, "sync plan");
		return -1;
	}
	return add_op(ctx, SYNC_OP_META, r, st, dst) != NULL ? 0 : -1;
}

/* Offers destination file rel to the rename matcher: opi is its own REMOVE
 * op, or -1 when it lies in removed folder dir_opi. */
static int add_cand(struct sync_ctx *ctx, const char *rel, const struct stat *st, long opi,
		    long dir_opi)
{
	struct sync_plan *p = &ctx->plan;
	struct sync_cand *c;
	const char *name;

	if (grow((void **)&p->cands, &p->capcands, p->ncands, sizeof(*c)) < 0)
		goto nomem;
	c = &p->cands[p->ncands];
	memset(c, 0, sizeof(*c));
	c->rel = strdup(rel);
	if (c->rel == NULL)
		goto nomem;
	name = strrchr(c->rel, '/');
	name = name ? name + 1 : c->rel;
	c->key = name;
	c->keylen = sync_maildir_key(name);
	c->st = *st;
	c->op = opi;
	c->dir_op = dir_opi;
	p->ncands++;
	return 0;
nomem:
	mr_error_set(ctx->err, ENOMEM, "sync plan");
	return -1;
}

static int add_dir(struct sync_ctx *ctx, const char *rel, const struct stat *st)
{
	struct sync_plan *p = &ctx->plan;
	struct sync_dir *d;

	if (grow((void **)&p->dirs, &p->capdirs, p->ndirs, sizeof(*d)) < 0)
		goto nomem;
	d = &p->dirs[p->ndirs];
	d->rel = strdup(rel);
	if (d->rel == NULL)
		goto nomem;
	d->st = *st;
	p->ndirs++;
	return 0;
nomem:
	mr_error_set(ctx->err, ENOMEM, "sync plan");
	return -1;
}

/* Reads a link target into a malloc'd string. 0 or -1/errno. */
static int read_link(int dirfd, const char *name, char **target_r)
{
	char buf[PATH_MAX + 1];
	ssize_t n;

	n = mr_io->readlinkat(dirfd, name, buf, sizeof(buf));
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	buf[n] = '\0';
	*target_r = strdup(buf);
	if (*target_r == NULL) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* Walks a destination folder the source no longer has (below the folder
 * of REMOVE op opi): counts its non-directories and offers its regular
 * files to the rename matcher. */
static int walk_removed(struct sync_ctx *ctx, int dfd, const char *rel, long opi,
			uint64_t *nfiles)
{
	struct mr_dirlist list = { 0 };
	size_t i;
	int rc = -1;

	if (mr_path_depth(rel) > MR_DEPTH_MAX) {
		mr_error_set(ctx->err, ELOOP, "destination %.200s...: folders nested deeper than %d "
			     "levels", rel, MR_DEPTH_MAX);
		goto out;
	}
	if (mr_listdir(dfd, &list, ctx->err) < 0) {
		mr_error_prefix(ctx->err, "destination %s", rel);
		goto out;
	}
	for (i = 0; i < list.n; i++) {
		struct stat st;
		char *child = sync_join(rel, list.v[i].name);
		int cfd, r;

		if (child == NULL) {
			mr_error_set(ctx->err, ENOMEM, "sync plan");
			goto out;
		}
		if (mr_io->fstatat(dfd, list.v[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(ctx->err, errno, "fstatat(%s) in the destination failed", child);
			free(child);
			goto out;
		}
		if (!S_ISDIR(st.st_mode)) {
			(*nfiles)++;
			r = S_ISREG(st.st_mode) ? add_cand(ctx, child, &st, -1, opi) : 0;
			free(child);
			if (r < 0)
				goto out;
			continue;
		}
		cfd = mr_io->openat(dfd, list.v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (cfd < 0) {
			mr_error_set(ctx->err, errno, "openat(%s) in the destination failed", child);
			free(child);
			goto out;
		}
		r = walk_removed(ctx, cfd, child, opi, nfiles);
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

/* Plans the removal of destination entry name (stat dst) of folder dfd. */
static int plan_remove(struct sync_ctx *ctx, int dfd, const char *name, const char *rel,
		       const struct stat *dst, int typechange)
{
	struct sync_op *op;
	uint64_t nfiles = 0;
	char *r = strdup(rel);
	long opi = (long)ctx->plan.nops;

	if (r == NULL) {
		mr_error_set(ctx->err, ENOMEM, "sync plan");
		return -1;
	}
	op = add_op(ctx, SYNC_OP_REMOVE, r, NULL, dst);
	if (op == NULL)
		return -1;
	op->typechange = typechange;
	if (S_ISDIR(dst->st_mode)) {
		int cfd = mr_io->openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		int rc;

		if (cfd < 0) {
			mr_error_set(ctx->err, errno, "openat(%s) in the destination failed", rel);
			return -1;
		}
		rc = walk_removed(ctx, cfd, rel, opi, &nfiles);
		mr_close(cfd);
		if (rc < 0)
			return -1;
	} else {
		nfiles = 1;
		/* The old entry of a type change is replaced in place, so it
		 * cannot also be renamed elsewhere. */
		if (S_ISREG(dst->st_mode) && !typechange && add_cand(ctx, rel, dst, opi, -1) < 0)
			return -1;
	}
	/* op may be stale if a later change grows the ops array: index. */
	ctx->plan.ops[opi].nfiles = nfiles;
	ctx->plan.rm_files += nfiles;
	ctx->plan.dst_files += nfiles;
	return 0;
}

static int plan_walk(struct sync_ctx *ctx, int sfd, int dfd, const char *rel,
		     const struct stat *sst, const struct stat *dst, int need_mkdir);

/* Plans source entry name (stat sst) of folders sfd / dfd; dst is the
 * destination's entry of the same name or NULL. */
static int plan_entry(struct sync_ctx *ctx, int sfd, int dfd, const char *name, const char *rel,
		      const struct stat *sst, const struct stat *dst)
{
	int same = dst != NULL && (sst->st_mode & S_IFMT) == (dst->st_mode & S_IFMT);
	int owner = ctx->set->preserve_owner;
	struct sync_op *op;
	char *r;

	if (!S_ISREG(sst->st_mode) && !S_ISDIR(sst->st_mode) && !S_ISLNK(sst->st_mode)) {
		sync_problem(ctx, MR_PROBLEM_OTHER, 0, rel,
			     "%s: not a regular file, folder or symlink in the source; not copied",
			     rel);
		if (dst != NULL && !S_ISDIR(dst->st_mode))
			ctx->plan.dst_files++;
		return 0;
	}
	if (dst != NULL && !S_ISDIR(dst->st_mode) && same)
		ctx->plan.dst_files++;

	if (S_ISDIR(sst->st_mode)) {
		int cs = -1, cd = -1, rc;

		ctx->stats->dirs++;
		/* A folder this deep is a hostile or broken tree: not followed
		 * (each level costs stack and descriptors), reported, and the
		 * destination keeps what it has there. */
		if (mr_path_depth(rel) > MR_DEPTH_MAX) {
			sync_problem(ctx, MR_PROBLEM_OTHER, ELOOP, rel,
				     "folders nested deeper than %d levels in the source at %.200s...; "
				     "not followed, nothing below it is copied or removed",
				     MR_DEPTH_MAX, rel);
			if (dst != NULL && !same && !S_ISDIR(dst->st_mode))
				ctx->plan.dst_files++;
			return 0;
		}
		cs = sync_src_openat(sfd, name, O_RDONLY | O_DIRECTORY);
		if (cs < 0) {
			ctx->stats->unreadable++;
			sync_problem(ctx, MR_PROBLEM_UNREADABLE, errno, rel,
				     "openat(%s) in the source failed: %s", rel, strerror(errno));
			if (dst != NULL && !same && !S_ISDIR(dst->st_mode))
				ctx->plan.dst_files++;
			return 0;
		}
		if (same) {
			cd = mr_io->openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
			if (cd < 0) {
				mr_error_set(ctx->err, errno, "openat(%s) in the destination failed",
					     rel);
				mr_close(cs);
				return -1;
			}
		}
		rc = plan_walk(ctx, cs, cd, rel, sst, dst, !same);
		mr_close(cs);
		mr_close(cd);
		return rc;
	}

	if (S_ISREG(sst->st_mode)) {
		ctx->stats->files++;
		ctx->stats->bytes += (uint64_t)sst->st_size;
		if (same && sync_same_file_quick(rel, sst, dst, ctx->set->backup_started) && !ctx->set->compare_content) {
			if (!sync_meta_differs(sst, dst, owner))
				return 0;
			return add_meta(ctx, rel, sst, dst);
		}
		if (dst != NULL && !same && plan_remove(ctx, dfd, name, rel, dst, 1) < 0)
			return -1;
		r = strdup(rel);
		if (r == NULL) {
			mr_error_set(ctx->err, ENOMEM, "sync plan");
			return -1;
		}
		op = add_op(ctx, same ? SYNC_OP_FILE_CHANGE : SYNC_OP_FILE_NEW, r, sst, dst);
		if (op == NULL)
			return -1;
		op->typechange = dst != NULL && !same;
		if (op->typechange)
			op->nfiles = ctx->plan.ops[ctx->plan.nops - 2].nfiles;
		return 0;
	}

	/* A symlink. */
	{
		char *target = NULL, *old = NULL;
		int differ;

		ctx->stats->symlinks++;
		if (read_link(sfd, name, &target) < 0) {
			ctx->stats->unreadable++;
			sync_problem(ctx, MR_PROBLEM_UNREADABLE, errno, rel,
				     "readlinkat(%s) in the source failed: %s", rel, strerror(errno));
			if (dst != NULL && !same && !S_ISDIR(dst->st_mode))
				ctx->plan.dst_files++;
			return 0;
		}
		if (same && read_link(dfd, name, &old) < 0) {
			mr_error_set(ctx->err, errno, "readlinkat(%s) in the destination failed", rel);
			free(target);
			return -1;
		}
		differ = !same || strcmp(target, old) != 0;
		free(old);
		if (!differ) {
			free(target);
			if (!sync_meta_differs(sst, dst, owner))
				return 0;
			return add_meta(ctx, rel, sst, dst);
		}
		if (dst != NULL && !same && plan_remove(ctx, dfd, name, rel, dst, 1) < 0) {
			free(target);
			return -1;
		}
		r = strdup(rel);
		op = r ? add_op(ctx, SYNC_OP_SYMLINK, r, sst, dst) : NULL;
		if (op == NULL) {
			free(target);
			mr_error_set(ctx->err, ENOMEM, "sync plan");
			return -1;
		}
		op->target = target;
		op->typechange = dst != NULL && !same;
		if (op->typechange)
			op->nfiles = ctx->plan.ops[ctx->plan.nops - 2].nfiles;
		return 0;
	}
}

/* Plans folder rel: source fd sfd (stat sst), destination fd dfd or -1 when
 * the destination has no folder there (need_mkdir; dst is what it has
 * instead, or NULL). Nothing is planned when the source folder fails to
 * list: the destination keeps what it has. */
static int plan_walk(struct sync_ctx *ctx, int sfd, int dfd, const char *rel,
		     const struct stat *sst, const struct stat *dst, int need_mkdir)
{
	struct mr_dirlist sl = { 0 }, dl = { 0 };
	struct mr_error lerr = { 0 };
	size_t i = 0, j = 0;
	int rc = -1;

	if (mr_listdir(sfd, &sl, &lerr) < 0) {
		ctx->stats->unreadable++;
		sync_problem(ctx, MR_PROBLEM_UNREADABLE, lerr.errnum, rel,
			     "listing %s in the source failed (%s); nothing below it is removed",
			     *rel ? rel : ".", lerr.msg);
		if (dst != NULL && !S_ISDIR(dst->st_mode))
			ctx->plan.dst_files++;
		return 0;
	}
	if (need_mkdir) {
		struct sync_op *op;
		char *r;

		if (dst != NULL && plan_remove(ctx, -1, NULL, rel, dst, 1) < 0)
			goto out;
		r = strdup(rel);
		if (r == NULL) {
			mr_error_set(ctx->err, ENOMEM, "sync plan");
			goto out;
		}
		op = add_op(ctx, SYNC_OP_MKDIR, r, sst, dst);
		if (op == NULL)
			goto out;
		op->typechange = dst != NULL;
		if (op->typechange)
			op->nfiles = ctx->plan.ops[ctx->plan.nops - 2].nfiles;
	}
	if (add_dir(ctx, rel, sst) < 0)
		goto out;
	if (dfd >= 0 && mr_listdir(dfd, &dl, ctx->err) < 0) {
		mr_error_prefix(ctx->err, "destination %s", *rel ? rel : ".");
		goto out;
	}
	while (i < sl.n || j < dl.n) {
		const char *name;
		struct stat sst2, dst2;
		int cmp, have_s, have_d, serr;
		char *child;

		if (sync_cancelled(ctx)) {
			goto out;
		}
		if (i == sl.n)
			cmp = 1;
		else if (j == dl.n)
			cmp = -1;
		else
			cmp = strcmp(sl.v[i].name, dl.v[j].name);
		have_s = cmp <= 0;
		have_d = cmp >= 0;
		name = have_s ? sl.v[i].name : dl.v[j].name;
		child = sync_join(rel, name);
		if (child == NULL) {
			mr_error_set(ctx->err, ENOMEM, "sync plan");
			goto out;
		}
		/* The source first: a test's fault on a name then hits it. */
		serr = 0;
		if (have_s && mr_io->fstatat(sfd, name, &sst2, AT_SYMLINK_NOFOLLOW) < 0)
			serr = errno;
		if (have_d && mr_io->fstatat(dfd, name, &dst2, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(ctx->err, errno, "fstatat(%s) in the destination failed", child);
			free(child);
			goto out;
		}
		if (serr != 0) {
			ctx->stats->unreadable++;
			sync_problem(ctx, MR_PROBLEM_UNREADABLE, serr, child,
				     "fstatat(%s) in the source failed: %s", child, strerror(serr));
			if (have_d && !S_ISDIR(dst2.st_mode))
				ctx->plan.dst_files++;
			free(child);
			i += have_s;
			j += have_d;
			continue;
		}
		if (have_s)
			rc = plan_entry(ctx, sfd, dfd, name, child, &sst2, have_d ? &dst2 : NULL);
		else
			rc = plan_remove(ctx, dfd, name, child, &dst2, 0);
		free(child);
		if (rc < 0)
			goto out;
		rc = -1;
		i += have_s;
		j += have_d;
	}
	rc = 0;
out:
	mr_dirlist_free(&sl);
	mr_dirlist_free(&dl);
	return rc;
}

/* Phase 1: the merged walk of both trees into ctx->plan. 0 or -1. */
int sync_plan_build(struct sync_ctx *ctx)
{
	struct stat st;

	if (mr_io->fstat(ctx->src_root, &st) < 0) {
		ctx->stats->unreadable++;
		sync_problem(ctx, MR_PROBLEM_UNREADABLE, errno, "",
			     "fstat(.) of the source failed: %s", strerror(errno));
		return 0;
	}
	return plan_walk(ctx, ctx->src_root, ctx->dst_root, "", &st, NULL, 0);
}

/* Frees the plan; it is empty afterwards. */
void sync_plan_free(struct sync_plan *plan)
{
	size_t i;

	for (i = 0; i < plan->nops; i++) {
		free(plan->ops[i].rel);
		free(plan->ops[i].target);
	}
	for (i = 0; i < plan->ncands; i++)
		free(plan->cands[i].rel);
	for (i = 0; i < plan->ndirs; i++)
		free(plan->dirs[i].rel);
	free(plan->ops);
	free(plan->cands);
	free(plan->dirs);
	memset(plan, 0, sizeof(*plan));
}
