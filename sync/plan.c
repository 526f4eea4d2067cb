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

/* Notes that index file rel passed the quick check (sync_plan_same()).
 * 0 or -1 with ctx->err. */
static int note_same(struct sync_ctx *ctx, const char *rel)
{
	struct sync_plan *p = &ctx->plan;

	if (grow((void **)&p->same, &p->capsame, p->nsame, sizeof(*p->same)) < 0 ||
	    (p->same[p->nsame] = strdup(rel)) == NULL) {
		mr_error_set(ctx->err, ENOMEM, "sync plan");
		return -1;
	}
	p->nsame++;
	p->same_sorted = 0;
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* See sync_private.h. */
int sync_plan_same(struct sync_ctx *ctx, const char *folder, const char *name)
{
	struct sync_plan *p = &ctx->plan;
	char *rel;
	int found;

	if (p->nsame == 0)
		return 0;
	if (!p->same_sorted) {
		qsort(p->same, p->nsame, sizeof(*p->same), str_cmp);
		p->same_sorted = 1;
	}
	rel = sync_join(folder, name);
	if (rel == NULL)
		return 0;   /* read from the source: never wrong */
	found = bsearch(&rel, p->same, p->nsame, sizeof(*p->same), str_cmp) != NULL;
	free(rel);
	return found;
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

/* One folder of walk_removed(). */
struct rframe {
	struct mr_dirlist list;
	size_t i;
	int listed;
};

static void rframe_free(void *p)
{
	mr_dirlist_free(&((struct rframe *)p)->list);
}

/* Walks a destination folder the source no longer has (dfd, path rel,
 * below the folder of REMOVE op opi), without recursion: counts its
 * non-directories and offers its regular files to the rename matcher. */
static int walk_removed(struct sync_ctx *ctx, int dfd, const char *rel, long opi,
			uint64_t *nfiles)
{
	int roots[MR_WALK_SIDES] = { dfd, -1 };
	struct mr_walk *w;
	int rc = -1;

	w = mr_walk_new(roots, 1, rel, sizeof(struct rframe), rframe_free, 0, ctx->err);
	if (w == NULL)
		return -1;
	for (;;) {
		struct rframe *f = mr_walk_frame(w);
		int fds[MR_WALK_SIDES] = { -1, -1 };
		const char *name;
		struct stat st;
		char *child;
		int r;

		if (!f->listed) {
			f->listed = 1;
			if (mr_listdir(mr_walk_fd(w, 0), &f->list, ctx->err) < 0) {
				mr_error_prefix(ctx->err, "destination %.200s", mr_walk_path(w));
				goto out;
			}
		}
		if (f->i == f->list.n) {
			if (mr_walk_depth(w) == 0)
				break;
			if (mr_walk_pop(w, ctx->err) < 0)
				goto out;
			continue;
		}
		name = f->list.v[f->i++].name;
		child = sync_join(mr_walk_path(w), name);
		if (child == NULL) {
			mr_error_set(ctx->err, ENOMEM, "sync plan");
			goto out;
		}
		if (mr_io->fstatat(mr_walk_fd(w, 0), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(ctx->err, errno, "fstatat(%.200s) in the destination failed",
				     child);
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
		fds[0] = mr_walk_openat(w, 0, name);
		if (fds[0] < 0) {
			mr_error_set(ctx->err, errno, "openat(%.200s) in the destination failed",
				     child);
			free(child);
			goto out;
		}
		free(child);
		if (mr_walk_push(w, name, fds, ctx->err) < 0)
			goto out;
	}
	rc = 0;
out:
	mr_walk_free(&w);
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

/* One folder of the merged walk: source stat sst; the destination has a
 * folder there (fd on side 1 of the walk), or not (need_mkdir; dst is
 * what it has instead when have_dst). */
struct pframe {
	struct mr_dirlist sl, dl;
	size_t i, j;
	int listed, skip;
	struct stat sst, dst;
	int have_dst, need_mkdir;
};

static void pframe_free(void *p)
{
	struct pframe *f = p;

	mr_dirlist_free(&f->sl);
	mr_dirlist_free(&f->dl);
}

/* Plans source entry name (stat sst) of the top folders of walk w (source
 * side 0, destination side 1); dst is the destination's entry of the same
 * name or NULL. 0 done, 1 when it is a folder the walk has entered (its
 * frame filled in), -1 with ctx->err. */
static int plan_entry(struct sync_ctx *ctx, struct mr_walk *w, const char *name, const char *rel,
		      const struct stat *sst, const struct stat *dst)
{
	int sfd = mr_walk_fd(w, 0), dfd = mr_walk_fd(w, 1);
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
		int fds[MR_WALK_SIDES] = { -1, -1 };
		struct pframe *f;

		ctx->stats->dirs++;
		fds[0] = mr_walk_openat(w, 0, name);
		if (fds[0] < 0) {
			ctx->stats->unreadable++;
			sync_problem(ctx, MR_PROBLEM_UNREADABLE, errno, rel,
				     "openat(%s) in the source failed: %s", rel, strerror(errno));
			if (dst != NULL && !same && !S_ISDIR(dst->st_mode))
				ctx->plan.dst_files++;
			return 0;
		}
		if (same) {
			fds[1] = mr_walk_openat(w, 1, name);
			if (fds[1] < 0) {
				mr_error_set(ctx->err, errno, "openat(%s) in the destination failed",
					     rel);
				mr_close(fds[0]);
				return -1;
			}
		}
		if (mr_walk_push(w, name, fds, ctx->err) < 0)
			return -1;
		f = mr_walk_frame(w);
		f->sst = *sst;
		if (dst != NULL) {
			f->dst = *dst;
			f->have_dst = 1;
		}
		f->need_mkdir = !same;
		return 1;
	}

	if (S_ISREG(sst->st_mode)) {
		ctx->stats->files++;
		ctx->stats->bytes += (uint64_t)sst->st_size;
		if (same && !ctx->set->compare_content &&
		    (sync_same_file_quick(rel, sst, dst, ctx->set->backup_started) ||
		     (ctx->set->format == MR_FORMAT_CYRUS && sst->st_size == dst->st_size &&
		      sync_cyrus_message_name(name, NULL)))) {
			if (sync_ixfile_of(name) >= 0 && note_same(ctx, rel) < 0)
				return -1;
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

/* Enters the top folder of walk w (frame f): lists the source, plans the
 * folder itself, lists the destination. Nothing is planned below a source
 * folder that fails to list: the destination keeps what it has (f->skip).
 * 0 or -1 with ctx->err. */
static int plan_enter(struct sync_ctx *ctx, struct mr_walk *w, struct pframe *f)
{
	const char *rel = mr_walk_path(w);
	struct mr_error lerr = { 0 };
	int dfd = mr_walk_fd(w, 1);

	f->listed = 1;
	if (mr_listdir(mr_walk_fd(w, 0), &f->sl, &lerr) < 0) {
		ctx->stats->unreadable++;
		sync_problem(ctx, MR_PROBLEM_UNREADABLE, lerr.errnum, rel,
			     "listing %s in the source failed (%s); nothing below it is removed",
			     *rel ? rel : ".", lerr.msg);
		if (f->have_dst && !S_ISDIR(f->dst.st_mode))
			ctx->plan.dst_files++;
		f->skip = 1;
		return 0;
	}
	if (f->need_mkdir) {
		struct sync_op *op;
		char *r;

		if (f->have_dst && plan_remove(ctx, -1, NULL, rel, &f->dst, 1) < 0)
			return -1;
		r = strdup(rel);
		if (r == NULL) {
			mr_error_set(ctx->err, ENOMEM, "sync plan");
			return -1;
		}
		op = add_op(ctx, SYNC_OP_MKDIR, r, &f->sst, f->have_dst ? &f->dst : NULL);
		if (op == NULL)
			return -1;
		op->typechange = f->have_dst;
		if (op->typechange)
			op->nfiles = ctx->plan.ops[ctx->plan.nops - 2].nfiles;
	}
	if (add_dir(ctx, rel, &f->sst) < 0)
		return -1;
	if (dfd >= 0 && mr_listdir(dfd, &f->dl, ctx->err) < 0) {
		mr_error_prefix(ctx->err, "destination %.200s", *rel ? rel : ".");
		return -1;
	}
	return 0;
}

/* Plans the next entry of the top folder of walk w (frame f), both
 * listings merged by name. 0 or 1 (a folder entered), -1 with ctx->err. */
static int plan_next(struct sync_ctx *ctx, struct mr_walk *w, struct pframe *f)
{
	int sfd = mr_walk_fd(w, 0), dfd = mr_walk_fd(w, 1);
	int cmp, have_s, have_d, serr, rc;
	struct stat sst2, dst2;
	const char *name;
	char *child;

	if (f->i == f->sl.n)
		cmp = 1;
	else if (f->j == f->dl.n)
		cmp = -1;
	else
		cmp = strcmp(f->sl.v[f->i].name, f->dl.v[f->j].name);
	have_s = cmp <= 0;
	have_d = cmp >= 0;
	name = have_s ? f->sl.v[f->i].name : f->dl.v[f->j].name;
	/* Past this entry before a push moves the frame. */
	f->i += have_s;
	f->j += have_d;
	child = sync_join(mr_walk_path(w), name);
	if (child == NULL) {
		mr_error_set(ctx->err, ENOMEM, "sync plan");
		return -1;
	}
	/* The source first: a test's fault on a name then hits it. */
	serr = 0;
	if (have_s && mr_io->fstatat(sfd, name, &sst2, AT_SYMLINK_NOFOLLOW) < 0)
		serr = errno;
	if (have_d && mr_io->fstatat(dfd, name, &dst2, AT_SYMLINK_NOFOLLOW) < 0) {
		mr_error_set(ctx->err, errno, "fstatat(%s) in the destination failed", child);
		free(child);
		return -1;
	}
	if (serr != 0) {
		ctx->stats->unreadable++;
		sync_problem(ctx, MR_PROBLEM_UNREADABLE, serr, child,
			     "fstatat(%s) in the source failed: %s", child, strerror(serr));
		if (have_d && !S_ISDIR(dst2.st_mode))
			ctx->plan.dst_files++;
		free(child);
		return 0;
	}
	if (have_s)
		rc = plan_entry(ctx, w, name, child, &sst2, have_d ? &dst2 : NULL);
	else
		rc = plan_remove(ctx, dfd, name, child, &dst2, 0);
	free(child);
	return rc;
}

/* Phase 1: the merged walk of both trees into ctx->plan, without
 * recursion (struct mr_walk: source side 0, destination side 1). 0 or -1. */
int sync_plan_build(struct sync_ctx *ctx)
{
	int roots[MR_WALK_SIDES] = { ctx->src_root, ctx->dst_root };
	struct mr_walk *w = NULL;
	struct pframe *f;
	struct stat st;
	int rc = -1;

	if (mr_io->fstat(ctx->src_root, &st) < 0) {
		ctx->stats->unreadable++;
		sync_problem(ctx, MR_PROBLEM_UNREADABLE, errno, "",
			     "fstat(.) of the source failed: %s", strerror(errno));
		return 0;
	}
	w = mr_walk_new(roots, 2, "", sizeof(*f), pframe_free, 1u << 0, ctx->err);
	if (w == NULL)
		return -1;
	f = mr_walk_frame(w);
	f->sst = st;
	for (;;) {
		f = mr_walk_frame(w);
		if (!f->listed && plan_enter(ctx, w, f) < 0)
			goto out;
		if (f->skip || (f->i == f->sl.n && f->j == f->dl.n)) {
			if (mr_walk_depth(w) == 0)
				break;
			if (mr_walk_pop(w, ctx->err) < 0)
				goto out;
			continue;
		}
		if (sync_cancelled(ctx))
			goto out;
		if (plan_next(ctx, w, f) < 0)
			goto out;
	}
	rc = 0;
out:
	mr_walk_free(&w);
	return rc;
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
	for (i = 0; i < plan->nsame; i++)
		free(plan->same[i]);
	free(plan->same);
	free(plan->ops);
	free(plan->cands);
	free(plan->dirs);
	memset(plan, 0, sizeof(*plan));
}
