/*
 * fuzz_extract.c: libFuzzer target for archive entry handling. Each input
 * is handed to restore_extract() as an archive, extracted into a fresh
 * work folder beside a sibling "outside" folder; afterwards nothing but
 * work/ may have changed below the iteration's root, and the result must
 * be 0 or 1 (never a crash, never a fatal error on a healthy target).
 */
#include "restore/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[256];

/* The root listing (names and types, "outside" contents) as a string. */
static void snapshot(int rootfd, char *buf, size_t len)
{
	struct mr_dirlist list, sub;
	struct mr_error err;
	size_t pos = 0, i;
	int ofd;

	buf[0] = '\0';
	if (mr_listdir(rootfd, &list, &err) < 0)
		abort();
	for (i = 0; i < list.n; i++)
		mr_bufcat(buf, len, &pos, "%s:%u ", list.v[i].name, list.v[i].type);
	mr_dirlist_free(&list);
	ofd = openat(rootfd, "outside", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0)
		abort();
	if (mr_listdir(ofd, &sub, &err) < 0)
		abort();
	for (i = 0; i < sub.n; i++) {
		struct stat sb;

		if (fstatat(ofd, sub.v[i].name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			abort();
		mr_bufcat(buf, len, &pos, "o/%s:%o:%lld:%lld.%ld ", sub.v[i].name, sb.st_mode,
			  (long long)sb.st_size, (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
	}
	mr_dirlist_free(&sub);
	close(ofd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct restore_settings s;
	struct restore_stats st;
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct mr_error err;
	char before[8192], after[8192], root[300];
	int rootfd = -1, workfd = -1, afd = -1, rc;

	if (base[0] == '\0') {
		const char *t = getenv("TMPDIR");

		snprintf(base, sizeof(base), "%s/mr-fuzz-extract.XXXXXX", t && *t ? t : "/tmp");
		if (mkdtemp(base) == NULL)
			abort();
	}
	snprintf(root, sizeof(root), "%s/it", base);
	mkdir(root, 0700);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		abort();
	if (mkdirat(rootfd, "work", 0700) < 0 || mkdirat(rootfd, "outside", 0700) < 0)
		abort();
	{
		int fd = openat(rootfd, "outside/secret", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		if (fd < 0 || write(fd, "keep", 4) != 4)
			abort();
		close(fd);
	}
	workfd = openat(rootfd, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	afd = memfd_create("archive", MFD_CLOEXEC);
	if (workfd < 0 || afd < 0)
		abort();
	if (size > 0 && write(afd, data, size) != (ssize_t)size)
		abort();
	snapshot(rootfd, before, sizeof(before));

	restore_settings_init(&s);
	s.max_bytes = 4 << 20;
	s.reserve_bytes = 1;
	mr_error_clear(&err);
	rc = restore_extract(afd, workfd, &s, &st, &pb, &err);
	if (rc < 0) {
		fprintf(stderr, "fatal: %s\n", err.msg);
		abort();
	}
	snapshot(rootfd, after, sizeof(after));
	if (strcmp(before, after) != 0) {
		fprintf(stderr, "outside changed:\n%s\n%s\n", before, after);
		abort();
	}

	mr_problems_reset(&pb);
	close(afd);
	close(workfd);
	if (mr_remove_tree_at(rootfd, "work", &err) < 0 ||
	    mr_remove_tree_at(rootfd, "outside", &err) < 0)
		abort();
	close(rootfd);
	rmdir(root);
	return 0;
}
