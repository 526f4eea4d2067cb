/*
 * bench_login.c: login latency at the daemon's socket or at one of its
 * network listeners (plain TCP). N client threads,
 * each on its own connection, send `LOGIN <user>` requests for users
 * <prefix><k> (k drawn from 1..users) back to back, optionally paced to a
 * total rate, and time every request from write to reply. Prints p50, p90,
 * p99, max and the achieved rate.
 *
 * usage: bench_login SOCKET USERS PREFIX [THREADS [REQUESTS [RATE]]]
 *   SOCKET: the socket's path, or tcp:HOST:PORT for a --listen
 *   PREFIX: user names are printf(PREFIX "%05u", k), e.g. "user" -> user00001
 *   RATE: requests per second over all threads (0: as fast as possible)
 */
#include "common/common.h"
#include "daemon/daemon.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bench {
	const char *sock, *prefix;
	unsigned users, requests, threads;
	double rate;
	double *lat;   /* requests entries */
	int failed;
};

struct thr {
	struct bench *b;
	unsigned id;
};

static void *run(void *arg)
{
	struct thr *t = arg;
	struct bench *b = t->b;
	struct daemon_client c;
	struct mr_error err;
	char req[128], rep[4096];
	unsigned i, seed = t->id * 7919u + 1;
	double t0, start = mr_monotonic(), interval = 0;
	int n;

	if (daemon_client_open(&c, b->sock,
			       strncmp(b->sock, "tcp:", 4) == 0 ? b->sock + 4 : NULL, 10, &err) < 0) {
		fprintf(stderr, "bench_login: %s\n", err.msg);
		b->failed = 1;
		return NULL;
	}
	if (b->rate > 0)
		interval = (double)b->threads / b->rate;
	for (i = t->id; i < b->requests; i += b->threads) {
		if (interval > 0) {
			double due = start + interval * (double)(i / b->threads), now;

			while ((now = mr_monotonic()) < due)
				usleep((useconds_t)((due - now) * 1e6 > 50 ? (due - now) * 1e6 - 20 : 1));
		}
		seed = seed * 1103515245u + 12345u;
		n = snprintf(req, sizeof(req), "LOGIN %s%05u\n", b->prefix,
			     (seed >> 8) % b->users + 1);
		t0 = mr_monotonic();
		if (daemon_client_call(&c, req, (size_t)n, NULL, 0, rep, sizeof(rep), &err) < 0 ||
		    strstr(rep, "\"ok\":true") == NULL) {
			fprintf(stderr, "bench_login: %s %s\n", err.msg, rep);
			b->failed = 1;
			break;
		}
		b->lat[i] = mr_monotonic() - t0;
	}
	daemon_client_close(&c);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct bench b;
	pthread_t *th;
	struct thr *ts;
	double t0, took;
	unsigned i;

	if (argc < 4) {
		fprintf(stderr, "usage: bench_login SOCKET USERS PREFIX [THREADS [REQUESTS [RATE]]]\n");
		return 64;
	}
	memset(&b, 0, sizeof(b));
	b.sock = argv[1];
	b.users = (unsigned)strtoul(argv[2], NULL, 10);
	b.prefix = argv[3];
	b.threads = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 4;
	b.requests = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 100000;
	b.rate = argc > 6 ? strtod(argv[6], NULL) : 0;
	if (b.users == 0 || b.threads == 0 || b.requests < b.threads)
		return 64;
	b.lat = calloc(b.requests, sizeof(double));
	th = calloc(b.threads, sizeof(*th));
	ts = calloc(b.threads, sizeof(*ts));
	if (b.lat == NULL || th == NULL || ts == NULL)
		return 71;
	t0 = mr_monotonic();
	for (i = 0; i < b.threads; i++) {
		ts[i].b = &b;
		ts[i].id = i;
		pthread_create(&th[i], NULL, run, &ts[i]);
	}
	for (i = 0; i < b.threads; i++)
		pthread_join(th[i], NULL);
	took = mr_monotonic() - t0;
	if (b.failed)
		return 1;
	qsort(b.lat, b.requests, sizeof(double), cmp);
	printf("requests %u threads %u rate_target %.0f achieved %.0f req/s "
	       "p50 %.1f us p90 %.1f us p99 %.1f us max %.1f us\n",
	       b.requests, b.threads, b.rate, b.requests / took, b.lat[b.requests / 2] * 1e6,
	       b.lat[b.requests * 9 / 10] * 1e6, b.lat[b.requests * 99 / 100] * 1e6,
	       b.lat[b.requests - 1] * 1e6);
	free(b.lat);
	free(th);
	free(ts);
	return 0;
}
