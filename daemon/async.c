/*
 * async.c: work the event loop must not wait for. It knows no verb: it
 * runs what it is given and hands replies back to the loop.
 *
 * The committer thread makes durable replies cheap: the loop does the
 * queue operation at once and parks the reply with its commit ticket; the
 * committer takes every parked ticket, waits once for the highest of them
 * (queue_commit_wait: one journal write and fsync for the whole batch, so a
 * login storm costs one fsync per batch, not per login), then releases all
 * their replies together.
 *
 * The task threads are a plain executor: daemon_async_submit() queues a
 * function and its argument; a task thread runs it and posts the reply it
 * returns as the reply of the connection that asked (proto.c's verb table
 * says which verbs do real I/O there).
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

	daemon_buf_error(&b, code, msg);
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

/* Queues fn(d, arg) for a task thread (see daemon_private.h). */
int daemon_async_submit(struct daemon *d, uint32_t slot, uint32_t gen, daemon_task_fn fn,
			void *arg)
{
	struct daemon_task *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	t->fn = fn;
	t->arg = arg;
	t->slot = slot;
	t->gen = gen;
	pthread_mutex_lock(&d->async_mu);
	if (d->task_tail)
		d->task_tail->next = t;
	else
		d->task_head = t;
	d->task_tail = t;
	pthread_cond_signal(&d->task_cv);
	pthread_mutex_unlock(&d->async_mu);
	return 0;
}

/* Takes the oldest task, NULL when none is queued. */
static struct daemon_task *take_task(struct daemon *d)
{
	struct daemon_task *t = d->task_head;

	if (t != NULL) {
		d->task_head = t->next;
		if (d->task_head == NULL)
			d->task_tail = NULL;
	}
	return t;
}

static void *task_main(void *arg)
{
	struct daemon *d = arg;
	struct daemon_task *t;
	char *reply;

	for (;;) {
		pthread_mutex_lock(&d->async_mu);
		while (d->task_head == NULL && !d->async_stop)
			pthread_cond_wait(&d->task_cv, &d->async_mu);
		t = take_task(d);
		pthread_mutex_unlock(&d->async_mu);
		if (t == NULL)
			break;
		reply = t->fn(d, t->arg, 0);
		daemon_async_complete(d, t->slot, t->gen, reply, 0);
		free(t);
	}
	return NULL;
}

/* See daemon_private.h: for a daemon whose threads never started. */
void daemon_async_drain(struct daemon *d)
{
	struct commit_item *ci, *cn;
	struct completion *c, *next;
	struct daemon_task *t;
	struct mr_error err;

	pthread_mutex_lock(&d->async_mu);
	ci = d->commit_head;
	d->commit_head = d->commit_tail = NULL;
	pthread_mutex_unlock(&d->async_mu);
	for (; ci != NULL; ci = cn) {
		cn = ci->next;
		mr_error_clear(&err);
		if (queue_commit_wait(d->q, ci->ticket, &err) < 0)
			mr_log("journal commit failed: %s", err.msg);
		free(ci);
	}
	for (;;) {
		pthread_mutex_lock(&d->async_mu);
		t = take_task(d);
		pthread_mutex_unlock(&d->async_mu);
		if (t == NULL)
			break;
		free(t->fn(d, t->arg, 1));
		free(t);
	}
	for (c = daemon_async_take(d); c != NULL; c = next) {
		next = c->next;
		free(c->reply);
		free(c);
	}
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
