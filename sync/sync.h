/*
 * sync.h: make a work copy equal to the read-only damaged source.
 *
 * How to use it:
 *   1. Open the source folder (O_RDONLY | O_DIRECTORY) and the destination
 *      (the work copy), an attic folder and a scratch folder on the
 *      destination's file system.
 *   2. sync_settings_init(&s), set attic_dirfd and tmp_dirfd, then
 *      sync_tree(src_fd, dst_fd, &s, &stats, &problems, &err).
 *   3. On 0 the destination equals the source; make it durable with
 *      sync_make_durable() before the caller renames it into place.
 *   4. sync_verify() compares two trees and lists the differences.
 *
 * Rules the implementation keeps (docs/LAYOUT.md, "What a restored user is"):
 *   - The source is only ever opened for reading and never mmapped; every
 *     path is resolved below a held directory fd with O_NOFOLLOW.
 *   - Listings of both sides are sorted and merged. What is new or changed
 *     is copied; what the source no longer has is moved (never unlinked) to
 *     the attic under its relative path; modes, times (directories after
 *     their contents), owners (when preserve_owner) and symlinks are fixed.
 *   - A quick check on type, size and time, which reads no file: the same
 *     size and the same mtime to the nanosecond; or, where the destination
 *     has whole seconds only (a backup format that keeps seconds: ustar,
 *     gnutar, zip's extended time), the same second, when that second is
 *     before the backup began (backup_started); or a Maildir message
 *     (a file in cur/ or new/: its unique name, with ",S=<size>" where
 *     present, names its content) of the same name and size. Those only
 *     get their time fixed. Other
 *     files of equal size are compared (xxh3) and only the time is fixed
 *     when equal. With compare_content every file is compared.
 *   - Maildir renames (flag changes, new/ to cur/, moves between folders)
 *     become renames of the file already there, matched by the Maildir
 *     unique name and size and confirmed by content.
 *   - Large files changed in place are patched block by block.
 *   - Damage is not absence: an entry that fails to stat or read keeps the
 *     destination's version and is recorded (MR_PROBLEM_UNREADABLE); a
 *     folder that fails to list is not pruned. The remove guard tells a
 *     user's deletions from damage by each Maildir folder's own index on
 *     the source (dovecot-uidlist, courierimapuiddb): messages it no longer
 *     names were deleted and never trip it; when the messages it still
 *     names but the source lacks are more than max_remove_pct percent of a
 *     folder's, or when the files no index shows deleted are at least
 *     min_remove_files and more than max_remove_pct percent of the user's,
 *     the sync changes nothing at all (no rename, copy, patch or metadata
 *     fix either) and records MR_PROBLEM_GUARD problems. A Maildir++
 *     folder gone from the source is judged by its parent's subscriptions
 *     file. The whole rule is written at the top of guard.c.
 *   - A Cyrus folder (settings.format MR_FORMAT_CYRUS): message files
 *     "N." of the same name and size are the same message and are never
 *     read; the guard reads each folder's cyrus.index on the source (an
 *     expunged record is a deletion, a listed one whose file is gone is
 *     missing, an index Cyrus 2.4 to 3.12 would not write stops the sync)
 *     and judges a vanished folder by Cyrus's mailbox list.
 *   - New file contents are written to a temporary file and renamed over the
 *     old one, so nothing half-written is ever taken for done; a file that
 *     changed while it was copied is copied again (and recorded if it keeps
 *     changing). Block patches are the one write in place: the source is
 *     read completely before a block is written, and the file's time is set
 *     last, so an interrupted patch is seen as changed and redone by the
 *     next run (sync/patch.c says why this is safe for a work copy).
 *   - A destination entry with other hard links (the restore extracts an
 *     archive's links as links) is never written, nor given a mode, owner
 *     or time, in place, since that would change its other names too: it
 *     is copied whole instead, which gives its name an inode of its own
 *     (from the source when its content changed; from its own bytes when
 *     only its mode, owner or time must change, so the damaged source is
 *     not read for it).
 *   - Source files and folders are opened with O_NOATIME where the kernel
 *     allows, so even a read-write mounted source is not written to.
 *
 * Where the code lives: plan.c (phase 1: the merged walk, no changes),
 * guard.c (the remove guard) with uidlist.c (the mailbox indexes) and
 * cyrusindex.c, cyrusmboxes.c (Cyrus's index and mailbox list),
 * sync.c (phase 2: the order of application), rename.c (Maildir renames),
 * copy.c (whole copies, symlinks), patch.c (block patches), transfer.c
 * (reading source files, for both), attic.c, meta.c (modes, owners, times),
 * context.c (the helpers all of them share), verify.c, durable.c.
 */
#ifndef MR_SYNC_H
#define MR_SYNC_H

#include "common/common.h"

#include <stdatomic.h>
#include <stdint.h>

struct sync_settings {
	/* Percentage of a Maildir folder's messages that may be missing (its
	 * index on the source still names them), and of the user's files
	 * that may go to the attic without an index showing them deleted,
	 * before the sync stops, having changed nothing, and records
	 * MR_PROBLEM_GUARD. Default 50. */
	int max_remove_pct;
	/* The user-wide count (files no index shows deleted) trips only from
	 * this many files on, so a tiny mailbox or a stray file never does.
	 * Default 10; 0 lets the percentage alone decide. */
	int min_remove_files;
	/* Copy owners (needs root). */
	int preserve_owner;
	/* Where removed entries go, under their relative path. Required; it
	 * must be on the destination's file system (entries move by rename). */
	int attic_dirfd;
	/* Scratch folder on the destination's file system for temporary files
	 * (".mrsync-<pid>.<n>", unique per process and thread), or -1 to
	 * write them beside their final place. */
	int tmp_dirfd;
	/* Block size for patching large files; 0 means 4 KiB (the page size
	 * Dovecot rewrites its cache and index files in). */
	size_t block_size;
	/* Files at least this large with equal-size prefixes are patched block
	 * by block instead of copied whole; 0 means 64 KiB. */
	uint64_t patch_min_size;
	/* The destination's contents are not to be trusted (the backup it was
	 * restored from failed a check after files were written): files that
	 * pass the quick check (same size and time) are compared by content
	 * too, and damaged ones copied or patched from the source. */
	int compare_content;
	/* When the backup the destination came from was started (Unix
	 * seconds; 0 unknown). Only with it does the whole-second quick check
	 * hold: a file last changed in an earlier second than the backup began
	 * cannot have changed after the backup read it. */
	int64_t backup_started;
	/* Polled between entries; nonzero stops with -1 and errnum ECANCELED.
	 * May be NULL. */
	const atomic_int *cancel;
	/* Called now and then with files and bytes done. May be NULL. */
	void (*progress)(void *arg, uint64_t files_done, uint64_t bytes_done);
	void *progress_arg;
	/* The store the trees hold (MR_FORMAT_MAILDIR by default; AUTO counts
	 * as Maildir). MR_FORMAT_CYRUS: the trees are one user's Cyrus
	 * folder (user/<name>/ of a spool): a message file "N." of the same
	 * name and size is the same message (Cyrus never rewrites one) and is
	 * never read; the guard reads each folder's cyrus.index. */
	enum mr_store_format format;
	/* Cyrus: the user's INBOX by its internal name ("user.bob^smith"),
	 * and the mailbox list (--cyrus-mailboxes) that judges a folder gone
	 * from the source; either may be NULL (such a folder's files are then
	 * only counted). */
	const char *cyrus_inbox;
	const struct sync_cyrus_mboxes *cyrus_mboxes;
};

struct sync_stats {
	uint64_t files, dirs, symlinks, bytes; /* seen in the source */
	uint64_t copied_files, copied_bytes;   /* written whole (symlinks too) */
	uint64_t renamed;                      /* Maildir renames done */
	uint64_t patched_files, patched_bytes; /* patched, bytes written by it */
	uint64_t attic_files;                  /* non-directories moved to the attic */
	uint64_t unreadable;                   /* source entries that failed */
	uint64_t meta_fixed;                   /* mode/time/owner fixes only
						* (equal content, other time) */
	uint64_t bytes_written;                /* all file data written */
	uint64_t source_bytes_read;            /* file data read from the source */
};

/* Sets the defaults: max_remove_pct 50, min_remove_files 10, tmp_dirfd -1,
 * attic_dirfd -1. */
void sync_settings_init(struct sync_settings *s);

/* Makes the tree at dst_dirfd equal to the tree at src_dirfd. Returns 0 when
 * the destination now equals the source, 1 when it finished but something
 * in problems (unreadable entries, the remove guard) kept it from being
 * equal, -1 on a fatal error (destination I/O, ENOSPC, cancelled: err says
 * which; the destination is consistent and a new call resumes). stats may
 * be NULL; it is zeroed first. Problems are appended to problems, never
 * cleared: unreadable source entries (MR_PROBLEM_UNREADABLE), the guard
 * (MR_PROBLEM_GUARD, returned with nothing changed; counted over
 * non-directories, matched renames excluded), and
 * source entries that are no file, folder or symlink (MR_PROBLEM_OTHER, not
 * copied). */
int sync_tree(int src_dirfd, int dst_dirfd, const struct sync_settings *settings,
	      struct sync_stats *stats, struct mr_problems *problems,
	      struct mr_error *err);

/* Makes everything below dst_dirfd durable: file data and directories (fsync
 * of each, or syncfs of the file system). 0, or -1 with err: a failed fsync
 * means the caller must not take the copy for done. */
int sync_make_durable(int dst_dirfd, struct mr_error *err);

/* Compares the trees: paths, types, contents (xxh3 of both sides),
 * permission bits, mtimes to the nanosecond (what the sync sets), symlink
 * targets, and owners when check_owner; the roots' own modes and times too.
 * Diff paths are relative ("." for the root); messages say what differs,
 * e.g. "mode differs (0644 in the source, 0600 in the target)". The source
 * is only read. Each difference is added to
 * diffs (MR_PROBLEM_DIFF; unreadable source entries as
 * MR_PROBLEM_UNREADABLE). Any depth: both walks (here and in sync_tree)
 * keep their levels on the heap and hold a bounded number of descriptors
 * (struct mr_walk, common.h). Returns 0 equal, 1 different, -1 error. */
int sync_verify(int src_dirfd, int dst_dirfd, int check_owner, struct mr_problems *diffs,
		struct mr_error *err);

/* ---- Cyrus (cyrusindex.c, cyrusmboxes.c) ---------------------------- */

/* The cyrus.index minor versions read: Cyrus 2.4 (12) to 3.12 (19). */
#define SYNC_CYRUS_INDEX_MIN_VERSION 12
#define SYNC_CYRUS_INDEX_MAX_VERSION 19
#define SYNC_CYRUS_INDEX "cyrus.index"
/* Cyrus's internal flags in a record's system_flags. */
#define SYNC_CYRUS_FLAG_EXPUNGED (1u << 31)
#define SYNC_CYRUS_FLAG_UNLINKED (1u << 30)
#define SYNC_CYRUS_FLAG_ARCHIVED (1u << 29)

struct sync_cyrus_record {
	uint32_t uid;
	uint32_t size;
	uint32_t flags;      /* system_flags with the internal flags */
};
/* A cyrus.index read (the format: the top of sync/cyrusindex.c). */
struct sync_cyrus_index {
	uint32_t generation, format, version, start_offset, record_size, num_records;
	uint32_t last_uid, uidvalidity, exists;
	struct sync_cyrus_record *v;  /* sorted by uid */
	size_t n;
};
/* Header and record sizes of a minor version; 0 for one not read. */
size_t sync_cyrus_header_size(uint32_t version);
size_t sync_cyrus_record_size(uint32_t version);
/* Parses cyrus.index bytes buf[0..len) (only read) into ix. 0, or -1 with
 * errno EINVAL and the reason in why ("minor version 20 is not one ...",
 * "truncated: ...", "record 3's checksum fails"), or ENOMEM. Free with
 * sync_cyrus_index_free() after 0. */
int sync_cyrus_index_parse(const unsigned char *buf, size_t len, struct sync_cyrus_index *ix,
			   char *why, size_t whylen);
/* Reads cyrus.index of folder folder_fd (read-only, O_NOFOLLOW, O_NOATIME
 * where allowed). 1 read, 0 there is none, -1 with errno and why when it
 * cannot be used (unreadable, too large, refused by the parse). */
int sync_cyrus_index_read(int folder_fd, struct sync_cyrus_index *ix, char *why, size_t whylen);
/* The record of uid, or NULL. */
const struct sync_cyrus_record *sync_cyrus_index_find(const struct sync_cyrus_index *ix,
						      uint32_t uid);
void sync_cyrus_index_free(struct sync_cyrus_index *ix);
/* 1 when name is a Cyrus message file ("<uid>." with uid 1 to 2^32-1, no
 * leading zero), its uid into *uid_r (may be NULL); else 0. */
int sync_cyrus_message_name(const char *name, uint32_t *uid_r);

/* Cyrus's mailbox list: internal names, sorted (format: the top of
 * sync/cyrusmboxes.c). */
struct sync_cyrus_mboxes {
	char **v;
	size_t n, cap;
};
/* Parses a mailbox list held in buf[0..len). 0, or -1 with errno ENOMEM. */
int sync_cyrus_mboxes_parse(struct sync_cyrus_mboxes *mb, const char *buf, size_t len);
/* Reads the file at path (an operator's option). 0, or -1 with err. */
int sync_cyrus_mboxes_load(const char *path, struct sync_cyrus_mboxes *mb, struct mr_error *err);
/* 1 when mb names mailbox name; 0 when not or mb is NULL. */
int sync_cyrus_mboxes_has(const struct sync_cyrus_mboxes *mb, const char *name);
void sync_cyrus_mboxes_free(struct sync_cyrus_mboxes *mb);

#endif
