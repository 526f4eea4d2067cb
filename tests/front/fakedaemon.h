/*
 * fakedaemon.h: a fake restore daemon for the tests of front/: a thread on
 * a Unix socket in a temporary folder answering LOGIN and SHOW with canned
 * user objects (alice queued at 1837, bob and odd+name and dave active, dt
 * with dial tone, erin queued, anyone else unknown) and ACTIVATIONS from a
 * list the test sets; every request line is kept for the test to read.
 */
#ifndef MR_TESTS_FRONT_FAKEDAEMON_H
#define MR_TESTS_FRONT_FAKEDAEMON_H

#include "tests/testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- a fake daemon --------------------------------------------------------- */

struct fake {
	char *dir, *sock;
	int lfd;
	pthread_t t;
	int calls;
	const char *epoch;          /* ACTIVATIONS: the run's epoch (hex) */
	const char *const *active;  /* ... its list, NULL-terminated */
	char requests[4096];        /* every request line, one after the other */
};

/* The ACTIVATIONS reply for "ACTIVATIONS EPOCH NEXT [MAX]". */
static inline void fake_activations(struct fake *f, const char *line, char *out, size_t len)
{
	char epoch[32] = "";
	unsigned long long next = 0, total = 0, i;
	size_t n;

	sscanf(line, "%*s %31s %llu", epoch, &next);
	while (f->active != NULL && f->active[total] != NULL)
		total++;
	if (strtoull(epoch, NULL, 16) != strtoull(f->epoch, NULL, 16) || next > total)
		next = 0;
	n = (size_t)snprintf(out, len, "{\"ok\":true,\"epoch\":\"%s\",\"first\":%llu,\"next\":%llu,"
			     "\"total\":%llu,\"users\":[", f->epoch, next, total, total);
	for (i = next; i < total; i++)
		n += (size_t)snprintf(out + n, len - n, "%s\"%s\"", i > next ? "," : "", f->active[i]);
	snprintf(out + n, len - n, "]}\n");
}

static inline const char *canned(const char *verb, const char *user)
{
	static char buf[512];

	(void)verb;
	if (strcmp(user, "alice") == 0)
		return "{\"ok\":true,\"user\":\"alice\",\"state\":\"queued\",\"position\":1837,"
		       "\"eta_seconds\":10800,\"eta_status\":\"estimate\",\"mode\":\"waiting\"}";
	if (strcmp(user, "erin") == 0)
		return "{\"ok\":true,\"user\":\"erin\",\"state\":\"queued\",\"position\":2,"
		       "\"eta_seconds\":100,\"eta_status\":\"estimate\",\"mode\":\"waiting\"}";
	if (strcmp(user, "bob") == 0 || strcmp(user, "odd+name") == 0 || strcmp(user, "dave") == 0)
		snprintf(buf, sizeof(buf),
			 "{\"ok\":true,\"user\":\"%s\",\"state\":\"active\",\"position\":null,"
			 "\"eta_seconds\":0,\"eta_status\":\"done\",\"mode\":\"restored\"}",
			 user);
	else if (strcmp(user, "dt") == 0)
		return "{\"ok\":true,\"user\":\"dt\",\"state\":\"queued\",\"position\":0,"
		       "\"eta_seconds\":5,\"eta_status\":\"estimate\",\"mode\":\"dial-tone\"}";
	else
		snprintf(buf, sizeof(buf),
			 "{\"ok\":true,\"user\":\"%s\",\"state\":\"unknown\",\"position\":null,"
			 "\"eta_seconds\":0,\"eta_status\":\"done\",\"mode\":\"untouched\"}",
			 user);
	return buf;
}

static inline void *fake_main(void *arg)
{
	struct fake *f = arg;
	char line[1024], verb[32], user[300], out[4096];
	int fd;

	while ((fd = accept(f->lfd, NULL, NULL)) >= 0) {
		FILE *in = fdopen(fd, "r");

		while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
			if (sscanf(line, "%31s %299s", verb, user) != 2)
				break;
			f->calls++;
			if (strlen(f->requests) + strlen(line) < sizeof(f->requests))
				strcat(f->requests, line);
			if (strcmp(verb, "ACTIVATIONS") == 0)
				fake_activations(f, line, out, sizeof(out));
			else
				snprintf(out, sizeof(out), "%s\n", canned(verb, user));
			if (write(fd, out, strlen(out)) < 0)
				break;
		}
		if (in != NULL)
			fclose(in);
		else
			close(fd);
	}
	return NULL;
}

static inline void fake_start(struct fake *f)
{
	struct sockaddr_un sa;

	memset(f, 0, sizeof(*f));
	mr_log_quiet = 1;
	f->epoch = "00000000000000ab";
	f->dir = tu_tmpdir();
	f->sock = tu_path(f->dir, "mr.sock");
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	assert_int_equal(pthread_create(&f->t, NULL, fake_main, f), 0);
}

static inline void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	close(f->lfd);
	pthread_join(f->t, NULL);
	tu_rmtree(f->dir);
	free(f->sock);
}

#endif
