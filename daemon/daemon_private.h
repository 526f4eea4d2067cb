/*
 * daemon_private.h: what the files of daemon/ share: the daemon's state,
 * the connections of the event loop, and the entry points of each concern:
 *   daemon.c     daemon_run(): start-up and shut-down
 *   transport.c  the listeners (the Unix socket, TCP, TLS), accept, who
 *                the peer is (its credentials or its address and --allow),
 *                the TLS handshake, reading and writing a connection
 *   server.c     the event loop: connections, their limits and timeouts,
 *                requests in, replies out
 *   proto.c      the table of verbs (proto.h): who may call each (and
 *                whether over the network), its checks, its handler and the
 *                part a task thread runs; the JSON replies. Every verb
 *                lives there and nowhere else.
 *   limits.c     what the connections hold at once, counted over all of
 *                them: connections and DELIVER bytes of one peer, unsent
 *                reply bytes
 *   async.c      the committer (group commit before durable replies) and a
 *                generic executor (task threads run a function, the reply
 *                goes back to the loop); it knows no verb
 *   workers.c    worker threads, preemption, pausing, --on-active
 *   metrics.c    throughput and time estimates
 *   peer.c       the rights of a peer
 *   buf.c        the reply buffer (buf.h)
 *   client.c, client_tls.c, json.c  the client side (daemon.h)
 *
 * Who calls whom (an arrow: calls functions of). The layers are a straight
 * line, transport at the bottom, the protocol on top:
 *
 *   daemon.c -> server.c -> proto.c -> async.c, workers.c, metrics.c,
 *                                      peer.c, limits.c
 *                                      workers.c -> metrics.c
 *               server.c -> transport.c, limits.c (connection limits),
 *                           async.c (completions), workers.c (the tick),
 *                           peer.c (rights near a limit)
 *               limits.c -> transport.c (is it the same peer)
 *   daemon.c -> transport.c (open, close), async.c, workers.c, metrics.c
 *               (start, stop), peer.c (groups)
 *   and every one of them -> buf.c
 *
 * Nothing calls upwards: proto.c calls nothing in server.c or transport.c
 * (what it needs about a connection is in struct conn; what it needs about
 * all connections is limits.c's; SHUTDOWN sets loop_stop in struct daemon,
 * which the loop reads); transport.c, buf.c, peer.c, client.c and
 * client_tls.c call nothing in daemon/. async.c calls
 * only buf.c. Workers report finished runs to metrics
 * (daemon_metrics_finished, _observe); metrics never calls the workers: an
 * estimate is made from a look at them the caller takes first
 * (daemon_workers_now). tests/daemon/test_layers.sh checks this graph.
 */
#ifndef MR_DAEMON_PRIVATE_H
#define MR_DAEMON_PRIVATE_H

#include "daemon/buf.h"
#include "daemon/daemon.h"
#include "daemon/proto.h"
#include "engine/engine.h"
#include "queue/eta.h"
#include "queue/queue.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>

/* One listener (transport.c): listeners[0] is the Unix socket, the
 * others the --listen addresses. */
struct daemon_listener {
	int fd;
	int net;              /* 0: the Unix socket; 1: TCP (TLS when tls_ctx) */
	char name[MR_ADDR_TEXT_MAX]; /* "127.0.0.2:7790" (the socket: "") */
};

/* One connection's transport (transport.c): its descriptor, who the peer
 * is, its TLS session. The loop (server.c) reads and writes through it. */
struct daemon_link {
	int fd;               /* -1: closed */
	int net;              /* 0: the Unix socket (uid, gid, pid); 1: TCP (addr) */
	uid_t uid;            /* the kernel's word (SO_PEERCRED); -1 for TCP */
	gid_t gid;
	pid_t pid;
	struct sockaddr_storage addr; /* TCP: the peer's address */
	char name[MR_ADDR_TEXT_MAX];  /* TCP: "ADDR:PORT" of the peer */
	void *tls;            /* SSL *; NULL: plain */
	int handshaking;      /* the TLS handshake goes on: no protocol yet */
	uint32_t want;        /* EPOLLIN/EPOLLOUT the TLS session waits for */
};

/* One client connection (server.c). */
struct conn {
	struct daemon_link link; /* link.fd -1: the slot is free */
	uint32_t gen;         /* bumped at each reuse of the slot */
	int rights_checked;   /* rights is valid (peer.c) */
	unsigned rights;      /* PEER_* */
	char in[DAEMON_LINE_MAX];
	size_t in_len;
	/* DELIVER body being received. */
	char *body;
	size_t body_len, body_have;
	char body_user[MR_USER_NAME_MAX + 1];
	char body_id[DAEMON_ID_MAX + 1];  /* "": no delivery id */
	double body_deadline; /* monotonic: the whole body must be in by then */
	uint64_t body_charge; /* DELIVER bytes this peer has in flight here */
	/* The reply being sent. */
	struct daemon_buf out;
	size_t out_off;
	/* A QUEUE reply made a piece at a time (daemon_proto_queue_more). */
	int streaming;        /* more pieces follow the one in out */
	uint64_t stream_sent, stream_max;
	struct queue_cursor stream_cur; /* after the last user sent */
	int reply_waits_commit; /* out is ready but waits for a commit */
	int waiting;          /* another thread prepares the reply */
	int close_after;      /* close once out is sent */
	int draining;         /* reply sent, write side shut: reading to EOF */
	int revisit;          /* its TLS session read bytes ahead: read again */
	double deadline;      /* monotonic: closed when idle past this */
	uint32_t events;      /* epoll interest in force */
};

/* A worker thread's view (workers.c); fields under daemon.mu. */
struct worker {
	struct daemon *d;
	int id;
	pthread_t thread;
	int started_thread;
	int busy;             /* job is valid */
	int priority;         /* the user came from the priority lane */
	int marked_syncing;   /* queue told QUEUE_SYNCING */
	int preempted;        /* cancelled to make room for a priority user */
	double started_at;    /* wall clock */
	double started_mono;
	double sync_mono;     /* monotonic: when the tick saw the sync begin (0 not yet) */
	uint64_t size;        /* the user's size_hint (the model's cost key) */
	double taken_mono;    /* monotonic: when it went to take the user off the queue
	                       * (the model's run starts there) */
	double predicted;     /* the model's seconds for the run at its start (-1 none) */
	int resumed;          /* an earlier run left a work copy: not a clean sample */
	struct engine_job job;
};

/* Completed asynchronous work handed back to the event loop (async.c). */
struct completion {
	uint32_t slot, gen;
	char *reply;          /* NULL: send the held reply; else replaces it */
	int close_after;
	struct completion *next;
};
struct commit_item {
	uint32_t slot, gen;
	queue_ticket ticket;
	struct commit_item *next;
};
/* Work for a task thread: returns the reply (malloc'd; NULL: the parked
 * reply as it is) and releases arg. cancelled: the task is dropped unrun
 * (daemon_async_drain): release arg only and return NULL. */
typedef char *(*daemon_task_fn)(struct daemon *d, void *arg, int cancelled);
struct daemon_task {
	daemon_task_fn fn;
	void *arg;
	uint32_t slot, gen;   /* whose reply it makes */
	struct daemon_task *next;
};

/* Throughput over the run (metrics.c); under daemon.metrics_mu. */
struct metrics {
	double start_mono;
	uint64_t users_done;      /* runs that ended active or in attention */
	uint64_t users_active;    /* of them, active */
	double run_seconds;       /* sum of their durations */
	uint64_t bytes_total;     /* bytes written by finished runs */
	double held_cache_at;     /* monotonic time of held_cache */
	uint64_t held_cache;
	double rates_saved_at;    /* monotonic time eta.rates was last written */
	int trace;                /* MAILRESTORE_ETA_TRACE set: log each run against
	                           * its estimate (bench/eta.sh) */
	int rates_dirty;          /* runs observed since */
	struct eta_jumps jumps;   /* logins of waiting users (eta.h) */
	double line_at;           /* monotonic time of line_cost */
	double line_cost;         /* the runs of the whole waiting line */
};

#define DAEMON_TASK_THREADS 2

struct daemon {
	const struct daemon_settings *set;
	const char *socket_path;
	struct engine *engine;
	struct queue *q;
	struct mail_store *mail;
	gid_t operator_gid, deliver_gid, socket_gid;
	int have_operator_gid, have_deliver_gid, have_socket_gid;

	/* Workers: busy/paused/stopping and every struct worker. workers.c's
	 * own: other files go through daemon_workers_*(). */
	pthread_mutex_t mu;
	pthread_cond_t work_cv;
	uint64_t work_seq;        /* bumped on every request: workers recheck */
	int paused;
	/* Background work held after DAEMON_ATTENTION_STREAK users in a row
	 * went to attention for the same kind of reason (a source that went
	 * away, a full disk): priority requests still run; `resume` ends it. */
	int background_held;
	char held_reason[256];
	int attention_streak;
	char streak_kind[48];
	int stopping;             /* workers: stop (cancel running jobs) */
	struct worker *workers;
	int nworkers;

	/* Listeners (transport.c): [0] the Unix socket, then --listen. */
	struct daemon_listener listeners[1 + DAEMON_LISTEN_MAX];
	int nlisteners;
	struct mr_cidr *allow;    /* --allow */
	int nallow;
	void *tls_ctx;            /* SSL_CTX *; NULL: plain TCP */
	double refused_since;     /* monotonic: the second refusals are logged in */
	unsigned refused_logged, refused_quiet; /* in it: logged, and not */

	/* Event loop. */
	int epoll_fd, wake_fd, signal_fd;
	/* start-up: a thread answers "starting" (75) until the loop runs */
	pthread_t starting_thread;
	int starting_stop_fd;   /* eventfd; -1 when no such thread runs */
	dev_t sock_dev;
	ino_t sock_ino;
	struct conn **conns;      /* max_conns slots */
	int nconns;
	uint32_t max_conns, max_conns_uid, reserved_conns;
	int loop_stop;            /* leave the loop after the events at hand:
				   * a signal, SHUTDOWN (proto.c sets it),
				   * the work done; only the loop's thread
				   * touches it */
	int revisit;              /* some connection has bytes its TLS session
				   * read ahead: the loop looks at it again */
	double next_sweep;

	/* Completions, commit and task lists (async.c). */
	pthread_mutex_t async_mu;
	pthread_cond_t commit_cv, task_cv;
	struct completion *done_head, *done_tail;
	struct commit_item *commit_head, *commit_tail;
	struct daemon_task *task_head, *task_tail;
	int async_stop;
	int tasks_running;
	pthread_t committer;
	pthread_t task_threads[DAEMON_TASK_THREADS];
	int async_started;

	pthread_mutex_t metrics_mu;
	struct metrics metrics;
	struct eta_model *eta;    /* the time model (queue/eta.h), own lock */
	_Atomic uint64_t body_bytes; /* DELIVER bodies held in memory:
				   * proto.c counts them in and out, server.c
				   * gives back a body cut off by a hang-up */
};

/* transport.c */
/* Opens the Unix socket (refusing one another daemon answers on), the TLS
 * context and every --listen, and parses --allow. Returns 0, 64 for bad
 * settings, 69 when a listener cannot be served, 75 when another daemon
 * answers on the socket (logged). */
int daemon_transport_open(struct daemon *d);
/* Closes the listeners; removes the socket file when it is still ours. */
void daemon_transport_stop_listening(struct daemon *d);
/* Frees the TLS context and --allow (after the connections are closed). */
void daemon_transport_close(struct daemon *d);
/* Accepts the next peer of listener l into k: 1 with k filled (a TLS
 * session begun: k->handshaking), 0 when nobody more waits, -1 on a
 * failure (logged). A network peer outside --allow is closed at once
 * and logged, without a byte, and the next one is taken. Called by one
 * thread at a time: the start-up answerer, then the loop. */
int daemon_transport_accept(struct daemon *d, const struct daemon_listener *l,
			    struct daemon_link *k);
/* Goes on with k's TLS handshake: 1 done, 0 it waits (k->want), -1 failed
 * (logged). */
int daemon_transport_handshake(struct daemon_link *k);
/* Reads up to len bytes: > 0 bytes read, 0 the peer closed, -1 with errno
 * (EAGAIN: try when k->want, or readable for plain, says). */
ssize_t daemon_transport_recv(struct daemon_link *k, void *buf, size_t len);
/* Writes up to len bytes: the count written, or -1 with errno (EAGAIN). */
ssize_t daemon_transport_send(struct daemon_link *k, const void *buf, size_t len);
/* 1 when k's TLS session holds read bytes that epoll cannot see. */
int daemon_transport_pending(const struct daemon_link *k);
/* Ends the write side (TLS: close_notify first). 0 or -1. */
int daemon_transport_shutdown(struct daemon_link *k);
/* Closes k (frees its TLS session); k->fd becomes -1. */
void daemon_transport_drop(struct daemon_link *k);
/* 1 when a and b are the same peer: the same uid on the socket, the
 * same address over the network. */
int daemon_transport_same_peer(const struct daemon_link *a, const struct daemon_link *b);

/* limits.c: counted over every open connection (only the loop's thread). */
/* Open connections of c's peer (c counted when open). */
uint32_t daemon_limits_peer_conns(struct daemon *d, const struct conn *c);
/* Bytes of DELIVER bodies c's peer has in flight. */
uint64_t daemon_limits_peer_charge(struct daemon *d, const struct conn *c);
/* Bytes of replies not yet sent, over all connections. */
uint64_t daemon_limits_out_pending(struct daemon *d);

/* peer.c */
/* The PEER_* rights of c's peer: root and the daemon's own uid have all;
 * members of --operator-group / --deliver-group theirs; a network peer
 * PEER_NETWORK alone. Cached in c. */
unsigned daemon_peer_rights(struct daemon *d, struct conn *c);
/* The account name of c's peer uid into buf. 0, or -1 (no name, or a
 * network peer). */
int daemon_peer_name(const struct conn *c, char *buf, size_t len);
/* 1 when c's peer uid is the account named user, else 0. */
int daemon_peer_is_user(const struct conn *c, const char *user);
/* A group by name or number into *gid_r. 0, or -1 (logged with option). */
int daemon_peer_group(const char *option, const char *name, gid_t *gid_r);

/* server.c */
/* Makes the loop's descriptors (epoll, the wake eventfd, the signalfd for
 * SIGTERM/SIGINT, which the caller has blocked) and the connection table
 * after daemon_transport_open(). Returns 0 or 69/70. */
int daemon_server_open(struct daemon *d);
/* From the socket's opening until the loop runs (the queue read, the
 * backups indexed, the users registered), every client of the Unix socket
 * and every --allow'ed network peer (after its TLS handshake) is answered
 * {"ok":false,"error":"the daemon is starting ...","code":75} by a thread
 * of its own: a login during a long start-up hears "try again", never "no
 * daemon". _begin returns 0 or -1; _end is idempotent. */
int daemon_server_starting_begin(struct daemon *d);
void daemon_server_starting_end(struct daemon *d);
int daemon_server_loop(struct daemon *d);
/* Closes every connection and the loop's descriptors. */
void daemon_server_close(struct daemon *d);

/* proto.c: handles one request line of c (len bytes, NUL terminated, the
 * newline removed; len >= DAEMON_LINE_MAX for a line that did not end
 * within the limit); sets c->out (now or later). */
void daemon_proto_request(struct daemon *d, struct conn *c, uint32_t slot, char *line,
			  size_t len);
/* Appends the next piece of c's QUEUE reply (c->streaming: more follow). */
void daemon_proto_queue_more(struct daemon *d, struct conn *c);
/* What a verb hands to its task (the arg of a daemon_task it submits): the
 * user, and DELIVER's message. */
struct verb_job {
	char user[MR_USER_NAME_MAX + 1];
	char id[DAEMON_ID_MAX + 1];  /* DELIVER's delivery id, "" for none */
	char *body;
	size_t len;
};
/* A DELIVER body is complete: hands it to a task thread. */
void daemon_proto_deliver_body(struct daemon *d, struct conn *c, uint32_t slot);
/* What a time estimate needs, taken once per reply (metrics.c). */
struct eta_ctx {
	uint64_t counts[QUEUE_STATE_COUNT];
	uint64_t pending;
	int jobs;
	int background;
	int paused;
	int measured;        /* the model has a run behind it */
	int may_lock_workers; /* 0 inside a walk of the queue (QUEUE, LIST):
	                       * estimates come from plan */
	struct eta_plan *plan; /* every user's estimate in the queue's order,
	                        * by name hash (daemon_metrics_ctx_plan) */
	size_t nplan;
	size_t nrunning;     /* running jobs and the seconds they still need */
	char running[ETA_MAX_WORKERS][MR_USER_NAME_MAX + 1];
	double left[ETA_MAX_WORKERS];
	struct eta_sched walk; /* the workers after the running jobs */
	double hazard;       /* logins of waiting users per waiting user and
	                      * second (eta_jumps_hazard) */
};
/* The JSON object of one user (login/show/queue fields); with_ok starts it
 * with "ok":true. full 1 adds the times, reason, counters, held mail and
 * the running job's progress (not inside queue callbacks); full 2 (for a
 * network peer) the times alone, the reason null. */
void daemon_proto_user(struct daemon *d, struct daemon_buf *b, const struct eta_ctx *ctx,
		       const struct queue_user_info *info, int full, int with_ok);

/* async.c */
int daemon_async_start(struct daemon *d);
void daemon_async_stop(struct daemon *d);
void daemon_async_commit(struct daemon *d, uint32_t slot, uint32_t gen, queue_ticket t);
/* Runs fn(d, arg, 0) on a task thread; its reply becomes the reply of
 * (slot, gen). 0, or -1 when out of memory (fn is not called: arg is still
 * the caller's). */
int daemon_async_submit(struct daemon *d, uint32_t slot, uint32_t gen, daemon_task_fn fn,
			void *arg);
/* For a daemon whose threads never started (tests, the fuzzer): waits for
 * every parked ticket, drops every task (fn(d, arg, 1)) and discards the
 * completions. */
void daemon_async_drain(struct daemon *d);
/* Hands a finished reply to the loop (reply malloc'd or NULL). */
void daemon_async_complete(struct daemon *d, uint32_t slot, uint32_t gen, char *reply,
			   int close_after);
/* Takes the list of completions (the loop frees them). */
struct completion *daemon_async_take(struct daemon *d);

/* workers.c */
int daemon_workers_start(struct daemon *d);
/* Cancels running jobs and joins the threads. */
void daemon_workers_stop(struct daemon *d);
/* Wakes idle workers (a request came). */
void daemon_workers_kick(struct daemon *d);
/* Preempts a background job when a priority request waits and no worker
 * is free; marks users whose job reached the sync as syncing. */
void daemon_workers_tick(struct daemon *d);
/* Number of busy workers. */
int daemon_workers_busy(struct daemon *d);
/* Runs --on-active for user (waits up to 60 s). */
void daemon_run_on_active(struct daemon *d, const char *user);
/* Writes the "workers" JSON list into b. only NULL: every busy worker's
 * user; else the user only when it is only (others are null). */
void daemon_workers_json(struct daemon *d, struct daemon_buf *b, const char *only);
/* Pauses (1) or resumes (0) the workers: paused, they take no new user
 * (running jobs go on); resuming also ends a background hold and its
 * streak. The journaled pause is the queue's (queue_set_paused): the caller
 * records it first. */
void daemon_workers_pause(struct daemon *d, int pause);
/* Whether the workers are paused (*paused_r), background work is held
 * (*held_r) and why (into reason, len bytes). */
void daemon_workers_held(struct daemon *d, int *paused_r, int *held_r, char *reason,
			 size_t len);
/* What the workers do now, for the time estimates (one look under d->mu). */
struct daemon_workers_job {
	char user[MR_USER_NAME_MAX + 1];
	uint64_t size;        /* the user's size_hint */
	int priority;         /* it came from the priority lane (others give way) */
	double progress;      /* share of the extraction done, 0..1; -1 unknown */
	int syncing;          /* the sync has begun */
	double run_elapsed;   /* seconds since the run started */
	double sync_elapsed;  /* seconds since the sync began; -1 not yet */
};
struct daemon_workers_now {
	int jobs;             /* worker threads */
	int paused;
	size_t n;             /* busy workers (at most ETA_MAX_WORKERS) */
	struct daemon_workers_job job[ETA_MAX_WORKERS];
};
void daemon_workers_now(struct daemon *d, struct daemon_workers_now *now_r);

/* metrics.c */
/* Starts the clock, loads the rates kept by an earlier run. 0 or -1. */
int daemon_metrics_init(struct daemon *d);
/* Saves the rates (when changed) and frees the model. */
void daemon_metrics_close(struct daemon *d);
void daemon_metrics_finished(struct daemon *d, double seconds, uint64_t bytes, int active);
/* A priority request took a user out of the waiting line (a login of a
 * user not asked before): the rate of such logins stretches the waits of
 * the users still in the line (eta.h, logins yet to come). */
void daemon_metrics_jumped(struct daemon *d);
/* One clean run (active, first attempt) for the model. sync_seconds < 0:
 * the phases could not be told apart (extract_seconds is the whole run). */
struct daemon_run_sample {
	const char *user;     /* for the trace (may be NULL) */
	uint64_t size;
	uint64_t extract_bytes, extract_files, sync_bytes, sync_files;
	double extract_seconds, sync_seconds;
	double run_seconds;   /* taken off the queue to activation recorded; <= 0:
	                       * extract_seconds + sync_seconds */
	double predicted;     /* what the model said at the start (-1 nothing) */
	double ended;         /* mr_monotonic() when it ended (-1 unknown) */
	double durable;       /* of sync_seconds, the wait for durability (trace) */
};
void daemon_metrics_observe(struct daemon *d, const struct daemon_run_sample *r);
/* Seconds a running job still needs (-1 before any measurement). */
double daemon_metrics_left(struct daemon *d, const struct daemon_workers_job *j);
/* Fills ctx from the queue, the model and what the workers do now (from
 * daemon_workers_now; takes the queue's lock: not inside queue callbacks). */
void daemon_metrics_ctx(struct daemon *d, const struct daemon_workers_now *now,
			struct eta_ctx *ctx);
/* Before a walk of the queue (its callbacks hold the queue's lock): works
 * out every user's estimate in the order the workers take them, once, so
 * each user of the walk, in whatever order it comes, has the number SHOW
 * gives it. Free with daemon_metrics_ctx_done(). */
void daemon_metrics_ctx_plan(struct daemon *d, struct eta_ctx *ctx);
void daemon_metrics_ctx_done(struct eta_ctx *ctx);
/* The time estimate of a user in seconds; < 0 when there is none (see
 * daemon_metrics_eta_status for why). */
double daemon_metrics_eta(struct daemon *d, const struct eta_ctx *ctx,
			  const struct queue_user_info *info);
/* Why a user's estimate is what it is: "estimate" (a figure), "estimating"
 * (nothing measured yet), "paused", "none" (attention, or waiting with the
 * background off) or "done" (active, unknown). */
const char *daemon_metrics_eta_status(const struct eta_ctx *ctx,
				      const struct queue_user_info *info);
/* Seconds until every user the daemon will run is done (< 0: none). */
double daemon_metrics_eta_total(struct daemon *d, const struct eta_ctx *ctx);
/* The same words as daemon_metrics_eta_status for the whole run. */
const char *daemon_metrics_total_status(const struct eta_ctx *ctx);
/* Held messages of every user, at most a second old. */
uint64_t daemon_metrics_held(struct daemon *d);
/* The "throughput" object's members into b. */
void daemon_metrics_json(struct daemon *d, struct daemon_buf *b);

#endif
