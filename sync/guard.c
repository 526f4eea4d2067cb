/*
 * guard.c: the remove guard (--max-remove, --min-remove). Decided once on
 * the whole plan, after the rename match and before anything changes; when
 * it trips the sync changes nothing at all and the caller puts the user in
 * attention with the problems recorded here.
 *
 * The question is whether what the source lacks was deleted by the user or
 * lost to damage, and the mailbox itself knows. Every file headed for the
 * attic (renamed files excluded) that lies in a Maildir folder's cur/ or
 * new/ is judged by that folder's index on the source (uidlist.c):
 *   - the index reads cleanly and does not name the message, or Dovecot's
 *     transaction log (dovecot.index.log, .log.2) records its UID as
 *     expunged: the user deleted it. It never trips. (Dovecot unlinks an
 *     expunged file at once but drops its name from the uidlist only at a
 *     later sync of the folder: a POP user's last session leaves every
 *     name it deleted in the uidlist, and only the log tells);
 *   - the index still names it: it is missing. When a folder's missing
 *     messages are more than max_remove_pct percent of that folder's
 *     messages in the backup, the guard trips ("INBOX: 40 messages the
 *     mailbox index still lists are missing on the source"). A server may
 *     keep a few expunged names until it rewrites the index (Dovecot does
 *     once about a quarter of its names are gone): a minority stays under
 *     the percentage;
 *   - the folder has no index, or one that cannot be used (unreadable, too
 *     large, torn, not understood): the file is only counted (below).
 * A folder that vanished from the source with its index (cur/, new/ and
 * all) is decided by what its parent on the source knows, for Maildir++
 * folders (".Name"): first Dovecot's mailbox log (dovecot.mailbox.log),
 * which records a deleted mailbox by the GUID the backup's copy of the
 * folder's uidlist names: logged, the user deleted it. Then the parent's
 * subscriptions file (Dovecot's "subscriptions", Courier's
 * "courierimapsubscribed"): if it still names the folder, the folder's
 * messages are missing (the user would see a subscribed folder gone:
 * damage, or an operator's call, since IMAP DELETE alone does not
 * unsubscribe); if it reads and no longer names it, the user deleted the
 * folder; without either the files are only counted.
 * For the user, the files the attic would take that no index shows deleted
 * (missing and unjudged ones) trip the guard when they are at least
 * min_remove_files and more than max_remove_pct percent of the backup's
 * files (those shown deleted left out), so a tiny mailbox or one stray file
 * never trips it.
 * Everything removed still goes to the attic; the guard only decides
 * whether the sync may run.
 *
 * An index file the plan found the same on both sides (quick check) is
 * read from the work copy, which holds the backup's identical bytes: the
 * damaged disk is asked only for the index files the sync copies anyway
 * (struct sync_ixdir).
 *
 * A Cyrus folder (settings format MR_FORMAT_CYRUS) is judged by its own
 * cyrus.index on the source (cyrusindex.c): a message file "N." whose
 * record is flagged expunged (Cyrus's delayed expunge keeps the record
 * until cyr_expire; the file may go at once or later), archived (its file
 * lives on the archive partition), or that no record names any more (the
 * index was repacked) was deleted by the user; one whose record is still
 * there, not expunged, is missing, with the same percentage per folder as
 * above. A cyrus.index on the source that cannot be used (truncated, a
 * version Cyrus 2.4 to 3.12 does not write, a failing checksum, unreadable)
 * trips the guard with the file and the reason, whether the sync would
 * remove messages of that folder or copy that index: a mailbox is never
 * thinned, nor given an index Cyrus would refuse, on the word of a broken
 * one; nor is the backup's index taken away from a folder the source
 * still has without one. A Cyrus folder gone from the source is judged by
 * the mailbox list (--cyrus-mailboxes, cyrusmboxes.c): still listed, its
 * messages are missing; not listed, the user deleted it; without a list
 * the files are only counted.
 */
#include "sync/sync_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum folder_state {
	FOLDER_UNJUDGED = 0, /* no usable index: files only counted */
	FOLDER_INDEXED,      /* the source folder's index read cleanly */
	FOLDER_GONE_NAMED,   /* gone from the source, the parent still names it */
	FOLDER_GONE_DROPPED, /* gone from the source, the parent no longer names it */
	FOLDER_BAD_INDEX,    /* Cyrus: a cyrus.index on the source that cannot be used */
};

struct folder {
	char *rel;              /* the Maildir folder ("" for the root) */
	enum folder_state state;
	struct sync_index ix;
	struct sync_expunged ex;
	struct sync_cyrus_index cix;  /* Cyrus: the source's cyrus.index */
	char why[256];                /* FOLDER_BAD_INDEX: the reason */
	int no_index;                 /* Cyrus: the folder is on the source
	                               * without a cyrus.index */
	uint64_t missing, deleted;
};

struct folders {
	struct folder *v;
	size_t n, cap;
};

static void folders_free(struct folders *fs)
{
	size_t i;

	for (i = 0; i < fs->n; i++) {
		free(fs->v[i].rel);
		sync_index_free(&fs->v[i].ix);
		sync_expunged_free(&fs->v[i].ex);
		sync_cyrus_index_free(&fs->v[i].cix);
	}
	free(fs->v);
	memset(fs, 0, sizeof(*fs));
}

/* Where folder rel's index files are read (see struct sync_ixdir): the
 * source folder src_fd, and the destination's copy of the ones the plan
 * found the same on both sides. */
static void ixdir_of(struct sync_ctx *ctx, const char *rel, int src_fd, struct sync_ixdir *d)
{
	int i;

	d->src_fd = src_fd;
	d->dst_fd = -1;
	d->same = 0;
	for (i = 0; i < SYNC_IX_N; i++)
		if (sync_plan_same(ctx, rel, sync_ixfile_name((enum sync_ixfile)i)))
			d->same |= 1u << i;
	if (d->same != 0)
		d->dst_fd = sync_dir_fd(ctx, 0, rel);
}

/* How the parent of vanished folder rel on the source judges it. */
static enum folder_state judge_gone(struct sync_ctx *ctx, const char *rel)
{
	struct sync_index idx, subs;
	enum folder_state st = FOLDER_UNJUDGED;
	struct sync_ixdir d;
	const char *name;
	char *parent = NULL;
	int pfd, r;

	if (sync_split(rel, &parent, &name) < 0)
		return FOLDER_UNJUDGED;
	/* Only a Maildir++ folder (".Name", ".Parent.Child") is listed there. */
	if (name[0] != '.' || name[1] == '\0')
		goto out;
	pfd = sync_dir_fd(ctx, 1, parent);
	if (pfd < 0)
		goto out;
	ixdir_of(ctx, parent, pfd, &d);
	/* Dovecot logs a mailbox's deletion by its GUID, which the backup's
	 * copy of the folder's uidlist holds. */
	if (sync_index_read_dst(ctx->dst_root, rel, &idx) == 1) {
		r = idx.have_guid ? sync_mailbox_deleted_in(&d, idx.guid) : 0;
		sync_index_free(&idx);
		if (r == 1) {
			st = FOLDER_GONE_DROPPED;
			goto out;
		}
	}
	r = sync_subs_read_in(&d, &subs);
	if (r <= 0)
		goto out;
	st = sync_index_has(&subs, name + 1, strlen(name + 1)) ? FOLDER_GONE_NAMED
							       : FOLDER_GONE_DROPPED;
	sync_index_free(&subs);
out:
	free(parent);
	return st;
}

/* Cyrus: how the mailbox list judges folder rel gone from the source. */
static enum folder_state judge_gone_cyrus(struct sync_ctx *ctx, const char *rel)
{
	const struct sync_settings *s = ctx->set;
	enum folder_state st;
	char *name;
	size_t i, n;

	if (s->cyrus_mboxes == NULL || s->cyrus_inbox == NULL)
		return FOLDER_UNJUDGED;
	n = strlen(s->cyrus_inbox);
	name = malloc(n + strlen(rel) + 2);
	if (name == NULL)
		return FOLDER_UNJUDGED;
	memcpy(name, s->cyrus_inbox, n);
	if (*rel) {
		name[n++] = '.';
		for (i = 0; rel[i]; i++)
			name[n++] = rel[i] == '/' ? '.' : rel[i];
	}
	name[n] = '\0';
	st = sync_cyrus_mboxes_has(s->cyrus_mboxes, name) ? FOLDER_GONE_NAMED : FOLDER_GONE_DROPPED;
	free(name);
	return st;
}

/* Sets up Cyrus folder f: reads its cyrus.index on the source. */
static int judge_cyrus_folder(struct sync_ctx *ctx, struct folder *f, int fd)
{
	int r;

	if (fd < 0) {
		if (errno == ENOENT)
			f->state = judge_gone_cyrus(ctx, f->rel);
		return 0;
	}
	r = sync_cyrus_index_read(fd, &f->cix, f->why, sizeof(f->why));
	if (r == 0)
		f->no_index = 1;
	if (r == 1)
		f->state = FOLDER_INDEXED;
	else if (r < 0 && errno == ENOMEM)
		return -1;
	else if (r < 0)
		f->state = FOLDER_BAD_INDEX;
	return 0;
}

/* Sets up folder f: reads its index (and Dovecot's expunges) on the
 * source, or judges it gone. -1 on ENOMEM. */
static int judge_folder(struct sync_ctx *ctx, struct folder *f)
{
	int fd = sync_dir_fd(ctx, 1, f->rel);
	struct sync_ixdir d;

	f->state = FOLDER_UNJUDGED;
	if (ctx->set->format == MR_FORMAT_CYRUS)
		return judge_cyrus_folder(ctx, f, fd);
	if (fd < 0) {
		if (errno == ENOENT)
			f->state = judge_gone(ctx, f->rel);
		return 0;
	}
	ixdir_of(ctx, f->rel, fd, &d);
	if (sync_index_read_in(&d, &f->ix) != 1)
		return errno == ENOMEM ? -1 : 0;
	if (!sync_index_clean(&f->ix)) {
		sync_index_free(&f->ix);
		return 0;
	}
	f->state = FOLDER_INDEXED;
	return sync_expunged_read_in(&d, &f->ex) < 0 ? -1 : 0;
}

/* The record of Maildir folder rel[0..len), made on first use. NULL on
 * ENOMEM. */
static struct folder *folder_get(struct sync_ctx *ctx, struct folders *fs, const char *rel,
				 size_t len)
{
	struct folder *f;
	size_t i;

	/* Files come in walk order: the folder is nearly always the last. */
	for (i = fs->n; i-- > 0;)
		if (strlen(fs->v[i].rel) == len && memcmp(fs->v[i].rel, rel, len) == 0)
			return &fs->v[i];
	if (fs->n == fs->cap) {
		size_t ncap = fs->cap ? fs->cap * 2 : 16;
		struct folder *nv = realloc(fs->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return NULL;
		fs->v = nv;
		fs->cap = ncap;
	}
	f = &fs->v[fs->n];
	memset(f, 0, sizeof(*f));
	f->rel = strndup(rel, len);
	if (f->rel == NULL)
		return NULL;
	fs->n++;
	if (judge_folder(ctx, f) < 0)
		return NULL;
	return f;
}

/* Cyrus: judges message file rel on its way to the attic. */
static int judge_cyrus_file(struct sync_ctx *ctx, struct folders *fs, const char *rel)
{
	const char *name = strrchr(rel, '/');
	const struct sync_cyrus_record *r;
	struct folder *f;
	uint32_t uid;

	name = name != NULL ? name + 1 : rel;
	if (!sync_cyrus_message_name(name, &uid))
		return 0;
	f = folder_get(ctx, fs, rel, name > rel ? (size_t)(name - rel) - 1 : 0);
	if (f == NULL)
		return -1;
	switch (f->state) {
	case FOLDER_INDEXED:
		r = sync_cyrus_index_find(&f->cix, uid);
		if (r != NULL && !(r->flags & (SYNC_CYRUS_FLAG_EXPUNGED | SYNC_CYRUS_FLAG_UNLINKED |
					       SYNC_CYRUS_FLAG_ARCHIVED)))
			f->missing++;
		else
			f->deleted++;
		break;
	case FOLDER_GONE_NAMED:
	case FOLDER_BAD_INDEX:
		f->missing++;
		break;
	case FOLDER_GONE_DROPPED:
		f->deleted++;
		break;
	case FOLDER_UNJUDGED:
		break;
	}
	return 0;
}

/* Judges destination file rel on its way to the attic. -1 on ENOMEM. */
static int judge_file(struct sync_ctx *ctx, struct folders *fs, const char *rel)
{
	const char *name = strrchr(rel, '/'), *sub;
	size_t folder_len;
	struct folder *f;
	uint64_t uid = 0;

	if (ctx->set->format == MR_FORMAT_CYRUS)
		return judge_cyrus_file(ctx, fs, rel);
	if (name == NULL)
		return 0;
	/* <folder>/cur/<name> or <folder>/new/<name> */
	for (sub = name; sub > rel && sub[-1] != '/'; sub--)
		;
	if (!((name - sub == 3 && (memcmp(sub, "cur", 3) == 0 || memcmp(sub, "new", 3) == 0))))
		return 0;
	name++;
	folder_len = sub > rel ? (size_t)(sub - rel) - 1 : 0;
	f = folder_get(ctx, fs, rel, folder_len);
	if (f == NULL)
		return -1;
	switch (f->state) {
	case FOLDER_INDEXED:
		if (sync_index_find(&f->ix, name, sync_index_key(name, strlen(name)), &uid) &&
		    !sync_expunged_has(&f->ex, uid))
			f->missing++;
		else
			f->deleted++;
		break;
	case FOLDER_GONE_NAMED:
		f->missing++;
		break;
	case FOLDER_GONE_DROPPED:
		f->deleted++;
		break;
	case FOLDER_UNJUDGED:
	case FOLDER_BAD_INDEX:
		break;
	}
	return 0;
}

static int count_cyrus_entry(void *arg, const char *name, unsigned char type, uint64_t ino)
{
	(void)ino;
	if (type != DT_DIR && sync_cyrus_message_name(name, NULL))
		(*(uint64_t *)arg)++;
	return 0;
}

static int count_entry(void *arg, const char *name, unsigned char type, uint64_t ino)
{
	(void)name;
	(void)ino;
	if (type != DT_DIR)
		(*(uint64_t *)arg)++;
	return 0;
}

/* Counts the backup's messages of folder rel (its cur/ and new/ in the
 * destination). 0 or -1 with ctx->err. */
static int count_messages(struct sync_ctx *ctx, const char *rel, uint64_t *n_r)
{
	static const char *const subs[] = { "cur", "new" };
	struct mr_error err = { 0 };
	size_t i;

	*n_r = 0;
	if (ctx->set->format == MR_FORMAT_CYRUS) {
		/* a Cyrus folder holds its messages itself */
		int fd = sync_dir_fd(ctx, 0, rel);

		if (fd < 0) {
			if (errno == ENOENT)
				return 0;
			mr_error_set(ctx->err, errno, "destination %s", *rel ? rel : ".");
			return -1;
		}
		if (mr_scandir(fd, count_cyrus_entry, n_r, &err) < 0) {
			mr_error_set(ctx->err, err.errnum, "destination %s: %s", *rel ? rel : ".",
				     err.msg);
			return -1;
		}
		return 0;
	}
	for (i = 0; i < 2; i++) {
		char *p = sync_join(rel, subs[i]);
		int fd, r;

		if (p == NULL) {
			mr_error_set(ctx->err, ENOMEM, "sync guard");
			return -1;
		}
		fd = mr_open_beneath(ctx->dst_root, p, O_RDONLY | O_DIRECTORY, 0, &err);
		if (fd < 0) {
			if (err.errnum == ENOENT) {
				free(p);
				continue;
			}
			mr_error_set(ctx->err, err.errnum, "destination %s: %s", p, err.msg);
			free(p);
			return -1;
		}
		r = mr_scandir(fd, count_entry, n_r, &err);
		mr_close(fd);
		if (r < 0) {
			mr_error_set(ctx->err, err.errnum, "destination %s: %s", p, err.msg);
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

/* Cyrus: every cyrus.index the sync would copy from the source must be one
 * Cyrus can open, and none may go to the attic from a folder the source
 * still has. Marks such folders FOLDER_BAD_INDEX. 0, or -1 on ENOMEM. */
static int cyrus_bad_indexes(struct sync_ctx *ctx, struct folders *fs)
{
	struct sync_plan *p = &ctx->plan;
	const size_t ilen = sizeof(SYNC_CYRUS_INDEX) - 1;
	size_t i;

	for (i = 0; i < p->nops; i++) {
		const struct sync_op *op = &p->ops[i];
		size_t len = strlen(op->rel);

		if ((op->kind != SYNC_OP_FILE_NEW && op->kind != SYNC_OP_FILE_CHANGE) ||
		    len < ilen || strcmp(op->rel + len - ilen, SYNC_CYRUS_INDEX) != 0 ||
		    (len > ilen && op->rel[len - ilen - 1] != '/'))
			continue;
		if (folder_get(ctx, fs, op->rel, len > ilen ? len - ilen - 1 : 0) == NULL)
			return -1;
	}
	/* the backup's index headed for the attic while its folder is still
	 * on the source: the mailbox would be left without one */
	for (i = 0; i < p->ncands; i++) {
		const char *rel = p->cands[i].rel;
		size_t len = strlen(rel);
		struct folder *f;

		if (p->cands[i].used || len < ilen ||
		    strcmp(rel + len - ilen, SYNC_CYRUS_INDEX) != 0 ||
		    (len > ilen && rel[len - ilen - 1] != '/'))
			continue;
		f = folder_get(ctx, fs, rel, len > ilen ? len - ilen - 1 : 0);
		if (f == NULL)
			return -1;
		if (f->no_index) {
			f->state = FOLDER_BAD_INDEX;
			snprintf(f->why, sizeof(f->why),
				 "gone from the source while its folder is still there");
		}
	}
	return 0;
}

/* The folder as a user knows it: the Maildir root is the INBOX. */
static const char *folder_name(const char *rel)
{
	return *rel ? rel : "INBOX";
}

int sync_guard_trips(struct sync_ctx *ctx)
{
	struct sync_plan *p = &ctx->plan;
	struct folders fs = { 0 };
	uint64_t attic = p->rm_files - p->matched, deleted = 0, open, base;
	int pct = ctx->set->max_remove_pct, min = ctx->set->min_remove_files, rc = -1;
	size_t i;

	if (pct < 0)
		pct = 0;
	if (min < 0)
		min = 0;
	if (ctx->set->format == MR_FORMAT_CYRUS && cyrus_bad_indexes(ctx, &fs) < 0) {
		mr_error_set(ctx->err, ENOMEM, "sync guard");
		goto out;
	}
	if (attic == 0 && fs.n == 0)
		return 0;
	for (i = 0; attic > 0 && i < p->ncands; i++)
		if (!p->cands[i].used && judge_file(ctx, &fs, p->cands[i].rel) < 0) {
			mr_error_set(ctx->err, ENOMEM, "sync guard");
			goto out;
		}
	rc = 0;
	for (i = 0; i < fs.n; i++) {
		struct folder *f = &fs.v[i];
		uint64_t total;

		if (f->state == FOLDER_BAD_INDEX) {
			sync_problem(ctx, MR_PROBLEM_GUARD, 0, f->rel,
				     "%s%s%s: %s; the sync stopped and changed nothing (the "
				     "mailbox needs an operator: reconstruct it, or activate)",
				     f->rel, *f->rel ? "/" : "", SYNC_CYRUS_INDEX, f->why);
			rc = 1;
			continue;
		}
		deleted += f->deleted;
		if (f->missing == 0)
			continue;
		if (count_messages(ctx, f->rel, &total) < 0) {
			rc = -1;
			goto out;
		}
		if (f->missing * 100 <= (uint64_t)pct * total)
			continue;
		if (f->state == FOLDER_GONE_NAMED)
			sync_problem(ctx, MR_PROBLEM_GUARD, 0, f->rel,
				     "%s: the folder is gone from the source but %s still "
				     "name%s it: %llu messages missing, more than "
				     "--max-remove %d%%; the sync stopped and changed nothing",
				     folder_name(f->rel),
				     ctx->set->format == MR_FORMAT_CYRUS ? "Cyrus's mailbox list"
									 : "its parent's subscriptions",
				     ctx->set->format == MR_FORMAT_CYRUS ? "s" : "",
				     (unsigned long long)f->missing, pct);
		else
			sync_problem(ctx, MR_PROBLEM_GUARD, 0, f->rel,
				     "%s: %llu messages the mailbox index still lists are missing on "
				     "the source (of %llu in the backup, more than --max-remove %d%%); "
				     "the sync stopped and changed nothing",
				     folder_name(f->rel), (unsigned long long)f->missing,
				     (unsigned long long)total, pct);
		rc = 1;
	}
	if (rc != 0 || attic == 0)
		goto out;
	/* What no index shows deleted is counted, as a mailbox without an
	 * index would be. */
	if (deleted > attic)
		deleted = attic;
	open = attic - deleted;
	base = p->dst_files > deleted ? p->dst_files - deleted : 0;
	if (open == 0 || open < (uint64_t)min || open * 100 <= (uint64_t)pct * base)
		goto out;
	sync_problem(ctx, MR_PROBLEM_GUARD, 0, "",
		     "%llu of %llu files would go to the attic that no mailbox index shows "
		     "deleted, more than --max-remove %d%% (and at least --min-remove %d); the "
		     "sync stopped and changed nothing (a source that suddenly looks empty is "
		     "damage)", (unsigned long long)open, (unsigned long long)base, pct, min);
	rc = 1;
out:
	folders_free(&fs);
	return rc;
}
