/*
 * bench_compact.c: the longest pause a login sees while the queue journal
 * is compacted. A queue of USERS users in a fresh state folder; THREADS
 * client threads make logins (queue_request + queue_commit_wait, what the
 * daemon does before it answers) and lookups (queue_lookup, what `login`
 * asks of a queued user) back to back for SECONDS, first with no
 * compaction (the baseline), then with compactions running back to back in
 * another thread. Prints, for both phases, the number of logins, their
 * p50, p99 and max latency, the longest lookup, and the compactions done
 * and their length; then what the queue measured itself: the longest a
 * compaction held the queue lock in one turn (the longest pause it can
 * cause a login that needs the lock) and the longest its final write and
 * rename kept commits waiting. On a shared machine the login maximum of
 * both phases is dominated by scheduling and fsync noise: compare them.
 *
 * usage: bench_compact USERS [SECONDS [THREADS [DIR [RATE]]]]
 *   DIR: where the state folder is made (default /tmp); fsync is on, so
 *   the figures include the journal's group commit on that file system.
 *   RATE: logins per second over all threads (default 2000, a heavy
 *   outage; 0: as fast as possible).
 */
#include "common/common.h"
#include "queue/queue.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bench {
	struct queue *q;
	unsigned users, threads;
	double seconds, rate;
	atomic_int stop;
};

struct thr {
	struct bench *b;
	unsigned id;
	double *lat;
	size_t n, cap;
	double worst_lookup;
	int failed;
};

static void *client(void *arg)
{
	struct thr *t = arg;
	struct bench *b = t->b;
	unsigned seed = t->id * 7919u + 1;
	struct mr_error err;
	double start = mr_monotonic(), interval = b->rate > 0 ? b->threads / b->rate : 0;
	uint64_t k = 0;

	while (!atomic_load(&b->stop)) {
		struct queue_user_info info;
		char name[32];
		queue_ticket ticket;
		double t0, dt;

		if (interval > 0) {
			double due = start + interval * (double)k++, now = mr_monotonic();

			if (due > now)
				usleep((useconds_t)((due - now) * 1e6));
		}
		seed = seed * 1103515245u + 12345u;
		snprintf(name, sizeof(name), "user%07u", (seed >> 8) % b->users);
		t0 = mr_monotonic();
		queue_lookup(b->q, name, &info);
		dt = mr_monotonic() - t0;
		if (dt > t->worst_lookup)
			t->worst_lookup = dt;
		t0 = mr_monotonic();
		if (queue_request(b->q, name, 1.0, NULL, &ticket, &err) < 0 ||
		    queue_commit_wait(b->q, ticket, &err) < 0) {
			fprintf(stderr, "bench_compact: %s\n", err.msg);
			t->failed = 1;
			return NULL;
		}
		dt = mr_monotonic() - t0;
		if (t->n == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 4096;
			t->lat = realloc(t->lat, t->cap * sizeof(*t->lat));
			if (t->lat == NULL)
				abort();
		}
		t->lat[t->n++] = dt;
	}
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One phase: clients for b->seconds, compacting meanwhile when asked. */
static int phase(struct bench *b, const char *label, int compact)
{
	struct thr *t = calloc(b->threads, sizeof(*t));
	pthread_t *th = calloc(b->threads, sizeof(*th));
	struct queue_journal_stats st0, st1;
	double *all = NULL, worst_lookup = 0, t0, worst_compact = 0, sum_compact = 0;
	size_t n = 0;
	unsigned k;
	int failed = 0;

	if (t == NULL || th == NULL)
		abort();
	atomic_store(&b->stop, 0);
	queue_journal_stats(b->q, &st0);
	for (k = 0; k < b->threads; k++) {
		t[k].b = b;
		t[k].id = k + (compact ? 100 : 0);
		pthread_create(&th[k], NULL, client, &t[k]);
	}
	t0 = mr_monotonic();
	while (mr_monotonic() - t0 < b->seconds) {
		if (compact) {
			struct mr_error err;
			double c0 = mr_monotonic(), dc;

			if (queue_compact(b->q, &err) < 0) {
				fprintf(stderr, "bench_compact: %s\n", err.msg);
				failed = 1;
				break;
			}
			dc = mr_monotonic() - c0;
			sum_compact += dc;
			if (dc > worst_compact)
				worst_compact = dc;
		} else {
			usleep(10000);
		}
	}
	atomic_store(&b->stop, 1);
	for (k = 0; k < b->threads; k++) {
		pthread_join(th[k], NULL);
		failed |= t[k].failed;
		if (t[k].worst_lookup > worst_lookup)
			worst_lookup = t[k].worst_lookup;
		all = realloc(all, (n + t[k].n + 1) * sizeof(*all));
		if (all == NULL)
			abort();
		memcpy(all + n, t[k].lat, t[k].n * sizeof(*all));
		n += t[k].n;
		free(t[k].lat);
	}
	queue_journal_stats(b->q, &st1);
	qsort(all, n, sizeof(*all), cmp_d);
	if (n > 0) {
		uint64_t c = st1.compactions - st0.compactions;

		printf("%-12s users %u  logins %zu  p50 %.3f ms  p99 %.3f ms  max %.3f ms  "
		       "lookup max %.3f ms  compactions %llu",
		       label, b->users, n, all[n / 2] * 1e3, all[n * 99 / 100] * 1e3,
		       all[n - 1] * 1e3, worst_lookup * 1e3, (unsigned long long)c);
		if (c > 0)
			printf(" (avg %.0f ms, max %.0f ms, journal %.1f MiB)\n"
			       "             longest lock hold by a compaction %.3f ms (of it "
			       "on CPU %.3f ms), longest wait of commits for its final write "
			       "%.3f ms",
			       sum_compact / (double)c * 1e3, worst_compact * 1e3,
			       (double)st1.file_size / (1 << 20), st1.compact_hold_max * 1e3,
			       st1.compact_hold_cpu_max * 1e3, st1.compact_final_max * 1e3);
		printf("\n");
	}
	free(all);
	free(t);
	free(th);
	return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	struct mr_error err;
	char dir[4096];
	unsigned i;
	int dirfd, rc = 1;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_compact USERS [SECONDS [THREADS [DIR]]]\n");
		return 64;
	}
	b.users = (unsigned)strtoul(argv[1], NULL, 10);
	b.seconds = argc > 2 ? atof(argv[2]) : 5;
	b.threads = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 4;
	b.rate = argc > 5 ? atof(argv[5]) : 2000;
	snprintf(dir, sizeof(dir), "%s/bench_compact.XXXXXX", argc > 4 ? argv[4] : "/tmp");
	if (b.users == 0 || b.threads == 0 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "bench_compact: bad arguments or mkdtemp failed\n");
		return 64;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || queue_open(dirfd, NULL, &b.q, &err) < 0) {
		fprintf(stderr, "bench_compact: %s\n", dirfd < 0 ? dir : err.msg);
		return 74;
	}
	for (i = 0; i < b.users; i++) {
		char name[32];

		snprintf(name, sizeof(name), "user%07u", i);
		if (queue_add_user(b.q, name, 1000 + i % 977, &err) < 0) {
			fprintf(stderr, "bench_compact: %s\n", err.msg);
			goto out;
		}
	}
	if (queue_compact(b.q, &err) < 0) {
		fprintf(stderr, "bench_compact: %s\n", err.msg);
		goto out;
	}
	if (phase(&b, "baseline", 0) < 0 || phase(&b, "compacting", 1) < 0)
		goto out;
	rc = 0;
out:
	queue_close(&b.q);
	close(dirfd);
	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_compact: could not remove %s\n", dir);
	}
	return rc;
}
