/*
 * test_eta.c: the time model (queue/eta.c) without a daemon: what it
 * predicts from measured runs, that it says nothing before a measurement,
 * the schedule over the queue's real order (priority lane, enqueue lane,
 * waiting users by size, running work), its file across a restart (and a
 * damaged file refused), and how an estimate is worded.
 */
#include "tests/testutil.h"
#include "queue/eta.h"
#include "qtest.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#define MIB 1048576ULL

static int near(double a, double b)
{
	return fabs(a - b) < 1e-6 * (fabs(b) + 1);
}

/* Runs of a worker that takes 1 s per user plus 2 s per MiB of backup. */
static void teach(struct eta_model *m, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		uint64_t size = (uint64_t)(i % 4 + 1) * MIB;

		eta_model_observe(m, ETA_RUN, size, size, 10, 1.0 + 2.0 * (double)(i % 4 + 1));
	}
}

static void eta_nothing_measured_is_no_number(void **state)
{
	struct eta_model *m = eta_model_new();

	(void)state;
	assert_non_null(m);
	assert_false(eta_model_measured(m));
	assert_true(eta_model_cost(m, ETA_RUN, 5 * MIB) < 0);
	assert_true(eta_model_cost(m, ETA_EXTRACT, 0) < 0);
	eta_model_free(&m);
	assert_null(m);
	eta_model_free(&m);
}

static void eta_learns_size_and_per_user_cost(void **state)
{
	struct eta_model *m = eta_model_new();
	struct eta_rates r;

	(void)state;
	/* One run: no slope to learn from it; a user costs what it did plus
	 * the prior rate for the size it has more. */
	eta_model_observe(m, ETA_RUN, MIB, MIB, 10, 3.0);
	assert_true(eta_model_measured(m));
	assert_true(near(eta_model_cost(m, ETA_RUN, MIB), 3.0));
	assert_true(near(eta_model_cost(m, ETA_RUN, 100 * MIB), 3.0 + 99 * ETA_PRIOR_S_PER_MIB));
	teach(m, 40);
	/* Beyond the sizes seen: the line, not the mean of small users. */
	assert_true(fabs(eta_model_cost(m, ETA_RUN, 10 * MIB) - 21.0) < 0.05);
	assert_true(fabs(eta_model_cost(m, ETA_RUN, 1) - 1.0) < 0.05);
	eta_model_rates(m, ETA_RUN, &r);
	assert_true(r.runs == 41);
	assert_true(fabs(r.seconds_per_byte * MIB - 2.0) < 0.01);
	assert_true(r.bytes_per_second > 0 && r.files_per_second > 0);
	/* The phases are separate lines. */
	assert_true(eta_model_cost(m, ETA_SYNC, MIB) < 0);
	/* Nonsense is ignored. */
	eta_model_observe(m, ETA_RUN, MIB, 0, 0, -5);
	eta_model_observe(m, ETA_RUN, MIB, 0, 0, NAN);
	eta_model_rates(m, ETA_RUN, &r);
	assert_true(r.runs == 41);
	eta_model_free(&m);
}

/* Small users of about one size with scattered times (the start of every
 * restore) teach no slope: extended to a big user it was wrong tenfold.
 * A big user costs a typical small run plus the prior rate for its size
 * (a slope of 0 made a 20 MiB user cost what a 100 KiB one did). */
static void eta_no_slope_from_noise(void **state)
{
	static const double t[] = { 0.31, 0.05, 0.14, 0.20, 0.34, 0.29, 0.23, 0.12, 0.03, 0.09 };
	struct eta_model *m = eta_model_new();
	double small, big;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		/* 100..145 KiB, times unrelated to the size */
		eta_model_observe(m, ETA_RUN, 102400 + i * 5120, 0, 0, t[(i * 7) % 10]);
	small = eta_model_cost(m, ETA_RUN, 102400);
	big = eta_model_cost(m, ETA_RUN, 20 * MIB + 102400);
	assert_true(small > 0.03 && small < 0.34);
	/* the prior, barely moved by the runs' noise */
	assert_true(fabs(big - small - 20 * ETA_PRIOR_S_PER_MIB) < 2 * ETA_PRIOR_S_PER_MIB);
	eta_model_free(&m);
}

/* The first runs after a start are slow (cold caches, the start-up's own
 * work): they do not set the cost of every user after them. Regression:
 * two runs of 0.8 s before thirty of 0.05 s made each user cost 0.085 s,
 * and estimates early in a restore came out 2x too long. */
static void eta_slow_start_is_not_the_rate(void **state)
{
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	eta_model_observe(m, ETA_RUN, 100 * 1024, 0, 0, 0.8);
	eta_model_observe(m, ETA_RUN, 101 * 1024, 0, 0, 0.8);
	for (i = 0; i < 30; i++)
		eta_model_observe(m, ETA_RUN, (uint64_t)(102 + i) * 1024, 0, 0,
				  0.05 + 0.01 * (double)(i % 3 - 1));
	c = eta_model_cost(m, ETA_RUN, 110 * 1024);
	assert_true(c > 0.04 && c < 0.06);
	/* A machine that really got slower is believed once its runs are
	 * the recent ones. */
	for (i = 0; i < 40; i++)
		eta_model_observe(m, ETA_RUN, (uint64_t)(132 + i) * 1024, 0, 0,
				  0.15 + 0.01 * (double)(i % 3 - 1));
	c = eta_model_cost(m, ETA_RUN, 150 * 1024);
	assert_true(c > 0.13 && c < 0.16);
	/* and the step in time, in a run of growing sizes, is not taken for
	 * a cost per MiB: a 20 MiB user is not 18 s */
	c = eta_model_cost(m, ETA_RUN, 20 * MIB);
	assert_true(c < 0.15 + 20 * 2 * ETA_PRIOR_S_PER_MIB);
	eta_model_free(&m);
}

/* Newer runs weigh more: a machine that got twice as slow is believed. */
static void eta_follows_a_slower_machine(void **state)
{
	struct eta_model *m = eta_model_new();
	int i;

	(void)state;
	for (i = 0; i < 50; i++)
		eta_model_observe(m, ETA_RUN, (uint64_t)(i % 3 + 1) * MIB, 0, 0,
				  2.0 * (double)(i % 3 + 1));
	for (i = 0; i < 200; i++)
		eta_model_observe(m, ETA_RUN, (uint64_t)(i % 3 + 1) * MIB, 0, 0,
				  4.0 * (double)(i % 3 + 1));
	assert_true(fabs(eta_model_cost(m, ETA_RUN, 10 * MIB) - 40.0) < 1.0);
	eta_model_free(&m);
}

/* Slow runs that keep coming (a syncfs on a disk other jobs write to)
 * are part of what users cost: a wait is the sum of the users ahead, so
 * their mean. Regression: weights cut at 1.5 sigma took about the median
 * and estimates came out 25 % short. */
static void eta_slow_runs_count(void **state)
{
	/* one run in five slow: mean 0.146 s, median 0.07 s */
	static const double t[] = { 0.06, 0.07, 0.08, 0.07, 0.45 };
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	for (i = 0; i < 64; i++)
		eta_model_observe(m, ETA_RUN, 200 * 1024, 0, 0, t[i % 5]);
	c = eta_model_cost(m, ETA_RUN, 200 * 1024);
	assert_true(c > 0.13 && c < 0.16);
	eta_model_free(&m);
}

/* Users without a backup (size 0) copy their whole source: they are not
 * a point of the line at size 0. Regression: such users, first in the
 * background order, made the fixed cost of every small user 3x what it
 * was, and were themselves told the cost of a tiny user. */
static void eta_no_backup_users_apart(void **state)
{
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	for (i = 0; i < 40; i++) {
		if (i % 4 == 0) /* 10 MiB copied from the source */
			eta_model_observe(m, ETA_RUN, 0, 10 * MIB, 200, 0.20 + 0.01 * (i % 3));
		else /* 50 KiB of backup, 20 files */
			eta_model_observe(m, ETA_RUN, 50 * 1024, 70 * 1024, 20,
					  0.03 + 0.002 * (i % 3));
	}
	c = eta_model_cost(m, ETA_RUN, 50 * 1024);
	assert_true(c > 0.025 && c < 0.04);
	c = eta_model_cost(m, ETA_RUN, 0);
	assert_true(c > 0.18 && c < 0.23);
	eta_model_free(&m);
}

/* Before any user with a backup spans sizes, the cost per MiB comes from
 * what the runs wrote (users without a backup copy MiBs each), not from a
 * fixed guess: on a machine 4x faster than ETA_PRIOR_S_PER_MIB, a 20 MiB
 * user was told 3x its cost. It is kept once those runs leave the window. */
static void eta_prior_from_writes(void **state)
{
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	for (i = 0; i < 10; i++) { /* 4..16 MiB copied at 200 MiB/s */
		double z = 4.0 + 12.0 * i / 9;

		eta_model_observe(m, ETA_RUN, 0, (uint64_t)(z * MIB), 100,
				  0.02 + 0.005 * z + 0.002 * (i % 3 - 1));
	}
	/* tiny users: 64 KiB of backup, 64 KiB written */
	for (i = 0; i < 30; i++)
		eta_model_observe(m, ETA_RUN, 64 * 1024, 64 * 1024, 20,
				  0.02 + 0.005 / 16 + 0.002 * (i % 3 - 1));
	c = eta_model_cost(m, ETA_RUN, 20 * MIB);
	assert_true(fabs(c - 0.12) < 0.03);
	for (i = 0; i < 2 * ETA_WINDOW; i++)
		eta_model_observe(m, ETA_RUN, 64 * 1024, 64 * 1024, 20,
				  0.02 + 0.005 / 16 + 0.002 * (i % 3 - 1));
	c = eta_model_cost(m, ETA_RUN, 20 * MIB);
	assert_true(fabs(c - 0.12) < 0.03);
	eta_model_free(&m);
}

/* The background goes smallest first, so the latest runs are users of
 * about one size: the cost per MiB comes from every size seen. Runs of
 * 1 to 10 MiB at 0.1 s + 0.05 s/MiB, then a window of users of 20 MiB
 * whose times scatter by 20 %: an 80 MiB user costs 4.1 s. Regression:
 * a slope fitted to the window alone told 2.3 s (and swung from 0 to 3x
 * the true slope as the load moved). */
static void eta_slope_from_every_size(void **state)
{
	static const double noise[] = { 0.8, 1.2, 1.0, 0.9, 1.1, 1.15, 0.85 };
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		double mib = 1.0 + 9.0 * i / 99;

		eta_model_observe(m, ETA_RUN, (uint64_t)(mib * MIB), (uint64_t)(mib * MIB), 30,
				  0.1 + 0.05 * mib);
	}
	for (i = 0; i < ETA_WINDOW; i++) {
		double mib = 20.0 + 0.1 * (i % 3);

		eta_model_observe(m, ETA_RUN, (uint64_t)(mib * MIB), (uint64_t)(mib * MIB), 600,
				  (0.1 + 0.05 * mib) * noise[i % 7]);
	}
	c = eta_model_cost(m, ETA_RUN, 80 * MIB);
	assert_true(fabs(c - 4.1) < 0.4);
	/* the machine got twice as slow: the level follows, big and small */
	for (i = 0; i < ETA_WINDOW; i++) {
		double mib = 20.0 + 0.1 * (i % 3);

		eta_model_observe(m, ETA_RUN, (uint64_t)(mib * MIB), (uint64_t)(mib * MIB), 600,
				  2 * (0.1 + 0.05 * mib) * noise[i % 7]);
	}
	c = eta_model_cost(m, ETA_RUN, 80 * MIB);
	assert_true(fabs(c - 8.2) < 1.0);
	eta_model_free(&m);
}

/* A priority user takes a worker from a background job after
 * ETA_PREEMPT_S (one job stops at a time); the jobs' rests come back
 * before the next user who is not priority. */
static void eta_schedule_priority_preempts(void **state)
{
	struct eta_sched s;
	double running[2] = { 30, 20 };

	(void)state;
	eta_sched_init(&s, 2, running, 2);
	eta_sched_background(&s, 0);
	eta_sched_background(&s, 1);
	assert_true(near(eta_sched_add_priority(&s, 2), ETA_PREEMPT_S + 2));
	assert_true(near(eta_sched_add_priority(&s, 3), 2 * ETA_PREEMPT_S + 3));
	/* the rests (30 - 0.1 on the worker free at 2.1, 20 - 0.2 at 3.2),
	 * then this user on the one free first */
	assert_true(near(eta_sched_add(&s, 1), 2 * ETA_PREEMPT_S + 3 + 20 - 2 * ETA_PREEMPT_S + 1));
	assert_true(near(eta_sched_end(&s), 32));
	/* A priority user with a free worker takes it, nothing stops. */
	eta_sched_init(&s, 2, running, 1);
	eta_sched_background(&s, 0);
	assert_true(near(eta_sched_add_priority(&s, 2), 2));
	assert_true(near(eta_sched_add(&s, 1), 3));
	assert_true(near(eta_sched_end(&s), 30));
	/* Rests that no later user brought back still count at the end. */
	eta_sched_init(&s, 1, running, 1);
	eta_sched_background(&s, 0);
	assert_true(near(eta_sched_add_priority(&s, 2), ETA_PREEMPT_S + 2));
	assert_true(near(eta_sched_end(&s), 32));
}

static void eta_schedule_divides_among_workers(void **state)
{
	struct eta_sched s;
	double running[2] = { 5, 1 };

	(void)state;
	/* Two workers busy for 5 s and 1 s: the next user starts on the
	 * second, the one after on whichever is free first. */
	eta_sched_init(&s, 2, running, 2);
	assert_true(near(eta_sched_add(&s, 10), 11));
	assert_true(near(eta_sched_add(&s, 2), 7));
	assert_true(near(eta_sched_add(&s, 2), 9));
	assert_true(near(eta_sched_end(&s), 11));
	/* No running work, one worker: the sum. */
	eta_sched_init(&s, 1, NULL, 0);
	assert_true(near(eta_sched_add(&s, 3), 3));
	assert_true(near(eta_sched_add(&s, 4), 7));
	/* Workers are clamped to 1.. */
	eta_sched_init(&s, 0, NULL, 0);
	assert_int_equal(s.workers, 1);
}

struct walk {
	struct eta_model *m;
	struct eta_sched s;
	char names[16][MR_USER_NAME_MAX + 1];
	double eta[16];
	int n;
};

static int walk_one(void *arg, const struct queue_user_info *info)
{
	struct walk *w = arg;

	snprintf(w->names[w->n], sizeof(w->names[0]), "%s", info->name);
	w->eta[w->n++] = eta_sched_add(&w->s, eta_model_cost(w->m, ETA_RUN, info->size_hint));
	return 0;
}

static double eta_of(struct walk *w, const char *name)
{
	int i;

	for (i = 0; i < w->n; i++)
		if (strcmp(w->names[i], name) == 0)
			return w->eta[i];
	fail_msg("%s not in the walk", name);
	return -1;
}

/* The estimate follows the order the workers really take: logins first in
 * the order they came (even a big one ahead of small waiting users), then
 * waiting users smallest first, after the running work. */
static void eta_order_priority_background_running(void **state)
{
	struct qt t;
	struct walk w;
	double running[2] = { 30, 0 }; /* one worker busy 30 s more, one free */

	(void)state;
	memset(&w, 0, sizeof(w));
	w.m = eta_model_new();
	/* 1 s per user plus 1 s per MiB. */
	eta_model_observe(w.m, ETA_RUN, 0, 0, 0, 1);
	eta_model_observe(w.m, ETA_RUN, 10 * MIB, 0, 0, 11);
	eta_model_observe(w.m, ETA_RUN, 5 * MIB, 0, 0, 6);
	qt_setup(&t, 0);
	qt_add(&t, "big", 29 * MIB);
	qt_add(&t, "huge", 99 * MIB);
	qt_add(&t, "s1", 1 * MIB);
	qt_add(&t, "s3", 3 * MIB);
	qt_add(&t, "s2", 2 * MIB);
	qt_add(&t, "late", 9 * MIB);
	qt_next(&t, 0, "s1");
	qt_ask(&t, 'r', "late");
	qt_ask(&t, 'r', "huge");
	eta_sched_init(&w.s, 2, running, 2);
	queue_foreach_order(t.q, 1, walk_one, &w);
	assert_int_equal(w.n, 5);
	/* late (10 s) on the free worker: 10; huge (100 s) next free: 10+100. */
	assert_string_equal(w.names[0], "late");
	assert_true(near(eta_of(&w, "late"), 10));
	assert_true(near(eta_of(&w, "huge"), 110));
	/* The background: s2 (3 s) on the worker free at 30, s3 (4 s) after
	 * it, big last. */
	assert_true(near(eta_of(&w, "s2"), 33));
	assert_true(near(eta_of(&w, "s3"), 37));
	assert_true(near(eta_of(&w, "big"), 67));
	assert_true(near(eta_sched_end(&w.s), 110));
	/* s3 logs in: it joins the priority lane and goes ahead of s2. */
	qt_ask(&t, 'r', "s3");
	w.n = 0;
	eta_sched_init(&w.s, 2, running, 2);
	queue_foreach_order(t.q, 1, walk_one, &w);
	assert_true(near(eta_of(&w, "s3"), 34));
	assert_true(near(eta_of(&w, "s2"), 37));
	/* Background off: the waiting users are not in the order at all. */
	w.n = 0;
	eta_sched_init(&w.s, 2, running, 2);
	queue_foreach_order(t.q, 0, walk_one, &w);
	assert_int_equal(w.n, 3);
	qt_teardown(&t);
	eta_model_free(&w.m);
}

/* The rates survive a restart: saved, loaded by a new model, same answers;
 * a damaged or foreign file is refused and nothing is made up. */
static void eta_rates_survive_restart(void **state)
{
	char *dir = tu_tmpdir();
	int fd = tu_open_dir(dir);
	struct eta_model *m = eta_model_new(), *m2 = eta_model_new();
	struct mr_error err;
	size_t len;
	char *data;

	(void)state;
	assert_int_equal(eta_model_load(m2, fd, &err), 0); /* none yet */
	teach(m, 12);
	eta_model_observe(m, ETA_SYNC, MIB, 100, 3, 0.5);
	assert_int_equal(eta_model_save(m, fd, &err), 0);
	assert_int_equal(eta_model_load(m2, fd, &err), 1);
	assert_true(near(eta_model_cost(m2, ETA_RUN, 7 * MIB), eta_model_cost(m, ETA_RUN, 7 * MIB)));
	assert_true(near(eta_model_cost(m2, ETA_SYNC, MIB), 0.5));
	assert_true(eta_model_measured(m2));
	/* No temporary file left behind. */
	assert_int_equal(faccessat(fd, ETA_RATES_FILE ".tmp", F_OK, 0), -1);

	/* A flipped byte: refused by the checksum, the model is empty. */
	data = tu_read_file(dir, ETA_RATES_FILE, &len);
	assert_int_equal(len, 16 + 3 * (9 + 3 * ETA_BINS + 3 * ETA_WINDOW) * 8 + 8);
	data[40] ^= 1;
	tu_write_file(dir, ETA_RATES_FILE, data, len);
	assert_int_equal(eta_model_load(m2, fd, &err), -1);
	assert_non_null(strstr(err.msg, "checksum"));
	assert_false(eta_model_measured(m2));
	/* Torn (short): refused. */
	data[40] ^= 1;
	tu_write_file(dir, ETA_RATES_FILE, data, len - 3);
	assert_int_equal(eta_model_load(m2, fd, &err), -1);
	/* A window longer than the format's, checksum right: refused. */
	{
		double n = ETA_WINDOW + 1;
		uint64_t h;

		memcpy(data + 16 + 8, &n, 8); /* the first phase's n */
		h = XXH3_64bits(data + 16, len - 24);
		memcpy(data + len - 8, &h, 8);
		tu_write_file(dir, ETA_RATES_FILE, data, len);
		assert_int_equal(eta_model_load(m2, fd, &err), -1);
		assert_non_null(strstr(err.msg, "out of range"));
	}
	/* Older major versions (1 kept sums, 2 no writes and no users
	 * without a backup apart): refused, nothing made up. */
	data[4] = 1;
	tu_write_file(dir, ETA_RATES_FILE, data, len);
	assert_int_equal(eta_model_load(m2, fd, &err), -1);
	assert_non_null(strstr(err.msg, "version 1"));
	assert_false(eta_model_measured(m2));
	data[4] = 2;
	tu_write_file(dir, ETA_RATES_FILE, data, len);
	assert_int_equal(eta_model_load(m2, fd, &err), -1);
	assert_non_null(strstr(err.msg, "version 2"));
	assert_false(eta_model_measured(m2));
	/* Foreign. */
	tu_write_file(dir, ETA_RATES_FILE, "hello", 5);
	assert_int_equal(eta_model_load(m2, fd, &err), -1);
	free(data);
	eta_model_free(&m);
	eta_model_free(&m2);
	close(fd);
	tu_rmtree(dir);
}

static void eta_words(void **state)
{
	static const struct {
		double s;
		const char *text;
	} cases[] = {
		{ 0, "less than a minute" },      { 5, "less than a minute" },
		{ 59.9, "less than a minute" },   { 60, "about a minute" },
		{ 95, "about 2 minutes" },        { 180, "about 3 minutes" },
		{ 10 * 60, "about 10 minutes" },  { 12 * 60, "about 10 minutes" },
		{ 13 * 60, "about 15 minutes" },  { 40 * 60, "about 40 minutes" },
		{ 54 * 60, "about 55 minutes" },  { 60 * 60, "about an hour" },
		{ 80 * 60, "about an hour" },     { 2 * 3600, "about 2 hours" },
		{ 2.4 * 3600, "about 2 hours" },  { 2.6 * 3600, "about 3 hours" },
		{ 30 * 3600, "about 30 hours" },  { 3 * 86400, "about 3 days" },
		{ -1, "unknown" },
	};
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mr_human_duration(cases[i].s, buf, sizeof(buf));
		if (strcmp(buf, cases[i].text) != 0)
			fail_msg("%.1f s: \"%s\", want \"%s\"", cases[i].s, buf, cases[i].text);
	}
}

/* A size the runs have shown costs what they showed, when cost is no line
 * in size: many small users, then median users that cost far more than a
 * line through the small ones says. Regression: the level of the recent
 * runs was taken against the line and applied again to the bins' means,
 * which already held those runs (told 1.5 to 2x at half way). */
static void eta_seen_sizes_cost_what_they_did(void **state)
{
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	/* tiny users from the background, big ones that logged in, then
	 * the median users the background reaches: no line goes through
	 * all three */
	for (i = 0; i < 200; i++)
		eta_model_observe(m, ETA_RUN, MIB / 32, MIB / 16, 20, 0.01);
	for (i = 0; i < 20; i++)
		eta_model_observe(m, ETA_RUN, 16 * MIB, 18 * MIB, 500, 0.1);
	for (i = 0; i < 64; i++)
		eta_model_observe(m, ETA_RUN, MIB / 2, MIB, 90, 0.03);
	c = eta_model_cost(m, ETA_RUN, MIB / 2);
	if (fabs(c - 0.03) > 0.003)
		fail_msg("a median user: %.4f s, its runs took 0.03 s", c);
	c = eta_model_cost(m, ETA_RUN, 16 * MIB);
	if (fabs(c - 0.1) > 0.015)
		fail_msg("a big user: %.4f s, its runs took 0.1 s", c);
	eta_model_free(&m);
}

/* A stall among the few runs of a size does not set its cost: both
 * workers' runs stall together now and then (the target's journal), and
 * a bin of four logins, one of them stalled, told every waiting user of
 * that size twice what it cost. Where runs of a size are many, their
 * stalls count in full (eta_slow_runs_count). Regression: the bin's mean
 * took the stall whole (0.10 s told for 0.06 s). */
static void eta_one_stall_among_few(void **state)
{
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	/* the background's tiny users and a few logins of every size */
	for (i = 0; i < 200; i++)
		eta_model_observe(m, ETA_RUN, MIB / 32, MIB / 16, 20, 0.02);
	for (i = 0; i < 6; i++) {
		eta_model_observe(m, ETA_RUN, MIB, MIB, 60, 0.035);
		eta_model_observe(m, ETA_RUN, 8 * MIB, 9 * MIB, 300, 0.1);
	}
	/* four users of 3 MiB log in; one stalls with the other worker */
	for (i = 0; i < 4; i++)
		eta_model_observe(m, ETA_RUN, 3 * MIB, 3 * MIB, 100, i == 1 ? 0.7 : 0.06);
	for (i = 0; i < 20; i++)
		eta_model_observe(m, ETA_RUN, MIB / 32, MIB / 16, 20, 0.02);
	c = eta_model_cost(m, ETA_RUN, 3 * MIB);
	if (c < 0.04 || c > 0.09)
		fail_msg("a user of 3 MiB: %.4f s, its runs took 0.06 s but for one stall", c);
	eta_model_free(&m);
}

/* Past the largest size seen. The background's tiny users, two logins of
 * 2.3 MiB and the first user of 10.5 MiB have run; then a user of 120 MiB
 * logs in (a trace of the estimates bench: its runs took 0.6 to 1.3 s, and
 * bigger mailboxes hold bigger messages, so cost grows slower than size).
 * Regressions: the line's slope carried on told 1.6 s; and when that first
 * 10.5 MiB run was a stall (0.82 s beside the other worker, where the
 * shape said 0.2 s) it counted whole and the line through it told 9.8 s. */
static void eta_past_the_largest_size(void **state)
{
	struct eta_model *m = eta_model_new(), *calm = eta_model_new();
	double c, c_calm;
	int i, k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct eta_model *x = k == 0 ? m : calm;

		/* the background's tiny users, two logins of 2.3 MiB */
		for (i = 0; i < 30; i++)
			eta_model_observe(x, ETA_RUN, MIB / 36, MIB / 16, 19, 0.0135);
		for (i = 0; i < 2; i++)
			eta_model_observe(x, ETA_RUN, 2.3 * MIB, 2.5 * MIB, 90, 0.055);
		/* the first user of 10.5 MiB: a stall, or a run like its peers */
		eta_model_observe(x, ETA_RUN, 10.5 * MIB, 11 * MIB, 380, k == 0 ? 0.824 : 0.15);
		for (i = 0; i < 20; i++)
			eta_model_observe(x, ETA_RUN, MIB / 36, MIB / 16, 19, 0.0135);
	}
	c = eta_model_cost(m, ETA_RUN, 120 * MIB);
	c_calm = eta_model_cost(calm, ETA_RUN, 120 * MIB);
	if (c_calm < 0.4 || c_calm > 1.3)
		fail_msg("a user of 120 MiB: %.2f s, such runs took 0.6 to 1.3 s", c_calm);
	if (c > 2.6)
		fail_msg("a user of 120 MiB after a stall: %.2f s, such runs took 0.6 to 1.3 s", c);
	eta_model_free(&m);
	eta_model_free(&calm);
}

/* Far past a narrow span of sizes. At 5 % of a restore only tiny users
 * had run, 28 to 110 KiB, the last of them slow (0.031 s for 0.014): the
 * slope through their bins was 0.09 s per MiB, and a login of 10 MiB was
 * told 0.93 s for a run of 0.15 s. A slope measured over 0.08 MiB says
 * little 10 MiB away; the prior slope takes over there. */
static void eta_far_past_a_narrow_span(void **state)
{
	struct eta_model *m = eta_model_new();
	double c;
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		eta_model_observe(m, ETA_RUN, 28 * 1024, 72 * 1024, 19, 0.0142);
	eta_model_observe(m, ETA_RUN, 61 * 1024, 145 * 1024, 22, 0.013);
	eta_model_observe(m, ETA_RUN, 110 * 1024, 280 * 1024, 28, 0.031);
	c = eta_model_cost(m, ETA_RUN, 10 * MIB);
	if (c > 0.4)
		fail_msg("a login of 10 MiB after tiny users only: %.2f s, such runs take 0.15 s", c);
	eta_model_free(&m);
}

/* The first 32 runs of a restore (a trace of the estimates bench): users
 * without a backup, three tiny users, then two logins of 64 and 115 KiB
 * that stalled together (0.84 s each: both workers waited on one syncfs),
 * then a user of 2.2 MiB. ended_apart: seconds between the stalled runs'
 * ends (0.002 as they were). Returns the cost of a 30 KiB user. */
static double first_runs(double ended_apart)
{
	static const struct {
		uint64_t size, bytes;
		double took;
	} runs[] = {
		{ 0, 16268514, 0.262 }, { 0, 5221935, 0.048 },  { 0, 13423787, 0.337 },
		{ 0, 4812365, 0.059 },  { 0, 5252974, 0.082 },  { 0, 3053447, 0.063 },
		{ 0, 6703414, 0.101 },  { 0, 5849146, 0.088 },  { 0, 6230017, 0.054 },
		{ 0, 946145, 0.058 },   { 0, 976634, 0.043 },   { 0, 2593322, 0.052 },
		{ 0, 2316868, 0.039 },  { 0, 3016261, 0.052 },  { 0, 3532962, 0.047 },
		{ 0, 10849387, 0.071 }, { 0, 1220849, 0.062 },  { 0, 1159773, 0.043 },
		{ 0, 1761386, 0.068 },  { 0, 7238949, 0.101 },  { 0, 5710925, 0.067 },
		{ 0, 3553531, 0.077 },  { 0, 7349756, 0.075 },  { 0, 4110391, 0.052 },
		{ 0, 2824990, 0.074 },  { 27004, 72642, 0.021 }, { 0, 1185500, 0.053 },
		{ 28618, 74801, 0.029 }, { 28656, 230244, 0.034 }, { 64452, 148639, 0.837 },
		{ 115520, 285836, 0.835 }, { 2353638, 4514426, 0.066 },
	};
	struct eta_model *m = eta_model_new();
	double now = 100, c;
	size_t i;

	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		/* two workers: a run ends every half run or so; the second
		 * stalled run ends ended_apart after the first */
		now += runs[i].size == 115520 ? ended_apart : runs[i].took / 2;
		eta_model_observe_at(m, ETA_RUN, runs[i].size, runs[i].bytes, 20, runs[i].took, now);
	}
	c = eta_model_cost(m, ETA_RUN, 30 * 1024);
	eta_model_free(&m);
	return c;
}

/* Two runs that stalled together among the first are the disk, not their
 * sizes. Regression: each counted at 3x its shape, the second's shape
 * already holding the first's, and the line through the four thin bins
 * told every tiny user 0.083 s where they take 0.014 to 0.03 (the shows
 * asked then were told 4.5x their waits). Runs of a size that costs more
 * end on their own: the same two runs 0.3 s apart still count at 3x. */
static void eta_a_stall_pair_among_the_first(void **state)
{
	double together = first_runs(0.002), apart = first_runs(0.3);

	(void)state;
	if (together > 0.04)
		fail_msg("a tiny user after a stall pair: %.3f s, such runs take 0.014 to 0.03 s",
			 together);
	if (apart < together + 0.01)
		fail_msg("two far runs that ended apart: %.3f s, together %.3f s", apart, together);
}

/* Logins yet to come: the hazard of a login per waiting user and second,
 * and the stretch of a wait behind which users log in. */
static void eta_logins_yet_to_come(void **state)
{
	struct eta_jumps j;
	double h, t;
	int i;

	(void)state;
	eta_jumps_init(&j, 0, 100);
	/* no login yet: nothing stretches */
	assert_true(eta_jumps_hazard(&j, 30) == 0);
	assert_true(eta_jumps_stretch(0, 50, 2) == 1);
	/* one login a second among 100 waiting users for 10 minutes */
	for (i = 1; i <= 600; i++)
		eta_jumps_note(&j, i, 100, 1);
	h = eta_jumps_hazard(&j, 600);
	assert_true(h > 0.0095 && h < 0.0105);
	/* 50 s of runs behind, 2 workers: a quarter of their time goes to
	 * logins, the line moves at three quarters of its speed */
	assert_true(fabs(eta_jumps_stretch(0.01, 50, 2) - 4.0 / 3.0) < 1e-9);
	/* logins faster than the workers: the most it says is 4x */
	assert_true(fabs(eta_jumps_stretch(1.0, 50, 2) - 1 / (1 - ETA_JUMP_MAX)) < 1e-9);
	/* the rush ends: an hour without logins forgets it */
	eta_jumps_note(&j, 4200, 100, 0);
	assert_true(eta_jumps_hazard(&j, 4200) < h / 100);
	/* one early login among a few waiting users is not a rush: the
	 * prior of 10 quiet seconds holds it back */
	eta_jumps_init(&j, 0, 5);
	eta_jumps_note(&j, 0.5, 4, 1);
	t = eta_jumps_hazard(&j, 0.5);
	assert_true(t > 0 && t < 1.0 / (4 * ETA_JUMP_PRIOR_S) + 1e-9);
	/* time never runs back: a note from an older clock reading adds
	 * nothing to the exposure */
	eta_jumps_note(&j, 0.2, 4, 0);
	assert_true(eta_jumps_hazard(&j, 0.5) <= t + 1e-12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(eta_nothing_measured_is_no_number),
		cmocka_unit_test(eta_learns_size_and_per_user_cost),
		cmocka_unit_test(eta_no_slope_from_noise),
		cmocka_unit_test(eta_slow_start_is_not_the_rate),
		cmocka_unit_test(eta_slow_runs_count),
		cmocka_unit_test(eta_follows_a_slower_machine),
		cmocka_unit_test(eta_no_backup_users_apart),
		cmocka_unit_test(eta_prior_from_writes),
		cmocka_unit_test(eta_slope_from_every_size),
		cmocka_unit_test(eta_schedule_divides_among_workers),
		cmocka_unit_test(eta_schedule_priority_preempts),
		cmocka_unit_test(eta_order_priority_background_running),
		cmocka_unit_test(eta_rates_survive_restart),
		cmocka_unit_test(eta_words),
		cmocka_unit_test(eta_logins_yet_to_come),
		cmocka_unit_test(eta_seen_sizes_cost_what_they_did),
		cmocka_unit_test(eta_one_stall_among_few),
		cmocka_unit_test(eta_past_the_largest_size),
		cmocka_unit_test(eta_far_past_a_narrow_span),
		cmocka_unit_test(eta_a_stall_pair_among_the_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
