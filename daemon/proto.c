/*
 * proto.c: the request verbs of the daemon's line protocol
 * (docs/PROTOCOL.md) and the JSON of their replies. The table `verbs`
 * below is the one place a verb lives: its name, who may call it, the
 * check of its arguments, its handler on the event loop and, for verbs that
 * do real I/O, the part a task thread runs (async.c runs it and knows no
 * verb). A handler either answers at once, prepares an answer that is
 * released when the queue's journal has it on disk (LOGIN, ENQUEUE, BUMP),
 * or hands the work to a task thread (DELIVER, ACTIVATE, RETRY).
 */
#include "daemon/daemon_private.h"
#include "mail/mail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The refusals (code 77); the CLI prints them as they are. */
#define DENY_OPERATOR \
	"permission denied: operator commands need root, the daemon's user or the operator group"
#define DENY_SHOW \
	"permission denied: only operators may see other users (a user may see itself)"
#define DENY_DELIVER \
	"permission denied: delivering needs root, the daemon's user or the deliver group"
#define DENY_NETWORK "permission denied: %s is only on the Unix socket, not over the network"

static void reply_end(struct daemon_buf *b)
{
	daemon_buf_printf(b, "\n");
}

static void reply_ok(struct daemon_buf *b, const char *extra)
{
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":true%s%s}\n", extra ? "," : "", extra ? extra : "");
}

/* ---- users as JSON ----------------------------------------------------- */

/* What an estimate needs, taken once per reply: the queue's and the
 * model's part (metrics.c) over what the workers do now (workers.c). */
static void eta_ctx(struct daemon *d, struct eta_ctx *ctx)
{
	struct daemon_workers_now now;

	daemon_workers_now(d, &now);
	daemon_metrics_ctx(d, &now, ctx);
}

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
		if (full == 2) {
			/* a network peer: the times, not the mailbox */
			daemon_buf_printf(b, "null}");
			return;
		}
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

/* One request on its way through a handler. */
struct req {
	struct daemon *d;
	struct conn *c;
	uint32_t slot;
	const struct daemon_verb *verb;
	int argc;
	char **argv;
};

/* The argument at i must be a valid user name. */
static int need_user(const struct daemon_request *q, int i, struct daemon_buf *reply)
{
	if (q->argc <= i) {
		daemon_buf_error(reply, MR_EX_USAGE, "missing user name");
		return -1;
	}
	if (!mr_user_name_valid(q->argv[i])) {
		daemon_buf_error(reply, MR_EX_DATAERR, "invalid user name");
		return -1;
	}
	return 0;
}

static int check_user(struct daemon_request *q, struct daemon_buf *reply)
{
	return need_user(q, 1, reply);
}

/* The reply in c->out is sent once ticket is durable. */
static void hold_for(struct req *r, queue_ticket ticket)
{
	r->c->reply_waits_commit = 1;
	daemon_async_commit(r->d, r->slot, r->c->gen, ticket);
}

static char *error_reply(int code, const char *msg)
{
	struct daemon_buf b = { 0 };

	daemon_buf_error(&b, code, msg);
	return b.p;
}

/* A task thread's reply: the user's object with "ok":true, and extra
 * members when not NULL. */
static char *user_reply(struct daemon *d, const char *user, const char *extra)
{
	struct queue_user_info info;
	struct daemon_buf b = { 0 };
	struct eta_ctx ctx;

	if (queue_lookup(d->q, user, &info) != 0)
		return error_reply(MR_EX_NOUSER, "not an affected user");
	eta_ctx(d, &ctx);
	daemon_proto_user(d, &b, &ctx, &info, 0, 1);
	if (b.len > 0 && extra != NULL) {
		b.len--; /* reopen the object */
		daemon_buf_printf(&b, ",%s}", extra);
	}
	daemon_buf_printf(&b, "\n");
	if (b.oom) {
		free(b.p);
		return error_reply(MR_EX_SOFTWARE, "out of memory");
	}
	return b.p;
}

/* Hands r's user to r's verb's task; the reply comes from the task thread. */
static void to_task(struct req *r);

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
	int rc, jumped;

	mr_error_clear(&err);
	/* a login of a waiting user: what the line's estimates learn from
	 * (an operator's bump is not a user's) */
	jumped = unknown_ok && queue_lookup(r->d->q, r->argv[1], &info) == 0 &&
		 info.state == QUEUE_WAITING;
	rc = fn(r->d->q, r->argv[1], mr_now(), &info, &ticket, &err);
	if (rc < 0) {
		mr_log("%s %s: %s", verb, r->argv[1], err.msg);
		daemon_buf_error(&r->c->out, mr_exit_code_for_errno(err.errnum), err.msg);
		return;
	}
	if (rc == 1 && !unknown_ok) {
		daemon_buf_error(&r->c->out, MR_EX_NOUSER, "not an affected user");
		return;
	}
	if (rc == 1) {
		memset(&info, 0, sizeof(info));
		snprintf(info.name, sizeof(info.name), "%s", r->argv[1]);
		info.state = QUEUE_UNKNOWN;
		info.position = -1;
	}
	eta_ctx(r->d, &ctx);
	r->c->out.len = 0;
	daemon_proto_user(r->d, &r->c->out, &ctx, &info, 0, 1);
	reply_end(&r->c->out);
	if (rc == 0 && jumped && info.state == QUEUE_QUEUED)
		daemon_metrics_jumped(r->d);
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
	    queue_lookup(r->d->q, r->argv[1], &info) == 0 && info.state != QUEUE_ACTIVE &&
	    info.state != QUEUE_UNKNOWN) {
		mr_error_clear(&err);
		if (engine_dial_tone(r->d->engine, r->argv[1], &err) < 0)
			mr_log("%s: dial tone: %s", r->argv[1], err.msg);
		else if (queue_note_open(r->d->q, r->argv[1], &err) < 0)
			mr_log("%s: %s", r->argv[1], err.msg);
	}
	priority_request(r, "login", queue_request, 1);
}

static void verb_show(struct req *r)
{
	struct queue_user_info info;
	struct eta_ctx ctx;
	unsigned rights = daemon_peer_rights(r->d, r->c);

	/* A network peer (a proxy, a webmail) asks about its users' logins:
	 * any user, but not what the mailbox holds (the counters, held mail,
	 * the reason with its paths), which stays on the Unix socket. */
	if (!(rights & (PEER_OPERATOR | PEER_NETWORK)) &&
	    !daemon_peer_is_user(r->c, r->argv[1])) {
		daemon_buf_error(&r->c->out, MR_EX_NOPERM, DENY_SHOW);
		return;
	}
	if (queue_lookup(r->d->q, r->argv[1], &info) != 0) {
		memset(&info, 0, sizeof(info));
		snprintf(info.name, sizeof(info.name), "%s", r->argv[1]);
		info.state = QUEUE_UNKNOWN;
		info.position = -1;
	}
	eta_ctx(r->d, &ctx);
	r->c->out.len = 0;
	daemon_proto_user(r->d, &r->c->out, &ctx, &info, rights & PEER_NETWORK ? 2 : 1, 1);
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
	eta_ctx(d, &ctx);
	daemon_metrics_ctx_plan(d, &ctx);
	w.d = d;
	w.b = &c->out;
	w.ctx = &ctx;
	w.n = 0;
	w.comma = c->stream_sent > 0;
	if (want > 0)
		queue_foreach_queued_after(d->q, &c->stream_cur, (size_t)want, queue_walk_one, &w);
	daemon_metrics_ctx_done(&ctx);
	c->stream_sent += w.n;
	c->streaming = want > 0 && w.n == want &&
		       (c->stream_max == 0 || c->stream_sent < c->stream_max);
	if (!c->streaming)
		daemon_buf_printf(&c->out, "]}\n");
	if (c->out.oom) {
		/* Part of the reply may be gone already: end the connection. */
		c->streaming = 0;
		daemon_buf_error(&c->out, MR_EX_SOFTWARE, "out of memory");
		c->close_after = 1;
	}
}

static int check_queue(struct daemon_request *q, struct daemon_buf *reply)
{
	uint64_t max;

	if (q->argc > 1 && mr_parse_u64(q->argv[1], &max) < 0) {
		daemon_buf_error(reply, MR_EX_USAGE, "QUEUE takes an optional count");
		return -1;
	}
	return 0;
}

static void verb_queue(struct req *r)
{
	struct queue_user_info info;
	struct eta_ctx ctx;
	uint64_t max = 0;
	char self[MR_USER_NAME_MAX + 1];

	if (r->argc > 1)
		(void)mr_parse_u64(r->argv[1], &max); /* checked by check_queue */
	if (daemon_limits_out_pending(r->d) > DAEMON_OUT_PENDING_MAX) {
		daemon_buf_error(&r->c->out, MR_EX_TEMPFAIL,
				   "too many replies waiting to be read; try again later");
		return;
	}
	eta_ctx(r->d, &ctx);
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
			daemon_buf_error(&r->c->out, MR_EX_SOFTWARE, "out of memory");
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
static int check_list(struct daemon_request *q, struct daemon_buf *reply)
{
	uint64_t cursor;

	if (q->argc < 2 || q->argc > 3 ||
	    (q->argc == 3 && mr_parse_u64(q->argv[2], &cursor) < 0)) {
		daemon_buf_error(reply, MR_EX_USAGE, "LIST takes a state and an optional cursor");
		return -1;
	}
	if (strcmp(q->argv[1], "any") != 0 && queue_state_parse(q->argv[1]) < 0) {
		daemon_buf_error(reply, MR_EX_USAGE, "LIST: no such state");
		return -1;
	}
	return 0;
}

static void verb_list(struct req *r)
{
	struct daemon_buf *b = &r->c->out;
	struct list_walk w;
	struct eta_ctx ctx;
	uint64_t cursor = 0;
	int state, more;

	/* checked by check_list */
	if (r->argc == 3)
		(void)mr_parse_u64(r->argv[2], &cursor);
	state = strcmp(r->argv[1], "any") == 0 ? -1 : queue_state_parse(r->argv[1]);
	if (daemon_limits_out_pending(r->d) > DAEMON_OUT_PENDING_MAX) {
		daemon_buf_error(b, MR_EX_TEMPFAIL,
				   "too many replies waiting to be read; try again later");
		return;
	}
	eta_ctx(r->d, &ctx);
	daemon_metrics_ctx_plan(r->d, &ctx);
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":true,\"state\":\"%s\",\"users\":[", r->argv[1]);
	w.d = r->d;
	w.b = b;
	w.ctx = &ctx;
	w.n = 0;
	more = queue_foreach_in_state(r->d->q, state, &cursor, LIST_PAGE, list_walk_one, &w);
	daemon_metrics_ctx_done(&ctx);
	daemon_buf_printf(b, "],\"next\":");
	if (more > 0)
		daemon_buf_printf(b, "%llu}\n", (unsigned long long)cursor);
	else
		daemon_buf_printf(b, "null}\n");
	if (more < 0 || b->oom)
		daemon_buf_error(b, MR_EX_SOFTWARE, "out of memory");
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
	eta_ctx(d, &ctx);
	daemon_workers_held(d, &paused, &held, held_reason, sizeof(held_reason));
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

static int check_enqueue(struct daemon_request *q, struct daemon_buf *reply)
{
	int i = q->argc > 1 && strcmp(q->argv[1], "--priority") == 0 ? 2 : 1;

	if (i >= q->argc) {
		daemon_buf_error(reply, MR_EX_USAGE, "ENQUEUE needs user names");
		return -1;
	}
	return 0;
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
	eta_ctx(r->d, &ctx);
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
			daemon_buf_error(b, mr_exit_code_for_errno(err.errnum), err.msg);
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

/* ACTIVATE USER: a user in attention goes active with its work copy as it
 * is; checked here, done on a task thread (task_activate). */
static void verb_activate(struct req *r)
{
	struct queue_user_info info;

	if (queue_lookup(r->d->q, r->argv[1], &info) != 0) {
		daemon_buf_error(&r->c->out, MR_EX_NOUSER, "not an affected user");
		return;
	}
	if (info.state == QUEUE_ACTIVE) {
		reply_ok(&r->c->out, "\"state\":\"active\"");
		return;
	}
	if (info.state != QUEUE_ATTENTION) {
		daemon_buf_error(&r->c->out, MR_EX_DATAERR, "the user is not in attention");
		return;
	}
	to_task(r);
}

static char *task_activate(struct daemon *d, void *arg, int cancelled)
{
	struct verb_job *job = arg;
	struct queue_user_info info;
	struct mr_error err;
	char *reply = NULL;

	if (cancelled)
		goto out;
	mr_error_clear(&err);
	if (queue_lookup(d->q, job->user, &info) != 0 || info.state != QUEUE_ATTENTION) {
		reply = error_reply(MR_EX_DATAERR, "the user is not in attention");
		goto out;
	}
	if (engine_activate_as_is(d->engine, job->user, &info.counters.held_mail, &err) < 0) {
		mr_log("activate %s failed: %s", job->user, err.msg);
		reply = error_reply(mr_exit_code_for_errno(err.errnum), err.msg);
		goto out;
	}
	if (queue_set_state(d->q, job->user, QUEUE_ACTIVE, "activated by an operator as it was",
			    &info.counters, mr_now(), &err) < 0) {
		mr_log("activate %s: %s", job->user, err.msg);
		reply = error_reply(mr_exit_code_for_errno(err.errnum), err.msg);
		goto out;
	}
	mr_log("%s: activated by an operator as it was", job->user);
	daemon_run_on_active(d, job->user);
	reply = user_reply(d, job->user, NULL);
out:
	free(job);
	return reply;
}

/* RETRY USER: a user in attention (or waiting out a failed run's
 * back-off) goes back in line; checked here, done on a task thread
 * (task_retry). */
static void verb_retry(struct req *r)
{
	struct queue_user_info info;

	if (queue_lookup(r->d->q, r->argv[1], &info) != 0) {
		daemon_buf_error(&r->c->out, MR_EX_NOUSER, "not an affected user");
		return;
	}
	if (info.state != QUEUE_ATTENTION && !(info.retry_at > 0)) {
		daemon_buf_error(&r->c->out, MR_EX_DATAERR, "the user is not in attention");
		return;
	}
	to_task(r);
}

static char *task_retry(struct daemon *d, void *arg, int cancelled)
{
	struct verb_job *job = arg;
	struct mr_error err;
	char *reply = NULL;
	int rc;

	if (cancelled)
		goto out;
	mr_error_clear(&err);
	rc = queue_retry(d->q, job->user, mr_now(), &err);
	if (rc < 0) {
		mr_log("retry %s failed: %s", job->user, err.msg);
		reply = error_reply(mr_exit_code_for_errno(err.errnum), err.msg);
	} else if (rc == 1) {
		reply = error_reply(MR_EX_DATAERR, "the user is not in attention");
	} else {
		mr_log("%s: back in the queue (retry)", job->user);
		daemon_workers_kick(d);
		reply = user_reply(d, job->user, NULL);
	}
out:
	free(job);
	return reply;
}

/* PAUSE and RESUME: journaled first, so a pause that was answered survives
 * a crash; then the workers follow. */
static void pause_or_resume(struct req *r, int pause)
{
	struct mr_error err;

	if (queue_set_paused(r->d->q, pause, &err) < 0) {
		mr_log("%s: %s", pause ? "pause" : "resume", err.msg);
		daemon_buf_error(&r->c->out, MR_EX_IOERR, err.msg);
		return;
	}
	daemon_workers_pause(r->d, pause);
	mr_log("%s by uid %ld", pause ? "paused" : "resumed", (long)r->c->link.uid);
	reply_ok(&r->c->out, pause ? "\"paused\":true" : "\"paused\":false");
}

static void verb_pause(struct req *r)
{
	pause_or_resume(r, 1);
}

static void verb_resume(struct req *r)
{
	pause_or_resume(r, 0);
}

static void verb_ping(struct req *r)
{
	reply_ok(&r->c->out, "\"pong\":true");
}

static void verb_shutdown(struct req *r)
{
	mr_log("shutdown requested by uid %ld", (long)r->c->link.uid);
	reply_ok(&r->c->out, "\"stopping\":true");
	r->c->close_after = 1;
	/* The loop reads it after the events at hand (and sends this reply). */
	r->d->loop_stop = 1;
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

/* DELIVER USER LENGTH [ID]: the shape of the line. A refusal after the
 * user name closes the connection: the body may follow the line and must
 * not be read as requests. */
static int check_deliver(struct daemon_request *q, struct daemon_buf *reply)
{
	uint64_t len;

	if (need_user(q, 1, reply) < 0)
		return -1;
	if (q->argc < 3 || q->argc > 4 || mr_parse_u64(q->argv[2], &len) < 0 ||
	    (q->argc == 4 && !delivery_id_valid(q->argv[3]))) {
		daemon_buf_error(reply, MR_EX_USAGE, "usage: DELIVER USER LENGTH [ID]");
		q->close_after = 1;
		return -1;
	}
	if (len > DAEMON_DELIVER_MAX) {
		daemon_buf_error(reply, MR_EX_DATAERR, "message larger than 64 MiB");
		q->close_after = 1;
		return -1;
	}
	return 0;
}

/* DELIVER: takes the body in (server.c reads it into c->body), then
 * daemon_proto_deliver_body() hands it to task_deliver. */
static void verb_deliver(struct req *r)
{
	struct queue_user_info info;
	uint64_t len = 0, budget;

	(void)mr_parse_u64(r->argv[2], &len); /* checked by check_deliver */
	if (queue_lookup(r->d->q, r->argv[1], &info) != 0) {
		daemon_buf_error(&r->c->out, MR_EX_NOUSER, "not an affected user");
		return;
	}
	budget = r->d->set->deliver_memory ? r->d->set->deliver_memory : DAEMON_DELIVER_MEMORY;
	if (atomic_load_explicit(&r->d->body_bytes, memory_order_relaxed) + len > budget) {
		daemon_buf_error(&r->c->out, MR_EX_TEMPFAIL, "too many deliveries at once");
		return;
	}
	/* Fair shares: one peer uid may hold at most half of the memory, so
	 * a client that announces big messages and trickles them cannot stop
	 * the delivery agent. */
	if (r->c->link.uid != 0 && r->c->link.uid != geteuid() &&
	    daemon_limits_peer_charge(r->d, r->c) + len > budget / 2) {
		daemon_buf_error(&r->c->out, MR_EX_TEMPFAIL,
				 "too many deliveries at once from this user");
		return;
	}
	r->c->body = malloc((size_t)len + 1);
	if (r->c->body == NULL) {
		daemon_buf_error(&r->c->out, MR_EX_TEMPFAIL, "out of memory");
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

/* Stores a DELIVER body (engine_deliver_id fsyncs it) on a task thread;
 * the body's bytes leave the daemon-wide count whether it ran or not. */
static char *task_deliver(struct daemon *d, void *arg, int cancelled)
{
	/* [held][repeat]: a repeat was stored by an earlier attempt. */
	static const char *const extra[2][2] = {
		{ "\"held\":false", "\"held\":false,\"repeat\":true" },
		{ "\"held\":true", "\"held\":true,\"repeat\":true" },
	};
	struct verb_job *job = arg;
	struct mr_error err;
	int held = 0, repeat = 0;
	char *reply = NULL;

	if (cancelled)
		goto out;
	mr_error_clear(&err);
	if (engine_deliver_id(d->engine, job->user, job->id[0] ? job->id : NULL, job->body,
			      job->len, &held, &repeat, &err) < 0) {
		mr_log("deliver to %s failed: %s", job->user, err.msg);
		reply = error_reply(MR_EX_TEMPFAIL, err.msg);
	} else {
		if (repeat)
			mr_log("%s: delivery %s was stored before; not stored again", job->user,
			       job->id);
		reply = user_reply(d, job->user, extra[held != 0][repeat != 0]);
	}
out:
	atomic_fetch_sub_explicit(&d->body_bytes, job->len, memory_order_relaxed);
	free(job->body);
	free(job);
	return reply;
}

/* ---- ACTIVATIONS: the stream followers read ------------------------------ */

/* Users a reply gives at most (and when no MAX is asked). */
#define ACTIVATIONS_MAX 1000

/* EPOCH is 1 to 16 hex digits ("0": none yet). */
static int parse_epoch(const char *s, uint64_t *e)
{
	char *end;

	if (s[0] == '\0' || strlen(s) > 16 || strspn(s, "0123456789abcdefABCDEF") != strlen(s))
		return -1;
	*e = strtoull(s, &end, 16);
	return 0;
}

/* ACTIVATIONS EPOCH NEXT [MAX] */
static int check_activations(struct daemon_request *q, struct daemon_buf *reply)
{
	uint64_t v;

	if (q->argc < 3 || q->argc > 4 || parse_epoch(q->argv[1], &v) < 0 ||
	    mr_parse_u64(q->argv[2], &v) < 0 || (q->argc == 4 && mr_parse_u64(q->argv[3], &v) < 0)) {
		daemon_buf_error(reply, MR_EX_USAGE, "usage: ACTIVATIONS EPOCH NEXT [MAX]");
		return -1;
	}
	return 0;
}

struct activations_walk {
	struct daemon_buf *b;
	uint64_t n;
};

static int activations_one(void *arg, const char *name)
{
	struct activations_walk *w = arg;

	if (w->n++)
		daemon_buf_printf(w->b, ",");
	daemon_buf_json_str(w->b, name);
	return w->b->oom;
}

/* The users who came to log in and receive mail, from NEXT on, in the
 * order they did (queue_activations); another EPOCH reads from 0. */
static void verb_activations(struct req *r)
{
	struct queue_activations a;
	struct activations_walk w;
	struct daemon_buf users = { 0 };
	uint64_t epoch = 0, next = 0, max = ACTIVATIONS_MAX;

	(void)parse_epoch(r->argv[1], &epoch); /* checked by check_activations */
	(void)mr_parse_u64(r->argv[2], &next);
	if (r->argc == 4)
		(void)mr_parse_u64(r->argv[3], &max);
	if (max == 0 || max > ACTIVATIONS_MAX)
		max = ACTIVATIONS_MAX;
	w.b = &users;
	w.n = 0;
	queue_activations(r->d->q, epoch, next, (size_t)max, activations_one, &w, &a);
	if (users.oom) {
		daemon_buf_free(&users);
		daemon_buf_error(&r->c->out, MR_EX_SOFTWARE, "out of memory");
		return;
	}
	r->c->out.len = 0;
	daemon_buf_printf(&r->c->out,
			  "{\"ok\":true,\"epoch\":\"%016llx\",\"first\":%llu,\"next\":%llu,"
			  "\"total\":%llu,\"users\":[%s]}\n",
			  (unsigned long long)a.epoch, (unsigned long long)a.first,
			  (unsigned long long)(a.first + w.n), (unsigned long long)a.total,
			  users.p ? users.p : "");
	daemon_buf_free(&users);
}

/* ---- the table of verbs ------------------------------------------------ */

/* One verb. rights: the PEER_* the caller needs beyond what everyone may
 * (0: anyone; SHOW and QUEUE then show others than the caller to operators
 * only, checked in their handlers). network: peers that came over a
 * --listen may call it (1), or it is refused to them with 77 "only on the
 * Unix socket" (0). Network peers only ask about users and follow the
 * activations: PING, LOGIN, SHOW, and ACTIVATIONS (the stream the
 * agents on proxies and MX hosts follow, front/agent.c); every verb that
 * changes the queue, shows the whole of it or delivers stays local.
 * check: the arguments' shape, before
 * anything is looked up (NULL: none). run: the handler, on the event loop.
 * task: the part a task thread runs (async.c), NULL for verbs answered on
 * the loop. body: raw bytes follow the line, so a refusal closes the
 * connection. */
struct daemon_verb {
	const char *name;
	unsigned rights;
	int network;
	int (*check)(struct daemon_request *q, struct daemon_buf *reply);
	void (*run)(struct req *r);
	daemon_task_fn task;
	int body;
};

static const struct daemon_verb verbs[] = {
	/* name       rights         network check          run            task */
	{ "LOGIN",    0,             1,      check_user,    verb_login,    NULL,          0 },
	{ "SHOW",     0,             1,      check_user,    verb_show,     NULL,          0 },
	{ "STATUS",   0,             0,      NULL,          verb_status,   NULL,          0 },
	{ "QUEUE",    0,             0,      check_queue,   verb_queue,    NULL,          0 },
	{ "PING",     0,             1,      NULL,          verb_ping,     NULL,          0 },
	{ "ACTIVATIONS", 0,          1,   check_activations, verb_activations, NULL,      0 },
	{ "DELIVER",  PEER_DELIVER,  0,      check_deliver, verb_deliver,  task_deliver,  1 },
	{ "LIST",     PEER_OPERATOR, 0,      check_list,    verb_list,     NULL,          0 },
	{ "ENQUEUE",  PEER_OPERATOR, 0,      check_enqueue, verb_enqueue,  NULL,          0 },
	{ "BUMP",     PEER_OPERATOR, 0,      check_user,    verb_bump,     NULL,          0 },
	{ "RETRY",    PEER_OPERATOR, 0,      check_user,    verb_retry,    task_retry,    0 },
	{ "ACTIVATE", PEER_OPERATOR, 0,      check_user,    verb_activate, task_activate, 0 },
	{ "PAUSE",    PEER_OPERATOR, 0,      NULL,          verb_pause,    NULL,          0 },
	{ "RESUME",   PEER_OPERATOR, 0,      NULL,          verb_resume,   NULL,          0 },
	{ "SHUTDOWN", PEER_OPERATOR, 0,      NULL,          verb_shutdown, NULL,          0 },
};

/* See proto.h. */
const struct daemon_verb *daemon_verb_at(size_t i)
{
	return i < sizeof(verbs) / sizeof(verbs[0]) ? &verbs[i] : NULL;
}

/* See proto.h (case does not matter). */
const struct daemon_verb *daemon_verb_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcasecmp(name, verbs[i].name) == 0)
			return &verbs[i];
	return NULL;
}

const char *daemon_verb_name(const struct daemon_verb *v)
{
	return v->name;
}

unsigned daemon_verb_rights(const struct daemon_verb *v)
{
	return v->rights;
}

int daemon_verb_network(const struct daemon_verb *v)
{
	return v->network;
}

int daemon_verb_on_task(const struct daemon_verb *v)
{
	return v->task != NULL;
}

/* Splits line into words and finds its verb (see proto.h). */
int daemon_proto_parse(char *line, size_t len, struct daemon_request *q,
		       struct daemon_buf *reply)
{
	char *save = NULL, *tok;

	memset(q, 0, sizeof(*q));
	if (len >= DAEMON_LINE_MAX) {
		daemon_buf_error(reply, MR_EX_USAGE, "request line longer than 4096 bytes");
		q->close_after = 1;
		return -1;
	}
	for (tok = strtok_r(line, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (q->argc == DAEMON_ARGS_MAX) {
			daemon_buf_error(reply, MR_EX_USAGE, "too many arguments");
			return -1;
		}
		q->argv[q->argc++] = tok;
	}
	if (q->argc == 0) {
		daemon_buf_error(reply, MR_EX_USAGE, "empty request");
		return -1;
	}
	q->verb = daemon_verb_find(q->argv[0]);
	if (q->verb == NULL) {
		daemon_buf_error(reply, MR_EX_USAGE, "unknown request");
		return -1;
	}
	return 0;
}

/* The caller's rights, then the arguments (see proto.h). */
int daemon_proto_check(struct daemon_request *q, unsigned rights, struct daemon_buf *reply)
{
	const struct daemon_verb *v = q->verb;
	char msg[128];

	if ((rights & PEER_NETWORK) && !v->network) {
		snprintf(msg, sizeof(msg), DENY_NETWORK, v->name);
		daemon_buf_error(reply, MR_EX_NOPERM, msg);
		q->close_after = v->body;
		return -1;
	}
	if ((v->rights & rights) != v->rights) {
		daemon_buf_error(reply, MR_EX_NOPERM,
				 v->rights & PEER_DELIVER ? DENY_DELIVER : DENY_OPERATOR);
		q->close_after = v->body;
		return -1;
	}
	return v->check != NULL ? v->check(q, reply) : 0;
}

static void to_task(struct req *r)
{
	struct verb_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		daemon_buf_error(&r->c->out, MR_EX_SOFTWARE, "out of memory");
		return;
	}
	snprintf(job->user, sizeof(job->user), "%s", r->argv[1]);
	if (daemon_async_submit(r->d, r->slot, r->c->gen, r->verb->task, job) < 0) {
		free(job);
		daemon_buf_error(&r->c->out, MR_EX_SOFTWARE, "out of memory");
		return;
	}
	r->c->waiting = 1;
}

/* The body of a DELIVER has arrived: a task thread stores it. */
void daemon_proto_deliver_body(struct daemon *d, struct conn *c, uint32_t slot)
{
	struct verb_job *job = calloc(1, sizeof(*job));

	if (job != NULL) {
		snprintf(job->user, sizeof(job->user), "%s", c->body_user);
		snprintf(job->id, sizeof(job->id), "%s", c->body_id);
		job->body = c->body;
		job->len = c->body_len;
		if (daemon_async_submit(d, slot, c->gen, task_deliver, job) == 0) {
			c->body = NULL;
			c->waiting = 1;
			return;
		}
		free(job);
	}
	atomic_fetch_sub_explicit(&d->body_bytes, c->body_len, memory_order_relaxed);
	free(c->body);
	c->body = NULL;
	daemon_buf_error(&c->out, MR_EX_TEMPFAIL, "out of memory");
}

/* Handles one request line (see daemon_private.h). */
void daemon_proto_request(struct daemon *d, struct conn *c, uint32_t slot, char *line,
			  size_t len)
{
	struct daemon_request q;
	struct req r;
	unsigned rights = 0;

	if (daemon_proto_parse(line, len, &q, &c->out) == 0) {
		/* The group database only when the verb asks for rights. */
		if (q.verb->rights != 0 || c->link.net)
			rights = daemon_peer_rights(d, c);
		if (daemon_proto_check(&q, rights, &c->out) == 0) {
			r.d = d;
			r.c = c;
			r.slot = slot;
			r.verb = q.verb;
			r.argc = q.argc;
			r.argv = q.argv;
			q.verb->run(&r);
		}
	}
	if (q.close_after)
		c->close_after = 1;
}
