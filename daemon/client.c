/*
 * client.c: the client side of the daemon's socket and of its network
 * listeners: connect with a timeout (a Unix socket path, or HOST:PORT over
 * TCP), one request line (and an optional raw body), one reply line. The
 * login hook's path (daemon_client_call) allocates nothing. TLS is
 * client_tls.c's: it hooks its I/O into struct daemon_client, so this
 * file, and the lean login hook built on it, loads no TLS library.
 */
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static void set_timeouts(int fd, double timeout_seconds)
{
	struct timeval tv;

	if (timeout_seconds <= 0)
		return;
	tv.tv_sec = (time_t)timeout_seconds;
	tv.tv_usec = (suseconds_t)((timeout_seconds - (double)tv.tv_sec) * 1e6);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The Unix socket at path: the fd, or -1 with err. */
static int open_unix(const char *path, struct mr_error *err)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		mr_error_set(err, ENAMETOOLONG, "%s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		mr_error_set(err, errno, "socket(AF_UNIX)");
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		mr_error_set(err, errno, "connect(%s)", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* One TCP connect to ai within timeout seconds: the fd (blocking), or -1
 * with errno. */
static int connect_one(const struct addrinfo *ai, double timeout)
{
	struct pollfd p;
	socklen_t len = sizeof(int);
	int fd, e = 0, one = 1, flags;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		p.fd = fd;
		p.events = POLLOUT;
		p.revents = 0;
		for (;;) {
			int r = poll(&p, 1, timeout > 0 ? (int)(timeout * 1000) : -1);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				goto fail;
			if (r == 0) {
				errno = ETIMEDOUT;
				goto fail;
			}
			break;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
			goto fail;
		if (e != 0) {
			errno = e;
			goto fail;
		}
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* HOST:PORT over TCP, each address HOST resolves to in turn: the fd, or -1
 * with err. */
static int open_tcp(const char *where, double timeout, struct mr_error *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[MR_HOST_MAX], port[8];
	unsigned p;
	int fd = -1, r, e = ECONNREFUSED;

	/* (errnum set after the message: its strerror would mislead) */
	if (mr_hostport_split(where, host, sizeof(host), &p) < 0) {
		mr_error_set(err, 0, "%s is not HOST:PORT ([ADDR]:PORT for IPv6)", where);
		err->errnum = EINVAL;
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		mr_error_set(err, 0, "%s: %s", host,
			     r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		err->errnum = EHOSTUNREACH;
		return -1;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = connect_one(ai, timeout);
		if (fd < 0)
			e = errno;
	}
	freeaddrinfo(res);
	if (fd < 0)
		mr_error_set(err, e, "connect(%s)", where);
	return fd;
}

/* Connects (see daemon.h). */
int daemon_client_open(struct daemon_client *c, const char *path, const char *connect,
		       double timeout_seconds, struct mr_error *err)
{
	memset(c, 0, sizeof(*c));
	c->fd = connect != NULL ? open_tcp(connect, timeout_seconds, err) : open_unix(path, err);
	if (c->fd < 0)
		return -1;
	set_timeouts(c->fd, timeout_seconds);
	return 0;
}

void daemon_client_close(struct daemon_client *c)
{
	if (c->end != NULL)
		c->end(c);
	c->end = NULL;
	c->send = NULL;
	c->recv = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static ssize_t io_send(struct daemon_client *c, const void *p, size_t len)
{
	return c->send != NULL ? c->send(c, p, len) : send(c->fd, p, len, MSG_NOSIGNAL);
}

static ssize_t io_recv(struct daemon_client *c, void *p, size_t len)
{
	return c->recv != NULL ? c->recv(c, p, len) : recv(c->fd, p, len, 0);
}

static int send_all(struct daemon_client *c, const void *p, size_t len, struct mr_error *err)
{
	const char *b = p;
	ssize_t n;

	while (len > 0) {
		n = io_send(c, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mr_error_set(err, errno, "send to the daemon");
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one reply line into buf. */
static int read_line(struct daemon_client *c, char *buf, size_t len, struct mr_error *err)
{
	size_t have = 0;
	ssize_t n;
	char *nl;

	for (;;) {
		if (have + 1 >= len) {
			mr_error_set(err, EMSGSIZE, "reply from the daemon");
			return -1;
		}
		n = io_recv(c, buf + have, len - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mr_error_set(err, errno == EAGAIN ? ETIMEDOUT : errno,
				     "reading the daemon's reply");
			return -1;
		}
		if (n == 0) {
			mr_error_set(err, ECONNRESET, "the daemon closed the connection without a reply");
			return -1;
		}
		have += (size_t)n;
		buf[have] = '\0';
		nl = memchr(buf + have - (size_t)n, '\n', (size_t)n);
		if (nl != NULL) {
			*nl = '\0';
			return 0;
		}
	}
}

/* One request, one reply line (see daemon.h). */
int daemon_client_call(struct daemon_client *c, const char *req, size_t req_len,
		       const void *body, size_t body_len, char *buf, size_t len,
		       struct mr_error *err)
{
	if (send_all(c, req, req_len, err) < 0)
		return -1;
	if (body != NULL && body_len > 0 && send_all(c, body, body_len, err) < 0)
		return -1;
	return read_line(c, buf, len, err);
}

/* One request, a reply line of any size (malloc'd into *reply_r). */
int daemon_client_call_alloc(struct daemon_client *c, const char *req, size_t req_len,
			     char **reply_r, struct mr_error *err)
{
	size_t cap = 65536, have = 0;
	char *buf = NULL, *p, *nl;
	ssize_t n;

	*reply_r = NULL;
	if (send_all(c, req, req_len, err) < 0)
		return -1;
	buf = malloc(cap);
	if (buf == NULL) {
		mr_error_set(err, ENOMEM, "reply buffer");
		return -1;
	}
	for (;;) {
		if (have + 1 >= cap) {
			p = realloc(buf, cap * 2);
			if (p == NULL) {
				free(buf);
				mr_error_set(err, ENOMEM, "reply buffer");
				return -1;
			}
			buf = p;
			cap *= 2;
		}
		n = io_recv(c, buf + have, cap - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			mr_error_set(err, n == 0 ? ECONNRESET : errno == EAGAIN ? ETIMEDOUT : errno,
				     n == 0 ? "the daemon closed the connection without a reply"
					    : "reading the daemon's reply");
			free(buf);
			return -1;
		}
		nl = memchr(buf + have, '\n', (size_t)n);
		have += (size_t)n;
		buf[have] = '\0';
		if (nl != NULL) {
			*nl = '\0';
			*reply_r = buf;
			return 0;
		}
	}
}
