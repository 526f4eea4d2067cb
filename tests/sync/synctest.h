/*
 * synctest.h: helpers the sync tests share: a fresh source / destination /
 * attic / scratch quartet per test, a sync run, a stat-for-stat snapshot of
 * the source to prove it untouched, and tree equality through sync_verify.
 * Header-only (static inline) so each test stays one program.
 */
#ifndef MR_TESTS_SYNCTEST_H
#define MR_TESTS_SYNCTEST_H

#include "tests/testutil.h"
#include "sync/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sfx {
	char *dir, *src, *dst, *attic, *tmp;
	struct sync_settings set;
	struct sync_stats stats;
	struct mr_problems problems;
	struct mr_error err;
	int beside;  /* temporary files beside their place, not in tmp/ */
};

static inline void sfx_setup(struct sfx *f)
{
	memset(f, 0, sizeof(*f));
	f->dir = tu_tmpdir();
	f->src = tu_path(f->dir, "src");
	f->dst = tu_path(f->dir, "dst");
	f->attic = tu_path(f->dir, "attic");
	f->tmp = tu_path(f->dir, "tmp");
	assert_int_equal(mkdir(f->src, 0755), 0);
	assert_int_equal(mkdir(f->dst, 0755), 0);
	assert_int_equal(mkdir(f->attic, 0700), 0);
	assert_int_equal(mkdir(f->tmp, 0700), 0);
	sync_settings_init(&f->set);
	f->set.preserve_owner = geteuid() == 0;
}

static inline void sfx_teardown(struct sfx *f)
{
	mr_io_fault_clear();
	mr_problems_reset(&f->problems);
	free(f->src);
	free(f->dst);
	free(f->attic);
	free(f->tmp);
	tu_rmtree(f->dir);
	memset(f, 0, sizeof(*f));
}

/* Runs sync_tree(src, dst) with f->set; the problems of earlier runs are
 * dropped first. Returns its result. */
static inline int sfx_sync(struct sfx *f)
{
	int s, d, a, t, rc;

	mr_problems_reset(&f->problems);
	mr_error_clear(&f->err);
	s = open(f->src, O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);
	d = tu_open_dir(f->dst);
	a = tu_open_dir(f->attic);
	t = tu_open_dir(f->tmp);
	assert_true(s >= 0);
	f->set.attic_dirfd = a;
	f->set.tmp_dirfd = f->beside ? -1 : t;
	rc = sync_tree(s, d, &f->set, &f->stats, &f->problems, &f->err);
	close(s);
	close(d);
	close(a);
	close(t);
	return rc;
}

/* Returns sync_verify(src, dst): 0 equal. Differences are printed. */
static inline int sfx_verify(struct sfx *f)
{
	struct mr_problems diffs = { 0 };
	struct mr_error err = { 0 };
	int s = tu_open_dir(f->src), d = tu_open_dir(f->dst), rc;
	size_t i;

	rc = sync_verify(s, d, geteuid() == 0, &diffs, &err);
	for (i = 0; i < diffs.n; i++)
		fprintf(stderr, "  diff: %s: %s\n", diffs.v[i].path, diffs.v[i].message);
	if (rc < 0)
		fprintf(stderr, "  verify error: %s\n", err.msg);
	mr_problems_reset(&diffs);
	close(s);
	close(d);
	return rc;
}

static inline void sfx_print_problems(const struct sfx *f)
{
	size_t i;

	for (i = 0; i < f->problems.n; i++)
		fprintf(stderr, "  problem: %s: %s\n", mr_problem_kind_name(f->problems.v[i].kind),
			f->problems.v[i].message);
	if (f->err.msg[0])
		fprintf(stderr, "  error: %s\n", f->err.msg);
}

/* Writes a stat-for-stat, byte-for-byte description of tree dir into file
 * out: every entry's type, mode, owner, size, inode, mtime, ctime (which
 * any write, chmod, chown or utimensat moves), link target, and every
 * file's checksum. Access times are left out: the checksums themselves
 * read the files (test_merge.c checks them with stat alone). */
static inline void sfx_snapshot(const char *dir, const char *out)
{
	assert_int_equal(tu_sh("cd '%s' && { find . -printf '%%p %%y %%m %%U:%%G %%s %%i %%T@ %%C@ "
			       "%%l\\n' | sort; find . -type f -exec sha256sum {} + | sort; } > '%s'",
			       dir, out), 0);
}

/* Fails the test when the snapshot of dir differs from the one in file. */
static inline void sfx_snapshot_same(const char *dir, const char *file)
{
	char *now = NULL;

	if (asprintf(&now, "%s.now", file) < 0)
		fail_msg("asprintf");
	sfx_snapshot(dir, now);
	if (tu_sh("diff '%s' '%s' >&2", file, now) != 0)
		fail_msg("%s changed during the sync", dir);
	free(now);
}

/* Sets path's mtime (and atime) to sec.nsec without following links. */
static inline void sfx_set_mtime(const char *dir, const char *rel, time_t sec, long nsec)
{
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };
	char *p = tu_path(dir, rel);

	if (utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) < 0)
		fail_msg("utimensat(%s): %s", p, strerror(errno));
	free(p);
}

static inline struct stat sfx_lstat(const char *dir, const char *rel)
{
	struct stat st;
	char *p = tu_path(dir, rel);

	if (lstat(p, &st) < 0)
		fail_msg("lstat(%s): %s", p, strerror(errno));
	free(p);
	return st;
}

static inline int sfx_exists(const char *dir, const char *rel)
{
	struct stat st;
	char *p = tu_path(dir, rel);
	int r = lstat(p, &st) == 0;

	free(p);
	return r;
}

/* Fills buf with len pseudo-random bytes from seed. */
static inline void sfx_random(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;
	uint64_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

/* Copies the source to the destination as a backup would (cp -a). */
static inline void sfx_backup(struct sfx *f)
{
	assert_int_equal(tu_sh("rm -rf '%s' && cp -a '%s' '%s'", f->dst, f->src, f->dst), 0);
}

#endif
