/*
 * cmd_offline.c: `restore-user`, the daemon-less way to restore, sync and
 * activate users now (batch scripts, one-off work).
 */
#include "cli/cli.h"
#include "common/common.h"
#include "engine/engine.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Memory stays flat whatever the number of users: a job lives from its
 * worker's start to its printed line, and at most READY_MAX finished work
 * copies wait for the activator (a worker waits when that many do). */
#define READY_MAX 256

struct run {
	struct engine *engine;
	char **users;
	size_t n;
	atomic_size_t next;
	atomic_size_t finished;
	atomic_uint_least64_t bytes;    /* written by finished users */
	atomic_int any_attention, any_failed;
	int json, quiet, tty;
	pthread_mutex_t out_lock;
	/* Users whose work copy is ready, waiting for the activator thread,
	 * which activates whatever is ready in one batch (one syncfs, one
	 * fsync of T) while the workers go on with the next users. */
	pthread_mutex_t act_lock;
	pthread_cond_t act_cv, room_cv;
	struct engine_job *ready[READY_MAX];
	size_t nready;
	int workers_done;
	/* the activator's own scratch: a batch's jobs and results */
	struct engine_job *batch_jobs[READY_MAX];
	enum engine_result batch_res[READY_MAX];
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore restore-user --backups B --source S --target T\n"
		"                                [--state DIR] [--jobs N] [--max-remove PCT]\n"
		"                                [--min-remove N] [--json] [--quiet]\n"
		"                                [--allow-empty-source] [--format maildir|cyrus]\n"
		"                                [--cyrus-config-dir DIR --cyrus-target-config-dir DIR]\n"
		"                                [--cyrus-mailboxes FILE] (--all | USER...)\n\n"
		"Restores each USER now, without a daemon: extracts the newest backup from B\n"
		"into T/.mailrestore/work/USER, syncs it against the read-only source S/USER\n"
		"(copying only what changed), releases held mail, and activates it as T/USER\n"
		"in one durable rename. --all takes every user with a backup or a source folder.\n\n"
		"  --jobs N          users restored at once (default 2)\n"
		"  --max-remove PCT  stop a sync (attention) when the messages a folder's\n"
		"                    mailbox index still lists but the source lacks, or the\n"
		"                    files no index shows deleted, are more than PCT%% (default 50)\n"
		"  --min-remove N    the files no index shows deleted must also be at least N\n"
		"                    (default 10; 0: the percentage alone)\n"
		"  --json            print one JSON object per user on stdout\n"
		"  --quiet           no per-user lines, only problems\n"
		"  --allow-empty-source  go on even though S holds no user folders, or far\n"
		"                    fewer than have backups (else exit 66: S is most\n"
		"                    likely not mounted)\n"
		CLI_STORE_USAGE "\n"
		"Exit: 0 all active, 1 some in attention (reason on stderr), 64 usage,\n"
		"65 invalid user name, 66 the source looks unmounted, 74 I/O error on the\n"
		"target (run again to resume).\n");
}

static const char *result_name(enum engine_result r)
{
	switch (r) {
	case ENGINE_ACTIVE: return "active";
	case ENGINE_ATTENTION: return "attention";
	case ENGINE_CANCELLED: return "cancelled";
	default: return "failed";
	}
}

/* Prints a finished user's line, counts its result and frees the job. */
static void finish_user(struct run *run, struct engine_job *job, enum engine_result r)
{
	char b1[32], b2[32], safe[8192];
	size_t k;

	pthread_mutex_lock(&run->out_lock);
	if (run->tty)
		fputs("\r\033[K", stderr);
	if (run->json) {
		char buf[8192];
		size_t pos = 0;
		mr_bufcat(buf, sizeof(buf), &pos, "{\"user\":");
		mr_json_str(buf, sizeof(buf), &pos, job->user);
		mr_bufcat(buf, sizeof(buf), &pos, ",\"state\":\"%s\",\"reason\":", result_name(r));
		if (r == ENGINE_ACTIVE)
			mr_bufcat(buf, sizeof(buf), &pos, "null");
		else
			mr_json_str(buf, sizeof(buf), &pos, job->reason);
		mr_bufcat(buf, sizeof(buf), &pos,
			  ",\"backup_files\":%" PRIu64 ",\"backup_bytes\":%" PRIu64
			  ",\"copied_files\":%" PRIu64 ",\"copied_bytes\":%" PRIu64
			  ",\"renamed\":%" PRIu64 ",\"patched_files\":%" PRIu64
			  ",\"patched_bytes\":%" PRIu64 ",\"attic_files\":%" PRIu64
			  ",\"unreadable\":%" PRIu64 ",\"bytes_written\":%" PRIu64
			  ",\"held_mail\":%" PRIu64 ",\"source_bytes_read\":%" PRIu64
			  ",\"problems\":[",
			  job->restore.files, job->restore.bytes, job->sync.copied_files,
			  job->sync.copied_bytes, job->sync.renamed, job->sync.patched_files,
			  job->sync.patched_bytes, job->sync.attic_files, job->sync.unreadable,
			  job->restore.bytes + job->sync.bytes_written, job->released_mail,
			  job->sync.source_bytes_read);
		for (k = 0; k < job->problems.n && k < 100; k++) {
			mr_bufcat(buf, sizeof(buf), &pos, "%s{\"kind\":\"%s\",\"path\":", k ? "," : "",
				  mr_problem_kind_name(job->problems.v[k].kind));
			mr_json_str(buf, sizeof(buf), &pos, job->problems.v[k].path);
			mr_bufcat(buf, sizeof(buf), &pos, ",\"message\":");
			mr_json_str(buf, sizeof(buf), &pos, job->problems.v[k].message);
			mr_bufcat(buf, sizeof(buf), &pos, "}");
		}
		mr_bufcat(buf, sizeof(buf), &pos, "]}");
		printf("%s\n", buf);
	} else if (!run->quiet) {
		printf("%s: %s; backup %" PRIu64 " files %s; copied %" PRIu64 " files %s; renamed %" PRIu64
		       "; patched %" PRIu64 "; attic %" PRIu64 "; unreadable %" PRIu64
		       "; held mail %" PRIu64 "; read from source %" PRIu64 " B\n",
		       job->user, result_name(r), job->restore.files,
		       mr_human_bytes(job->restore.bytes, b1, sizeof(b1)), job->sync.copied_files,
		       mr_human_bytes(job->sync.copied_bytes, b2, sizeof(b2)), job->sync.renamed,
		       job->sync.patched_files, job->sync.attic_files, job->sync.unreadable,
		       job->released_mail, job->sync.source_bytes_read);
	}
	fflush(stdout);
	if (r != ENGINE_ACTIVE)
		fprintf(stderr, "mailrestore restore-user: %s: %s: %s\n", job->user, result_name(r),
			mr_escape(job->reason, safe, sizeof(safe)));
	/* Warnings that did not stop the user (a damaged backup the source
	 * made up for, refused archive entries) are still worth a line. */
	for (k = 0; k < job->problems.n && k < 20; k++)
		if (r == ENGINE_ACTIVE || job->problems.v[k].kind == MR_PROBLEM_UNREADABLE)
			fprintf(stderr, "mailrestore restore-user: %s: %s: %s\n", job->user,
				mr_problem_kind_name(job->problems.v[k].kind),
				mr_escape(job->problems.v[k].message, safe, sizeof(safe)));
	pthread_mutex_unlock(&run->out_lock);
	if (r == ENGINE_ATTENTION)
		atomic_store(&run->any_attention, 1);
	else if (r != ENGINE_ACTIVE)
		atomic_store(&run->any_failed, 1);
	atomic_fetch_add(&run->bytes, job->restore.bytes + job->sync.bytes_written);
	engine_job_free(job);
	free(job);
	atomic_fetch_add(&run->finished, 1);
}

static void *worker(void *arg)
{
	struct run *run = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&run->next, 1);
		struct engine_job *job;
		enum engine_result r;

		if (i >= run->n)
			break;
		job = malloc(sizeof(*job));
		if (job == NULL) {
			pthread_mutex_lock(&run->out_lock);
			fprintf(stderr, "mailrestore restore-user: %s: out of memory\n", run->users[i]);
			pthread_mutex_unlock(&run->out_lock);
			atomic_store(&run->any_failed, 1);
			atomic_fetch_add(&run->finished, 1);
			continue;
		}
		engine_job_init(job, run->users[i]);
		r = engine_prepare(run->engine, job);
		if (r == ENGINE_READY) {
			pthread_mutex_lock(&run->act_lock);
			while (run->nready == READY_MAX)
				pthread_cond_wait(&run->room_cv, &run->act_lock);
			run->ready[run->nready++] = job;
			pthread_cond_signal(&run->act_cv);
			pthread_mutex_unlock(&run->act_lock);
			continue;
		}
		finish_user(run, job, r);
	}
	return NULL;
}

/* Activates ready users in batches until the workers are done and nothing
 * is left. */
static void *activator(void *arg)
{
	struct run *run = arg;
	size_t k, j;

	for (;;) {
		pthread_mutex_lock(&run->act_lock);
		while (run->nready == 0 && !run->workers_done)
			pthread_cond_wait(&run->act_cv, &run->act_lock);
		k = run->nready;
		memcpy(run->batch_jobs, run->ready, k * sizeof(run->batch_jobs[0]));
		run->nready = 0;
		pthread_cond_broadcast(&run->room_cv);
		pthread_mutex_unlock(&run->act_lock);
		if (k == 0)
			break;
		engine_activate_batch(run->engine, run->batch_jobs, k, run->batch_res);
		for (j = 0; j < k; j++)
			finish_user(run, run->batch_jobs[j], run->batch_res[j]);
	}
	return NULL;
}

/* The progress bar on a terminal: users done, and what is running. */
static void draw_progress(struct run *run, size_t nthreads)
{
	size_t done = atomic_load(&run->finished), i;
	char bar[41];
	size_t fill = run->n ? done * 40 / run->n : 40;
	uint64_t bytes = atomic_load(&run->bytes);
	char hb[32];

	(void)nthreads;
	for (i = 0; i < 40; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[40] = '\0';
	pthread_mutex_lock(&run->out_lock);
	fprintf(stderr, "\r\033[K[%s] %zu/%zu users, %s written", bar, done, run->n,
		mr_human_bytes(bytes, hb, sizeof(hb)));
	fflush(stderr);
	pthread_mutex_unlock(&run->out_lock);
}

/* Orders pointers into the names array by name, then by place, so the
 * first of equal names comes first. */
static int ptr_name_cmp(const void *a, const void *b)
{
	char **x = *(char **const *)a, **y = *(char **const *)b;
	int c = strcmp(*x, *y);

	return c ? c : (x > y) - (x < y);
}

/* Drops repeated names (a user named twice would only be refused by its own
 * lock), keeping the first of each in order. Returns the new count. */
static size_t dedupe(char **names, size_t n)
{
	char ***sorted;
	size_t i, j, first = 0;

	if (n < 2)
		return n;
	sorted = malloc(n * sizeof(*sorted));
	if (sorted == NULL)
		return n;
	for (i = 0; i < n; i++)
		sorted[i] = &names[i];
	qsort(sorted, n, sizeof(*sorted), ptr_name_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(*sorted[i], *sorted[first]) == 0)
			*sorted[i] = NULL;   /* later than the run's first */
		else
			first = i;
	}
	free(sorted);
	for (i = 0, j = 0; i < n; i++)
		if (names[i] != NULL)
			names[j++] = names[i];
	return j;
}

int cmd_restore_user(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backups", required_argument, NULL, 'b' },
		{ "source", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "state", required_argument, NULL, 'S' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "max-remove", required_argument, NULL, 'm' },
		{ "min-remove", required_argument, NULL, 'M' },
		{ "json", no_argument, NULL, 'J' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "all", no_argument, NULL, 'a' },
		{ "allow-empty-source", no_argument, NULL, 'E' },
		CLI_STORE_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_config cfg = { .max_remove_pct = -1, .preserve_owner = -1 };
	struct cli_store store = { 0 };
	static struct run run;   /* READY_MAX pointers: off the stack */
	struct mr_error err = { 0 };
	pthread_t *threads = NULL, act_thread;
	char **all = NULL;
	size_t nall = 0, i, nthreads = 2;
	uint64_t v;
	int c, all_users = 0, allow_empty_source = 0, rc = MR_EX_OK;

	memset(&run, 0, sizeof(run));
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b': cfg.backups = optarg; break;
		case 's': cfg.source = optarg; break;
		case 't': cfg.target = optarg; break;
		case 'S': cfg.state_dir = optarg; break;
		case 'j':
			if (cli_number_arg(argv[0], "--jobs", optarg, "a number", 1, 256, &v) < 0)
				return MR_EX_USAGE;
			nthreads = (size_t)v;
			break;
		case 'm':
			if (cli_number_arg(argv[0], "--max-remove", optarg, "a percentage", 0, 100,
					   &v) < 0)
				return MR_EX_USAGE;
			cfg.max_remove_pct = (int)v;
			break;
		case 'M':
			if (cli_number_arg(argv[0], "--min-remove", optarg, "a number of files", 0,
					   1000000000, &v) < 0)
				return MR_EX_USAGE;
			cfg.min_remove_files = v == 0 ? -1 : (int)v;
			break;
		case 'J': run.json = 1; break;
		case 'q': run.quiet = 1; break;
		case 'a': all_users = 1; break;
		case 'E': allow_empty_source = 1; break;
		case 'h': usage(stdout); return MR_EX_OK;
		default:
			switch (cli_store_option(argv[0], c, optarg, &store)) {
			case 1: break;
			case 0: usage(stderr); return MR_EX_USAGE;
			default: return MR_EX_USAGE;
			}
		}
	}
	cfg.format = (enum mr_store_format)store.format;
	cfg.cyrus_config_dir = store.config_dir;
	cfg.cyrus_target_config_dir = store.target_config_dir;
	cfg.cyrus_mailboxes = store.mailboxes;
	if (cfg.source == NULL || cfg.target == NULL || (optind >= argc && !all_users)) {
		usage(stderr);
		return MR_EX_USAGE;
	}
	for (i = (size_t)optind; i < (size_t)argc; i++)
		if (cli_check_user(argv[0], argv[i]) < 0)
			return MR_EX_DATAERR;
	if (engine_open(&cfg, &run.engine, &err) < 0) {
		cli_error(argv[0], "%s", err.msg);
		/* a --cyrus-* option that does not fit is a usage error */
		return err.errnum == EINVAL ? MR_EX_USAGE : MR_EX_IOERR;
	}
	if (!allow_empty_source) {
		struct engine_census census;
		int r = engine_check_source(run.engine, &census, &err);
		if (r != 0) {
			if (r > 0)
				cli_error(argv[0], "%s: %s", cfg.source, err.msg);
			else
				cli_error(argv[0], "%s", err.msg);
			engine_close(&run.engine);
			return r > 0 ? MR_EX_NOINPUT : MR_EX_IOERR;
		}
	}
	if (all_users) {
		if (engine_list_affected(run.engine, &all, &nall, &err) < 0) {
			cli_error(argv[0], "%s", err.msg);
			engine_close(&run.engine);
			return MR_EX_IOERR;
		}
		run.users = all;
		run.n = nall;
	} else {
		run.users = argv + optind;
		run.n = dedupe(run.users, (size_t)(argc - optind));
	}
	threads = calloc(nthreads, sizeof(*threads));
	if (threads == NULL) {
		cli_error(argv[0], "out of memory");
		rc = MR_EX_SOFTWARE;
		goto out;
	}
	pthread_mutex_init(&run.out_lock, NULL);
	pthread_mutex_init(&run.act_lock, NULL);
	pthread_cond_init(&run.act_cv, NULL);
	pthread_cond_init(&run.room_cv, NULL);
	run.tty = isatty(STDERR_FILENO) && !run.json;
	if (nthreads > run.n)
		nthreads = run.n ? run.n : 1;
	if (pthread_create(&act_thread, NULL, activator, &run) != 0) {
		cli_error(argv[0], "pthread_create failed");
		rc = MR_EX_OSERR;
		goto out;
	}
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, worker, &run) != 0) {
			cli_error(argv[0], "pthread_create failed");
			nthreads = i;
			break;
		}
	if (nthreads == 0)
		worker(&run);   /* no thread could start: do the work here */
	if (run.tty) {
		while (atomic_load(&run.finished) < run.n) {
			draw_progress(&run, nthreads);
			usleep(200000);
		}
		fputs("\r\033[K", stderr);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_lock(&run.act_lock);
	run.workers_done = 1;
	pthread_cond_signal(&run.act_cv);
	pthread_mutex_unlock(&run.act_lock);
	pthread_join(act_thread, NULL);
	rc = atomic_load(&run.any_failed) ? MR_EX_IOERR
	     : atomic_load(&run.any_attention) ? MR_EX_PROBLEMS : MR_EX_OK;
	pthread_mutex_destroy(&run.out_lock);
	pthread_mutex_destroy(&run.act_lock);
	pthread_cond_destroy(&run.act_cv);
	pthread_cond_destroy(&run.room_cv);
out:
	free(threads);
	mr_names_free(all, nall);
	engine_close(&run.engine);
	return rc;
}
