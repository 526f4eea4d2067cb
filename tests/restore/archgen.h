/*
 * archgen.h: builds test archives with libarchive's writer (any format,
 * any filter, hostile entries included) and snapshots folders, for the
 * restore tests. Header-only: each test program includes it once.
 */
#ifndef MR_TEST_ARCHGEN_H
#define MR_TEST_ARCHGEN_H

#include "tests/testutil.h"
#include "restore/restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Opens a writer on path with an archive format and filter code. */
static inline struct archive *ag_open(const char *path, int format, int filter)
{
	struct archive *a = archive_write_new();

	assert_non_null(a);
	assert_int_equal(archive_write_set_format(a, format), ARCHIVE_OK);
	if (filter != ARCHIVE_FILTER_NONE)
		assert_int_equal(archive_write_add_filter(a, filter), ARCHIVE_OK);
	if (archive_write_open_filename(a, path) != ARCHIVE_OK)
		fail_msg("archive_write_open_filename(%s): %s", path, archive_error_string(a));
	return a;
}

static inline void ag_close(struct archive *a)
{
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static inline struct archive_entry *ag_entry(const char *name, mode_t type, mode_t perm,
					     time_t mtime, long nsec)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_copy_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_mtime(e, mtime, nsec);
	archive_entry_set_uid(e, 1234);
	archive_entry_set_gid(e, 2345);
	archive_entry_set_size(e, 0);
	return e;
}

static inline void ag_put(struct archive *a, struct archive_entry *e, const void *data, size_t len)
{
	int r = archive_write_header(a, e);

	if (r < ARCHIVE_WARN)
		fail_msg("archive_write_header(%s): %s", archive_entry_pathname(e),
			 archive_error_string(a));
	if (len > 0)
		assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

static inline void ag_file(struct archive *a, const char *name, const void *data, size_t len,
			   mode_t perm, time_t mtime, long nsec)
{
	struct archive_entry *e = ag_entry(name, AE_IFREG, perm, mtime, nsec);

	archive_entry_set_size(e, (la_int64_t)len);
	ag_put(a, e, data, len);
}

static inline void ag_dir(struct archive *a, const char *name, mode_t perm, time_t mtime)
{
	ag_put(a, ag_entry(name, AE_IFDIR, perm, mtime, 0), NULL, 0);
}

static inline void ag_symlink(struct archive *a, const char *name, const char *target)
{
	struct archive_entry *e = ag_entry(name, AE_IFLNK, 0777, 1600000000, 0);

	archive_entry_copy_symlink(e, target);
	ag_put(a, e, NULL, 0);
}

static inline void ag_hardlink(struct archive *a, const char *name, const char *target)
{
	struct archive_entry *e = ag_entry(name, AE_IFREG, 0644, 1600000000, 0);

	archive_entry_copy_hardlink(e, target);
	archive_entry_set_size(e, 0);
	ag_put(a, e, NULL, 0);
}

static inline void ag_special(struct archive *a, const char *name, mode_t type)
{
	struct archive_entry *e = ag_entry(name, type, 0666, 1600000000, 0);

	archive_entry_set_rdev(e, makedev(1, 3));
	ag_put(a, e, NULL, 0);
}

/* A listing of everything below root except the subtree skip (names,
 * types, sizes, modes, mtimes, link targets), as a malloc'd string. */
static inline char *ag_snapshot(const char *root, const char *skip)
{
	char *cmd, *out = NULL;
	size_t cap = 0, len = 0;
	FILE *p;
	int c;

	if (asprintf(&cmd, "cd '%s' && find . -path './%s' -prune -o "
			   "-printf '%%p %%y %%s %%m %%T@ %%n %%l\\n' | LC_ALL=C sort",
		     root, skip) < 0)
		fail_msg("asprintf");
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((c = fgetc(p)) != EOF) {
		if (len + 2 > cap) {
			cap = cap ? cap * 2 : 4096;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		out[len++] = (char)c;
	}
	pclose(p);
	free(cmd);
	if (out == NULL)
		out = strdup("");
	else
		out[len] = '\0';
	return out;
}

/* Extracts the archive at path into the folder work (created when
 * missing) with settings s (NULL: defaults). Returns restore_extract's
 * result. */
static inline int ag_extract(const char *path, const char *work, const struct restore_settings *s,
			     struct restore_stats *st, struct mr_problems *pb, struct mr_error *err)
{
	int afd, wfd, rc;

	mkdir(work, 0755);
	afd = open(path, O_RDONLY | O_CLOEXEC);
	if (afd < 0)
		fail_msg("open(%s): %s", path, strerror(errno));
	wfd = tu_open_dir(work);
	mr_error_clear(err);
	rc = restore_extract(afd, wfd, s, st, pb, err);
	close(afd);
	close(wfd);
	return rc;
}

static inline void ag_assert_content(const char *dir, const char *rel, const void *data, size_t len)
{
	size_t got = 0;
	char *buf = tu_read_file(dir, rel, &got);

	if (buf == NULL)
		fail_msg("%s/%s missing", dir, rel);
	assert_int_equal(got, len);
	assert_memory_equal(buf, data, len);
	free(buf);
}

static inline struct stat ag_lstat(const char *dir, const char *rel)
{
	char *p = tu_path(dir, rel);
	struct stat sb;

	if (lstat(p, &sb) < 0)
		fail_msg("lstat(%s): %s", p, strerror(errno));
	free(p);
	return sb;
}

static inline int ag_exists(const char *dir, const char *rel)
{
	char *p = tu_path(dir, rel);
	struct stat sb;
	int r = lstat(p, &sb) == 0;

	free(p);
	return r;
}

/* Does any problem of kind mention needle in its path or message? */
static inline int ag_has_problem(const struct mr_problems *pb, enum mr_problem_kind kind,
				 const char *needle)
{
	size_t i;

	for (i = 0; i < pb->n; i++)
		if (pb->v[i].kind == kind &&
		    (strstr(pb->v[i].path, needle) != NULL || strstr(pb->v[i].message, needle) != NULL))
			return 1;
	return 0;
}

#endif
