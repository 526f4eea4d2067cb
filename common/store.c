/*
 * store.c: the mail store formats (common.h, "mail stores"): which one a
 * spool holds, and where a user's folder sits in a Cyrus IMAP spool
 * partition (the legacy layout Cyrus 2.4 to 3.x writes: user/<name>/,
 * hashed or not; docs/LAYOUT.md, "A Cyrus spool").
 */
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mr_store_format_parse(const char *s, enum mr_store_format *f_r)
{
	if (strcmp(s, "maildir") == 0)
		*f_r = MR_FORMAT_MAILDIR;
	else if (strcmp(s, "cyrus") == 0)
		*f_r = MR_FORMAT_CYRUS;
	else
		return -1;
	return 0;
}

const char *mr_store_format_name(enum mr_store_format f)
{
	switch (f) {
	case MR_FORMAT_MAILDIR: return "maildir";
	case MR_FORMAT_CYRUS: return "cyrus";
	default: return "auto";
	}
}

char mr_cyrus_hash_char(const char *user, int full)
{
	const unsigned char *p;
	uint32_t n = 0;
	int c;

	if (full) {
		/* Cyrus hashes the name up to its first '.' (the external
		 * form, which keeps dots). */
		for (p = (const unsigned char *)user; *p && *p != '.'; p++)
			n = ((n << 3) ^ (n >> 5)) ^ *p;
		return (char)('A' + n % 23);
	}
	c = (unsigned char)user[0];
	if (c >= 'A' && c <= 'Z')
		c += 'a' - 'A';
	return (c >= 'a' && c <= 'z') ? (char)c : 'q';
}

const char *mr_cyrus_user_rel(enum mr_cyrus_hash hash, const char *user, char *buf)
{
	size_t pos = 0, i;

	if (!mr_user_name_valid(user) || hash == MR_CYRUS_HASH_UNKNOWN)
		return NULL;
	if (hash == MR_CYRUS_HASH_SIMPLE || hash == MR_CYRUS_HASH_FULL) {
		buf[pos++] = mr_cyrus_hash_char(user, hash == MR_CYRUS_HASH_FULL);
		buf[pos++] = '/';
	}
	if (hash != MR_CYRUS_HASH_FLAT) {
		memcpy(buf + pos, "user/", 5);
		pos += 5;
	}
	/* unixhierarchysep: a '.' of a name is '^' on disk */
	for (i = 0; user[i] != '\0'; i++)
		buf[pos++] = user[i] == '.' ? '^' : user[i];
	buf[pos] = '\0';
	return buf;
}

int mr_cyrus_user_from_disk(const char *disk, char *buf)
{
	size_t i;

	for (i = 0; disk[i] != '\0'; i++) {
		if (i >= MR_USER_NAME_MAX || disk[i] == '.')
			return 0;
		buf[i] = disk[i] == '^' ? '.' : disk[i];
	}
	buf[i] = '\0';
	return mr_user_name_valid(buf);
}

static int sample_header_fd(int ufd);

static int is_dir_at(int fd, const char *name)
{
	struct stat st;

	return mr_io->fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

enum mr_cyrus_hash mr_cyrus_detect_hash(int fd)
{
	struct mr_dirlist list = { 0 };
	enum mr_cyrus_hash hash = MR_CYRUS_HASH_UNKNOWN;
	char path[8];
	size_t i;

	if (is_dir_at(fd, "user"))
		return MR_CYRUS_HASH_NONE;
	if (mr_listdir(fd, &list, NULL) < 0)
		return MR_CYRUS_HASH_UNKNOWN;
	for (i = 0; i < list.n; i++) {
		const char *n = list.v[i].name;

		if (n[0] == '\0' || n[1] != '\0')
			continue;
		snprintf(path, sizeof(path), "%c/user", n[0]);
		if (!is_dir_at(fd, path))
			continue;
		if (n[0] >= 'A' && n[0] <= 'W') {
			hash = MR_CYRUS_HASH_FULL;
			break;
		}
		hash = MR_CYRUS_HASH_SIMPLE;
	}
	mr_dirlist_free(&list);
	if (hash == MR_CYRUS_HASH_UNKNOWN && sample_header_fd(fd))
		hash = MR_CYRUS_HASH_FLAT;
	return hash;
}

/* Adds the users of folder fd/rel (a spool's user/) to *names. -1 with err. */
static int add_users(int fd, const char *rel, char ***names, size_t *n, size_t *cap,
		     struct mr_error *err)
{
	struct mr_dirlist list = { 0 };
	char user[MR_USER_NAME_MAX + 1];
	int ufd, rc = -1;
	size_t i;

	if (strcmp(rel, ".") == 0) {
		ufd = mr_io->openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (ufd < 0)
			mr_error_set(err, errno, "open(.) failed");
	} else {
		ufd = mr_open_beneath(fd, rel, O_RDONLY | O_DIRECTORY, 0, err);
	}
	if (ufd < 0) {
		if (err->errnum == ENOENT || err->errnum == ENOTDIR) {
			mr_error_clear(err);
			return 0;
		}
		return -1;
	}
	if (mr_listdir(ufd, &list, err) < 0) {
		mr_error_prefix(err, "listing %s", rel);
		goto out;
	}
	for (i = 0; i < list.n; i++) {
		if (list.v[i].type != DT_DIR && list.v[i].type != DT_UNKNOWN)
			continue;
		if (!mr_cyrus_user_from_disk(list.v[i].name, user))
			continue;
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;
			char **nv = realloc(*names, ncap * sizeof(*nv));

			if (nv == NULL) {
				mr_error_set(err, ENOMEM, "listing Cyrus users");
				goto out;
			}
			*names = nv;
			*cap = ncap;
		}
		if (((*names)[*n] = strdup(user)) == NULL) {
			mr_error_set(err, ENOMEM, "listing Cyrus users");
			goto out;
		}
		(*n)++;
	}
	rc = 0;
out:
	mr_dirlist_free(&list);
	mr_close(ufd);
	return rc;
}

int mr_cyrus_list_users(int fd, enum mr_cyrus_hash hash, char ***names_r, size_t *n_r,
			struct mr_error *err)
{
	struct mr_dirlist list = { 0 };
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	char rel[8];

	*names_r = NULL;
	*n_r = 0;
	if (hash == MR_CYRUS_HASH_NONE) {
		if (add_users(fd, "user", &names, &n, &cap, err) < 0)
			goto fail;
	} else if (hash == MR_CYRUS_HASH_FLAT) {
		if (add_users(fd, ".", &names, &n, &cap, err) < 0)
			goto fail;
	} else if (hash != MR_CYRUS_HASH_UNKNOWN) {
		if (mr_listdir(fd, &list, err) < 0)
			goto fail;
		for (i = 0; i < list.n; i++) {
			const char *c = list.v[i].name;

			if (c[0] == '\0' || c[1] != '\0')
				continue;
			snprintf(rel, sizeof(rel), "%c/user", c[0]);
			if (add_users(fd, rel, &names, &n, &cap, err) < 0)
				goto fail;
		}
		mr_dirlist_free(&list);
	}
	*names_r = names;
	*n_r = mr_names_sort_unique(names, n);
	return 0;
fail:
	mr_dirlist_free(&list);
	mr_names_free(names, n);
	return -1;
}

/* 1 when one of the first folders of folder ufd holds cyrus.header. */
static int sample_header_fd(int ufd)
{
	struct mr_dirlist list = { 0 };
	struct mr_error err = { 0 };
	char path[PATH_MAX];
	size_t i, seen = 0;
	int found = 0;

	if (mr_listdir(ufd, &list, &err) == 0)
		for (i = 0; i < list.n && seen < 8 && !found; i++) {
			struct stat st;

			if (list.v[i].type != DT_DIR && list.v[i].type != DT_UNKNOWN)
				continue;
			seen++;
			snprintf(path, sizeof(path), "%s/cyrus.header", list.v[i].name);
			found = mr_io->fstatat(ufd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				S_ISREG(st.st_mode);
		}
	mr_dirlist_free(&list);
	return found;
}

/* 1 when one of the first user folders below fd/rel holds cyrus.header. */
static int sample_header(int fd, const char *rel)
{
	struct mr_error err = { 0 };
	int ufd = mr_open_beneath(fd, rel, O_RDONLY | O_DIRECTORY, 0, &err), found;

	if (ufd < 0)
		return 0;
	found = sample_header_fd(ufd);
	mr_close(ufd);
	return found;
}

enum mr_store_format mr_store_detect(int fd)
{
	struct mr_dirlist list = { 0 };
	char rel[8];
	size_t i;
	int found = 0;

	if (is_dir_at(fd, "user"))
		return sample_header(fd, "user") ? MR_FORMAT_CYRUS : MR_FORMAT_MAILDIR;
	if (mr_listdir(fd, &list, NULL) < 0)
		return MR_FORMAT_MAILDIR;
	for (i = 0; i < list.n && !found; i++) {
		const char *c = list.v[i].name;

		if (c[0] == '\0' || c[1] != '\0')
			continue;
		snprintf(rel, sizeof(rel), "%c/user", c[0]);
		found = sample_header(fd, rel);
	}
	mr_dirlist_free(&list);
	/* or fd is a spool's user/ folder itself */
	if (!found)
		found = sample_header_fd(fd);
	return found ? MR_FORMAT_CYRUS : MR_FORMAT_MAILDIR;
}
