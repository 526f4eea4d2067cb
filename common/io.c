/*
 * io.c: the thin I/O layer. Every file system call that can fail goes
 * through mr_io, so a test can make any of them fail (EIO, ENOSPC, short
 * writes, fsync errors) without touching the code under test.
 */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static ssize_t libc_getdents(int fd, void *buf, size_t len)
{
	return syscall(SYS_getdents64, fd, buf, len);
}

static int libc_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return openat(dirfd, path, flags | O_CLOEXEC, mode);
}

static int libc_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return fstatat(dirfd, path, st, flags);
}

static int libc_fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
	return fchmodat(dirfd, path, mode, flags);
}

const struct mr_io_ops mr_io_libc = {
	.openat = libc_openat,
	.close = close,
	.read = read,
	.pread = pread,
	.write = write,
	.pwrite = pwrite,
	.fstatat = libc_fstatat,
	.fstat = fstat,
	.fsync = fsync,
	.syncfs = syncfs,
	.ftruncate = ftruncate,
	.mkdirat = mkdirat,
	.renameat = renameat,
	.unlinkat = unlinkat,
	.symlinkat = symlinkat,
	.readlinkat = readlinkat,
	.linkat = linkat,
	.getdents = libc_getdents,
	.fchmod = fchmod,
	.fchmodat = libc_fchmodat,
	.fchownat = fchownat,
	.utimensat = utimensat,
	.futimens = futimens,
	.lseek = lseek,
};

const struct mr_io_ops *mr_io = &mr_io_libc;

/* ---- fault injection ------------------------------------------------ */

#define FAULT_MAX 64
#define FD_NAMES 4096

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct mr_io_fault f;
	char *name;
	long seen, fired;
} faults[FAULT_MAX];
static size_t nfaults;
static long fired_total;
static char *fd_names[FD_NAMES];

static void fd_name_set(int fd, const char *name)
{
	if (fd < 0 || fd >= FD_NAMES)
		return;
	pthread_mutex_lock(&fault_lock);
	free(fd_names[fd]);
	fd_names[fd] = name ? strdup(name) : NULL;
	pthread_mutex_unlock(&fault_lock);
}

static void fd_name_copy(int fd, int from)
{
	if (fd < 0 || fd >= FD_NAMES)
		return;
	pthread_mutex_lock(&fault_lock);
	free(fd_names[fd]);
	fd_names[fd] = NULL;
	if (from >= 0 && from < FD_NAMES && fd_names[from] != NULL)
		fd_names[fd] = strdup(fd_names[from]);
	pthread_mutex_unlock(&fault_lock);
}

/* Decides whether a call of kind op on name fails. Returns 0 (go on), or
 * the fault index + 1. */
static int fault_check(enum mr_io_op op, const char *name)
{
	size_t i;
	int hit = 0;

	pthread_mutex_lock(&fault_lock);
	for (i = 0; i < nfaults; i++) {
		if (faults[i].f.op != op)
			continue;
		if (faults[i].name != NULL && (name == NULL || strstr(name, faults[i].name) == NULL))
			continue;
		faults[i].seen++;
		if (faults[i].seen <= faults[i].f.after)
			continue;
		if (faults[i].f.count > 0 && faults[i].fired >= faults[i].f.count)
			continue;
		faults[i].fired++;
		fired_total++;
		hit = (int)i + 1;
		break;
	}
	pthread_mutex_unlock(&fault_lock);
	return hit;
}

static int fd_fault(enum mr_io_op op, int fd)
{
	char name[1024] = "";
	int have = 0;

	pthread_mutex_lock(&fault_lock);
	if (fd >= 0 && fd < FD_NAMES && fd_names[fd] != NULL) {
		strncpy(name, fd_names[fd], sizeof(name) - 1);
		have = 1;
	}
	pthread_mutex_unlock(&fault_lock);
	return fault_check(op, have ? name : NULL);
}

#define FAIL_WITH(idx) do { errno = faults[(idx) - 1].f.errnum; return -1; } while (0)

/* What a read or write hit by fault h (0: none) may transfer: at most the
 * fault's short_len when it has one. */
static size_t allowed_len(int h, size_t len)
{
	if (h && faults[h - 1].f.short_len && faults[h - 1].f.short_len < len)
		return faults[h - 1].f.short_len;
	return len;
}

static int f_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	int h = fault_check(MR_IO_OPEN, path), fd;

	if (h)
		FAIL_WITH(h);
	fd = libc_openat(dirfd, path, flags, mode);
	if (fd >= 0 && strcmp(path, ".") == 0)
		fd_name_copy(fd, dirfd); /* a second descriptor of the same folder */
	else if (fd >= 0)
		fd_name_set(fd, path);
	return fd;
}

static int f_close(int fd)
{
	fd_name_set(fd, NULL);
	return close(fd);
}

static ssize_t f_read(int fd, void *buf, size_t len)
{
	int h = fd_fault(MR_IO_READ, fd);

	if (h && !faults[h - 1].f.short_len)
		FAIL_WITH(h);
	return read(fd, buf, allowed_len(h, len));
}

static ssize_t f_pread(int fd, void *buf, size_t len, off_t off)
{
	int h = fd_fault(MR_IO_READ, fd);

	if (h && !faults[h - 1].f.short_len)
		FAIL_WITH(h);
	return pread(fd, buf, allowed_len(h, len), off);
}

static ssize_t f_write(int fd, const void *buf, size_t len)
{
	int h = fd_fault(MR_IO_WRITE, fd);

	if (h && !faults[h - 1].f.short_len)
		FAIL_WITH(h);
	return write(fd, buf, allowed_len(h, len));
}

static ssize_t f_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	int h = fd_fault(MR_IO_WRITE, fd);

	if (h && !faults[h - 1].f.short_len)
		FAIL_WITH(h);
	return pwrite(fd, buf, allowed_len(h, len), off);
}

static int f_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	int h = fault_check(MR_IO_STAT, path);

	if (h)
		FAIL_WITH(h);
	return fstatat(dirfd, path, st, flags);
}

static int f_fstat(int fd, struct stat *st)
{
	int h = fd_fault(MR_IO_STAT, fd);

	if (h)
		FAIL_WITH(h);
	return fstat(fd, st);
}

static int f_fsync(int fd)
{
	int h = fd_fault(MR_IO_FSYNC, fd);

	if (h)
		FAIL_WITH(h);
	return fsync(fd);
}

static int f_syncfs(int fd)
{
	int h = fd_fault(MR_IO_FSYNC, fd);

	if (h)
		FAIL_WITH(h);
	return syncfs(fd);
}

static int f_ftruncate(int fd, off_t len)
{
	int h = fd_fault(MR_IO_TRUNCATE, fd);

	if (h)
		FAIL_WITH(h);
	return ftruncate(fd, len);
}

static int f_mkdirat(int dirfd, const char *path, mode_t mode)
{
	int h = fault_check(MR_IO_MKDIR, path);

	if (h)
		FAIL_WITH(h);
	return mkdirat(dirfd, path, mode);
}

static int f_renameat(int od, const char *op, int nd, const char *np)
{
	int h = fault_check(MR_IO_RENAME, np);

	if (!h)
		h = fault_check(MR_IO_RENAME, op);
	if (h)
		FAIL_WITH(h);
	return renameat(od, op, nd, np);
}

static int f_unlinkat(int dirfd, const char *path, int flags)
{
	int h = fault_check(MR_IO_UNLINK, path);

	if (h)
		FAIL_WITH(h);
	return unlinkat(dirfd, path, flags);
}

static int f_symlinkat(const char *target, int dirfd, const char *path)
{
	int h = fault_check(MR_IO_SYMLINK, path);

	if (h)
		FAIL_WITH(h);
	return symlinkat(target, dirfd, path);
}

static ssize_t f_readlinkat(int dirfd, const char *path, char *buf, size_t len)
{
	int h = fault_check(MR_IO_READLINK, path);

	if (h)
		FAIL_WITH(h);
	return readlinkat(dirfd, path, buf, len);
}

static int f_linkat(int od, const char *op, int nd, const char *np, int flags)
{
	int h = fault_check(MR_IO_RENAME, np);

	if (h)
		FAIL_WITH(h);
	return linkat(od, op, nd, np, flags);
}

static ssize_t f_getdents(int fd, void *buf, size_t len)
{
	int h = fd_fault(MR_IO_GETDENTS, fd);

	if (h)
		FAIL_WITH(h);
	return libc_getdents(fd, buf, len);
}

static int f_fchmod(int fd, mode_t mode)
{
	int h = fd_fault(MR_IO_META, fd);

	if (h)
		FAIL_WITH(h);
	return fchmod(fd, mode);
}

static int f_fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
	int h = fault_check(MR_IO_META, path);

	if (h)
		FAIL_WITH(h);
	return fchmodat(dirfd, path, mode, flags);
}

static int f_fchownat(int dirfd, const char *path, uid_t uid, gid_t gid, int flags)
{
	int h = fault_check(MR_IO_META, path);

	if (h)
		FAIL_WITH(h);
	return fchownat(dirfd, path, uid, gid, flags);
}

static int f_utimensat(int dirfd, const char *path, const struct timespec ts[2], int flags)
{
	int h = fault_check(MR_IO_META, path);

	if (h)
		FAIL_WITH(h);
	return utimensat(dirfd, path, ts, flags);
}

static int f_futimens(int fd, const struct timespec ts[2])
{
	int h = fd_fault(MR_IO_META, fd);

	if (h)
		FAIL_WITH(h);
	return futimens(fd, ts);
}

static const struct mr_io_ops fault_ops = {
	.openat = f_openat, .close = f_close, .read = f_read, .pread = f_pread,
	.write = f_write, .pwrite = f_pwrite, .fstatat = f_fstatat, .fstat = f_fstat,
	.fsync = f_fsync, .syncfs = f_syncfs, .ftruncate = f_ftruncate,
	.mkdirat = f_mkdirat, .renameat = f_renameat, .unlinkat = f_unlinkat,
	.symlinkat = f_symlinkat, .readlinkat = f_readlinkat, .linkat = f_linkat,
	.getdents = f_getdents, .fchmod = f_fchmod, .fchmodat = f_fchmodat,
	.fchownat = f_fchownat, .utimensat = f_utimensat, .futimens = f_futimens,
	.lseek = lseek,
};

int mr_io_fault_add(const struct mr_io_fault *f)
{
	pthread_mutex_lock(&fault_lock);
	if (nfaults == FAULT_MAX) {
		pthread_mutex_unlock(&fault_lock);
		return -1;
	}
	faults[nfaults].f = *f;
	faults[nfaults].name = f->name_contains ? strdup(f->name_contains) : NULL;
	faults[nfaults].seen = faults[nfaults].fired = 0;
	nfaults++;
	pthread_mutex_unlock(&fault_lock);
	mr_io = &fault_ops;
	return 0;
}

void mr_io_fault_clear(void)
{
	size_t i;

	mr_io = &mr_io_libc;
	pthread_mutex_lock(&fault_lock);
	for (i = 0; i < nfaults; i++)
		free(faults[i].name);
	nfaults = 0;
	fired_total = 0;
	for (i = 0; i < FD_NAMES; i++) {
		free(fd_names[i]);
		fd_names[i] = NULL;
	}
	pthread_mutex_unlock(&fault_lock);
}

long mr_io_fault_fired(void)
{
	long n;

	pthread_mutex_lock(&fault_lock);
	n = fired_total;
	pthread_mutex_unlock(&fault_lock);
	return n;
}
