/*
 * backup.c: one user folder of the source -> a pax archive (the daily
 * backup side, and the fixtures of the tests and the demo).
 *
 * The tree is walked below the held user fd with openat(O_NOFOLLOW) in
 * sorted order, so the same tree gives the same archive. Entries are
 * written with full pax headers: restricted pax drops sub-second mtimes
 * unless some other field needs an extension, and restore compares
 * nanoseconds. Hard links are found by (dev, ino) with libarchive's link
 * resolver. What can't be read is recorded and left out.
 */
#include "restore/restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Files up to this size are read whole before their header is written,
 * so a read error leaves them out cleanly; bigger ones are streamed. */
#define WHOLE_READ_MAX (64ULL * 1024 * 1024)
#define CHUNK (256 * 1024)

struct bctx {
	struct archive *a;
	struct archive_entry_linkresolver *links;
	struct restore_stats *st;
	struct mr_problems *pb;
	struct mr_error *err;
	int out_fd;
	int left_out;
	char *buf;
	size_t bufcap;
};

int restore_compression_parse(const char *name, enum restore_compression *c_r)
{
	if (strcmp(name, "lz4") == 0)
		*c_r = RESTORE_COMPRESS_LZ4;
	else if (strcmp(name, "zstd") == 0)
		*c_r = RESTORE_COMPRESS_ZSTD;
	else if (strcmp(name, "gzip") == 0)
		*c_r = RESTORE_COMPRESS_GZIP;
	else if (strcmp(name, "none") == 0)
		*c_r = RESTORE_COMPRESS_NONE;
	else
		return -1;
	return 0;
}

const char *restore_compression_suffix(enum restore_compression c)
{
	switch (c) {
	case RESTORE_COMPRESS_LZ4:
		return ".tar.lz4";
	case RESTORE_COMPRESS_ZSTD:
		return ".tar.zst";
	case RESTORE_COMPRESS_GZIP:
		return ".tar.gz";
	case RESTORE_COMPRESS_NONE:
		return ".tar";
	}
	return ".tar";
}

static la_ssize_t out_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	struct bctx *b = arg;

	if (mr_write_all(b->out_fd, buf, len) < 0) {
		int e = errno;

		mr_error_set(b->err, e, "write(archive) failed");
		archive_set_error(a, e, "write failed");
		return -1;
	}
	return (la_ssize_t)len;
}

static void unreadable(struct bctx *b, int errnum, const char *path, const char *call)
{
	b->left_out = 1;
	mr_problems_add(b->pb, MR_PROBLEM_UNREADABLE, errnum, path, "%s(%s) failed: %s", call,
			path[0] ? path : ".", strerror(errnum));
}

/* Writes e's header; -1 with err on a write failure. */
static int put_header(struct bctx *b, struct archive_entry *e)
{
	int r = archive_write_header(b->a, e);

	if (r < ARCHIVE_WARN) {
		if (b->err->msg[0] == '\0')
			mr_error_set(b->err, archive_errno(b->a), "archive_write_header(%s) failed: %s",
				     archive_entry_pathname(e), archive_error_string(b->a));
		return -1;
	}
	return 0;
}

static int put_data(struct bctx *b, const void *buf, size_t len, const char *path)
{
	if (len > 0 && archive_write_data(b->a, buf, len) < 0) {
		if (b->err->msg[0] == '\0')
			mr_error_set(b->err, archive_errno(b->a), "archive_write_data(%s) failed: %s",
				     path, archive_error_string(b->a));
		return -1;
	}
	return 0;
}

static struct archive_entry *new_entry(const char *path, const struct stat *sb)
{
	struct archive_entry *e = archive_entry_new();

	if (e == NULL)
		return NULL;
	archive_entry_copy_pathname(e, path);
	archive_entry_copy_stat(e, sb);
	/* Only mtime matters to restore; fewer pax records per entry. */
	archive_entry_unset_atime(e);
	archive_entry_unset_ctime(e);
	archive_entry_unset_birthtime(e);
	return e;
}

/* Reads the open file fd of size into b->buf. 0, or -1 with errno. */
static int read_whole(struct bctx *b, int fd, size_t size, size_t *got_r)
{
	ssize_t n;

	if (size + 1 > b->bufcap) {
		char *nb = realloc(b->buf, size + 1);
		if (nb == NULL)
			return -1;
		b->buf = nb;
		b->bufcap = size + 1;
	}
	/* One byte more tells a file that grew since fstat. */
	n = mr_read_full(fd, b->buf, size + 1);
	if (n < 0)
		return -1;
	*got_r = (size_t)n;
	return 0;
}

static int put_file(struct bctx *b, int dirfd, const char *name, const char *path)
{
	struct archive_entry *e = NULL, *spare = NULL;
	struct stat sb;
	int fd, rc = -1;
	size_t got = 0;

	fd = mr_io->openat(dirfd, name, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0) {
		unreadable(b, errno, path, "openat");
		return 0;
	}
	if (mr_io->fstat(fd, &sb) < 0) {
		unreadable(b, errno, path, "fstat");
		rc = 0;
		goto out;
	}
	if ((uint64_t)sb.st_size <= WHOLE_READ_MAX && sb.st_nlink <= 1) {
		if (read_whole(b, fd, (size_t)sb.st_size, &got) < 0) {
			unreadable(b, errno, path, "read");
			rc = 0;
			goto out;
		}
		/* Record what was read: a file that changed size while being
		 * read is taken as it was read. */
		sb.st_size = (off_t)(got > (size_t)sb.st_size ? (size_t)sb.st_size : got);
	}
	e = new_entry(path, &sb);
	if (e == NULL) {
		mr_error_set(b->err, ENOMEM, "archive_entry_new");
		goto out;
	}
	archive_entry_linkify(b->links, &e, &spare);
	if (put_header(b, e) < 0)
		goto out;
	if (archive_entry_hardlink(e) != NULL) {
		b->st->hardlinks++;
		rc = 0;
		goto out;
	}
	b->st->files++;
	if ((uint64_t)sb.st_size <= WHOLE_READ_MAX && sb.st_nlink <= 1) {
		if (put_data(b, b->buf, (size_t)sb.st_size, path) < 0)
			goto out;
		b->st->bytes += (uint64_t)sb.st_size;
	} else {
		off_t left = sb.st_size;

		if (b->bufcap < CHUNK) {
			char *nb = realloc(b->buf, CHUNK);
			if (nb == NULL) {
				mr_error_set(b->err, ENOMEM, "read buffer");
				goto out;
			}
			b->buf = nb;
			b->bufcap = CHUNK;
		}
		while (left > 0) {
			size_t want = left < CHUNK ? (size_t)left : CHUNK;
			ssize_t n = mr_read_full(fd, b->buf, want);

			if (n <= 0) {
				/* The header is out already: the entry is padded
				 * with zeros by libarchive and reported. */
				unreadable(b, n < 0 ? errno : EIO, path, "read");
				break;
			}
			if (put_data(b, b->buf, (size_t)n, path) < 0)
				goto out;
			b->st->bytes += (uint64_t)n;
			left -= n;
		}
	}
	rc = 0;
out:
	archive_entry_free(e);
	archive_entry_free(spare);
	mr_close(fd);
	return rc;
}

static int put_symlink(struct bctx *b, int dirfd, const char *name, const char *path,
		       const struct stat *sb)
{
	struct archive_entry *e;
	char target[4096];
	ssize_t n;
	int rc = -1;

	n = mr_io->readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n < 0) {
		unreadable(b, errno, path, "readlinkat");
		return 0;
	}
	target[n] = '\0';
	e = new_entry(path, sb);
	if (e == NULL) {
		mr_error_set(b->err, ENOMEM, "archive_entry_new");
		return -1;
	}
	archive_entry_copy_symlink(e, target);
	archive_entry_set_size(e, 0);
	if (put_header(b, e) == 0) {
		b->st->symlinks++;
		rc = 0;
	}
	archive_entry_free(e);
	return rc;
}

/* One folder of the walk: its sorted listing. */
struct bframe {
	struct mr_dirlist list;
	size_t i;
	int listed, skip;
};

static void bframe_free(void *p)
{
	mr_dirlist_free(&((struct bframe *)p)->list);
}

/* Writes the header of the top folder of w and lists it into f. 0 (a
 * folder that can't be read is recorded and left out: f->skip), or -1. */
static int enter_dir(struct bctx *b, struct mr_walk *w, struct bframe *f)
{
	const char *path = mr_walk_path(w);
	int dirfd = mr_walk_fd(w, 0);
	struct mr_error lerr;
	struct archive_entry *e;
	struct stat sb;
	int rc;

	f->listed = 1;
	if (mr_io->fstat(dirfd, &sb) < 0) {
		unreadable(b, errno, path, "fstat");
		f->skip = 1;
		return 0;
	}
	if (mr_listdir(dirfd, &f->list, &lerr) < 0) {
		b->left_out = 1;
		mr_problems_add(b->pb, MR_PROBLEM_UNREADABLE, lerr.errnum, path, "listing %s: %s",
				path[0] ? path : ".", lerr.msg);
		f->skip = 1;
		return 0;
	}
	e = new_entry(path[0] ? path : ".", &sb);
	if (e == NULL) {
		mr_error_set(b->err, ENOMEM, "archive_entry_new");
		return -1;
	}
	if (path[0] == '\0')
		archive_entry_copy_pathname(e, "./");
	rc = put_header(b, e);
	archive_entry_free(e);
	if (rc < 0)
		return -1;
	b->st->dirs++;
	return 0;
}

/* Writes entry name of the top folder of w (archive path cpath). 0, 1
 * when it is a folder the walk has entered, -1 with b->err. */
static int put_entry(struct bctx *b, struct mr_walk *w, const char *name, const char *cpath)
{
	int dirfd = mr_walk_fd(w, 0);
	struct stat csb;

	if (mr_io->fstatat(dirfd, name, &csb, AT_SYMLINK_NOFOLLOW) < 0) {
		unreadable(b, errno, cpath, "fstatat");
		return 0;
	}
	if (S_ISDIR(csb.st_mode)) {
		int fds[MR_WALK_SIDES] = { -1, -1 };

		fds[0] = mr_walk_openat(w, 0, name);
		if (fds[0] < 0) {
			unreadable(b, errno, cpath, "openat");
			return 0;
		}
		return mr_walk_push(w, name, fds, b->err) < 0 ? -1 : 1;
	}
	if (S_ISREG(csb.st_mode))
		return put_file(b, dirfd, name, cpath);
	if (S_ISLNK(csb.st_mode))
		return put_symlink(b, dirfd, name, cpath, &csb);
	b->left_out = 1;
	mr_problems_add(b->pb, MR_PROBLEM_OTHER, 0, cpath,
			"special file (device, FIFO or socket) left out");
	return 0;
}

/* Writes the folder dirfd and everything below it, folders before their
 * entries, each folder in sorted order; without recursion (struct
 * mr_walk), so the depth of the tree costs neither stack nor descriptors. */
static int put_tree(struct bctx *b, int dirfd)
{
	int roots[MR_WALK_SIDES] = { dirfd, -1 };
	struct mr_walk *w;
	int rc = -1;

	w = mr_walk_new(roots, 1, "", sizeof(struct bframe), bframe_free, 0, b->err);
	if (w == NULL)
		return -1;
	for (;;) {
		struct bframe *f = mr_walk_frame(w);
		const char *path, *name;
		char *cpath;
		int r;

		if (!f->listed && enter_dir(b, w, f) < 0)
			goto out;
		if (f->skip || f->i == f->list.n) {
			if (mr_walk_depth(w) == 0)
				break;
			if (mr_walk_pop(w, b->err) < 0)
				goto out;
			continue;
		}
		name = f->list.v[f->i++].name;
		path = mr_walk_path(w);
		if (path[0] == '\0')
			cpath = strdup(name);
		else if (asprintf(&cpath, "%s/%s", path, name) < 0)
			cpath = NULL;
		if (cpath == NULL) {
			mr_error_set(b->err, ENOMEM, "path");
			goto out;
		}
		r = put_entry(b, w, name, cpath);
		free(cpath);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	mr_walk_free(&w);
	return rc;
}

int restore_backup_user_stats(int user_dirfd, int out_fd, enum restore_compression c,
			      struct restore_stats *stats, struct mr_problems *problems,
			      struct mr_error *err)
{
	struct restore_stats dummy;
	struct bctx b;
	int r, rc = -1;

	if (stats == NULL)
		stats = &dummy;
	memset(stats, 0, sizeof(*stats));
	memset(&b, 0, sizeof(b));
	b.st = stats;
	b.pb = problems;
	b.err = err;
	b.out_fd = out_fd;
	mr_error_clear(err);

	b.a = archive_write_new();
	b.links = archive_entry_linkresolver_new();
	if (b.a == NULL || b.links == NULL) {
		mr_error_set(err, ENOMEM, "archive_write_new failed");
		goto out;
	}
	archive_entry_linkresolver_set_strategy(b.links, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE);
	r = archive_write_set_format_pax(b.a);
	switch (c) {
	case RESTORE_COMPRESS_LZ4:
		if (r == ARCHIVE_OK)
			r = archive_write_add_filter_lz4(b.a);
		/* 64 KiB blocks instead of 4 MiB: a truncated backup
		 * still gives up everything before the cut. */
		if (r == ARCHIVE_OK)
			r = archive_write_set_filter_option(b.a, "lz4", "block-size", "4");
		break;
	case RESTORE_COMPRESS_ZSTD:
		if (r == ARCHIVE_OK)
			r = archive_write_add_filter_zstd(b.a);
		break;
	case RESTORE_COMPRESS_GZIP:
		if (r == ARCHIVE_OK)
			r = archive_write_add_filter_gzip(b.a);
		break;
	case RESTORE_COMPRESS_NONE:
		break;
	}
	if (r != ARCHIVE_OK) {
		mr_error_set(err, 0, "setting up the archive writer failed: %s",
			     archive_error_string(b.a));
		goto out;
	}
	archive_write_set_bytes_in_last_block(b.a, 1);
	if (archive_write_open2(b.a, &b, NULL, out_write, NULL, NULL) != ARCHIVE_OK) {
		if (err->msg[0] == '\0')
			mr_error_set(err, archive_errno(b.a), "archive_write_open failed: %s",
				     archive_error_string(b.a));
		goto out;
	}
	if (put_tree(&b, user_dirfd) < 0)
		goto out;
	if (archive_write_close(b.a) != ARCHIVE_OK) {
		if (err->msg[0] == '\0')
			mr_error_set(err, archive_errno(b.a), "archive_write_close failed: %s",
				     archive_error_string(b.a));
		goto out;
	}
	rc = b.left_out ? 1 : 0;
out:
	if (b.a != NULL)
		archive_write_free(b.a);
	archive_entry_linkresolver_free(b.links);
	free(b.buf);
	return rc;
}

int restore_backup_user(int user_dirfd, int out_fd, enum restore_compression c,
			struct mr_problems *problems, struct mr_error *err)
{
	return restore_backup_user_stats(user_dirfd, out_fd, c, NULL, problems, err);
}
