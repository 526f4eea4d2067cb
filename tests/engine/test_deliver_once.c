/*
 * test_deliver_once.c: a delivery repeated with the same id is stored once
 * (engine_deliver_id, mail/ids.c), held or delivered, also when the first
 * attempt was cut off between the message being safe and its answer:
 * simulated by failing the write of the "done" record, and for real by
 * kill -9 of a process delivering a stream of messages at random moments,
 * then delivering again every message whose answer it had not given (what
 * a mail transfer agent does). Old code had no ids: every repeat doubled.
 */
#include "tests/testutil.h"
#include "engine/engine.h"
#include "mail/mail.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct env {
	char *dir, *b, *s, *t;
	struct engine *e;
};

static struct env *env_new(const char *user)
{
	struct env *env = calloc(1, sizeof(*env));
	struct engine_config cfg = { .max_remove_pct = -1, .preserve_owner = -1 };
	struct mr_error err = { 0 };

	assert_non_null(env);
	env->dir = tu_tmpdir();
	env->b = tu_path(env->dir, "B");
	env->s = tu_path(env->dir, "S");
	env->t = tu_path(env->dir, "T");
	tu_sh("mkdir -p '%s' '%s/%s/cur' '%s/%s/new' '%s/%s/tmp'", env->b, env->s, user, env->s,
	      user, env->s, user);
	tu_write_file(env->s, "x/cur/1700000000.M1P1.host,S=6:2,S", "hello\n", 6);
	tu_sh("cp '%s/x/cur/'* '%s/%s/cur/' && rm -rf '%s/x'", env->s, env->s, user, env->s);
	cfg.backups = env->b;
	cfg.source = env->s;
	cfg.target = env->t;
	if (engine_open(&cfg, &env->e, &err) < 0)
		fail_msg("engine_open: %s", err.msg);
	mr_log_quiet = 1;
	return env;
}

static void env_free(struct env *env)
{
	mr_io_fault_clear();
	engine_close(&env->e);
	free(env->b);
	free(env->s);
	free(env->t);
	tu_rmtree(env->dir);
	free(env);
}

static void activate(struct env *env, const char *user)
{
	struct engine_job job;

	engine_job_init(&job, user);
	assert_int_equal(engine_run(env->e, &job), ENGINE_ACTIVE);
	engine_job_free(&job);
}

/* Delivers msg with id; returns *repeat. */
static int deliver(struct env *env, const char *user, const char *id, const char *msg,
		   int *held_r)
{
	struct mr_error err = { 0 };
	int held = -1, repeat = -1;

	if (engine_deliver_id(env->e, user, id, msg, strlen(msg), &held, &repeat, &err) < 0)
		fail_msg("engine_deliver_id(%s): %s", id, err.msg);
	if (held_r)
		*held_r = held;
	return repeat;
}

/* Number of files in T/<user>/{new,cur} holding text. */
static int copies(struct env *env, const char *user, const char *text)
{
	char cmd[8192], out[64] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "grep -lxF -- '%s' '%s/%s'/new/* '%s/%s'/cur/* 2>/dev/null | wc -l",
		 text, env->t, user, env->t, user);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (fgets(out, sizeof(out), p) == NULL)
		out[0] = '\0';
	pclose(p);
	return atoi(out);
}

static uint64_t held_count(struct env *env, const char *user)
{
	struct mr_error err = { 0 };
	uint64_t n = 99;

	assert_int_equal(mail_held_count(engine_mail_store(env->e), user, &n, NULL, &err), 0);
	return n;
}

static void repeat_is_stored_once_held_and_delivered(void **state)
{
	struct env *env = env_new("ann");
	int held;

	(void)state;
	/* held: the second delivery of Q1 is a repeat */
	assert_int_equal(deliver(env, "ann", "Q1/ann@x", "Subject: one\n\n1\n", &held), 0);
	assert_int_equal(held, 1);
	assert_int_equal(deliver(env, "ann", "Q1/ann@x", "Subject: one\n\n1\n", &held), 1);
	assert_int_equal(held, 1);
	assert_int_equal(held_count(env, "ann"), 1);
	/* another id with the same text is another message */
	assert_int_equal(deliver(env, "ann", "Q2/ann@x", "Subject: one\n\n1\n", NULL), 0);
	assert_int_equal(held_count(env, "ann"), 2);
	/* released at activation; a repeat after it stays a repeat */
	activate(env, "ann");
	assert_int_equal(copies(env, "ann", "Subject: one"), 2);
	assert_int_equal(deliver(env, "ann", "Q1/ann@x", "Subject: one\n\n1\n", &held), 1);
	assert_int_equal(copies(env, "ann", "Subject: one"), 2);
	/* delivered into T/ann: once, also after the user's client moved it */
	assert_int_equal(deliver(env, "ann", "Q3/ann@x", "Subject: three\n\n3\n", &held), 0);
	assert_int_equal(held, 0);
	assert_int_equal(deliver(env, "ann", "Q3/ann@x", "Subject: three\n\n3\n", &held), 1);
	assert_int_equal(copies(env, "ann", "Subject: three"), 1);
	/* without an id nothing is remembered (an agent that gives none) */
	assert_int_equal(deliver(env, "ann", NULL, "Subject: four\n\n4\n", NULL), 0);
	assert_int_equal(deliver(env, "ann", NULL, "Subject: four\n\n4\n", NULL), 0);
	assert_int_equal(copies(env, "ann", "Subject: four"), 2);
	env_free(env);
}

/* The "done" record of the first attempt is lost (its write fails: the same
 * state a kill -9 right after the message was safe leaves). */
static void answer_lost_after_the_message_was_safe(void **state)
{
	struct env *env = env_new("bea");
	struct mr_io_fault f = { 0 };
	int held;

	(void)state;
	/* ids/bea is written: header, "begin", then "done", which fails */
	f.op = MR_IO_WRITE;
	f.name_contains = "bea";
	f.errnum = EIO;
	f.after = 2;
	f.count = 1;
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(deliver(env, "bea", "Q1/bea@x", "Subject: held\n\nh\n", &held), 0);
	assert_int_equal(mr_io_fault_fired(), 1);
	mr_io_fault_clear();
	assert_int_equal(deliver(env, "bea", "Q1/bea@x", "Subject: held\n\nh\n", &held), 1);
	assert_int_equal(held, 1);
	assert_int_equal(held_count(env, "bea"), 1);

	activate(env, "bea");
	f.after = 1;  /* the file exists now: "begin", then "done" fails */
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(deliver(env, "bea", "Q2/bea@x", "Subject: direct\n\nd\n", &held), 0);
	assert_int_equal(mr_io_fault_fired(), 1);
	mr_io_fault_clear();
	assert_int_equal(held, 0);
	/* the user's client saw it meanwhile: new/ to cur/ with flags */
	assert_int_equal(tu_sh("cd '%s/bea' && for f in new/*; do mv \"$f\" \"cur/${f#new/}:2,S\"; done",
			       env->t), 0);
	assert_int_equal(deliver(env, "bea", "Q2/bea@x", "Subject: direct\n\nd\n", &held), 1);
	assert_int_equal(copies(env, "bea", "Subject: direct"), 1);
	env_free(env);
}

/* The first attempt stopped after "begin", before the message was written:
 * the repeat must store it (never lose it). */
static void stopped_before_the_message_is_stored_by_the_repeat(void **state)
{
	struct env *env = env_new("cy");
	struct mr_io_fault f = { 0 };
	struct mr_error err = { 0 };
	int held = 0, repeat = 0;
	const char *msg = "Subject: late\n\nl\n";

	(void)state;
	/* the held message's fsync fails: not stored, the delivery fails */
	f.op = MR_IO_FSYNC;
	f.name_contains = "tmp.";
	f.errnum = EIO;
	f.count = 1;
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(engine_deliver_id(env->e, "cy", "Q9/cy@x", msg, strlen(msg), &held,
					   &repeat, &err), -1);
	assert_int_equal(mr_io_fault_fired(), 1);
	mr_io_fault_clear();
	assert_int_equal(held_count(env, "cy"), 0);
	assert_int_equal(deliver(env, "cy", "Q9/cy@x", msg, &held), 0);
	assert_int_equal(held_count(env, "cy"), 1);
	assert_int_equal(deliver(env, "cy", "Q9/cy@x", msg, &held), 1);
	assert_int_equal(held_count(env, "cy"), 1);
	env_free(env);
}

/* kill -9 a child delivering messages 0..N-1 (each answered through a
 * pipe) at random moments; the parent then delivers, like an MTA, every
 * message whose answer it did not get. In the end each is there once. */
static void kill9_during_a_stream_of_deliveries(void **state)
{
	struct env *env = env_new("dee");
	enum { N = 40 };
	char id[32], msg[64], text[32];
	int confirmed[N] = { 0 }, round, i;

	(void)state;
	srand((unsigned)time(NULL));
	for (round = 0; round < 4; round++) {
		int fds[2];
		pid_t pid;
		unsigned char c;

		if (round == 2)
			activate(env, "dee");  /* rounds 2, 3: straight into T/dee */
		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			for (i = 0; i < N; i++) {
				int held, repeat;
				struct mr_error err = { 0 };

				if (confirmed[i])
					continue;
				snprintf(id, sizeof(id), "Q%d-%d/dee@x", round / 2, i);
				snprintf(msg, sizeof(msg), "Subject: m%d-%d\n\n.\n", round / 2, i);
				if (engine_deliver_id(env->e, "dee", id, msg, strlen(msg), &held,
						      &repeat, &err) < 0)
					_exit(2);
				c = (unsigned char)i;
				if (write(fds[1], &c, 1) != 1)
					_exit(3);
			}
			_exit(0);
		}
		close(fds[1]);
		usleep((useconds_t)(rand() % 40000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (read(fds[0], &c, 1) == 1)
			confirmed[c] = 1;
		close(fds[0]);
		if (round % 2 == 1) {
			/* the MTA's retry: every unconfirmed message again */
			for (i = 0; i < N; i++) {
				snprintf(id, sizeof(id), "Q%d-%d/dee@x", round / 2, i);
				snprintf(msg, sizeof(msg), "Subject: m%d-%d\n\n.\n", round / 2, i);
				if (!confirmed[i])
					(void)deliver(env, "dee", id, msg, NULL);
			}
			if (round == 1)
				activate(env, "dee");
			for (i = 0; i < N; i++) {
				snprintf(text, sizeof(text), "Subject: m%d-%d\n", round / 2, i);
				text[strlen(text) - 1] = '\0';
				if (copies(env, "dee", text) != 1)
					fail_msg("%s: %d copies", text, copies(env, "dee", text));
			}
			memset(confirmed, 0, sizeof(confirmed));
		}
	}
	env_free(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(repeat_is_stored_once_held_and_delivered),
		cmocka_unit_test(answer_lost_after_the_message_was_safe),
		cmocka_unit_test(stopped_before_the_message_is_stored_by_the_repeat),
		cmocka_unit_test(kill9_during_a_stream_of_deliveries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
