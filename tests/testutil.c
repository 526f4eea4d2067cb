/* testutil.c: see testutil.h. */
#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&path, "%s/mrtest.XXXXXX", base) < 0)
		fail_msg("asprintf");
	if (mkdtemp(path) == NULL)
		fail_msg("mkdtemp(%s): %s", path, strerror(errno));
	return path;
}

void tu_rmtree(char *path)
{
	if (path == NULL)
		return;
	if (getenv("MR_KEEP_TMP") == NULL)
		tu_sh("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", path, path);
	free(path);
}

char *tu_path(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		fail_msg("asprintf");
	return p;
}

void tu_write_file(const char *dir, const char *rel, const void *data, size_t len)
{
	char *path = tu_path(dir, rel);
	size_t i;
	int fd;

	for (i = strlen(dir) + 1; path[i] != '\0'; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		mkdir(path, 0755);
		path[i] = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fail_msg("open(%s): %s", path, strerror(errno));
	if (len && write(fd, data, len) != (ssize_t)len)
		fail_msg("write(%s): %s", path, strerror(errno));
	close(fd);
	free(path);
}

char *tu_read_file(const char *dir, const char *rel, size_t *len_r)
{
	char *path = tu_path(dir, rel), *buf = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY);

	free(path);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0) {
		buf = malloc((size_t)st.st_size + 1);
		if (buf && read(fd, buf, (size_t)st.st_size) == st.st_size) {
			buf[st.st_size] = '\0';
			if (len_r)
				*len_r = (size_t)st.st_size;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	close(fd);
	return buf;
}

int tu_sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		fail_msg("vasprintf");
	va_end(ap);
	rc = system(cmd);
	free(cmd);
	if (rc == -1)
		return -1;
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

int tu_open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open(%s): %s", path, strerror(errno));
	return fd;
}

int tu_build_deep(int dirfd, int levels)
{
	int fd = dup(dirfd), sub, i;

	assert_true(fd >= 0);
	for (i = 0; i < levels; i++) {
		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		sub = openat(fd, "d", O_RDONLY | O_DIRECTORY);
		assert_true(sub >= 0);
		if (i % 500 == 0) {
			int f = openat(fd, "f", O_WRONLY | O_CREAT, 0600);

			assert_true(f >= 0);
			close(f);
		}
		close(fd);
		fd = sub;
	}
	return fd;
}
