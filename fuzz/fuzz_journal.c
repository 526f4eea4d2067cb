/*
 * fuzz_journal.c: libFuzzer target for the queue journal's replay
 * (queue/journal.c). Each input is written as queue.journal into a
 * temporary state folder and opened with queue_open(), which must either
 * refuse it with an error or replay it without crashing. When it opens, the
 * replayed queue is compacted and reopened, and the two must agree user for
 * user: the snapshot path is checked against the record path.
 *
 * Each input is tried twice: as it is, and with every record's checksum
 * made right, so mutations reach the record decoding and the queue's state
 * machine instead of stopping at the first checksum.
 *
 * Seeds: any queue.journal the queue wrote (a test's state folder kept with
 * MR_KEEP_TMP=1) copied into fuzz/corpus/fuzz_journal/, which git ignores.
 */
#include "queue/queue.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct dump {
	struct queue_user_info *v;
	size_t n, cap;
};

static int dump_one(void *arg, const struct queue_user_info *info)
{
	struct dump *d = arg;

	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 64;
		struct queue_user_info *v = realloc(d->v, ncap * sizeof(*v));

		if (v == NULL)
			abort();
		d->v = v;
		d->cap = ncap;
	}
	d->v[d->n++] = *info;
	return 0;
}

static void same_or_abort(const struct dump *a, const struct dump *b)
{
	size_t i;

	if (a->n != b->n)
		abort();
	for (i = 0; i < a->n; i++) {
		const struct queue_user_info *x = &a->v[i], *y = &b->v[i];

		if (strcmp(x->name, y->name) != 0 || x->state != y->state ||
		    x->position != y->position || x->attempts != y->attempts ||
		    x->size_hint != y->size_hint || strcmp(x->reason, y->reason) != 0)
			abort();
	}
}

static int state_dir(void)
{
	static int dirfd = -1;
	char path[] = "/tmp/fuzz_journal.XXXXXX";

	if (dirfd >= 0)
		return dirfd;
	if (mkdtemp(path) == NULL)
		abort();
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		abort();
	return dirfd;
}

/* Rewrites each record's checksum (layout in queue/journal.c, version 2:
 * the checksum covers the 16 header bytes before it and the payload). */
static void fix_checksums(uint8_t *p, size_t size)
{
	size_t off = 16;

	if (size >= 12)
		off = (size_t)p[8] | (size_t)p[9] << 8;
	while (off + 24 <= size) {
		size_t len = (size_t)p[off] | (size_t)p[off + 1] << 8 | (size_t)p[off + 2] << 16 |
			     (size_t)p[off + 3] << 24;
		uint8_t *buf;
		uint64_t h;
		int i;

		if (len > size - off - 24)
			break;
		buf = malloc(len + 16);
		if (buf == NULL)
			abort();
		memcpy(buf, p + off, 16);
		memcpy(buf + 16, p + off + 24, len);
		h = XXH3_64bits(buf, len + 16);
		free(buf);
		for (i = 0; i < 8; i++)
			p[off + 16 + i] = (uint8_t)(h >> (8 * i));
		off += 24 + len;
	}
}

static void one(const uint8_t *data, size_t size)
{
	struct queue_settings settings = { .no_fsync = 1 };
	struct dump a = { 0 }, b = { 0 };
	struct mr_error err;
	struct queue *q = NULL;
	int dirfd = state_dir(), fd;
	char name[MR_USER_NAME_MAX + 1];

	mr_log_quiet = 1;
	fd = openat(dirfd, "queue.journal", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);

	if (queue_open(dirfd, &settings, &q, &err) < 0)
		return;
	queue_foreach_user(q, dump_one, &a);
	if (queue_compact(q, &err) < 0)
		abort();
	queue_close(&q);
	if (queue_open(dirfd, &settings, &q, &err) < 0)
		abort();
	queue_foreach_user(q, dump_one, &b);
	same_or_abort(&a, &b);
	/* The replayed queue must still work. */
	if (queue_next(q, 0, 1.0, name, NULL, &err) < 0)
		abort();
	queue_close(&q);
	free(a.v);
	free(b.v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	one(data, size);
	fixed = malloc(size + 1);
	if (fixed == NULL)
		abort();
	memcpy(fixed, data, size);
	fix_checksums(fixed, size);
	one(fixed, size);
	free(fixed);
	return 0;
}
