/*
 * publish.c: temporary names, and publishing a file under its final name
 * durably: write it under a temporary name below a held folder fd, fsync
 * it, rename it over the final name, fsync the folder. A reader sees the
 * old file or the whole new one, never half of one, and once
 * mr_publish_commit() returned 0 a crash keeps the new one.
 */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Shared by every thread of the process: the pid tells processes apart,
 * this tells the names of one process apart. */
static atomic_uint_fast64_t tmp_seq;

void mr_tmp_name(const char *prefix, char *buf, size_t len)
{
	unsigned long long n =
		(unsigned long long)atomic_fetch_add_explicit(&tmp_seq, 1, memory_order_relaxed);

	snprintf(buf, len, "%s%ld.%llu", prefix, (long)getpid(), n);
}

/* "<show>/<name>", or name alone when show is empty. */
static const char *shown(const struct mr_publish *p, const char *name, char *buf, size_t len)
{
	if (p->show[0] == '\0')
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%s/%s", p->show, name);
	return buf;
}

int mr_publish_begin(struct mr_publish *p, int dirfd, const char *show, const char *name,
		     const char *tmp, mode_t mode, unsigned flags, struct mr_error *err)
{
	char what[MR_PUBLISH_SHOW_MAX + NAME_MAX + 2];
	int oflags = O_CREAT | O_NOFOLLOW | O_CLOEXEC;

	memset(p, 0, sizeof(*p));
	p->dirfd = dirfd;
	p->fd = -1;
	p->flags = flags;
	snprintf(p->show, sizeof(p->show), "%s", show != NULL ? show : "");
	/* A prefix leaves room for the pid and the number mr_tmp_name adds. */
	if (strlen(name) >= sizeof(p->name) ||
	    strlen(tmp) + ((flags & MR_PUBLISH_FIXED_TMP) ? 1 : 48) > sizeof(p->tmp)) {
		mr_error_set(err, ENAMETOOLONG, "publishing %s: name too long",
			     shown(p, name, what, sizeof(what)));
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p->name, name, strlen(name) + 1);
	if (flags & MR_PUBLISH_FIXED_TMP) {
		memcpy(p->tmp, tmp, strlen(tmp) + 1);
		oflags |= O_TRUNC;
	} else {
		mr_tmp_name(tmp, p->tmp, sizeof(p->tmp));
		oflags |= O_EXCL;
	}
	oflags |= (flags & MR_PUBLISH_APPEND) ? O_RDWR | O_APPEND : O_WRONLY;
	p->fd = mr_io->openat(dirfd, p->tmp, oflags, mode);
	if (p->fd < 0) {
		mr_error_set(err, errno, "openat(%s) failed", shown(p, p->tmp, what, sizeof(what)));
		return -1;
	}
	p->tmp_made = 1;
	return 0;
}

int mr_publish_write(struct mr_publish *p, const void *buf, size_t len, struct mr_error *err)
{
	char what[MR_PUBLISH_SHOW_MAX + NAME_MAX + 2];

	if (mr_write_all(p->fd, buf, len) < 0) {
		mr_error_set(err, errno, "write(%s) failed", shown(p, p->tmp, what, sizeof(what)));
		return -1;
	}
	return 0;
}

int mr_publish_commit(struct mr_publish *p, struct mr_error *err)
{
	char what[MR_PUBLISH_SHOW_MAX + NAME_MAX + 2];
	int sync = !(p->flags & MR_PUBLISH_NO_FSYNC), c;

	if (sync && mr_io->fsync(p->fd) < 0) {
		mr_error_set(err, errno, "fsync(%s) failed", shown(p, p->tmp, what, sizeof(what)));
		return -1;
	}
	if (!(p->flags & MR_PUBLISH_KEEP_OPEN)) {
		/* close() can report a write-back error NFS and others hold
		 * back until then. */
		c = mr_io->close(p->fd);
		p->fd = -1;
		if (c < 0) {
			mr_error_set(err, errno, "close(%s) failed",
				     shown(p, p->tmp, what, sizeof(what)));
			return -1;
		}
	}
	if (mr_io->renameat(p->dirfd, p->tmp, p->dirfd, p->name) < 0) {
		mr_error_set(err, errno, "renameat(%s, %s) failed",
			     shown(p, p->tmp, what, sizeof(what)), p->name);
		return -1;
	}
	p->tmp_made = 0;
	p->renamed = 1;
	if (sync && mr_io->fsync(p->dirfd) < 0) {
		mr_error_set(err, errno, "fsync(%s) failed",
			     p->show[0] != '\0' ? p->show : ".");
		return -1;
	}
	return 0;
}

void mr_publish_abort(struct mr_publish *p)
{
	int e = errno;

	mr_close(p->fd);
	p->fd = -1;
	if (p->tmp_made)
		(void)mr_io->unlinkat(p->dirfd, p->tmp, 0);
	p->tmp_made = 0;
	errno = e;
}

int mr_publish_file(int dirfd, const char *show, const char *name, const char *tmp,
		    const void *buf, size_t len, mode_t mode, unsigned flags, struct mr_error *err)
{
	struct mr_publish p;
	int rc = -1;

	if (mr_publish_begin(&p, dirfd, show, name, tmp, mode,
			     flags & ~(unsigned)MR_PUBLISH_KEEP_OPEN, err) < 0)
		goto out;
	if (mr_publish_write(&p, buf, len, err) < 0 || mr_publish_commit(&p, err) < 0)
		goto out;
	rc = 0;
out:
	mr_publish_abort(&p);
	return rc;
}
