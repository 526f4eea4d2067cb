/*
 * bench_extract.c: extracts N archives into N fresh work folders with
 * restore_extract() on --jobs threads, and prints the wall time. Used by
 * bench/restore.sh beside bsdtar.
 *
 *   bench_extract [--jobs N] --out DIR ARCHIVE...
 *
 * Work folder i is DIR/<i>; DIR must exist and the work folders must not.
 */
#include "common/common.h"
#include "restore/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct job_set {
	char **archives;
	int n;
	int outfd;
	atomic_int next;  /* the next archive to take */
	atomic_int failed;
};

static void *worker(void *arg)
{
	struct job_set *js = arg;

	for (;;) {
		int i = atomic_fetch_add_explicit(&js->next, 1, memory_order_relaxed);
		struct mr_problems pb = { NULL, 0, 0, 0 };
		struct restore_settings s;
		struct restore_stats st;
		struct mr_error err;
		char name[32];
		int afd, wfd, rc;

		if (i >= js->n)
			break;
		snprintf(name, sizeof(name), "%d", i);
		if (mkdirat(js->outfd, name, 0755) < 0) {
			fprintf(stderr, "mkdirat(%s) failed: %s\n", name, strerror(errno));
			js->failed = 1;
			continue;
		}
		wfd = openat(js->outfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		afd = open(js->archives[i], O_RDONLY | O_CLOEXEC);
		if (wfd < 0 || afd < 0) {
			fprintf(stderr, "open(%s) failed: %s\n", js->archives[i], strerror(errno));
			js->failed = 1;
			mr_close(wfd);
			mr_close(afd);
			continue;
		}
		restore_settings_init(&s);
		mr_error_clear(&err);
		rc = restore_extract(afd, wfd, &s, &st, &pb, &err);
		if (rc != 0) {
			char sum[512];

			mr_problems_summary(&pb, sum, sizeof(sum), 3);
			fprintf(stderr, "%s: result %d: %s %s\n", js->archives[i], rc, err.msg, sum);
			js->failed = 1;
		}
		mr_problems_reset(&pb);
		close(afd);
		close(wfd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct job_set js = { NULL, 0, -1, 0, 0 };
	const char *out = NULL;
	pthread_t *threads;
	double t0;
	int jobs = 1, opt, i;

	while ((opt = getopt_long(argc, argv, "j:o:", opts, NULL)) != -1) {
		if (opt == 'j')
			jobs = atoi(optarg);
		else if (opt == 'o')
			out = optarg;
		else
			return 64;
	}
	if (out == NULL || optind >= argc || jobs < 1) {
		fprintf(stderr, "usage: bench_extract [--jobs N] --out DIR ARCHIVE...\n");
		return 64;
	}
	js.archives = argv + optind;
	js.n = argc - optind;
	js.outfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (js.outfd < 0) {
		fprintf(stderr, "open(%s) failed: %s\n", out, strerror(errno));
		return 74;
	}
	threads = calloc((size_t)jobs, sizeof(*threads));
	if (threads == NULL)
		return 70;
	t0 = mr_monotonic();
	for (i = 0; i < jobs; i++)
		if (pthread_create(&threads[i], NULL, worker, &js) != 0)
			return 70;
	for (i = 0; i < jobs; i++)
		pthread_join(threads[i], NULL);
	printf("%.3f\n", mr_monotonic() - t0);
	free(threads);
	close(js.outfd);
	return js.failed ? 1 : 0;
}
