/*
 * client.c: the client side of the daemon's socket: connect with a timeout,
 * one request line (and an optional raw body), one reply line. The login
 * hook's path (daemon_client_call) allocates nothing.
 */
#include "daemon/daemon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Connects to path; later reads and writes time out after timeout_seconds. */
int daemon_client_connect(const char *path, double timeout_seconds, struct mr_error *err)
{
	struct sockaddr_un sa;
	struct timeval tv;
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
	if (timeout_seconds > 0) {
		tv.tv_sec = (time_t)timeout_seconds;
		tv.tv_usec = (suseconds_t)((timeout_seconds - (double)tv.tv_sec) * 1e6);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

static int send_all(int fd, const void *p, size_t len, struct mr_error *err)
{
	const char *c = p;
	ssize_t n;

	while (len > 0) {
		n = send(fd, c, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mr_error_set(err, errno, "send to the daemon");
			return -1;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one reply line into buf. */
static int read_line(int fd, char *buf, size_t len, struct mr_error *err)
{
	size_t have = 0;
	ssize_t n;
	char *nl;

	for (;;) {
		if (have + 1 >= len) {
			mr_error_set(err, EMSGSIZE, "reply from the daemon");
			return -1;
		}
		n = recv(fd, buf + have, len - 1 - have, 0);
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
int daemon_client_call(int fd, const char *req, size_t req_len, const void *body,
		       size_t body_len, char *buf, size_t len, struct mr_error *err)
{
	if (send_all(fd, req, req_len, err) < 0)
		return -1;
	if (body != NULL && body_len > 0 && send_all(fd, body, body_len, err) < 0)
		return -1;
	return read_line(fd, buf, len, err);
}

/* One request, a reply line of any size (malloc'd into *reply_r). */
int daemon_client_call_alloc(int fd, const char *req, size_t req_len, char **reply_r,
			     struct mr_error *err)
{
	size_t cap = 65536, have = 0;
	char *buf = NULL, *p, *nl;
	ssize_t n;

	*reply_r = NULL;
	if (send_all(fd, req, req_len, err) < 0)
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
		n = recv(fd, buf + have, cap - 1 - have, 0);
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
