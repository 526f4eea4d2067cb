/*
 * sync.c: sync_tree(), the run: the phases below, in this order. The
 * helpers every file of sync/ shares are in context.c.
 *
 * A sync runs in two phases. Phase 1 (plan.c) walks both trees and writes a
 * plan without changing anything, and rename.c matches the files the source
 * moved or re-flagged (reading only). Then the remove guard (guard.c) is
 * decided once on the whole plan: when it trips, the sync stops there and
 * changes nothing at all, since a source that suddenly looks empty is
 * damage and half a sync against it is no better. Otherwise phase 2, here, applies the
 * plan in an order that never loses data and that a rerun can resume at any
 * point:
 *   1. Maildir renames (rename.c): the matched files are renamed in the
 *      destination instead of copied;
 *   2. folders, files, symlinks and metadata in walk order (parents first);
 *   3. what the source no longer has, to the attic (attic.c);
 *   4. folder modes and times, deepest first, after their contents.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Defaults for a sync. See sync.h. */
void sync_settings_init(struct sync_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->max_remove_pct = 50;
	s->min_remove_files = 10;
	s->attic_dirfd = -1;
	s->tmp_dirfd = -1;
}

/* Folder op: creates rel (after moving what stood there to the attic). Its
 * mode and times are set at the end, so it starts writable (0700). */
static int apply_mkdir(struct sync_ctx *ctx, const struct sync_op *op)
{
	const char *name;
	char *parent = NULL;
	struct stat st;
	int dfd, rc = -1;

	if (op->typechange && sync_attic_move(ctx, op->rel, op->nfiles) < 0)
		return -1;
	if (sync_split(op->rel, &parent, &name) < 0) {
		mr_error_set(ctx->err, ENOMEM, "sync");
		return -1;
	}
	dfd = sync_dir_fd(ctx, 0, parent);
	if (dfd < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed", parent);
		goto out;
	}
	if (mr_io->mkdirat(dfd, name, 0700) < 0) {
		/* A Maildir rename may have created it already. */
		if (errno != EEXIST || mr_io->fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			mr_error_set(ctx->err, errno, "mkdirat(%s) failed", op->rel);
			goto out;
		}
	}
	rc = 0;
out:
	free(parent);
	return rc;
}

/* Replaces destination symlink rel, which has other hard links, by a new
 * one with the same target, so fixing its metadata leaves the other names
 * alone. 0 or -1 with ctx->err. */
static int unshare_symlink(struct sync_ctx *ctx, const struct sync_op *op, int dfd,
			   const char *name)
{
	struct sync_op copy = *op;
	char target[PATH_MAX + 1];
	ssize_t n;

	n = mr_io->readlinkat(dfd, name, target, sizeof(target));
	if (n < 0 || (size_t)n >= sizeof(target)) {
		mr_error_set(ctx->err, n < 0 ? errno : ENAMETOOLONG,
			     "readlinkat(%s) in the destination failed", op->rel);
		return -1;
	}
	target[n] = '\0';
	copy.target = target;
	return sync_make_symlink(ctx, &copy);
}

/* Metadata-only op on an entry whose content is already right. */
static int apply_meta(struct sync_ctx *ctx, const struct sync_op *op)
{
	const char *name;
	char *parent = NULL;
	int dfd, rc = -1;

	if (op->dst.st_nlink > 1 && S_ISREG(op->st.st_mode)) {
		/* Mode, owner and time belong to the inode: fixed in place
		 * they would change the file's other hard links too. A copy
		 * of its own (equal) bytes gives this name an inode of its
		 * own without reading the damaged source. */
		rc = sync_unshare_file(ctx, op);
		if (rc == 0)
			ctx->stats->meta_fixed++;
		return rc;
	}
	if (sync_split(op->rel, &parent, &name) < 0) {
		mr_error_set(ctx->err, ENOMEM, "sync");
		return -1;
	}
	dfd = sync_dir_fd(ctx, 0, parent);
	if (dfd < 0) {
		mr_error_set(ctx->err, errno, "open(%s) in the destination failed", parent);
		goto out;
	}
	if (op->dst.st_nlink > 1) {
		/* The same for a hard-linked symlink. */
		rc = unshare_symlink(ctx, op, dfd, name);
		goto out;
	}
	if (sync_meta_apply_at(ctx, dfd, name, op->rel, &op->st, &op->dst) < 0)
		goto out;
	ctx->stats->meta_fixed++;
	rc = 0;
out:
	free(parent);
	return rc;
}

/* Sets every source folder's mode, owner and times on the destination,
 * deepest first, so adding entries below no longer moves a time. */
static int fix_dirs(struct sync_ctx *ctx)
{
	size_t i;

	for (i = ctx->plan.ndirs; i-- > 0;) {
		const struct sync_dir *d = &ctx->plan.dirs[i];
		const char *name = ".";
		char *parent = NULL;
		struct stat st;
		int dfd = ctx->dst_root, rc = -1;

		if (*d->rel != '\0') {
			if (sync_split(d->rel, &parent, &name) < 0) {
				mr_error_set(ctx->err, ENOMEM, "sync");
				return -1;
			}
			dfd = sync_dir_fd(ctx, 0, parent);
		}
		if (dfd < 0 || mr_io->fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(ctx->err, errno, "fstatat(%s) in the destination failed",
				     *d->rel ? d->rel : ".");
			goto next;
		}
		rc = 0;
		if (S_ISDIR(st.st_mode) && sync_meta_differs(&d->st, &st, ctx->set->preserve_owner))
			rc = sync_meta_apply_at(ctx, dfd, name, *d->rel ? d->rel : ".", &d->st, &st);
next:
		free(parent);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int apply_ops(struct sync_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->plan.nops; i++) {
		const struct sync_op *op = &ctx->plan.ops[i];
		int rc = 0;

		if (sync_cancelled(ctx))
			return -1;
		if (op->done || op->kind == SYNC_OP_REMOVE)
			continue;
		switch (op->kind) {
		case SYNC_OP_MKDIR:
			rc = apply_mkdir(ctx, op);
			break;
		case SYNC_OP_FILE_NEW:
			rc = sync_copy_file(ctx, op);
			break;
		case SYNC_OP_FILE_CHANGE:
			rc = sync_change_file(ctx, op);
			break;
		case SYNC_OP_SYMLINK:
			rc = sync_make_symlink(ctx, op);
			break;
		case SYNC_OP_META:
			rc = apply_meta(ctx, op);
			break;
		case SYNC_OP_REMOVE:
			break;
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int apply_removes(struct sync_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->plan.nops; i++) {
		struct sync_op *op = &ctx->plan.ops[i];

		if (sync_cancelled(ctx))
			return -1;
		if (op->kind != SYNC_OP_REMOVE || op->typechange || op->done)
			continue;
		if (sync_attic_move(ctx, op->rel, op->nfiles) < 0)
			return -1;
	}
	return 0;
}

/* MAILRESTORE_READS_TRACE=FILE, a block device's stat file
 * (/sys/block/loop0/stat): which phase of each sync made the source's
 * device read, for bench/source_reads.sh. The sectors read (the third
 * field) are taken around each phase and logged once per sync; syncs
 * running at once mix their phases, so the bench runs one job. 0 when
 * the file cannot be read. */
static uint64_t trace_sectors(const char *path)
{
	unsigned long long v[3] = { 0, 0, 0 };
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu %llu", &v[0], &v[1], &v[2]) != 3)
		v[2] = 0;
	fclose(f);
	return v[2];
}

/* Phases of the trace. */
enum { TR_PLAN, TR_RENAMES, TR_GUARD, TR_APPLY, TR_N };

static void trace_mark(const char *path, uint64_t *last, uint64_t *phase)
{
	uint64_t now;

	if (path == NULL)
		return;
	now = trace_sectors(path);
	if (phase != NULL)
		*phase += now - *last;
	*last = now;
}

/* Makes dst equal src in two phases. See sync.h and the top of this file. */
int sync_tree(int src_dirfd, int dst_dirfd, const struct sync_settings *settings,
	      struct sync_stats *stats, struct mr_problems *problems,
	      struct mr_error *err)
{
	struct sync_stats local;
	struct sync_ctx ctx;
	const char *trace = getenv("MAILRESTORE_READS_TRACE");
	uint64_t tr_last = 0, tr[TR_N] = { 0 };
	int rc = -1;

	memset(&ctx, 0, sizeof(ctx));
	ctx.src_root = -1;
	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	if (settings->attic_dirfd < 0) {
		mr_error_set(err, EINVAL, "sync_tree: no attic folder given");
		goto out;
	}
	ctx.set = settings;
	ctx.stats = stats;
	ctx.problems = problems;
	ctx.err = err;
	ctx.dst_root = dst_dirfd;
	ctx.block_size = settings->block_size ? settings->block_size : 4096;
	ctx.patch_min = settings->patch_min_size ? settings->patch_min_size : 64 * 1024;
	ctx.buf_size = ctx.block_size > SYNC_BUF_SIZE ? ctx.block_size : SYNC_BUF_SIZE;
	ctx.buf_a = malloc(ctx.buf_size);
	ctx.buf_b = malloc(ctx.buf_size);
	if (ctx.buf_a == NULL || ctx.buf_b == NULL) {
		mr_error_set(err, ENOMEM, "sync buffers");
		goto out;
	}
	/* Our own fd of the source root, so listing it leaves its access
	 * time alone too. */
	ctx.src_root = sync_src_openat(src_dirfd, ".", O_RDONLY | O_DIRECTORY);
	if (ctx.src_root < 0) {
		stats->unreadable++;
		sync_problem(&ctx, MR_PROBLEM_UNREADABLE, errno, "",
			     "open(.) of the source failed: %s", strerror(errno));
		rc = 1;
		goto out;
	}
	trace_mark(trace, &tr_last, NULL);
	if (sync_plan_build(&ctx) < 0)
		goto out;
	trace_mark(trace, &tr_last, &tr[TR_PLAN]);
	if (sync_renames_match(&ctx) < 0)
		goto out;
	trace_mark(trace, &tr_last, &tr[TR_RENAMES]);
	rc = sync_guard_trips(&ctx);
	trace_mark(trace, &tr_last, &tr[TR_GUARD]);
	if (rc != 0)
		goto out;
	rc = -1;
	if (sync_renames_apply(&ctx) < 0 || apply_ops(&ctx) < 0 || apply_removes(&ctx) < 0 ||
	    fix_dirs(&ctx) < 0)
		goto out;
	rc = ctx.nproblems > 0 ? 1 : 0;
out:
	if (trace != NULL) {
		trace_mark(trace, &tr_last, &tr[TR_APPLY]);
		mr_log("reads trace: plan %llu renames %llu guard %llu apply %llu sectors, "
		       "file data %llu bytes",
		       (unsigned long long)tr[TR_PLAN], (unsigned long long)tr[TR_RENAMES],
		       (unsigned long long)tr[TR_GUARD], (unsigned long long)tr[TR_APPLY],
		       (unsigned long long)stats->source_bytes_read);
	}
	sync_dircache_drop(&ctx.src_cache);
	sync_dircache_drop(&ctx.dst_cache);
	mr_close(ctx.src_root);
	sync_plan_free(&ctx.plan);
	free(ctx.buf_a);
	free(ctx.buf_b);
	return rc;
}
