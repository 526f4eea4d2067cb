/*
 * transport.c: the bottom of the daemon's stack: its listeners, who is on
 * the other end of a connection, and the bytes in and out of it. The loop
 * (server.c) above reads and writes only through here and knows no
 * socket family and no TLS; the protocol (proto.c) above the loop knows
 * neither.
 *
 * Listeners: the Unix socket (listeners[0]: mode and group decide who may
 * connect; the kernel vouches for the peer's uid, SO_PEERCRED) and every
 * --listen ADDR:PORT (TCP, IPv4 or IPv6). A network peer is let in only
 * when its address lies in one of the --allow networks; any other is
 * closed right after accept, before a byte of the protocol, and logged.
 * With --tls-cert and --tls-key every --listen speaks TLS (1.2 at least;
 * --tls-client-ca: peers must show a certificate that CA signed): the
 * handshake runs inside the loop, non-blocking, and a peer that stalls it
 * is closed by the loop's idle sweep like any idle client.
 */
#include "daemon/daemon_private.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the Unix socket ----------------------------------------------------- */

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* Creates the socket's parent folder (and its parents) 0755 when missing. */
static int make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;
	size_t i;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (i = 1; dir[i]; i++) {
		if (dir[i] != '/')
			continue;
		dir[i] = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			mr_log("mkdir(%s) failed: %s", dir, strerror(errno));
			return -1;
		}
		dir[i] = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		mr_log("mkdir(%s) failed: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Returns 1 when a daemon answers on path, 0 when nothing does (a stale
 * socket is removed), -1 when path is something else. */
static int probe_socket(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		mr_log("%s exists and is not a socket; not touching it", path);
		return -1;
	}
	if (fill_addr(path, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0)
		return 1;
	if (errno != ECONNREFUSED && errno != ENOENT) {
		mr_log("connect(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		mr_log("unlink(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	mr_log("removed a stale socket at %s", path);
	return 0;
}

/* Opens listeners[0], the Unix socket. 0, 64, 69 or 75 (logged). */
static int open_unix(struct daemon *d)
{
	struct daemon_listener *l = &d->listeners[0];
	struct sockaddr_un sa;
	struct stat st;
	mode_t old_mask;
	int r, e;

	if (fill_addr(d->socket_path, &sa) < 0) {
		mr_log("socket path %s is too long", d->socket_path);
		return MR_EX_USAGE;
	}
	if (make_parent(d->socket_path) < 0)
		return MR_EX_UNAVAILABLE;
	r = probe_socket(d->socket_path);
	if (r == 1) {
		mr_log("a daemon already answers on %s", d->socket_path);
		return MR_EX_TEMPFAIL;
	}
	if (r < 0)
		return MR_EX_UNAVAILABLE;
	l->net = 0;
	l->name[0] = '\0';
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		mr_log("socket(AF_UNIX) failed: %s", strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	d->nlisteners = 1;
	/* Who may connect is the socket's group (the login hook's and the
	 * delivery agent's users in it); without one every local user may,
	 * and what each may do is checked per peer (peer.c). The mode comes
	 * from the umask at bind (no other thread runs yet: the umask is the
	 * process's) and the group from lchown: nothing set by path may
	 * follow a symlink someone swapped in, and nobody can connect before
	 * listen() below. */
	old_mask = umask(d->have_socket_gid ? 0117 : 0111);
	r = bind(l->fd, (struct sockaddr *)&sa, sizeof(sa));
	e = errno;
	umask(old_mask);
	if (r < 0) {
		mr_log("bind(%s) failed: %s", d->socket_path, strerror(e));
		return e == EADDRINUSE ? MR_EX_TEMPFAIL : MR_EX_UNAVAILABLE;
	}
	if (d->have_socket_gid && lchown(d->socket_path, (uid_t)-1, d->socket_gid) < 0) {
		mr_log("lchown(%s, group %ld) failed: %s", d->socket_path, (long)d->socket_gid,
		       strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	if (lstat(d->socket_path, &st) < 0) {
		mr_log("lstat(%s) failed: %s", d->socket_path, strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	if (!S_ISSOCK(st.st_mode)) {
		mr_log("%s was replaced by something else than the socket just made; "
		       "is its folder writable by others?", d->socket_path);
		return MR_EX_UNAVAILABLE;
	}
	d->sock_dev = st.st_dev;
	d->sock_ino = st.st_ino;
	if (listen(l->fd, SOMAXCONN) < 0) {
		mr_log("listen(%s) failed: %s", d->socket_path, strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	mr_log("listening on %s", d->socket_path);
	return 0;
}

/* ---- TLS --------------------------------------------------------------- */

/* The newest OpenSSL error of this thread as text (the queue emptied). */
static const char *tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error(), next;

	while ((next = ERR_get_error()) != 0)
		e = next;
	if (e == 0)
		snprintf(buf, len, "no detail from OpenSSL");
	else
		ERR_error_string_n(e, buf, len);
	return buf;
}

/* Makes the server's TLS context from --tls-cert, --tls-key and
 * --tls-client-ca. 0, or 64 (logged, naming the file). */
static int open_tls(struct daemon *d)
{
	const struct daemon_settings *s = d->set;
	STACK_OF(X509_NAME) *names;
	SSL_CTX *ctx;
	char e[256];

	if (s->tls_cert == NULL && s->tls_key == NULL && s->tls_client_ca == NULL)
		return 0;
	if (s->tls_cert == NULL || s->tls_key == NULL) {
		mr_log("daemon: --tls-cert and --tls-key go together (and --tls-client-ca "
		       "needs both)");
		return MR_EX_USAGE;
	}
	if (d->set->nlisten == 0)
		mr_log("daemon: --tls-cert given without --listen: nothing speaks TLS");
	/* OpenSSL's word for a missing file is "system lib": say it plainly. */
	if (access(s->tls_cert, R_OK) < 0 || access(s->tls_key, R_OK) < 0 ||
	    (s->tls_client_ca != NULL && access(s->tls_client_ca, R_OK) < 0)) {
		mr_log("daemon: --tls-cert %s, --tls-key %s%s%s: %s", s->tls_cert, s->tls_key,
		       s->tls_client_ca ? ", --tls-client-ca " : "",
		       s->tls_client_ca ? s->tls_client_ca : "", strerror(errno));
		return MR_EX_USAGE;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		mr_log("daemon: SSL_CTX_new failed: %s", tls_error(e, sizeof(e)));
		return MR_EX_SOFTWARE;
	}
	d->tls_ctx = ctx;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* No renegotiation (a peer could make the loop do handshakes at will);
	 * writes may stop half way and go on from a buffer that moved. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, s->tls_cert) != 1) {
		mr_log("daemon: --tls-cert %s: %s", s->tls_cert, tls_error(e, sizeof(e)));
		return MR_EX_USAGE;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, s->tls_key, SSL_FILETYPE_PEM) != 1) {
		mr_log("daemon: --tls-key %s: %s", s->tls_key, tls_error(e, sizeof(e)));
		return MR_EX_USAGE;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		mr_log("daemon: --tls-key %s does not belong to --tls-cert %s", s->tls_key,
		       s->tls_cert);
		return MR_EX_USAGE;
	}
	if (s->tls_client_ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, s->tls_client_ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(s->tls_client_ca)) == NULL) {
			mr_log("daemon: --tls-client-ca %s: %s", s->tls_client_ca,
			       tls_error(e, sizeof(e)));
			return MR_EX_USAGE;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return 0;
}

/* ---- network listeners --------------------------------------------------- */

/* Opens one --listen. 0, 64 or 69 (logged). */
static int open_tcp(struct daemon *d, const char *spec)
{
	struct daemon_listener *l = &d->listeners[d->nlisteners];
	struct sockaddr_storage ss;
	unsigned len;
	int one = 1;

	if (mr_sockaddr_parse(spec, &ss, &len) < 0) {
		mr_log("daemon: --listen %s: not ADDR:PORT (an IPv4 address, or an IPv6 address "
		       "in brackets, and a port)", spec);
		return MR_EX_USAGE;
	}
	l->net = 1;
	mr_sockaddr_text((struct sockaddr *)&ss, l->name, sizeof(l->name));
	l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		mr_log("daemon: --listen %s: socket failed: %s", spec, strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	d->nlisteners++;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] serves IPv6 alone: IPv4 is its own --listen. */
	if (ss.ss_family == AF_INET6)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, len) < 0 || listen(l->fd, SOMAXCONN) < 0) {
		mr_log("daemon: --listen %s: %s", spec, strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	mr_log("listening on %s (%s)", l->name, d->tls_ctx == NULL ? "plain TCP"
				      : d->set->tls_client_ca != NULL ? "TLS, client certificates required"
								      : "TLS");
	return 0;
}

/* Opens every listener (see daemon_private.h). */
int daemon_transport_open(struct daemon *d)
{
	const struct daemon_settings *s = d->set;
	int i, rc;

	if (s->nlisten > DAEMON_LISTEN_MAX || s->nallow > DAEMON_ALLOW_MAX) {
		mr_log("daemon: at most %d --listen and %d --allow", DAEMON_LISTEN_MAX,
		       DAEMON_ALLOW_MAX);
		return MR_EX_USAGE;
	}
	if (s->nallow > 0) {
		d->allow = calloc((size_t)s->nallow, sizeof(*d->allow));
		if (d->allow == NULL) {
			mr_log("out of memory");
			return MR_EX_SOFTWARE;
		}
	}
	for (i = 0; i < s->nallow; i++) {
		if (mr_cidr_parse(s->allow[i], &d->allow[i]) < 0) {
			mr_log("daemon: --allow %s: not an address or a network (10.0.0.0/8, "
			       "2001:db8::/32; no bits set below the prefix)", s->allow[i]);
			return MR_EX_USAGE;
		}
		d->nallow++;
	}
	/* Every --listen's shape before anything is opened. */
	for (i = 0; i < s->nlisten; i++) {
		struct sockaddr_storage ss;
		unsigned len;

		if (mr_sockaddr_parse(s->listen[i], &ss, &len) < 0) {
			mr_log("daemon: --listen %s: not ADDR:PORT (an IPv4 address, or an IPv6 "
			       "address in brackets, and a port)", s->listen[i]);
			return MR_EX_USAGE;
		}
	}
	if (s->nlisten > 0 && s->nallow == 0)
		mr_log("daemon: warning: --listen without --allow: every network peer will be "
		       "refused (name the proxies' and MX hosts' networks with --allow CIDR)");
	rc = open_tls(d);
	if (rc != 0)
		return rc;
	rc = open_unix(d);
	if (rc != 0)
		return rc;
	for (i = 0; i < s->nlisten; i++) {
		rc = open_tcp(d, s->listen[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Closes the listeners (see daemon_private.h). */
void daemon_transport_stop_listening(struct daemon *d)
{
	struct stat st;
	int i;

	for (i = 0; i < d->nlisteners; i++) {
		if (d->listeners[i].fd < 0)
			continue;
		if (d->epoll_fd >= 0)
			epoll_ctl(d->epoll_fd, EPOLL_CTL_DEL, d->listeners[i].fd, NULL);
		close(d->listeners[i].fd);
		d->listeners[i].fd = -1;
		/* The socket file only when it is still the one bound here
		 * (another daemon may have replaced it). */
		if (i == 0 && stat(d->socket_path, &st) == 0 && st.st_dev == d->sock_dev &&
		    st.st_ino == d->sock_ino && unlink(d->socket_path) < 0)
			mr_log("unlink(%s) failed: %s", d->socket_path, strerror(errno));
	}
	d->nlisteners = 0;
}

void daemon_transport_close(struct daemon *d)
{
	daemon_transport_stop_listening(d);
	SSL_CTX_free(d->tls_ctx);
	d->tls_ctx = NULL;
	free(d->allow);
	d->allow = NULL;
	d->nallow = 0;
}

/* ---- a connection -------------------------------------------------------- */

/* 1 when sa lies in one of the --allow networks. */
static int allowed(const struct daemon *d, const struct sockaddr *sa)
{
	int i;

	for (i = 0; i < d->nallow; i++)
		if (mr_cidr_match(&d->allow[i], sa))
			return 1;
	return 0;
}

/* Logs a peer refused by --allow: one line each, at most REFUSED_LINES a
 * second (a scan of the port must not drown the log); how many more there
 * were is logged with the next refusal after that second. */
#define REFUSED_LINES 20
static void log_refused(struct daemon *d, const char *peer, const char *listener)
{
	double now = mr_monotonic();

	if (now - d->refused_since >= 1.0) {
		if (d->refused_quiet > 0)
			mr_log("... and %u more peers refused (not in any --allow network)",
			       d->refused_quiet);
		d->refused_since = now;
		d->refused_logged = d->refused_quiet = 0;
	}
	if (d->refused_logged++ < REFUSED_LINES)
		mr_log("refused %s on %s: not in any --allow network", peer, listener);
	else
		d->refused_quiet++;
}

/* Accepts the next peer (see daemon_private.h). */
int daemon_transport_accept(struct daemon *d, const struct daemon_listener *l,
			    struct daemon_link *k)
{
	struct sockaddr_storage ss;
	struct ucred cred;
	socklen_t slen, clen;
	char e[256];
	int fd, one = 1;

	for (;;) {
		slen = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			mr_log("accept failed: %s", strerror(errno));
			return -1;
		}
		memset(k, 0, sizeof(*k));
		k->fd = fd;
		k->net = l->net;
		if (!l->net) {
			clen = sizeof(cred);
			if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
				mr_log("getsockopt(SO_PEERCRED) failed: %s", strerror(errno));
				close(fd);
				continue;
			}
			k->uid = cred.uid;
			k->gid = cred.gid;
			k->pid = cred.pid;
			return 1;
		}
		k->uid = (uid_t)-1;
		k->gid = (gid_t)-1;
		memcpy(&k->addr, &ss, sizeof(ss));
		mr_sockaddr_text((struct sockaddr *)&ss, k->name, sizeof(k->name));
		if (!allowed(d, (struct sockaddr *)&ss)) {
			/* Not a byte of the protocol for it. */
			log_refused(d, k->name, l->name);
			close(fd);
			continue;
		}
		/* One request line, one reply: nothing to gain from Nagle. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (d->tls_ctx == NULL)
			return 1;
		k->tls = SSL_new(d->tls_ctx);
		if (k->tls == NULL || SSL_set_fd(k->tls, fd) != 1) {
			mr_log("%s: SSL_new failed: %s", k->name, tls_error(e, sizeof(e)));
			daemon_transport_drop(k);
			continue;
		}
		SSL_set_accept_state(k->tls);
		k->handshaking = 1;
		k->want = EPOLLIN;
		return 1;
	}
}

/* What an SSL call that returned r wants next: sets k->want and errno;
 * returns -1 (EAGAIN: try again when k->want says), or 0 for a clean
 * close by the peer. */
static int tls_wants(struct daemon_link *k, int r)
{
	int e = SSL_get_error(k->tls, r);

	if (e == SSL_ERROR_WANT_READ) {
		k->want = EPOLLIN;
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		k->want = EPOLLOUT;
		errno = EAGAIN;
		return -1;
	}
	k->want = 0;
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	ERR_clear_error();
	errno = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : ECONNRESET;
	return -1;
}

/* Goes on with the handshake (see daemon_private.h). */
int daemon_transport_handshake(struct daemon_link *k)
{
	char e[256];
	int r;

	if (!k->handshaking)
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(k->tls);
	if (r == 1) {
		k->handshaking = 0;
		k->want = 0;
		return 1;
	}
	switch (SSL_get_error(k->tls, r)) {
	case SSL_ERROR_WANT_READ:
		k->want = EPOLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		k->want = EPOLLOUT;
		return 0;
	case SSL_ERROR_SYSCALL:
		mr_log("%s: TLS handshake failed: %s", k->name,
		       ERR_peek_error() ? tls_error(e, sizeof(e))
		       : errno ? strerror(errno) : "the peer closed the connection");
		return -1;
	default:
		mr_log("%s: TLS handshake failed: %s", k->name, tls_error(e, sizeof(e)));
		return -1;
	}
}

ssize_t daemon_transport_recv(struct daemon_link *k, void *buf, size_t len)
{
	int r;

	if (k->tls == NULL)
		return recv(k->fd, buf, len, 0);
	ERR_clear_error();
	r = SSL_read(k->tls, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0) {
		k->want = 0;
		return r;
	}
	return tls_wants(k, r);
}

ssize_t daemon_transport_send(struct daemon_link *k, const void *buf, size_t len)
{
	int r;

	if (k->tls == NULL)
		return send(k->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (k->handshaking) {
		errno = EAGAIN;
		return -1;
	}
	ERR_clear_error();
	r = SSL_write(k->tls, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0) {
		k->want = 0;
		return r;
	}
	if (tls_wants(k, r) == 0)
		errno = EPIPE;
	return -1;
}

int daemon_transport_pending(const struct daemon_link *k)
{
	return k->tls != NULL && !k->handshaking && SSL_pending(k->tls) > 0;
}

int daemon_transport_shutdown(struct daemon_link *k)
{
	/* close_notify: the client tells the end of the reply from a cut. */
	if (k->tls != NULL && !k->handshaking) {
		ERR_clear_error();
		(void)SSL_shutdown(k->tls);
	}
	return shutdown(k->fd, SHUT_WR);
}

void daemon_transport_drop(struct daemon_link *k)
{
	if (k->tls != NULL)
		SSL_free(k->tls);
	k->tls = NULL;
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->handshaking = 0;
	k->want = 0;
}

/* The same peer (see daemon_private.h). */
int daemon_transport_same_peer(const struct daemon_link *a, const struct daemon_link *b)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a->addr;
	const struct sockaddr_in *b4 = (const struct sockaddr_in *)&b->addr;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a->addr;
	const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)&b->addr;

	if (a->net != b->net)
		return 0;
	if (!a->net)
		return a->uid == b->uid;
	if (a->addr.ss_family != b->addr.ss_family)
		return 0;
	if (a->addr.ss_family == AF_INET)
		return a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}
