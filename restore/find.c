/*
 * find.c: finding users' archives in the backups folder B.
 *
 * B/<user><suffix> and B/<YYYY-MM-DD>/<user><suffix>; the newest date
 * folder holding the user wins and a plain archive counts as older than any
 * dated one. Everything is opened below the held fd of B.
 */
#include "restore/restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest first, so "bob.tar.gz" ends user "bob", not "bob.tar" + ".gz",
 * and the first suffix that matches a name is the one that ends it. When a
 * folder holds the same user under several suffixes, the archive modified
 * last wins, and on equal times the one earlier in this list. */
const char *const restore_suffixes[] = {
	".tar.lz4", ".tar.zst", ".tar.bz2", ".tar.gz", ".tar.xz",
	".cpio", ".tar", ".tgz", ".zip", NULL,
};

/* Is name exactly YYYY-MM-DD (digits, with a plausible month and day)? */
static int is_date_name(const char *name)
{
	int i, month, day;

	for (i = 0; i < 10; i++) {
		if (i == 4 || i == 7) {
			if (name[i] != '-')
				return 0;
		} else if (name[i] < '0' || name[i] > '9') {
			return 0;
		}
	}
	if (name[10] != '\0')
		return 0;
	month = (name[5] - '0') * 10 + (name[6] - '0');
	day = (name[8] - '0') * 10 + (name[9] - '0');
	return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

int restore_dated_day(const char *rel, int64_t *day_r)
{
	char name[11];
	struct tm tm;

	if (strlen(rel) < 11 || rel[10] != '/')
		return 0;
	memcpy(name, rel, 10);
	name[10] = '\0';
	if (!is_date_name(name))
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(name) - 1900;
	tm.tm_mon = atoi(name + 5) - 1;
	tm.tm_mday = atoi(name + 8);
	*day_r = (int64_t)timegm(&tm);
	return 1;
}

static int is_dir_at(int dirfd, const struct mr_dirent *d)
{
	struct stat sb;

	if (d->type == DT_DIR)
		return 1;
	if (d->type != DT_UNKNOWN)
		return 0;
	return mr_io->fstatat(dirfd, d->name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
}

/* Opens entry d of the backups folder when it is a dated folder
 * (YYYY-MM-DD). 1 with its fd in *fd_r, 0 when d is something else, -1
 * with err. */
static int open_dated(int backups_dirfd, const struct mr_dirent *d, int *fd_r,
		      struct mr_error *err)
{
	if (!is_date_name(d->name) || !is_dir_at(backups_dirfd, d))
		return 0;
	*fd_r = mr_io->openat(backups_dirfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (*fd_r < 0) {
		mr_error_set(err, errno, "openat(%s) failed", d->name);
		return -1;
	}
	return 1;
}

/* The user name a file name stands for, or NULL. Returns a malloc'd copy;
 * *oom is set when malloc failed. */
static char *user_of(const char *name, int *oom)
{
	size_t len = strlen(name), i;

	for (i = 0; restore_suffixes[i] != NULL; i++) {
		size_t sl = strlen(restore_suffixes[i]);
		char *user;

		if (len <= sl || strcmp(name + len - sl, restore_suffixes[i]) != 0)
			continue;
		user = strndup(name, len - sl);
		if (user == NULL) {
			*oom = 1;
			return NULL;
		}
		if (!mr_user_name_valid(user)) {
			free(user);
			return NULL;
		}
		return user;
	}
	return NULL;
}

/* Looks for user's archive directly in dirfd. Returns 1 with the chosen
 * suffix in *suffix_r, 0 when none, -1 with err. */
static int find_in(int dirfd, const char *user, const char **suffix_r, struct mr_error *err)
{
	char name[MR_USER_NAME_MAX + 16];
	struct timespec best = { 0, 0 };
	size_t i;
	int found = 0;

	for (i = 0; restore_suffixes[i] != NULL; i++) {
		struct stat sb;

		snprintf(name, sizeof(name), "%s%s", user, restore_suffixes[i]);
		if (mr_io->fstatat(dirfd, name, &sb, 0) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			mr_error_set(err, errno, "fstatat(%s) failed", name);
			return -1;
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		if (!found || sb.st_mtim.tv_sec > best.tv_sec ||
		    (sb.st_mtim.tv_sec == best.tv_sec && sb.st_mtim.tv_nsec > best.tv_nsec)) {
			best = sb.st_mtim;
			*suffix_r = restore_suffixes[i];
			found = 1;
		}
	}
	return found;
}

int restore_find_backup(int backups_dirfd, const char *user, char **relpath_r,
			struct mr_error *err)
{
	struct mr_dirlist list = { NULL, 0 };
	const char *suffix = NULL;
	size_t i;
	int rc = -1, r;

	*relpath_r = NULL;
	if (!mr_user_name_valid(user)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	if (mr_listdir(backups_dirfd, &list, err) < 0) {
		mr_error_prefix(err, "listing the backups folder");
		return -1;
	}
	/* mr_listdir sorts by name, and YYYY-MM-DD sorts by date. */
	for (i = list.n; i-- > 0;) {
		int dfd;

		r = open_dated(backups_dirfd, &list.v[i], &dfd, err);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		r = find_in(dfd, user, &suffix, err);
		mr_close(dfd);
		if (r < 0) {
			mr_error_prefix(err, "in %s", list.v[i].name);
			goto out;
		}
		if (r == 1) {
			if (asprintf(relpath_r, "%s/%s%s", list.v[i].name, user, suffix) < 0) {
				*relpath_r = NULL;
				mr_error_set(err, ENOMEM, "asprintf");
				goto out;
			}
			rc = 1;
			goto out;
		}
	}
	r = find_in(backups_dirfd, user, &suffix, err);
	if (r < 0)
		goto out;
	rc = 0;
	if (r == 1) {
		if (asprintf(relpath_r, "%s%s", user, suffix) < 0) {
			*relpath_r = NULL;
			mr_error_set(err, ENOMEM, "asprintf");
			rc = -1;
			goto out;
		}
		rc = 1;
	}
out:
	mr_dirlist_free(&list);
	return rc;
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_add_from(struct names *names, int dirfd, const struct mr_dirlist *list,
			  struct mr_error *err)
{
	size_t i;

	for (i = 0; i < list->n; i++) {
		int oom = 0;
		char *user;

		if (list->v[i].type != DT_REG && list->v[i].type != DT_UNKNOWN &&
		    list->v[i].type != DT_LNK)
			continue;
		user = user_of(list->v[i].name, &oom);
		if (oom) {
			mr_error_set(err, ENOMEM, "listing backups");
			return -1;
		}
		if (user == NULL)
			continue;
		if (list->v[i].type != DT_REG) {
			struct stat sb;

			if (mr_io->fstatat(dirfd, list->v[i].name, &sb, 0) < 0 || !S_ISREG(sb.st_mode)) {
				free(user);
				continue;
			}
		}
		if (names->n == names->cap) {
			size_t ncap = names->cap ? names->cap * 2 : 64;
			char **v = realloc(names->v, ncap * sizeof(*v));
			if (v == NULL) {
				free(user);
				mr_error_set(err, ENOMEM, "listing backups");
				return -1;
			}
			names->v = v;
			names->cap = ncap;
		}
		names->v[names->n++] = user;
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int restore_list_backup_users(int backups_dirfd, char ***names_r, size_t *n_r,
			      struct mr_error *err)
{
	struct mr_dirlist list = { NULL, 0 }, sub = { NULL, 0 };
	struct names names = { NULL, 0, 0 };
	size_t i, j;
	int rc = -1;

	*names_r = NULL;
	*n_r = 0;
	if (mr_listdir(backups_dirfd, &list, err) < 0) {
		mr_error_prefix(err, "listing the backups folder");
		return -1;
	}
	if (names_add_from(&names, backups_dirfd, &list, err) < 0)
		goto out;
	for (i = 0; i < list.n; i++) {
		int dfd, r;

		r = open_dated(backups_dirfd, &list.v[i], &dfd, err);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		if (mr_listdir(dfd, &sub, err) < 0) {
			mr_error_prefix(err, "listing %s", list.v[i].name);
			mr_close(dfd);
			goto out;
		}
		if (names_add_from(&names, dfd, &sub, err) < 0) {
			mr_close(dfd);
			goto out;
		}
		mr_close(dfd);
		mr_dirlist_free(&sub);
	}
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(names.v[0]), name_cmp);
	for (i = 0, j = 0; i < names.n; i++) {
		if (j > 0 && strcmp(names.v[j - 1], names.v[i]) == 0) {
			free(names.v[i]);
			continue;
		}
		names.v[j++] = names.v[i];
	}
	names.n = j;
	*names_r = names.v;
	*n_r = names.n;
	names.v = NULL;
	names.n = 0;
	rc = 0;
out:
	mr_dirlist_free(&sub);
	mr_dirlist_free(&list);
	mr_names_free(names.v, names.n);
	return rc;
}

/* ---- the index: B read once ------------------------------------------ */

struct index_entry {
	char *user;
	uint32_t folder;      /* 0: B itself; k: dates[k - 1] */
	uint32_t suffix;      /* index into restore_suffixes */
};

struct restore_index {
	int fd;                          /* B, not owned */
	pthread_mutex_t mu;
	int built;
	struct index_entry *v;           /* one per user, sorted by user */
	size_t n, cap;
	char **dates;                    /* date folders, ascending */
	struct timespec *date_mtime;
	size_t ndates;
	struct timespec b_mtime;
	uint64_t builds;
};

static int ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void index_clear(struct restore_index *idx)
{
	size_t i;

	for (i = 0; i < idx->n; i++)
		free(idx->v[i].user);
	free(idx->v);
	idx->v = NULL;
	idx->n = idx->cap = 0;
	mr_names_free(idx->dates, idx->ndates);
	free(idx->date_mtime);
	idx->dates = NULL;
	idx->date_mtime = NULL;
	idx->ndates = 0;
	idx->built = 0;
}

struct scan_ctx {
	struct restore_index *idx;
	int dirfd;
	uint32_t folder;
	int oom;
};

/* One folder's entry: a candidate when it names a user's archive. */
static int index_add(void *arg, const char *name, unsigned char type, uint64_t ino)
{
	struct scan_ctx *c = arg;
	struct restore_index *idx = c->idx;
	size_t len = strlen(name), i;

	(void)ino;
	if (type != DT_REG && type != DT_UNKNOWN && type != DT_LNK)
		return 0;
	for (i = 0; restore_suffixes[i] != NULL; i++) {
		size_t sl = strlen(restore_suffixes[i]);
		if (len > sl && strcmp(name + len - sl, restore_suffixes[i]) == 0)
			break;
	}
	if (restore_suffixes[i] == NULL)
		return 0;
	{
		char *user = strndup(name, len - strlen(restore_suffixes[i]));
		if (user == NULL)
			return ENOMEM;
		if (!mr_user_name_valid(user)) {
			free(user);
			return 0;
		}
		if (type != DT_REG) {
			struct stat sb;

			if (mr_io->fstatat(c->dirfd, name, &sb, 0) < 0 || !S_ISREG(sb.st_mode)) {
				free(user);
				return 0;
			}
		}
		if (idx->n == idx->cap) {
			size_t ncap = idx->cap ? idx->cap * 2 : 256;
			struct index_entry *v = realloc(idx->v, ncap * sizeof(*v));
			if (v == NULL) {
				free(user);
				return ENOMEM;
			}
			idx->v = v;
			idx->cap = ncap;
		}
		idx->v[idx->n].user = user;
		idx->v[idx->n].folder = c->folder;
		idx->v[idx->n].suffix = (uint32_t)i;
		idx->n++;
	}
	return 0;
}

/* By user, then newest folder first, then suffix order. */
static int entry_cmp(const void *a, const void *b)
{
	const struct index_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	if (c != 0)
		return c;
	if (x->folder != y->folder)
		return x->folder > y->folder ? -1 : 1;
	return (x->suffix > y->suffix) - (x->suffix < y->suffix);
}

/* The folder fd of an entry (B or a date folder), opened for the caller. */
static int folder_fd(struct restore_index *idx, uint32_t folder, struct mr_error *err)
{
	int fd;

	if (folder == 0)
		return idx->fd;
	fd = mr_io->openat(idx->fd, idx->dates[folder - 1], O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		mr_error_set(err, errno, "openat(%s) failed", idx->dates[folder - 1]);
	return fd;
}

/* Keeps one entry per user: the newest folder's, and within it the archive
 * modified last (equal times: the earlier suffix). Stats only the rare
 * users with several archives in their newest folder. */
static int index_pick(struct restore_index *idx, struct mr_error *err)
{
	size_t i = 0, j = 0, k, best;

	if (idx->n > 1)
		qsort(idx->v, idx->n, sizeof(idx->v[0]), entry_cmp);
	while (i < idx->n) {
		k = i + 1;
		while (k < idx->n && strcmp(idx->v[k].user, idx->v[i].user) == 0)
			k++;
		best = i;
		if (k > i + 1 && idx->v[i + 1].folder == idx->v[i].folder) {
			struct timespec bt = { 0, 0 };
			int dfd = folder_fd(idx, idx->v[i].folder, err), found = 0;
			size_t m;

			if (dfd < 0)
				return -1;
			for (m = i; m < k && idx->v[m].folder == idx->v[i].folder; m++) {
				char name[MR_USER_NAME_MAX + 16];
				struct stat sb;

				snprintf(name, sizeof(name), "%s%s", idx->v[m].user,
					 restore_suffixes[idx->v[m].suffix]);
				if (mr_io->fstatat(dfd, name, &sb, 0) < 0 || !S_ISREG(sb.st_mode))
					continue;
				if (!found || sb.st_mtim.tv_sec > bt.tv_sec ||
				    (sb.st_mtim.tv_sec == bt.tv_sec && sb.st_mtim.tv_nsec > bt.tv_nsec)) {
					bt = sb.st_mtim;
					best = m;
					found = 1;
				}
			}
			if (dfd != idx->fd)
				mr_close(dfd);
		}
		for (; i < k; i++) {
			if (i == best)
				idx->v[j++] = idx->v[i];
			else
				free(idx->v[i].user);
		}
	}
	idx->n = j;
	return 0;
}

/* Reads B and its date folders once. Called with idx->mu held. */
static int index_build(struct restore_index *idx, struct mr_error *err)
{
	struct mr_dirlist list = { NULL, 0 };
	struct scan_ctx ctx;
	struct stat sb;
	size_t i, nd = 0;
	int rc = -1, r;

	index_clear(idx);
	idx->builds++;
	if (mr_io->fstat(idx->fd, &sb) < 0) {
		mr_error_set(err, errno, "fstat of the backups folder failed");
		return -1;
	}
	idx->b_mtime = sb.st_mtim;
	if (mr_listdir(idx->fd, &list, err) < 0) {
		mr_error_prefix(err, "listing the backups folder");
		return -1;
	}
	idx->dates = calloc(list.n ? list.n : 1, sizeof(*idx->dates));
	idx->date_mtime = calloc(list.n ? list.n : 1, sizeof(*idx->date_mtime));
	if (idx->dates == NULL || idx->date_mtime == NULL) {
		mr_error_set(err, ENOMEM, "indexing the backups folder");
		goto out;
	}
	ctx.idx = idx;
	ctx.dirfd = idx->fd;
	ctx.folder = 0;
	ctx.oom = 0;
	/* mr_listdir sorts by name, and YYYY-MM-DD sorts by date */
	for (i = 0; i < list.n; i++) {
		if (is_date_name(list.v[i].name) && is_dir_at(idx->fd, &list.v[i])) {
			idx->dates[nd] = strdup(list.v[i].name);
			if (idx->dates[nd] == NULL) {
				mr_error_set(err, ENOMEM, "indexing the backups folder");
				goto out;
			}
			idx->ndates = ++nd;
			continue;
		}
		r = index_add(&ctx, list.v[i].name, list.v[i].type, list.v[i].ino);
		if (r != 0) {
			mr_error_set(err, r, "indexing the backups folder");
			goto out;
		}
	}
	mr_dirlist_free(&list);
	for (i = 0; i < nd; i++) {
		int dfd = mr_io->openat(idx->fd, idx->dates[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);

		if (dfd < 0) {
			mr_error_set(err, errno, "openat(%s) failed", idx->dates[i]);
			goto out;
		}
		if (mr_io->fstat(dfd, &sb) < 0) {
			mr_error_set(err, errno, "fstat(%s) failed", idx->dates[i]);
			mr_close(dfd);
			goto out;
		}
		idx->date_mtime[i] = sb.st_mtim;
		ctx.dirfd = dfd;
		ctx.folder = (uint32_t)(i + 1);
		r = mr_scandir(dfd, index_add, &ctx, err);
		mr_close(dfd);
		if (r != 0) {
			if (r > 0)
				mr_error_set(err, r, "indexing");
			mr_error_prefix(err, "listing %s", idx->dates[i]);
			goto out;
		}
	}
	if (index_pick(idx, err) < 0)
		goto out;
	idx->built = 1;
	rc = 0;
out:
	mr_dirlist_free(&list);
	if (rc < 0)
		index_clear(idx);
	return rc;
}

/* Has B or one of its date folders changed since the index was built? A
 * new or removed archive or date folder changes its folder's mtime. */
static int index_stale(struct restore_index *idx)
{
	struct stat sb;
	size_t i;

	if (!idx->built)
		return 1;
	if (mr_io->fstat(idx->fd, &sb) < 0 || !ts_eq(sb.st_mtim, idx->b_mtime))
		return 1;
	for (i = 0; i < idx->ndates; i++)
		if (mr_io->fstatat(idx->fd, idx->dates[i], &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !ts_eq(sb.st_mtim, idx->date_mtime[i]))
			return 1;
	return 0;
}

int restore_index_open(int backups_dirfd, struct restore_index **index_r, struct mr_error *err)
{
	struct restore_index *idx;

	*index_r = NULL;
	idx = calloc(1, sizeof(*idx));
	if (idx == NULL) {
		mr_error_set(err, ENOMEM, "backups index");
		return -1;
	}
	idx->fd = backups_dirfd;
	pthread_mutex_init(&idx->mu, NULL);
	*index_r = idx;
	return 0;
}

void restore_index_close(struct restore_index **index)
{
	struct restore_index *idx = *index;

	if (idx == NULL)
		return;
	index_clear(idx);
	pthread_mutex_destroy(&idx->mu);
	free(idx);
	*index = NULL;
}

static int entry_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct index_entry *)elem)->user);
}

int restore_index_find(struct restore_index *idx, const char *user, int check,
		       char **relpath_r, struct mr_error *err)
{
	const struct index_entry *e;
	int rc = -1;

	*relpath_r = NULL;
	if (!mr_user_name_valid(user)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	pthread_mutex_lock(&idx->mu);
	if ((check || !idx->built) && index_stale(idx) && index_build(idx, err) < 0)
		goto out;
	rc = 0;
	e = idx->n ? bsearch(user, idx->v, idx->n, sizeof(idx->v[0]), entry_key_cmp) : NULL;
	if (e == NULL)
		goto out;
	if (e->folder == 0)
		rc = asprintf(relpath_r, "%s%s", user, restore_suffixes[e->suffix]);
	else
		rc = asprintf(relpath_r, "%s/%s%s", idx->dates[e->folder - 1], user,
			      restore_suffixes[e->suffix]);
	if (rc < 0) {
		*relpath_r = NULL;
		mr_error_set(err, ENOMEM, "asprintf");
		rc = -1;
		goto out;
	}
	rc = 1;
out:
	pthread_mutex_unlock(&idx->mu);
	return rc;
}

uint64_t restore_index_builds(struct restore_index *idx)
{
	uint64_t n;

	pthread_mutex_lock(&idx->mu);
	n = idx->builds;
	pthread_mutex_unlock(&idx->mu);
	return n;
}
