/*
 * daemon.c: daemon_run(): opens the engine and the queue, brings the queue
 * in line with the disk after a crash or restart, registers the affected
 * users, starts the threads and the event loop, and takes everything down
 * again in order on SIGTERM, SHUTDOWN or when the work is done.
 */
#include "daemon/daemon_private.h"
#include "mail/mail.h"
#include "restore/restore.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sets the defaults (see daemon.h). */
void daemon_settings_init(struct daemon_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->jobs = 2;
	s->background = 1;
	s->max_remove_pct = -1;
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *ns, const char *name)
{
	char **v;

	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 64;
		v = realloc(ns->v, ns->cap * sizeof(*v));
		if (v == NULL)
			return -1;
		ns->v = v;
	}
	ns->v[ns->n] = strdup(name);
	if (ns->v[ns->n] == NULL)
		return -1;
	ns->n++;
	return 0;
}

static void names_free(struct names *ns)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

/* Reads the --users file: one name a line; blank lines and lines starting
 * with '#' are skipped, invalid names reported and skipped. 0 or -1. */
static int read_users_file(const char *path, struct names *ns)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int rc = -1;

	if (f == NULL) {
		mr_log("open(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (!mr_user_name_valid(line)) {
			mr_log("%s:%lu: invalid user name, skipped", path, lineno);
			continue;
		}
		if (names_add(ns, line) < 0) {
			mr_log("out of memory");
			goto out;
		}
	}
	if (ferror(f)) {
		mr_log("read(%s) failed", path);
		goto out;
	}
	rc = 0;
out:
	free(line);
	fclose(f);
	return rc;
}

static int collect_running(void *arg, const struct queue_user_info *info)
{
	struct names *ns = arg;

	if (info->state == QUEUE_RESTORING || info->state == QUEUE_SYNCING)
		return names_add(ns, info->name) < 0;
	return 0;
}

/* After a crash: a user the journal shows running either went active just
 * before it (T/<user> exists: record that and run the hook the crash
 * skipped) or goes back in line to resume from its work copy. */
static int settle_running(struct daemon *d)
{
	struct names running = { 0 };
	struct mr_error err;
	size_t i;
	int r, rc = -1;

	queue_foreach_user(d->q, collect_running, &running);
	for (i = 0; i < running.n; i++) {
		mr_error_clear(&err);
		r = engine_user_active(d->engine, running.v[i], &err);
		if (r < 0) {
			mr_log("%s: %s", running.v[i], err.msg);
			goto out;
		}
		if (r == 1) {
			if (queue_set_state(d->q, running.v[i], QUEUE_ACTIVE, NULL, NULL, mr_now(),
					    &err) < 0) {
				mr_log("%s: %s", running.v[i], err.msg);
				goto out;
			}
			mr_log("%s: went active before the restart", running.v[i]);
			daemon_run_on_active(d, running.v[i]);
		} else if (queue_requeue(d->q, running.v[i], &err) < 0) {
			mr_log("%s: %s", running.v[i], err.msg);
			goto out;
		} else {
			mr_log("%s: was running at the restart; back in line", running.v[i]);
		}
	}
	rc = 0;
out:
	names_free(&running);
	return rc;
}

/* Registers the affected users; those whose T/<user> exists are active
 * and left alone. 0 or -1. */
static int register_users(struct daemon *d)
{
	struct names ns = { 0 };
	struct queue_user_info info;
	struct mr_error err;
	char **list = NULL;
	size_t n = 0, i, added = 0, marked = 0;
	int r, rc = -1;

	mr_error_clear(&err);
	if (d->set->users_file != NULL) {
		if (read_users_file(d->set->users_file, &ns) < 0)
			goto out;
	} else {
		if (engine_list_affected(d->engine, &list, &n, &err) < 0) {
			mr_log("listing the affected users: %s", err.msg);
			goto out;
		}
		ns.v = list;
		ns.n = ns.cap = n;
		list = NULL;
	}
	for (i = 0; i < ns.n; i++) {
		r = queue_add_user(d->q, ns.v[i], engine_user_size_hint(d->engine, ns.v[i]), &err);
		if (r < 0) {
			mr_log("registering %s: %s", ns.v[i], err.msg);
			goto out;
		}
		added += (size_t)r;
		r = engine_user_active(d->engine, ns.v[i], &err);
		if (r < 0) {
			mr_log("%s: %s", ns.v[i], err.msg);
			goto out;
		}
		if (r == 1 && queue_lookup(d->q, ns.v[i], &info) == 0 &&
		    info.state != QUEUE_ACTIVE) {
			if (queue_set_state(d->q, ns.v[i], QUEUE_ACTIVE,
					    "already active at start", NULL, mr_now(), &err) < 0) {
				mr_log("%s: %s", ns.v[i], err.msg);
				goto out;
			}
			marked++;
		}
	}
	mr_log("%zu affected users (%zu new), %zu already active on the target", ns.n, added,
	       marked);
	rc = 0;
out:
	if (d->set->users_file != NULL)
		names_free(&ns);
	else
		mr_names_free(ns.v, ns.n);
	return rc;
}

static int resolve_group(struct daemon *d, const char *name)
{
	struct group gr, *grr = NULL;
	char buf[16384];
	uint64_t gid;

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &grr) == 0 && grr != NULL) {
		d->operator_gid = gr.gr_gid;
	} else if (mr_parse_u64(name, &gid) == 0) {
		d->operator_gid = (gid_t)gid;
	} else {
		mr_log("--operator-group %s: no such group", name);
		return -1;
	}
	d->have_operator_gid = 1;
	return 0;
}

/* Runs the daemon (see daemon.h). */
int daemon_run(const struct daemon_settings *settings)
{
	struct daemon *d;
	struct engine_config ec;
	struct queue_settings qs;
	struct mr_error err;
	sigset_t mask, old;
	const char *env;
	int rc = MR_EX_SOFTWARE, e;

	if (settings->source == NULL || settings->target == NULL || settings->jobs < 1 ||
	    settings->jobs > 256) {
		mr_log("daemon: --source, --target and --jobs 1..256 are needed");
		return MR_EX_USAGE;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		mr_log("out of memory");
		return MR_EX_SOFTWARE;
	}
	d->set = settings;
	d->listen_fd = d->epoll_fd = d->wake_fd = d->signal_fd = -1;
	d->nworkers = settings->jobs;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->work_cv, NULL);
	pthread_mutex_init(&d->async_mu, NULL);
	pthread_cond_init(&d->commit_cv, NULL);
	pthread_cond_init(&d->task_cv, NULL);
	pthread_mutex_init(&d->metrics_mu, NULL);
	d->socket_path = settings->socket_path;
	if (d->socket_path == NULL) {
		env = getenv("MAILRESTORE_SOCKET");
		d->socket_path = env && *env ? env : "/run/mailrestore/mailrestore.sock";
	}
	if (settings->operator_group != NULL && resolve_group(d, settings->operator_group) < 0) {
		rc = MR_EX_USAGE;
		goto out;
	}

	/* Every thread started from here on inherits the mask: the loop
	 * takes SIGTERM/SIGINT through its signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, &old);

	memset(&ec, 0, sizeof(ec));
	ec.backups = settings->backups;
	ec.source = settings->source;
	ec.target = settings->target;
	ec.state_dir = settings->state_dir;
	ec.max_remove_pct = settings->max_remove_pct;
	ec.min_remove_files = settings->min_remove_files;
	ec.preserve_owner = -1;
	mr_error_clear(&err);
	if (engine_open(&ec, &d->engine, &err) < 0) {
		mr_log("daemon: %s", err.msg);
		rc = MR_EX_IOERR;
		goto out_mask;
	}
	memset(&qs, 0, sizeof(qs));
	qs.commit_delay = settings->commit_delay;
	if (queue_open(engine_state_fd(d->engine), &qs, &d->q, &err) < 0) {
		e = err.errnum;
		if (e == EWOULDBLOCK || e == EAGAIN) {
			mr_log("daemon: another daemon is running on this state folder (%s)",
			       err.msg);
			rc = MR_EX_TEMPFAIL;
		} else {
			mr_log("daemon: %s", err.msg);
			rc = MR_EX_IOERR;
		}
		goto out_mask;
	}
	d->mail = engine_mail_store(d->engine);
	if (engine_recover(d->engine, &err) < 0) {
		mr_log("daemon: recovering: %s", err.msg);
		rc = MR_EX_IOERR;
		goto out_mask;
	}
	if (settle_running(d) < 0 || register_users(d) < 0) {
		rc = settings->users_file != NULL && access(settings->users_file, R_OK) < 0
			     ? MR_EX_NOINPUT
			     : MR_EX_IOERR;
		goto out_mask;
	}
	daemon_metrics_init(d);
	rc = daemon_server_open(d);
	if (rc != 0)
		goto out_mask;
	if (daemon_async_start(d) < 0 || daemon_workers_start(d) < 0) {
		rc = MR_EX_OSERR;
		goto out_stop;
	}
	mr_log("daemon running: %d workers, background %s, state locked", d->nworkers,
	       settings->background ? "on" : "off");
	rc = daemon_server_loop(d) < 0 ? MR_EX_SOFTWARE : MR_EX_OK;
out_stop:
	/* No new clients; running jobs stop at a file boundary and go back
	 * in line; parked replies still get their commit; then the queue
	 * commits and closes. */
	daemon_server_stop_listening(d);
	daemon_workers_stop(d);
	daemon_async_stop(d);
	daemon_server_close(d);
	mr_log("daemon stopped");
out_mask:
	queue_close(&d->q);
	engine_close(&d->engine);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->work_cv);
	pthread_mutex_destroy(&d->async_mu);
	pthread_cond_destroy(&d->commit_cv);
	pthread_cond_destroy(&d->task_cv);
	pthread_mutex_destroy(&d->metrics_mu);
	if (d->conns != NULL)
		daemon_server_close(d);
	free(d);
	return rc;
}
