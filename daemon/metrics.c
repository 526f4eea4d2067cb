/*
 * metrics.c: what the daemon measures over its run (users finished, bytes
 * written, time per user) and the time estimates built on it.
 *
 * Estimates: avg = mean seconds of the runs finished so far (60 s until
 * the first one ends). A queued user at position p finishes in about
 * (p / jobs + 1) * avg: the p requests ahead of it share the workers, then
 * its own run takes avg. A waiting user is counted behind every pending
 * request and every other waiting user (an upper bound: the background
 * order is by size). A running user's estimate comes from its progress.
 */
#include "daemon/daemon_private.h"
#include "mail/mail.h"

#include <string.h>

#define DEFAULT_SECONDS_PER_USER 60.0

/* Starts the clock of the run. */
void daemon_metrics_init(struct daemon *d)
{
	memset(&d->metrics, 0, sizeof(d->metrics));
	d->metrics.start_mono = mr_monotonic();
}

/* Records a run that ended active (active = 1) or in attention. */
void daemon_metrics_finished(struct daemon *d, double seconds, uint64_t bytes, int active)
{
	pthread_mutex_lock(&d->metrics_mu);
	d->metrics.users_done++;
	d->metrics.users_active += active ? 1 : 0;
	d->metrics.run_seconds += seconds > 0 ? seconds : 0;
	d->metrics.bytes_total += bytes;
	pthread_mutex_unlock(&d->metrics_mu);
}

/* Mean seconds per finished user (DEFAULT_SECONDS_PER_USER before any). */
double daemon_metrics_avg(struct daemon *d)
{
	double avg;

	pthread_mutex_lock(&d->metrics_mu);
	avg = d->metrics.users_done ? d->metrics.run_seconds / (double)d->metrics.users_done
				    : DEFAULT_SECONDS_PER_USER;
	pthread_mutex_unlock(&d->metrics_mu);
	return avg > 0.001 ? avg : 0.001;
}

/* Fills ctx (takes the queue's lock). */
void daemon_metrics_ctx(struct daemon *d, struct eta_ctx *ctx)
{
	queue_counts(d->q, ctx->counts);
	ctx->pending = queue_pending(d->q);
	ctx->avg = daemon_metrics_avg(d);
	ctx->jobs = d->nworkers > 0 ? d->nworkers : 1;
	ctx->background = d->set->background;
	ctx->may_lock_workers = 1;
}

/* See the top of this file. */
double daemon_metrics_eta(struct daemon *d, const struct eta_ctx *ctx,
			  const struct queue_user_info *info)
{
	double left, ahead;

	switch (info->state) {
	case QUEUE_ACTIVE:
	case QUEUE_UNKNOWN:
		return 0;
	case QUEUE_ATTENTION:
		return -1;
	case QUEUE_RESTORING:
	case QUEUE_SYNCING:
		if (ctx->may_lock_workers && daemon_workers_left(d, info->name, ctx->avg, &left))
			return left;
		return ctx->avg / 2;
	case QUEUE_QUEUED:
		ahead = info->position >= 0 ? (double)info->position : (double)ctx->pending;
		return (ahead / ctx->jobs + 1) * ctx->avg;
	case QUEUE_WAITING:
	default:
		ahead = (double)ctx->pending + (double)ctx->counts[QUEUE_WAITING];
		if (ahead > 0)
			ahead -= 1;
		return (ahead / ctx->jobs + 1) * ctx->avg;
	}
}

/* Seconds until everything the daemon will run is done. */
double daemon_metrics_eta_total(struct daemon *d, const struct eta_ctx *ctx)
{
	double n = (double)ctx->pending, running;

	(void)d;
	if (ctx->background)
		n += (double)ctx->counts[QUEUE_WAITING];
	running = (double)(ctx->counts[QUEUE_RESTORING] + ctx->counts[QUEUE_SYNCING]);
	if (n + running == 0)
		return 0;
	return (n / ctx->jobs) * ctx->avg + (running > 0 ? ctx->avg / 2 : 0);
}

/* Held messages of every user; the folder walk is done at most once a
 * second. */
uint64_t daemon_metrics_held(struct daemon *d)
{
	struct mr_error err;
	uint64_t n = 0;
	double now = mr_monotonic();

	pthread_mutex_lock(&d->metrics_mu);
	if (d->metrics.held_cache_at > 0 && now - d->metrics.held_cache_at < 1.0) {
		n = d->metrics.held_cache;
		pthread_mutex_unlock(&d->metrics_mu);
		return n;
	}
	pthread_mutex_unlock(&d->metrics_mu);
	if (d->mail == NULL || mail_held_total(d->mail, &n, &err) < 0)
		n = 0;
	pthread_mutex_lock(&d->metrics_mu);
	d->metrics.held_cache = n;
	d->metrics.held_cache_at = now;
	pthread_mutex_unlock(&d->metrics_mu);
	return n;
}

/* Writes the members of the "throughput" object. */
void daemon_metrics_json(struct daemon *d, struct daemon_buf *b)
{
	struct metrics m;
	double elapsed;

	pthread_mutex_lock(&d->metrics_mu);
	m = d->metrics;
	pthread_mutex_unlock(&d->metrics_mu);
	elapsed = mr_monotonic() - m.start_mono;
	if (elapsed < 0.001)
		elapsed = 0.001;
	daemon_buf_printf(b,
			  "\"users_per_minute\":%.3f,\"bytes_per_second\":%.0f,"
			  "\"users_done\":%llu,\"users_active\":%llu,\"bytes_total\":%llu,"
			  "\"seconds_per_user\":%.3f,\"measured\":%s,\"uptime\":%.3f",
			  (double)m.users_done * 60.0 / elapsed, (double)m.bytes_total / elapsed,
			  (unsigned long long)m.users_done, (unsigned long long)m.users_active,
			  (unsigned long long)m.bytes_total,
			  m.users_done ? m.run_seconds / (double)m.users_done
				       : DEFAULT_SECONDS_PER_USER,
			  m.users_done ? "true" : "false", elapsed);
}
