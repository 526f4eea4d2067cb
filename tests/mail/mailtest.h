/*
 * mailtest.h: fixtures shared by the tests of mail/: a temporary folder
 * with a state folder, an open mail store and an empty Maildir root, and
 * small helpers to list folders and hold messages under the lock.
 */
#ifndef MR_TESTS_MAILTEST_H
#define MR_TESTS_MAILTEST_H

#include "tests/testutil.h"
#include "mail/mail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mt {
	char *dir;          /* the test's temporary folder */
	char *state;        /* dir/state */
	char *maildir;      /* dir/maildir, the Maildir root (exists, empty) */
	int state_fd, maildir_fd;
	struct mail_store *store;
};

static inline struct mt *mt_new(void)
{
	struct mt *t = calloc(1, sizeof(*t));
	struct mr_error err;

	assert_non_null(t);
	t->dir = tu_tmpdir();
	t->state = tu_path(t->dir, "state");
	t->maildir = tu_path(t->dir, "maildir");
	assert_int_equal(mkdir(t->state, 0700), 0);
	assert_int_equal(mkdir(t->maildir, 0700), 0);
	t->state_fd = tu_open_dir(t->state);
	t->maildir_fd = tu_open_dir(t->maildir);
	if (mail_store_open(t->state_fd, &t->store, &err) < 0)
		fail_msg("mail_store_open: %s", err.msg);
	mr_log_quiet = 1;
	return t;
}

static inline void mt_free(struct mt *t)
{
	mr_io_fault_clear();
	mail_store_close(&t->store);
	assert_null(t->store);
	close(t->state_fd);
	close(t->maildir_fd);
	free(t->state);
	free(t->maildir);
	tu_rmtree(t->dir);
	free(t);
}

static inline int mt_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir/sub ("." and ".." left out); *n_r gets the count.
 * A missing folder gives 0 names. Free with mt_names_free(). */
static inline char **mt_list(const char *dir, const char *sub, size_t *n_r)
{
	char *path = tu_path(dir, sub);
	DIR *d = opendir(path);
	char **v = NULL;
	size_t n = 0;
	struct dirent *e;

	free(path);
	*n_r = 0;
	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		v = realloc(v, (n + 1) * sizeof(*v));
		assert_non_null(v);
		v[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), mt_name_cmp);
	*n_r = n;
	return v;
}

static inline void mt_names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Number of entries in dir/sub. */
static inline size_t mt_count(const char *dir, const char *sub)
{
	size_t n;
	char **v = mt_list(dir, sub, &n);

	mt_names_free(v, n);
	return n;
}

/* Holds msg for user under the hold lock; fails the test on error. */
static inline uint64_t mt_hold(struct mt *t, const char *user, const void *msg, size_t len)
{
	struct mr_error err;
	uint64_t seq = 0;
	int lock;

	if (mail_hold_lock(t->store, user, &lock, &err) < 0)
		fail_msg("mail_hold_lock: %s", err.msg);
	if (mail_hold(t->store, user, msg, len, &seq, &err) < 0)
		fail_msg("mail_hold: %s", err.msg);
	mail_hold_unlock(lock);
	return seq;
}

/* Releases user's held mail into t->maildir under the lock. Returns the
 * result of mail_release; *released_r and err as it left them. */
static inline int mt_release(struct mt *t, const char *user, uint64_t *released_r,
			     struct mr_error *err)
{
	int lock, rc;

	if (mail_hold_lock(t->store, user, &lock, err) < 0)
		fail_msg("mail_hold_lock: %s", err->msg);
	rc = mail_release(t->store, user, t->maildir_fd, released_r, err);
	mail_hold_unlock(lock);
	return rc;
}

/* Extracts the Q<seq> number of a released file name, or 0. */
static inline unsigned long long mt_name_seq(const char *name)
{
	const char *q = strstr(name, "P0Q");

	return q ? strtoull(q + 3, NULL, 10) : 0;
}

#endif
