/*
 * link.c: the fronts' side of the daemon: where it is
 * (front_daemon_connect: its Unix socket, or its --listen over TCP, with
 * TLS when the TLS files are named), the user names a login or a recipient may stand
 * for (front_candidates), and front_ask(): the daemon's answer about a
 * user, remembered in the snapshot, or the snapshot's answer when the
 * daemon cannot be reached.
 */
#include "front/front_private.h"
#include "cli/cli.h"
#include "cli/cli_private.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AWAY_MESSAGE                                                                   \
	"Your mailbox is being restored from backup. The restore service cannot be " \
	"reached; try again later."

int front_daemon_connect(const struct front_daemon *where, struct daemon_client *c,
			 struct mr_error *err)
{
	double t = where->timeout > 0 ? where->timeout : FRONT_DAEMON_TIMEOUT;
	char host[MR_HOST_MAX];
	unsigned port;

	if (daemon_client_open(c, where->socket, where->connect, t, err) < 0)
		return -1;
	if (where->connect == NULL ||
	    (where->tls_ca == NULL && where->tls_cert == NULL && where->tls_key == NULL))
		return 0;
	if (mr_hostport_split(where->connect, host, sizeof(host), &port) < 0) {
		mr_error_set(err, EINVAL, "--connect %s: not HOST:PORT", where->connect);
		goto fail;
	}
	if (daemon_client_tls_start(c, host, where->tls_ca, where->tls_cert, where->tls_key,
				    err) < 0)
		goto fail;
	return 0;
fail:
	daemon_client_close(c);
	return -1;
}

int front_call(struct daemon_client *c, const char *req, char **reply_r, struct mr_error *err)
{
	return daemon_client_call_alloc(c, req, strlen(req), reply_r, err);
}

/* Appends name to names when it is a valid user name not there yet. */
static int add_candidate(char names[][MR_USER_NAME_MAX + 1], int n, const char *p, size_t len)
{
	char tmp[MR_USER_NAME_MAX + 1];
	int i;

	if (len == 0 || len > MR_USER_NAME_MAX)
		return n;
	memcpy(tmp, p, len);
	tmp[len] = '\0';
	if (!mr_user_name_valid(tmp))
		return n;
	for (i = 0; i < n; i++)
		if (strcmp(names[i], tmp) == 0)
			return n;
	memcpy(names[n], tmp, len + 1);
	return n + 1;
}

int front_candidates(const char *name, unsigned flags, char names[][MR_USER_NAME_MAX + 1])
{
	const char *at = strrchr(name, '@');
	size_t local = at != NULL ? (size_t)(at - name) : strlen(name);
	const char *plus;
	int n = 0;

	if (strlen(name) > 1024)
		return 0;
	n = add_candidate(names, n, name, strlen(name));
	if (at != NULL)
		n = add_candidate(names, n, name, local);
	plus = memchr(name, '+', local);
	if ((flags & FRONT_ASK_PLUS) && plus != NULL)
		n = add_candidate(names, n, name, (size_t)(plus - name));
	return n;
}

static void remember(struct front *f, const char *user, enum mr_snap what)
{
	struct mr_error err;

	if (f->snapfd >= 0 && mr_snapshot_put(f->snapfd, user, what, &err) < 0)
		mr_log("snapshot: %s", err.msg);
}

/* The daemon's reply about one candidate. 1: it decided (a filled), 0:
 * not an affected user, -1: no usable answer (away, starting, refused). */
static int one_reply(struct front *f, const char *user, char *reply, struct front_answer *a)
{
	struct daemon_json_tok toks[64];
	char state[32], mode[32];
	int n;

	n = daemon_json_parse(reply, strlen(reply), toks, 64);
	if (n < 1 || toks[0].type != DAEMON_JSON_OBJECT)
		return -1;
	daemon_json_text(reply, toks, daemon_json_get(reply, toks, 0, "ok"), state, sizeof(state));
	if (strcmp(state, "true") != 0) {
		char msg[256];

		daemon_json_text(reply, toks, daemon_json_get(reply, toks, 0, "error"), msg,
				 sizeof(msg));
		mr_log("the daemon about %s: %s", user, msg);
		return -1;
	}
	daemon_json_text(reply, toks, daemon_json_get(reply, toks, 0, "state"), state,
			 sizeof(state));
	daemon_json_text(reply, toks, daemon_json_get(reply, toks, 0, "mode"), mode, sizeof(mode));
	if (strcmp(state, "unknown") == 0 || state[0] == '\0') {
		remember(f, user, MR_SNAP_UNAFFECTED);
		return 0;
	}
	snprintf(a->user, sizeof(a->user), "%s", user);
	a->affected = 1;
	if (strcmp(state, "active") == 0 || strcmp(mode, "dial-tone") == 0) {
		remember(f, user, MR_SNAP_ACTIVE);
		a->verdict = FRONT_OPEN;
		return 1;
	}
	cli_login_reply_message(reply, toks, state, a->message, sizeof(a->message));
	a->verdict = FRONT_WAIT;
	return 1;
}

/* "The daemon cannot be reached", at most once every 10 seconds: in an
 * outage of the daemon every login and every recipient would say it. */
static void log_away(const char *why)
{
	static _Atomic long last;
	long now = (long)mr_monotonic(), was = atomic_load(&last);

	if (now - was < 10 && was != 0)
		return;
	if (atomic_compare_exchange_strong(&last, &was, now ? now : 1))
		mr_log("the daemon cannot be reached (%s): answering from the snapshot", why);
}

/* The snapshot's answer when the daemon gave none. */
static void from_snapshot(struct front *f, char names[][MR_USER_NAME_MAX + 1], int n,
			  struct front_answer *a)
{
	int i, unaffected = 0;

	a->from_snapshot = 1;
	/* Beside the daemon, T itself knows: activation records and the list
	 * of affected users (cli_disk_verdict, as `login --target`). */
	for (i = 0; f->set.target != NULL && i < n; i++) {
		int active, r = cli_disk_verdict(f->set.target, names[i], &active);

		if (r < 0)
			break;
		if (r == 1 && !active)
			continue;
		snprintf(a->user, sizeof(a->user), "%s", names[i]);
		a->affected = 1;
		if (r == 1) {
			a->verdict = FRONT_OPEN;
			return;
		}
		a->verdict = FRONT_AWAY;
		snprintf(a->message, sizeof(a->message), "%s", AWAY_MESSAGE);
		return;
	}
	if (f->set.target != NULL && i == n) {
		snprintf(a->user, sizeof(a->user), "%s", names[0]);
		a->verdict = FRONT_OPEN; /* no candidate is affected */
		return;
	}
	for (i = 0; i < n; i++) {
		enum mr_snap s = mr_snapshot_get(f->snapfd, names[i]);

		if (s == MR_SNAP_ACTIVE) {
			snprintf(a->user, sizeof(a->user), "%s", names[i]);
			a->affected = 1;
			a->verdict = FRONT_OPEN;
			return;
		}
		unaffected += s == MR_SNAP_UNAFFECTED;
	}
	snprintf(a->user, sizeof(a->user), "%s", names[0]);
	if (unaffected == n) {
		a->verdict = FRONT_OPEN;
		return;
	}
	a->verdict = FRONT_AWAY;
	snprintf(a->message, sizeof(a->message), "%s", AWAY_MESSAGE);
}

enum front_verdict front_ask(struct front *f, const char *name, unsigned flags,
			     struct front_answer *a)
{
	char names[3][MR_USER_NAME_MAX + 1], req[MR_USER_NAME_MAX + 16];
	struct mr_error err;
	struct daemon_client cl;
	char *reply = NULL;
	int n, i, rc = -1;

	memset(a, 0, sizeof(*a));
	n = front_candidates(name, flags, names);
	if (n == 0) {
		a->verdict = FRONT_REFUSED;
		return a->verdict;
	}
	mr_error_clear(&err);
	if (front_daemon_connect(&f->set.daemon, &cl, &err) < 0)
		goto away;
	for (i = 0; i < n; i++) {
		snprintf(req, sizeof(req), "%s %s\n", flags & FRONT_ASK_LOGIN ? "LOGIN" : "SHOW",
			 names[i]);
		if (front_call(&cl, req, &reply, &err) < 0)
			break;
		rc = one_reply(f, names[i], reply, a);
		free(reply);
		reply = NULL;
		if (rc != 0)
			break;
	}
	daemon_client_close(&cl);
	if (rc == 1)
		return a->verdict;
	if (rc == 0) {
		/* No candidate is an affected user. */
		snprintf(a->user, sizeof(a->user), "%s", names[0]);
		a->verdict = FRONT_OPEN;
		return a->verdict;
	}
away:
	if (err.msg[0] != '\0')
		log_away(err.msg);
	memset(a, 0, sizeof(*a));
	from_snapshot(f, names, n, a);
	return a->verdict;
}
