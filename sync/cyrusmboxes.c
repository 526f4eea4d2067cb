/*
 * cyrusmboxes.c: Cyrus's mailbox list (--cyrus-mailboxes FILE), read for
 * the remove guard's judgement of a Cyrus folder gone from the source.
 *
 * Two text forms are understood, told apart by the first byte that is not
 * white space:
 *   - '{': the JSON that `ctl_mboxlist -d` of Cyrus 3.x prints, one
 *     mailbox a line: "user.bob.Sent": {"name": ..., "mbtype": "e", ...}.
 *     An entry whose mbtype is "deleted" (a tombstone) is no mailbox.
 *   - anything else: lines "<name>\t<the rest>", the flat-file
 *     mailboxes.db of Cyrus 2.x and the `ctl_mboxlist -d` of 2.x; the
 *     3.x flat file's keys "N<name>" are read too (its "I<uniqueid>" keys
 *     are not mailboxes).
 * Names are Cyrus's internal names ("user.bob^smith.Sent": '.' between
 * levels, '^' for a dot within one), which are the folder paths of the
 * spool with '/' written '.'. Names of other kinds (shared folders,
 * DELETED.*) are kept and never match a user's folder.
 * The binary skiplist and twoskip databases are not read: dump them with
 * `ctl_mboxlist -d > FILE` (as the cyrus user) and give that file.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_name(struct sync_cyrus_mboxes *mb, const char *name, size_t len)
{
	if (len == 0)
		return 0;
	if (mb->n == mb->cap) {
		size_t ncap = mb->cap ? mb->cap * 2 : 256;
		char **nv = realloc(mb->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		mb->v = nv;
		mb->cap = ncap;
	}
	if ((mb->v[mb->n] = strndup(name, len)) == NULL)
		return -1;
	mb->n++;
	return 0;
}

/* One line of the JSON dump: "name": {... "mbtype": "deleted" ...} */
static int json_line(struct sync_cyrus_mboxes *mb, const char *line, size_t len)
{
	const char *end = line + len, *q;

	while (line < end && (*line == ' ' || *line == '\t' || *line == ','))
		line++;
	if (line >= end || *line != '"')
		return 0;
	line++;
	for (q = line; q < end && *q != '"'; q++)
		if (*q == '\\')
			return 0;  /* names with escapes are no user folder of ours */
	if (q >= end)
		return 0;
	if (memmem(q, (size_t)(end - q), "\"mbtype\": \"deleted\"", 19) != NULL ||
	    memmem(q, (size_t)(end - q), "\"mbtype\":\"deleted\"", 18) != NULL)
		return 0;
	return add_name(mb, line, (size_t)(q - line));
}

static int flat_line(struct sync_cyrus_mboxes *mb, const char *line, size_t len)
{
	const char *tab = memchr(line, '\t', len);
	size_t n = tab != NULL ? (size_t)(tab - line) : len;

	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	/* the 3.x flat file: "N<name>" keys (and "I<id>", never a folder) */
	if (n > 6 && strncmp(line, "Nuser.", 6) == 0) {
		line++;
		n--;
	}
	return add_name(mb, line, n);
}

int sync_cyrus_mboxes_parse(struct sync_cyrus_mboxes *mb, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	int json;

	memset(mb, 0, sizeof(*mb));
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	json = p < end && *p == '{';
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		int r = json ? json_line(mb, p, n) : flat_line(mb, p, n);

		if (r < 0) {
			sync_cyrus_mboxes_free(mb);
			errno = ENOMEM;
			return -1;
		}
		p += n + 1;
	}
	if (mb->n > 1)
		qsort(mb->v, mb->n, sizeof(*mb->v), str_cmp);
	return 0;
}

int sync_cyrus_mboxes_load(const char *path, struct sync_cyrus_mboxes *mb, struct mr_error *err)
{
	struct stat st;
	char *buf = NULL;
	ssize_t got;
	int fd, rc = -1;

	memset(mb, 0, sizeof(*mb));
	fd = mr_io->openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		mr_error_set(err, errno, "open(%s) failed", path);
		return -1;
	}
	if (mr_io->fstat(fd, &st) < 0) {
		mr_error_set(err, errno, "fstat(%s) failed", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		mr_error_set(err, EINVAL, "%s is not a regular file", path);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		mr_error_set(err, ENOMEM, "reading %s", path);
		goto out;
	}
	got = mr_read_full(fd, buf, (size_t)st.st_size);
	if (got < 0) {
		mr_error_set(err, errno, "read(%s) failed", path);
		goto out;
	}
	if (sync_cyrus_mboxes_parse(mb, buf, (size_t)got) < 0) {
		mr_error_set(err, errno, "reading %s", path);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	mr_close(fd);
	return rc;
}

int sync_cyrus_mboxes_has(const struct sync_cyrus_mboxes *mb, const char *name)
{
	return mb != NULL && mb->n > 0 &&
	       bsearch(&name, mb->v, mb->n, sizeof(*mb->v), str_cmp) != NULL;
}

void sync_cyrus_mboxes_free(struct sync_cyrus_mboxes *mb)
{
	mr_names_free(mb->v, mb->n);
	memset(mb, 0, sizeof(*mb));
}
