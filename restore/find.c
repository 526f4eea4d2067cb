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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int is_dir_at(int dirfd, const struct mr_dirent *d)
{
	struct stat sb;

	if (d->type == DT_DIR)
		return 1;
	if (d->type != DT_UNKNOWN)
		return 0;
	return mr_io->fstatat(dirfd, d->name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
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

		if (!is_date_name(list.v[i].name) || !is_dir_at(backups_dirfd, &list.v[i]))
			continue;
		dfd = mr_io->openat(backups_dirfd, list.v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (dfd < 0) {
			mr_error_set(err, errno, "openat(%s) failed", list.v[i].name);
			goto out;
		}
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
		int dfd;

		if (!is_date_name(list.v[i].name) || !is_dir_at(backups_dirfd, &list.v[i]))
			continue;
		dfd = mr_io->openat(backups_dirfd, list.v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (dfd < 0) {
			mr_error_set(err, errno, "openat(%s) failed", list.v[i].name);
			goto out;
		}
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
