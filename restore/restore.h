/*
 * restore.h: a user's backup archive -> the user's work copy.
 *
 * How to use it:
 *   1. restore_find_backup(backups_fd, user, &rel) finds the newest archive
 *      of a user below the backups folder B: B/<YYYY-MM-DD>/<user><suffix>
 *      (newest date folder holding the user wins) or B/<user><suffix>
 *      (older than any dated one). restore_list_backup_users() lists every
 *      user that has one. Many lookups: restore_index_find(), which reads
 *      B once and again only when it changed.
 *   2. Open the archive (openat below backups_fd, read only) and call
 *      restore_extract(archive_fd, work_fd, &settings, &stats, &problems,
 *      &err). Format and compression come from the content (libarchive);
 *      the suffix only ends the user name.
 *   3. Hostile entries (absolute paths, "..", links leading out, hard links
 *      to outside, devices, FIFOs, sockets) are refused one by one and
 *      recorded in problems as MR_PROBLEM_REFUSED; setuid/setgid bits are
 *      stripped. Nothing is ever written outside work_fd.
 *   4. restore_backup_user() writes the other direction: one user folder of
 *      the source into an archive (the daily-backup side, and fixtures).
 *
 * How a file is written depends on the work copy. In a fresh one (nothing
 * extracted into it before) each file is written under its final name with
 * no permission bits, and gets its mode and times only once complete; a
 * file found without permission bits by a later run is unfinished and is
 * removed and written again. Over an existing work copy each file is
 * written under a temporary name (".mrx." prefix) in settings->tmp_dirfd
 * or beside its final place, and renamed into place only when complete.
 * Either way, after a crash a file that looks finished is whole: extracting
 * again skips entries that are already there with the same type, size and
 * modification time (nanoseconds too when the archive has them).
 *
 * Symlinks are accepted only when their target is relative and every ".."
 * in it comes before any name and climbs no higher than the link's own
 * folder ("../x" from "a/l" is fine, "a/../x" and "../x" from "l" are not):
 * that rule makes chains of accepted links unable to lead out, which a
 * purely lexical check does not. Nothing is ever written through a link.
 * An entry that replaces an entry of another type (file vs folder vs link)
 * wins: the old one is moved into the scratch folder and removed there.
 */
#ifndef MR_RESTORE_H
#define MR_RESTORE_H

#include "common/common.h"

#include <stdatomic.h>
#include <stdint.h>

/* The suffixes that end a user name in the backups folder, longest first,
 * NULL-terminated. When one folder holds a user under several suffixes, the
 * archive modified last wins; on equal mtimes the one earlier here. */
extern const char *const restore_suffixes[];

/* Finds the newest backup of user below backups_dirfd. On 1, *relpath_r is a
 * malloc'd path relative to the backups folder ("2026-11-20/bob.tar.lz4" or
 * "bob.tgz"); the caller frees it. Returns 1 found, 0 no backup, -1 error
 * (a listing of B failed; err says which). */
int restore_find_backup(int backups_dirfd, const char *user, char **relpath_r,
			struct mr_error *err);

/* Lists every valid user name that has at least one backup below
 * backups_dirfd, sorted, without duplicates. *names_r is a malloc'd array of
 * malloc'd strings; free with mr_names_free(). 0 or -1 with err. */
int restore_list_backup_users(int backups_dirfd, char ***names_r, size_t *n_r,
			      struct mr_error *err);

/* The backups folder read once: one pass over B and its date folders maps
 * every user to its newest archive (by the rule above), so finding a user's
 * backup costs a lookup, not a listing of B. restore_index_open() only
 * sets it up; the first find builds it. A find with check set first looks
 * whether B or a date folder changed (their mtimes: an archive or date
 * folder added, removed or renamed) and reads B again if so; a find without
 * check trusts the index once built (for hints at start-up). Safe to share
 * between threads. An archive rewritten in place under the same name is
 * not a change of the index (its path stays the same). */
struct restore_index;

int restore_index_open(int backups_dirfd, struct restore_index **index_r, struct mr_error *err);
void restore_index_close(struct restore_index **index);

/* Like restore_find_backup(), through the index: 1 found (*relpath_r
 * malloc'd), 0 no backup, -1 error (reading B failed; err says which). */
int restore_index_find(struct restore_index *index, const char *user, int check,
		       char **relpath_r, struct mr_error *err);

/* How many times B was read (for tests). */
uint64_t restore_index_builds(struct restore_index *index);

/* 1 when archive path rel (relative to B, as restore_find_backup() gives
 * it) lies in a date folder, with that date's midnight UTC (Unix seconds)
 * in *day_r; else 0. */
int restore_dated_day(const char *rel, int64_t *day_r);

struct restore_settings {
	/* Give entries the archive's owner and group (needs root). */
	int preserve_owner;
	/* Bomb guard: stop when the bytes written exceed max_expand_ratio times
	 * the archive's size plus 64 MiB. 0 means the default (1000). */
	uint64_t max_expand_ratio;
	/* Absolute cap on bytes written for this archive; 0 means none. */
	uint64_t max_bytes;
	/* Stop (ENOSPC) before the target's free space drops below this many
	 * bytes; 0 means the default (16 MiB). */
	uint64_t reserve_bytes;
	/* Scratch folder on the same file system as work_fd for files being
	 * written; -1 writes temporary files beside their final place. */
	int tmp_dirfd;
	/* Polled between entries and data blocks; nonzero stops the extraction
	 * with -1 and errnum ECANCELED (what was extracted stays, and a later
	 * call resumes). May be NULL. */
	const atomic_int *cancel;
	/* Called now and then with bytes of archive consumed and the archive's
	 * size. May be NULL. */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
};

struct restore_stats {
	uint64_t entries;   /* entries read from the archive */
	uint64_t files;     /* regular files written */
	uint64_t dirs;
	uint64_t symlinks;
	uint64_t hardlinks;
	uint64_t bytes;     /* file data bytes written */
	uint64_t skipped;   /* entries already complete in the work copy
			     * (folders that already existed count here) */
	uint64_t refused;   /* hostile entries refused */
};

/* Initializes settings to the defaults (tmp_dirfd -1, everything else 0). */
void restore_settings_init(struct restore_settings *s);

/* Extracts the archive read from archive_fd into the directory work_dirfd.
 * Returns 0 when the whole archive was read (refused entries, if any, are in
 * problems), 1 when the archive is truncated, corrupt, empty, not an archive,
 * or a bomb (an MR_PROBLEM_ARCHIVE problem says what; what was extracted is
 * kept), -1 on a fatal error: the target failed (ENOSPC, EIO...) or the run
 * was cancelled (err->errnum ECANCELED). stats may be NULL. */
int restore_extract(int archive_fd, int work_dirfd, const struct restore_settings *settings,
		    struct restore_stats *stats, struct mr_problems *problems,
		    struct mr_error *err);

enum restore_compression {
	RESTORE_COMPRESS_LZ4 = 0,
	RESTORE_COMPRESS_ZSTD,
	RESTORE_COMPRESS_GZIP,
	RESTORE_COMPRESS_NONE,
};

/* Parses "lz4", "zstd", "gzip", "none". 0 or -1. */
int restore_compression_parse(const char *name, enum restore_compression *c_r);
/* The file suffix for a compression: ".tar.lz4", ".tar.zst", ".tar.gz", ".tar". */
const char *restore_compression_suffix(enum restore_compression c);

/* Writes the tree below user_dirfd (a pax archive, entries relative to the
 * user's root, nanosecond times, owners, symlinks, hard links) compressed
 * as asked into out_fd. Unreadable entries are recorded in problems and left
 * out. Any depth, with a bounded number of descriptors (struct mr_walk).
 * Returns 0, 1 when some entries were left out, -1 with err. */
int restore_backup_user(int user_dirfd, int out_fd, enum restore_compression c,
			struct mr_problems *problems, struct mr_error *err);

/* restore_backup_user() that also counts what it wrote into *stats (files,
 * dirs, symlinks, hardlinks and file data bytes; may be NULL). The archive
 * is full pax (not restricted): restricted pax drops sub-second mtimes. */
int restore_backup_user_stats(int user_dirfd, int out_fd, enum restore_compression c,
			      struct restore_stats *stats, struct mr_problems *problems,
			      struct mr_error *err);

#endif
