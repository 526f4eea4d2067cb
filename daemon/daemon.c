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
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
		/* A user's own trouble never stops the start: not known to
		 * be active, it goes back in line and its run tells more. */
		r = engine_user_active(d->engine, running.v[i], &err);
		if (r < 0)
			mr_log("%s: %s", running.v[i], err.msg);
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

/* Refuses a source that looks unmounted (engine_check_source) unless the
 * operator allowed it: every user would otherwise go to attention, or be
 * restored from its backup alone. 0 or -1 (logged). */
static int check_source(struct daemon *d)
{
	struct engine_census c;
	struct mr_error err;
	int r;

	mr_error_clear(&err);
	r = engine_check_source(d->engine, &c, &err);
	if (r < 0) {
		mr_log("daemon: checking the source: %s", err.msg);
		return -1;
	}
	mr_log("source: %zu user folders; %zu users have a backup, %zu of them a source folder",
	       c.on_source, c.with_backup, c.both);
	if (r == 0)
		return 0;
	if (d->set->allow_empty_source) {
		mr_log("source: %s: going on as --allow-empty-source says", err.msg);
		return 0;
	}
	mr_log("daemon: %s %s", d->set->source, err.msg);
	return -1;
}

/* Registers the affected users; those whose T/<user> exists are active
 * and left alone. 0 or -1. */
static int register_users(struct daemon *d)
{
	struct names ns = { 0 };
	struct queue_user_info info;
	struct mr_error err;
	char **list = NULL;
	size_t n = 0, i, added = 0, marked = 0, active = 0;
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
		if (r < 0)
			mr_log("%s: %s", ns.v[i], err.msg);
		/* Activated by an older mailrestore (the journal says so, the
		 * record is missing): adopt it rather than merge it again. */
		if (r == 0 && queue_lookup(d->q, ns.v[i], &info) == 0 &&
		    info.state == QUEUE_ACTIVE) {
			r = engine_adopt_active(d->engine, ns.v[i], &err);
			if (r < 0)
				mr_log("%s: %s", ns.v[i], err.msg);
		}
		if (r == 1)
			active++;
		/* Dial tone given before a restart: followers hear of it again. */
		if (r == 0 && d->set->dial_tone && engine_user_dial_tone(d->engine, ns.v[i]) &&
		    queue_note_open(d->q, ns.v[i], &err) < 0)
			mr_log("%s: %s", ns.v[i], err.msg);
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
	mr_log("%zu affected users (%zu new), %zu active on the target (%zu found active at this "
	       "start)", ns.n, added, active, marked);
	/* For `login --target` once the daemon is gone: who the outage touched. */
	if (engine_write_affected(d->engine, ns.v, ns.n, &err) < 0)
		mr_log("writing the list of affected users: %s", err.msg);
	rc = 0;
out:
	if (d->set->users_file != NULL)
		names_free(&ns);
	else
		mr_names_free(ns.v, ns.n);
	return rc;
}

/* Takes T/.mailrestore/daemon.lock (flock, never waits), so that one
 * daemon serves a target whatever --state says: a second one would hold
 * mail the first never releases. Returns the lock's fd, -2 when another
 * daemon holds it, -1 on an I/O error (logged). */
static int lock_target(const char *target)
{
	struct mr_error err;
	int tfd, mfd = -1, fd = -1;

	mr_error_clear(&err);
	tfd = mr_open_dir_path(target, 1, &err);
	if (tfd < 0) {
		mr_log("daemon: %s", err.msg);
		return -1;
	}
	if (mr_io->mkdirat(tfd, ".mailrestore", 0700) < 0 && errno != EEXIST) {
		mr_log("daemon: mkdirat(%s/.mailrestore) failed: %s", target, strerror(errno));
		goto out;
	}
	mfd = mr_io->openat(tfd, ".mailrestore", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (mfd < 0) {
		mr_log("daemon: openat(%s/.mailrestore) failed: %s", target, strerror(errno));
		goto out;
	}
	fd = mr_io->openat(mfd, "daemon.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		mr_log("daemon: openat(%s/.mailrestore/daemon.lock) failed: %s", target,
		       strerror(errno));
		goto out;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			mr_log("daemon: another daemon is running on the target %s "
			       "(%s/.mailrestore/daemon.lock is locked)", target, target);
		else
			mr_log("daemon: flock(%s/.mailrestore/daemon.lock) failed: %s", target,
			       strerror(errno));
		mr_close(fd);
		fd = errno == EWOULDBLOCK ? -2 : -1;
		break;
	}
out:
	mr_close(mfd);
	mr_close(tfd);
	return fd;
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
	int rc = MR_EX_SOFTWARE, e, target_lock = -1;

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
	d->epoll_fd = d->wake_fd = d->signal_fd = d->starting_stop_fd = -1;
	for (e = 0; e <= DAEMON_LISTEN_MAX; e++)
		d->listeners[e].fd = -1;
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
		d->socket_path = env && *env ? env : MR_SOCKET_DEFAULT;
	}
	if ((settings->operator_group != NULL &&
	     daemon_peer_group("--operator-group", settings->operator_group, &d->operator_gid) < 0) ||
	    (settings->deliver_group != NULL &&
	     daemon_peer_group("--deliver-group", settings->deliver_group, &d->deliver_gid) < 0) ||
	    (settings->socket_group != NULL &&
	     daemon_peer_group("--socket-group", settings->socket_group, &d->socket_gid) < 0)) {
		rc = MR_EX_USAGE;
		goto out;
	}
	d->have_operator_gid = settings->operator_group != NULL;
	d->have_deliver_gid = settings->deliver_group != NULL;
	d->have_socket_gid = settings->socket_group != NULL;

	/* Every thread started from here on inherits the mask: the loop
	 * takes SIGTERM/SIGINT through its signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, &old);

	target_lock = lock_target(settings->target);
	if (target_lock < 0) {
		rc = target_lock == -2 ? MR_EX_TEMPFAIL : MR_EX_IOERR;
		goto out_mask;
	}
	/* The socket opens first: clients that come during the rest of the
	 * start-up (reading the journal, indexing the backups, registering
	 * every user: long at a provider's scale) hear "starting", 75. */
	rc = daemon_transport_open(d);
	if (rc == 0)
		rc = daemon_server_open(d);
	if (rc != 0)
		goto out_mask;
	if (daemon_server_starting_begin(d) < 0) {
		rc = MR_EX_OSERR;
		goto out_mask;
	}
	rc = MR_EX_SOFTWARE;

	memset(&ec, 0, sizeof(ec));
	ec.backups = settings->backups;
	ec.source = settings->source;
	ec.target = settings->target;
	ec.state_dir = settings->state_dir;
	ec.max_remove_pct = settings->max_remove_pct;
	ec.min_remove_files = settings->min_remove_files;
	ec.preserve_owner = -1;
	ec.dial_tone = settings->dial_tone;
	ec.format = settings->format;
	ec.cyrus_config_dir = settings->cyrus_config_dir;
	ec.cyrus_target_config_dir = settings->cyrus_target_config_dir;
	ec.cyrus_mailboxes = settings->cyrus_mailboxes;
	mr_error_clear(&err);
	if (engine_open(&ec, &d->engine, &err) < 0) {
		mr_log("daemon: %s", err.msg);
		/* options that do not fit the store (--dial-tone, --cyrus-*) */
		rc = err.errnum == EINVAL ? MR_EX_USAGE : MR_EX_IOERR;
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
		} else if (e == EBADMSG) {
			/* Damage in the middle of the journal: answered requests
			 * follow it, so it is not cut; the operator decides. */
			mr_log("daemon: %s", err.msg);
			rc = MR_EX_DATAERR;
		} else {
			mr_log("daemon: %s", err.msg);
			rc = MR_EX_IOERR;
		}
		goto out_mask;
	}
	daemon_workers_pause(d, queue_paused(d->q));
	if (queue_paused(d->q))
		mr_log("daemon: paused (as before the restart): `mailrestore resume` starts users "
		       "again");
	d->mail = engine_mail_store(d->engine);
	if (d->mail != NULL) {
		struct mail_limits ml = {
			.user_messages = settings->held_user_messages,
			.user_bytes = settings->held_user_bytes,
			.total_messages = settings->held_total_messages,
			.total_bytes = settings->held_total_bytes,
			.reserve_bytes = settings->held_reserve_bytes,
		};
		mail_store_set_limits(d->mail, &ml);
	}
	if (check_source(d) < 0) {
		rc = MR_EX_NOINPUT;
		goto out_mask;
	}
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
	if (daemon_metrics_init(d) < 0) {
		rc = MR_EX_OSERR;
		goto out_mask;
	}
	daemon_server_starting_end(d);
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
	daemon_transport_stop_listening(d);
	daemon_workers_stop(d);
	daemon_async_stop(d);
	daemon_server_close(d);
	mr_log("daemon stopped");
out_mask:
	daemon_server_starting_end(d);
	daemon_metrics_close(d);
	queue_close(&d->q);
	engine_close(&d->engine);
	if (target_lock >= 0)
		mr_close(target_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->work_cv);
	pthread_mutex_destroy(&d->async_mu);
	pthread_cond_destroy(&d->commit_cv);
	pthread_cond_destroy(&d->task_cv);
	pthread_mutex_destroy(&d->metrics_mu);
	daemon_server_close(d);
	daemon_transport_close(d);
	free(d);
	return rc;
}
