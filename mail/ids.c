/*
 * ids.c: the delivery ids a mail transfer agent gave, so a delivery it
 * repeats (its confirmation was lost, the daemon was killed between writing
 * the message and answering) is recognised and not stored twice.
 *
 * <state>/ids/<user> is an append-only file: a 16-byte header, then records
 * of 56 bytes, each with its own checksum, so a torn tail (a crash in the
 * middle of an append) is recognised and cut off before the next append.
 * A delivery appends "begin" (fsync'd) before the message is written and
 * "done" (fsync'd) after it is safe; see mail.h for why that order never
 * loses a message and doubles one only if the proof of the first copy is
 * gone. Records older than MAIL_IDS_KEEP_SECONDS are ignored and dropped at
 * the next compaction; the file never grows past IDS_MAX_RECORDS records.
 */
#include "mail/mail.h"
#include "mail/mail_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define IDS_MAGIC "MRID"
#define IDS_MAJOR 1
#define IDS_MINOR 0
#define IDS_HEADER_SIZE 16
#define IDS_RECORD_SIZE 56
/* 8192 records of 56 bytes: under half a MiB per user. When full, the older
 * half is dropped (expired ones first: they are the oldest). */
#define IDS_MAX_RECORDS 8192
#define IDS_COMPACT_AT 1024   /* records before an expired one is worth a rewrite */

enum { REC_BEGIN = 1, REC_DONE = 2 };

struct mail_ids {
	int dir_fd;  /* <state>/ids */
};

struct rec {
	uint32_t kind;
	uint64_t time_ns;
	uint64_t id_lo, id_hi;
	uint64_t msg_hash, msg_len;
};

static void header_encode(unsigned char out[IDS_HEADER_SIZE])
{
	memcpy(out, IDS_MAGIC, 4);
	mr_put_le(out + 4, IDS_MAJOR, 2);
	mr_put_le(out + 6, IDS_MINOR, 2);
	mr_put_le(out + 8, IDS_HEADER_SIZE, 4);
	mr_put_le(out + 12, (uint32_t)XXH3_64bits(out, 12), 4);
}

static void rec_encode(unsigned char out[IDS_RECORD_SIZE], const struct rec *r)
{
	mr_put_le(out, r->kind, 4);
	mr_put_le(out + 4, 0, 4);
	mr_put_le(out + 8, r->time_ns, 8);
	mr_put_le(out + 16, r->id_lo, 8);
	mr_put_le(out + 24, r->id_hi, 8);
	mr_put_le(out + 32, r->msg_hash, 8);
	mr_put_le(out + 40, r->msg_len, 8);
	mr_put_le(out + 48, XXH3_64bits(out, 48), 8);
}

/* 1 with *r when the record checks out, else 0. */
static int rec_decode(const unsigned char *in, struct rec *r)
{
	if (XXH3_64bits(in, 48) != mr_get_le(in + 48, 8))
		return 0;
	r->kind = (uint32_t)mr_get_le(in, 4);
	if (r->kind != REC_BEGIN && r->kind != REC_DONE)
		return 0;
	r->time_ns = mr_get_le(in + 8, 8);
	r->id_lo = mr_get_le(in + 16, 8);
	r->id_hi = mr_get_le(in + 24, 8);
	r->msg_hash = mr_get_le(in + 32, 8);
	r->msg_len = mr_get_le(in + 40, 8);
	return 1;
}

int mail_ids_open(int state_dirfd, struct mail_ids **ids_r, struct mr_error *err)
{
	struct mail_ids *ids = NULL;
	int fd = -1;

	*ids_r = NULL;
	if (mr_io->mkdirat(state_dirfd, "ids", 0700) == 0) {
		if (mr_io->fsync(state_dirfd) < 0) {
			mr_error_set(err, errno, "fsync(state) failed");
			return -1;
		}
	} else if (errno != EEXIST) {
		mr_error_set(err, errno, "mkdirat(ids) failed");
		return -1;
	}
	fd = mr_io->openat(state_dirfd, "ids", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0) {
		mr_error_set(err, errno, "openat(ids) failed");
		return -1;
	}
	ids = calloc(1, sizeof(*ids));
	if (ids == NULL) {
		mr_error_set(err, ENOMEM, "calloc(mail_ids) failed");
		mr_close(fd);
		return -1;
	}
	ids->dir_fd = fd;
	*ids_r = ids;
	return 0;
}

void mail_ids_close(struct mail_ids **ids)
{
	if (ids == NULL || *ids == NULL)
		return;
	mr_close((*ids)->dir_fd);
	free(*ids);
	*ids = NULL;
}

/* One user's file, read: the open fd, its records (the good prefix) and the
 * offset where the next record goes. */
struct idfile {
	int fd;
	struct rec *v;
	size_t n;
	off_t end;
};

static void idfile_free(struct idfile *f)
{
	mr_close(f->fd);
	f->fd = -1;
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

/* Opens (creating) ids/<user> and reads it. A file with a damaged header is
 * moved aside (ids/.damaged.<user>, for the operator) and started afresh:
 * refusing mail because the ids are unreadable would be worse than the
 * small risk of a double. 0 or -1 with err (EPROTONOSUPPORT: a newer major
 * version, left alone). */
static int idfile_open(struct mail_ids *ids, const char *user, struct idfile *f,
		       struct mr_error *err)
{
	unsigned char head[IDS_HEADER_SIZE], buf[IDS_RECORD_SIZE];
	struct stat st;
	ssize_t n;
	size_t cap = 0;
	off_t off;
	int fresh = 0;

	f->fd = -1;
	f->v = NULL;
	f->n = 0;
again:
	f->fd = mr_io->openat(ids->dir_fd, user, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		mr_error_set(err, errno, "openat(ids/%s) failed", user);
		return -1;
	}
	if (mr_io->fstat(f->fd, &st) < 0) {
		mr_error_set(err, errno, "fstat(ids/%s) failed", user);
		goto fail;
	}
	if (st.st_size == 0) {
		header_encode(head);
		if (mr_pwrite_all(f->fd, head, sizeof(head), 0) < 0 || mr_io->fsync(f->fd) < 0) {
			mr_error_set(err, errno, "write(ids/%s) failed", user);
			goto fail;
		}
		if (mr_io->fsync(ids->dir_fd) < 0) {
			mr_error_set(err, errno, "fsync(ids) failed");
			goto fail;
		}
		f->end = IDS_HEADER_SIZE;
		return 0;
	}
	n = mr_pread_full(f->fd, head, sizeof(head), 0);
	if (n < 0) {
		mr_error_set(err, errno, "read(ids/%s) failed", user);
		goto fail;
	}
	if (n == (ssize_t)sizeof(head) && memcmp(head, IDS_MAGIC, 4) == 0 &&
	    mr_get_le(head + 4, 2) != IDS_MAJOR) {
		mr_error_set(err, EPROTONOSUPPORT, "ids/%s: unsupported format %u.%u", user,
			     (unsigned)mr_get_le(head + 4, 2), (unsigned)mr_get_le(head + 6, 2));
		goto fail;
	}
	if (n != (ssize_t)sizeof(head) || memcmp(head, IDS_MAGIC, 4) != 0 ||
	    mr_get_le(head + 8, 4) != IDS_HEADER_SIZE ||
	    mr_get_le(head + 12, 4) != (uint32_t)XXH3_64bits(head, 12)) {
		char aside[MR_USER_NAME_MAX + 16];

		if (fresh) {
			mr_error_set(err, EBADMSG, "ids/%s: damaged header", user);
			goto fail;
		}
		/* A leading '.' keeps it apart from every user name. */
		snprintf(aside, sizeof(aside), ".damaged.%s", user);
		mr_log("ids/%s: damaged header, moved to ids/%s; starting afresh", user, aside);
		if (mr_io->renameat(ids->dir_fd, user, ids->dir_fd, aside) < 0) {
			mr_error_set(err, errno, "rename(ids/%s, ids/%s) failed", user, aside);
			goto fail;
		}
		mr_close(f->fd);
		fresh = 1;
		goto again;
	}
	for (off = IDS_HEADER_SIZE; off + IDS_RECORD_SIZE <= st.st_size; off += IDS_RECORD_SIZE) {
		struct rec r;

		n = mr_pread_full(f->fd, buf, sizeof(buf), off);
		if (n < 0) {
			mr_error_set(err, errno, "read(ids/%s) failed", user);
			goto fail;
		}
		if (n != (ssize_t)sizeof(buf) || !rec_decode(buf, &r))
			break;  /* a torn tail: what follows is cut off */
		if (f->n == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct rec *nv = realloc(f->v, ncap * sizeof(*nv));

			if (nv == NULL) {
				mr_error_set(err, ENOMEM, "realloc(ids/%s) failed", user);
				goto fail;
			}
			f->v = nv;
			cap = ncap;
		}
		f->v[f->n++] = r;
	}
	f->end = off;
	if (off != st.st_size && mr_io->ftruncate(f->fd, off) < 0) {
		mr_error_set(err, errno, "ftruncate(ids/%s) failed", user);
		goto fail;
	}
	return 0;
fail:
	idfile_free(f);
	return -1;
}

static void id_hash(const char *id, uint64_t *lo_r, uint64_t *hi_r)
{
	XXH128_hash_t h = XXH3_128bits(id, strlen(id));

	*lo_r = h.low64;
	*hi_r = h.high64;
}

/* Rewrites ids/<user> with the records of f that have not expired (at most
 * the newest IDS_MAX_RECORDS / 2 of them): temp file, fsync, rename, fsync
 * of ids/. f then describes the new file. 0 or -1 with err. */
static int idfile_compact(struct mail_ids *ids, const char *user, struct idfile *f,
			  uint64_t now_ns, struct mr_error *err)
{
	uint64_t keep_ns = (uint64_t)MAIL_IDS_KEEP_SECONDS * 1000000000ull;
	char tmp[MR_USER_NAME_MAX + 16];
	unsigned char buf[IDS_RECORD_SIZE], head[IDS_HEADER_SIZE];
	size_t first = 0, i, kept = 0;
	off_t off = IDS_HEADER_SIZE;
	int fd = -1;

	while (first < f->n && f->v[first].time_ns + keep_ns < now_ns)
		first++;
	if (f->n - first > IDS_MAX_RECORDS / 2)
		first = f->n - IDS_MAX_RECORDS / 2;
	/* No user name starts with '.': "bob.tmp" may be a user. */
	snprintf(tmp, sizeof(tmp), ".tmp.%s", user);
	(void)mr_io->unlinkat(ids->dir_fd, tmp, 0);
	fd = mr_io->openat(ids->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			   0600);
	if (fd < 0) {
		mr_error_set(err, errno, "openat(ids/%s) failed", tmp);
		return -1;
	}
	header_encode(head);
	if (mr_pwrite_all(fd, head, sizeof(head), 0) < 0)
		goto werr;
	for (i = first; i < f->n; i++) {
		rec_encode(buf, &f->v[i]);
		if (mr_pwrite_all(fd, buf, sizeof(buf), off) < 0)
			goto werr;
		off += IDS_RECORD_SIZE;
		f->v[kept++] = f->v[i];
	}
	if (mr_io->fsync(fd) < 0)
		goto werr;
	if (mr_io->renameat(ids->dir_fd, tmp, ids->dir_fd, user) < 0) {
		mr_error_set(err, errno, "rename(ids/%s, ids/%s) failed", tmp, user);
		goto fail;
	}
	if (mr_io->fsync(ids->dir_fd) < 0) {
		mr_error_set(err, errno, "fsync(ids) failed");
		goto fail_renamed;
	}
	mr_close(f->fd);
	f->fd = fd;
	f->n = kept;
	f->end = off;
	return 0;
werr:
	mr_error_set(err, errno, "write(ids/%s) failed", tmp);
fail:
	(void)mr_io->unlinkat(ids->dir_fd, tmp, 0);
fail_renamed:
	mr_close(fd);
	return -1;
}

static int idfile_append(struct idfile *f, const char *user, const struct rec *r,
			 struct mr_error *err)
{
	unsigned char buf[IDS_RECORD_SIZE];

	rec_encode(buf, r);
	if (mr_pwrite_all(f->fd, buf, sizeof(buf), f->end) < 0) {
		mr_error_set(err, errno, "write(ids/%s) failed", user);
		return -1;
	}
	if (mr_io->fsync(f->fd) < 0) {
		mr_error_set(err, errno, "fsync(ids/%s) failed", user);
		return -1;
	}
	f->end += IDS_RECORD_SIZE;
	return 0;
}

/* Checks user and id, opens the user's file into f and starts record r
 * with the id's hash. 0, or -1 with err (then f holds nothing). */
static int id_open(struct mail_ids *ids, const char *user, const char *id, struct idfile *f,
		   struct rec *r, struct mr_error *err)
{
	if (mail_check_user(user, err) < 0)
		return -1;
	if (id == NULL || id[0] == '\0') {
		mr_error_set(err, EINVAL, "empty delivery id");
		return -1;
	}
	if (idfile_open(ids, user, f, err) < 0)
		return -1;
	memset(r, 0, sizeof(*r));
	id_hash(id, &r->id_lo, &r->id_hi);
	return 0;
}

int mail_id_begin(struct mail_ids *ids, const char *user, const char *id, const void *msg,
		  size_t len, uint64_t now_ns, enum mail_id_seen *seen_r,
		  struct mail_id_pending *pending_r, struct mr_error *err)
{
	uint64_t keep_ns = (uint64_t)MAIL_IDS_KEEP_SECONDS * 1000000000ull;
	struct idfile f = { -1, NULL, 0, 0 };
	struct rec r;
	size_t i;
	int rc = -1, begun = 0, done = 0;

	*seen_r = MAIL_ID_NEW;
	if (id_open(ids, user, id, &f, &r, err) < 0)
		return -1;
	for (i = 0; i < f.n; i++) {
		const struct rec *v = &f.v[i];

		if (v->id_lo != r.id_lo || v->id_hi != r.id_hi || v->time_ns + keep_ns < now_ns)
			continue;
		if (v->kind == REC_DONE) {
			done = 1;
		} else if (!begun) {
			begun = 1;
			if (pending_r) {
				pending_r->since_ns = v->time_ns;
				pending_r->msg_hash = v->msg_hash;
				pending_r->msg_len = v->msg_len;
			}
		}
	}
	if (done) {
		*seen_r = MAIL_ID_DONE;
		rc = 0;
		goto out;
	}
	if (begun) {
		*seen_r = MAIL_ID_PENDING;
		rc = 0;
		goto out;
	}
	if (f.n >= IDS_MAX_RECORDS ||
	    (f.n >= IDS_COMPACT_AT && f.v[0].time_ns + keep_ns < now_ns)) {
		if (idfile_compact(ids, user, &f, now_ns, err) < 0)
			goto out;
	}
	r.kind = REC_BEGIN;
	r.time_ns = now_ns;
	r.msg_hash = XXH3_64bits(msg, len);
	r.msg_len = len;
	if (idfile_append(&f, user, &r, err) < 0)
		goto out;
	rc = 0;
out:
	idfile_free(&f);
	return rc;
}

int mail_id_done(struct mail_ids *ids, const char *user, const char *id, uint64_t now_ns,
		 struct mr_error *err)
{
	struct idfile f = { -1, NULL, 0, 0 };
	struct rec r;
	int rc = -1;

	if (id_open(ids, user, id, &f, &r, err) < 0)
		return -1;
	r.kind = REC_DONE;
	r.time_ns = now_ns;
	rc = idfile_append(&f, user, &r, err);
	idfile_free(&f);
	return rc;
}
