/*
 * common.h: the helpers every mailrestore module shares.
 *
 * How to use it:
 *   1. Validate every user name that comes from outside with
 *      mr_user_name_valid() before it touches a path (the rule is in docs/LAYOUT.md, "User names").
 *   2. Do every file system call that can fail through the mr_io table
 *      (mr_io->openat, mr_io->read, ...) so tests can inject faults with
 *      mr_io_fault_add() (EIO, ENOSPC, short writes, fsync errors).
 *   3. Resolve paths that come from archives or the network below a held
 *      directory fd with mr_open_beneath() / mr_mkdirs_beneath(), never by
 *      joining strings.
 *   4. Report errors once, where they happen, into a struct mr_error with the
 *      failing call and the path in it ("openat(cur/x) failed: ..."); callers
 *      add context with mr_error_prefix().
 *   5. Collect per-path problems of a user's restore (unreadable files,
 *      refused archive entries) in a struct mr_problems.
 *
 * Fallible functions return 0 on success and -1 on error (1/0/-1 where "not
 * found" is normal) and hand values back through _r parameters.
 */
#ifndef MR_COMMON_H
#define MR_COMMON_H

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Exit codes (sysexits). */
enum {
	MR_EX_OK = 0,          /* done / allowed */
	MR_EX_PROBLEMS = 1,    /* finished with problems (differences, attention) */
	MR_EX_USAGE = 64,      /* command line usage error */
	MR_EX_DATAERR = 65,    /* bad input data (invalid user name, ...) */
	MR_EX_NOINPUT = 66,    /* an input file did not exist or was unreadable */
	MR_EX_NOUSER = 67,     /* user not affected by the outage */
	MR_EX_UNAVAILABLE = 69,/* daemon unreachable */
	MR_EX_SOFTWARE = 70,   /* internal error */
	MR_EX_OSERR = 71,
	MR_EX_CANTCREAT = 73,
	MR_EX_IOERR = 74,      /* I/O error */
	MR_EX_TEMPFAIL = 75,   /* try again later (not active yet) */
	MR_EX_NOPERM = 77,     /* not allowed (operator commands) */
};

#define MR_USER_NAME_MAX 255

/* The daemon's socket when neither an option nor $MAILRESTORE_SOCKET
 * names one (the daemon and every client use this one definition). */
#define MR_SOCKET_DEFAULT "/run/mailrestore/mailrestore.sock"

/* Returns 1 when name is a valid user name: 1 to 255 bytes of
 * [A-Za-z0-9._@+-], the first a letter or digit. 0 otherwise. */
int mr_user_name_valid(const char *name);

/* A file name made of a user's name and a suffix (".lock", ".tmp",
 * ".<time>") into buf (MR_USER_NAME_MAX + 1 bytes): name + suffix when that
 * fits in 255 bytes, else the name's first bytes, "~", 16 hex digits of a
 * 64-bit FNV-1a hash of the whole name, then the suffix, 255 bytes in all
 * (a 255-byte user name is valid; its lock file must be too). suffix is
 * at most 64 bytes. */
void mr_user_name_suffixed(const char *name, const char *suffix, char *buf);

/* ---- errors --------------------------------------------------------- */

/* An error message written once where it happened. errnum is the errno of
 * the failing call (0 when none), so callers can tell ENOSPC from EIO. */
struct mr_error {
	int errnum;
	char msg[1024];
};

/* Sets err to the formatted message. When errnum is nonzero, appends
 * ": <strerror(errnum)>". err may be NULL (then nothing happens). */
void mr_error_set(struct mr_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepends "<prefix>: " to err's message, keeping errnum. */
void mr_error_prefix(struct mr_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Resets err to "no error". */
void mr_error_clear(struct mr_error *err);

/* Maps an errno to an exit code: ENOSPC/EIO/... -> 74, else 70. */
int mr_exit_code_for_errno(int errnum);

/* ---- problems: per-path findings of one user's job ------------------ */

enum mr_problem_kind {
	MR_PROBLEM_UNREADABLE = 1,  /* source entry failed to stat/read/list */
	MR_PROBLEM_REFUSED,         /* hostile archive entry refused */
	MR_PROBLEM_ARCHIVE,         /* archive corrupt/truncated */
	MR_PROBLEM_GUARD,           /* --max-remove guard tripped */
	MR_PROBLEM_MISSING,         /* user folder missing from the source */
	MR_PROBLEM_DIFF,            /* verify: a difference */
	MR_PROBLEM_OTHER,
};

struct mr_problem {
	enum mr_problem_kind kind;
	int errnum;
	char *path;     /* relative to the user's root ("" for the root) */
	char *message;  /* human readable, includes the failing call */
};

struct mr_problems {
	struct mr_problem *v;
	size_t n, cap;
	size_t dropped;  /* added after MR_PROBLEMS_MAX; counted only */
};
#define MR_PROBLEMS_MAX 10000

/* Appends a problem (copies path and the formatted message). Never fails:
 * when memory or MR_PROBLEMS_MAX runs out the problem is only counted. */
void mr_problems_add(struct mr_problems *p, enum mr_problem_kind kind, int errnum,
		     const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The same with a va_list, for wrappers that count what they add. */
void mr_problems_addv(struct mr_problems *p, enum mr_problem_kind kind, int errnum,
		      const char *path, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));
/* Number of problems of the given kind (0 = any kind), dropped included
 * for kind 0. */
size_t mr_problems_count(const struct mr_problems *p, enum mr_problem_kind kind);
/* Frees the contents; p itself stays usable (empty). */
void mr_problems_reset(struct mr_problems *p);
/* Writes a one-line summary of up to max_paths problems into buf, e.g.
 * "2 unreadable: cur/x (read: Input/output error), ..." */
void mr_problems_summary(const struct mr_problems *p, char *buf, size_t len, size_t max_paths);
const char *mr_problem_kind_name(enum mr_problem_kind kind);

/* ---- the I/O layer -------------------------------------------------- */

/* Every call through which mailrestore touches a file system. The default
 * table calls libc; tests install faults with mr_io_fault_add(). */
struct mr_io_ops {
	int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*read)(int fd, void *buf, size_t len);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	int (*fstatat)(int dirfd, const char *path, struct stat *st, int flags);
	int (*fstat)(int fd, struct stat *st);
	int (*fsync)(int fd);
	int (*syncfs)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*mkdirat)(int dirfd, const char *path, mode_t mode);
	int (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
	int (*unlinkat)(int dirfd, const char *path, int flags);
	int (*symlinkat)(const char *target, int dirfd, const char *path);
	ssize_t (*readlinkat)(int dirfd, const char *path, char *buf, size_t len);
	int (*linkat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags);
	/* Linux getdents64: fills buf with struct linux_dirent64 records. */
	ssize_t (*getdents)(int fd, void *buf, size_t len);
	int (*fchmod)(int fd, mode_t mode);
	int (*fchmodat)(int dirfd, const char *path, mode_t mode, int flags);
	int (*fchownat)(int dirfd, const char *path, uid_t uid, gid_t gid, int flags);
	int (*utimensat)(int dirfd, const char *path, const struct timespec ts[2], int flags);
	int (*futimens)(int fd, const struct timespec ts[2]);
	/* SEEK_DATA / SEEK_HOLE of sparse copies (and plain seeks). */
	off_t (*lseek)(int fd, off_t off, int whence);
};

/* The table in force. Never NULL. */
extern const struct mr_io_ops *mr_io;
/* The libc table. */
extern const struct mr_io_ops mr_io_libc;

/* Fault injection for tests. A fault fails the op-th kind of call whose
 * path (for fd calls: the name the fd was opened with, last component
 * included) contains name_contains (NULL: any), skipping the first `after`
 * matching calls, `count` times (0: forever). errnum is set in errno; for
 * read/write a nonzero short_len instead makes the call transfer at most
 * short_len bytes (a short read/write, not an error). */
enum mr_io_op {
	MR_IO_OPEN, MR_IO_READ, MR_IO_WRITE, MR_IO_STAT, MR_IO_FSYNC, MR_IO_GETDENTS,
	MR_IO_RENAME, MR_IO_MKDIR, MR_IO_UNLINK, MR_IO_TRUNCATE, MR_IO_SYMLINK,
	MR_IO_READLINK, MR_IO_META, MR_IO_OP_COUNT
};
struct mr_io_fault {
	enum mr_io_op op;
	const char *name_contains;
	int errnum;
	long after;
	long count;
	size_t short_len;
};
/* Adds a fault and switches mr_io to the faulting table. Returns 0, or -1
 * when the fault table (64 entries) is full. Not thread safe: for tests. */
int mr_io_fault_add(const struct mr_io_fault *f);
/* Removes all faults and restores the libc table. */
void mr_io_fault_clear(void);
/* Number of times faults fired since the last clear. */
long mr_io_fault_fired(void);

/* ---- I/O helpers on top of mr_io ------------------------------------ */

/* Writes all len bytes (retrying short writes and EINTR). 0 or -1/errno. */
int mr_write_all(int fd, const void *buf, size_t len);
/* Writes all len bytes at off. 0 or -1/errno. */
int mr_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Reads up to len bytes, retrying short reads until EOF. Returns the number
 * read (less than len only at EOF) or -1/errno. */
ssize_t mr_read_full(int fd, void *buf, size_t len);
ssize_t mr_pread_full(int fd, void *buf, size_t len, off_t off);
/* close() that keeps errno. Accepts -1. */
void mr_close(int fd);
/* fsync the directory dirfd/path ("." for dirfd itself). 0 or -1 with err. */
int mr_fsync_dir_at(int dirfd, const char *path, struct mr_error *err);

/* Opens a directory given by an absolute or cwd-relative path supplied by
 * the operator (command line). Returns the fd or -1 with err set. */
int mr_open_dir_path(const char *path, int create, struct mr_error *err);

/* Opens relpath below dirfd, one component at a time with O_NOFOLLOW, so a
 * symlink, "..", an absolute path or an empty component anywhere in relpath
 * fails with ELOOP/EPERM instead of leading out. flags are those of the
 * final open (O_DIRECTORY for directories). Returns fd or -1 with err. */
int mr_open_beneath(int dirfd, const char *relpath, int flags, mode_t mode,
		    struct mr_error *err);
/* Creates every missing directory of relpath below dirfd (mode 0700 for the
 * new ones unless mode says otherwise) with the same rules and returns an
 * fd of the last one, or -1 with err. */
int mr_mkdirs_beneath(int dirfd, const char *relpath, mode_t mode, struct mr_error *err);
/* Returns 1 when relpath is a safe relative path (no absolute path, no ".."
 * or empty components after dropping a leading "./"), 0 otherwise. */
int mr_relpath_safe(const char *relpath);

/* One directory entry of a listing. */
struct mr_dirent {
	char *name;
	unsigned char type;  /* DT_REG, DT_DIR, DT_LNK, ... or DT_UNKNOWN */
	uint64_t ino;
};
struct mr_dirlist {
	struct mr_dirent *v;
	size_t n;
};
/* Calls fn for every entry of directory fd dirfd ("." and ".." left out),
 * in the order the file system gives, without allocating. It reads through
 * a descriptor of its own (dirfd's file position is neither used nor moved),
 * so threads may list one shared dirfd at once. fn returns 0 to go on, nonzero to stop (that value is
 * returned). 0, or -1 with err when a getdents call failed. */
int mr_scandir(int dirfd, int (*fn)(void *arg, const char *name, unsigned char type, uint64_t ino),
	       void *arg, struct mr_error *err);

/* Frees an array of n malloc'd strings and the array. Accepts NULL. */
void mr_names_free(char **names, size_t n);

/* Sorts an array of n malloc'd strings by byte order and frees and drops
 * the repeated ones. Returns how many are left, in names[0..]. */
size_t mr_names_sort_unique(char **names, size_t n);

/* Lists directory fd dirfd ("." and ".." left out), sorted by name (byte
 * order), through a descriptor of its own like mr_scandir. 0, or -1 with err when any
 * getdents call failed (then the listing is not partial: list->n is 0). */
int mr_listdir(int dirfd, struct mr_dirlist *list, struct mr_error *err);
void mr_dirlist_free(struct mr_dirlist *list);

/* ---- walking a tree without recursion -------------------------------
 *
 * Every walk of a user's tree (the sync plan, verify, backup, the sweep
 * before an extraction, the merge of an old mailbox) and every cursor that
 * follows a list of relative paths (a sync's apply phase, an extraction)
 * goes through struct mr_walk, so a hostile d/d/d/... tree costs neither
 * the C stack nor a descriptor per level: depth is bounded by memory only.
 *
 * How to use it:
 *   1. mr_walk_new() over one or two held root folders ("sides", e.g. the
 *      source and the destination); the caller keeps the roots open.
 *   2. The top of the walk is the current folder: mr_walk_fd() gives its
 *      descriptor on a side (borrowed), mr_walk_path() its relative path,
 *      mr_walk_frame() the caller's per-level state (frame_size bytes,
 *      zeroed on push).
 *   3. To go down, open the child on each side (mr_walk_openat(), or any
 *      open with O_DIRECTORY | O_NOFOLLOW) and hand the descriptors to
 *      mr_walk_push(); to go back up, mr_walk_pop(). A cursor calls
 *      mr_walk_goto() with the next relative path instead.
 *   4. mr_walk_free() closes what the walk holds and frees every frame.
 *
 * Descriptors: at most MR_WALK_HELD levels (the deepest ones) keep theirs;
 * a deeper push closes the shallowest, except where a side ends (the last
 * level that has a folder on a side keeps that one: at most one more per
 * side). Going back up to a level that gave
 * its descriptor away reopens it through ".." of its child, and the walk
 * checks that it is the same folder as on the way down (device and inode)
 * and that the child is still in it under its name: a tree moved or
 * replaced underneath is an error (ESTALE), never a walk into another
 * place. Paths are heap strings of any length. */

/* Levels whose folders keep a descriptor open (per side). */
#define MR_WALK_HELD 16
/* Sides a walk can have. */
#define MR_WALK_SIDES 2

struct mr_walk;

/* Starts a walk at roots[0..nsides-1] (folder descriptors held by the
 * caller, -1 for a side without a folder there). base is the relative
 * path mr_walk_path() gives for the roots ("" usually; may be NULL).
 * frame_size bytes of caller state are kept per level; frame_free, when
 * not NULL, is called on a level's frame when it is popped and on every
 * remaining frame by mr_walk_free(). noatime_sides is a bit mask of the
 * sides that mr_walk_openat() and reopening open with O_NOATIME where
 * allowed (the source). The walk, or NULL with err. */
struct mr_walk *mr_walk_new(const int *roots, unsigned nsides, const char *base,
			    size_t frame_size, void (*frame_free)(void *frame),
			    unsigned noatime_sides, struct mr_error *err);
/* Closes what the walk opened, frees frames and the walk; NULLs *w.
 * Accepts NULL and *w == NULL. */
void mr_walk_free(struct mr_walk **w);
/* How many levels below the roots the top is (0 at the roots). */
size_t mr_walk_depth(const struct mr_walk *w);
/* The top's relative path: base, then "/"-joined names; "" (or base) at
 * the roots. Valid until the next push, pop or goto. */
const char *mr_walk_path(const struct mr_walk *w);
/* The top's frame. Valid until the next push or goto. */
void *mr_walk_frame(struct mr_walk *w);
/* The top's descriptor on side (borrowed; -1 when that side has no
 * folder there). */
int mr_walk_fd(const struct mr_walk *w, unsigned side);
/* The descriptor of the top's parent on side, reopened (and checked) if
 * it was given away. Borrowed: valid until the next push, pop or goto.
 * -1 with err (and errno). At the roots, the root. */
int mr_walk_parent_fd(struct mr_walk *w, unsigned side, struct mr_error *err);
/* Opens folder name of the top on side: O_RDONLY | O_DIRECTORY |
 * O_NOFOLLOW (| O_NOATIME for a noatime side) through mr_io. The fd, or
 * -1/errno (ELOOP or ENOTDIR when name is a link or not a folder); the
 * caller reports it. */
int mr_walk_openat(const struct mr_walk *w, unsigned side, const char *name);
/* Goes down into folder name: fds[side] are its descriptors (-1 for a side
 * without it), which the walk takes over (closed on failure too). A side
 * the top lacks can't have it. 0, or -1 with err. */
int mr_walk_push(struct mr_walk *w, const char *name, const int *fds, struct mr_error *err);
/* Goes back up one level (frees the top's frame). 0, or -1 with err when
 * the parent can't be reopened or is no longer the folder seen on the
 * way down (ESTALE); the walk must then be freed. */
int mr_walk_pop(struct mr_walk *w, struct mr_error *err);
/* Cursor use, one side and base "": moves the top to folder rel (relative
 * to the root; "" for the root itself) by going up to the deepest common
 * folder and down the remaining components one at a time with O_NOFOLLOW.
 * With mkdir_mode != 0 missing folders are created with that mode. An
 * unsafe rel (empty, "." or ".." component, leading "/") is refused with
 * EPERM (a leading "./" is dropped). The top's fd (borrowed), or -1 with err; after an error the top is
 * the deepest folder reached, still a valid cursor. */
int mr_walk_goto(struct mr_walk *w, const char *rel, mode_t mkdir_mode, struct mr_error *err);

/* The common case, one listing per folder in name order: a walk whose
 * frames are a struct mr_walk_listing (mr_walk_new with its size and
 * mr_walk_listing_free) gets from mr_walk_next() the next entry of its top
 * folder, side 0 listed on first use, coming back up as folders end. 1 with
 * *e_r (valid until the walk moves; mr_walk_push a folder to go into it), 0
 * when the whole tree is done, -1 with err (a listing or a reopen failed). */
struct mr_walk_listing {
	struct mr_dirlist list;
	size_t i;
	int listed;
};
void mr_walk_listing_free(void *frame);
int mr_walk_next(struct mr_walk *w, const struct mr_dirent **e_r, struct mr_error *err);

/* The depth of relative path rel: 0 for "" or ".", 1 for "a", 2 for
 * "a/b", ... (a leading "./" is not counted). */
unsigned mr_path_depth(const char *rel);

/* Removes relpath below dirfd and everything under it (no symlink is
 * followed), whatever its depth: the walk keeps an explicit stack (memory
 * grows with the depth, not the C stack) and holds one folder descriptor
 * at a time, going back up through ".." checked against the device and
 * inode seen on the way down. 0, or -1 with err. Used only on
 * mailrestore's own scratch and work copies. */
int mr_remove_tree_at(int dirfd, const char *relpath, struct mr_error *err);

/* Free bytes available to unprivileged users on the file system of fd, or
 * UINT64_MAX when unknown. */
uint64_t mr_free_bytes(int fd);

/* Free space kept on a file system we write users' files to, so that one
 * user's big file fails cleanly (ENOSPC, with the sizes) before the disk
 * is full instead of taking it to 0 bytes for everyone. */
#define MR_HEADROOM_BYTES ((uint64_t)64 << 20)

/* ---- temporary names, publishing a file ------------------------------ */

/* A file name unique in this process and among processes into buf:
 * prefix, the pid, ".", then a number no other call of this process got
 * (atomic: any thread may call it). The one generator of temporary names:
 * callers pick a prefix that tells whose leftovers a name is (".mrx." for
 * extraction, ".mrsync-" for sync, "tmp." for held mail). */
void mr_tmp_name(const char *prefix, char *buf, size_t len);

/* Publishing a file: written under a temporary name below a held folder
 * fd, fsync'd, renamed over its final name, the folder fsync'd, so that a
 * reader sees the old file or the whole new one and a crash after
 * mr_publish_commit() returned 0 keeps the new one. Every call goes through
 * mr_io, and every failure is reported once into err with the call and the
 * path ("fsync(held/alice/tmp.12.3) failed: ...").
 *
 *   struct mr_publish p;
 *   if (mr_publish_begin(&p, dirfd, "held/alice", final, "tmp.", 0600, 0, err) < 0 ||
 *       mr_publish_write(&p, buf, len, err) < 0 ||
 *       mr_publish_commit(&p, err) < 0)
 *           ...;
 *   mr_publish_abort(&p);  // always: removes the temporary file if still there
 *
 * p.fd may also be written directly between begin and commit. */
#define MR_PUBLISH_SHOW_MAX 512
enum {
	/* No fsync of the file or the folder: for files whose loss in a
	 * crash costs only repeated work (or with a no-fsync setting). */
	MR_PUBLISH_NO_FSYNC = 1u << 0,
	/* tmp is the temporary name itself (opened with O_TRUNC), not a
	 * prefix for mr_tmp_name (opened with O_EXCL): for a leftover a
	 * later run must find by name. */
	MR_PUBLISH_FIXED_TMP = 1u << 1,
	/* Opened O_RDWR | O_APPEND instead of O_WRONLY. */
	MR_PUBLISH_APPEND = 1u << 2,
	/* mr_publish_commit() leaves p.fd open (now the published file);
	 * the caller takes it (and sets p.fd to -1 before the abort). */
	MR_PUBLISH_KEEP_OPEN = 1u << 3,
};
struct mr_publish {
	int dirfd;                     /* the folder (the caller's) */
	int fd;                        /* the file being written, or -1 */
	unsigned flags;                /* MR_PUBLISH_* */
	int tmp_made;                  /* the temporary file exists */
	int renamed;                   /* the file stands under its final name
	                                * (a failed folder fsync leaves it
	                                * there; the caller decides) */
	char show[MR_PUBLISH_SHOW_MAX];/* the folder as errors name it */
	char tmp[NAME_MAX + 1];
	char name[NAME_MAX + 1];
};
/* Creates the temporary file (mode) in dirfd: tmp is a prefix for
 * mr_tmp_name, or the name itself with MR_PUBLISH_FIXED_TMP. show names
 * the folder in errors ("" or NULL: names stand alone). 0, or -1 with err;
 * either way p is ready for mr_publish_abort(). */
int mr_publish_begin(struct mr_publish *p, int dirfd, const char *show, const char *name,
		     const char *tmp, mode_t mode, unsigned flags, struct mr_error *err);
/* Writes all len bytes to the temporary file. 0, or -1 with err. */
int mr_publish_write(struct mr_publish *p, const void *buf, size_t len, struct mr_error *err);
/* fsync, close (unless MR_PUBLISH_KEEP_OPEN), renameat over the final name,
 * fsync of the folder. 0, or -1 with err and errno; p.renamed tells
 * whether the rename happened (only the folder fsync failed then). */
int mr_publish_commit(struct mr_publish *p, struct mr_error *err);
/* Closes p.fd when open and removes the temporary file unless it was
 * renamed. Keeps errno. Call it after every begin, success or not. */
void mr_publish_abort(struct mr_publish *p);
/* The whole sequence for len bytes at buf (flags as above, without
 * MR_PUBLISH_KEEP_OPEN). 0, or -1 with err; the temporary file is gone
 * either way. */
int mr_publish_file(int dirfd, const char *show, const char *name, const char *tmp,
		    const void *buf, size_t len, mode_t mode, unsigned flags, struct mr_error *err);

/* ---- cancelling ------------------------------------------------------ */

/* 1 when the cancel flag a caller handed in (may be NULL) was set by
 * another thread, else 0. The one check every long loop polls. */
static inline int mr_cancelled(const atomic_int *flag)
{
	return flag != NULL && atomic_load_explicit(flag, memory_order_relaxed) != 0;
}

/* ---- small things --------------------------------------------------- */

/* Wall clock as Unix seconds with fraction. */
double mr_now(void);
/* Monotonic seconds. */
double mr_monotonic(void);

/* Copies s into buf (size len, always NUL terminated, cut at a whole
 * escape when short) so that it shows as one harmless line on a terminal
 * or in a log: control characters (C0, DEL and the C1 range U+0080 to
 * U+009F), the backslash and every byte that is not part of valid UTF-8
 * become \n, \r, \t, \\ or \xNN; other UTF-8 passes as it is. For every
 * untrusted string (file names, reasons, names from a reply) in human
 * output and log lines. Returns buf. */
const char *mr_escape(const char *s, char *buf, size_t len);
/* Same for the n bytes at s (NULs included, escaped as \x00). */
const char *mr_escape_n(const char *s, size_t n, char *buf, size_t len);

/* Log line to stderr: "2026-11-23T12:00:00Z mailrestore[pid]: msg", the
 * message escaped with mr_escape (one line, whatever it holds). */
void mr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Quiet switch for mr_log (tests). */
extern int mr_log_quiet;

/* Appends the JSON string literal for s (quoted, escaped) to buf of size
 * len at *pos; output is truncated safely. */
void mr_json_str(char *buf, size_t len, size_t *pos, const char *s);
/* printf-append into buf at *pos, truncating safely. */
void mr_bufcat(char *buf, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Human size "12.3 MiB" into buf. Returns buf. */
const char *mr_human_bytes(uint64_t n, char *buf, size_t len);
/* Human duration the way people read time: "less than a minute", "about
 * a minute", "about 25 minutes" (whole minutes up to ten, then fives),
 * "about an hour", "about 3 hours", "about 2 days"; "unknown" below 0.
 * Returns buf. */
const char *mr_human_duration(double seconds, char *buf, size_t len);

/* Parses a decimal uint64 (whole string). 0 ok, -1 bad. */
int mr_parse_u64(const char *s, uint64_t *val_r);
/* The value of hex digit c (0-9, a-f, A-F): 0 to 15, or -1 when c is none. */
int mr_hex_digit(char c);

/* ---- mail stores: Maildir and a Cyrus spool (common/store.c) --------
 *
 * The store format says how a user's mailbox sits below S and T:
 *   maildir  S/<user>/ (Dovecot, Courier; the default)
 *   cyrus    a Cyrus IMAP spool partition with the legacy layout:
 *            S/user/<disk>/ or, with hashimapspool, S/<h>/user/<disk>/,
 *            where <disk> is the user name with '.' written '^' (Cyrus's
 *            unixhierarchysep) and <h> Cyrus's hash letter of the name
 *            (dir_hash_c: the first letter in lower case, 'q' for anything
 *            else; with fulldirhash a letter 'A'..'W' from a hash of the
 *            name up to its first '.'). T gets the same layout, so Cyrus's
 *            partition-default can point at it. S may also be a spool's
 *            user/ folder itself (S/<disk>/: MR_CYRUS_HASH_FLAT); T is then
 *            one too. Names on disk that are no valid user name once '^'
 *            is read as '.' are never users. */
enum mr_store_format {
	MR_FORMAT_AUTO = 0,     /* found by mr_store_detect() */
	MR_FORMAT_MAILDIR = 1,
	MR_FORMAT_CYRUS = 2,
};
enum mr_cyrus_hash {
	MR_CYRUS_HASH_UNKNOWN = 0, /* decided by mr_cyrus_detect_hash() */
	MR_CYRUS_HASH_NONE,        /* user/<disk> at the spool's root */
	MR_CYRUS_HASH_SIMPLE,      /* <h>/user/<disk>, hashimapspool */
	MR_CYRUS_HASH_FULL,        /* <h>/user/<disk>, with fulldirhash */
	MR_CYRUS_HASH_FLAT,        /* <disk>: S and T are a spool's user/
	                            * folder (or <h>/user/) themselves */
};
/* Longest relative path of a user's Cyrus folder: "h/user/" and a name. */
#define MR_CYRUS_REL_MAX (MR_USER_NAME_MAX + 8)

/* "maildir" or "cyrus" into *f_r: 0, or -1 for anything else. */
int mr_store_format_parse(const char *s, enum mr_store_format *f_r);
const char *mr_store_format_name(enum mr_store_format f);
/* The format of spool folder fd: cyrus when it holds user/ or <c>/user/
 * (c one character) and a cyrus.header in one of the first user folders
 * found there (8 looked at), or when one of its own first 8 folders holds
 * a cyrus.header (fd is a spool's user/ folder); else maildir. Reads
 * listings and stats only. */
enum mr_store_format mr_store_detect(int fd);
/* Cyrus's hash letter of user name user (dir_hash_c of imap/util.c). */
char mr_cyrus_hash_char(const char *user, int full);
/* The relative path of user's folder in a spool of layout hash into
 * buf[MR_CYRUS_REL_MAX + 1] ("b/user/bob^smith"); NULL when user is
 * not a valid name or hash is UNKNOWN. */
const char *mr_cyrus_user_rel(enum mr_cyrus_hash hash, const char *user, char *buf);
/* The user name of folder name disk of a spool's user/ into
 * buf[MR_USER_NAME_MAX + 1]: 1 when it is a valid name, else 0. */
int mr_cyrus_user_from_disk(const char *disk, char *buf);
/* The layout of spool folder fd: NONE when user/ is a folder there, FULL
 * when a folder 'A'..'W' holds user/, SIMPLE when another one-character
 * folder does, FLAT when one of its first folders holds a cyrus.header
 * (fd is a spool's user/ folder); UNKNOWN when none (an empty spool). */
enum mr_cyrus_hash mr_cyrus_detect_hash(int fd);
/* Every user of spool fd with layout hash (names valid, sorted, unique).
 * Free with mr_names_free(). A hash folder without user/ is skipped; one
 * that fails to list is an error. 0, or -1 with err. */
int mr_cyrus_list_users(int fd, enum mr_cyrus_hash hash, char ***names_r, size_t *n_r,
			struct mr_error *err);

/* ---- network addresses (netaddr.c) -----------------------------------
 * The daemon's --listen and --allow, the clients' --connect: parsed in one
 * place. Addresses are numeric except a client's HOST, which the client
 * resolves (getaddrinfo). */
struct sockaddr;
struct sockaddr_storage;

/* Longest HOST of a HOST:PORT, brackets removed, NUL included. */
#define MR_HOST_MAX 256
/* Longest address as text: "[v6]:port" and a NUL. */
#define MR_ADDR_TEXT_MAX 64

/* Splits "HOST:PORT" or "[IPV6]:PORT" (the brackets are needed around an
 * IPv6 address) into host (without brackets, len bytes) and a port from 1
 * to 65535. 0, or -1 when s has another shape. */
int mr_hostport_split(const char *s, char *host, size_t len, unsigned *port_r);
/* A numeric "ADDR:PORT" (IPv4 "127.0.0.2:7790", IPv6 "[::1]:7790") into
 * *ss and its length. 0, or -1 when it is not one. */
int mr_sockaddr_parse(const char *s, struct sockaddr_storage *ss, unsigned *len_r);
/* An address and port as "127.0.0.2:7790" or "[::1]:7790" into buf (an
 * IPv4 address mapped into IPv6 is written as IPv4). Returns buf. */
const char *mr_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);

/* A network: an IPv4 or IPv6 prefix. */
struct mr_cidr {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char addr[16];   /* network byte order; 4 bytes used for IPv4 */
	unsigned bits;            /* prefix length */
};
/* "10.0.0.0/8", "2001:db8::/32"; a bare address is /32 or /128. The bits
 * below the prefix must be zero ("10.0.0.1/8" is refused: it most likely
 * means something else than it says). 0, or -1. */
int mr_cidr_parse(const char *s, struct mr_cidr *c);
/* 1 when sa (AF_INET or AF_INET6; an IPv4 address mapped into IPv6 counts
 * as IPv4) lies in c, else 0. */
int mr_cidr_match(const struct mr_cidr *c, const struct sockaddr *sa);

/* Little-endian fields of on-disk formats: the low `bytes` bytes of v into
 * p, and back. One codec for every format (held mail, delivery ids, ...). */
static inline void mr_put_le(unsigned char *p, uint64_t v, int bytes)
{
	int i;

	for (i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t mr_get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;
	int i;

	for (i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* ---- what a client last learned (snapshot.c) ------------------------------
 * A client on another machine (the login hook with --state, a proxy's or an
 * MX's agent) keeps what the daemon told it, so that it can answer when the
 * daemon cannot be reached: DIR/active/<user> for a user known to be back
 * (active, or dial tone: may log in and receive mail), kept for good, since
 * nobody goes back from active; DIR/unaffected/<user> for one the outage
 * does not touch. Empty marker files, one stat to read, libc only (the lean
 * login binary uses it). Names are valid user names (names.c): never a
 * path. A lost marker only makes a user wait for the daemon: safe. */
enum mr_snap {
	MR_SNAP_NONE = 0,       /* nothing known: not let in */
	MR_SNAP_ACTIVE = 1,     /* known back */
	MR_SNAP_UNAFFECTED = 2, /* known untouched by the outage */
};
/* Opens the snapshot folder dir (creating it and its two folders, 0755,
 * when create). Returns its fd, or -1 with err. */
int mr_snapshot_open(const char *dir, int create, struct mr_error *err);
/* What the snapshot at dirfd knows of user (MR_SNAP_NONE for an invalid
 * name or an unreadable folder). */
enum mr_snap mr_snapshot_get(int dirfd, const char *user);
/* Remembers user as what (MR_SNAP_ACTIVE or MR_SNAP_UNAFFECTED; a known
 * active user is never marked otherwise). 0, or -1 with err. */
int mr_snapshot_put(int dirfd, const char *user, enum mr_snap what, struct mr_error *err);

#endif
