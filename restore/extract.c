/*
 * extract.c: one user's backup archive -> the user's work copy, written
 * entry by entry below the held work directory fd.
 *
 * libarchive only reads here; writing is ours (archive_write_disk resolves
 * paths against the cwd and is permissive by default). Every path is
 * checked with mr_relpath_safe(), parents are opened with the O_NOFOLLOW
 * walk of mr_mkdirs_beneath(), files get their mode and times once complete
 * (written in place in a fresh work copy, else under a temporary name and
 * renamed into place; see do_file()), and directory modes
 * and times are applied at the end, deepest first. Hostile entries are
 * refused one by one and extraction goes on.
 */
#include "restore/restore.h"
#include "restore/restore_private.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024ULL * 1024ULL)
#define DEFAULT_EXPAND_RATIO 1000
#define DEFAULT_RESERVE (16 * MIB)
#define EXPAND_SLACK (64 * MIB)
/* Free space is asked again after this many bytes were written. */
#define SPACE_CHECK_EVERY (8 * MIB)
#define READ_BLOCK (128 * 1024)
/* Write-behind (writer.c) starts after this many files written in place,
 * and takes files up to this size. */
#define WB_AFTER_FILES 64
#define WB_FILE_MAX (256 * 1024)

/* A directory whose mode and times are applied after all entries. */
struct deferred_dir {
	char *path;  /* relative to the work root, "" for the root itself */
	size_t seq;  /* entry order: the later entry for a path wins */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec ts[2];
};

struct xctx {
	struct archive *a;
	int work_fd;
	int tmp_fd;  /* settings->tmp_dirfd, or -1 */
	const struct restore_settings *set;
	struct restore_stats *st;
	struct mr_problems *pb;
	struct mr_error *err;

	uint64_t archive_size;
	uint64_t limit;     /* bomb guard on bytes written */
	uint64_t reserve;   /* free space to keep on the target */
	uint64_t written;   /* file bytes written so far */
	uint64_t free_known;  /* free bytes at the last check */
	uint64_t since_check; /* bytes written since then */
	int fresh;          /* the work copy was empty at start */

	/* The parent folder of the last entry, kept open as a cursor:
	 * Maildirs hold thousands of files per folder and a walk per file
	 * costs; the next folder is reached from this one, so a deep tree
	 * costs one step per entry, not its whole depth. */
	struct mr_walk *cursor;

	struct deferred_dir *dirs;
	size_t ndirs, capdirs;

	/* Set when the archive itself stops the run (corrupt, bomb). */
	int archive_failed;

	/* Write-behind of small files written in place (writer.c). */
	struct wb *wb;
	int wb_tried;
	uint64_t direct_files;
};

/* A file's data kept in memory for write-behind while it is contiguous
 * from offset 0 and small; else spilled to the file and written through. */
struct xbuf {
	unsigned char *data;
	size_t len, cap;
	int spilled;
};

/* What one entry's handler tells the main loop. */
enum step { STEP_OK, STEP_ARCHIVE_STOP, STEP_FATAL };

void restore_settings_init(struct restore_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->tmp_dirfd = -1;
}

/* Temporary names of extraction start with this. */
#define TMP_PREFIX ".mrx."

static void refuse(struct xctx *x, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct xctx *x, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x->st->refused++;
	mr_problems_add(x->pb, MR_PROBLEM_REFUSED, 0, path, "%s", msg);
}

static void archive_problem(struct xctx *x, const char *path, const char *what)
{
	const char *why = archive_error_string(x->a);

	x->archive_failed = 1;
	mr_problems_add(x->pb, MR_PROBLEM_ARCHIVE, archive_errno(x->a) > 0 ? archive_errno(x->a) : 0,
			path, "%s: %s", what, why ? why : "unexpected end of the archive");
}

static void cache_drop(struct xctx *x)
{
	mr_walk_free(&x->cursor);
}

/* Moves the entry dirfd/name out of the way (into the scratch folder, else
 * beside it) and removes it there; no link is ever followed. Used when an
 * archive entry replaces an entry of another type: the later one wins. */
static int move_aside(struct xctx *x, int dirfd, const char *name)
{
	char tmp[64];
	int to = x->tmp_fd >= 0 ? x->tmp_fd : dirfd;

	mr_tmp_name(TMP_PREFIX, tmp, sizeof(tmp));
	if (mr_io->renameat(dirfd, name, to, tmp) < 0) {
		mr_error_set(x->err, errno, "renameat(%s) out of the way failed", name);
		return -1;
	}
	/* The cached folder may have been inside what moved, unless it is
	 * the folder the entry was moved out of (the caller's parent). */
	if (x->cursor == NULL || dirfd != mr_walk_fd(x->cursor, 0))
		cache_drop(x);
	if (mr_remove_tree_at(to, tmp, x->err) < 0)
		return -1;
	return 0;
}

/* Walks the components of rel (a parent path) to find why the O_NOFOLLOW
 * walk failed. Returns 1 when a symlink is in the way (refuse), 0 when a
 * non-directory was moved out of the way (retry), -1 on error. */
static int clear_parent_path(struct xctx *x, const char *rel)
{
	char *copy = strdup(rel), *comp, *slash;
	int cur = x->work_fd, rc = -1;

	if (copy == NULL) {
		mr_error_set(x->err, ENOMEM, "strdup");
		return -1;
	}
	comp = copy;
	for (;;) {
		struct stat sb;
		int fd;

		slash = strchr(comp, '/');
		if (slash != NULL)
			*slash = '\0';
		if (mr_io->fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT) {
				rc = 0;  /* raced away; the retry creates it */
				goto out;
			}
			mr_error_set(x->err, errno, "fstatat(%s) failed", rel);
			goto out;
		}
		if (S_ISLNK(sb.st_mode)) {
			rc = 1;
			goto out;
		}
		if (!S_ISDIR(sb.st_mode)) {
			rc = move_aside(x, cur, comp) < 0 ? -1 : 0;
			goto out;
		}
		if (slash == NULL) {
			rc = 0;
			goto out;
		}
		fd = mr_io->openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (fd < 0) {
			mr_error_set(x->err, errno, "openat(%s) failed", rel);
			goto out;
		}
		if (cur != x->work_fd)
			mr_close(cur);
		cur = fd;
		comp = slash + 1;
	}
out:
	if (cur != x->work_fd)
		mr_close(cur);
	free(copy);
	return rc;
}

/* Returns an fd of the folder rel ("" = the work root), created when
 * missing, or -1: with *refused set when a symlink is in the way (already
 * reported for path), else a fatal error in x->err. The fd stays owned by
 * the cache. */
static int parent_fd(struct xctx *x, const char *rel, const char *path, int *refused)
{
	struct mr_error walk_err;
	int fd, tries;

	*refused = 0;
	if (rel[0] == '\0')
		return x->work_fd;
	for (tries = 0; tries < 8; tries++) {
		int rc;

		mr_error_clear(&walk_err);
		if (x->cursor == NULL)
			x->cursor = mr_walk_new(&x->work_fd, 1, "", 0, NULL, 0, &walk_err);
		fd = x->cursor ? mr_walk_goto(x->cursor, rel, 0755, &walk_err) : -1;
		if (fd >= 0)
			return fd;
		cache_drop(x);
		if (walk_err.errnum != ENOTDIR && walk_err.errnum != ELOOP &&
		    walk_err.errnum != EEXIST) {
			*x->err = walk_err;
			mr_error_prefix(x->err, "creating folder %s", rel);
			return -1;
		}
		rc = clear_parent_path(x, rel);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			refuse(x, path, "refused: %s", "its folder is reached through a symlink");
			*refused = 1;
			return -1;
		}
	}
	mr_error_set(x->err, ELOOP, "creating folder %s kept failing", rel);
	return -1;
}

static int defer_dir(struct xctx *x, const char *rel, struct archive_entry *e)
{
	struct deferred_dir *d;

	if (x->ndirs == x->capdirs) {
		size_t ncap = x->capdirs ? x->capdirs * 2 : 64;
		struct deferred_dir *v = realloc(x->dirs, ncap * sizeof(*v));
		if (v == NULL) {
			mr_error_set(x->err, ENOMEM, "deferred folders");
			return -1;
		}
		x->dirs = v;
		x->capdirs = ncap;
	}
	d = &x->dirs[x->ndirs];
	d->path = strdup(rel);
	if (d->path == NULL) {
		mr_error_set(x->err, ENOMEM, "strdup");
		return -1;
	}
	d->seq = x->ndirs;
	d->mode = archive_entry_perm(e) & 0777;
	d->uid = (uid_t)archive_entry_uid(e);
	d->gid = (gid_t)archive_entry_gid(e);
	if (archive_entry_atime_is_set(e)) {
		d->ts[0].tv_sec = archive_entry_atime(e);
		d->ts[0].tv_nsec = archive_entry_atime_nsec(e);
	} else {
		d->ts[0].tv_sec = 0;
		d->ts[0].tv_nsec = UTIME_OMIT;
	}
	if (archive_entry_mtime_is_set(e)) {
		d->ts[1].tv_sec = archive_entry_mtime(e);
		d->ts[1].tv_nsec = archive_entry_mtime_nsec(e);
	} else {
		d->ts[1].tv_sec = 0;
		d->ts[1].tv_nsec = UTIME_OMIT;
	}
	x->ndirs++;
	return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
	if (archive_entry_atime_is_set(e)) {
		ts[0].tv_sec = archive_entry_atime(e);
		ts[0].tv_nsec = archive_entry_atime_nsec(e);
	} else if (archive_entry_mtime_is_set(e)) {
		ts[0].tv_sec = archive_entry_mtime(e);
		ts[0].tv_nsec = archive_entry_mtime_nsec(e);
	} else {
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
	}
	if (archive_entry_mtime_is_set(e)) {
		ts[1].tv_sec = archive_entry_mtime(e);
		ts[1].tv_nsec = archive_entry_mtime_nsec(e);
	} else {
		ts[1].tv_sec = 0;
		ts[1].tv_nsec = UTIME_OMIT;
	}
}

/* Is the existing entry already what the archive holds? */
static int same_file(const struct stat *sb, struct archive_entry *e)
{
	long nsec;

	/* No permission bits: a file do_file() was writing when it stopped. */
	if (!S_ISREG(sb->st_mode) || (sb->st_mode & 0777) == 0 || !archive_entry_size_is_set(e) ||
	    sb->st_size != archive_entry_size(e) || !archive_entry_mtime_is_set(e))
		return 0;
	if (sb->st_mtim.tv_sec != archive_entry_mtime(e))
		return 0;
	nsec = archive_entry_mtime_nsec(e);
	/* Formats without sub-second times report 0: compare seconds only. */
	return nsec == 0 || sb->st_mtim.tv_nsec == nsec;
}

/* Keeps the bomb guard and the free-space reserve. want is the number of
 * bytes about to be written (0 for a periodic check). Returns STEP_OK,
 * STEP_ARCHIVE_STOP (bomb, reported) or STEP_FATAL (ENOSPC in err). */
static enum step budget(struct xctx *x, const char *path, uint64_t want)
{
	if (x->written + want > x->limit) {
		x->archive_failed = 1;
		mr_problems_add(x->pb, MR_PROBLEM_ARCHIVE, 0, path,
				"archive expands beyond %llu bytes (archive is %llu bytes); stopped",
				(unsigned long long)x->limit, (unsigned long long)x->archive_size);
		return STEP_ARCHIVE_STOP;
	}
	if (x->free_known == UINT64_MAX)
		return STEP_OK;
	if (x->since_check >= SPACE_CHECK_EVERY ||
	    x->free_known < x->since_check + want + x->reserve) {
		x->free_known = mr_free_bytes(x->work_fd);
		x->since_check = 0;
		if (x->free_known == UINT64_MAX)
			return STEP_OK;
		if (x->free_known < want + x->reserve) {
			mr_error_set(x->err, ENOSPC,
				     "writing %s would leave less than %llu bytes free on the target",
				     path, (unsigned long long)x->reserve);
			return STEP_FATAL;
		}
	}
	return STEP_OK;
}

/* Sets owner, mode and times on an open file. */
static int file_meta(struct xctx *x, int fd, struct archive_entry *e, const char *path)
{
	struct timespec ts[2];

	if (x->set->preserve_owner &&
	    mr_io->fchownat(fd, "", (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
			    AT_EMPTY_PATH) < 0) {
		mr_error_set(x->err, errno, "fchown(%s) failed", path);
		return -1;
	}
	/* Only permission bits: setuid, setgid and sticky never survive. */
	if (mr_io->fchmod(fd, archive_entry_perm(e) & 0777) < 0) {
		mr_error_set(x->err, errno, "fchmod(%s) failed", path);
		return -1;
	}
	entry_times(e, ts);
	if (mr_io->futimens(fd, ts) < 0) {
		mr_error_set(x->err, errno, "futimens(%s) failed", path);
		return -1;
	}
	return 0;
}

/* Writes what xb kept to fd and writes through from now on. */
static int spill(struct xctx *x, int fd, struct xbuf *xb, const char *path)
{
	xb->spilled = 1;
	if (xb->len > 0 && mr_pwrite_all(fd, xb->data, xb->len, 0) < 0) {
		mr_error_set(x->err, errno, "pwrite(%s) failed", path);
		return -1;
	}
	return 0;
}

/* Copies the entry's data into fd, or into xb (when not NULL) while it
 * fits. Returns STEP_OK, STEP_ARCHIVE_STOP (corrupt/truncated/bomb,
 * reported) or STEP_FATAL (err set). */
static enum step write_data(struct xctx *x, int fd, struct archive_entry *e, const char *path,
			    struct xbuf *xb)
{
	int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
	int64_t end = 0;
	enum step s;

	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int r;

		if (mr_cancelled(x->set->cancel)) {
			mr_error_set(x->err, ECANCELED, "extraction cancelled");
			return STEP_FATAL;
		}
		r = archive_read_data_block(x->a, &buf, &len, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_RETRY) {
			archive_problem(x, path, "reading the archive failed");
			return STEP_ARCHIVE_STOP;
		}
		if (r < ARCHIVE_WARN) {
			archive_problem(x, path, "reading the archive failed");
			return STEP_ARCHIVE_STOP;
		}
		if (len == 0)
			continue;
		s = budget(x, path, len);
		if (s != STEP_OK)
			return s;
		if (xb != NULL && !xb->spilled && off == (la_int64_t)xb->len &&
		    len <= xb->cap - xb->len) {
			memcpy(xb->data + xb->len, buf, len);
			xb->len += len;
		} else {
			if (xb != NULL && !xb->spilled && spill(x, fd, xb, path) < 0)
				return STEP_FATAL;
			if (mr_pwrite_all(fd, buf, len, off) < 0) {
				mr_error_set(x->err, errno, "pwrite(%s) failed", path);
				return STEP_FATAL;
			}
		}
		x->written += len;
		x->since_check += len;
		x->st->bytes += len;
		if (off + (int64_t)len > end)
			end = off + (int64_t)len;
	}
	/* A sparse file may end in a hole (write-behind truncates its own). */
	if ((xb == NULL || xb->spilled) && size > end && mr_io->ftruncate(fd, size) < 0) {
		mr_error_set(x->err, errno, "ftruncate(%s) failed", path);
		return STEP_FATAL;
	}
	return STEP_OK;
}

/* Renames tmpdir/tmp to pfd/name, moving a folder in the way aside. */
static int place(struct xctx *x, int tmpdir, const char *tmp, int pfd, const char *name,
		 const char *path)
{
	int tries;

	for (tries = 0; tries < 4; tries++) {
		if (mr_io->renameat(tmpdir, tmp, pfd, name) == 0)
			return 0;
		if (errno != EISDIR && errno != ENOTEMPTY && errno != EEXIST && errno != ENOTDIR) {
			mr_error_set(x->err, errno, "renameat(%s) failed", path);
			return -1;
		}
		if (move_aside(x, pfd, name) < 0)
			return -1;
	}
	mr_error_set(x->err, EEXIST, "renameat(%s) kept failing", path);
	return -1;
}

/* 1 when this file may go to the write-behind helper: started after the
 * first WB_AFTER_FILES files written in place, when a core is free. */
static int write_behind(struct xctx *x)
{
	struct mr_error err;

	if (x->wb != NULL)
		return 1;
	if (x->wb_tried || ++x->direct_files < WB_AFTER_FILES)
		return 0;
	x->wb_tried = 1;
	if (!wb_worth_it())
		return 0;
	/* Without the helper the extraction goes on as before. */
	return wb_start(&x->wb, &err) == 0;
}

/* Waits until every file handed to the helper is complete. */
static int wb_wait(struct xctx *x)
{
	return x->wb == NULL ? 0 : wb_drain(x->wb, x->err);
}

static enum step do_file(struct xctx *x, struct archive_entry *e, int pfd, const char *name,
			 const char *path)
{
	char tmp[NAME_MAX + 1];
	int tmpdir = x->tmp_fd >= 0 ? x->tmp_fd : pfd;
	int fd = -1, have_tmp = 0, direct = 0, use_wb = 0;
	struct xbuf xb = { 0 };
	enum step s = STEP_FATAL;
	uint64_t declared = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
				    ? (uint64_t)archive_entry_size(e) : 0;

	if (!x->fresh) {
		struct stat sb;

		if (mr_io->fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
			if (same_file(&sb, e)) {
				x->st->skipped++;
				if (archive_read_data_skip(x->a) < ARCHIVE_WARN) {
					archive_problem(x, path, "reading the archive failed");
					return STEP_ARCHIVE_STOP;
				}
				return STEP_OK;
			}
		} else if (errno != ENOENT) {
			mr_error_set(x->err, errno, "fstatat(%s) failed", path);
			return STEP_FATAL;
		}
	}
	s = budget(x, path, declared);
	if (s != STEP_OK)
		return s;
	s = STEP_FATAL;
	/* In a work copy that started empty the file is written under its
	 * final name, with no permission bits until it is complete: an
	 * interrupted file is then never taken for done (same_file() wants
	 * some bit set), and the temporary name and the rename are saved.
	 * Otherwise, or when the name is taken (the archive holds the path
	 * twice), or for an entry without permission bits, a temporary file
	 * is renamed over the old one once complete. */
	if (x->fresh && (archive_entry_perm(e) & 0777) != 0) {
		fd = mr_io->openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0);
		if (fd >= 0) {
			tmpdir = pfd;
			snprintf(tmp, sizeof(tmp), "%s", name);
			direct = 1;
		} else if (errno != EEXIST) {
			mr_error_set(x->err, errno, "openat(%s) failed", path);
			goto out;
		}
	}
	while (fd < 0) {
		mr_tmp_name(TMP_PREFIX, tmp, sizeof(tmp));
		fd = mr_io->openat(tmpdir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		mr_error_set(x->err, errno, "openat(%s) for %s failed", tmp, path);
		goto out;
	}
	have_tmp = 1;
	if (direct && declared <= WB_FILE_MAX && write_behind(x)) {
		xb.cap = declared;
		xb.data = declared > 0 ? malloc(declared) : NULL;
		if (declared > 0 && xb.data == NULL)
			xb.spilled = 1;
		use_wb = 1;
	}
	s = write_data(x, fd, e, path, use_wb ? &xb : NULL);
	if (s != STEP_OK)
		goto out;
	s = STEP_FATAL;
	if (use_wb && !xb.spilled) {
		/* The helper writes, sets owner, mode and times, and closes. */
		struct wb_file f = { .fd = fd, .path = strdup(path), .data = xb.data,
				     .len = xb.len, .size = declared,
				     .set_owner = x->set->preserve_owner,
				     .uid = (uid_t)archive_entry_uid(e),
				     .gid = (gid_t)archive_entry_gid(e),
				     .perm = archive_entry_perm(e) & 0777 };

		if (f.path == NULL) {
			mr_error_set(x->err, ENOMEM, "strdup");
			goto out;
		}
		entry_times(e, f.ts);
		fd = -1;
		xb.data = NULL;
		have_tmp = 0;
		if (wb_submit(x->wb, &f, x->err) < 0)
			goto out;
		x->st->files++;
		s = STEP_OK;
		goto out;
	}
	if (file_meta(x, fd, e, path) < 0)
		goto out;
	if (mr_io->close(fd) < 0) {
		fd = -1;
		mr_error_set(x->err, errno, "close(%s) failed", path);
		goto out;
	}
	fd = -1;
	if (!direct && place(x, tmpdir, tmp, pfd, name, path) < 0)
		goto out;
	have_tmp = 0;
	x->st->files++;
	s = STEP_OK;
out:
	free(xb.data);
	mr_close(fd);
	if (have_tmp)
		(void)mr_io->unlinkat(tmpdir, tmp, 0);
	return s;
}

static enum step do_dir(struct xctx *x, struct archive_entry *e, int pfd, const char *name,
			const char *rel)
{
	mode_t mode = (archive_entry_perm(e) & 0777) | 0700;
	struct stat sb;
	int tries;

	for (tries = 0; tries < 4; tries++) {
		if (mr_io->mkdirat(pfd, name, mode) == 0) {
			x->st->dirs++;
			return defer_dir(x, rel, e) < 0 ? STEP_FATAL : STEP_OK;
		}
		if (errno != EEXIST) {
			mr_error_set(x->err, errno, "mkdirat(%s) failed", rel);
			return STEP_FATAL;
		}
		if (mr_io->fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(x->err, errno, "fstatat(%s) failed", rel);
			return STEP_FATAL;
		}
		if (S_ISDIR(sb.st_mode)) {
			/* Extracting below needs u+rwx until the end. */
			if ((sb.st_mode & 0700) != 0700 &&
			    mr_io->fchmodat(pfd, name, (sb.st_mode & 0777) | 0700, 0) < 0) {
				mr_error_set(x->err, errno, "fchmodat(%s) failed", rel);
				return STEP_FATAL;
			}
			x->st->skipped++;
			return defer_dir(x, rel, e) < 0 ? STEP_FATAL : STEP_OK;
		}
		if (move_aside(x, pfd, name) < 0)
			return STEP_FATAL;
	}
	mr_error_set(x->err, EEXIST, "mkdirat(%s) kept failing", rel);
	return STEP_FATAL;
}

/* A symlink target is allowed when it is relative, not empty, and every
 * ".." comes before any name and climbs no higher than the link's folder
 * (depth = components of the link's folder). Requiring the ".." first is
 * stricter than a lexical check, and it is what makes chains of links
 * safe: every link then climbs only real folders of the work copy before
 * it descends, so no combination of accepted links resolves outside. */
static const char *symlink_unsafe(const char *target, int depth)
{
	const char *p = target;
	int seen_name = 0;

	if (target == NULL || target[0] == '\0')
		return "its target is empty";
	if (target[0] == '/')
		return "its target is absolute";
	while (*p != '\0') {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (seen_name)
				return "its target has \"..\" after a name";
			if (--depth < 0)
				return "its target leads outside the work copy";
		} else if (len > 0 && !(len == 1 && p[0] == '.')) {
			seen_name = 1;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return NULL;
}

static int path_depth(const char *rel)
{
	int depth = 0;

	if (rel[0] == '\0')
		return 0;
	for (depth = 1; *rel; rel++)
		if (*rel == '/')
			depth++;
	return depth;
}

static enum step do_symlink(struct xctx *x, struct archive_entry *e, int pfd, const char *name,
			    const char *parent, const char *path)
{
	const char *target = archive_entry_symlink(e);
	const char *why = symlink_unsafe(target, path_depth(parent));
	struct timespec ts[2];
	char tmp[64];
	int tries;

	if (why != NULL) {
		refuse(x, path, "symlink refused: %s", why);
		return STEP_OK;
	}
	if (!x->fresh) {
		struct stat sb;
		char buf[4096];
		ssize_t n;

		if (mr_io->fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode) &&
		    (n = mr_io->readlinkat(pfd, name, buf, sizeof(buf))) >= 0 &&
		    (size_t)n == strlen(target) && memcmp(buf, target, (size_t)n) == 0) {
			x->st->skipped++;
			return STEP_OK;
		}
	}
	/* Made under a temporary name and renamed: the final name never
	 * holds a half-made link, and rename never follows the old one. */
	for (tries = 0;; tries++) {
		mr_tmp_name(TMP_PREFIX, tmp, sizeof(tmp));
		if (mr_io->symlinkat(target, pfd, tmp) == 0)
			break;
		if (errno != EEXIST || tries > 8) {
			mr_error_set(x->err, errno, "symlinkat(%s) failed", path);
			return STEP_FATAL;
		}
	}
	if (x->set->preserve_owner &&
	    mr_io->fchownat(pfd, tmp, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
			    AT_SYMLINK_NOFOLLOW) < 0) {
		mr_error_set(x->err, errno, "lchown(%s) failed", path);
		goto fail;
	}
	entry_times(e, ts);
	if (mr_io->utimensat(pfd, tmp, ts, AT_SYMLINK_NOFOLLOW) < 0) {
		mr_error_set(x->err, errno, "utimensat(%s) failed", path);
		goto fail;
	}
	if (place(x, pfd, tmp, pfd, name, path) < 0)
		goto fail;
	x->st->symlinks++;
	return STEP_OK;
fail:
	(void)mr_io->unlinkat(pfd, tmp, 0);
	return STEP_FATAL;
}

/* Strips leading "./" and trailing "/" in place; returns the start. */
static char *clean_path(char *p)
{
	size_t len;

	while (p[0] == '.' && p[1] == '/') {
		p += 2;
		while (*p == '/')
			p++;
	}
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		p[--len] = '\0';
	if (strcmp(p, ".") == 0)
		p[0] = '\0';
	return p;
}

/* Does a component of the cleaned relative path p exceed NAME_MAX? No
 * file system here could hold it. */
static int name_too_long(const char *p)
{
	size_t len;

	for (; *p != '\0'; p += len + (p[len] == '/')) {
		len = strcspn(p, "/");
		if (len > NAME_MAX)
			return 1;
	}
	return 0;
}

static enum step do_hardlink(struct xctx *x, struct archive_entry *e, int pfd, const char *name,
			     const char *path)
{
	char *copy = strdup(archive_entry_hardlink(e)), *target, *slash;
	const char *tname;
	int tdir = -1, own_tdir = 0;
	struct stat tsb, sb;
	struct mr_error walk_err;
	enum step s = STEP_FATAL;
	char tmp[64];
	int tries;

	if (copy == NULL) {
		mr_error_set(x->err, ENOMEM, "strdup");
		return STEP_FATAL;
	}
	if (!mr_relpath_safe(copy)) {
		refuse(x, path, "hard link refused: its target %s is outside the work copy",
		       archive_entry_hardlink(e));
		s = STEP_OK;
		goto out;
	}
	target = clean_path(copy);
	if (name_too_long(target)) {
		refuse(x, path, "hard link refused: %s", "a name in its target is longer than 255 bytes");
		s = STEP_OK;
		goto out;
	}
	if (target[0] == '\0') {
		refuse(x, path, "hard link refused: %s", "its target is the root folder");
		s = STEP_OK;
		goto out;
	}
	slash = strrchr(target, '/');
	if (slash == NULL) {
		tdir = x->work_fd;
		tname = target;
	} else {
		*slash = '\0';
		tname = slash + 1;
		mr_error_clear(&walk_err);
		tdir = mr_open_beneath(x->work_fd, target, O_RDONLY | O_DIRECTORY, 0, &walk_err);
		if (tdir < 0) {
			refuse(x, path, "hard link refused: its target's folder can't be reached (%s)",
			       walk_err.msg);
			s = STEP_OK;
			goto out;
		}
		own_tdir = 1;
	}
	/* Only regular files: a hard link to a symlink would carry the link's
	 * relative target to another depth, where it may lead out (a/b/L ->
	 * ../../x is safe at depth 2, its hard link M at the root is not). */
	if (mr_io->fstatat(tdir, tname, &tsb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(tsb.st_mode)) {
		refuse(x, path, "hard link refused: its target %s is not a regular file in the work copy",
		       archive_entry_hardlink(e));
		s = STEP_OK;
		goto out;
	}
	if (mr_io->fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && sb.st_dev == tsb.st_dev &&
	    sb.st_ino == tsb.st_ino) {
		x->st->skipped++;
		s = STEP_OK;
		goto out;
	}
	for (tries = 0;; tries++) {
		mr_tmp_name(TMP_PREFIX, tmp, sizeof(tmp));
		if (mr_io->linkat(tdir, tname, pfd, tmp, 0) == 0)
			break;
		if (errno != EEXIST || tries > 8) {
			mr_error_set(x->err, errno, "linkat(%s) failed", path);
			goto out;
		}
	}
	if (place(x, pfd, tmp, pfd, name, path) < 0) {
		(void)mr_io->unlinkat(pfd, tmp, 0);
		goto out;
	}
	x->st->hardlinks++;
	s = STEP_OK;
	/* cpio keeps the data on the last link of a set: write it into the
	 * file the links share, opened without following anything. */
	if (S_ISREG(tsb.st_mode) && archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
		int fd = mr_io->openat(pfd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW, 0);

		if (fd < 0) {
			mr_error_set(x->err, errno, "openat(%s) failed", path);
			s = STEP_FATAL;
			goto out;
		}
		s = write_data(x, fd, e, path, NULL);
		if (s == STEP_OK && file_meta(x, fd, e, path) < 0)
			s = STEP_FATAL;
		mr_close(fd);
	}
out:
	if (own_tdir)
		mr_close(tdir);
	free(copy);
	return s;
}

/* Orders the deferred folders deepest first (reverse byte order puts
 * "a/b" before "a"), and for one path the last entry first. */
static int dir_cmp(const void *a, const void *b)
{
	const struct deferred_dir *x = a, *y = b;
	int c = strcmp(y->path, x->path);

	if (c != 0)
		return c;
	return x->seq < y->seq ? 1 : -1;
}

static int finish_dirs(struct xctx *x)
{
	struct mr_walk *cur = NULL;
	size_t i;
	int rc = 0;

	if (x->ndirs > 1)
		qsort(x->dirs, x->ndirs, sizeof(x->dirs[0]), dir_cmp);
	for (i = 0; i < x->ndirs && rc == 0; i++) {
		struct deferred_dir *d = &x->dirs[i];
		struct mr_error walk_err;
		int fd;

		if (i > 0 && strcmp(d->path, x->dirs[i - 1].path) == 0)
			continue;
		if (d->path[0] == '\0') {
			fd = x->work_fd;
		} else {
			/* In sorted order each folder is a step from the last. */
			if (cur == NULL)
				cur = mr_walk_new(&x->work_fd, 1, "", 0, NULL, 0, &walk_err);
			fd = cur ? mr_walk_goto(cur, d->path, 0, &walk_err) : -1;
			/* A later entry replaced it, or it sits below a
			 * refused link: nothing to apply. */
			if (fd < 0) {
				mr_walk_free(&cur);
				continue;
			}
		}
		if (x->set->preserve_owner &&
		    mr_io->fchownat(fd, "", d->uid, d->gid, AT_EMPTY_PATH) < 0) {
			mr_error_set(x->err, errno, "fchown(%s) failed", d->path);
			rc = -1;
		} else if (mr_io->fchmod(fd, d->mode) < 0) {
			mr_error_set(x->err, errno, "fchmod(%s) failed", d->path);
			rc = -1;
		} else if (mr_io->futimens(fd, d->ts) < 0) {
			mr_error_set(x->err, errno, "futimens(%s) failed", d->path);
			rc = -1;
		}
	}
	mr_walk_free(&cur);
	return rc;
}

/* Handles one entry header. */
static enum step do_entry(struct xctx *x, struct archive_entry *e)
{
	const char *raw = archive_entry_pathname(e);
	char *copy = NULL, *parent = NULL, *path, *slash;
	const char *name;
	mode_t type = archive_entry_filetype(e);
	enum step s = STEP_OK;
	int pfd, refused;

	if (raw == NULL || raw[0] == '\0') {
		refuse(x, "", "entry refused: %s", "it has no path");
		goto skip;
	}
	if (!mr_relpath_safe(raw) && strcmp(raw, ".") != 0 && strcmp(raw, "./") != 0) {
		refuse(x, raw, "entry refused: %s", "its path is absolute or leads outside with \"..\"");
		goto skip;
	}
	copy = strdup(raw);
	if (copy == NULL) {
		mr_error_set(x->err, ENOMEM, "strdup");
		return STEP_FATAL;
	}
	path = clean_path(copy);
	if (name_too_long(path)) {
		refuse(x, path, "entry refused: %s", "a name in its path is longer than 255 bytes");
		goto skip;
	}
	if (path[0] == '\0') {
		/* The root folder itself: only its mode and times. */
		if (type != AE_IFDIR || archive_entry_hardlink(e) != NULL) {
			refuse(x, "", "entry refused: %s", "the root can only be a folder");
			goto skip;
		}
		s = defer_dir(x, "", e) < 0 ? STEP_FATAL : STEP_OK;
		goto out;
	}
	if (archive_entry_hardlink(e) == NULL && type != AE_IFREG && type != AE_IFDIR &&
	    type != AE_IFLNK) {
		const char *what = type == AE_IFCHR ? "character device" :
				   type == AE_IFBLK ? "block device" :
				   type == AE_IFIFO ? "FIFO" :
				   type == AE_IFSOCK ? "socket" : "unknown entry type";
		refuse(x, path, "%s refused", what);
		goto skip;
	}
	slash = strrchr(path, '/');
	parent = strndup(path, slash != NULL ? (size_t)(slash - path) : 0);
	if (parent == NULL) {
		free(copy);
		mr_error_set(x->err, ENOMEM, "strdup");
		return STEP_FATAL;
	}
	name = slash != NULL ? slash + 1 : path;
	pfd = parent_fd(x, parent, path, &refused);
	if (pfd < 0) {
		if (refused)
			goto skip;
		s = STEP_FATAL;
		goto out;
	}
	/* Links, folders and a path written twice must see complete files. */
	if ((archive_entry_hardlink(e) != NULL || type != AE_IFREG) && wb_wait(x) < 0) {
		s = STEP_FATAL;
		goto out;
	}
	if (archive_entry_hardlink(e) != NULL)
		s = do_hardlink(x, e, pfd, name, path);
	else if (type == AE_IFDIR)
		s = do_dir(x, e, pfd, name, path);
	else if (type == AE_IFLNK)
		s = do_symlink(x, e, pfd, name, parent, path);
	else
		s = do_file(x, e, pfd, name, path);
	goto out;
skip:
	if (archive_read_data_skip(x->a) < ARCHIVE_WARN) {
		archive_problem(x, raw ? raw : "", "reading the archive failed");
		s = STEP_ARCHIVE_STOP;
	}
out:
	free(parent);
	free(copy);
	return s;
}

struct sframe {
	struct mr_dirlist list;
	size_t i;
	int listed;
};

static void sframe_free(void *p)
{
	mr_dirlist_free(&((struct sframe *)p)->list);
}

/* One entry n of the top folder of w: removed when unfinished; a folder
 * is made listable and entered (1). 0, 1, or -1 with err. */
static int sweep_entry(struct mr_walk *w, const char *n, struct mr_error *err)
{
	int dfd = mr_walk_fd(w, 0), fds[MR_WALK_SIDES] = { -1, -1 };
	const char *rel = mr_walk_path(w);
	struct stat sb;

	if (*rel == '\0')
		rel = ".";
	if (mr_io->fstatat(dfd, n, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		mr_error_set(err, errno, "fstatat(%.200s/%s) in the work copy failed", rel, n);
		return -1;
	}
	if (S_ISREG(sb.st_mode) && (sb.st_mode & 07777) == 0) {
		if (mr_io->unlinkat(dfd, n, 0) < 0) {
			mr_error_set(err, errno, "removing the unfinished %.200s/%s failed", rel, n);
			return -1;
		}
		return 0;
	}
	if (!S_ISDIR(sb.st_mode))
		return 0;
	/* A folder may still have the archive's mode: without root, listing
	 * and removing need u+rwx (extraction gives it too, and the
	 * archive's mode comes back at the end). */
	if ((sb.st_mode & 0700) != 0700 &&
	    mr_io->fchmodat(dfd, n, (sb.st_mode & 0777) | 0700, 0) < 0) {
		mr_error_set(err, errno, "fchmodat(%.200s/%s) in the work copy failed", rel, n);
		return -1;
	}
	fds[0] = mr_walk_openat(w, 0, n);
	if (fds[0] < 0) {
		mr_error_set(err, errno, "opening %.200s/%s in the work copy failed", rel, n);
		return -1;
	}
	return mr_walk_push(w, n, fds, err) < 0 ? -1 : 1;
}

/* Removes, below dfd, every regular file without permission bits: files
 * do_file() was writing in place when a run stopped. A resumed run writes
 * each such entry again anyway (same_file() refuses them), but one whose
 * archive has changed since (a newer backup without the file) would leave
 * a partial file behind for the sync and the activation. A file the backup
 * really holds with mode 0000 is removed too and written again when its
 * entry comes (if the archive stops before it, the source or the attic
 * decides, as for any file the archive did not give). 0, or -1 with err:
 * the work copy is ours, so any failure to list or remove is an error.
 * Walked with mr_walk: any depth, a bounded number of descriptors. */
static int sweep_unfinished(int dfd, struct mr_error *err)
{
	int roots[MR_WALK_SIDES] = { dfd, -1 };
	struct mr_walk *w;
	int rc = -1;

	w = mr_walk_new(roots, 1, "", sizeof(struct sframe), sframe_free, 0, err);
	if (w == NULL)
		return -1;
	for (;;) {
		struct sframe *f = mr_walk_frame(w);
		const char *n;
		unsigned char t;

		if (!f->listed) {
			f->listed = 1;
			if (mr_listdir(mr_walk_fd(w, 0), &f->list, err) < 0)
				goto out;
		}
		if (f->i == f->list.n) {
			if (mr_walk_depth(w) == 0)
				break;
			if (mr_walk_pop(w, err) < 0)
				goto out;
			continue;
		}
		n = f->list.v[f->i].name;
		t = f->list.v[f->i].type;
		f->i++;
		if (t != DT_REG && t != DT_DIR && t != DT_UNKNOWN)
			continue;
		if (sweep_entry(w, n, err) < 0)
			goto out;
	}
	rc = 0;
out:
	mr_walk_free(&w);
	return rc;
}

/* Is the work folder empty? Then no entry needs the resume check. */
static int work_empty(int fd)
{
	struct mr_dirlist list;
	struct mr_error e;
	int empty;

	if (mr_listdir(fd, &list, &e) < 0)
		return 0;
	empty = list.n == 0;
	mr_dirlist_free(&list);
	return empty;
}

/* Reads one of our archive sources to its end, after the archive format
 * ended, through its read callback. 0, or -1 with the reason on a. */
static int drain(struct archive *a, void *src, archive_read_callback *read)
{
	const void *buf;
	la_ssize_t n;

	while ((n = read(a, src, &buf)) > 0)
		;
	return n < 0 ? -1 : 0;
}

int restore_extract(int archive_fd, int work_dirfd, const struct restore_settings *settings,
		    struct restore_stats *stats, struct mr_problems *problems,
		    struct mr_error *err)
{
	struct restore_settings defaults;
	struct restore_stats dummy;
	struct xctx x;
	struct stat asb, wsb;
	struct archive_entry *e;
	struct lz4src *lz4 = NULL;
	struct gzsrc *gz = NULL;
	uint64_t ratio;
	int rc = -1, r, nentries = 0, retries = 0;

	if (settings == NULL) {
		restore_settings_init(&defaults);
		settings = &defaults;
	}
	if (stats == NULL)
		stats = &dummy;
	memset(stats, 0, sizeof(*stats));
	memset(&x, 0, sizeof(x));
	x.work_fd = work_dirfd;
	x.tmp_fd = settings->tmp_dirfd;
	x.set = settings;
	x.st = stats;
	x.pb = problems;
	x.err = err;
	wb_extraction_begin();

	if (fstat(archive_fd, &asb) < 0) {
		mr_error_set(err, errno, "fstat(archive) failed");
		goto out;
	}
	x.archive_size = S_ISREG(asb.st_mode) ? (uint64_t)asb.st_size : 0;
	ratio = settings->max_expand_ratio ? settings->max_expand_ratio : DEFAULT_EXPAND_RATIO;
	x.limit = x.archive_size > (UINT64_MAX - EXPAND_SLACK) / ratio
			  ? UINT64_MAX : x.archive_size * ratio + EXPAND_SLACK;
	if (settings->max_bytes != 0 && settings->max_bytes < x.limit)
		x.limit = settings->max_bytes;
	x.reserve = settings->reserve_bytes ? settings->reserve_bytes : DEFAULT_RESERVE;
	x.free_known = mr_free_bytes(work_dirfd);

	/* Extracting needs u+rwx on the root (a resumed run may find the
	 * archive's own mode there). */
	if (mr_io->fstat(work_dirfd, &wsb) < 0) {
		mr_error_set(err, errno, "fstat(work folder) failed");
		goto out;
	}
	if ((wsb.st_mode & 0700) != 0700 && mr_io->fchmod(work_dirfd, (wsb.st_mode & 0777) | 0700) < 0) {
		mr_error_set(err, errno, "fchmod(work folder) failed");
		goto out;
	}
	x.fresh = work_empty(work_dirfd);
	if (!x.fresh && sweep_unfinished(work_dirfd, err) < 0)
		goto out;

	x.a = archive_read_new();
	if (x.a == NULL) {
		mr_error_set(err, ENOMEM, "archive_read_new failed");
		goto out;
	}
	archive_read_support_filter_all(x.a);
	archive_read_support_format_all(x.a);
	if (lseek(archive_fd, 0, SEEK_SET) < 0 && errno != ESPIPE) {
		mr_error_set(err, errno, "lseek(archive) failed");
		goto out;
	}
	/* LZ4 frames and gzip are read by our own readers, which check what
	 * libarchive's do not or do slowly (lz4src.c, gzsrc.c); the rest by
	 * libarchive's own filters. */
	if (lz4src_probe(archive_fd))
		r = lz4src_open(x.a, archive_fd, &lz4);
	else if (gzsrc_probe(archive_fd))
		r = gzsrc_open(x.a, archive_fd, &gz);
	else
		r = archive_read_open_fd(x.a, archive_fd, READ_BLOCK);
	if (r != ARCHIVE_OK) {
		archive_problem(&x, "", "not a readable archive");
		rc = 1;
		goto out;
	}
	for (;;) {
		enum step s;

		if (mr_cancelled(x.set->cancel)) {
			mr_error_set(err, ECANCELED, "extraction cancelled");
			goto out;
		}
		r = archive_read_next_header(x.a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_RETRY) {
			/* A damaged header the reader skipped to resync: the
			 * archive is corrupt even when the rest reads. */
			if (retries++ == 0)
				archive_problem(&x, "", "the archive is damaged");
			if (retries > 10000)
				break;
			continue;
		}
		retries = 0;
		if (r == ARCHIVE_FATAL) {
			archive_problem(&x, "", nentries == 0 ? "not a readable archive"
							   : "the archive is truncated or corrupt");
			break;
		}
		if (r == ARCHIVE_FAILED) {
			/* This entry is unusable but the archive goes on. */
			mr_problems_add(problems, MR_PROBLEM_ARCHIVE, 0,
					archive_entry_pathname(e) ? archive_entry_pathname(e) : "",
					"entry unreadable: %s", archive_error_string(x.a));
			x.archive_failed = 1;
			continue;
		}
		nentries++;
		stats->entries++;
		s = do_entry(&x, e);
		if (s == STEP_FATAL)
			goto out;
		if (s == STEP_ARCHIVE_STOP)
			break;
		if (settings->progress != NULL)
			settings->progress(settings->progress_arg,
					   lz4 != NULL ? lz4src_consumed(lz4)
					   : gz != NULL ? gzsrc_consumed(gz)
					   : (uint64_t)archive_filter_bytes(x.a, -1),
					   x.archive_size);
	}
	/* The tar reader stops at its end-of-archive blocks: the LZ4 content
	 * checksum or the gzip CRC-32 after them is still to be checked. */
	if (!x.archive_failed && ((lz4 != NULL && drain(x.a, lz4, lz4src_read) < 0) ||
				  (gz != NULL && drain(x.a, gz, gzsrc_read) < 0)))
		archive_problem(&x, "", "the archive is damaged");
	if (!x.archive_failed && nentries == 0 &&
	    (x.archive_size == 0 || archive_format(x.a) == ARCHIVE_FORMAT_EMPTY)) {
		x.archive_failed = 1;
		mr_problems_add(problems, MR_PROBLEM_ARCHIVE, 0, "",
				"the archive is empty (%llu bytes)", (unsigned long long)x.archive_size);
	}
	cache_drop(&x);
	if (wb_wait(&x) < 0 || finish_dirs(&x) < 0)
		goto out;
	rc = x.archive_failed ? 1 : 0;
out:
	if (x.wb != NULL) {
		struct mr_error werr;

		if (wb_stop(x.wb, &werr) < 0 && rc >= 0) {
			*err = werr;
			rc = -1;
		}
	}
	wb_extraction_end();
	cache_drop(&x);
	if (x.a != NULL)
		archive_read_free(x.a);
	for (size_t i = 0; i < x.ndirs; i++)
		free(x.dirs[i].path);
	free(x.dirs);
	return rc;
}
