/*
 * serve.c: the listeners of front.h (auth_http, policy): one acceptor
 * thread polls the listening sockets; each connection is served on a
 * thread of its own (nginx and Postfix keep few connections open, and a
 * call to the daemon blocks), at most max_conns per listener: a full
 * listener is not polled, so the next peers wait in the kernel's backlog.
 * A peer outside the allowed networks is closed before any byte; a
 * connection without a complete request for idle_seconds is closed.
 */
#include "front/front_private.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum { KIND_HTTP = 0, KIND_POLICY = 1 };
static const char *const kind_names[] = { "auth_http", "policy" };

struct front_server {
	struct front *f;
	int lfd[2];                 /* listening sockets, -1 when not asked */
	int wake[2];                /* a pipe: a byte wakes the acceptor */
	pthread_t acceptor;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
	int nconns[2];
	int *fds;                   /* open connections (for the stop), -1 free */
	size_t nfds;
	struct mr_cidr loopback[2];
};

struct conn {
	struct front_server *srv;
	int fd, kind;
	size_t slot;
};

static int max_conns(const struct front_server *s)
{
	return s->f->set.max_conns > 0 ? s->f->set.max_conns : FRONT_MAX_CONNS;
}

static double idle_seconds(const struct front_server *s)
{
	return s->f->set.idle_seconds > 0 ? s->f->set.idle_seconds : FRONT_IDLE_SECONDS;
}

static int send_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Serves one connection until it ends, breaks a rule or idles. */
static void serve_conn(struct conn *c)
{
	size_t cap = c->kind == KIND_HTTP ? FRONT_HTTP_HEAD_MAX : FRONT_POLICY_REQUEST_MAX;
	char *buf = malloc(cap + 1), out[2048];
	struct front_http_req hr;
	struct front_policy_req pr;
	double started = mr_monotonic();
	const char *why;
	size_t have = 0, n;
	ssize_t got;
	long used;
	int rc;

	if (buf == NULL)
		return;
	for (;;) {
		if (mr_monotonic() - started > idle_seconds(c->srv))
			break; /* a request trickled in too slowly */
		got = recv(c->fd, buf + have, cap - have, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break; /* closed, timed out, or shut down by the stop */
		have += (size_t)got;
		if (c->kind == KIND_HTTP) {
			rc = front_http_parse(buf, have, &hr, &why);
			if (rc == 0 && have < cap)
				continue;
			if (rc <= 0) {
				mr_log("auth_http: bad request: %s", rc < 0 ? why : "too long");
				(void)send_all(c->fd, "HTTP/1.0 400 Bad Request\r\n\r\n", 28);
				break;
			}
			n = front_http_answer(c->srv->f, &hr, out, sizeof(out));
			(void)send_all(c->fd, out, n);
			break; /* HTTP/1.0: one request */
		}
		for (;;) {
			used = front_policy_parse(buf, have, &pr, &why);
			if (used == 0 && have < cap)
				break;
			if (used <= 0) {
				mr_log("policy: bad request: %s", used < 0 ? why : "too long");
				n = (size_t)snprintf(out, sizeof(out),
						     "action=DEFER_IF_PERMIT mailrestore: bad policy "
						     "request\n\n");
				(void)send_all(c->fd, out, n);
				goto out;
			}
			n = front_policy_answer(c->srv->f, &pr, out, sizeof(out));
			if (send_all(c->fd, out, n) < 0)
				goto out;
			memmove(buf, buf + used, have - (size_t)used);
			have -= (size_t)used;
			started = mr_monotonic();
		}
	}
out:
	free(buf);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct front_server *s = c->srv;
	char w = 'w';

	serve_conn(c);
	pthread_mutex_lock(&s->mu);
	s->fds[c->slot] = -1;
	s->nconns[c->kind]--;
	close(c->fd);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	(void)!write(s->wake[1], &w, 1); /* a full listener may be polled again */
	free(c);
	return NULL;
}

/* Whether the peer sa is in --allow, or without it on loopback. */
static int allowed(const struct front_server *s, const struct sockaddr_storage *sa)
{
	const struct mr_cidr *rules = s->f->set.n_allow > 0 ? s->f->set.allow : s->loopback;
	size_t n = s->f->set.n_allow > 0 ? s->f->set.n_allow : 2, i;

	for (i = 0; i < n; i++)
		if (mr_cidr_match(&rules[i], (const struct sockaddr *)sa))
			return 1;
	return 0;
}

static void accept_one(struct front_server *s, int kind)
{
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	struct timeval tv;
	struct conn *c;
	pthread_attr_t attr;
	pthread_t t;
	double idle;
	size_t i;
	int fd;

	fd = accept4(s->lfd[kind], (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (!allowed(s, &sa)) {
		char host[64] = "?";

		getnameinfo((struct sockaddr *)&sa, salen, host, sizeof(host), NULL, 0,
			    NI_NUMERICHOST);
		mr_log("%s: %s is not allowed (--allow): closed", kind_names[kind], host);
		close(fd);
		return;
	}
	idle = idle_seconds(s);
	tv.tv_sec = (time_t)idle;
	tv.tv_usec = (suseconds_t)((idle - (double)tv.tv_sec) * 1e6);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->kind = kind;
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->nfds && s->fds[i] >= 0; i++)
		;
	c->slot = i; /* a free slot exists: the listener is polled only then */
	s->fds[i] = fd;
	s->nconns[kind]++;
	pthread_mutex_unlock(&s->mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&t, &attr, conn_main, c) != 0) {
		pthread_mutex_lock(&s->mu);
		s->fds[i] = -1;
		s->nconns[kind]--;
		pthread_mutex_unlock(&s->mu);
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&attr);
}

static void *acceptor_main(void *arg)
{
	struct front_server *s = arg;
	struct pollfd p[3];
	char drain[64];
	int k, stop;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		stop = s->stopping;
		for (k = 0; k < 2; k++) {
			p[k].fd = s->lfd[k] >= 0 && s->nconns[k] < max_conns(s) ? s->lfd[k] : -1;
			p[k].events = POLLIN;
			p[k].revents = 0;
		}
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		p[2].fd = s->wake[0];
		p[2].events = POLLIN;
		p[2].revents = 0;
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[2].revents & POLLIN)
			(void)!read(s->wake[0], drain, sizeof(drain));
		for (k = 0; k < 2; k++)
			if (p[k].revents & POLLIN)
				accept_one(s, k);
	}
	return NULL;
}

/* A listening socket on ADDR:PORT. */
static int listen_on(const char *where, struct mr_error *err)
{
	char host[MR_HOST_MAX], port[16];
	struct addrinfo hints, *res = NULL;
	int fd = -1, one = 1, rc;
	unsigned p;

	if (mr_hostport_split(where, host, sizeof(host), &p) < 0) {
		mr_error_set(err, EINVAL, "not ADDR:PORT: %s", where);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || res == NULL) {
		mr_error_set(err, EINVAL, "%s: %s", where, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		mr_error_set(err, errno, "socket() for %s failed", where);
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		mr_error_set(err, errno, "bind/listen on %s failed", where);
		close(fd);
		fd = -1;
	}
out:
	freeaddrinfo(res);
	return fd;
}

int front_serve_start(struct front *f, const char *auth_http, const char *policy,
		      struct front_server **srv_r, struct mr_error *err)
{
	struct front_server *s = calloc(1, sizeof(*s));
	const char *where[2] = { auth_http, policy };
	sigset_t all, old;
	int k, rc;

	*srv_r = NULL;
	if (s == NULL) {
		mr_error_set(err, ENOMEM, "front_serve_start");
		return -1;
	}
	s->f = f;
	s->lfd[0] = s->lfd[1] = s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	(void)mr_cidr_parse("127.0.0.0/8", &s->loopback[0]);
	(void)mr_cidr_parse("::1", &s->loopback[1]);
	s->nfds = (size_t)max_conns(s) * 2;
	s->fds = malloc(s->nfds * sizeof(*s->fds));
	if (s->fds == NULL || pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		mr_error_set(err, errno ? errno : ENOMEM, "front_serve_start");
		goto fail;
	}
	memset(s->fds, 0xff, s->nfds * sizeof(*s->fds));
	for (k = 0; k < 2; k++)
		if (where[k] != NULL) {
			s->lfd[k] = listen_on(where[k], err);
			if (s->lfd[k] < 0) {
				mr_error_prefix(err, "--%s", k == 0 ? "auth-http" : "policy");
				goto fail;
			}
		}
	/* Signals are the host program's (the daemon reads its own from a
	 * signalfd): the acceptor and the connection threads it starts take
	 * none. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&s->acceptor, NULL, acceptor_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		mr_error_set(err, rc, "pthread_create");
		goto fail;
	}
	s->started = 1;
	for (k = 0; k < 2; k++)
		if (where[k] != NULL)
			mr_log("%s: listening on %s", kind_names[k], where[k]);
	*srv_r = s;
	return 0;
fail:
	front_serve_stop(&s);
	return -1;
}

void front_serve_stop(struct front_server **sp)
{
	struct front_server *s = sp ? *sp : NULL;
	char w = 's';
	size_t i;
	int k;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_mutex_unlock(&s->mu);
	if (s->started) {
		(void)!write(s->wake[1], &w, 1);
		pthread_join(s->acceptor, NULL);
	}
	for (k = 0; k < 2; k++)
		if (s->lfd[k] >= 0)
			close(s->lfd[k]);
	/* Wake every connection's thread (its recv returns) and wait. */
	pthread_mutex_lock(&s->mu);
	for (i = 0; s->fds != NULL && i < s->nfds; i++)
		if (s->fds[i] >= 0)
			shutdown(s->fds[i], SHUT_RDWR);
	while (s->nconns[0] + s->nconns[1] > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	free(s->fds);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	*sp = NULL;
}
