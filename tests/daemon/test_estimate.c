/*
 * test_estimate.c: the estimates the daemon gives (daemon/metrics.c) on a
 * daemon made up here (a real queue in a temporary folder, no socket, no
 * threads): "estimating" before any run was measured, a figure in the
 * queue's order once one was, "paused" while paused (no countdown), and
 * "none" for waiting users with the background off. Regression: a paused
 * daemon told users "about a second".
 */
#include "tests/testutil.h"
#include "daemon/daemon_private.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB 1048576ULL

struct et {
	char *dir;
	struct daemon_settings set;
	struct daemon d;
};

static struct et *et_new(void)
{
	struct queue_settings qs = { 0, 1 };
	struct mr_error err;
	struct et *t = calloc(1, sizeof(*t));
	int fd;

	assert_non_null(t);
	mr_log_quiet = 1;
	t->dir = tu_tmpdir();
	fd = tu_open_dir(t->dir);
	if (queue_open(fd, &qs, &t->d.q, &err) < 0)
		fail_msg("queue_open: %s", err.msg);
	close(fd);
	/* 1 s per user plus 1 s per MiB, once measured. */
	assert_int_equal(queue_add_user(t->d.q, "small", 1 * MIB, &err), 1);
	assert_int_equal(queue_add_user(t->d.q, "mid", 3 * MIB, &err), 1);
	assert_int_equal(queue_add_user(t->d.q, "big", 9 * MIB, &err), 1);
	daemon_settings_init(&t->set);
	t->set.background = 1;
	t->d.set = &t->set;
	t->d.nworkers = 1;
	pthread_mutex_init(&t->d.mu, NULL);
	pthread_cond_init(&t->d.work_cv, NULL);
	pthread_mutex_init(&t->d.metrics_mu, NULL);
	assert_int_equal(daemon_metrics_init(&t->d), 0);
	return t;
}

/* The estimates' view of the daemon now. */
static void ctx_of(struct et *t, struct eta_ctx *ctx)
{
	struct daemon_workers_now now;

	daemon_workers_now(&t->d, &now);
	daemon_metrics_ctx(&t->d, &now, ctx);
}

static void et_free(struct et *t)
{
	daemon_metrics_close(&t->d);
	queue_close(&t->d.q);
	pthread_mutex_destroy(&t->d.mu);
	pthread_cond_destroy(&t->d.work_cv);
	pthread_mutex_destroy(&t->d.metrics_mu);
	tu_rmtree(t->dir);
	free(t);
}

static void measure(struct et *t)
{
	struct daemon_run_sample r;

	memset(&r, 0, sizeof(r));
	r.sync_seconds = -1;
	r.ended = -1;
	r.size = 0;
	r.extract_seconds = 1;
	daemon_metrics_observe(&t->d, &r);
	r.size = 10 * MIB;
	r.extract_seconds = 11;
	daemon_metrics_observe(&t->d, &r);
	r.size = 5 * MIB;
	r.extract_seconds = 6;
	daemon_metrics_observe(&t->d, &r);
}

/* eta_seconds and eta_status of user now. */
static double eta(struct et *t, const char *user, const char **status_r)
{
	struct queue_user_info info;
	struct eta_ctx ctx;

	assert_int_equal(queue_lookup(t->d.q, user, &info), 0);
	ctx_of(t, &ctx);
	*status_r = daemon_metrics_eta_status(&ctx, &info);
	return daemon_metrics_eta(&t->d, &ctx, &info);
}

static int near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

static void estimate_states(void **state)
{
	struct et *t = et_new();
	struct queue_user_info info;
	struct daemon_buf b = { 0 };
	struct eta_ctx ctx;
	struct mr_error err;
	queue_ticket ticket;
	const char *st;

	(void)state;
	/* Nothing measured: no made-up number. */
	assert_true(eta(t, "mid", &st) < 0);
	assert_string_equal(st, "estimating");
	ctx_of(t, &ctx);
	assert_true(daemon_metrics_eta_total(&t->d, &ctx) < 0);
	assert_string_equal(daemon_metrics_total_status(&ctx), "estimating");

	/* Measured: the background order, smallest first, one worker. */
	measure(t);
	assert_true(near(eta(t, "small", &st), 2));
	assert_string_equal(st, "estimate");
	assert_true(near(eta(t, "mid", &st), 6));
	assert_true(near(eta(t, "big", &st), 16));
	ctx_of(t, &ctx);
	assert_true(near(daemon_metrics_eta_total(&t->d, &ctx), 16));

	/* big logs in: the priority lane goes first. */
	assert_int_equal(queue_request(t->d.q, "big", 100.0, &info, &ticket, &err), 0);
	assert_int_equal(queue_commit_wait(t->d.q, ticket, &err), 0);
	assert_true(near(eta(t, "big", &st), 10));
	assert_true(near(eta(t, "small", &st), 12));
	/* The user object carries both. */
	ctx_of(t, &ctx);
	daemon_proto_user(&t->d, &b, &ctx, &info, 0, 1);
	assert_non_null(strstr(b.p, "\"eta_seconds\":10"));
	assert_non_null(strstr(b.p, "\"eta_status\":\"estimate\""));
	b.len = 0;

	/* Paused: no countdown anywhere. */
	daemon_workers_pause(&t->d, 1);
	assert_true(eta(t, "big", &st) < 0);
	assert_string_equal(st, "paused");
	assert_true(eta(t, "small", &st) < 0);
	assert_string_equal(st, "paused");
	ctx_of(t, &ctx);
	assert_true(daemon_metrics_eta_total(&t->d, &ctx) < 0);
	assert_string_equal(daemon_metrics_total_status(&ctx), "paused");
	daemon_proto_user(&t->d, &b, &ctx, &info, 0, 1);
	assert_non_null(strstr(b.p, "\"eta_seconds\":null,\"eta_status\":\"paused\""));
	daemon_workers_pause(&t->d, 0);

	/* Background off: waiting users are not going to run by themselves. */
	t->set.background = 0;
	assert_true(eta(t, "small", &st) < 0);
	assert_string_equal(st, "none");
	assert_true(near(eta(t, "big", &st), 10));
	t->set.background = 1;
	daemon_buf_free(&b);
	et_free(t);
}

struct lw {
	struct et *t;
	const struct eta_ctx *ctx;
	char names[8][32];
	double eta[8];
	int n;
};

static int lw_one(void *arg, const struct queue_user_info *info)
{
	struct lw *w = arg;

	snprintf(w->names[w->n], sizeof(w->names[0]), "%s", info->name);
	w->eta[w->n++] = daemon_metrics_eta(&w->t->d, w->ctx, info);
	return 0;
}

/* Every user of a list (QUEUE, LIST: the plan made before the walk) is
 * told what SHOW tells it, within tol seconds. */
static void list_matches_show(struct et *t, double tol)
{
	struct eta_ctx ctx;
	struct lw w;
	uint64_t cursor = 0;
	const char *st;
	int i;

	memset(&w, 0, sizeof(w));
	w.t = t;
	w.ctx = &ctx;
	ctx_of(t, &ctx);
	daemon_metrics_ctx_plan(&t->d, &ctx);
	assert_true(queue_foreach_in_state(t->d.q, -1, &cursor, 0, lw_one, &w) >= 0);
	daemon_metrics_ctx_done(&ctx);
	assert_int_equal(w.n, 3);
	for (i = 0; i < w.n; i++) {
		double e = eta(t, w.names[i], &st);

		if (fabs(w.eta[i] - e) > tol)
			fail_msg("%s: the list says %.3f s, show %.3f s", w.names[i], w.eta[i], e);
	}
}

/* Logins yet to come: once a waiting user logged in, a user still in the
 * line is told more than the walk, by the runs behind it (eta.h); the
 * last of the line nothing more, a user of the priority lane nothing
 * more; a list tells what show tells. */
static void estimate_logins_stretch_the_line(void **state)
{
	struct et *t = et_new();
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;
	const char *st;

	(void)state;
	measure(t);
	assert_true(near(eta(t, "small", &st), 2));
	assert_true(near(eta(t, "mid", &st), 6));
	daemon_metrics_jumped(&t->d);
	/* one login among 3 waiting users and the prior's 10 quiet seconds:
	 * h = 1/30 per user and second; behind small 4 + 10 s of runs, behind
	 * mid 10 s, behind big nothing (one worker) */
	if (fabs(eta(t, "small", &st) - 2 / (1 - 14.0 / 30)) > 0.01 ||
	    fabs(eta(t, "mid", &st) - 6 / (1 - 10.0 / 30)) > 0.01)
		fail_msg("small %.3f s, mid %.3f s", eta(t, "small", &st), eta(t, "mid", &st));
	assert_true(near(eta(t, "big", &st), 16));
	list_matches_show(t, 0.01);
	/* big logs in: its place in the lane is not stretched */
	assert_int_equal(queue_request(t->d.q, "big", 100.0, &info, &ticket, &err), 0);
	assert_int_equal(queue_commit_wait(t->d.q, ticket, &err), 0);
	assert_true(near(eta(t, "big", &st), 10));
	et_free(t);
}

/* The lists (QUEUE, LIST, and the pages of each) give every user the
 * number SHOW gives it, whatever order they list users in. Regression:
 * a list walked the schedule in its own order (LIST: the order users
 * became known), so "queue --state waiting" told the smallest user it was
 * first while a login had gone ahead of it. */
static void estimate_lists_match_show(void **state)
{
	struct et *t = et_new();
	struct queue_user_info info;
	struct eta_ctx ctx;
	struct mr_error err;
	queue_ticket ticket;
	struct lw w;
	uint64_t cursor = 0;
	int i;

	(void)state;
	measure(t);
	assert_int_equal(queue_request(t->d.q, "big", 100.0, &info, &ticket, &err), 0);
	assert_int_equal(queue_commit_wait(t->d.q, ticket, &err), 0);
	list_matches_show(t, 1e-6);
	memset(&w, 0, sizeof(w));
	w.t = t;
	w.ctx = &ctx;
	/* Nothing in the order (the background off, no login waiting): an
	 * empty plan. Regression: it was sorted from a NULL array (UBSan). */
	t->set.background = 0;
	assert_int_equal(queue_set_state(t->d.q, "big", QUEUE_ACTIVE, NULL, NULL, 1.0, &err), 0);
	w.n = 0;
	cursor = 0;
	ctx_of(t, &ctx);
	daemon_metrics_ctx_plan(&t->d, &ctx);
	assert_int_equal(ctx.nplan, 0);
	assert_true(queue_foreach_in_state(t->d.q, -1, &cursor, 0, lw_one, &w) >= 0);
	daemon_metrics_ctx_done(&ctx);
	for (i = 0; i < w.n; i++)
		assert_true(w.eta[i] <= 0); /* active: 0; waiting: none */
	t->set.background = 1;
	/* Paused: the plan has no figures, nor has show. */
	t->d.paused = 1;
	w.n = 0;
	cursor = 0;
	ctx_of(t, &ctx);
	daemon_metrics_ctx_plan(&t->d, &ctx);
	assert_true(queue_foreach_in_state(t->d.q, -1, &cursor, 0, lw_one, &w) >= 0);
	daemon_metrics_ctx_done(&ctx);
	for (i = 0; i < w.n; i++)
		assert_true(strcmp(w.names[i], "big") == 0 ? w.eta[i] == 0 : w.eta[i] < 0);
	et_free(t);
}

/* What the workers do, made up: one job. */
static void one_job(struct daemon_workers_now *now, const char *user, uint64_t size,
		    double elapsed)
{
	memset(now, 0, sizeof(*now));
	now->jobs = 1;
	now->n = 1;
	snprintf(now->job[0].user, sizeof(now->job[0].user), "%s", user);
	now->job[0].size = size;
	now->job[0].run_elapsed = elapsed;
	now->job[0].sync_elapsed = -1;
}

/* A login while the only worker runs a background job: the job gives way
 * (the daemon stops it for the priority user), so the user waits for its
 * own run, not for the job's rest; the job's rest comes back before the
 * waiting users. Regression: a login behind a big background job was told
 * the job's rest plus its own run, 3x what it waited. */
static void estimate_login_preempts_background(void **state)
{
	struct et *t = et_new();
	struct daemon_workers_now now;
	struct queue_user_info info;
	struct eta_ctx ctx;
	struct mr_error err;
	queue_ticket ticket;
	char name[MR_USER_NAME_MAX + 1];
	int prio = 0;

	(void)state;
	measure(t);
	/* big (10 s) is taken in the background, 1 s ago: 9 s left */
	assert_int_equal(queue_request(t->d.q, "big", 100.0, &info, &ticket, &err), 0);
	assert_int_equal(queue_commit_wait(t->d.q, ticket, &err), 0);
	assert_int_equal(queue_next(t->d.q, 0, 101.0, name, &prio, &err), 1);
	assert_string_equal(name, "big");
	one_job(&now, "big", 9 * MIB, 1.0);
	/* mid (4 s) logs in */
	assert_int_equal(queue_request(t->d.q, "mid", 102.0, &info, &ticket, &err), 0);
	assert_int_equal(queue_commit_wait(t->d.q, ticket, &err), 0);
	assert_int_equal(queue_lookup(t->d.q, "mid", &info), 0);
	daemon_metrics_ctx(&t->d, &now, &ctx);
	assert_true(fabs(daemon_metrics_eta(&t->d, &ctx, &info) - (ETA_PREEMPT_S + 4)) < 1e-6);
	/* small waits for mid, big's rest, then itself (2 s) */
	assert_int_equal(queue_lookup(t->d.q, "small", &info), 0);
	assert_true(fabs(daemon_metrics_eta(&t->d, &ctx, &info) - (4 + 9 + 2)) < 1e-6);
	/* A priority job does not give way: a login waits for it. */
	now.job[0].priority = 1;
	assert_int_equal(queue_lookup(t->d.q, "mid", &info), 0);
	daemon_metrics_ctx(&t->d, &now, &ctx);
	assert_true(fabs(daemon_metrics_eta(&t->d, &ctx, &info) - (9 + 4)) < 1e-6);
	et_free(t);
}

/* A user a worker took after its info was read (a login answered as its
 * run starts) is told its own run. Regression: "estimate" with
 * eta_seconds null, as it was no longer in the queue's order. */
static void estimate_taken_meanwhile(void **state)
{
	struct et *t = et_new();
	struct queue_user_info info;
	struct eta_ctx ctx;
	struct mr_error err;
	queue_ticket ticket;
	char name[MR_USER_NAME_MAX + 1];
	const char *st;
	int prio = 0;

	(void)state;
	measure(t);
	assert_int_equal(queue_request(t->d.q, "mid", 100.0, &info, &ticket, &err), 0);
	assert_int_equal(queue_commit_wait(t->d.q, ticket, &err), 0);
	assert_int_equal(queue_lookup(t->d.q, "mid", &info), 0);
	assert_int_equal(info.state, QUEUE_QUEUED);
	/* a worker takes it now */
	assert_int_equal(queue_next(t->d.q, 0, 101.0, name, &prio, &err), 1);
	assert_string_equal(name, "mid");
	ctx_of(t, &ctx);
	st = daemon_metrics_eta_status(&ctx, &info);
	assert_string_equal(st, "estimate");
	assert_true(near(daemon_metrics_eta(&t->d, &ctx, &info), 4));
	et_free(t);
}

/* A job that runs past what the model said is not about to end while its
 * extraction says it is half done. Regression: a big user the model had
 * not seen the like of counted 0 s left, and everyone behind it was told
 * too early. */
static void estimate_running_job_progress(void **state)
{
	struct et *t = et_new();
	struct daemon_workers_now now;
	double left;

	(void)state;
	measure(t);
	/* big: 10 s predicted, 15 s gone */
	one_job(&now, "big", 9 * MIB, 15.0);
	now.job[0].progress = -1;
	assert_true(near(daemon_metrics_left(&t->d, &now.job[0]), 0));
	/* half its archive read: about as long again */
	now.job[0].progress = 0.5;
	left = daemon_metrics_left(&t->d, &now.job[0]);
	assert_true(left > 6 && left < 15);
	/* early on, the model's figure holds: 1 s gone, 1 % read */
	one_job(&now, "big", 9 * MIB, 1.0);
	now.job[0].progress = 0.01;
	left = daemon_metrics_left(&t->d, &now.job[0]);
	assert_true(left > 8.5 && left < 10.5);
	et_free(t);
}

/* The daemon gives the model each run's end: two runs that stalled
 * together (ended 2 ms apart, as two workers waiting on one syncfs do)
 * count as what their sizes cost; 0.4 s apart, each still counts 3x.
 * Returns the cost then of a user of 30 KiB. */
static double after_two_far_runs(double apart)
{
	struct et *t = et_new();
	struct daemon_run_sample r;
	double now = 50, c;
	int i;

	memset(&r, 0, sizeof(r));
	r.sync_seconds = -1;
	for (i = 0; i < 6; i++) {
		r.size = 28 * 1024;
		r.extract_seconds = 0.02;
		r.ended = now += 0.01;
		daemon_metrics_observe(&t->d, &r);
	}
	r.size = 64 * 1024;
	r.extract_seconds = 0.8;
	r.ended = now += 0.4;
	daemon_metrics_observe(&t->d, &r);
	r.size = 115 * 1024;
	r.ended = now + apart;
	daemon_metrics_observe(&t->d, &r);
	c = eta_model_cost(t->d.eta, ETA_RUN, 30 * 1024);
	et_free(t);
	return c;
}

static void estimate_stall_pair_by_end(void **state)
{
	double together = after_two_far_runs(0.002), apart = after_two_far_runs(0.4);

	(void)state;
	if (together > 0.03 || apart < together + 0.005)
		fail_msg("a 30 KiB user after two far runs: %.4f s when they ended together, "
			 "%.4f s apart (tiny runs take 0.02 s)",
			 together, apart);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(estimate_states),
		cmocka_unit_test(estimate_lists_match_show),
		cmocka_unit_test(estimate_logins_stretch_the_line),
		cmocka_unit_test(estimate_login_preempts_background),
		cmocka_unit_test(estimate_taken_meanwhile),
		cmocka_unit_test(estimate_running_job_progress),
		cmocka_unit_test(estimate_stall_pair_by_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
