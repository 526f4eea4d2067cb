/*
 * fs.c: file system helpers on top of the I/O layer: whole reads and
 * writes, directory fsync, walking a relative path below a held directory
 * fd without following links, sorted listings, scratch removal.
 */
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* The loops of the four below: at the offset off (pwrite, pread) when
 * positional, else at the file position (write, read). */
static int write_loop(int fd, const char *p, size_t len, int positional, off_t off)
{
	while (len > 0) {
		ssize_t n = positional ? mr_io->pwrite(fd, p, len, off) : mr_io->write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t read_loop(int fd, char *p, size_t len, int positional, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = positional ? mr_io->pread(fd, p + got, len - got, off + (off_t)got)
				       : mr_io->read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int mr_write_all(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, 0, 0);
}

int mr_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	return write_loop(fd, buf, len, 1, off);
}

ssize_t mr_read_full(int fd, void *buf, size_t len)
{
	return read_loop(fd, buf, len, 0, 0);
}

ssize_t mr_pread_full(int fd, void *buf, size_t len, off_t off)
{
	return read_loop(fd, buf, len, 1, off);
}

void mr_close(int fd)
{
	int saved = errno;

	if (fd >= 0)
		mr_io->close(fd);
	errno = saved;
}

int mr_fsync_dir_at(int dirfd, const char *path, struct mr_error *err)
{
	int fd, rc = 0;

	fd = mr_io->openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0) {
		mr_error_set(err, errno, "open(%s) for fsync failed", path);
		return -1;
	}
	if (mr_io->fsync(fd) < 0) {
		mr_error_set(err, errno, "fsync(%s) failed", path);
		rc = -1;
	}
	mr_close(fd);
	return rc;
}

int mr_open_dir_path(const char *path, int create, struct mr_error *err)
{
	int fd;

	if (path == NULL || path[0] == '\0') {
		mr_error_set(err, EINVAL, "empty directory path");
		return -1;
	}
	if (create) {
		/* Operator-given paths: create missing components like mkdir -p. */
		char *copy = strdup(path), *p;
		if (copy == NULL) {
			mr_error_set(err, ENOMEM, "strdup");
			return -1;
		}
		for (p = copy + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
				mr_error_set(err, errno, "mkdir(%s) failed", copy);
				free(copy);
				return -1;
			}
			*p = '/';
		}
		free(copy);
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			mr_error_set(err, errno, "mkdir(%s) failed", path);
			return -1;
		}
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		mr_error_set(err, errno, "open(%s) failed", path);
		return -1;
	}
	return fd;
}

int mr_relpath_safe(const char *relpath)
{
	const char *p = relpath, *end;

	if (p == NULL)
		return 0;
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (*p == '\0' || *p == '/')
		return 0;
	for (;;) {
		size_t len;
		end = strchr(p, '/');
		len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 && end != NULL && end[1] == '\0')
			return 1;   /* one trailing slash (a directory entry) */
		if (len == 0)
			return 0;
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		if (len == 1 && p[0] == '.')
			return 0;
		if (end == NULL)
			return 1;
		p = end + 1;
		if (*p == '\0')
			return 1;
	}
}

/* Walks relpath below dirfd, component by component, never following a
 * link; with mkdir_mode != 0 creates missing directories. For the last
 * component: when last_flags is -1 it is treated as a directory to create
 * or open, else opened with last_flags. */
static int walk_beneath(int dirfd, const char *relpath, int last_flags, mode_t mode,
			int create_dirs, mode_t dir_mode, struct mr_error *err)
{
	char *copy, *comp, *next;
	int cur = dirfd, fd = -1;
	const char *p = relpath;

	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (!mr_relpath_safe(relpath)) {
		mr_error_set(err, EPERM, "unsafe path \"%s\" refused", relpath);
		errno = EPERM;
		return -1;
	}
	copy = strdup(p);
	if (copy == NULL) {
		mr_error_set(err, ENOMEM, "strdup");
		return -1;
	}
	/* drop one trailing slash */
	if (copy[0] && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	comp = copy;
	for (;;) {
		int is_last;
		next = strchr(comp, '/');
		if (next)
			*next = '\0';
		is_last = (next == NULL);
		if (!is_last || last_flags == -1) {
			if (create_dirs && mr_io->mkdirat(cur, comp, dir_mode) < 0 && errno != EEXIST) {
				mr_error_set(err, errno, "mkdirat(%s) failed", comp);
				goto fail;
			}
			fd = mr_io->openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
			if (fd < 0) {
				int e = errno;
				if (e == ENOTDIR || e == ELOOP)
					mr_error_set(err, e, "openat(%s) refused: not a directory or a link", comp);
				else
					mr_error_set(err, e, "openat(%s) failed", comp);
				errno = e;
				goto fail;
			}
		} else {
			fd = mr_io->openat(cur, comp, last_flags | O_NOFOLLOW, mode);
			if (fd < 0) {
				mr_error_set(err, errno, "openat(%s) failed", comp);
				goto fail;
			}
		}
		if (cur != dirfd)
			mr_close(cur);
		cur = fd;
		fd = -1;
		if (is_last)
			break;
		comp = next + 1;
	}
	free(copy);
	return cur;
fail:
	{
		int e = errno;
		if (cur != dirfd)
			mr_close(cur);
		free(copy);
		errno = e;
	}
	return -1;
}

int mr_open_beneath(int dirfd, const char *relpath, int flags, mode_t mode,
		    struct mr_error *err)
{
	return walk_beneath(dirfd, relpath, flags, mode, 0, 0, err);
}

int mr_mkdirs_beneath(int dirfd, const char *relpath, mode_t mode, struct mr_error *err)
{
	return walk_beneath(dirfd, relpath, -1, 0, 1, mode ? mode : 0700, err);
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int dirent_cmp(const void *a, const void *b)
{
	const struct mr_dirent *x = a, *y = b;
	return strcmp(x->name, y->name);
}

void mr_dirlist_free(struct mr_dirlist *list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < list->n; i++)
		free(list->v[i].name);
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

int mr_scandir(int dirfd, int (*fn)(void *arg, const char *name, unsigned char type, uint64_t ino),
	       void *arg, struct mr_error *err)
{
	char buf[32768];
	int fd, fl, r = 0;

	/* A listing reads through a descriptor of its own: the caller's fd may
	 * be shared by threads, and a shared file position lets two listings
	 * skip each other's entries (a backup that seemed absent). It keeps
	 * the caller's O_NOATIME, so listing the source writes nothing to it. */
	fl = fcntl(dirfd, F_GETFL);
	fd = mr_io->openat(dirfd, ".",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC | (fl > 0 ? (fl & O_NOATIME) : 0), 0);
	if (fd < 0) {
		mr_error_set(err, errno, "openat(.) for listing failed");
		return -1;
	}
	for (;;) {
		ssize_t n = mr_io->getdents(fd, buf, sizeof(buf)), off = 0;
		if (n < 0) {
			mr_error_set(err, errno, "getdents failed");
			r = -1;
			goto out;
		}
		if (n == 0)
			goto out;
		while (off < n) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
			off += d->d_reclen;
			if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
				continue;
			r = fn(arg, d->d_name, d->d_type, d->d_ino);
			if (r != 0)
				goto out;
		}
	}
out:
	mr_close(fd);
	return r;
}

struct listing {
	struct mr_dirlist *list;
	size_t cap;
};

static int list_add(void *arg, const char *name, unsigned char type, uint64_t ino)
{
	struct listing *l = arg;
	struct mr_dirlist *list = l->list;

	if (list->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct mr_dirent *v = realloc(list->v, ncap * sizeof(*v));
		if (v == NULL)
			return ENOMEM;
		list->v = v;
		l->cap = ncap;
	}
	list->v[list->n].name = strdup(name);
	if (list->v[list->n].name == NULL)
		return ENOMEM;
	list->v[list->n].type = type;
	list->v[list->n].ino = ino;
	list->n++;
	return 0;
}

int mr_listdir(int dirfd, struct mr_dirlist *list, struct mr_error *err)
{
	struct listing l = { list, 0 };
	int r;

	list->v = NULL;
	list->n = 0;
	r = mr_scandir(dirfd, list_add, &l, err);
	if (r != 0) {
		if (r > 0)
			mr_error_set(err, r, "listing");
		mr_dirlist_free(list);
		return -1;
	}
	if (list->n > 1)
		qsort(list->v, list->n, sizeof(list->v[0]), dirent_cmp);
	return 0;
}

void mr_names_free(char **names, size_t n)
{
	size_t i;

	if (names == NULL)
		return;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t mr_names_sort_unique(char **names, size_t n)
{
	size_t i, j;

	if (n > 1)
		qsort(names, n, sizeof(*names), names_cmp);
	for (i = 0, j = 0; i < n; i++) {
		if (j > 0 && strcmp(names[j - 1], names[i]) == 0) {
			free(names[i]);
			continue;
		}
		names[j++] = names[i];
	}
	return j;
}

unsigned mr_path_depth(const char *rel)
{
	unsigned d = 0;

	if (rel[0] == '.' && (rel[1] == '\0' || rel[1] == '/'))
		rel += rel[1] ? 2 : 1;
	if (*rel == '\0')
		return 0;
	for (d = 1; *rel; rel++)
		d += *rel == '/';
	return d;
}

/* One folder on the way down of mr_remove_tree_at(). */
struct rm_frame {
	struct mr_dirlist list; /* its entries */
	size_t next;            /* the next entry to remove */
	dev_t dev;              /* its identity, to check ".." against */
	ino_t ino;
};

/* Removes name in dirfd when it is not a folder (0, or 1 when it is a
 * folder, -1 with err). */
static int remove_nondir(int dirfd, const char *name, struct mr_error *err)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		mr_error_set(err, errno, "fstatat(%s) failed", name);
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return 1;
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
		mr_error_set(err, errno, "unlinkat(%s) failed", name);
		return -1;
	}
	return 0;
}

/* Opens folder name below dirfd for emptying and lists it into f. The fd,
 * or -1 with err. */
static int rm_enter(int dirfd, const char *name, struct rm_frame *f, struct mr_error *err)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		mr_error_set(err, errno, "openat(%s) failed", name);
		return -1;
	}
	/* A directory without write permission (a mode copied from a backup)
	 * can't be emptied; this is our scratch, so open it up. */
	fchmod(fd, 0700);
	if (fstat(fd, &st) < 0) {
		mr_error_set(err, errno, "fstat(%s) failed", name);
		close(fd);
		return -1;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->next = 0;
	if (mr_listdir(fd, &f->list, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int mr_remove_tree_at(int dirfd, const char *relpath, struct mr_error *err)
{
	struct rm_frame *stack = NULL, *grown;
	size_t depth = 0, cap = 0;
	struct stat st;
	int fd = -1, up, r, rc = -1;

	r = remove_nondir(dirfd, relpath, err);
	if (r <= 0)
		return r;
	cap = 16;
	stack = calloc(cap, sizeof(*stack));
	if (stack == NULL) {
		mr_error_set(err, ENOMEM, "removing %s", relpath);
		return -1;
	}
	fd = rm_enter(dirfd, relpath, &stack[0], err);
	if (fd < 0)
		goto out;
	depth = 1;
	while (depth > 0) {
		struct rm_frame *f = &stack[depth - 1];
		const char *name;

		if (f->next < f->list.n) {
			name = f->list.v[f->next++].name;
			r = remove_nondir(fd, name, err);
			if (r < 0)
				goto out;
			if (r == 0)
				continue;
			/* A folder: down one level, holding only its fd. */
			if (depth == cap) {
				grown = realloc(stack, 2 * cap * sizeof(*stack));
				if (grown == NULL) {
					mr_error_set(err, ENOMEM, "removing %s", relpath);
					goto out;
				}
				memset(grown + cap, 0, cap * sizeof(*grown));
				stack = grown;
				cap *= 2;
			}
			r = rm_enter(fd, name, &stack[depth], err);
			if (r < 0)
				goto out;
			close(fd);
			fd = r;
			depth++;
			continue;
		}
		/* Empty now: back up to the parent and remove it there. */
		mr_dirlist_free(&f->list);
		depth--;
		if (depth == 0) {
			close(fd);
			fd = -1;
			if (unlinkat(dirfd, relpath, AT_REMOVEDIR) < 0 && errno != ENOENT) {
				mr_error_set(err, errno, "rmdir(%s) failed", relpath);
				goto out;
			}
			break;
		}
		up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (up < 0 || fstat(up, &st) < 0 || st.st_dev != stack[depth - 1].dev ||
		    st.st_ino != stack[depth - 1].ino) {
			mr_error_set(err, up < 0 ? errno : ESTALE,
				     "removing %s: a folder moved while it was being emptied",
				     relpath);
			if (up >= 0)
				close(up);
			goto out;
		}
		close(fd);
		fd = up;
		f = &stack[depth - 1];
		name = f->list.v[f->next - 1].name;
		if (unlinkat(fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			mr_error_set(err, errno, "rmdir(%s) failed", name);
			goto out;
		}
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	while (depth > 0)
		mr_dirlist_free(&stack[--depth].list);
	free(stack);
	return rc;
}

uint64_t mr_free_bytes(int fd)
{
	struct statvfs sv;

	if (fstatvfs(fd, &sv) < 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}
