/*
 * proto.c: the request verbs of the daemon's line protocol
 * (docs/PROTOCOL.md) and the JSON of their replies. Runs on the event loop:
 * a handler either answers at once, prepares an answer that is released
 * when the queue's journal has it on disk (LOGIN, ENQUEUE, BUMP), or hands
 * the work to a task thread (DELIVER, ACTIVATE, RETRY).
 */
#include "daemon/daemon_private.h"
#include "mail/mail.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_ARGS DAEMON_ARGS_MAX
/* Reply bytes waiting to be sent, over all clients, beyond which a new
 * QUEUE is answered 75: clients that ask and do not read cannot grow the
 * daemon without bound. */
#define OUT_PENDING_MAX (16u * 1024 * 1024)

/* The refusals (code 77); the CLI prints them as they are. */
#define DENY_OPERATOR \
	"permission denied: operator commands need root, the daemon's user or the operator group"
#define DENY_SHOW \
	"permission denied: only operators may see other users (a user may see itself)"
#define DENY_DELIVER \
	"permission denied: delivering needs root, the daemon's user or the deliver group"

/* ---- the reply buffer ------------------------------------------------ */

static int buf_reserve(struct daemon_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends printf output to b, growing it. */
void daemon_buf_printf(struct daemon_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (buf_reserve(b, 64) < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		if (buf_reserve(b, (size_t)n) < 0) {
			b->p[b->len] = '\0';
			return;
		}
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Appends s as a JSON string literal. */
void daemon_buf_json_str(struct daemon_buf *b, const char *s)
{
	size_t need = strlen(s) * 6 + 3, pos;

	if (buf_reserve(b, need) < 0)
		return;
	pos = b->len;
	mr_json_str(b->p, b->cap, &pos, s);
	b->len = pos;
}

/* Appends v, or null when v <= 0 (unset times) or negative (no estimate). */
void daemon_buf_num_or_null(struct daemon_buf *b, double v)
{
	if (v < 0)
		daemon_buf_printf(b, "null");
	else
		daemon_buf_printf(b, "%.3f", v);
}

/* Frees b's memory and empties it. */
void daemon_buf_free(struct daemon_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void reply_end(struct daemon_buf *b)
{
	daemon_buf_printf(b, "\n");
}

/* Writes {"ok":false,...} as the whole of b. */
void daemon_proto_error(struct daemon_buf *b, int code, const char *msg)
{
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":false,\"error\":");
	daemon_buf_json_str(b, msg);
	daemon_buf_printf(b, ",\"code\":%d}\n", code);
}

static void reply_ok(struct daemon_buf *b, const char *extra)
{
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":true%s%s}\n", extra ? "," : "", extra ? extra : "");
}

/* ---- users as JSON ----------------------------------------------------- */

static double time_or_null(double t)
{
	return t > 0 ? t : -1;
}

/* Writes one user's object (see daemon_private.h). */
void daemon_proto_user(struct daemon *d, struct daemon_buf *b, const struct eta_ctx *ctx,
		       const struct queue_user_info *info, int full, int with_ok)
{
	const struct queue_counters *k = &info->counters;
	uint64_t held = 0, held_bytes = 0;
	struct mr_error err;

	daemon_buf_printf(b, "{%s\"user\":", with_ok ? "\"ok\":true," : "");
	daemon_buf_json_str(b, info->name);
	daemon_buf_printf(b, ",\"state\":\"%s\",\"position\":", queue_state_name(info->state));
	if (info->position >= 0 && (info->state == QUEUE_QUEUED || info->state == QUEUE_WAITING))
		daemon_buf_printf(b, "%lld", (long long)info->position);
	else
		daemon_buf_printf(b, "null");
	daemon_buf_printf(b, ",\"eta_seconds\":");
	daemon_buf_num_or_null(b, daemon_metrics_eta(d, ctx, info));
	daemon_buf_printf(b, ",\"eta_status\":\"%s\"", daemon_metrics_eta_status(ctx, info));
	if (with_ok)
		daemon_buf_printf(b, ",\"mode\":\"%s\"",
				  info->state == QUEUE_ACTIVE    ? "restored"
				  : info->state == QUEUE_UNKNOWN ? "untouched"
				  : engine_user_dial_tone(d->engine, info->name) ? "dial-tone"
										 : "waiting");
	daemon_buf_printf(b, ",\"priority\":%s,\"requested_at\":", info->priority ? "true" : "false");
	daemon_buf_num_or_null(b, time_or_null(info->requested_at));
	if (full) {
		daemon_buf_printf(b, ",\"started_at\":");
		daemon_buf_num_or_null(b, time_or_null(info->started_at));
		daemon_buf_printf(b, ",\"finished_at\":");
		daemon_buf_num_or_null(b, time_or_null(info->finished_at));
		daemon_buf_printf(b, ",\"reason\":");
		if (info->reason[0])
			daemon_buf_json_str(b, info->reason);
		else
			daemon_buf_printf(b, "null");
		daemon_buf_printf(b,
				  ",\"attempts\":%u,\"size_hint\":%llu,\"counters\":{"
				  "\"backup_files\":%llu,\"backup_bytes\":%llu,"
				  "\"copied_files\":%llu,\"copied_bytes\":%llu,\"renamed\":%llu,"
				  "\"patched_files\":%llu,\"attic_files\":%llu,\"unreadable\":%llu,"
				  "\"released_mail\":%llu,\"source_bytes_read\":%llu}",
				  info->attempts, (unsigned long long)info->size_hint,
				  (unsigned long long)k->backup_files,
				  (unsigned long long)k->backup_bytes,
				  (unsigned long long)k->copied_files,
				  (unsigned long long)k->copied_bytes, (unsigned long long)k->renamed,
				  (unsigned long long)k->patched_files,
				  (unsigned long long)k->attic_files,
				  (unsigned long long)k->unreadable,
				  (unsigned long long)k->held_mail,
				  (unsigned long long)k->source_bytes_read);
		if (d->mail != NULL && info->state != QUEUE_UNKNOWN &&
		    mail_held_count(d->mail, info->name, &held, &held_bytes, &err) < 0) {
			mr_log("held mail of %s: %s", info->name, err.msg);
			held = held_bytes = 0;
		}
		daemon_buf_printf(b, ",\"held_mail\":%llu,\"held_mail_bytes\":%llu",
				  (unsigned long long)held, (unsigned long long)held_bytes);
	}
	daemon_buf_printf(b, "}");
}

/* ---- verbs --------------------------------------------------------------- */

struct req {
	struct daemon *d;
	struct conn *c;
	uint32_t slot;
	int argc;
	char *argv[MAX_ARGS];
};

static int need_user(struct req *r, int i)
{
	if (r->argc <= i) {
		daemon_proto_error(&r->c->out, MR_EX_USAGE, "missing user name");
		return -1;
	}
	if (!mr_user_name_valid(r->argv[i])) {
		daemon_proto_error(&r->c->out, MR_EX_DATAERR, "invalid user name");
		return -1;
	}
	return 0;
}

/* The reply in c->out is sent once ticket is durable. */
static void hold_for(struct req *r, queue_ticket ticket)
{
	r->c->reply_waits_commit = 1;
	daemon_async_commit(r->d, r->slot, r->c->gen, ticket);
}

typedef int (*request_fn)(struct queue *q, const char *name, double now,
			  struct queue_user_info *info_r, queue_ticket *ticket_r,
			  struct mr_error *err);

/* A priority request (LOGIN, BUMP): applies it, answers with the user, and
 * holds the answer until the request is durable. A user the outage doesn't
 * touch is answered as unknown when unknown_ok (LOGIN: may log in), else
 * refused with 67. */
static void priority_request(struct req *r, const char *verb, request_fn fn, int unknown_ok)
{
	struct queue_user_info info;
	struct eta_ctx ctx;
	struct mr_error err;
	queue_ticket ticket = 0;
	int rc;

	if (need_user(r, 1) < 0)
		return;
	mr_error_clear(&err);
	rc = fn(r->d->q, r->argv[1], mr_now(), &info, &ticket, &err);
	if (rc < 0) {
		mr_log("%s %s: %s", verb, r->argv[1], err.msg);
		daemon_proto_error(&r->c->out, mr_exit_code_for_errno(err.errnum), err.msg);
		return;
	}
	if (rc == 1 && !unknown_ok) {
		daemon_proto_error(&r->c->out, MR_EX_NOUSER, "not an affected user");
		return;
	}
	if (rc == 1) {
		memset(&info, 0, sizeof(info));
		snprintf(info.name, sizeof(info.name), "%s", r->argv[1]);
		info.state = QUEUE_UNKNOWN;
		info.position = -1;
	}
	daemon_metrics_ctx(r->d, &ctx);
	r->c->out.len = 0;
	daemon_proto_user(r->d, &r->c->out, &ctx, &info, 0, 1);
	reply_end(&r->c->out);
	if (rc == 0) {
		hold_for(r, ticket);
		if (info.state == QUEUE_QUEUED) {
			daemon_workers_kick(r->d);
			daemon_workers_tick(r->d);
		}
	}
}

static void verb_login(struct req *r)
{
	struct queue_user_info info;
	struct mr_error err;

	/* Dial tone: an affected user not restored yet gets an empty mailbox
	 * before the answer, which then says "mode":"dial-tone". */
	if (r->d->set != NULL && r->d->set->dial_tone && r->d->engine != NULL &&
	    need_user(r, 1) == 0 &&
	    queue_lookup(r->d->q, r->argv[1], &info) == 0 && info.state != QUEUE_ACTIVE &&
	    info.state != QUEUE_UNKNOWN) {
		mr_error_clear(&err);
		if (engine_dial_tone(r->d->engine, r->argv[1], &err) < 0)
			mr_log("%s: dial tone: %s", r->argv[1], err.msg);
	}
	priority_request(r, "login", queue_request, 1);
}

static void verb_show(struct req *r)
{
	struct queue_user_info info;
	struct eta_ctx ctx;

	if (need_user(r, 1) < 0)
		return;
	if (!(daemon_peer_rights(r->d, r->c) & PEER_OPERATOR) &&
	    !daemon_peer_is_user(r->c, r->argv[1])) {
		daemon_proto_error(&r->c->out, MR_EX_NOPERM, DENY_SHOW);
		return;
	}
	if (queue_lookup(r->d->q, r->argv[1], &info) != 0) {
		memset(&info, 0, sizeof(info));
		snprintf(info.name, sizeof(info.name), "%s", r->argv[1]);
		info.state = QUEUE_UNKNOWN;
		info.position = -1;
	}
	daemon_metrics_ctx(r->d, &ctx);
	r->c->out.len = 0;
	daemon_proto_user(r->d, &r->c->out, &ctx, &info, 1, 1);
	reply_end(&r->c->out);
}

/* Users per piece of a QUEUE reply: the reply is made a piece at a time
 * as the client reads it (daemon_proto_queue_more), so a connection holds
 * one piece, never the whole queue, and a client that does not read costs
 * one piece until the idle time closes it. */
#define QUEUE_PIECE 64

struct queue_walk {
	struct daemon *d;
	struct daemon_buf *b;
	const struct eta_ctx *ctx;
	size_t n;          /* users written by this walk */
	int comma;         /* users were written before: start with a comma */
};

static int queue_walk_one(void *arg, const struct queue_user_info *info)
{
	struct queue_walk *w = arg;

	if (w->n++ || w->comma)
		daemon_buf_printf(w->b, ",");
	daemon_proto_user(w->d, w->b, w->ctx, info, 0, 0);
	return w->b->oom;
}

/* Appends the next piece of c's QUEUE reply to c->out, and its end after
 * the last one (c->streaming then drops to 0). A piece goes on after the
 * place in the queue where the previous one ended (a queue_cursor), so
 * users who started, were bumped or joined meanwhile shift nobody into a
 * repeat or out of the list. */
void daemon_proto_queue_more(struct daemon *d, struct conn *c)
{
	struct eta_ctx ctx;
	struct queue_walk w;
	uint64_t want = QUEUE_PIECE;

	if (c->stream_max != 0 && c->stream_max - c->stream_sent < want)
		want = c->stream_max - c->stream_sent;
	daemon_metrics_ctx(d, &ctx);
	ctx.may_lock_workers = 0;
	w.d = d;
	w.b = &c->out;
	w.ctx = &ctx;
	w.n = 0;
	w.comma = c->stream_sent > 0;
	if (want > 0)
		queue_foreach_queued_after(d->q, &c->stream_cur, (size_t)want, queue_walk_one, &w);
	c->stream_sent += w.n;
	c->streaming = want > 0 && w.n == want &&
		       (c->stream_max == 0 || c->stream_sent < c->stream_max);
	if (!c->streaming)
		daemon_buf_printf(&c->out, "]}\n");
	if (c->out.oom) {
		/* Part of the reply may be gone already: end the connection. */
		c->streaming = 0;
		daemon_proto_error(&c->out, MR_EX_SOFTWARE, "out of memory");
		c->close_after = 1;
	}
}

static void verb_queue(struct req *r)
{
	struct queue_user_info info;
	struct eta_ctx ctx;
	uint64_t max = 0;
	char self[MR_USER_NAME_MAX + 1];

	if (r->argc > 1 && mr_parse_u64(r->argv[1], &max) < 0) {
		daemon_proto_error(&r->c->out, MR_EX_USAGE, "QUEUE takes an optional count");
		return;
	}
	if (daemon_server_out_pending(r->d) > OUT_PENDING_MAX) {
		daemon_proto_error(&r->c->out, MR_EX_TEMPFAIL,
				   "too many replies waiting to be read; try again later");
		return;
	}
	daemon_metrics_ctx(r->d, &ctx);
	r->c->out.len = 0;
	daemon_buf_printf(&r->c->out, "{\"ok\":true,\"total\":%llu,\"queue\":[",
			  (unsigned long long)ctx.pending);
	/* Others than operators see themselves only: a peer without a name
	 * matches nobody. */
	if (!(daemon_peer_rights(r->d, r->c) & PEER_OPERATOR)) {
		if (daemon_peer_name(r->c, self, sizeof(self)) == 0 &&
		    mr_user_name_valid(self) && queue_lookup(r->d->q, self, &info) == 0 &&
		    info.position >= 0)
			daemon_proto_user(r->d, &r->c->out, &ctx, &info, 0, 0);
		daemon_buf_printf(&r->c->out, "]}\n");
		if (r->c->out.oom)
			daemon_proto_error(&r->c->out, MR_EX_SOFTWARE, "out of memory");
		return;
	}
	r->c->stream_sent = 0;
	r->c->stream_max = max;
	memset(&r->c->stream_cur, 0, sizeof(r->c->stream_cur));
	daemon_proto_queue_more(r->d, r->c);
}

/* Users per LIST reply: a page of full user objects, a few hundred KiB at
 * the most; the client asks for the next page with the cursor. */
#define LIST_PAGE 500

struct list_walk {
	struct daemon *d;
	struct daemon_buf *b;
	const struct eta_ctx *ctx;
	size_t n;
};

static int list_walk_one(void *arg, const struct queue_user_info *info)
{
	struct list_walk *w = arg;

	if (w->n++)
		daemon_buf_printf(w->b, ",");
	daemon_proto_user(w->d, w->b, w->ctx, info, 1, 0);
	return w->b->oom;
}

/* LIST STATE [CURSOR]: the users in STATE ("any": every state), a page at
 * a time in the order they became known, each with its reason; operators
 * only (it names other users). */
static void verb_list(struct req *r)
{
	struct daemon_buf *b = &r->c->out;
	struct list_walk w;
	struct eta_ctx ctx;
	uint64_t cursor = 0;
	int state, more;

	if (r->argc < 2 || r->argc > 3 ||
	    (r->argc == 3 && mr_parse_u64(r->argv[2], &cursor) < 0)) {
		daemon_proto_error(b, MR_EX_USAGE, "LIST takes a state and an optional cursor");
		return;
	}
	state = strcmp(r->argv[1], "any") == 0 ? -1 : queue_state_parse(r->argv[1]);
	if (state < 0 && strcmp(r->argv[1], "any") != 0) {
		daemon_proto_error(b, MR_EX_USAGE, "LIST: no such state");
		return;
	}
	if (daemon_server_out_pending(r->d) > OUT_PENDING_MAX) {
		daemon_proto_error(b, MR_EX_TEMPFAIL,
				   "too many replies waiting to be read; try again later");
		return;
	}
	daemon_metrics_ctx(r->d, &ctx);
	ctx.may_lock_workers = 0;
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":true,\"state\":\"%s\",\"users\":[", r->argv[1]);
	w.d = r->d;
	w.b = b;
	w.ctx = &ctx;
	w.n = 0;
	more = queue_foreach_in_state(r->d->q, state, &cursor, LIST_PAGE, list_walk_one, &w);
	daemon_buf_printf(b, "],\"next\":");
	if (more > 0)
		daemon_buf_printf(b, "%llu}\n", (unsigned long long)cursor);
	else
		daemon_buf_printf(b, "null}\n");
	if (more < 0 || b->oom)
		daemon_proto_error(b, MR_EX_SOFTWARE, "out of memory");
}

static void verb_status(struct req *r)
{
	struct daemon *d = r->d;
	struct daemon_buf *b = &r->c->out;
	struct eta_ctx ctx;
	char self[MR_USER_NAME_MAX + 1] = "", held_reason[256];
	int s, paused, everyone, held;

	/* Others than operators see which users the workers restore only
	 * when it is themselves (a peer without a name: nobody). */
	everyone = (daemon_peer_rights(d, r->c) & PEER_OPERATOR) != 0;
	if (!everyone && daemon_peer_name(r->c, self, sizeof(self)) < 0)
		self[0] = '\0';
	daemon_metrics_ctx(d, &ctx);
	pthread_mutex_lock(&d->mu);
	paused = d->paused;
	held = d->background_held;
	memcpy(held_reason, d->held_reason, sizeof(held_reason));
	pthread_mutex_unlock(&d->mu);
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":true,\"background_held\":");
	if (held)
		daemon_buf_json_str(b, held_reason);
	else
		daemon_buf_printf(b, "null");
	daemon_buf_printf(b, ",\"counts\":{");
	for (s = 0; s < QUEUE_STATE_COUNT; s++)
		daemon_buf_printf(b, "%s\"%s\":%llu", s ? "," : "",
				  queue_state_name((enum queue_state)s),
				  (unsigned long long)ctx.counts[s]);
	daemon_buf_printf(b, "},\"workers\":");
	daemon_workers_json(d, b, everyone ? NULL : self);
	daemon_buf_printf(b, ",\"throughput\":{");
	daemon_metrics_json(d, b);
	daemon_buf_printf(b, "},\"eta_seconds\":");
	daemon_buf_num_or_null(b, daemon_metrics_eta_total(d, &ctx));
	daemon_buf_printf(b, ",\"eta_status\":\"%s\"", daemon_metrics_total_status(&ctx));
	daemon_buf_printf(b,
			  ",\"held_mail\":%llu,\"pending\":%llu,\"jobs\":%d,\"paused\":%s,"
			  "\"background\":%s,\"connections\":%d,\"pid\":%ld}\n",
			  (unsigned long long)daemon_metrics_held(d),
			  (unsigned long long)ctx.pending, d->nworkers, paused ? "true" : "false",
			  d->set->background ? "true" : "false", d->nconns, (long)getpid());
}

static void verb_enqueue(struct req *r)
{
	struct daemon_buf *b = &r->c->out;
	struct queue_user_info info;
	struct eta_ctx ctx;
	struct mr_error err;
	queue_ticket ticket, max_ticket = 0;
	int i = 1, priority = 0, rc, n_users = 0, n_bad = 0, n_unknown = 0;
	struct daemon_buf bad = { 0 }, unknown = { 0 };

	if (r->argc > 1 && strcmp(r->argv[1], "--priority") == 0) {
		priority = 1;
		i = 2;
	}
	if (i >= r->argc) {
		daemon_proto_error(b, MR_EX_USAGE, "ENQUEUE needs user names");
		return;
	}
	daemon_metrics_ctx(r->d, &ctx);
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":true,\"users\":[");
	for (; i < r->argc; i++) {
		if (!mr_user_name_valid(r->argv[i])) {
			daemon_buf_printf(&bad, "%s", n_bad++ ? "," : "");
			daemon_buf_json_str(&bad, r->argv[i]);
			continue;
		}
		ticket = 0;
		mr_error_clear(&err);
		rc = priority ? queue_request(r->d->q, r->argv[i], mr_now(), &info, &ticket, &err)
			      : queue_enqueue(r->d->q, r->argv[i], mr_now(), &info, &ticket, &err);
		if (rc < 0) {
			mr_log("enqueue %s: %s", r->argv[i], err.msg);
			daemon_proto_error(b, mr_exit_code_for_errno(err.errnum), err.msg);
			goto out;
		}
		if (rc == 1) {
			daemon_buf_printf(&unknown, "%s", n_unknown++ ? "," : "");
			daemon_buf_json_str(&unknown, r->argv[i]);
			continue;
		}
		if (ticket > max_ticket)
			max_ticket = ticket;
		if (n_users++)
			daemon_buf_printf(b, ",");
		daemon_proto_user(r->d, b, &ctx, &info, 0, 0);
	}
	daemon_buf_printf(b, "],\"invalid\":[%s],\"unknown\":[%s]}\n", bad.p ? bad.p : "",
			  unknown.p ? unknown.p : "");
	if (n_users > 0) {
		hold_for(r, max_ticket);
		daemon_workers_kick(r->d);
		daemon_workers_tick(r->d);
	}
out:
	daemon_buf_free(&bad);
	daemon_buf_free(&unknown);
}

static void verb_bump(struct req *r)
{
	priority_request(r, "bump", queue_bump, 0);
}

/* RETRY and ACTIVATE: checked here, done on a task thread. */
static void verb_task(struct req *r, enum task_kind kind)
{
	struct queue_user_info info;
	struct task *t;

	if (need_user(r, 1) < 0)
		return;
	if (queue_lookup(r->d->q, r->argv[1], &info) != 0) {
		daemon_proto_error(&r->c->out, MR_EX_NOUSER, "not an affected user");
		return;
	}
	if (kind == TASK_ACTIVATE && info.state == QUEUE_ACTIVE) {
		reply_ok(&r->c->out, "\"state\":\"active\"");
		return;
	}
	if (info.state != QUEUE_ATTENTION && !(kind == TASK_RETRY && info.retry_at > 0)) {
		daemon_proto_error(&r->c->out, MR_EX_DATAERR, "the user is not in attention");
		return;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		daemon_proto_error(&r->c->out, MR_EX_SOFTWARE, "out of memory");
		return;
	}
	t->kind = kind;
	t->slot = r->slot;
	t->gen = r->c->gen;
	snprintf(t->user, sizeof(t->user), "%s", r->argv[1]);
	r->c->waiting = 1;
	daemon_async_task(r->d, t);
}

static void verb_pause(struct req *r, int pause)
{
	struct mr_error err;

	/* Journaled first, so a pause that was answered survives a crash. */
	if (queue_set_paused(r->d->q, pause, &err) < 0) {
		mr_log("%s: %s", pause ? "pause" : "resume", err.msg);
		daemon_proto_error(&r->c->out, MR_EX_IOERR, err.msg);
		return;
	}
	pthread_mutex_lock(&r->d->mu);
	r->d->paused = pause;
	if (!pause) {
		r->d->background_held = 0;
		r->d->attention_streak = 0;
	}
	r->d->work_seq++;
	pthread_cond_broadcast(&r->d->work_cv);
	pthread_mutex_unlock(&r->d->mu);
	mr_log("%s by uid %ld", pause ? "paused" : "resumed", (long)r->c->uid);
	reply_ok(&r->c->out, pause ? "\"paused\":true" : "\"paused\":false");
}

/* A delivery id: 1 to DAEMON_ID_MAX bytes of printable ASCII, no space
 * (clients escape other bytes). */
static int delivery_id_valid(const char *id)
{
	size_t n;

	for (n = 0; id[n] != '\0'; n++)
		if ((unsigned char)id[n] <= 0x20 || (unsigned char)id[n] >= 0x7f)
			return 0;
	return n >= 1 && n <= DAEMON_ID_MAX;
}

static void verb_deliver(struct req *r)
{
	struct queue_user_info info;
	uint64_t len, budget;

	if (need_user(r, 1) < 0)
		return;
	if (r->argc < 3 || r->argc > 4 || mr_parse_u64(r->argv[2], &len) < 0 ||
	    (r->argc == 4 && !delivery_id_valid(r->argv[3]))) {
		daemon_proto_error(&r->c->out, MR_EX_USAGE, "usage: DELIVER USER LENGTH [ID]");
		r->c->close_after = 1;
		return;
	}
	if (len > DAEMON_DELIVER_MAX) {
		daemon_proto_error(&r->c->out, MR_EX_DATAERR, "message larger than 64 MiB");
		r->c->close_after = 1;
		return;
	}
	if (queue_lookup(r->d->q, r->argv[1], &info) != 0) {
		daemon_proto_error(&r->c->out, MR_EX_NOUSER, "not an affected user");
		return;
	}
	budget = r->d->set->deliver_memory ? r->d->set->deliver_memory : DAEMON_DELIVER_MEMORY;
	if (atomic_load_explicit(&r->d->body_bytes, memory_order_relaxed) + len > budget) {
		daemon_proto_error(&r->c->out, MR_EX_TEMPFAIL, "too many deliveries at once");
		return;
	}
	/* Fair shares: one peer uid may hold at most half of the memory, so
	 * a client that announces big messages and trickles them cannot stop
	 * the delivery agent. */
	if (r->c->uid != 0 && r->c->uid != geteuid() &&
	    daemon_server_uid_charge(r->d, r->c->uid) + len > budget / 2) {
		daemon_proto_error(&r->c->out, MR_EX_TEMPFAIL,
				   "too many deliveries at once from this user");
		return;
	}
	r->c->body = malloc((size_t)len + 1);
	if (r->c->body == NULL) {
		daemon_proto_error(&r->c->out, MR_EX_TEMPFAIL, "out of memory");
		return;
	}
	r->c->body_len = (size_t)len;
	r->c->body_have = 0;
	atomic_fetch_add_explicit(&r->d->body_bytes, len, memory_order_relaxed);
	r->c->body_charge = len;
	r->c->body_deadline = mr_monotonic() +
			      (r->d->set->idle_seconds > 0 ? r->d->set->idle_seconds
							   : DAEMON_IDLE_SECONDS) +
			      (double)len / DAEMON_BODY_RATE;
	snprintf(r->c->body_user, sizeof(r->c->body_user), "%s", r->argv[1]);
	snprintf(r->c->body_id, sizeof(r->c->body_id), "%s", r->argc == 4 ? r->argv[3] : "");
	r->c->out.len = 0;
	daemon_buf_printf(&r->c->out, "{\"ok\":true,\"send\":%llu}\n", (unsigned long long)len);
}

/* The body of a DELIVER has arrived: a task thread stores it. */
void daemon_proto_deliver_body(struct daemon *d, struct conn *c, uint32_t slot)
{
	struct task *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		atomic_fetch_sub_explicit(&d->body_bytes, c->body_len, memory_order_relaxed);
		free(c->body);
		c->body = NULL;
		daemon_proto_error(&c->out, MR_EX_TEMPFAIL, "out of memory");
		return;
	}
	t->kind = TASK_DELIVER;
	t->slot = slot;
	t->gen = c->gen;
	snprintf(t->user, sizeof(t->user), "%s", c->body_user);
	snprintf(t->id, sizeof(t->id), "%s", c->body_id);
	t->body = c->body;
	t->len = c->body_len;
	c->body = NULL;
	c->waiting = 1;
	daemon_async_task(d, t);
}

/* Handles one request line (NUL terminated, newline removed). */
void daemon_proto_request(struct daemon *d, struct conn *c, uint32_t slot, char *line)
{
	struct req r;
	char *p = line, *save = NULL, *tok;
	const char *verb;
	int op;

	memset(&r, 0, sizeof(r));
	r.d = d;
	r.c = c;
	r.slot = slot;
	for (tok = strtok_r(p, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (r.argc == MAX_ARGS) {
			daemon_proto_error(&c->out, MR_EX_USAGE, "too many arguments");
			return;
		}
		r.argv[r.argc++] = tok;
	}
	if (r.argc == 0) {
		daemon_proto_error(&c->out, MR_EX_USAGE, "empty request");
		return;
	}
	verb = r.argv[0];
	op = strcasecmp(verb, "ENQUEUE") == 0 || strcasecmp(verb, "BUMP") == 0 ||
	     strcasecmp(verb, "RETRY") == 0 || strcasecmp(verb, "ACTIVATE") == 0 ||
	     strcasecmp(verb, "PAUSE") == 0 || strcasecmp(verb, "RESUME") == 0 ||
	     strcasecmp(verb, "SHUTDOWN") == 0 || strcasecmp(verb, "LIST") == 0;
	if (op && !(daemon_peer_rights(d, c) & PEER_OPERATOR)) {
		daemon_proto_error(&c->out, MR_EX_NOPERM, DENY_OPERATOR);
		return;
	}
	if (strcasecmp(verb, "DELIVER") == 0 && !(daemon_peer_rights(d, c) & PEER_DELIVER)) {
		daemon_proto_error(&c->out, MR_EX_NOPERM, DENY_DELIVER);
		/* A body may follow the line: it must not be read as requests. */
		c->close_after = 1;
		return;
	}
	if (strcasecmp(verb, "LOGIN") == 0)
		verb_login(&r);
	else if (strcasecmp(verb, "SHOW") == 0)
		verb_show(&r);
	else if (strcasecmp(verb, "STATUS") == 0)
		verb_status(&r);
	else if (strcasecmp(verb, "QUEUE") == 0)
		verb_queue(&r);
	else if (strcasecmp(verb, "LIST") == 0)
		verb_list(&r);
	else if (strcasecmp(verb, "DELIVER") == 0)
		verb_deliver(&r);
	else if (strcasecmp(verb, "PING") == 0)
		reply_ok(&c->out, "\"pong\":true");
	else if (strcasecmp(verb, "ENQUEUE") == 0)
		verb_enqueue(&r);
	else if (strcasecmp(verb, "BUMP") == 0)
		verb_bump(&r);
	else if (strcasecmp(verb, "RETRY") == 0)
		verb_task(&r, TASK_RETRY);
	else if (strcasecmp(verb, "ACTIVATE") == 0)
		verb_task(&r, TASK_ACTIVATE);
	else if (strcasecmp(verb, "PAUSE") == 0)
		verb_pause(&r, 1);
	else if (strcasecmp(verb, "RESUME") == 0)
		verb_pause(&r, 0);
	else if (strcasecmp(verb, "SHUTDOWN") == 0) {
		mr_log("shutdown requested by uid %ld", (long)c->uid);
		reply_ok(&c->out, "\"stopping\":true");
		c->close_after = 1;
		d->loop_stop = 1;
	} else {
		daemon_proto_error(&c->out, MR_EX_USAGE, "unknown request");
	}
}
