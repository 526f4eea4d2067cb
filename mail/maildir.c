/*
 * maildir.c: delivery into a Maildir, the way qmail defined it and Dovecot's
 * maildir-save does it: the message is written under a unique name in tmp/,
 * fsync'd, hard-linked into new/ (a link fails instead of replacing a file
 * that happens to carry the same name; rename is the fallback on file
 * systems without hard links), new/ is fsync'd, and only then is the
 * delivery reported done. A failure anywhere removes what was written, so
 * -1 means "not delivered" and the mail transfer agent's retry cannot make
 * a double.
 */
#include "mail/mail.h"
#include "mail/mail_private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static const char *const subdir_names[3] = { "tmp", "new", "cur" };

/* Per-process delivery counter: with the pid and the microsecond it makes
 * names unique even for several deliveries within one microsecond. */
static atomic_uint_fast64_t deliver_counter;

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static char host_name[1024];

/* The host name as Maildir wants it in a file name: '/' and ':' would end
 * a path component or start the info part, so they are written as the
 * octal escapes "\057" and "\072" (what Dovecot and qmail do). */
static void host_init(void)
{
	char raw[256];
	size_t i, pos = 0;

	if (gethostname(raw, sizeof(raw)) < 0 || raw[0] == '\0')
		snprintf(raw, sizeof(raw), "localhost");
	raw[sizeof(raw) - 1] = '\0';
	for (i = 0; raw[i] != '\0' && pos + 5 < sizeof(host_name); i++) {
		if (raw[i] == '/') {
			memcpy(host_name + pos, "\\057", 4);
			pos += 4;
		} else if (raw[i] == ':') {
			memcpy(host_name + pos, "\\072", 4);
			pos += 4;
		} else {
			host_name[pos++] = raw[i];
		}
	}
	host_name[pos] = '\0';
}

void mail_maildir_close(int fds[3])
{
	int i;

	for (i = 0; i < 3; i++) {
		mr_close(fds[i]);
		fds[i] = -1;
	}
}

int mail_maildir_fill(int *fd, const char *name, const struct maildir_owner *owner,
		      const void *msg, size_t len, const struct timespec *mtime,
		      struct mr_error *err)
{
	int c;

	if (owner->chown &&
	    mr_io->fchownat(*fd, "", owner->uid, owner->gid, AT_EMPTY_PATH) < 0) {
		mr_error_set(err, errno, "fchown(tmp/%s) failed", name);
		return -1;
	}
	if (mr_write_all(*fd, msg, len) < 0) {
		mr_error_set(err, errno, "write(tmp/%s) failed", name);
		return -1;
	}
	if (mtime != NULL) {
		struct timespec ts[2] = { *mtime, *mtime };

		if (mr_io->futimens(*fd, ts) < 0) {
			mr_error_set(err, errno, "futimens(tmp/%s) failed", name);
			return -1;
		}
	}
	if (mr_io->fsync(*fd) < 0) {
		mr_error_set(err, errno, "fsync(tmp/%s) failed", name);
		return -1;
	}
	c = mr_io->close(*fd);
	*fd = -1;
	if (c < 0) {
		mr_error_set(err, errno, "close(tmp/%s) failed", name);
		return -1;
	}
	return 0;
}

int mail_maildir_open(int maildir_fd, int fds_r[3], struct maildir_owner *owner_r,
		      struct mr_error *err)
{
	struct stat st;
	int i, created = 0;

	for (i = 0; i < 3; i++)
		fds_r[i] = -1;
	if (mr_io->fstat(maildir_fd, &st) < 0) {
		mr_error_set(err, errno, "fstat(maildir) failed");
		return -1;
	}
	owner_r->uid = st.st_uid;
	owner_r->gid = st.st_gid;
	owner_r->chown = geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0);
	for (i = 0; i < 3; i++) {
		if (mr_io->mkdirat(maildir_fd, subdir_names[i], 0700) == 0) {
			created = 1;
			if (owner_r->chown &&
			    mr_io->fchownat(maildir_fd, subdir_names[i], st.st_uid, st.st_gid,
					    AT_SYMLINK_NOFOLLOW) < 0) {
				mr_error_set(err, errno, "chown(%s) failed", subdir_names[i]);
				goto fail;
			}
		} else if (errno != EEXIST) {
			mr_error_set(err, errno, "mkdirat(%s) failed", subdir_names[i]);
			goto fail;
		}
		fds_r[i] = mr_io->openat(maildir_fd, subdir_names[i],
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (fds_r[i] < 0) {
			mr_error_set(err, errno, "openat(%s) failed", subdir_names[i]);
			goto fail;
		}
	}
	/* A folder just made exists durably only once its parent is synced. */
	if (created && mr_io->fsync(maildir_fd) < 0) {
		mr_error_set(err, errno, "fsync(maildir) failed");
		goto fail;
	}
	return 0;
fail:
	mail_maildir_close(fds_r);
	return -1;
}

int mail_deliver_maildir(int maildir_fd, const void *msg, size_t len, char *name_r,
			 size_t name_len, struct mr_error *err)
{
	int dirs[3] = { -1, -1, -1 }, fd = -1, rc = -1, in_tmp = 0, in_new = 0, linked = 0;
	struct maildir_owner owner;
	char name[1400];
	int attempt;

	pthread_once(&host_once, host_init);
	if (mail_maildir_open(maildir_fd, dirs, &owner, err) < 0)
		goto out;

	for (attempt = 0; ; attempt++) {
		struct timespec ts;
		unsigned long long q = (unsigned long long)atomic_fetch_add(&deliver_counter, 1);

		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(name, sizeof(name), "%lld.M%06ldP%ldQ%llu.%s,S=%zu",
			 (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), q,
			 host_name, len);
		fd = mr_io->openat(dirs[MAILDIR_TMP], name,
				   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		/* Only a leftover of an earlier process with our pid can
		 * collide; the counter moves us past it. */
		if (errno != EEXIST || attempt == 100) {
			mr_error_set(err, errno, "openat(tmp/%s) failed", name);
			goto out;
		}
	}
	in_tmp = 1;
	if (mail_maildir_fill(&fd, name, &owner, msg, len, NULL, err) < 0)
		goto out;

	if (mr_io->linkat(dirs[MAILDIR_TMP], name, dirs[MAILDIR_NEW], name, 0) == 0) {
		linked = 1;
	} else if (errno == EPERM || errno == ENOTSUP || errno == EMLINK || errno == ENOSYS) {
		/* No hard links here (some FUSE and network file systems). */
		if (mr_io->renameat(dirs[MAILDIR_TMP], name, dirs[MAILDIR_NEW], name) < 0) {
			mr_error_set(err, errno, "rename(tmp/%s, new/%s) failed", name, name);
			goto out;
		}
		in_tmp = 0;
	} else {
		mr_error_set(err, errno, "link(tmp/%s, new/%s) failed", name, name);
		goto out;
	}
	in_new = 1;
	if (mr_io->fsync(dirs[MAILDIR_NEW]) < 0) {
		mr_error_set(err, errno, "fsync(new) failed");
		goto out;
	}
	if (name_r != NULL && name_len > 0)
		snprintf(name_r, name_len, "%s", name);
	rc = 0;
out:
	mr_close(fd);
	if (rc < 0 && in_new)
		(void)mr_io->unlinkat(dirs[MAILDIR_NEW], name, 0);
	if (in_tmp && mr_io->unlinkat(dirs[MAILDIR_TMP], name, 0) < 0 && rc == 0 && linked)
		/* The message is safe in new/; a stray link in tmp/ is only
		 * clutter that Maildir readers clean up after 36 hours. */
		mr_log("unlink(tmp/%s) after delivery failed: %s", name, strerror(errno));
	mail_maildir_close(dirs);
	return rc;
}

struct find {
	int dirfd;
	const char *sub;
	uint64_t hash, len, since_ns;
	int found;
	struct mr_error *err;
};

/* Hashes the file name below dirfd; 1 when it is the message sought. */
static int find_entry(void *arg, const char *name, unsigned char type, uint64_t ino)
{
	struct find *fi = arg;
	char tag[32];
	const char *p;
	struct stat st;
	XXH3_state_t *xs = NULL;
	char buf[65536];
	uint64_t left;
	int fd = -1, rc = 0;

	(void)type;
	(void)ino;
	snprintf(tag, sizeof(tag), ",S=%llu", (unsigned long long)fi->len);
	p = strstr(name, tag);
	if (p == NULL || (p[strlen(tag)] != '\0' && p[strlen(tag)] != ',' && p[strlen(tag)] != ':'))
		return 0;
	fd = mr_io->openat(fi->dirfd, name, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return 0;  /* moved or expunged meanwhile: not this one */
	if (mr_io->fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != fi->len ||
	    (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec + 1000000000ull <
		    fi->since_ns)
		goto out;
	xs = XXH3_createState();
	if (xs == NULL || XXH3_64bits_reset(xs) != XXH_OK) {
		mr_error_set(fi->err, ENOMEM, "XXH3_createState failed");
		rc = -1;
		goto out;
	}
	for (left = fi->len; left > 0;) {
		ssize_t n = mr_read_full(fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));

		if (n < 0) {
			mr_error_set(fi->err, errno, "read(%s/%s) failed", fi->sub, name);
			rc = -1;
			goto out;
		}
		if (n == 0)
			goto out;
		XXH3_64bits_update(xs, buf, (size_t)n);
		left -= (uint64_t)n;
	}
	if (XXH3_64bits_digest(xs) == fi->hash) {
		fi->found = 1;
		rc = 1;
	}
out:
	XXH3_freeState(xs);
	mr_close(fd);
	return rc;
}

int mail_maildir_find(int maildir_fd, uint64_t hash, uint64_t len, uint64_t since_ns,
		      struct mr_error *err)
{
	static const char *const subs[2] = { "new", "cur" };
	int i;

	for (i = 0; i < 2; i++) {
		struct find fi = { -1, subs[i], hash, len, since_ns, 0, err };
		int r;

		fi.dirfd = mr_io->openat(maildir_fd, subs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (fi.dirfd < 0) {
			if (errno == ENOENT)
				continue;
			mr_error_set(err, errno, "openat(%s) failed", subs[i]);
			return -1;
		}
		r = mr_scandir(fi.dirfd, find_entry, &fi, err);
		mr_close(fi.dirfd);
		if (r < 0)
			return -1;
		if (fi.found)
			return 1;
	}
	return 0;
}
