/*
 * sync_private.h: what the files of sync/ share and nobody else sees: the
 * state of one sync_tree() call, the plan that phase 1 (plan.c) builds and
 * phase 2 (sync.c, rename.c, copy.c, patch.c, attic.c, meta.c) applies.
 *
 * Calls run one way: sync.c (the run) calls the others; copy.c calls
 * patch.c and attic.c; copy.c, patch.c, rename.c and verify.c call
 * transfer.c; guard.c calls uidlist.c, cyrusindex.c and cyrusmboxes.c
 * (public: sync.h), and plan.c cyrusindex.c (a message file's name); any
 * file may call meta.c and
 * context.c, and those two call no other file of sync/. No file calls
 * back into a file that calls it.
 *
 * The plan holds paths relative to the roots, never open descriptors of
 * entries: phase 2 reopens what it needs below the held root fds with
 * mr_open_beneath(), so nothing in the plan can lead out of the trees.
 */
#ifndef MR_SYNC_PRIVATE_H
#define MR_SYNC_PRIVATE_H

#include "sync/sync.h"

#include <stdint.h>
#include <sys/stat.h>

/* Read/write buffer for whole-file copies and hashing. */
#define SYNC_BUF_SIZE (256 * 1024)
/* Changed in-place blocks a patch may hold in memory before it falls back to
 * a whole copy through a temporary file. */
#define SYNC_PATCH_MEM_MAX (64u * 1024 * 1024)
/* Attempts at copying a source file that changes while it is read. */
#define SYNC_COPY_TRIES 3

enum sync_op_kind {
	SYNC_OP_MKDIR = 1,   /* directory missing (or type change) in dst */
	SYNC_OP_FILE_NEW,    /* regular file missing (or type change) in dst */
	SYNC_OP_FILE_CHANGE, /* both regular files, quick check failed */
	SYNC_OP_SYMLINK,     /* symlink missing, different, or type change */
	SYNC_OP_META,        /* same content, mode or owner differ */
	SYNC_OP_REMOVE,      /* dst entry the source no longer has */
};

/* One step of the plan, in pre-order of the walk (a folder before what it
 * holds; a type change's REMOVE right before the entry that replaces it). */
struct sync_op {
	enum sync_op_kind kind;
	char *rel;           /* path relative to the roots */
	struct stat st;      /* the source's entry (not for REMOVE) */
	struct stat dst;     /* the destination's entry when have_dst */
	int have_dst;
	int typechange;      /* dst holds another type at rel */
	char *target;        /* SYMLINK: the source's link target */
	uint64_t nfiles;     /* REMOVE, and ops with typechange: non-directories
			      * the old entry takes to the attic */
	long cand;           /* FILE_NEW: index of the rename candidate matched
			      * to it, or -1 */
	int done;            /* consumed by a rename */
};

/* A destination file the source no longer has at its path: what a Maildir
 * rename may reuse. */
struct sync_cand {
	char *rel;
	const char *key;     /* Maildir unique name: points into rel */
	size_t keylen;
	struct stat st;
	long op;             /* index of its own REMOVE op, or -1 inside a removed folder */
	long dir_op;         /* inside a removed folder: that folder's REMOVE op
			      * (which counts it in nfiles), else -1 */
	int used;            /* matched to a new file */
};

/* A source folder whose metadata is fixed at the end, deepest first. */
struct sync_dir {
	char *rel;
	struct stat st;
};

struct sync_plan {
	struct sync_op *ops;
	size_t nops, capops;
	struct sync_cand *cands;
	size_t ncands, capcands;
	struct sync_dir *dirs;
	size_t ndirs, capdirs;
	char **same;         /* index files of the guard (sync_ixfile_of()) the
			      * quick check found the same on both sides */
	size_t nsame, capsame;
	int same_sorted;
	uint64_t dst_files;  /* non-directories seen in the destination */
	uint64_t rm_files;   /* of those, headed for the attic */
	uint64_t matched;    /* of those, matched by a rename */
};

/* The folder of the last entry of one side, kept as a cursor (struct
 * mr_walk) so the next entry's folder is reached from it, not from the
 * root: a deep tree costs one step per entry, not its whole depth. */
struct sync_dircache {
	struct mr_walk *w;
};

struct sync_ctx {
	const struct sync_settings *set;
	struct sync_stats *stats;
	struct mr_problems *problems;
	struct mr_error *err;
	int src_root;          /* owned: the source root reopened with O_NOATIME */
	int dst_root;          /* borrowed */
	size_t block_size;
	uint64_t patch_min;
	unsigned char *buf_a, *buf_b;  /* max(SYNC_BUF_SIZE, block_size) each */
	size_t buf_size;
	struct sync_dircache src_cache, dst_cache;
	uint64_t files_done, bytes_done;
	size_t nproblems;      /* problems this call added */
	struct sync_plan plan;
};

/* ---- plan.c ---------------------------------------------------------- */

/* Phase 1: walks both trees and fills ctx->plan. 0, or -1 with ctx->err
 * (destination I/O, memory). Source failures become problems. */
int sync_plan_build(struct sync_ctx *ctx);
void sync_plan_free(struct sync_plan *plan);
/* 1 when the plan found file name of folder (relative, "" for the root), one
 * of the guard's index files, the same on both sides by the quick check,
 * so the destination's copy holds the source's bytes; else 0. */
int sync_plan_same(struct sync_ctx *ctx, const char *folder, const char *name);

/* ---- context.c: shared by every file here; calls none of them ------- */

/* Records a problem of this sync (counted in ctx->nproblems). */
void sync_problem(struct sync_ctx *ctx, enum mr_problem_kind kind, int errnum, const char *rel,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Joins parent and name ("" parent: name alone). malloc'd, NULL on ENOMEM. */
char *sync_join(const char *parent, const char *name);
/* Splits rel into its parent (malloc'd, "" for the root) and its last
 * component (points into rel). -1 on ENOMEM. */
int sync_split(const char *rel, char **parent_r, const char **name_r);
/* Opens a source entry for reading only, without updating its access time
 * where the kernel allows (O_NOATIME), never following a link. */
int sync_src_openat(int dirfd, const char *name, int flags);
/* Returns a borrowed fd of folder rel_parent of the source (is_src) or the
 * destination, from a one-entry cache. -1 with errno (err not set). */
int sync_dir_fd(struct sync_ctx *ctx, int is_src, const char *rel_parent);
/* Drops the cached destination folder (after anything moved folders). */
void sync_dircache_drop(struct sync_dircache *c);
/* Calls the progress callback. */
void sync_progress(struct sync_ctx *ctx, uint64_t bytes);
/* Temporary names of sync start with this (mr_tmp_name). */
#define SYNC_TMP_PREFIX ".mrsync-"
/* 1 (with err set to ECANCELED) when the caller's cancel flag is set,
 * else 0. Polled between entries. */
int sync_cancelled(struct sync_ctx *ctx);

/* ---- meta.c ---------------------------------------------------------- */

/* Whether mode bits, owner (when owner) or mtime of d differ from s. */
int sync_meta_differs(const struct stat *s, const struct stat *d, int owner);
/* Gives dirfd/name the source's owner (when preserve_owner), permission
 * bits (not for symlinks) and times, skipping what d (may be NULL) already
 * has. rel names it in errors. 0 or -1 with ctx->err. */
int sync_meta_apply_at(struct sync_ctx *ctx, int dirfd, const char *name, const char *rel,
		       const struct stat *s, const struct stat *d);
/* The same on an open regular file. */
int sync_meta_apply_fd(struct sync_ctx *ctx, int fd, const char *rel, const struct stat *s);
/* 1 when two stats have the same mtime to the nanosecond. */
int sync_same_mtime(const struct stat *a, const struct stat *b);
/* The Maildir unique name of a file name: everything before the first ':'
 * (the whole name when it has none). Returns its length. */
size_t sync_maildir_key(const char *name);
/* 1 when path rel is a Maildir message (a file in a cur/ or new/ folder,
 * with a unique name: digits, a dot, more; and, where its name carries ",S=<size>", that size)
 * of size bytes. Such a file's name names its content: it is never
 * rewritten in place, so the same name and size is the same message. */
int sync_maildir_message(const char *rel, uint64_t size);
/* The quick check: 1 when source s and destination d, both regular files
 * of path rel with the same size, may be taken for the same content
 * without reading either. The rule (documented in sync.h): the same mtime
 * to the nanosecond; or the same mtime to the second where the destination
 * has whole seconds only (a backup that keeps seconds: ustar, gnutar, zip
 * with its extended time) and that second is before backup_started (0:
 * unknown, no such rule); or a Maildir message. Never under
 * compare_content (the caller checks that). */
int sync_same_file_quick(const char *rel, const struct stat *s, const struct stat *d,
			 int64_t backup_started);

/* ---- transfer.c: source files for copy.c and patch.c ---------------- */

/* What one attempt at a file came to. The copy, the patch, the content
 * comparison and the sparse copy all answer with these, and a value means
 * the same in each of them. */
enum sync_result {
	SYNC_FAILED = -1,         /* destination failure: ctx->err says why */
	SYNC_DONE = 0,
	SYNC_SOURCE_PROBLEM = 1,  /* the source failed; recorded, and the
	                           * destination keeps the backup's version */
	SYNC_SOURCE_CHANGED = 2,  /* the source changed while it was read */
	SYNC_COPY_WHOLE = 3,      /* (patch) cannot patch: copy it whole */
	SYNC_SAME = 4,            /* (comparison) equal contents */
	SYNC_DIFFERENT = 5,       /* (comparison) different contents */
};

/* Runs once(ctx, op, parent, name) on the op's path, again while it returns
 * SYNC_SOURCE_CHANGED, SYNC_COPY_TRIES times at most; a file that keeps
 * changing is recorded as unreadable ("kept changing while it was <verb>")
 * and the destination keeps the backup's version. Returns once's last
 * result, SYNC_SOURCE_PROBLEM for that recorded case. */
enum sync_result sync_retry_source(struct sync_ctx *ctx, const struct sync_op *op,
				   enum sync_result (*once)(struct sync_ctx *ctx,
							    const struct sync_op *op,
							    const char *parent, const char *name),
				   const char *verb);
/* XXH3 of an open file's whole content, read with buf. 0, or -1/errno. */
int sync_hash_fd(int fd, unsigned char *buf, size_t buflen, uint64_t *hash_r);
/* Records a source failure of rel: call failed with e; the destination
 * keeps its version. */
void sync_src_failed(struct sync_ctx *ctx, const char *call, const char *rel, int e);
/* Opens source file rel (folder parent, last component name) read-only and
 * fstats it into st. Returns the fd, or -1 after recording the problem. */
int sync_open_src_file(struct sync_ctx *ctx, const char *parent, const char *name,
		       const char *rel, struct stat *st);
/* Opens the destination's file rel (last component name, below folder fd
 * ddir) with flags | O_NOFOLLOW and fstats it into st. Returns the fd; -1
 * with ctx->err when the open or fstat failed or it is no longer a file;
 * -2 without an error when refused is nonzero and the open was refused
 * (EACCES, EPERM, ETXTBSY). */
int sync_open_dst_file(struct sync_ctx *ctx, int ddir, const char *name, const char *rel,
		       int flags, int refused, struct stat *st);
/* 1 when st (taken now) no longer matches before: size, mtime or ctime. */
int sync_changed_since(const struct stat *before, const struct stat *now);
/* Fails with ENOSPC (and the sizes in ctx->err) when writing need bytes
 * into a file on fd's file system would leave less than MR_HEADROOM_BYTES
 * free. 0 or -1. */
int sync_room_for(struct sync_ctx *ctx, int fd, uint64_t need, const char *rel);
/* What writing file st from offset from on may allocate: the bytes from
 * there, but no more than the blocks st allocates (holes cost nothing). */
uint64_t sync_alloc_bytes(const struct stat *st, off_t from);
/* Copies bytes [from, size) of sfd into tfd at the same offsets, keeping
 * holes holes: only the data ranges (SEEK_DATA / SEEK_HOLE) are read, and
 * blocks of zeros are not written (tfd must hold nothing from from on);
 * tfd is then truncated to size. total_r gets the bytes covered,
 * written_r the bytes written. SYNC_DONE, SYNC_SOURCE_PROBLEM (recorded),
 * SYNC_SOURCE_CHANGED (it shrank while read) or SYNC_FAILED. */
enum sync_result sync_copy_sparse(struct sync_ctx *ctx, int sfd, int tfd, off_t from, off_t size,
				  const char *rel, uint64_t *total_r, uint64_t *written_r);

/* ---- copy.c ---------------------------------------------------------- */

/* Copies source file rel whole into a temporary file and renames it over
 * the destination's rel. 0 done or source problem recorded (destination
 * unchanged), -1 with ctx->err on a destination failure. */
int sync_copy_file(struct sync_ctx *ctx, const struct sync_op *op);
/* Gives destination file op->rel, whose content is already the source's
 * (it passed the quick check or was matched by a rename) but which shares
 * its inode with other names (the backup's hard links), an inode of its
 * own with the source's mode, owner and times (op->st): its own bytes are
 * cloned or copied into a temporary file renamed over it. The damaged
 * source is not read. 0, or -1 with ctx->err. */
int sync_unshare_file(struct sync_ctx *ctx, const struct sync_op *op);
/* Handles a FILE_CHANGE op: time-only fix when contents are equal, block
 * patch for large files, whole copy otherwise. Same returns. */
int sync_change_file(struct sync_ctx *ctx, const struct sync_op *op);
/* Creates or replaces symlink rel atomically. Same returns. */
int sync_make_symlink(struct sync_ctx *ctx, const struct sync_op *op);
/* ---- patch.c --------------------------------------------------------- */

/* Patches destination file rel block by block from the source.
 * SYNC_COPY_WHOLE when it could not patch and the caller should copy whole
 * instead, SYNC_DONE done or source problem recorded, SYNC_FAILED with
 * ctx->err. */
enum sync_result sync_patch_file(struct sync_ctx *ctx, const struct sync_op *op);

/* ---- rename.c -------------------------------------------------------- */

/* Matches new source files with destination files the source no longer has
 * (same unique name and size, equal content): sets op->cand and counts
 * plan.matched. Only reads. 0 or -1 with ctx->err. */
int sync_renames_match(struct sync_ctx *ctx);
/* Renames the matched files into place; a hard-linked one whose mode,
 * owner or time must change then gets an inode of its own
 * (sync_unshare_file()). 0 or -1 with ctx->err. */
int sync_renames_apply(struct sync_ctx *ctx);

/* ---- attic.c --------------------------------------------------------- */

/* Moves destination entry rel into the attic under the same relative path,
 * adding ".1", ".2", ... when the attic already has one, and counts nfiles
 * (the non-directories it holds) in stats->attic_files. Drops the cached
 * destination folder. 0 or -1 with ctx->err. */
int sync_attic_move(struct sync_ctx *ctx, const char *rel, uint64_t nfiles);

/* ---- uidlist.c ------------------------------------------------------- */

/* The largest index or subscriptions file read; a bigger one counts as
 * unreadable (the guard then counts files instead). */
#define SYNC_INDEX_MAX (64u * 1024 * 1024)

/* What a Maildir folder's own index names (dovecot-uidlist version 3 or
 * courierimapuiddb / dovecot-uidlist version 1: the message base names),
 * or what a subscriptions file names (folder names, "INBOX." dropped and
 * tabs read as '.'). Names point into buf; v is sorted by name. */
struct sync_index_entry {
	char *name;
	uint64_t uid;        /* 0 in a subscriptions file */
};
struct sync_index {
	char *buf;           /* the file's bytes, owned (NULL after a parse of
			      * the caller's buffer) */
	size_t len;
	struct sync_index_entry *v;
	size_t n, cap;
	unsigned version;    /* 1 or 3 (subscriptions: 1); 0 not understood */
	unsigned char guid[16]; /* version 3: the mailbox GUID (G), when have_guid */
	int have_guid;
	uint64_t next_uid;   /* the header's next UID */
	uint64_t records;    /* lines read as records */
	uint64_t bad_lines;  /* odd lines skipped */
	int torn;            /* the last line had no '\n' (dropped) */
};

/* The files the guard reads in a Maildir folder. */
enum sync_ixfile {
	SYNC_IX_UIDLIST = 0,     /* dovecot-uidlist */
	SYNC_IX_COURIER_UIDDB,   /* courierimapuiddb */
	SYNC_IX_LOG,             /* dovecot.index.log */
	SYNC_IX_LOG2,            /* dovecot.index.log.2 */
	SYNC_IX_SUBS,            /* subscriptions */
	SYNC_IX_COURIER_SUBS,    /* courierimapsubscribed */
	SYNC_IX_MAILBOX_LOG,     /* dovecot.mailbox.log */
	SYNC_IX_N
};
/* Which of them name is, or -1; and the name of one. */
int sync_ixfile_of(const char *name);
const char *sync_ixfile_name(enum sync_ixfile f);

/* Where the guard reads one folder's index files: the source folder; or,
 * for each file the plan found the same on both sides (sync_plan_same()),
 * the destination's copy of the folder, which holds the same bytes and
 * spares the damaged disk a read the sync itself would not make. */
struct sync_ixdir {
	int src_fd;          /* the source folder */
	int dst_fd;          /* the destination's same folder, or -1 */
	unsigned same;       /* bit 1u << enum sync_ixfile: read it in dst_fd */
};

/* Length of the base name of Maildir file name name[0..len): up to the
 * first ':' or ','. */
size_t sync_index_key(const char *name, size_t len);
/* Parses an index held in buf[0..len) in place (buf is modified and must
 * outlive ix; ix starts zeroed). 0, or -1 with errno EINVAL (no header
 * this reader knows) or ENOMEM. */
int sync_index_parse(struct sync_index *ix, char *buf, size_t len);
/* The same for a subscriptions file; never EINVAL. */
int sync_subs_parse(struct sync_index *ix, char *buf, size_t len);
/* Reads the index of source folder folder_fd (dovecot-uidlist, else
 * courierimapuiddb) below it with O_NOFOLLOW, read-only. 1 read (see
 * sync_index_clean()), 0 there is none, -1 with errno when there is one
 * that cannot be used (unreadable, no regular file, too large, not
 * understood); ix is zeroed first and holds nothing after 0 or -1. */
int sync_index_read(int folder_fd, struct sync_index *ix);
/* The same, each file read where d says. */
int sync_index_read_in(const struct sync_ixdir *d, struct sync_index *ix);
/* The same for the subscriptions file of folder_fd (subscriptions, else
 * courierimapsubscribed). */
int sync_subs_read(int folder_fd, struct sync_index *ix);
int sync_subs_read_in(const struct sync_ixdir *d, struct sync_index *ix);
/* 1 when ix names name[0..len) exactly (its UID into uid_r, which may be
 * NULL), else 0. */
int sync_index_find(const struct sync_index *ix, const char *name, size_t len, uint64_t *uid_r);
int sync_index_has(const struct sync_index *ix, const char *name, size_t len);
/* 1 when ix was read cleanly enough to tell deleted from missing: a known
 * version, no torn tail, odd lines at most an eighth of the records. */
int sync_index_clean(const struct sync_index *ix);
/* Frees what ix holds (buf too); ix is zeroed. */
void sync_index_free(struct sync_index *ix);

/* The UIDs Dovecot's transaction log of a folder records as expunged
 * (expunge and expunge-by-GUID records, requested or done): Dovecot
 * unlinks an expunged message's file at once but drops its name from the
 * uidlist only at a later sync, so a POP user's last session leaves every
 * name it deleted in the uidlist. */
struct sync_uid_range {
	uint32_t lo, hi;
};
struct sync_expunged {
	struct sync_uid_range *v;
	size_t n, cap;
};
/* Adds the expunges of transaction log buf[0..len) (read only) to ex
 * (zeroed first by the caller), kept sorted and merged for
 * sync_expunged_has(). A torn or damaged tail ends the log.
 * 0, or -1 with errno EINVAL (no log header this reader knows) or
 * ENOMEM. */
int sync_expunged_parse(struct sync_expunged *ex, const unsigned char *buf, size_t len);
/* Reads dovecot.index.log and dovecot.index.log.2 of source folder
 * folder_fd below it with O_NOFOLLOW, read-only. Returns the number of
 * logs read (0: none; one that cannot be read counts as none), -1 with
 * errno ENOMEM. ex is zeroed first. */
int sync_expunged_read(int folder_fd, struct sync_expunged *ex);
int sync_expunged_read_in(const struct sync_ixdir *d, struct sync_expunged *ex);
/* Whether Dovecot's mailbox log of folder folder_fd (the source's
 * dovecot.mailbox.log, read below it with O_NOFOLLOW) records the deletion
 * of the mailbox with this GUID: 1 yes, 0 no (or no log), -1 with errno
 * (the log cannot be read). */
int sync_mailbox_deleted(int folder_fd, const unsigned char guid[16]);
int sync_mailbox_deleted_in(const struct sync_ixdir *d, const unsigned char guid[16]);
/* Reads the index of destination folder rel (the backup's copy, below
 * dst_root): as sync_index_read(). */
int sync_index_read_dst(int dst_root, const char *rel, struct sync_index *ix);
/* 1 when uid is among the expunged. */
int sync_expunged_has(const struct sync_expunged *ex, uint64_t uid);
void sync_expunged_free(struct sync_expunged *ex);

/* ---- guard.c --------------------------------------------------------- */

/* Decides the remove guard on the whole plan (after the rename match),
 * before anything changes: 1 when it trips (its problems recorded), 0 when
 * the sync may go on, -1 with ctx->err (memory). See guard.c. */
int sync_guard_trips(struct sync_ctx *ctx);

#endif
