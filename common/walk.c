/*
 * walk.c: struct mr_walk, the one stack-free walker of trees below held
 * folder descriptors (see common.h, "walking a tree without recursion").
 *
 * The levels live in a heap array; only levels [lo, top] (at most
 * MR_WALK_HELD of them) and the caller's roots (level 0) hold descriptors.
 * A level that gave its descriptor away is reopened through ".." of its
 * child when the walk comes back up to it: one openat per level, where
 * walking down again from the nearest held ancestor would cost the whole
 * depth each time. The reopened folder must be the one seen on the way
 * down (device and inode), and must still hold the child under its name,
 * so a tree moved or replaced underneath is an error, not another place.
 */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct level {
	size_t pathlen;                 /* length of the path at this level */
	size_t namepos;                 /* where its name starts in the path */
	int fd[MR_WALK_SIDES];          /* -1: given away or absent */
	int present[MR_WALK_SIDES];     /* has a folder on this side */
	dev_t dev[MR_WALK_SIDES];       /* identity seen on the way down */
	ino_t ino[MR_WALK_SIDES];
};

struct mr_walk {
	unsigned nsides;
	unsigned noatime;
	struct level *lv;
	char *frames;
	size_t frame_size;
	void (*frame_free)(void *frame);
	size_t top, lo, cap;            /* levels 0..top; [lo, top] hold fds */
	char *path;
	size_t pathcap;
};

static void *frame_at(struct mr_walk *w, size_t i)
{
	return w->frames + i * w->frame_size;
}

static int grow(struct mr_walk *w, size_t need_path, struct mr_error *err)
{
	if (w->top + 1 >= w->cap) {
		size_t ncap = w->cap * 2;
		struct level *nl = realloc(w->lv, ncap * sizeof(*nl));
		char *nf;

		if (nl == NULL)
			goto nomem;
		w->lv = nl;
		nf = realloc(w->frames, ncap * (w->frame_size ? w->frame_size : 1));
		if (nf == NULL)
			goto nomem;
		w->frames = nf;
		w->cap = ncap;
	}
	if (need_path > w->pathcap) {
		size_t ncap = w->pathcap * 2 > need_path ? w->pathcap * 2 : need_path;
		char *np = realloc(w->path, ncap);

		if (np == NULL)
			goto nomem;
		w->path = np;
		w->pathcap = ncap;
	}
	return 0;
nomem:
	mr_error_set(err, ENOMEM, "walking %.200s", w->path);
	return -1;
}

struct mr_walk *mr_walk_new(const int *roots, unsigned nsides, const char *base,
			    size_t frame_size, void (*frame_free)(void *frame),
			    unsigned noatime_sides, struct mr_error *err)
{
	struct mr_walk *w = NULL;
	struct stat st;
	size_t blen = base ? strlen(base) : 0;
	unsigned s;

	if (nsides == 0 || nsides > MR_WALK_SIDES) {
		mr_error_set(err, EINVAL, "a walk has 1 or %d sides", MR_WALK_SIDES);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		goto nomem;
	w->nsides = nsides;
	w->noatime = noatime_sides;
	w->frame_size = frame_size;
	w->frame_free = frame_free;
	w->cap = 16;
	w->lo = 1;
	w->pathcap = blen + 256;
	w->lv = calloc(w->cap, sizeof(*w->lv));
	w->frames = calloc(w->cap, frame_size ? frame_size : 1);
	w->path = malloc(w->pathcap);
	if (w->lv == NULL || w->frames == NULL || w->path == NULL)
		goto nomem;
	memcpy(w->path, base ? base : "", blen + 1);
	w->lv[0].pathlen = blen;
	w->lv[0].namepos = blen;
	for (s = 0; s < MR_WALK_SIDES; s++) {
		w->lv[0].fd[s] = s < nsides ? roots[s] : -1;
		w->lv[0].present[s] = w->lv[0].fd[s] >= 0;
		if (!w->lv[0].present[s])
			continue;
		if (mr_io->fstat(roots[s], &st) < 0) {
			mr_error_set(err, errno, "fstat(%s) failed", blen ? base : ".");
			goto fail;
		}
		w->lv[0].dev[s] = st.st_dev;
		w->lv[0].ino[s] = st.st_ino;
	}
	return w;
nomem:
	mr_error_set(err, ENOMEM, "starting a walk");
fail:
	if (w != NULL) {
		free(w->lv);
		free(w->frames);
		free(w->path);
		free(w);
	}
	return NULL;
}

/* Closes the descriptors a level (not the roots) holds. */
static void release(struct mr_walk *w, size_t i)
{
	unsigned s;

	for (s = 0; s < w->nsides; s++) {
		if (i > 0)
			mr_close(w->lv[i].fd[s]);
		w->lv[i].fd[s] = -1;
	}
}

/* Gives away the descriptors of level i < top, except on a side its child
 * lacks: ".." of the child can't bring that one back, so the last level
 * of a side keeps it (one more descriptor per side at most). */
static void evict(struct mr_walk *w, size_t i)
{
	unsigned s;

	for (s = 0; s < w->nsides; s++) {
		if (!w->lv[i + 1].present[s])
			continue;
		mr_close(w->lv[i].fd[s]);
		w->lv[i].fd[s] = -1;
	}
}

void mr_walk_free(struct mr_walk **wp)
{
	struct mr_walk *w = wp ? *wp : NULL;
	size_t i;

	if (w == NULL)
		return;
	for (i = w->top + 1; i-- > 0;) {
		if (w->frame_free != NULL)
			w->frame_free(frame_at(w, i));
		if (i > 0)
			release(w, i);
	}
	free(w->lv);
	free(w->frames);
	free(w->path);
	free(w);
	*wp = NULL;
}

size_t mr_walk_depth(const struct mr_walk *w)
{
	return w->top;
}

const char *mr_walk_path(const struct mr_walk *w)
{
	return w->path;
}

void *mr_walk_frame(struct mr_walk *w)
{
	return frame_at(w, w->top);
}

int mr_walk_fd(const struct mr_walk *w, unsigned side)
{
	return side < w->nsides ? w->lv[w->top].fd[side] : -1;
}

static int open_dir(const struct mr_walk *w, unsigned side, int dirfd, const char *name)
{
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd;

	if (w->noatime & (1u << side)) {
		fd = mr_io->openat(dirfd, name, flags | O_NOATIME, 0);
		/* Refused (EPERM) on folders another user owns unless we are
		 * root; reading then is still reading. */
		if (fd >= 0 || errno != EPERM)
			return fd;
	}
	return mr_io->openat(dirfd, name, flags, 0);
}

int mr_walk_openat(const struct mr_walk *w, unsigned side, const char *name)
{
	if (side >= w->nsides || w->lv[w->top].fd[side] < 0) {
		errno = ENOENT;
		return -1;
	}
	return open_dir(w, side, w->lv[w->top].fd[side], name);
}

int mr_walk_push(struct mr_walk *w, const char *name, const int *fds, struct mr_error *err)
{
	size_t nlen = strlen(name), plen = w->lv[w->top].pathlen;
	size_t sep = plen > 0 ? 1 : 0;
	struct level *l;
	struct stat st;
	unsigned s;

	if (grow(w, plen + sep + nlen + 1, err) < 0)
		goto fail;
	l = &w->lv[w->top + 1];
	memset(l, 0, sizeof(*l));
	for (s = 0; s < MR_WALK_SIDES; s++)
		l->fd[s] = -1;
	if (sep)
		w->path[plen] = '/';
	memcpy(w->path + plen + sep, name, nlen + 1);
	l->namepos = plen + sep;
	l->pathlen = plen + sep + nlen;
	for (s = 0; s < w->nsides; s++) {
		if (fds[s] < 0)
			continue;
		if (!w->lv[w->top].present[s]) {
			mr_error_set(err, EINVAL, "walking %s: side %u has no parent folder", w->path, s);
			goto fail_path;
		}
		if (mr_io->fstat(fds[s], &st) < 0) {
			mr_error_set(err, errno, "fstat(%s) failed", w->path);
			goto fail_path;
		}
		l->present[s] = 1;
		l->dev[s] = st.st_dev;
		l->ino[s] = st.st_ino;
	}
	for (s = 0; s < w->nsides; s++)
		l->fd[s] = fds[s];
	w->top++;
	memset(frame_at(w, w->top), 0, w->frame_size);
	if (w->top - w->lo + 1 > MR_WALK_HELD)
		evict(w, w->lo++);
	return 0;
fail_path:
	w->path[plen] = '\0';
fail:
	for (s = 0; s < w->nsides; s++)
		mr_close(fds[s]);
	return -1;
}

/* Gives level i (below the top, above the roots) its descriptors back
 * through ".." of level i + 1, which holds them; checks the identity. */
static int reopen(struct mr_walk *w, size_t i, struct mr_error *err)
{
	struct level *l = &w->lv[i], *c = &w->lv[i + 1];
	char *name = w->path + c->namepos;
	char saved = w->path[c->pathlen];
	struct stat st;
	unsigned s;
	int rc = -1;

	/* the child's name alone, for the fstatat below */
	w->path[c->pathlen] = '\0';
	for (s = 0; s < w->nsides; s++) {
		int fd;

		if (!l->present[s] || l->fd[s] >= 0)
			continue;
		fd = open_dir(w, s, c->fd[s], "..");
		if (fd < 0) {
			mr_error_set(err, errno, "reopening the folder above %.200s failed", w->path);
			goto out;
		}
		l->fd[s] = fd;
		if (mr_io->fstat(fd, &st) < 0) {
			mr_error_set(err, errno, "fstat of the folder above %.200s failed", w->path);
			goto out;
		}
		if (st.st_dev != l->dev[s] || st.st_ino != l->ino[s])
			goto moved;
		if (mr_io->fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_dev != c->dev[s] || st.st_ino != c->ino[s])
			goto moved;
	}
	rc = 0;
	goto out;
moved:
	mr_error_set(err, ESTALE, "walking %.200s: a folder was moved or replaced during the walk",
		     w->path);
	errno = ESTALE;
out:
	w->path[c->pathlen] = saved;
	if (rc < 0) {
		int e = errno;
		for (s = 0; s < w->nsides; s++) {
			mr_close(l->fd[s]);
			l->fd[s] = -1;
		}
		errno = e;
	}
	return rc;
}

int mr_walk_pop(struct mr_walk *w, struct mr_error *err)
{
	if (w->top == 0) {
		mr_error_set(err, EINVAL, "walk: pop at the roots");
		return -1;
	}
	if (w->frame_free != NULL)
		w->frame_free(frame_at(w, w->top));
	memset(frame_at(w, w->top), 0, w->frame_size);
	if (w->top - 1 >= 1 && w->lo == w->top) {
		if (reopen(w, w->top - 1, err) < 0)
			return -1;
		w->lo = w->top - 1;
	}
	release(w, w->top);
	w->top--;
	if (w->lo > w->top && w->top >= 1)
		w->lo = w->top;
	if (w->top == 0)
		w->lo = 1;
	w->path[w->lv[w->top].pathlen] = '\0';
	return 0;
}

int mr_walk_parent_fd(struct mr_walk *w, unsigned side, struct mr_error *err)
{
	if (w->top == 0 || side >= w->nsides)
		return mr_walk_fd(w, side);
	if (w->top - 1 >= 1 && w->lo == w->top) {
		if (reopen(w, w->top - 1, err) < 0)
			return -1;
		w->lo = w->top - 1;
	}
	return w->lv[w->top - 1].fd[side];
}

/* Is rel[0..len) the whole path of level i? */
static int level_is(const struct mr_walk *w, size_t i, const char *rel, size_t len)
{
	size_t pl = w->lv[i].pathlen;

	return pl <= len && memcmp(w->path, rel, pl) == 0 && (rel[pl] == '/' || rel[pl] == '\0');
}

int mr_walk_goto(struct mr_walk *w, const char *rel, mode_t mkdir_mode, struct mr_error *err)
{
	size_t len, keep, m;
	const char *p, *end;
	char *comp = NULL;
	int fd, rc = -1;

	/* "./a" and "." name what "a" and "" do. */
	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	if (rel[0] == '.' && rel[1] == '\0')
		rel++;
	len = strlen(rel);

	/* The deepest level whose whole path starts rel. */
	for (m = 0; m < len && w->path[m] == rel[m]; m++)
		;
	keep = w->top;
	while (keep > 0 && (w->lv[keep].pathlen > m || !level_is(w, keep, rel, len)))
		keep--;
	while (w->top > keep)
		if (mr_walk_pop(w, err) < 0)
			goto out;
	p = rel + w->lv[w->top].pathlen;
	if (*p == '/')
		p++;
	comp = malloc(len + 1);
	if (comp == NULL) {
		mr_error_set(err, ENOMEM, "walking to %.200s", rel);
		goto out;
	}
	while (*p != '\0') {
		int fds[MR_WALK_SIDES] = { -1, -1 };
		size_t n;

		end = strchr(p, '/');
		n = end ? (size_t)(end - p) : strlen(p);
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (n == 0 || strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
			mr_error_set(err, EPERM, "unsafe path \"%.200s\" refused", rel);
			errno = EPERM;
			goto out;
		}
		if (mkdir_mode != 0 && mr_io->mkdirat(w->lv[w->top].fd[0], comp, mkdir_mode) < 0 &&
		    errno != EEXIST) {
			mr_error_set(err, errno, "mkdirat(%s/%s) failed",
				     w->top ? w->path : ".", comp);
			goto out;
		}
		fds[0] = open_dir(w, 0, w->lv[w->top].fd[0], comp);
		if (fds[0] < 0) {
			int e = errno;

			if (e == ENOTDIR || e == ELOOP)
				mr_error_set(err, e, "openat(%.200s/%s) refused: not a directory or a "
					     "link", w->top ? w->path : ".", comp);
			else
				mr_error_set(err, e, "openat(%.200s/%s) failed",
					     w->top ? w->path : ".", comp);
			errno = e;
			goto out;
		}
		if (mr_walk_push(w, comp, fds, err) < 0)
			goto out;
		p = end ? end + 1 : p + n;
	}
	rc = 0;
out:
	free(comp);
	fd = w->lv[w->top].fd[0];
	return rc < 0 ? -1 : fd;
}
