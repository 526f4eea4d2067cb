/*
 * server.c: the one event loop (epoll) that serves every client, between
 * the transport below (transport.c: listeners, accept, the TLS handshake,
 * bytes in and out) and the protocol above (proto.c: what a request line
 * means): non-blocking connections, one request line at a time per
 * connection, limits on line size, connections per peer and idle time,
 * DELIVER bodies, replies made a piece at a time, and replies that other
 * threads finish (async.c) delivered back through an eventfd. Signals
 * arrive through a signalfd.
 */
#include "daemon/daemon_private.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* epoll tags: a connection's slot (below 65536), or one of these. */
#define TAG_WAKE 0xfffffffeu
#define TAG_SIGNAL 0xfffffffdu
#define TAG_LISTEN 0xffffff00u /* + the listener's index */

static int add_fd(struct daemon *d, int fd, uint32_t tag, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u32 = tag;
	if (epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		mr_log("epoll_ctl(ADD) failed: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Makes the epoll set (with every listener of transport.c), the wake
 * eventfd, the signalfd for SIGTERM/SIGINT (which the caller has blocked)
 * and the connection table. Returns 0, 69 or 70. */
int daemon_server_open(struct daemon *d)
{
	struct rlimit rl;
	sigset_t mask;
	int i;

	d->max_conns = d->set->max_clients > 0 ? (uint32_t)d->set->max_clients : DAEMON_MAX_CONNS;
	d->max_conns_uid = d->set->max_clients_per_uid > 0 ? (uint32_t)d->set->max_clients_per_uid
							   : (d->max_conns + 3) / 4;
	d->reserved_conns = d->max_conns / 4 < DAEMON_RESERVED_CONNS ? d->max_conns / 4
								     : DAEMON_RESERVED_CONNS;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)d->max_conns + 256) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)d->max_conns + 256 ? rl.rlim_max
								       : (rlim_t)d->max_conns + 256;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	d->conns = calloc((size_t)d->max_conns, sizeof(*d->conns));
	if (d->conns == NULL) {
		mr_log("out of memory");
		return MR_EX_SOFTWARE;
	}
	d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->epoll_fd < 0 || d->wake_fd < 0 || d->signal_fd < 0) {
		mr_log("epoll/eventfd/signalfd failed: %s", strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	for (i = 0; i < d->nlisteners; i++)
		if (add_fd(d, d->listeners[i].fd, TAG_LISTEN + (uint32_t)i, EPOLLIN) < 0)
			return MR_EX_UNAVAILABLE;
	if (add_fd(d, d->wake_fd, TAG_WAKE, EPOLLIN) < 0 ||
	    add_fd(d, d->signal_fd, TAG_SIGNAL, EPOLLIN) < 0)
		return MR_EX_UNAVAILABLE;
	return 0;
}

/* Answers one client during start-up: what it sent is read first (a close
 * with unread data would reset the connection before it read the answer).
 * A TLS peer gets its handshake first, a second at most: this one thread
 * answers every client meanwhile. Returns 1 when told, 0 when the
 * handshake failed. */
static int answer_starting(struct daemon_link *k)
{
	static const char msg[] = "{\"ok\":false,\"error\":\"the daemon is starting (reading "
				  "its queue and the backups folder); try again shortly\","
				  "\"code\":75}\n";
	struct pollfd p = { k->fd, POLLIN, 0 };
	double until = mr_monotonic() + 1.0;
	char buf[4096];
	int r, told = 0;

	while (k->handshaking) {
		r = daemon_transport_handshake(k);
		if (r < 0)
			goto out;
		if (r == 1)
			break;
		p.events = k->want == EPOLLOUT ? POLLOUT : POLLIN;
		if (mr_monotonic() >= until || (poll(&p, 1, 100) < 0 && errno != EINTR)) {
			mr_log("%s: TLS handshake not done within a second during start-up: closed",
			       k->name);
			goto out;
		}
	}
	p.events = POLLIN;
	if (poll(&p, 1, 200) > 0)
		while (daemon_transport_recv(k, buf, sizeof(buf)) > 0)
			;
	if (daemon_transport_send(k, msg, sizeof(msg) - 1) < 0 && errno != EAGAIN)
		mr_log("answering a client during start-up: %s", strerror(errno));
	(void)daemon_transport_shutdown(k);
	told = 1;
out:
	daemon_transport_drop(k);
	return told;
}

static void *starting_main(void *arg)
{
	struct daemon *d = arg;
	struct pollfd p[1 + DAEMON_LISTEN_MAX + 1];
	struct daemon_link k;
	uint64_t answered = 0;
	int i, n = d->nlisteners;

	for (i = 0; i < n; i++) {
		p[i].fd = d->listeners[i].fd;
		p[i].events = POLLIN;
	}
	p[n].fd = d->starting_stop_fd;
	p[n].events = POLLIN;
	for (;;) {
		if (poll(p, (nfds_t)n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			mr_log("poll during start-up failed: %s", strerror(errno));
			break;
		}
		if (p[n].revents)
			break;
		/* Network peers too: outside --allow closed as ever, the
		 * others told to try again. */
		for (i = 0; i < n; i++) {
			if (!p[i].revents)
				continue;
			while (daemon_transport_accept(d, &d->listeners[i], &k) == 1)
				answered += (uint64_t)answer_starting(&k);
		}
	}
	if (answered > 0)
		mr_log("%" PRIu64 " clients told the daemon is starting", answered);
	return NULL;
}

int daemon_server_starting_begin(struct daemon *d)
{
	d->starting_stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->starting_stop_fd < 0) {
		mr_log("eventfd failed: %s", strerror(errno));
		return -1;
	}
	if (pthread_create(&d->starting_thread, NULL, starting_main, d) != 0) {
		mr_log("pthread_create failed");
		close(d->starting_stop_fd);
		d->starting_stop_fd = -1;
		return -1;
	}
	return 0;
}

void daemon_server_starting_end(struct daemon *d)
{
	uint64_t one = 1;

	if (d->starting_stop_fd < 0)
		return;
	if (write(d->starting_stop_fd, &one, sizeof(one)) < 0)
		mr_log("write(eventfd) failed: %s", strerror(errno));
	pthread_join(d->starting_thread, NULL);
	close(d->starting_stop_fd);
	d->starting_stop_fd = -1;
}

static void conn_close(struct daemon *d, uint32_t slot)
{
	struct conn *c = d->conns[slot];

	if (c == NULL || c->link.fd < 0)
		return;
	epoll_ctl(d->epoll_fd, EPOLL_CTL_DEL, c->link.fd, NULL);
	daemon_transport_drop(&c->link);
	c->gen++;
	/* A body still arriving was counted against the daemon-wide limit
	 * when its DELIVER line came: give that back, or clients that hang up
	 * mid-message would starve delivery for everyone. */
	if (c->body != NULL)
		atomic_fetch_sub_explicit(&d->body_bytes, c->body_len, memory_order_relaxed);
	free(c->body);
	c->body = NULL;
	c->body_charge = 0;
	c->streaming = 0;
	c->out.len = 0;
	c->out_off = 0;
	/* Keep small buffers for the next client; drop big ones. */
	if (c->out.cap > 65536)
		daemon_buf_free(&c->out);
	d->nconns--;
}

/* Sends a short message (a refusal, the idle notice) without waiting: the
 * connection closes after it anyway. Not during a TLS handshake: no byte
 * of the protocol before it. */
static void send_notice(struct conn *c, const char *msg)
{
	if (!c->link.handshaking && daemon_transport_send(&c->link, msg, strlen(msg)) < 0)
		(void)0; /* the client learns from the close */
}

/* Sets the epoll interest: read while no reply is pending, write while one
 * is being sent, and what a TLS session waits for. */
static void conn_update(struct daemon *d, uint32_t slot)
{
	struct conn *c = d->conns[slot];
	struct epoll_event ev;
	uint32_t want = 0;

	/* Nothing is asked while a reply is prepared elsewhere: a client that
	 * half-closed after its request still gets the answer, and a level
	 * triggered EPOLLRDHUP must not spin the loop meanwhile. */
	if (c->link.handshaking)
		want = c->link.want;
	else if (c->draining)
		want = EPOLLIN | EPOLLRDHUP;
	else if (c->out_off < c->out.len && !c->reply_waits_commit)
		want = EPOLLOUT | c->link.want;
	else if (!c->waiting && !c->reply_waits_commit && !c->close_after)
		want = EPOLLIN | EPOLLRDHUP | c->link.want;
	/* Bytes the TLS session read ahead wake no epoll: look again. */
	if ((want & EPOLLIN) && daemon_transport_pending(&c->link)) {
		c->revisit = 1;
		d->revisit = 1;
	}
	if (want == c->events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.u32 = slot;
	if (epoll_ctl(d->epoll_fd, EPOLL_CTL_MOD, c->link.fd, &ev) == 0)
		c->events = want;
}

static double idle_seconds(const struct daemon *d)
{
	return d->set->idle_seconds > 0 ? d->set->idle_seconds : DAEMON_IDLE_SECONDS;
}

/* Works through the buffered input while no reply is pending: DELIVER body
 * bytes first, then complete lines. */
static void conn_process(struct daemon *d, uint32_t slot)
{
	struct conn *c = d->conns[slot];
	char *nl;
	size_t take, line_len, len;

	while (c->link.fd >= 0 && !c->waiting && !c->reply_waits_commit && c->out.len == 0 &&
	       !c->close_after && !c->streaming) {
		if (c->body != NULL) {
			take = c->body_len - c->body_have;
			if (take > c->in_len)
				take = c->in_len;
			memcpy(c->body + c->body_have, c->in, take);
			c->body_have += take;
			memmove(c->in, c->in + take, c->in_len - take);
			c->in_len -= take;
			if (c->body_have < c->body_len)
				break;
			daemon_proto_deliver_body(d, c, slot);
			continue;
		}
		nl = memchr(c->in, '\n', c->in_len);
		if (nl == NULL) {
			if (c->in_len == sizeof(c->in))
				daemon_proto_request(d, c, slot, c->in, c->in_len);
			break;
		}
		*nl = '\0';
		line_len = (size_t)(nl - c->in) + 1;
		len = (size_t)(nl - c->in);
		if (len > 0 && c->in[len - 1] == '\r')
			c->in[--len] = '\0';
		daemon_proto_request(d, c, slot, c->in, len);
		memmove(c->in, c->in + line_len, c->in_len - line_len);
		c->in_len -= line_len;
		c->deadline = mr_monotonic() + idle_seconds(d);
	}
}

/* Sends what is in out; at the end closes (close_after) or goes on with
 * the buffered input. */
static void conn_flush(struct daemon *d, uint32_t slot)
{
	struct conn *c = d->conns[slot];
	ssize_t n;

	while (c->link.fd >= 0 && !c->reply_waits_commit && c->out_off < c->out.len) {
		n = daemon_transport_send(&c->link, c->out.p + c->out_off, c->out.len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_close(d, slot);
			return;
		}
		c->out_off += (size_t)n;
		/* A client that reads its reply is not idle. */
		c->deadline = mr_monotonic() + idle_seconds(d);
		/* The next piece of a long reply once this one is out. */
		if (c->out_off == c->out.len && c->streaming) {
			c->out.len = 0;
			c->out_off = 0;
			daemon_proto_queue_more(d, c);
		}
	}
	if (c->link.fd < 0)
		return;
	if (!c->reply_waits_commit && !c->waiting && c->out.len > 0 && c->out_off == c->out.len) {
		c->out.len = 0;
		c->out_off = 0;
		if (c->close_after) {
			/* Closing with unread input would reset the connection and
			 * the client could lose the reply: shut the write side and
			 * read to EOF (bounded by the idle sweep). */
			if (daemon_transport_shutdown(&c->link) < 0) {
				conn_close(d, slot);
				return;
			}
			c->draining = 1;
			c->in_len = 0;
			c->deadline = mr_monotonic() + 2;
			conn_update(d, slot);
			return;
		}
		conn_process(d, slot);
		if (c->link.fd >= 0 && c->out.len > 0 && !c->reply_waits_commit && !c->waiting) {
			conn_flush(d, slot);
			return;
		}
	}
	if (c->link.fd >= 0)
		conn_update(d, slot);
}

static void conn_read(struct daemon *d, uint32_t slot)
{
	struct conn *c = d->conns[slot];
	ssize_t n;
	int r;

	c->revisit = 0;
	if (c->link.handshaking) {
		r = daemon_transport_handshake(&c->link);
		if (r < 0) {
			conn_close(d, slot);
			return;
		}
		conn_update(d, slot);
		if (r == 0)
			return;
	}
	while (c->draining) {
		n = daemon_transport_recv(&c->link, c->in, sizeof(c->in));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			conn_close(d, slot);
		if (n <= 0)
			return;
	}
	for (;;) {
		if (c->in_len == sizeof(c->in)) {
			conn_process(d, slot);
			if (c->in_len == sizeof(c->in) || c->waiting || c->reply_waits_commit ||
			    c->out.len > 0)
				break;
		}
		n = daemon_transport_recv(&c->link, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			/* The client went away (or half-closed): a request it
			 * completed before is still answered if pending. */
			if (c->waiting || c->reply_waits_commit) {
				c->close_after = 1;
				conn_update(d, slot);
			} else {
				conn_close(d, slot);
			}
			return;
		}
		c->in_len += (size_t)n;
		if (c->body != NULL)
			c->deadline = mr_monotonic() + idle_seconds(d);
		conn_process(d, slot);
		if (c->link.fd < 0 || c->waiting || c->reply_waits_commit || c->out.len > 0)
			break;
	}
	if (c->link.fd >= 0)
		conn_flush(d, slot);
}

/* Refuses a connection beyond the limits: NULL when c may stay, else the
 * reply to send before closing. Root, the daemon's user and operators
 * are not limited per uid and may use the reserved slots; everyone else
 * (every network peer among them) is held to max_conns_uid per uid or per
 * address and to the unreserved slots, so one local user or one host
 * cannot take every slot (c, already filled in, counts itself). */
static const char *over_limit(struct daemon *d, struct conn *c)
{
	static const char total[] =
		"{\"ok\":false,\"error\":\"too many connections\",\"code\":75}\n";
	static const char per_uid[] =
		"{\"ok\":false,\"error\":\"too many connections from this user\",\"code\":75}\n";
	static const char per_addr[] =
		"{\"ok\":false,\"error\":\"too many connections from this address\",\"code\":75}\n";
	uint32_t open = (uint32_t)d->nconns; /* c not counted yet */

	if (open >= d->max_conns)
		return total;
	if (open < d->max_conns - d->reserved_conns &&
	    (open < d->max_conns_uid || daemon_limits_peer_conns(d, c) <= d->max_conns_uid))
		return NULL;
	/* The costly part (the group database) only near a limit. */
	if (!c->link.net && (c->link.uid == 0 || c->link.uid == geteuid() ||
			     (daemon_peer_rights(d, c) & PEER_OPERATOR)))
		return NULL;
	return open >= d->max_conns - d->reserved_conns ? total : c->link.net ? per_addr : per_uid;
}

static void accept_all(struct daemon *d, const struct daemon_listener *l)
{
	struct daemon_link k;
	struct epoll_event ev;
	struct conn *c;
	const char *refuse;
	uint32_t slot;
	int r;

	for (;;) {
		r = daemon_transport_accept(d, l, &k);
		if (r <= 0)
			return;
		slot = d->max_conns;
		if ((uint32_t)d->nconns < d->max_conns)
			for (slot = 0; slot < d->max_conns; slot++)
				if (d->conns[slot] == NULL || d->conns[slot]->link.fd < 0)
					break;
		if (slot < d->max_conns && d->conns[slot] == NULL) {
			d->conns[slot] = calloc(1, sizeof(*c));
			if (d->conns[slot] != NULL)
				d->conns[slot]->link.fd = -1;
		}
		if (slot == d->max_conns || d->conns[slot] == NULL) {
			c = NULL;
			refuse = "{\"ok\":false,\"error\":\"too many connections\",\"code\":75}\n";
			if (!k.handshaking &&
			    daemon_transport_send(&k, refuse, strlen(refuse)) < 0)
				(void)0; /* the client learns from the close */
			daemon_transport_drop(&k);
			continue;
		}
		c = d->conns[slot];
		c->link = k;
		c->rights_checked = 0;
		c->rights = 0;
		refuse = over_limit(d, c);
		if (refuse != NULL) {
			send_notice(c, refuse);
			daemon_transport_drop(&c->link);
			continue;
		}
		c->in_len = 0;
		c->body = NULL;
		c->body_len = c->body_have = 0;
		c->body_id[0] = '\0';
		c->body_charge = 0;
		c->body_deadline = 0;
		c->streaming = 0;
		c->out.len = 0;
		c->out_off = 0;
		c->reply_waits_commit = c->waiting = c->close_after = c->draining = 0;
		c->revisit = 0;
		/* A TLS handshake gets the idle time too: a peer that stalls it
		 * is swept like any idle client. */
		c->deadline = mr_monotonic() + idle_seconds(d);
		c->events = c->link.handshaking ? c->link.want : EPOLLIN | EPOLLRDHUP;
		memset(&ev, 0, sizeof(ev));
		ev.events = c->events;
		ev.data.u32 = slot;
		if (epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, c->link.fd, &ev) < 0) {
			mr_log("epoll_ctl(ADD) failed: %s", strerror(errno));
			daemon_transport_drop(&c->link);
			continue;
		}
		d->nconns++;
	}
}

static void take_completions(struct daemon *d)
{
	struct completion *list, *next;
	struct conn *c;
	uint64_t v;

	if (read(d->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		mr_log("read(eventfd) failed: %s", strerror(errno));
	for (list = daemon_async_take(d); list != NULL; list = next) {
		next = list->next;
		c = list->slot < d->max_conns ? d->conns[list->slot] : NULL;
		if (c != NULL && c->link.fd >= 0 && c->gen == list->gen) {
			if (list->reply != NULL) {
				c->out.len = 0;
				daemon_buf_printf(&c->out, "%s", list->reply);
			}
			c->reply_waits_commit = 0;
			c->waiting = 0;
			c->body_charge = 0;
			if (list->close_after)
				c->close_after = 1;
			c->deadline = mr_monotonic() + idle_seconds(d);
			conn_flush(d, list->slot);
		}
		free(list->reply);
		free(list);
	}
}

/* Closes connections idle past their deadline (not those whose reply
 * another thread is preparing). */
static void sweep(struct daemon *d, double now)
{
	static const char idle[] = "{\"ok\":false,\"error\":\"idle timeout\",\"code\":64}\n";
	static const char slow[] =
		"{\"ok\":false,\"error\":\"message body too slow\",\"code\":75}\n";
	uint32_t slot;
	struct conn *c;

	for (slot = 0; slot < d->max_conns; slot++) {
		c = d->conns[slot];
		if (c == NULL || c->link.fd < 0 || c->waiting || c->reply_waits_commit)
			continue;
		if (c->body != NULL && c->body_deadline > 0 && now >= c->body_deadline) {
			/* A body trickled in slower than DAEMON_BODY_RATE would hold
			 * its share of the delivery memory for as long as it likes. */
			send_notice(c, slow);
			conn_close(d, slot);
			continue;
		}
		if (now < c->deadline)
			continue;
		if (c->link.handshaking)
			mr_log("%s: TLS handshake not done within the idle time: closed",
			       c->link.name);
		else if (c->out.len == 0 && !c->draining)
			send_notice(c, idle);
		conn_close(d, slot);
	}
}

/* Reads again from connections whose TLS session holds bytes it read
 * ahead (conn_update marked them): epoll does not see those. */
static void revisit(struct daemon *d)
{
	uint32_t slot;
	struct conn *c;

	d->revisit = 0;
	for (slot = 0; slot < d->max_conns; slot++) {
		c = d->conns[slot];
		if (c != NULL && c->link.fd >= 0 && c->revisit)
			conn_read(d, slot);
	}
}

static int all_done(struct daemon *d)
{
	uint64_t counts[QUEUE_STATE_COUNT];

	queue_counts(d->q, counts);
	if (counts[QUEUE_WAITING] + counts[QUEUE_QUEUED] + counts[QUEUE_RESTORING] +
	    counts[QUEUE_SYNCING] != 0)
		return 0;
	return daemon_workers_busy(d) == 0;
}

/* Serves clients until a signal, SHUTDOWN, or (exit_when_done) the end of
 * the work: each sets d->loop_stop, read once per round of events.
 * Returns 0. */
int daemon_server_loop(struct daemon *d)
{
	struct epoll_event evs[64];
	struct signalfd_siginfo si;
	double now;
	int n, i;
	uint32_t tag, want;

	while (!d->loop_stop) {
		n = epoll_wait(d->epoll_fd, evs, 64, d->revisit ? 0 : 100);
		if (n < 0 && errno != EINTR) {
			mr_log("epoll_wait failed: %s", strerror(errno));
			return -1;
		}
		for (i = 0; i < n; i++) {
			tag = evs[i].data.u32;
			if (tag >= TAG_LISTEN && tag - TAG_LISTEN < (uint32_t)d->nlisteners) {
				accept_all(d, &d->listeners[tag - TAG_LISTEN]);
			} else if (tag == TAG_WAKE) {
				take_completions(d);
			} else if (tag == TAG_SIGNAL) {
				while (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
					mr_log("signal %u: stopping", si.ssi_signo);
					d->loop_stop = 1;
				}
			} else if (tag < d->max_conns && d->conns[tag] != NULL &&
				   d->conns[tag]->link.fd >= 0) {
				/* Gone both ways: nobody to answer. */
				if ((evs[i].events & (EPOLLHUP | EPOLLERR)) &&
				    !(evs[i].events & EPOLLIN)) {
					conn_close(d, tag);
					continue;
				}
				/* A TLS session that waits for the other direction
				 * (a read that must write, a write that must read)
				 * goes on whichever way the socket is ready. */
				want = d->conns[tag]->link.want;
				if (d->conns[tag]->link.handshaking) {
					conn_read(d, tag);
					continue;
				}
				if ((evs[i].events & EPOLLOUT) || want)
					conn_flush(d, tag);
				if (d->conns[tag]->link.fd >= 0 &&
				    ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) ||
				     want))
					conn_read(d, tag);
			}
		}
		if (d->revisit)
			revisit(d);
		now = mr_monotonic();
		if (now >= d->next_sweep) {
			d->next_sweep = now + 0.1;
			sweep(d, now);
			daemon_workers_tick(d);
			if (d->set->exit_when_done && all_done(d)) {
				mr_log("every affected user is active or in attention: exiting");
				d->loop_stop = 1;
			}
		}
	}
	/* Send replies already made (SHUTDOWN's own) before the teardown. */
	for (tag = 0; tag < d->max_conns; tag++)
		if (d->conns[tag] != NULL && d->conns[tag]->link.fd >= 0)
			conn_flush(d, tag);
	return 0;
}

/* Closes every connection and the loop's descriptors (the listeners are
 * transport.c's). */
void daemon_server_close(struct daemon *d)
{
	uint32_t slot;

	if (d->conns != NULL) {
		for (slot = 0; slot < d->max_conns; slot++) {
			if (d->conns[slot] == NULL)
				continue;
			conn_close(d, slot);
			daemon_buf_free(&d->conns[slot]->out);
			free(d->conns[slot]);
		}
		free(d->conns);
		d->conns = NULL;
	}
	if (d->epoll_fd >= 0)
		close(d->epoll_fd);
	if (d->wake_fd >= 0)
		close(d->wake_fd);
	if (d->signal_fd >= 0)
		close(d->signal_fd);
	d->epoll_fd = d->wake_fd = d->signal_fd = -1;
}
