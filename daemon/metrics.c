/*
 * metrics.c: what the daemon measures over its run (users finished, bytes
 * written, the rates of the time model) and the time estimates built on
 * it.
 *
 * Estimates come from one model (queue/eta.h): each finished run teaches
 * it how long a user of its backup's size takes per phase on one worker,
 * and the rates are kept in the state folder so a restart keeps them. A
 * user's estimate walks the queue in the order the workers will take it
 * (queue_foreach_order: priority lane, enqueue lane, then waiting users
 * smallest first), starting from the seconds the running jobs still need,
 * handing each user ahead to the worker free first; a user of the
 * priority lane takes a worker from a background job (workers.c stops it
 * for them), whose rest comes back before the others; the user's own run
 * ends its walk. A user still in the waiting line is then stretched by
 * the logins yet to come (eta.h): the rate of logins of waiting users so
 * far, times the runs of the users behind it. No estimate (eta_seconds null) while paused (status
 * "paused"), before any run was measured ("estimating"), for a waiting
 * user with the background off and for attention ("none").
 */
#include "daemon/daemon_private.h"
#include "mail/mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

/* Rates are written at most this often while runs finish (and at exit). */
#define RATES_SAVE_INTERVAL 2.0

/* Starts the clock of the run and loads the rates a previous run kept.
 * 0, or -1 (logged: out of memory). */
int daemon_metrics_init(struct daemon *d)
{
	struct mr_error err;
	int r;

	memset(&d->metrics, 0, sizeof(d->metrics));
	d->metrics.start_mono = mr_monotonic();
	d->metrics.trace = getenv("MAILRESTORE_ETA_TRACE") != NULL;
	eta_jumps_init(&d->metrics.jumps, d->metrics.start_mono, 0);
	d->metrics.line_at = -1;
	d->eta = eta_model_new();
	if (d->eta == NULL) {
		mr_log("daemon: out of memory");
		return -1;
	}
	if (d->engine == NULL)
		return 0; /* no state folder (tests of the protocol) */
	mr_error_clear(&err);
	r = eta_model_load(d->eta, engine_state_fd(d->engine), &err);
	if (r < 0)
		mr_log("daemon: %s: estimates start afresh", err.msg);
	else if (r == 1) {
		struct eta_rates rates;

		eta_model_rates(d->eta, ETA_RUN, &rates);
		mr_log("daemon: time estimates go on from %.0f runs measured before", rates.runs);
	}
	return 0;
}

static void save_rates(struct daemon *d)
{
	struct mr_error err;

	if (d->engine == NULL)
		return;
	mr_error_clear(&err);
	if (eta_model_save(d->eta, engine_state_fd(d->engine), &err) < 0)
		mr_log("daemon: keeping the measured rates: %s", err.msg);
}

/* Saves the rates and frees the model. Accepts a daemon that never got to
 * daemon_metrics_init(). */
void daemon_metrics_close(struct daemon *d)
{
	if (d->eta != NULL && d->engine != NULL && d->metrics.rates_dirty)
		save_rates(d);
	eta_model_free(&d->eta);
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

/* The users in the waiting line now, noted for the logins' hazard with
 * `jumped` users who just left it. */
static void note_line(struct daemon *d, unsigned jumped)
{
	uint64_t counts[QUEUE_STATE_COUNT];
	double now = mr_monotonic();

	queue_counts(d->q, counts);
	pthread_mutex_lock(&d->metrics_mu);
	eta_jumps_note(&d->metrics.jumps, now, (double)counts[QUEUE_WAITING], jumped);
	pthread_mutex_unlock(&d->metrics_mu);
}

/* See daemon_private.h. */
void daemon_metrics_jumped(struct daemon *d)
{
	note_line(d, 1);
}

/* See daemon_private.h. */
void daemon_metrics_observe(struct daemon *d, const struct daemon_run_sample *r)
{
	double now = mr_monotonic();
	double run = r->run_seconds > 0 ? r->run_seconds
					 : r->extract_seconds + (r->sync_seconds > 0 ? r->sync_seconds : 0);
	int save;

	if (d->metrics.trace)
		mr_log("eta trace: %s size=%llu bytes=%llu files=%llu estimated=%.3f took=%.3f "
		       "extract=%.3f sync=%.3f durable=%.3f ended=%.4f",
		       r->user ? r->user : "-", (unsigned long long)r->size,
		       (unsigned long long)(r->extract_bytes + r->sync_bytes),
		       (unsigned long long)(r->extract_files + r->sync_files), r->predicted, run,
		       r->extract_seconds, r->sync_seconds, r->durable, r->ended);
	if (r->sync_seconds >= 0) {
		eta_model_observe_at(d->eta, ETA_EXTRACT, r->size, r->extract_bytes,
				     r->extract_files, r->extract_seconds, r->ended);
		eta_model_observe_at(d->eta, ETA_SYNC, r->size, r->sync_bytes, r->sync_files,
				     r->sync_seconds, r->ended);
	}
	eta_model_observe_at(d->eta, ETA_RUN, r->size, r->extract_bytes + r->sync_bytes,
			     r->extract_files + r->sync_files, run, r->ended);
	pthread_mutex_lock(&d->metrics_mu);
	d->metrics.rates_dirty = 1;
	save = now - d->metrics.rates_saved_at >= RATES_SAVE_INTERVAL;
	if (save) {
		d->metrics.rates_saved_at = now;
		d->metrics.rates_dirty = 0;
	}
	pthread_mutex_unlock(&d->metrics_mu);
	if (save)
		save_rates(d);
	note_line(d, 0);
}

/* Seconds a running job still needs: its phase's predicted cost minus the
 * time it has spent in it. While it extracts, the share of its archive
 * read says more the further it got: a big user the model has not seen the
 * like of runs longer than predicted, and taking such a job to be about to
 * end put every user behind it early. A job past its prediction with no
 * progress to tell is taken to be about to end (0): a floor would put
 * every running job's slack in front of every estimate. */
double daemon_metrics_left(struct daemon *d, const struct daemon_workers_job *j)
{
	double c, s, p = j->progress;

	if (j->syncing && j->sync_elapsed >= 0 &&
	    (c = eta_model_cost(d->eta, ETA_SYNC, j->size)) >= 0) {
		c -= j->sync_elapsed;
	} else if ((c = eta_model_cost(d->eta, ETA_RUN, j->size)) >= 0) {
		c -= j->run_elapsed;
		s = eta_model_cost(d->eta, ETA_SYNC, j->size);
		if (s < 0)
			s = 0; /* phases not told apart yet */
		if (c < 0)
			c = 0;
		if (!j->syncing && p > 0 && p < 1 && j->run_elapsed > 0)
			c = (1 - p) * c + p * (j->run_elapsed * (1 - p) / p + s);
	} else {
		return -1;
	}
	return c > 0 ? c : 0;
}

/* Fills ctx (takes the queue's lock; the model's for each running job). */
void daemon_metrics_ctx(struct daemon *d, const struct daemon_workers_now *now,
			struct eta_ctx *ctx)
{
	const struct daemon_workers_job *j;
	size_t i;

	memset(ctx, 0, sizeof(*ctx));
	queue_counts(d->q, ctx->counts);
	ctx->pending = queue_pending(d->q);
	ctx->jobs = now->jobs > 0 ? now->jobs : 1;
	if (ctx->jobs > ETA_MAX_WORKERS)
		ctx->jobs = ETA_MAX_WORKERS;
	ctx->background = d->set->background;
	ctx->measured = eta_model_measured(d->eta);
	ctx->may_lock_workers = 1;
	ctx->paused = now->paused;
	pthread_mutex_lock(&d->metrics_mu);
	ctx->hazard = ctx->background ? eta_jumps_hazard(&d->metrics.jumps, mr_monotonic()) : 0;
	pthread_mutex_unlock(&d->metrics_mu);
	for (i = 0; i < now->n && i < (size_t)ctx->jobs; i++) {
		j = &now->job[i];
		snprintf(ctx->running[i], sizeof(ctx->running[i]), "%s", j->user);
		ctx->left[i] = daemon_metrics_left(d, j);
	}
	ctx->nrunning = i;
	eta_sched_init(&ctx->walk, (unsigned)ctx->jobs, ctx->left, ctx->nrunning);
	/* A priority request stops a background job for its worker. */
	for (i = 0; i < ctx->nrunning; i++)
		if (!now->job[i].priority)
			eta_sched_background(&ctx->walk, (unsigned)i);
}

/* A user's own seconds on one worker. */
static double cost_of(struct daemon *d, const struct queue_user_info *info)
{
	return eta_model_cost(d->eta, ETA_RUN, info->size_hint);
}

/* 1 for a user of the priority lane: later logins queue behind it. */
static int in_priority_lane(const struct queue_user_info *info)
{
	return info->priority && info->state == QUEUE_QUEUED;
}

/* The next user of the walk on the schedule: one of the priority lane
 * may take a worker from a background job. Adds the user's cost to *line
 * when it is not of the priority lane. */
static double sched_add(struct daemon *d, struct eta_sched *s, const struct queue_user_info *info,
			double *line)
{
	double c = cost_of(d, info);

	if (in_priority_lane(info))
		return eta_sched_add_priority(s, c);
	*line += c > 0 ? c : 0;
	return eta_sched_add(s, c);
}

struct find {
	struct daemon *d;
	struct eta_sched s;
	const char *name;
	double eta;
	double line; /* the runs of the users of the line so far, the user's own included */
	int in_line;
};

static int find_one(void *arg, const struct queue_user_info *info)
{
	struct find *f = arg;
	double t = sched_add(f->d, &f->s, info, &f->line);

	if (strcmp(info->name, f->name) != 0)
		return 0;
	f->eta = t;
	f->in_line = !in_priority_lane(info);
	return 1;
}

static int add_one(void *arg, const struct queue_user_info *info)
{
	struct find *f = arg;

	sched_add(f->d, &f->s, info, &f->line);
	return 0;
}

/* The runs of the whole waiting line (and plain enqueues): a walk of the
 * queue, done at most once a second. */
static double line_cost(struct daemon *d, const struct eta_ctx *ctx)
{
	double now = mr_monotonic(), c;
	struct find f;

	pthread_mutex_lock(&d->metrics_mu);
	c = d->metrics.line_at >= 0 && now - d->metrics.line_at < 1.0 ? d->metrics.line_cost : -1;
	pthread_mutex_unlock(&d->metrics_mu);
	if (c >= 0)
		return c;
	memset(&f, 0, sizeof(f));
	f.d = d;
	f.s = ctx->walk;
	queue_foreach_order(d->q, ctx->background, add_one, &f);
	pthread_mutex_lock(&d->metrics_mu);
	d->metrics.line_at = now;
	d->metrics.line_cost = f.line;
	pthread_mutex_unlock(&d->metrics_mu);
	return f.line;
}

/* One user's estimate in a plan: by the hash of its name (xxh3-64; a
 * collision would give one of two users the other's figure). */
struct eta_plan {
	uint64_t h;
	double eta;
	double line; /* the line's runs up to it (-1: of the priority lane) */
};

struct plan_walk {
	struct daemon *d;
	struct eta_sched s;
	struct eta_plan *p;
	size_t n, cap;
	double line;
	int oom;
};

static int plan_one(void *arg, const struct queue_user_info *info)
{
	struct plan_walk *w = arg;
	struct eta_plan *p;

	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 256;
		p = realloc(w->p, w->cap * sizeof(*p));
		if (p == NULL) {
			w->oom = 1;
			return 1;
		}
		w->p = p;
	}
	w->p[w->n].h = XXH3_64bits(info->name, strlen(info->name));
	w->p[w->n].eta = sched_add(w->d, &w->s, info, &w->line);
	w->p[w->n++].line = in_priority_lane(info) ? -1 : w->line;
	return 0;
}

static int cmp_plan(const void *a, const void *b)
{
	uint64_t x = ((const struct eta_plan *)a)->h, y = ((const struct eta_plan *)b)->h;

	return x < y ? -1 : x > y;
}

/* See daemon_private.h. Out of memory: no plan (the users of the walk get
 * no figure, eta_seconds null). */
void daemon_metrics_ctx_plan(struct daemon *d, struct eta_ctx *ctx)
{
	struct plan_walk w;

	ctx->may_lock_workers = 0;
	ctx->plan = NULL;
	ctx->nplan = 0;
	if (!ctx->measured || ctx->paused)
		return; /* no figures to give */
	memset(&w, 0, sizeof(w));
	w.d = d;
	w.s = ctx->walk;
	queue_foreach_order(d->q, ctx->background, plan_one, &w);
	if (w.oom) {
		mr_log("daemon: out of memory for the queue's estimates");
		free(w.p);
		return;
	}
	/* the users of the line, stretched by the logins yet to come */
	for (size_t i = 0; i < w.n; i++)
		if (w.p[i].line >= 0 && w.p[i].eta >= 0)
			w.p[i].eta *= eta_jumps_stretch(ctx->hazard, w.line - w.p[i].line,
							(unsigned)ctx->jobs);
	if (w.n > 0)
		qsort(w.p, w.n, sizeof(w.p[0]), cmp_plan);
	ctx->plan = w.p;
	ctx->nplan = w.n;
}

void daemon_metrics_ctx_done(struct eta_ctx *ctx)
{
	free(ctx->plan);
	ctx->plan = NULL;
	ctx->nplan = 0;
}

static double plan_find(const struct eta_ctx *ctx, const char *name)
{
	struct eta_plan key, *p;

	if (ctx->plan == NULL)
		return -1;
	key.h = XXH3_64bits(name, strlen(name));
	p = bsearch(&key, ctx->plan, ctx->nplan, sizeof(key), cmp_plan);
	return p != NULL ? p->eta : -1;
}

/* See the top of this file. */
const char *daemon_metrics_eta_status(const struct eta_ctx *ctx,
				      const struct queue_user_info *info)
{
	switch (info->state) {
	case QUEUE_ACTIVE:
	case QUEUE_UNKNOWN:
		return "done";
	case QUEUE_ATTENTION:
		return "none";
	case QUEUE_RESTORING:
	case QUEUE_SYNCING:
		return ctx->measured ? "estimate" : "estimating";
	case QUEUE_WAITING:
		if (!ctx->background)
			return "none";
		/* fall through */
	case QUEUE_QUEUED:
	default:
		if (ctx->paused)
			return "paused";
		return ctx->measured ? "estimate" : "estimating";
	}
}

/* See the top of this file. */
double daemon_metrics_eta(struct daemon *d, const struct eta_ctx *ctx,
			  const struct queue_user_info *info)
{
	const char *st = daemon_metrics_eta_status(ctx, info);
	struct find f;
	size_t i;

	if (strcmp(st, "done") == 0)
		return 0;
	if (strcmp(st, "estimate") != 0)
		return -1;
	if (info->state == QUEUE_RESTORING || info->state == QUEUE_SYNCING) {
		for (i = 0; i < ctx->nrunning; i++)
			if (strcmp(ctx->running[i], info->name) == 0)
				return ctx->left[i];
		return cost_of(d, info); /* taken, its worker not started yet */
	}
	/* Inside a walk of the queue (QUEUE, LIST): the plan made before it. */
	if (!ctx->may_lock_workers)
		return plan_find(ctx, info->name);
	memset(&f, 0, sizeof(f));
	f.d = d;
	f.s = ctx->walk;
	f.name = info->name;
	f.eta = -1;
	queue_foreach_order(d->q, ctx->background, find_one, &f);
	/* Not in the order any more: a worker took it since info was read
	 * (a login answered as it starts). Regression: such a login was told
	 * "estimate" with no figure. */
	if (f.eta < 0)
		return cost_of(d, info);
	if (f.in_line && ctx->hazard > 0)
		f.eta *= eta_jumps_stretch(ctx->hazard, line_cost(d, ctx) - f.line,
					   (unsigned)ctx->jobs);
	return f.eta;
}

/* "estimate", "estimating", "paused" or "done" for the whole run. */
const char *daemon_metrics_total_status(const struct eta_ctx *ctx)
{
	if (ctx->pending + ctx->nrunning + (ctx->background ? ctx->counts[QUEUE_WAITING] : 0) ==
	    0)
		return "done";
	if (ctx->paused)
		return "paused";
	return ctx->measured ? "estimate" : "estimating";
}

/* Seconds until everything the daemon will run is done; -1 while paused
 * or before any measurement (0 when nothing is left). */
double daemon_metrics_eta_total(struct daemon *d, const struct eta_ctx *ctx)
{
	const char *st = daemon_metrics_total_status(ctx);
	struct find f;

	if (strcmp(st, "done") == 0)
		return 0;
	if (strcmp(st, "estimate") != 0)
		return -1;
	memset(&f, 0, sizeof(f));
	f.d = d;
	f.s = ctx->walk;
	queue_foreach_order(d->q, ctx->background, add_one, &f);
	return eta_sched_end(&f.s);
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
	static const char *const names[ETA_PHASES] = { "extract", "sync", "run" };
	struct eta_rates rt;
	struct metrics m;
	double elapsed;
	int k;

	pthread_mutex_lock(&d->metrics_mu);
	m = d->metrics;
	pthread_mutex_unlock(&d->metrics_mu);
	elapsed = mr_monotonic() - m.start_mono;
	if (elapsed < 0.001)
		elapsed = 0.001;
	daemon_buf_printf(b,
			  "\"users_per_minute\":%.3f,\"bytes_per_second\":%.0f,"
			  "\"users_done\":%llu,\"users_active\":%llu,\"bytes_total\":%llu,"
			  "\"seconds_per_user\":%.3f,\"measured\":%s,\"uptime\":%.3f,\"rates\":{",
			  (double)m.users_done * 60.0 / elapsed, (double)m.bytes_total / elapsed,
			  (unsigned long long)m.users_done, (unsigned long long)m.users_active,
			  (unsigned long long)m.bytes_total,
			  m.users_done ? m.run_seconds / (double)m.users_done : 0.0,
			  eta_model_measured(d->eta) ? "true" : "false", elapsed);
	for (k = 0; k < ETA_PHASES; k++) {
		eta_model_rates(d->eta, (enum eta_phase)k, &rt);
		daemon_buf_printf(b,
				  "%s\"%s\":{\"runs\":%.0f,\"bytes_per_second\":%.0f,"
				  "\"files_per_second\":%.1f,\"seconds_per_user\":%.3f,"
				  "\"seconds_per_mib\":%.6f}",
				  k ? "," : "", names[k], rt.runs, rt.bytes_per_second,
				  rt.files_per_second, rt.seconds_per_user,
				  rt.seconds_per_byte * 1048576.0);
	}
	daemon_buf_printf(b, "}");
}
