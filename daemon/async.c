/*
 * async.c: work the event loop must not wait for.
 *
 * The committer thread makes durable replies cheap: the loop does the
 * queue operation at once and parks the reply with its commit ticket; the
 * committer takes every parked ticket, waits once for the highest of them
 * (queue_commit_wait: one journal write and fsync for the whole batch, so a
 * login storm costs one fsync per batch, not per login), then releases all
 * their replies together.
 *
 * Task threads run the requests that do real I/O: DELIVER (engine_deliver
 * fsyncs the message), ACTIVATE (makes a whole work copy durable) and RETRY.
 *
 * Both hand finished replies back through a list and the loop's eventfd.
 */
#include "daemon/daemon_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *error_reply(int code, const char *msg)
{
	struct daemon_buf b = { 0 };

	daemon_proto_error(&b, code, msg);
	return b.p;
}

/* Queues a finished reply for the loop and wakes it. reply may be NULL
 * (the parked reply is sent as it is). */
void daemon_async_complete(struct daemon *d, uint32_t slot, uint32_t gen, char *reply,
			   int close_after)
{
	struct completion *c = calloc(1, sizeof(*c));
	uint64_t one = 1;

	if (c == NULL) {
		/* The client times out; nothing else can be done here. */
		free(reply);
		return;
	}
	c->slot = slot;
	c->gen = gen;
	c->reply = reply;
	c->close_after = close_after;
	pthread_mutex_lock(&d->async_mu);
	if (d->done_tail)
		d->done_tail->next = c;
	else
		d->done_head = c;
	d->done_tail = c;
	pthread_mutex_unlock(&d->async_mu);
	if (write(d->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		mr_log("write(eventfd) failed: %s", strerror(errno));
}

/* Returns every completion queued so far (oldest first); the caller frees. */
struct completion *daemon_async_take(struct daemon *d)
{
	struct completion *list;

	pthread_mutex_lock(&d->async_mu);
	list = d->done_head;
	d->done_head = d->done_tail = NULL;
	pthread_mutex_unlock(&d->async_mu);
	return list;
}

/* Parks the reply of (slot, gen) until ticket is durable. */
void daemon_async_commit(struct daemon *d, uint32_t slot, uint32_t gen, queue_ticket t)
{
	struct commit_item *it = calloc(1, sizeof(*it));

	if (it == NULL) {
		daemon_async_complete(d, slot, gen, error_reply(MR_EX_SOFTWARE, "out of memory"), 1);
		return;
	}
	it->slot = slot;
	it->gen = gen;
	it->ticket = t;
	pthread_mutex_lock(&d->async_mu);
	if (d->commit_tail)
		d->commit_tail->next = it;
	else
		d->commit_head = it;
	d->commit_tail = it;
	pthread_cond_signal(&d->commit_cv);
	pthread_mutex_unlock(&d->async_mu);
}

static void *committer_main(void *arg)
{
	struct daemon *d = arg;
	struct commit_item *list, *next;
	struct mr_error err;
	queue_ticket max;
	int rc;

	for (;;) {
		pthread_mutex_lock(&d->async_mu);
		while (d->commit_head == NULL && !d->async_stop)
			pthread_cond_wait(&d->commit_cv, &d->async_mu);
		list = d->commit_head;
		d->commit_head = d->commit_tail = NULL;
		pthread_mutex_unlock(&d->async_mu);
		if (list == NULL)
			break;
		max = 0;
		for (next = list; next != NULL; next = next->next)
			if (next->ticket > max)
				max = next->ticket;
		mr_error_clear(&err);
		rc = queue_commit_wait(d->q, max, &err);
		if (rc < 0)
			mr_log("journal commit failed: %s", err.msg);
		for (; list != NULL; list = next) {
			next = list->next;
			daemon_async_complete(d, list->slot, list->gen,
					      rc < 0 ? error_reply(MR_EX_IOERR, err.msg) : NULL,
					      rc < 0);
			free(list);
		}
	}
	return NULL;
}

/* Hands t to a task thread (takes ownership). */
void daemon_async_task(struct daemon *d, struct task *t)
{
	pthread_mutex_lock(&d->async_mu);
	if (d->task_tail)
		d->task_tail->next = t;
	else
		d->task_head = t;
	d->task_tail = t;
	pthread_cond_signal(&d->task_cv);
	pthread_mutex_unlock(&d->async_mu);
}

static char *user_reply(struct daemon *d, const char *user, const char *extra)
{
	struct queue_user_info info;
	struct daemon_buf b = { 0 };
	struct eta_ctx ctx;

	if (queue_lookup(d->q, user, &info) != 0)
		return error_reply(MR_EX_NOUSER, "not an affected user");
	daemon_metrics_ctx(d, &ctx);
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

static char *run_deliver(struct daemon *d, struct task *t)
{
	/* [held][repeat]: a repeat was stored by an earlier attempt. */
	static const char *const extra[2][2] = {
		{ "\"held\":false", "\"held\":false,\"repeat\":true" },
		{ "\"held\":true", "\"held\":true,\"repeat\":true" },
	};
	struct mr_error err;
	int held = 0, repeat = 0;
	char *reply;

	mr_error_clear(&err);
	if (engine_deliver_id(d->engine, t->user, t->id[0] ? t->id : NULL, t->body, t->len,
			      &held, &repeat, &err) < 0) {
		mr_log("deliver to %s failed: %s", t->user, err.msg);
		reply = error_reply(MR_EX_TEMPFAIL, err.msg);
	} else {
		if (repeat)
			mr_log("%s: delivery %s was stored before; not stored again", t->user, t->id);
		reply = user_reply(d, t->user, extra[held != 0][repeat != 0]);
	}
	atomic_fetch_sub_explicit(&d->body_bytes, t->len, memory_order_relaxed);
	return reply;
}

static char *run_activate(struct daemon *d, struct task *t)
{
	struct queue_user_info info;
	struct mr_error err;

	mr_error_clear(&err);
	if (queue_lookup(d->q, t->user, &info) != 0 || info.state != QUEUE_ATTENTION)
		return error_reply(MR_EX_DATAERR, "the user is not in attention");
	if (engine_activate_as_is(d->engine, t->user, &info.counters.held_mail, &err) < 0) {
		mr_log("activate %s failed: %s", t->user, err.msg);
		return error_reply(mr_exit_code_for_errno(err.errnum), err.msg);
	}
	if (queue_set_state(d->q, t->user, QUEUE_ACTIVE, "activated by an operator as it was",
			    &info.counters, mr_now(), &err) < 0) {
		mr_log("activate %s: %s", t->user, err.msg);
		return error_reply(mr_exit_code_for_errno(err.errnum), err.msg);
	}
	mr_log("%s: activated by an operator as it was", t->user);
	daemon_run_on_active(d, t->user);
	return user_reply(d, t->user, NULL);
}

static char *run_retry(struct daemon *d, struct task *t)
{
	struct mr_error err;
	int rc;

	mr_error_clear(&err);
	rc = queue_retry(d->q, t->user, mr_now(), &err);
	if (rc < 0) {
		mr_log("retry %s failed: %s", t->user, err.msg);
		return error_reply(mr_exit_code_for_errno(err.errnum), err.msg);
	}
	if (rc == 1)
		return error_reply(MR_EX_DATAERR, "the user is not in attention");
	mr_log("%s: back in the queue (retry)", t->user);
	daemon_workers_kick(d);
	return user_reply(d, t->user, NULL);
}

static void *task_main(void *arg)
{
	struct daemon *d = arg;
	struct task *t;
	char *reply = NULL;

	for (;;) {
		pthread_mutex_lock(&d->async_mu);
		while (d->task_head == NULL && !d->async_stop)
			pthread_cond_wait(&d->task_cv, &d->async_mu);
		t = d->task_head;
		if (t != NULL) {
			d->task_head = t->next;
			if (d->task_head == NULL)
				d->task_tail = NULL;
		}
		pthread_mutex_unlock(&d->async_mu);
		if (t == NULL)
			break;
		switch (t->kind) {
		case TASK_DELIVER: reply = run_deliver(d, t); break;
		case TASK_ACTIVATE: reply = run_activate(d, t); break;
		case TASK_RETRY: reply = run_retry(d, t); break;
		}
		daemon_async_complete(d, t->slot, t->gen, reply, 0);
		free(t->body);
		free(t);
	}
	return NULL;
}

/* Starts the committer and the task threads. 0 or -1 (logged). */
int daemon_async_start(struct daemon *d)
{
	int i, e;

	e = pthread_create(&d->committer, NULL, committer_main, d);
	if (e != 0) {
		mr_log("pthread_create failed: %s", strerror(e));
		return -1;
	}
	d->async_started = 1;
	for (i = 0; i < DAEMON_TASK_THREADS; i++) {
		e = pthread_create(&d->task_threads[i], NULL, task_main, d);
		if (e != 0) {
			mr_log("pthread_create failed: %s", strerror(e));
			return -1;
		}
		d->async_started = 2 + i;
	}
	return 0;
}

/* Lets the threads finish what they were given, then joins them. */
void daemon_async_stop(struct daemon *d)
{
	struct completion *c, *next;
	int i;

	if (d->async_started == 0)
		return;
	pthread_mutex_lock(&d->async_mu);
	d->async_stop = 1;
	pthread_cond_broadcast(&d->commit_cv);
	pthread_cond_broadcast(&d->task_cv);
	pthread_mutex_unlock(&d->async_mu);
	pthread_join(d->committer, NULL);
	for (i = 0; i + 2 <= d->async_started; i++)
		pthread_join(d->task_threads[i], NULL);
	d->async_started = 0;
	for (c = daemon_async_take(d); c != NULL; c = next) {
		next = c->next;
		free(c->reply);
		free(c);
	}
}
