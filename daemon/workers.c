/*
 * workers.c: the --jobs worker threads. Each takes the next user from the
 * queue, runs the engine on it (restore, sync, activate) and reports the
 * result back to the queue. Also: preemption (a priority request that
 * finds every worker busy cancels the background job started last; it
 * resumes later from its work copy), the restoring -> syncing transition,
 * each user's own back-off after a failed run (and attention after a few,
 * or at once for an error that cannot clear by itself), and the
 * --on-active hook.
 */
#include "daemon/daemon_private.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOOK_TIMEOUT 60.0
#define BACKOFF_MAX 60.0
/* Failed runs in a row after which a user goes to attention. */
#define FAILURES_MAX 3

extern char **environ;

static void timed_wait(struct daemon *d, double seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)seconds;
	ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&d->work_cv, &d->mu, &ts);
}

/* Runs --on-active as [cmd, user, T/<user>] without a shell; waits for it
 * at most HOOK_TIMEOUT seconds (then kills it). Failures are logged. */
void daemon_run_on_active(struct daemon *d, const char *user)
{
	posix_spawnattr_t attr;
	sigset_t none, def;
	char path[4096];
	char *argv[4];
	pid_t pid;
	double deadline;
	int e, status = 0;
	pid_t w;

	if (d->set->on_active == NULL)
		return;
	{
		char rel[MR_CYRUS_REL_MAX + 1];

		/* T/<user>, or the user's folder of a Cyrus spool */
		snprintf(path, sizeof(path), "%s/%s", d->set->target,
			 engine_user_rel(d->engine, user, rel) ? rel : user);
	}
	argv[0] = (char *)d->set->on_active;
	argv[1] = (char *)user;
	argv[2] = path;
	argv[3] = NULL;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	e = posix_spawnp(&pid, d->set->on_active, NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (e != 0) {
		mr_log("--on-active %s %s: %s", d->set->on_active, user, strerror(e));
		return;
	}
	deadline = mr_monotonic() + HOOK_TIMEOUT;
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (mr_monotonic() > deadline) {
			mr_log("--on-active for %s still running after %.0f s: killed", user,
			       HOOK_TIMEOUT);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return;
		}
		usleep(10000);
	}
	if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) != 0)
		mr_log("--on-active for %s exited %d", user, WEXITSTATUS(status));
	else if (w == pid && WIFSIGNALED(status))
		mr_log("--on-active for %s killed by signal %d", user, WTERMSIG(status));
}

static void counters_of(const struct engine_job *job, struct queue_counters *k)
{
	memset(k, 0, sizeof(*k));
	k->backup_files = job->restore.files;
	k->backup_bytes = job->restore.bytes;
	k->copied_files = job->sync.copied_files;
	k->copied_bytes = job->sync.copied_bytes;
	k->renamed = job->sync.renamed;
	k->patched_files = job->sync.patched_files;
	k->attic_files = job->sync.attic_files;
	k->unreadable = job->sync.unreadable;
	k->held_mail = job->released_mail;
	k->source_bytes_read = job->sync.source_bytes_read;
}

/* Teaches the time model a clean run: one that started afresh and went
 * active (a resumed run skips work; an attention run may stop early). The
 * run counts from taking the user off the queue to its activation
 * recorded: what a worker spends per user, the queue's own records
 * included. */
static void observe(struct worker *w, double took)
{
	struct daemon_run_sample r;
	double sync_mono, now = mr_monotonic();

	pthread_mutex_lock(&w->d->mu);
	sync_mono = w->sync_mono;
	pthread_mutex_unlock(&w->d->mu);
	memset(&r, 0, sizeof(r));
	r.user = w->job.user;
	r.size = w->size;
	r.run_seconds = now - w->taken_mono;
	r.ended = now;
	r.durable = w->job.durable_seconds;
	r.predicted = w->predicted;
	r.extract_bytes = w->job.restore.bytes;
	r.extract_files = w->job.restore.files;
	r.sync_bytes = w->job.sync.bytes_written;
	r.sync_files = w->job.sync.copied_files;
	r.extract_seconds = took;
	r.sync_seconds = -1;
	if (sync_mono > 0) {
		r.extract_seconds = sync_mono - w->started_mono;
		r.sync_seconds = took - r.extract_seconds;
	}
	daemon_metrics_observe(w->d, &r);
}

/* Errors a retry cannot cure: the user's own tree or data is the cause
 * (a Maildir folder that is not one, a name too long, a corrupt held
 * message), not the target's state of the moment. */
static int permanent_error(int errnum)
{
	switch (errnum) {
	case ENOTDIR:
	case EISDIR:
	case ENAMETOOLONG:
	case ELOOP:
	case EINVAL:
	case EBADMSG:
	case EPROTONOSUPPORT:
	case EXDEV:
	case EPERM:
	case EACCES:
	case EFBIG:
		return 1;
	default:
		return 0;
	}
}

/* A failed run: the user waits out its own back-off (1, 2, 4 ... s) while
 * the workers go on with the others; after FAILURES_MAX failures in a row,
 * or at once for a permanent error, it goes to attention with the reason
 * (its held mail stays held; `retry` starts a fresh count). */
static void fail(struct daemon *d, struct engine_job *job, double took, uint64_t bytes)
{
	struct queue_user_info info;
	struct mr_error err;
	const char *why = job->reason[0] ? job->reason : "target error";
	char reason[sizeof(info.reason)];
	uint32_t failures = 1;
	double wait;

	mr_error_clear(&err);
	if (queue_lookup(d->q, job->user, &info) == 0)
		failures = info.failures + 1;
	if (failures >= FAILURES_MAX || permanent_error(job->errnum)) {
		if (permanent_error(job->errnum))
			snprintf(reason, sizeof(reason), "%s", why);
		else
			snprintf(reason, sizeof(reason), "failed %u times in a row, last: %s",
				 (unsigned)failures, why);
		if (queue_set_state(d->q, job->user, QUEUE_ATTENTION, reason, NULL, mr_now(),
				    &err) < 0)
			mr_log("%s: recording attention: %s", job->user, err.msg);
		daemon_metrics_finished(d, took, bytes, 0);
		mr_log("%s: attention: %s", job->user, reason);
		return;
	}
	wait = failures >= 7 ? BACKOFF_MAX : (double)(1u << (failures - 1));
	if (queue_requeue_failed(d->q, job->user, mr_now() + wait, &err) < 0)
		mr_log("%s: requeue: %s", job->user, err.msg);
	mr_log("%s: failed (%s); retried in %.0f s, the others go on", job->user, why, wait);
}

/* Counts users in a row that end in attention for the same kind of reason
 * (its words before the first ':', digit or '/': the part that names no
 * path or number). At DAEMON_ATTENTION_STREAK background work is held: many
 * users failing alike is the setup's fault (the source went away, T is
 * full), not theirs, and each more would need an operator's look. */
static void attention_streak(struct daemon *d, const char *reason)
{
	char kind[sizeof(d->streak_kind)];
	size_t i;

	for (i = 0; reason[i] && i + 1 < sizeof(kind); i++) {
		if (reason[i] == ':' || reason[i] == '/' || (reason[i] >= '0' && reason[i] <= '9'))
			break;
		kind[i] = reason[i];
	}
	kind[i] = '\0';
	pthread_mutex_lock(&d->mu);
	if (d->attention_streak > 0 && strcmp(kind, d->streak_kind) == 0) {
		d->attention_streak++;
	} else {
		d->attention_streak = 1;
		memcpy(d->streak_kind, kind, sizeof(kind));
	}
	if (d->attention_streak == DAEMON_ATTENTION_STREAK && d->set->background &&
	    !d->background_held) {
		d->background_held = 1;
		snprintf(d->held_reason, sizeof(d->held_reason),
			 "%d users in a row went to attention (\"%s...\"): background restores "
			 "held; check the source and the target, then `mailrestore resume`",
			 DAEMON_ATTENTION_STREAK, kind);
		mr_log("%s", d->held_reason);
	}
	pthread_mutex_unlock(&d->mu);
}

/* Reports a finished run to the queue, the metrics and the hook. */
static void finish(struct worker *w, enum engine_result res, int preempted)
{
	struct daemon *d = w->d;
	struct engine_job *job = &w->job;
	struct queue_counters k;
	struct mr_error err;
	double took = mr_monotonic() - w->started_mono;
	uint64_t bytes = job->restore.bytes + job->sync.bytes_written;
	char hb[32];

	mr_error_clear(&err);
	counters_of(job, &k);
	switch (res) {
	case ENGINE_ACTIVE:
		pthread_mutex_lock(&d->mu);
		d->attention_streak = 0;
		pthread_mutex_unlock(&d->mu);
		if (queue_set_state(d->q, job->user, QUEUE_ACTIVE, NULL, &k, mr_now(), &err) < 0)
			mr_log("%s: recording activation: %s", job->user, err.msg);
		daemon_metrics_finished(d, took, bytes, 1);
		if (!w->resumed)
			observe(w, took);
		mr_log("%s: active in %.1f s (%s written, %llu released messages, %llu B read "
		       "from the source)", job->user,
		       took, mr_human_bytes(bytes, hb, sizeof(hb)),
		       (unsigned long long)job->released_mail,
		       (unsigned long long)job->sync.source_bytes_read);
		daemon_run_on_active(d, job->user);
		break;
	case ENGINE_ATTENTION:
		attention_streak(d, job->reason);
		if (queue_set_state(d->q, job->user, QUEUE_ATTENTION,
				    job->reason[0] ? job->reason : "needs an operator", &k, mr_now(),
				    &err) < 0)
			mr_log("%s: recording attention: %s", job->user, err.msg);
		daemon_metrics_finished(d, took, bytes, 0);
		mr_log("%s: attention: %s (%llu B read from the source)", job->user, job->reason,
		       (unsigned long long)job->sync.source_bytes_read);
		break;
	case ENGINE_CANCELLED:
		if (queue_requeue(d->q, job->user, &err) < 0)
			mr_log("%s: requeue: %s", job->user, err.msg);
		mr_log("%s: paused after %.1f s (%s); it resumes from its work copy", job->user,
		       took, preempted ? "a priority user needed the worker" : "stopping");
		break;
	case ENGINE_FAILED:
	default:
		fail(d, job, took, bytes);
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct daemon *d = w->d;
	struct queue_user_info info;
	struct mr_error err;
	char name[MR_USER_NAME_MAX + 1];
	enum engine_result res;
	uint64_t seq;
	int prio = 0, rc, preempted, stop;
	double taken;

	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (!d->stopping && d->paused)
			timed_wait(d, 0.5);
		seq = d->work_seq;
		stop = d->stopping;
		pthread_mutex_unlock(&d->mu);
		if (stop)
			break;
		mr_error_clear(&err);
		taken = mr_monotonic();
		rc = queue_next(d->q, !d->set->background || d->background_held, mr_now(), name,
				&prio, &err);
		if (rc <= 0) {
			if (rc < 0)
				mr_log("worker %d: taking the next user: %s", w->id, err.msg);
			pthread_mutex_lock(&d->mu);
			if (!d->stopping && seq == d->work_seq)
				timed_wait(d, rc < 0 ? 1.0 : 0.5);
			pthread_mutex_unlock(&d->mu);
			continue;
		}
		if (queue_lookup(d->q, name, &info) != 0)
			memset(&info, 0, sizeof(info));
		pthread_mutex_lock(&d->mu);
		engine_job_init(&w->job, name);
		w->busy = 1;
		w->priority = prio;
		w->marked_syncing = 0;
		w->preempted = 0;
		w->started_at = mr_now();
		w->started_mono = mr_monotonic();
		w->sync_mono = 0;
		w->size = info.size_hint;
		w->taken_mono = taken;
		w->predicted = eta_model_cost(d->eta, ETA_RUN, w->size);
		w->resumed = info.attempts > 1;
		if (d->stopping)
			atomic_store_explicit(&w->job.cancel, 1, memory_order_relaxed);
		pthread_mutex_unlock(&d->mu);

		res = engine_run(d->engine, &w->job);

		pthread_mutex_lock(&d->mu);
		w->busy = 0;
		preempted = w->preempted;
		pthread_mutex_unlock(&d->mu);
		finish(w, res, preempted);
		engine_job_free(&w->job);
	}
	return NULL;
}

/* Starts settings->jobs worker threads. 0 or -1 (logged). */
int daemon_workers_start(struct daemon *d)
{
	int i, e;

	d->workers = calloc((size_t)d->nworkers, sizeof(*d->workers));
	if (d->workers == NULL) {
		mr_log("out of memory");
		return -1;
	}
	for (i = 0; i < d->nworkers; i++) {
		d->workers[i].d = d;
		d->workers[i].id = i + 1;
		e = pthread_create(&d->workers[i].thread, NULL, worker_main, &d->workers[i]);
		if (e != 0) {
			mr_log("pthread_create failed: %s", strerror(e));
			return -1;
		}
		d->workers[i].started_thread = 1;
	}
	return 0;
}

/* Cancels running jobs (they resume at the next start) and joins. */
void daemon_workers_stop(struct daemon *d)
{
	struct worker *w;
	int i;

	if (d->workers == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->stopping = 1;
	for (i = 0; i < d->nworkers; i++)
		if (d->workers[i].busy)
			atomic_store_explicit(&d->workers[i].job.cancel, 1, memory_order_relaxed);
	pthread_cond_broadcast(&d->work_cv);
	pthread_mutex_unlock(&d->mu);
	for (i = 0; i < d->nworkers; i++)
		if (d->workers[i].started_thread)
			pthread_join(d->workers[i].thread, NULL);
	/* Task threads may still read the worker views (for an ETA) under
	 * d->mu: unhook them under it before freeing. */
	pthread_mutex_lock(&d->mu);
	w = d->workers;
	d->workers = NULL;
	pthread_mutex_unlock(&d->mu);
	free(w);
}

/* Wakes workers waiting for something to do. */
void daemon_workers_kick(struct daemon *d)
{
	pthread_mutex_lock(&d->mu);
	d->work_seq++;
	pthread_cond_broadcast(&d->work_cv);
	pthread_mutex_unlock(&d->mu);
}

/* Number of workers running a user now. */
int daemon_workers_busy(struct daemon *d)
{
	int i, n = 0;

	pthread_mutex_lock(&d->mu);
	for (i = 0; i < d->nworkers && d->workers; i++)
		n += d->workers[i].busy;
	pthread_mutex_unlock(&d->mu);
	return n;
}

/* Whether the first request that may run now (not in a failed run's
 * back-off) is a priority one. */
static int first_is_priority(void *arg, const struct queue_user_info *info)
{
	if (info->retry_at > mr_now())
		return 0;
	*(int *)arg = info->priority;
	return 1;
}

/* Called by the loop every 100 ms and after each request (see the header). */
void daemon_workers_tick(struct daemon *d)
{
	struct mr_error err;
	struct worker *w, *victim = NULL;
	int i, idle = 0, prio_pending = 0, cancelling = 0;

	if (d->workers == NULL)
		return;
	queue_foreach_queued(d->q, 0, first_is_priority, &prio_pending);
	pthread_mutex_lock(&d->mu);
	for (i = 0; i < d->nworkers; i++) {
		w = &d->workers[i];
		if (!w->busy) {
			idle++;
			continue;
		}
		/* The queue's state follows the engine's phase; under d->mu so
		 * the worker cannot record its result in between. */
		if (!w->marked_syncing &&
		    atomic_load_explicit(&w->job.phase, memory_order_relaxed) >= ENGINE_PHASE_SYNCING) {
			w->marked_syncing = 1;
			w->sync_mono = mr_monotonic();
			mr_error_clear(&err);
			if (queue_set_state(d->q, w->job.user, QUEUE_SYNCING, NULL, NULL, mr_now(),
					    &err) < 0)
				mr_log("%s: recording the sync: %s", w->job.user, err.msg);
		}
		if (w->preempted)
			cancelling++;
		if (!w->priority && !atomic_load_explicit(&w->job.cancel, memory_order_relaxed) &&
		    (victim == NULL || w->started_mono > victim->started_mono))
			victim = w;
	}
	/* One preemption at a time: the cancelled job stops at its next file
	 * boundary and its worker then takes the priority user. */
	if (prio_pending && idle == 0 && cancelling == 0 && !d->paused && victim != NULL) {
		victim->preempted = 1;
		atomic_store_explicit(&victim->job.cancel, 1, memory_order_relaxed);
		mr_log("%s: pausing a background restore for a priority request", victim->job.user);
	}
	pthread_mutex_unlock(&d->mu);
}

/* Writes the "workers" list (see docs/PROTOCOL.md, STATUS). */
void daemon_workers_json(struct daemon *d, struct daemon_buf *b, const char *only)
{
	struct worker *w;
	uint64_t done, total;
	int i, phase;

	daemon_buf_printf(b, "[");
	pthread_mutex_lock(&d->mu);
	for (i = 0; i < d->nworkers && d->workers; i++) {
		w = &d->workers[i];
		daemon_buf_printf(b, "%s{\"id\":%d,\"user\":", i ? "," : "", w->id);
		if (!w->busy) {
			daemon_buf_printf(b, "null,\"phase\":\"idle\",\"priority\":false,"
					     "\"progress_done\":0,\"progress_total\":0,"
					     "\"progress\":null,\"started_at\":null,"
					     "\"cancelling\":false}");
			continue;
		}
		phase = atomic_load_explicit(&w->job.phase, memory_order_relaxed);
		done = atomic_load_explicit(&w->job.progress_done, memory_order_relaxed);
		total = atomic_load_explicit(&w->job.progress_total, memory_order_relaxed);
		if (only == NULL || strcmp(only, w->job.user) == 0)
			daemon_buf_json_str(b, w->job.user);
		else
			daemon_buf_printf(b, "null");
		daemon_buf_printf(b,
				  ",\"phase\":\"%s\",\"priority\":%s,\"progress_done\":%llu,"
				  "\"progress_total\":%llu,\"progress\":",
				  phase == ENGINE_PHASE_IDLE ? "starting" : engine_phase_name(phase),
				  w->priority ? "true" : "false", (unsigned long long)done,
				  (unsigned long long)total);
		if (total > 0)
			daemon_buf_printf(b, "%.4f", done >= total ? 1.0 : (double)done / (double)total);
		else
			daemon_buf_printf(b, "null");
		daemon_buf_printf(b, ",\"started_at\":%.3f,\"cancelling\":%s}", w->started_at,
				  atomic_load_explicit(&w->job.cancel, memory_order_relaxed) ? "true" : "false");
	}
	pthread_mutex_unlock(&d->mu);
	daemon_buf_printf(b, "]");
}

/* Pauses or resumes the workers (see daemon_private.h). */
void daemon_workers_pause(struct daemon *d, int pause)
{
	pthread_mutex_lock(&d->mu);
	d->paused = pause != 0;
	if (!pause) {
		d->background_held = 0;
		d->attention_streak = 0;
	}
	d->work_seq++;
	pthread_cond_broadcast(&d->work_cv);
	pthread_mutex_unlock(&d->mu);
}

/* See daemon_private.h. */
void daemon_workers_held(struct daemon *d, int *paused_r, int *held_r, char *reason,
			 size_t len)
{
	pthread_mutex_lock(&d->mu);
	*paused_r = d->paused;
	*held_r = d->background_held;
	snprintf(reason, len, "%s", d->held_reason);
	pthread_mutex_unlock(&d->mu);
}

/* See daemon_private.h. */
void daemon_workers_now(struct daemon *d, struct daemon_workers_now *now_r)
{
	struct daemon_workers_job *j;
	struct worker *w;
	uint64_t done, total;
	double now = mr_monotonic();
	int i;

	pthread_mutex_lock(&d->mu);
	now_r->jobs = d->nworkers;
	now_r->paused = d->paused;
	now_r->n = 0;
	for (i = 0; i < d->nworkers && d->workers && now_r->n < ETA_MAX_WORKERS; i++) {
		w = &d->workers[i];
		if (!w->busy)
			continue;
		j = &now_r->job[now_r->n++];
		snprintf(j->user, sizeof(j->user), "%s", w->job.user);
		j->size = w->size;
		j->priority = w->priority;
		j->progress = -1;
		total = atomic_load_explicit(&w->job.progress_total, memory_order_relaxed);
		done = atomic_load_explicit(&w->job.progress_done, memory_order_relaxed);
		if (atomic_load_explicit(&w->job.phase, memory_order_relaxed) <
			    ENGINE_PHASE_SYNCING &&
		    total > 0 && done <= total)
			j->progress = (double)done / (double)total;
		j->syncing = w->sync_mono > 0;
		j->run_elapsed = now - w->taken_mono;
		j->sync_elapsed = w->sync_mono > 0 ? now - w->sync_mono : -1;
	}
	pthread_mutex_unlock(&d->mu);
}
