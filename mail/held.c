/*
 * held.c: mail held for users who are not active yet, and its release.
 *
 * <state>/held/<user>/<seq>.mrmail holds one message each; seq is a
 * zero-padded 20-digit decimal so byte order is arrival order, and the next
 * one is 1 + the highest present (found by one getdents pass without
 * allocation). A file appears under its final name only complete and
 * fsync'd (temp file, fsync, rename, fsync of the folder), so a crash
 * leaves either nothing or the whole message. <state>/held/<user>.lock is
 * the flock that serializes hold and release across processes.
 *
 * Release writes each message into the Maildir under a name derived from
 * its arrival time and sequence number, so a release repeated after a
 * crash finds what it already wrote (in new/, or in cur/ once the user's
 * client saw it) and skips it: every message arrives once.
 */
#include "mail/mail.h"
#include "mail/mail_private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/statvfs.h>
#include <lz4frame.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define HELD_MAGIC "MRML"
#define HELD_MAJOR 1
#define HELD_MINOR 0
#define HELD_HEADER_SIZE 44  /* the 1.0 header, checksum included */
#define HELD_SUFFIX ".mrmail"
#define HELD_SEQ_DIGITS 20
#define HELD_NAME_LEN (HELD_SEQ_DIGITS + sizeof(HELD_SUFFIX) - 1)
#define TMP_PREFIX "tmp."

struct mail_store {
	int held_fd;  /* <state>/held */
	struct mail_limits limits;  /* as given (0: default) */
	/* Held messages and their bytes on disk over every user, counted
	 * once at the first hold and kept up to date by hold and release. */
	pthread_mutex_t mu;
	int totals_known;
	uint64_t total_count, total_bytes;
};

#define MIB (1024u * 1024)
#define DEFAULT_USER_MESSAGES 1000
#define DEFAULT_USER_BYTES (256u * MIB)
#define DEFAULT_TOTAL_MESSAGES 1000000
#define DEFAULT_RESERVE_MIN (64u * MIB)

struct held_header {
	uint16_t major, minor;
	uint32_t header_size;
	uint64_t arrival_ns;
	uint64_t msg_len;
	uint64_t msg_hash;
};

/* ---- the header ----------------------------------------------------- */

static void header_encode(unsigned char out[HELD_HEADER_SIZE], uint64_t arrival_ns,
			  uint64_t msg_len, uint64_t msg_hash)
{
	memcpy(out, HELD_MAGIC, 4);
	mr_put_le(out + 4, HELD_MAJOR, 2);
	mr_put_le(out + 6, HELD_MINOR, 2);
	mr_put_le(out + 8, HELD_HEADER_SIZE, 4);
	mr_put_le(out + 12, arrival_ns, 8);
	mr_put_le(out + 20, msg_len, 8);
	mr_put_le(out + 28, msg_hash, 8);
	mr_put_le(out + 36, XXH3_64bits(out, 36), 8);
}

/* Checks and decodes the header at the start of buf (len bytes, the whole
 * file). what names the file in err. 0, or -1 with err (EBADMSG for damage,
 * EPROTONOSUPPORT for a major version this code does not know). */
static int header_decode(const unsigned char *buf, size_t len, struct held_header *h,
			 const char *what, struct mr_error *err)
{
	if (len < 12 || memcmp(buf, HELD_MAGIC, 4) != 0) {
		mr_error_set(err, EBADMSG, "%s: not a held message (bad magic or truncated)", what);
		return -1;
	}
	h->major = (uint16_t)mr_get_le(buf + 4, 2);
	h->minor = (uint16_t)mr_get_le(buf + 6, 2);
	h->header_size = (uint32_t)mr_get_le(buf + 8, 4);
	if (h->major != HELD_MAJOR) {
		mr_error_set(err, EPROTONOSUPPORT, "%s: unsupported held mail format %u.%u",
			     what, h->major, h->minor);
		return -1;
	}
	/* Later minors may grow the header; its checksum stays its last
	 * 8 bytes, over everything before them. */
	if (h->header_size < HELD_HEADER_SIZE || h->header_size > len) {
		mr_error_set(err, EBADMSG, "%s: bad header size %u", what, h->header_size);
		return -1;
	}
	if (XXH3_64bits(buf, h->header_size - 8) != mr_get_le(buf + h->header_size - 8, 8)) {
		mr_error_set(err, EBADMSG, "%s: header checksum mismatch", what);
		return -1;
	}
	h->arrival_ns = mr_get_le(buf + 12, 8);
	h->msg_len = mr_get_le(buf + 20, 8);
	h->msg_hash = mr_get_le(buf + 28, 8);
	return 0;
}

/* ---- names and folders --------------------------------------------- */

/* Returns 1 and *seq_r when name is "<20 digits>.mrmail", else 0. */
static int parse_held_name(const char *name, uint64_t *seq_r)
{
	uint64_t seq = 0;
	int i;

	if (strlen(name) != HELD_NAME_LEN || strcmp(name + HELD_SEQ_DIGITS, HELD_SUFFIX) != 0)
		return 0;
	for (i = 0; i < HELD_SEQ_DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		if (seq > (UINT64_MAX - (uint64_t)(name[i] - '0')) / 10)
			return 0;
		seq = seq * 10 + (uint64_t)(name[i] - '0');
	}
	*seq_r = seq;
	return 1;
}

int mail_check_user(const char *user, struct mr_error *err)
{
	if (!mr_user_name_valid(user)) {
		/* The documented wording (mailrestore(8)), without strerror after it. */
		mr_error_set(err, 0, "invalid user name");
		if (err)
			err->errnum = EINVAL;
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* Opens held/<user>. With create, makes it (0700) when missing and fsyncs
 * held/ so the new folder is durable. Returns 1 with *fd_r, 0 when missing
 * (and not create), -1 with err. */
static int user_dir_open(struct mail_store *store, const char *user, int create, int *fd_r,
			 struct mr_error *err)
{
	int fd;

	*fd_r = -1;
	if (create) {
		if (mr_io->mkdirat(store->held_fd, user, 0700) == 0) {
			if (mr_io->fsync(store->held_fd) < 0) {
				mr_error_set(err, errno, "fsync(held) failed");
				return -1;
			}
		} else if (errno != EEXIST) {
			mr_error_set(err, errno, "mkdirat(held/%s) failed", user);
			return -1;
		}
	}
	fd = mr_io->openat(store->held_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0) {
		if (errno == ENOENT && !create)
			return 0;
		mr_error_set(err, errno, "openat(held/%s) failed", user);
		return -1;
	}
	*fd_r = fd;
	return 1;
}


/* Removes "tmp.<pid>.*" when <pid> is gone: a writer killed mid-hold. */
static void drop_stale_tmp(int dirfd, const char *name)
{
	char *end;
	long pid = strtol(name + sizeof(TMP_PREFIX) - 1, &end, 10);

	if (end == name + sizeof(TMP_PREFIX) - 1 || *end != '.' || pid <= 0)
		return;
	if (pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		(void)mr_io->unlinkat(dirfd, name, 0);
}

struct scan {
	int dirfd;
	uint64_t max, count;
	uint64_t *bytes;  /* NULL: sizes not wanted */
};

static int scan_entry(void *arg, const char *name, unsigned char type, uint64_t ino)
{
	struct scan *sc = arg;
	uint64_t seq;

	(void)type;
	(void)ino;
	if (parse_held_name(name, &seq)) {
		struct stat st;

		sc->count++;
		if (seq > sc->max)
			sc->max = seq;
		/* A file gone meanwhile (released) weighs nothing. */
		if (sc->bytes != NULL &&
		    mr_io->fstatat(sc->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			*sc->bytes += (uint64_t)st.st_size;
	} else if (strncmp(name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0) {
		drop_stale_tmp(sc->dirfd, name);
	}
	return 0;
}

/* One pass over held/<user> (fd dirfd), allocating nothing: the highest
 * sequence number (0 when none), the number of held files and (bytes_r
 * not NULL: added to it) their bytes on disk. Stale temp
 * files of dead writers are removed on the way. 0 or -1 with err. */
static int scan_user_dir(int dirfd, const char *user, uint64_t *max_r, uint64_t *count_r,
			 uint64_t *bytes_r, struct mr_error *err)
{
	struct scan sc = { dirfd, 0, 0, bytes_r };

	if (mr_scandir(dirfd, scan_entry, &sc, err) < 0) {
		mr_error_prefix(err, "held/%s", user);
		return -1;
	}
	if (max_r)
		*max_r = sc.max;
	if (count_r)
		*count_r = sc.count;
	return 0;
}

/* ---- the store ------------------------------------------------------ */

int mail_store_open(int state_dirfd, struct mail_store **store_r, struct mr_error *err)
{
	struct mail_store *store = NULL;
	int fd = -1, rc = -1;

	*store_r = NULL;
	if (mr_io->mkdirat(state_dirfd, "held", 0700) == 0) {
		if (mr_io->fsync(state_dirfd) < 0) {
			mr_error_set(err, errno, "fsync(state) failed");
			goto out;
		}
	} else if (errno != EEXIST) {
		mr_error_set(err, errno, "mkdirat(held) failed");
		goto out;
	}
	fd = mr_io->openat(state_dirfd, "held", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0) {
		mr_error_set(err, errno, "openat(held) failed");
		goto out;
	}
	store = calloc(1, sizeof(*store));
	if (store == NULL) {
		mr_error_set(err, ENOMEM, "calloc(mail_store) failed");
		goto out;
	}
	store->held_fd = fd;
	pthread_mutex_init(&store->mu, NULL);
	fd = -1;
	*store_r = store;
	store = NULL;
	rc = 0;
out:
	mr_close(fd);
	free(store);
	return rc;
}

void mail_store_close(struct mail_store **store)
{
	if (store == NULL || *store == NULL)
		return;
	mr_close((*store)->held_fd);
	pthread_mutex_destroy(&(*store)->mu);
	free(*store);
	*store = NULL;
}

/* ---- locking -------------------------------------------------------- */

int mail_hold_lock(struct mail_store *store, const char *user, int *lockfd_r,
		   struct mr_error *err)
{
	char name[MR_USER_NAME_MAX + 1];
	int fd;

	*lockfd_r = -1;
	if (mail_check_user(user, err) < 0)
		return -1;
	mr_user_name_suffixed(user, ".lock", name);
	fd = mr_io->openat(store->held_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
	if (fd < 0) {
		mr_error_set(err, errno, "openat(held/%s) failed", name);
		return -1;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		mr_error_set(err, errno, "flock(held/%s) failed", name);
		mr_close(fd);
		return -1;
	}
	*lockfd_r = fd;
	return 0;
}

void mail_hold_unlock(int lockfd)
{
	/* Closing the only descriptor of the open file releases the flock. */
	mr_close(lockfd);
}

/* ---- limits --------------------------------------------------------- */

void mail_store_set_limits(struct mail_store *store, const struct mail_limits *limits)
{
	store->limits = *limits;
}

static int add_total(void *ctx, const char *user, uint64_t count, uint64_t bytes,
		     struct mr_error *err);
static int for_each_user(struct mail_store *store,
			 int (*fn)(void *ctx, const char *user, uint64_t count, uint64_t bytes,
				   struct mr_error *err),
			 void *ctx, int with_bytes, struct mr_error *err);

/* Adds (or with negative signs, takes away) held messages to the totals. */
static void totals_add(struct mail_store *store, int64_t count, int64_t bytes)
{
	pthread_mutex_lock(&store->mu);
	if (store->totals_known) {
		store->total_count = count < 0 && (uint64_t)-count > store->total_count
					     ? 0 : store->total_count + (uint64_t)count;
		store->total_bytes = bytes < 0 && (uint64_t)-bytes > store->total_bytes
					     ? 0 : store->total_bytes + (uint64_t)bytes;
	}
	pthread_mutex_unlock(&store->mu);
}

/* Refuses a message of size bytes on disk for user, who holds count
 * messages of user_bytes, when it would pass a limit. 0 or -1 with err. */
static int check_limits(struct mail_store *store, const char *user, uint64_t count,
			uint64_t user_bytes, uint64_t size, struct mr_error *err)
{
	const struct mail_limits *l = &store->limits;
	uint64_t fs_size = 0, free_bytes, lim, reserve, sum[2] = { 0, 0 };
	struct statvfs vfs;
	int rc = -1;

	if (fstatvfs(store->held_fd, &vfs) == 0)
		fs_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	lim = l->user_messages ? l->user_messages : DEFAULT_USER_MESSAGES;
	if (count + 1 > lim) {
		mr_error_set(err, 0, "held mail limit reached: %s holds %llu messages already",
			     user, (unsigned long long)count);
		goto refused;
	}
	lim = l->user_bytes ? l->user_bytes : DEFAULT_USER_BYTES;
	if (user_bytes + size > lim) {
		mr_error_set(err, 0, "held mail limit reached: %s holds %llu bytes already",
			     user, (unsigned long long)user_bytes);
		goto refused;
	}
	pthread_mutex_lock(&store->mu);
	if (!store->totals_known) {
		if (for_each_user(store, add_total, sum, 1, err) < 0) {
			pthread_mutex_unlock(&store->mu);
			return -1;
		}
		store->total_count = sum[0];
		store->total_bytes = sum[1];
		store->totals_known = 1;
	}
	sum[0] = store->total_count;
	sum[1] = store->total_bytes;
	pthread_mutex_unlock(&store->mu);
	lim = l->total_messages ? l->total_messages : DEFAULT_TOTAL_MESSAGES;
	if (sum[0] + 1 > lim) {
		mr_error_set(err, 0, "held mail limit reached: %llu messages held in all",
			     (unsigned long long)sum[0]);
		goto refused;
	}
	lim = l->total_bytes ? l->total_bytes : fs_size / 5;
	if (lim != 0 && sum[1] + size > lim) {
		mr_error_set(err, 0, "held mail limit reached: %llu bytes held in all",
			     (unsigned long long)sum[1]);
		goto refused;
	}
	reserve = l->reserve_bytes ? l->reserve_bytes : fs_size / 20;
	if (!l->reserve_bytes && reserve < DEFAULT_RESERVE_MIN)
		reserve = DEFAULT_RESERVE_MIN;
	free_bytes = mr_free_bytes(store->held_fd);
	if (free_bytes != UINT64_MAX && free_bytes < size + reserve) {
		mr_error_set(err, 0,
			     "held mail limit reached: holding it would leave less than %llu "
			     "bytes free for the restores",
			     (unsigned long long)reserve);
		if (err)
			err->errnum = ENOSPC;
		errno = ENOSPC;
		return -1;
	}
	return 0;
refused:
	if (err)
		err->errnum = EDQUOT;
	errno = EDQUOT;
	return rc;
}

/* ---- hold ----------------------------------------------------------- */

int mail_hold(struct mail_store *store, const char *user, const void *msg, size_t len,
	      uint64_t *seq_r, struct mr_error *err)
{
	LZ4F_preferences_t prefs;
	unsigned char *buf = NULL;
	size_t bound, frame;
	struct timespec now;
	char show[MR_USER_NAME_MAX + 8], final[HELD_NAME_LEN + 1];
	struct mr_publish pub = { .fd = -1 };
	int dirfd = -1, rc = -1;
	uint64_t max, seq, count = 0, bytes = 0;
	struct stat st;

	if (mail_check_user(user, err) < 0)
		return -1;
	clock_gettime(CLOCK_REALTIME, &now);

	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	prefs.frameInfo.contentSize = len;
	bound = LZ4F_compressFrameBound(len, &prefs);
	buf = malloc(HELD_HEADER_SIZE + bound);
	if (buf == NULL) {
		mr_error_set(err, ENOMEM, "malloc(%zu) for held mail failed", HELD_HEADER_SIZE + bound);
		goto out;
	}
	frame = LZ4F_compressFrame(buf + HELD_HEADER_SIZE, bound, msg, len, &prefs);
	if (LZ4F_isError(frame)) {
		mr_error_set(err, EINVAL, "LZ4F_compressFrame failed: %s", LZ4F_getErrorName(frame));
		goto out;
	}
	header_encode(buf, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec, len,
		      XXH3_64bits(msg, len));

	if (user_dir_open(store, user, 1, &dirfd, err) < 0)
		goto out;
	if (scan_user_dir(dirfd, user, &max, &count, &bytes, err) < 0)
		goto out;
	if (check_limits(store, user, count, bytes, HELD_HEADER_SIZE + frame, err) < 0)
		goto out;
	seq = max + 1;
	snprintf(final, sizeof(final), "%0*llu" HELD_SUFFIX, HELD_SEQ_DIGITS,
		 (unsigned long long)seq);
	snprintf(show, sizeof(show), "held/%s", user);
	if (mr_publish_begin(&pub, dirfd, show, final, TMP_PREFIX, 0600, 0, err) < 0 ||
	    mr_publish_write(&pub, buf, HELD_HEADER_SIZE + frame, err) < 0)
		goto out;
	/* Under the hold lock nobody else adds files; a name already taken
	 * means the lock was not held, and replacing held mail would lose it. */
	if (mr_io->fstatat(dirfd, final, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		mr_error_set(err, EEXIST, "held/%s/%s exists already (hold lock not held?)",
			     user, final);
		errno = EEXIST;
		goto out;
	} else if (errno != ENOENT) {
		mr_error_set(err, errno, "fstatat(held/%s/%s) failed", user, final);
		goto out;
	}
	if (mr_publish_commit(&pub, err) < 0)
		goto out;
	totals_add(store, 1, HELD_HEADER_SIZE + frame);
	if (seq_r)
		*seq_r = seq;
	rc = 0;
out:
	mr_publish_abort(&pub);
	if (rc < 0 && pub.renamed) {
		int e = errno;
		/* Not durable means not accepted: take it back so the sender's
		 * retry does not make a double. */
		(void)mr_io->unlinkat(dirfd, final, 0);
		errno = e;
	}
	mr_close(dirfd);
	free(buf);
	return rc;
}

/* ---- counting ------------------------------------------------------- */

int mail_held_count(struct mail_store *store, const char *user, uint64_t *count_r,
		    uint64_t *bytes_r, struct mr_error *err)
{
	struct mr_dirlist list = { NULL, 0 };
	uint64_t count = 0, bytes = 0;
	int dirfd = -1, rc = -1, r;
	size_t i;

	if (mail_check_user(user, err) < 0)
		return -1;
	r = user_dir_open(store, user, 0, &dirfd, err);
	if (r < 0)
		goto out;
	if (r > 0) {
		if (mr_listdir(dirfd, &list, err) < 0) {
			mr_error_prefix(err, "held/%s", user);
			goto out;
		}
		for (i = 0; i < list.n; i++) {
			unsigned char head[HELD_HEADER_SIZE];
			struct held_header h;
			uint64_t seq;
			ssize_t n;
			int fd;

			if (!parse_held_name(list.v[i].name, &seq))
				continue;
			count++;
			if (bytes_r == NULL)
				continue;
			fd = mr_io->openat(dirfd, list.v[i].name, O_RDONLY | O_NOFOLLOW, 0);
			if (fd < 0) {
				mr_error_set(err, errno, "openat(held/%s/%s) failed", user,
					     list.v[i].name);
				goto out;
			}
			n = mr_pread_full(fd, head, sizeof(head), 0);
			mr_close(fd);
			/* A damaged header is counted without bytes here; the
			 * release is where it is reported. */
			if (n == (ssize_t)sizeof(head) &&
			    header_decode(head, sizeof(head), &h, list.v[i].name, NULL) == 0)
				bytes += h.msg_len;
		}
	}
	if (count_r)
		*count_r = count;
	if (bytes_r)
		*bytes_r = bytes;
	rc = 0;
out:
	mr_dirlist_free(&list);
	mr_close(dirfd);
	return rc;
}

/* Calls fn for every user folder in held/ with its number of held files.
 * 0 or -1 with err. */
static int for_each_user(struct mail_store *store,
			 int (*fn)(void *ctx, const char *user, uint64_t count, uint64_t bytes,
				   struct mr_error *err),
			 void *ctx, int with_bytes, struct mr_error *err)
{
	struct mr_dirlist list = { NULL, 0 };
	int rc = -1;
	size_t i;

	if (mr_listdir(store->held_fd, &list, err) < 0) {
		mr_error_prefix(err, "held");
		goto out;
	}
	for (i = 0; i < list.n; i++) {
		const char *user = list.v[i].name;
		uint64_t count, bytes = 0;
		int dirfd, r;

		/* Lock files and anything else that is not a user's folder. */
		if (!mr_user_name_valid(user) ||
		    (list.v[i].type != DT_DIR && list.v[i].type != DT_UNKNOWN))
			continue;
		dirfd = mr_io->openat(store->held_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (dirfd < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;  /* released meanwhile, or a lock file */
			mr_error_set(err, errno, "openat(held/%s) failed", user);
			goto out;
		}
		r = scan_user_dir(dirfd, user, NULL, &count, with_bytes ? &bytes : NULL, err);
		mr_close(dirfd);
		if (r < 0 || fn(ctx, user, count, bytes, err) < 0)
			goto out;
	}
	rc = 0;
out:
	mr_dirlist_free(&list);
	return rc;
}

static int add_total(void *ctx, const char *user, uint64_t count, uint64_t bytes,
		     struct mr_error *err)
{
	uint64_t *sum = ctx;

	sum[0] += count;
	sum[1] += bytes;
	return 0;
}

int mail_held_total(struct mail_store *store, uint64_t *count_r, struct mr_error *err)
{
	uint64_t total[2] = { 0, 0 };

	if (for_each_user(store, add_total, total, 0, err) < 0)
		return -1;
	*count_r = total[0];
	return 0;
}

struct names {
	char **v;
	size_t n, cap;
};

static int add_name(void *ctx, const char *user, uint64_t count, uint64_t bytes,
		    struct mr_error *err)
{
	struct names *names = ctx;

	if (count == 0)
		return 0;
	if (names->n == names->cap) {
		size_t ncap = names->cap ? names->cap * 2 : 16;
		char **v = realloc(names->v, ncap * sizeof(*v));
		if (v == NULL) {
			mr_error_set(err, ENOMEM, "realloc(held users) failed");
			return -1;
		}
		names->v = v;
		names->cap = ncap;
	}
	names->v[names->n] = strdup(user);
	if (names->v[names->n] == NULL) {
		mr_error_set(err, ENOMEM, "strdup(held user) failed");
		return -1;
	}
	names->n++;
	return 0;
}

int mail_held_users(struct mail_store *store, char ***names_r, size_t *n_r,
		    struct mr_error *err)
{
	struct names names = { NULL, 0, 0 };

	*names_r = NULL;
	*n_r = 0;
	if (for_each_user(store, add_name, &names, 0, err) < 0) {
		mr_names_free(names.v, names.n);
		return -1;
	}
	*names_r = names.v;
	*n_r = names.n;
	return 0;
}

/* ---- release -------------------------------------------------------- */

/* Reads held file name (below dirfd) whole, checks it and returns the
 * message in *msg_r (malloc'd, *len_r bytes) and its header. what names
 * the file in errors. 0, or -1 with err (EBADMSG when damaged). */
static int held_read(int dirfd, const char *name, const char *what, struct held_header *h,
		     unsigned char **msg_r, size_t *len_r, struct mr_error *err)
{
	LZ4F_decompressionContext_t dctx = NULL;
	unsigned char *file = NULL, *msg = NULL;
	size_t file_len, spos, dpos = 0, ret = 1;
	struct stat st;
	int fd = -1, rc = -1;
	ssize_t n;

	*msg_r = NULL;
	fd = mr_io->openat(dirfd, name, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0) {
		mr_error_set(err, errno, "openat(%s) failed", what);
		goto out;
	}
	if (mr_io->fstat(fd, &st) < 0) {
		mr_error_set(err, errno, "fstat(%s) failed", what);
		goto out;
	}
	file_len = (size_t)st.st_size;
	file = malloc(file_len ? file_len : 1);
	if (file == NULL) {
		mr_error_set(err, ENOMEM, "malloc(%zu) for %s failed", file_len, what);
		goto out;
	}
	n = mr_read_full(fd, file, file_len);
	if (n < 0) {
		mr_error_set(err, errno, "read(%s) failed", what);
		goto out;
	}
	file_len = (size_t)n;
	if (header_decode(file, file_len, h, what, err) < 0)
		goto out;
	/* lz4 expands at most ~255:1; a length beyond that is damage, and
	 * must not turn into a huge allocation. */
	if (h->msg_len / 256 > file_len || h->msg_len > SIZE_MAX - 1) {
		mr_error_set(err, EBADMSG, "%s: message length %llu does not fit the frame", what,
			     (unsigned long long)h->msg_len);
		goto out;
	}
	msg = malloc(h->msg_len ? (size_t)h->msg_len : 1);
	if (msg == NULL) {
		mr_error_set(err, ENOMEM, "malloc(%llu) for %s failed",
			     (unsigned long long)h->msg_len, what);
		goto out;
	}
	ret = LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION);
	if (LZ4F_isError(ret)) {
		mr_error_set(err, ENOMEM, "LZ4F_createDecompressionContext failed: %s",
			     LZ4F_getErrorName(ret));
		goto out;
	}
	spos = h->header_size;
	ret = 1;
	while (spos < file_len) {
		size_t ssize = file_len - spos, dsize = (size_t)h->msg_len - dpos;

		ret = LZ4F_decompress(dctx, msg + dpos, &dsize, file + spos, &ssize, NULL);
		if (LZ4F_isError(ret)) {
			mr_error_set(err, EBADMSG, "%s: lz4 frame damaged: %s", what,
				     LZ4F_getErrorName(ret));
			goto out;
		}
		spos += ssize;
		dpos += dsize;
		if (ret == 0)
			break;
		if (ssize == 0 && dsize == 0) {
			mr_error_set(err, EBADMSG, "%s: lz4 frame longer than the message", what);
			goto out;
		}
	}
	/* ret 0 means the frame ended and its content checksum matched. */
	if (ret != 0) {
		mr_error_set(err, EBADMSG, "%s: lz4 frame truncated", what);
		goto out;
	}
	if (spos != file_len) {
		mr_error_set(err, EBADMSG, "%s: %zu bytes after the lz4 frame", what, file_len - spos);
		goto out;
	}
	if (dpos != h->msg_len || XXH3_64bits(msg, dpos) != h->msg_hash) {
		mr_error_set(err, EBADMSG, "%s: message length or checksum mismatch", what);
		goto out;
	}
	*msg_r = msg;
	*len_r = dpos;
	msg = NULL;
	rc = 0;
out:
	LZ4F_freeDecompressionContext(dctx);
	mr_close(fd);
	free(file);
	free(msg);
	return rc;
}

/* Returns 1 when the sorted list holds a name that is base itself or base
 * followed by ',' (more fields such as S= or W=) or ':' (the info part
 * after the user's client saw it). */
static int has_base(const struct mr_dirlist *list, const char *base)
{
	size_t lo = 0, hi = list->n, blen = strlen(base);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(list->v[mid].name, base) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Every name with base as prefix sorts at or after lo, together. */
	for (; lo < list->n && strncmp(list->v[lo].name, base, blen) == 0; lo++) {
		char c = list->v[lo].name[blen];
		if (c == '\0' || c == ',' || c == ':')
			return 1;
	}
	return 0;
}

/* Writes one released message into tmp/name, with mtime = arrival,
 * fsync'd, and renames it into new/. 0 or -1 with err. */
static int release_one(int dirs[3], const struct maildir_owner *owner, const char *name,
		       const unsigned char *msg, size_t len, uint64_t arrival_ns,
		       struct mr_error *err)
{
	struct timespec arrival;
	int fd = -1, rc = -1, made = 0;

	/* A leftover of a release killed mid-write. */
	if (mr_io->unlinkat(dirs[MAILDIR_TMP], name, 0) < 0 && errno != ENOENT) {
		mr_error_set(err, errno, "unlink(tmp/%s) failed", name);
		goto out;
	}
	fd = mr_io->openat(dirs[MAILDIR_TMP], name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (fd < 0) {
		mr_error_set(err, errno, "openat(tmp/%s) failed", name);
		goto out;
	}
	made = 1;
	arrival.tv_sec = (time_t)(arrival_ns / 1000000000u);
	arrival.tv_nsec = (long)(arrival_ns % 1000000000u);
	if (mail_maildir_fill(&fd, name, owner, msg, len, &arrival, err) < 0)
		goto out;
	if (mr_io->renameat(dirs[MAILDIR_TMP], name, dirs[MAILDIR_NEW], name) < 0) {
		mr_error_set(err, errno, "rename(tmp/%s, new/%s) failed", name, name);
		goto out;
	}
	made = 0;
	rc = 0;
out:
	mr_close(fd);
	if (made)
		(void)mr_io->unlinkat(dirs[MAILDIR_TMP], name, 0);
	return rc;
}

int mail_release(struct mail_store *store, const char *user, int maildir_fd,
		 uint64_t *released_r, struct mr_error *err)
{
	struct mr_dirlist held = { NULL, 0 }, in_new = { NULL, 0 }, in_cur = { NULL, 0 };
	int dirs[3] = { -1, -1, -1 }, dirfd = -1, rc = -1, r;
	struct maildir_owner owner;
	unsigned char *msg = NULL;
	uint64_t released = 0;
	size_t i;

	if (released_r)
		*released_r = 0;
	if (mail_check_user(user, err) < 0)
		return -1;
	if (mail_maildir_open(maildir_fd, dirs, &owner, err) < 0)
		goto out;
	r = user_dir_open(store, user, 0, &dirfd, err);
	if (r < 0)
		goto out;
	if (r == 0) {
		rc = 0;
		goto out;
	}
	if (mr_listdir(dirfd, &held, err) < 0) {
		mr_error_prefix(err, "held/%s", user);
		goto out;
	}
	if (mr_listdir(dirs[MAILDIR_NEW], &in_new, err) < 0) {
		mr_error_prefix(err, "new");
		goto out;
	}
	if (mr_listdir(dirs[MAILDIR_CUR], &in_cur, err) < 0) {
		mr_error_prefix(err, "cur");
		goto out;
	}
	/* held is sorted by name, and the zero-padded names sort by seq. */
	for (i = 0; i < held.n; i++) {
		char what[MR_USER_NAME_MAX + 64], base[128], name[160];
		struct held_header h;
		uint64_t seq;
		size_t len;

		if (!parse_held_name(held.v[i].name, &seq))
			continue;
		snprintf(what, sizeof(what), "held/%s/%s", user, held.v[i].name);
		if (held_read(dirfd, held.v[i].name, what, &h, &msg, &len, err) < 0) {
			char aside[200];
			struct stat st;

			if (err->errnum != EBADMSG && err->errnum != EPROTONOSUPPORT)
				goto out;
			/* One damaged file must not keep the others (and the
			 * activation) hostage: keep it, renamed so it is no longer
			 * a held message, for an operator to look at. */
			snprintf(aside, sizeof(aside), "damaged.%s", held.v[i].name);
			if (mr_io->renameat(dirfd, held.v[i].name, dirfd, aside) < 0) {
				mr_error_set(err, errno, "rename(%s) aside failed", what);
				goto out;
			}
			/* No longer held mail: out of the totals, as a count from
			 * the disk would leave it. */
			if (mr_io->fstatat(dirfd, aside, &st, AT_SYMLINK_NOFOLLOW) == 0)
				totals_add(store, -1, -(int64_t)st.st_size);
			mr_log("%s: %s; kept as held/%s/%s for an operator", user, err->msg, user, aside);
			mr_error_clear(err);
			continue;
		}
		snprintf(base, sizeof(base), "%llu.M%06lluP0Q%llu.mailrestore-held",
			 (unsigned long long)(h.arrival_ns / 1000000000u),
			 (unsigned long long)(h.arrival_ns % 1000000000u / 1000u),
			 (unsigned long long)seq);
		if (!has_base(&in_new, base) && !has_base(&in_cur, base)) {
			snprintf(name, sizeof(name), "%s,S=%zu", base, len);
			if (release_one(dirs, &owner, name, msg, len, h.arrival_ns, err) < 0)
				goto out;
		}
		released++;
		free(msg);
		msg = NULL;
	}
	if (mr_io->fsync(dirs[MAILDIR_NEW]) < 0) {
		mr_error_set(err, errno, "fsync(new) failed");
		goto out;
	}
	rc = 0;
out:
	if (released_r)
		*released_r = released;
	free(msg);
	mr_dirlist_free(&held);
	mr_dirlist_free(&in_new);
	mr_dirlist_free(&in_cur);
	mr_close(dirfd);
	mail_maildir_close(dirs);
	return rc;
}

int mail_release_done(struct mail_store *store, const char *user, struct mr_error *err)
{
	struct mr_dirlist list = { NULL, 0 };
	int dirfd = -1, rc = -1, r;
	size_t i;

	if (mail_check_user(user, err) < 0)
		return -1;
	r = user_dir_open(store, user, 0, &dirfd, err);
	if (r <= 0) {
		rc = r;
		goto out;
	}
	if (mr_listdir(dirfd, &list, err) < 0) {
		mr_error_prefix(err, "held/%s", user);
		goto out;
	}
	for (i = 0; i < list.n; i++) {
		uint64_t seq;
		struct stat st;

		/* Only held messages go; a damaged one set aside stays. */
		if (!parse_held_name(list.v[i].name, &seq))
			continue;
		if (mr_io->fstatat(dirfd, list.v[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			st.st_size = -1;
		if (mr_io->unlinkat(dirfd, list.v[i].name, 0) < 0) {
			if (errno == ENOENT)
				continue;
			mr_error_set(err, errno, "unlink(held/%s/%s) failed", user, list.v[i].name);
			goto out;
		}
		if (st.st_size >= 0)
			totals_add(store, -1, -(int64_t)st.st_size);
	}
	mr_close(dirfd);
	dirfd = -1;
	if (mr_io->unlinkat(store->held_fd, user, AT_REMOVEDIR) < 0 && errno != ENOENT &&
	    errno != ENOTEMPTY) {
		mr_error_set(err, errno, "rmdir(held/%s) failed", user);
		goto out;
	}
	if (mr_io->fsync(store->held_fd) < 0) {
		mr_error_set(err, errno, "fsync(held) failed");
		goto out;
	}
	rc = 0;
out:
	mr_dirlist_free(&list);
	mr_close(dirfd);
	return rc;
}

/* ---- a repeated delivery -------------------------------------------- */

struct find {
	int dirfd;
	uint64_t hash, len, since_ns;
	int found;
	struct mr_error *err;
};

static int find_entry(void *arg, const char *name, unsigned char type, uint64_t ino)
{
	struct find *fi = arg;
	unsigned char head[HELD_HEADER_SIZE];
	struct held_header h;
	uint64_t seq;
	ssize_t n;
	int fd;

	(void)type;
	(void)ino;
	if (!parse_held_name(name, &seq))
		return 0;
	fd = mr_io->openat(fi->dirfd, name, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0) {
		mr_error_set(fi->err, errno, "openat(held/%s) failed", name);
		return -1;
	}
	n = mr_pread_full(fd, head, sizeof(head), 0);
	mr_close(fd);
	if (n == (ssize_t)sizeof(head) && header_decode(head, sizeof(head), &h, name, NULL) == 0 &&
	    h.msg_len == fi->len && h.msg_hash == fi->hash && h.arrival_ns >= fi->since_ns) {
		fi->found = 1;
		return 1;
	}
	return 0;
}

int mail_held_find(struct mail_store *store, const char *user, uint64_t hash, uint64_t len,
		   uint64_t since_ns, struct mr_error *err)
{
	struct find fi = { -1, hash, len, since_ns, 0, err };
	int r, rc = -1;

	if (mail_check_user(user, err) < 0)
		return -1;
	r = user_dir_open(store, user, 0, &fi.dirfd, err);
	if (r <= 0)
		return r;
	if (mr_scandir(fi.dirfd, find_entry, &fi, err) < 0) {
		mr_error_prefix(err, "held/%s", user);
		goto out;
	}
	rc = fi.found;
out:
	mr_close(fi.dirfd);
	return rc;
}
