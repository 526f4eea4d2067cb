/*
 * test_engine.c: a user's whole run (engine.c): backup + source -> active
 * T/<user> equal to the source; the attention cases; held mail; fsync
 * failures mean "not done"; cancellation; kill -9 at random moments.
 *
 * Equality is checked with rsync's own comparison (`rsync -anc --delete
 * --itemize-changes` prints nothing when the trees agree in content, modes,
 * times and links), independent of our verify.
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
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct env {
	char *dir, *b, *s, *t;
	struct engine *e;
};

static void make_user(const char *s, const char *user, int variant)
{
	char rel[256], body[4096];
	int i;

	for (i = 0; i < 20; i++) {
		snprintf(rel, sizeof(rel), "%s/cur/1700000%03d.M1P1.host,S=%d:2,S", user, i, 100 + i);
		memset(body, 'a' + i % 26, sizeof(body));
		tu_write_file(s, rel, body, (size_t)(100 + i * 50));
	}
	snprintf(rel, sizeof(rel), "%s/new/1700001000.M2P1.host", user);
	tu_write_file(s, rel, "From: x\n\nhello\n", 15);
	snprintf(rel, sizeof(rel), "%s/.Sent/cur/1700002000.M3P1.host:2,S", user);
	tu_write_file(s, rel, "sent mail\n", 10);
	snprintf(rel, sizeof(rel), "%s/dovecot.index.cache", user);
	tu_write_file(s, rel, variant ? "cache-v2-xxxxxxxxxxxxxxxxxxx" : "cache-v1", variant ? 28 : 8);
	tu_sh("mkdir -p '%s/%s/tmp' && ln -sf cur '%s/%s/link-to-cur' && chmod 0700 '%s/%s'", s, user,
	      s, user, s, user);
}

/* Backs up S/<user> with bsdtar (a real archive from the stock tool). */
static void backup_with_bsdtar(const char *s, const char *b, const char *user)
{
	assert_int_equal(tu_sh("cd '%s/%s' && bsdtar -czf '%s/%s.tar.gz' .", s, user, b, user), 0);
}

static int trees_equal(const char *a, const char *b)
{
	if (tu_sh("test -z \"$(rsync -anc --delete --itemize-changes '%s/' '%s/' 2>&1)\"", a, b) == 0)
		return 1;
	tu_sh("rsync -anc --delete --itemize-changes '%s/' '%s/' 2>&1 | head -5 >&2", a, b);
	return 0;
}

static struct env *env_new(void)
{
	struct env *env = calloc(1, sizeof(*env));
	struct engine_config cfg = { .max_remove_pct = -1, .preserve_owner = -1 };
	struct mr_error err = { 0 };

	env->dir = tu_tmpdir();
	env->b = tu_path(env->dir, "B");
	env->s = tu_path(env->dir, "S");
	env->t = tu_path(env->dir, "T");
	tu_sh("mkdir -p '%s' '%s'", env->b, env->s);
	cfg.backups = env->b;
	cfg.source = env->s;
	cfg.target = env->t;
	(void)cfg;
	(void)err;
	return env;
}

static void env_open(struct env *env)
{
	struct engine_config cfg = { .max_remove_pct = -1, .preserve_owner = -1 };
	struct mr_error err = { 0 };

	cfg.backups = env->b;
	cfg.source = env->s;
	cfg.target = env->t;
	if (engine_open(&cfg, &env->e, &err) < 0)
		fail_msg("engine_open: %s", err.msg);
}

static void env_free(struct env *env)
{
	engine_close(&env->e);
	free(env->b);
	free(env->s);
	free(env->t);
	tu_rmtree(env->dir);
	free(env);
}

static enum engine_result run_user(struct env *env, const char *user, struct engine_job *job)
{
	engine_job_init(job, user);
	return engine_run(env->e, job);
}

static void backup_then_day_of_changes_goes_active(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	char ta[4096], sa[4096];

	(void)state;
	make_user(env->s, "alice", 0);
	backup_with_bsdtar(env->s, env->b, "alice");
	/* a day passes: a flag change, a new message, a deletion, a cache update */
	tu_sh("cd '%s/alice' && mv cur/1700000001.M1P1.host,S=101:2,S cur/1700000001.M1P1.host,S=101:2,RS"
	      " && rm cur/1700000002.M1P1.host,S=102:2,S && echo new > new/1700009999.M9P1.host"
	      " && echo cache-v2-xxxxxxxxxxxxxxx > dovecot.index.cache", env->s);
	env_open(env);
	assert_int_equal(run_user(env, "alice", &job), ENGINE_ACTIVE);
	assert_true(job.had_backup);
	assert_true(job.restore.files > 0);
	assert_true(job.sync.renamed >= 1);
	assert_int_equal(job.sync.attic_files, 1);
	engine_job_free(&job);
	snprintf(sa, sizeof(sa), "%s/alice", env->s);
	snprintf(ta, sizeof(ta), "%s/alice", env->t);
	assert_true(trees_equal(sa, ta));
	/* the work copy is gone (renamed), the deleted message is in the attic */
	assert_int_equal(tu_sh("test -e '%s/.mailrestore/work/alice'", env->t), 1);
	assert_int_equal(tu_sh("test -f '%s/.mailrestore/attic/alice/cur/1700000002.M1P1.host,S=102:2,S'",
			       env->t), 0);
	/* running again is a no-op */
	assert_int_equal(run_user(env, "alice", &job), ENGINE_ACTIVE);
	engine_job_free(&job);
	env_free(env);
}

static void missing_source_folder_is_attention_with_backup_kept(void **state)
{
	struct env *env = env_new();
	struct engine_job job;

	(void)state;
	make_user(env->s, "bob", 0);
	backup_with_bsdtar(env->s, env->b, "bob");
	tu_sh("rm -rf '%s/bob'", env->s);
	env_open(env);
	assert_int_equal(run_user(env, "bob", &job), ENGINE_ATTENTION);
	assert_non_null(strstr(job.reason, "missing from the source"));
	engine_job_free(&job);
	assert_int_equal(tu_sh("test -e '%s/bob'", env->t), 1);
	assert_int_equal(tu_sh("test -f '%s/.mailrestore/work/bob/new/1700001000.M2P1.host'", env->t), 0);
	/* a second run trusts the extracted marker of this boot... */
	assert_int_equal(run_user(env, "bob", &job), ENGINE_ATTENTION);
	assert_int_equal(job.restore.entries, 0);
	engine_job_free(&job);
	/* ...but not one from another boot: extraction runs again, skipping
	 * the files that are complete */
	assert_int_equal(tu_sh("sed -i 's/^boot .*/boot 00000000-dead-beef-0000-000000000000/' "
			       "'%s/.mailrestore/progress/bob'", env->t), 0);
	assert_int_equal(run_user(env, "bob", &job), ENGINE_ATTENTION);
	assert_true(job.restore.entries > 0);
	assert_true(job.restore.skipped > 0);
	engine_job_free(&job);
	env_free(env);
}

static void source_only_user_is_copied_whole(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	char sa[4096], ta[4096];

	(void)state;
	make_user(env->s, "carol", 0);
	env_open(env);
	assert_int_equal(run_user(env, "carol", &job), ENGINE_ACTIVE);
	assert_false(job.had_backup);
	engine_job_free(&job);
	snprintf(sa, sizeof(sa), "%s/carol", env->s);
	snprintf(ta, sizeof(ta), "%s/carol", env->t);
	assert_true(trees_equal(sa, ta));
	env_free(env);
}

static void corrupt_backup_is_made_up_by_the_source(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	char sa[4096], ta[4096];

	(void)state;
	make_user(env->s, "dave", 0);
	backup_with_bsdtar(env->s, env->b, "dave");
	tu_sh("truncate -s 100 '%s/dave.tar.gz'", env->b);
	env_open(env);
	assert_int_equal(run_user(env, "dave", &job), ENGINE_ACTIVE);
	assert_true(mr_problems_count(&job.problems, MR_PROBLEM_ARCHIVE) >= 1);
	engine_job_free(&job);
	snprintf(sa, sizeof(sa), "%s/dave", env->s);
	snprintf(ta, sizeof(ta), "%s/dave", env->t);
	assert_true(trees_equal(sa, ta));
	env_free(env);
}

static void held_mail_is_released_at_activation(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	int held = 0;
	struct mr_error err = { 0 };
	uint64_t count = 9;

	(void)state;
	make_user(env->s, "erin", 0);
	backup_with_bsdtar(env->s, env->b, "erin");
	env_open(env);
	assert_int_equal(engine_deliver(env->e, "erin", "Subject: one\n\n1\n", 16, &held, &err), 0);
	assert_int_equal(held, 1);
	assert_int_equal(engine_deliver(env->e, "erin", "Subject: two\n\n2\n", 16, &held, &err), 0);
	assert_int_equal(run_user(env, "erin", &job), ENGINE_ACTIVE);
	assert_int_equal(job.released_mail, 2);
	engine_job_free(&job);
	assert_int_equal(tu_sh("test $(grep -l 'Subject: one' '%s'/erin/new/* | wc -l) = 1", env->t), 0);
	assert_int_equal(tu_sh("test $(grep -l 'Subject: two' '%s'/erin/new/* | wc -l) = 1", env->t), 0);
	assert_int_equal(mail_held_count(engine_mail_store(env->e), "erin", &count, NULL, &err), 0);
	assert_int_equal(count, 0);
	/* now active: delivered straight into the Maildir */
	assert_int_equal(engine_deliver(env->e, "erin", "Subject: three\n\n3\n", 18, &held, &err), 0);
	assert_int_equal(held, 0);
	assert_int_equal(tu_sh("test $(grep -l 'Subject: three' '%s'/erin/new/* | wc -l) = 1", env->t), 0);
	env_free(env);
}

static void damaged_held_message_does_not_block_activation(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	struct mr_error err = { 0 };
	int held = 0;

	(void)state;
	make_user(env->s, "jay", 0);
	env_open(env);
	assert_int_equal(engine_deliver(env->e, "jay", "Subject: bad\n\nb\n", 16, &held, &err), 0);
	assert_int_equal(engine_deliver(env->e, "jay", "Subject: good\n\ng\n", 17, &held, &err), 0);
	/* flip a byte in the first held file's lz4 frame */
	assert_int_equal(tu_sh("f=$(ls '%s'/.mailrestore/state/held/jay/*1.mrmail) && "
			       "printf 'Z' | dd of=\"$f\" bs=1 seek=50 conv=notrunc 2>/dev/null", env->t), 0);
	assert_int_equal(run_user(env, "jay", &job), ENGINE_ACTIVE);
	assert_int_equal(job.released_mail, 1);
	engine_job_free(&job);
	assert_int_equal(tu_sh("grep -l 'Subject: good' '%s'/jay/new/* >/dev/null", env->t), 0);
	/* the damaged one is kept for an operator */
	assert_int_equal(tu_sh("ls '%s'/.mailrestore/state/held/jay/damaged.* >/dev/null", env->t), 0);
	env_free(env);
}

/* Two runs on one user never overlap: the second is refused while the
 * first holds the user's lock (a daemon and a restore-user, two threads). */
static void one_run_per_user_at_a_time(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	int fds[2];
	char c;
	pid_t pid;

	(void)state;
	make_user(env->s, "lee", 0);
	env_open(env);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* hold the lock the way a run does, until killed */
		char path[4200];
		int l;

		snprintf(path, sizeof(path), "%s/.mailrestore/locks/lee", env->t);
		l = open(path, O_RDWR | O_CREAT, 0600);
		close(fds[0]);
		if (l < 0 || flock(l, LOCK_EX) < 0)
			_exit(1);
		if (write(fds[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	assert_int_equal(run_user(env, "lee", &job), ENGINE_FAILED);
	assert_non_null(strstr(job.reason, "another mailrestore run"));
	engine_job_free(&job);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fds[0]);
	assert_int_equal(run_user(env, "lee", &job), ENGINE_ACTIVE);
	engine_job_free(&job);
	env_free(env);
}

/* Users prepared on their own and activated together: one batch, each
 * with its own result; a user whose T/<user> appeared meanwhile goes to
 * attention without harm to the others; held mail lands in the right one. */
static void batch_activation(void **state)
{
	struct env *env = env_new();
	struct engine_job jobs[3], *ptrs[3];
	enum engine_result res[3];
	static const char *users[3] = { "m1", "m2", "m3" };
	struct mr_error err = { 0 };
	char sa[4096], ta[4096];
	int i, held = 0;

	(void)state;
	for (i = 0; i < 3; i++) {
		make_user(env->s, users[i], 0);
		backup_with_bsdtar(env->s, env->b, users[i]);
	}
	env_open(env);
	assert_int_equal(engine_deliver(env->e, "m2", "Subject: batch\n\nb\n", 18, &held, &err), 0);
	for (i = 0; i < 3; i++) {
		engine_job_init(&jobs[i], users[i]);
		assert_int_equal(engine_prepare(env->e, &jobs[i]), ENGINE_READY);
		assert_true(jobs[i].lock_fd >= 0);
		ptrs[i] = &jobs[i];
	}
	/* not active yet: nothing in T */
	assert_int_equal(tu_sh("test -e '%s/m1' || test -e '%s/m2'", env->t, env->t), 1);
	/* The mail server made T/m3 meanwhile, with a message: merged. */
	tu_sh("mkdir -p '%s/m3/new'", env->t);
	tu_write_file(env->t, "m3/new/1800000000.M1P1.mx", "early", 5);
	engine_activate_batch(env->e, ptrs, 3, res);
	assert_int_equal(res[0], ENGINE_ACTIVE);
	assert_int_equal(res[1], ENGINE_ACTIVE);
	assert_int_equal(res[2], ENGINE_ACTIVE);
	assert_int_equal(tu_sh("test -f '%s/m3/new/1800000000.M1P1.mx'", env->t), 0);
	assert_int_equal(tu_sh("ls -d '%s'/.mailrestore/attic/m3/.replaced-* >/dev/null", env->t), 0);
	assert_int_equal(jobs[1].released_mail, 1);
	for (i = 0; i < 3; i++) {
		assert_int_equal(jobs[i].lock_fd, -1);
		engine_job_free(&jobs[i]);
	}
	snprintf(sa, sizeof(sa), "%s/m1", env->s);
	snprintf(ta, sizeof(ta), "%s/m1", env->t);
	assert_true(trees_equal(sa, ta));
	assert_int_equal(tu_sh("grep -l 'Subject: batch' '%s'/m2/new/* >/dev/null", env->t), 0);
	/* m3's restore took the place of the tree the server made */
	assert_int_equal(tu_sh("test -d '%s/m3/cur' && test ! -e '%s/.mailrestore/work/m3'",
			       env->t, env->t), 0);
	env_free(env);
}

static void failed_fsync_is_not_done(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .errnum = EIO };
	char sa[4096], ta[4096];

	(void)state;
	make_user(env->s, "frank", 0);
	backup_with_bsdtar(env->s, env->b, "frank");
	env_open(env);
	mr_io_fault_add(&f);
	assert_int_equal(run_user(env, "frank", &job), ENGINE_FAILED);
	if (strstr(job.reason, "sync") == NULL)
		fail_msg("reason without fsync: %s", job.reason);
	engine_job_free(&job);
	mr_io_fault_clear();
	assert_int_equal(tu_sh("test -e '%s/frank'", env->t), 1);
	/* the untrusted work copy was set aside, not deleted, nor reused */
	assert_int_equal(tu_sh("test -d '%s'/.mailrestore/discarded/frank.*", env->t), 0);
	assert_int_equal(tu_sh("test -e '%s/.mailrestore/work/frank'", env->t), 1);
	/* once the disk behaves, the run completes */
	assert_int_equal(run_user(env, "frank", &job), ENGINE_ACTIVE);
	engine_job_free(&job);
	snprintf(sa, sizeof(sa), "%s/frank", env->s);
	snprintf(ta, sizeof(ta), "%s/frank", env->t);
	assert_true(trees_equal(sa, ta));
	env_free(env);
}

static void cancelled_run_resumes(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	char sa[4096], ta[4096];

	(void)state;
	make_user(env->s, "gina", 0);
	backup_with_bsdtar(env->s, env->b, "gina");
	env_open(env);
	engine_job_init(&job, "gina");
	job.cancel = 1;
	assert_int_equal(engine_run(env->e, &job), ENGINE_CANCELLED);
	engine_job_free(&job);
	assert_int_equal(tu_sh("test -e '%s/gina'", env->t), 1);
	assert_int_equal(run_user(env, "gina", &job), ENGINE_ACTIVE);
	engine_job_free(&job);
	snprintf(sa, sizeof(sa), "%s/gina", env->s);
	snprintf(ta, sizeof(ta), "%s/gina", env->t);
	assert_true(trees_equal(sa, ta));
	env_free(env);
}

/* Issue 12: a T/<user> the mail server made before the restore (a login
 * before the hook was wired, mail delivered there) was taken as active and
 * the user's history never came back. It is merged: the restore plus what
 * it held that the restore lacks, nothing overwritten, the old tree in the
 * attic; a message it holds under a new flag name is not doubled. */
static void existing_target_user_is_merged(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	char sa[4096];

	(void)state;
	make_user(env->s, "hank", 0);
	backup_with_bsdtar(env->s, env->b, "hank");
	tu_sh("mkdir -p '%s/hank/new'", env->t);
	tu_write_file(env->t, "hank/mine", "operator's", 10);
	tu_write_file(env->t, "hank/new/1800000000.M9P9.mx", "arrived early", 13);
	tu_write_file(env->t, "hank/dovecot.index.cache", "stale", 5);
	tu_write_file(env->t, "hank/.Trash/dovecot-uidlist", "3 V1 N2\n", 8);
	/* A message the restore has too, under other flags: not doubled. */
	assert_int_equal(tu_sh("cd '%s/hank/cur' && f=$(ls | head -n 1) && "
			       "cp \"$f\" '%s/hank/new/'\"${f%%%%:*}\"", env->s, env->t), 0);
	env_open(env);
	assert_int_equal(engine_user_active(env->e, "hank", NULL), 0);
	assert_int_equal(run_user(env, "hank", &job), ENGINE_ACTIVE);
	engine_job_free(&job);
	assert_int_equal(engine_user_active(env->e, "hank", NULL), 1);
	assert_int_equal(tu_sh("test \"$(cat '%s/hank/mine')\" = \"operator's\"", env->t), 0);
	assert_int_equal(tu_sh("test -f '%s/hank/new/1800000000.M9P9.mx'", env->t), 0);
	/* The restore's files win; the server's index of the old tree stays out. */
	assert_int_equal(tu_sh("test \"$(cat '%s/hank/dovecot.index.cache')\" = cache-v1", env->t), 0);
	assert_int_equal(tu_sh("test -d '%s/hank/.Trash' && test ! -e '%s/hank/.Trash/dovecot-uidlist'",
			       env->t, env->t), 0);
	/* Every message of the source once, plus the early one. */
	snprintf(sa, sizeof(sa), "%s/hank", env->s);
	assert_int_equal(tu_sh("test $(ls '%s/cur' '%s/new' 2>/dev/null | grep -c .) -eq "
			       "$(( $(ls '%s/hank/cur' '%s/hank/new' | grep -c .) - 1 ))",
			       sa, sa, env->t, env->t), 0);
	assert_int_equal(tu_sh("test -f '%s'/.mailrestore/attic/hank/.replaced-*/mine", env->t), 0);
	env_free(env);
}

static void recover_releases_mail_left_by_a_crash(void **state)
{
	struct env *env = env_new();
	struct engine_job job;
	struct mr_error err = { 0 };
	int held = 0;

	(void)state;
	make_user(env->s, "ivy", 0);
	env_open(env);
	assert_int_equal(engine_deliver(env->e, "ivy", "Subject: kept\n\nk\n", 17, &held, &err), 0);
	/* Keep a copy of the held files, as if the crash came right after
	 * the activation rename, before they were forgotten. */
	assert_int_equal(tu_sh("cp -a '%s/.mailrestore/state/held' '%s/held.copy'", env->t, env->dir), 0);
	assert_int_equal(run_user(env, "ivy", &job), ENGINE_ACTIVE);
	engine_job_free(&job);
	assert_int_equal(tu_sh("rm -rf '%s/.mailrestore/state/held' && cp -a '%s/held.copy' "
			       "'%s/.mailrestore/state/held'", env->t, env->dir, env->t), 0);
	engine_close(&env->e);
	env_open(env);
	assert_int_equal(engine_recover(env->e, &err), 0);
	/* released exactly once */
	assert_int_equal(tu_sh("test $(grep -l 'Subject: kept' '%s'/ivy/new/* | wc -l) = 1", env->t), 0);
	env_free(env);
}

/* kill -9 a child running the whole user at random moments; after each
 * kill, T/<user> is either absent or complete; finally it is equal. */
static void kill9_at_random_moments(void **state)
{
	struct env *env = env_new();
	char sa[4096], ta[4096];
	int round, complete_seen = 0;
	unsigned seed = (unsigned)time(NULL);

	(void)state;
	/* a user big enough that a run takes a while */
	tu_sh("mkdir -p '%s/kim/cur' && cd '%s/kim/cur' && for i in $(seq 1 1500); do "
	      "head -c $((1000 + i * 37 %% 20000)) /dev/urandom > 17000$i.M$i.host:2,S; done", env->s,
	      env->s);
	backup_with_bsdtar(env->s, env->b, "kim");
	tu_sh("cd '%s/kim/cur' && for i in $(seq 1 300); do mv 17000$i.M$i.host:2,S 17000$i.M$i.host:2,RS; done"
	      " && for i in $(seq 2000 2300); do head -c 3000 /dev/urandom > 17000$i.M$i.host:2,; done",
	      env->s);
	snprintf(sa, sizeof(sa), "%s/kim", env->s);
	snprintf(ta, sizeof(ta), "%s/kim", env->t);
	srand(seed);
	for (round = 0; round < 12; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct engine_job job;
			mr_log_quiet = 1;
			env_open(env);
			engine_job_init(&job, "kim");
			_exit(engine_run(env->e, &job) == ENGINE_ACTIVE ? 0 : 1);
		}
		usleep((useconds_t)(rand() % 400000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		/* the invariant: no T/kim, or a complete one */
		if (tu_sh("test -e '%s'", ta) == 0) {
			assert_true(trees_equal(sa, ta));
			complete_seen = 1;
			break;
		}
	}
	env_open(env);
	{
		struct engine_job job;
		assert_int_equal(run_user(env, "kim", &job), ENGINE_ACTIVE);
		engine_job_free(&job);
	}
	assert_true(trees_equal(sa, ta));
	(void)complete_seen;
	env_free(env);
}

static int clear_faults(void **state)
{
	(void)state;
	mr_io_fault_clear();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(backup_then_day_of_changes_goes_active, clear_faults),
		cmocka_unit_test_teardown(missing_source_folder_is_attention_with_backup_kept, clear_faults),
		cmocka_unit_test_teardown(source_only_user_is_copied_whole, clear_faults),
		cmocka_unit_test_teardown(corrupt_backup_is_made_up_by_the_source, clear_faults),
		cmocka_unit_test_teardown(held_mail_is_released_at_activation, clear_faults),
		cmocka_unit_test_teardown(damaged_held_message_does_not_block_activation, clear_faults),
		cmocka_unit_test_teardown(one_run_per_user_at_a_time, clear_faults),
		cmocka_unit_test_teardown(batch_activation, clear_faults),
		cmocka_unit_test_teardown(failed_fsync_is_not_done, clear_faults),
		cmocka_unit_test_teardown(cancelled_run_resumes, clear_faults),
		cmocka_unit_test_teardown(existing_target_user_is_merged, clear_faults),
		cmocka_unit_test_teardown(recover_releases_mail_left_by_a_crash, clear_faults),
		cmocka_unit_test_teardown(kill9_at_random_moments, clear_faults),
	};
	mr_log_quiet = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
