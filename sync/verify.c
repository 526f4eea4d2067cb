/*
 * verify.c: sync_verify() compares two trees the way docs/LAYOUT.md ("What
 * a restored user is") defines equal: the same paths and types, contents
 * (xxh3 of both sides), permission bits, modification times to the
 * nanosecond, symlink targets and, when asked, owners. Every difference is
 * listed; the source is only read.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vctx {
	int check_owner;
	struct mr_problems *diffs;
	struct mr_error *err;
	unsigned char *buf;
	size_t ndiffs;
};

static void diff(struct vctx *v, enum mr_problem_kind kind, int errnum, const char *rel,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void diff(struct vctx *v, enum mr_problem_kind kind, int errnum, const char *rel,
		 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mr_problems_addv(v->diffs, kind, errnum, *rel ? rel : ".", fmt, ap);
	va_end(ap);
	v->ndiffs++;
}

static const char *type_name(mode_t m)
{
	if (S_ISREG(m))
		return "file";
	if (S_ISDIR(m))
		return "folder";
	if (S_ISLNK(m))
		return "symlink";
	return "special file";
}

/* Compares two regular files' contents. 0 done (difference recorded), -1
 * destination error. */
static int cmp_content(struct vctx *v, int sfd, int dfd, const char *name, const char *rel)
{
	uint64_t hs, hd;
	int fs, fd = -1, rc = -1;

	fs = sync_src_openat(sfd, name, O_RDONLY);
	if (fs < 0 || sync_hash_fd(fs, v->buf, SYNC_BUF_SIZE, &hs) < 0) {
		diff(v, MR_PROBLEM_UNREADABLE, errno, rel, "reading the source failed: %s",
		     strerror(errno));
		rc = 0;
		goto out;
	}
	fd = mr_io->openat(dfd, name, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0 || sync_hash_fd(fd, v->buf, SYNC_BUF_SIZE, &hd) < 0) {
		mr_error_set(v->err, errno, "reading %s in the target failed", rel);
		goto out;
	}
	if (hs != hd)
		diff(v, MR_PROBLEM_DIFF, 0, rel, "content differs");
	rc = 0;
out:
	mr_close(fs);
	mr_close(fd);
	return rc;
}

static int cmp_link(struct vctx *v, int sfd, int dfd, const char *name, const char *rel)
{
	char a[PATH_MAX + 1], b[PATH_MAX + 1];
	ssize_t na, nb;

	na = mr_io->readlinkat(sfd, name, a, sizeof(a) - 1);
	if (na < 0) {
		diff(v, MR_PROBLEM_UNREADABLE, errno, rel, "readlink in the source failed: %s",
		     strerror(errno));
		return 0;
	}
	nb = mr_io->readlinkat(dfd, name, b, sizeof(b) - 1);
	if (nb < 0) {
		mr_error_set(v->err, errno, "readlink(%s) in the target failed", rel);
		return -1;
	}
	a[na] = b[nb] = '\0';
	if (strcmp(a, b) != 0)
		diff(v, MR_PROBLEM_DIFF, 0, rel, "symlink target differs (\"%s\" in the source, "
		     "\"%s\" in the target)", a, b);
	return 0;
}

static void cmp_meta(struct vctx *v, const struct stat *s, const struct stat *d, const char *rel)
{
	if (!S_ISLNK(s->st_mode) && (s->st_mode & 07777) != (d->st_mode & 07777))
		diff(v, MR_PROBLEM_DIFF, 0, rel, "mode differs (%04o in the source, %04o in the "
		     "target)", (unsigned)(s->st_mode & 07777), (unsigned)(d->st_mode & 07777));
	if (!sync_same_mtime(s, d))
		diff(v, MR_PROBLEM_DIFF, 0, rel, "mtime differs (%lld.%09ld in the source, "
		     "%lld.%09ld in the target)", (long long)s->st_mtim.tv_sec,
		     s->st_mtim.tv_nsec, (long long)d->st_mtim.tv_sec, d->st_mtim.tv_nsec);
	if (v->check_owner && (s->st_uid != d->st_uid || s->st_gid != d->st_gid))
		diff(v, MR_PROBLEM_DIFF, 0, rel, "owner differs (%lu:%lu in the source, %lu:%lu "
		     "in the target)", (unsigned long)s->st_uid, (unsigned long)s->st_gid,
		     (unsigned long)d->st_uid, (unsigned long)d->st_gid);
}

/* Compares entry name of the top folders of walk w (path rel). 0 done,
 * 1 when it is a folder on both sides that w has just entered, -1 on a
 * target error. */
static int verify_entry(struct vctx *v, struct mr_walk *w, const char *name, const char *rel)
{
	int sfd = mr_walk_fd(w, 0), dfd = mr_walk_fd(w, 1);
	int fds[MR_WALK_SIDES] = { -1, -1 };
	struct stat s, d;

	if (mr_io->fstatat(dfd, name, &d, AT_SYMLINK_NOFOLLOW) < 0) {
		mr_error_set(v->err, errno, "fstatat(%s) in the target failed", rel);
		return -1;
	}
	if (mr_io->fstatat(sfd, name, &s, AT_SYMLINK_NOFOLLOW) < 0) {
		diff(v, MR_PROBLEM_UNREADABLE, errno, rel, "fstatat in the source failed: %s",
		     strerror(errno));
		return 0;
	}
	if ((s.st_mode & S_IFMT) != (d.st_mode & S_IFMT)) {
		diff(v, MR_PROBLEM_DIFF, 0, rel, "type differs (%s in the source, %s in the target)",
		     type_name(s.st_mode), type_name(d.st_mode));
		return 0;
	}
	cmp_meta(v, &s, &d, rel);
	if (S_ISREG(s.st_mode)) {
		if (s.st_size != d.st_size) {
			diff(v, MR_PROBLEM_DIFF, 0, rel, "size differs (%lld in the source, %lld "
			     "in the target)", (long long)s.st_size, (long long)d.st_size);
			return 0;
		}
		return cmp_content(v, sfd, dfd, name, rel);
	}
	if (S_ISLNK(s.st_mode))
		return cmp_link(v, sfd, dfd, name, rel);
	if (!S_ISDIR(s.st_mode))
		return 0;
	fds[0] = mr_walk_openat(w, 0, name);
	if (fds[0] < 0) {
		diff(v, MR_PROBLEM_UNREADABLE, errno, rel, "opening the folder in the source "
		     "failed: %s", strerror(errno));
		return 0;
	}
	fds[1] = mr_walk_openat(w, 1, name);
	if (fds[1] < 0) {
		mr_error_set(v->err, errno, "openat(%s) in the target failed", rel);
		mr_close(fds[0]);
		return -1;
	}
	return mr_walk_push(w, name, fds, v->err) < 0 ? -1 : 1;
}

/* One folder of the walk: both listings, merged by name. */
struct vframe {
	struct mr_dirlist sl, dl;
	size_t i, j;
	int listed;
};

static void vframe_free(void *p)
{
	struct vframe *f = p;

	mr_dirlist_free(&f->sl);
	mr_dirlist_free(&f->dl);
}

/* Lists the top folders of w into f. 0 (a source that fails to list is
 * a difference, and nothing below it is compared) or -1. */
static int verify_list(struct vctx *v, struct mr_walk *w, struct vframe *f)
{
	struct mr_error lerr = { 0 };
	const char *rel = mr_walk_path(w);

	f->listed = 1;
	if (mr_listdir(mr_walk_fd(w, 0), &f->sl, &lerr) < 0) {
		diff(v, MR_PROBLEM_UNREADABLE, lerr.errnum, rel, "listing the folder in the source "
		     "failed: %s", lerr.msg);
		return 0;
	}
	if (mr_listdir(mr_walk_fd(w, 1), &f->dl, v->err) < 0) {
		mr_error_prefix(v->err, "target %.200s", *rel ? rel : ".");
		return -1;
	}
	return 0;
}

/* Walks both trees from their roots sfd and dfd, without recursion. */
static int verify_tree(struct vctx *v, int sfd, int dfd)
{
	int roots[MR_WALK_SIDES] = { sfd, dfd };
	struct mr_walk *w;
	int rc = -1;

	w = mr_walk_new(roots, 2, "", sizeof(struct vframe), vframe_free, 1u << 0, v->err);
	if (w == NULL)
		return -1;
	for (;;) {
		struct vframe *f = mr_walk_frame(w);
		const char *name;
		char *child;
		int cmp, r = 0;

		if (!f->listed && verify_list(v, w, f) < 0)
			goto out;
		if (f->i == f->sl.n && f->j == f->dl.n) {
			if (mr_walk_depth(w) == 0)
				break;
			if (mr_walk_pop(w, v->err) < 0)
				goto out;
			continue;
		}
		cmp = f->i == f->sl.n ? 1 : f->j == f->dl.n ? -1 :
			strcmp(f->sl.v[f->i].name, f->dl.v[f->j].name);
		name = cmp <= 0 ? f->sl.v[f->i].name : f->dl.v[f->j].name;
		child = sync_join(mr_walk_path(w), name);
		if (child == NULL) {
			mr_error_set(v->err, ENOMEM, "verify");
			goto out;
		}
		/* Past this entry before a push moves the frame. */
		f->i += cmp <= 0;
		f->j += cmp >= 0;
		if (cmp < 0)
			diff(v, MR_PROBLEM_DIFF, 0, child, "missing from the target");
		else if (cmp > 0)
			diff(v, MR_PROBLEM_DIFF, 0, child, "not in the source (extra in the target)");
		else
			r = verify_entry(v, w, name, child);
		free(child);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	mr_walk_free(&w);
	return rc;
}

/* Compares two trees. See sync.h. */
int sync_verify(int src_dirfd, int dst_dirfd, int check_owner, struct mr_problems *diffs,
		struct mr_error *err)
{
	struct vctx v = { .check_owner = check_owner, .diffs = diffs, .err = err };
	struct stat s, d;
	int sfd, rc = -1;

	v.buf = malloc(SYNC_BUF_SIZE);
	if (v.buf == NULL) {
		mr_error_set(err, ENOMEM, "verify");
		return -1;
	}
	sfd = sync_src_openat(src_dirfd, ".", O_RDONLY | O_DIRECTORY);
	if (sfd < 0 || mr_io->fstat(sfd, &s) < 0) {
		diff(&v, MR_PROBLEM_UNREADABLE, errno, "", "opening the source failed: %s",
		     strerror(errno));
		rc = 1;
		goto out;
	}
	if (mr_io->fstat(dst_dirfd, &d) < 0) {
		mr_error_set(err, errno, "fstat of the target failed");
		goto out;
	}
	cmp_meta(&v, &s, &d, "");
	if (verify_tree(&v, sfd, dst_dirfd) < 0)
		goto out;
	rc = v.ndiffs > 0 ? 1 : 0;
out:
	mr_close(sfd);
	free(v.buf);
	return rc;
}
