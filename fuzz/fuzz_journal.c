/*
 * fuzz_journal.c: libFuzzer target for the queue journal's replay
 * (queue/journal.c). Each input is written as queue.journal into a
 * temporary state folder and opened with queue_open(), which must either
 * refuse it with an error or replay it without crashing. When it opens, the
 * replayed queue is compacted and reopened, and the two must agree user for
 * user: the snapshot path is checked against the record path.
 *
 * Seeds: fuzz/corpus/fuzz_journal/ (journals written by the queue itself).
 */
#include "queue/queue.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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
		return 0;
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
	return 0;
}
