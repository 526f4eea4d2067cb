/*
 * cmd_login.c: `mailrestore login`, the login hook, and the answer from T
 * when no daemon answers (cli_disk_verdict). It is also the whole of the
 * lean binary mailrestore-login (cli/hook/), with client.c and util.c.
 *
 * `login` sits in every login of the mail server: it loads nothing, does one
 * connect, one write and one read, and allocates nothing.
 */
#include "cli/cli.h"
#include "cli/cli_private.h"
#include "common/common.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOGIN_TIMEOUT 10.0

/* ---- login --------------------------------------------------------------- */

static void login_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore login [--socket PATH | --connect HOST:PORT [--tls-ca FILE]\n"
		"         [--tls-cert FILE --tls-key FILE]] [--target T] [--state DIR] [--json]\n"
		"         [--] USER\n\n"
		"The login hook. Exit 0 and prints 'active' when USER may log in (restored,\n"
		"or not touched by the outage). Otherwise queues USER ahead of the background\n"
		"restores on the first call (later calls keep the place), prints one line\n"
		"with the position and an estimated time, and exits 75.\n\n"
		"When no daemon answers and the target is known (--target T, or the\n"
		"environment variable MAILRESTORE_TARGET), the answer comes from T itself:\n"
		"0 for a user mailrestore activated (T/.mailrestore/active/USER) or one the\n"
		"outage never touched (not in T/.mailrestore/affected, which the daemon\n"
		"writes at start), 75 for a touched user not active yet. So the hook can\n"
		"stay wired after the outage ends and the daemon is stopped.\n\n"
		"On a host apart from the daemon, --state DIR (or MAILRESTORE_CLIENT_STATE)\n"
		"keeps what the daemon said (DIR/active/USER, DIR/unaffected/USER): when it\n"
		"cannot be reached, a user known back or untouched gets 0, anyone else 75\n"
		"with \"the restore service cannot be reached; try again later\".\n\n"
		"Options end at --. Exit 69 when no daemon answers and the target is\n"
		"unknown, 65 for an invalid user name, 77 when the socket's group does not\n"
		"let the caller connect.\n\n" CLI_CONNECT_HELP);
}

/* The one line a person trying to log in reads (cli_private.h). */
void cli_login_message(const char *state, double pos, double eta, const char *status,
		       char *buf, size_t len)
{
	char when[64];
	long p = (long)pos;

	if (strcmp(status, "paused") == 0)
		snprintf(when, sizeof(when), "restoring is paused for now");
	else if (strcmp(status, "estimating") == 0)
		snprintf(when, sizeof(when), "the time is still being estimated");
	else
		cli_fmt_eta(eta, status, when, sizeof(when));
	if (strcmp(state, "restoring") == 0 || strcmp(state, "syncing") == 0)
		snprintf(buf, len, "Your mailbox is being restored right now; %s.", when);
	else if (strcmp(state, "attention") == 0)
		snprintf(buf, len,
			 "Your mailbox could not be restored automatically and an operator is "
			 "looking at it; please try again later.");
	else if (pos < 0)
		snprintf(buf, len, "Your mailbox is being restored from backup; %s.", when);
	else if (p == 0)
		snprintf(buf, len, "Your mailbox is being restored from backup. You are next; %s.",
			 when);
	else
		snprintf(buf, len,
			 "Your mailbox is being restored from backup. There %s %ld request%s in "
			 "the queue before you; %s.",
			 p == 1 ? "is" : "are", p, p == 1 ? "" : "s", when);
}

const char *cli_login_reply_message(const char *reply, const struct daemon_json_tok *toks,
				    const char *state, char *buf, size_t len)
{
	char status[32];
	double pos, eta;
	int i;

	i = daemon_json_get(reply, toks, 0, "position");
	pos = daemon_json_is_null(reply, toks, i) ? -1 : daemon_json_num(reply, toks, i, -1);
	i = daemon_json_get(reply, toks, 0, "eta_seconds");
	eta = daemon_json_is_null(reply, toks, i) ? -1 : daemon_json_num(reply, toks, i, -1);
	status[0] = '\0';
	i = daemon_json_get(reply, toks, 0, "eta_status");
	if (i >= 0 && !daemon_json_is_null(reply, toks, i))
		daemon_json_text(reply, toks, i, status, sizeof(status));
	cli_login_message(state, pos, eta, status, buf, len);
	return buf;
}

/* Reads into buf (len > 1) the line that starts at the first line start at
 * or after pos of the sorted list fd (size bytes). Returns that start, or
 * -1 past the end or on a read error. Plain preads: nothing allocated. */
static off_t line_at(int fd, off_t pos, off_t size, char *buf, size_t len)
{
	char chunk[512], *nl;
	ssize_t n;

	if (pos > 0) {
		off_t p = pos - 1;

		for (;;) {
			n = pread(fd, chunk, sizeof(chunk), p);
			if (n <= 0)
				return -1;
			nl = memchr(chunk, '\n', (size_t)n);
			if (nl != NULL) {
				pos = p + (nl - chunk) + 1;
				break;
			}
			p += n;
		}
	}
	if (pos >= size)
		return -1;
	n = pread(fd, buf, len - 1, pos);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl != NULL)
		*nl = '\0';
	return pos;
}

/* 1 when user is a line of the sorted list fd, 0 when not, -1 on error:
 * a binary search over byte offsets. */
static int sorted_list_has(int fd, const char *user)
{
	char line[MR_USER_NAME_MAX + 2];
	struct stat st;
	off_t lo = 0, hi, mid, at;
	int cmp;

	if (fstat(fd, &st) < 0)
		return -1;
	hi = st.st_size;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		at = line_at(fd, mid, st.st_size, line, sizeof(line));
		if (at < 0) {
			hi = mid;
			continue;
		}
		cmp = strcmp(line, user);
		if (cmp == 0)
			return 1;
		if (cmp < 0)
			lo = at + (off_t)strlen(line) + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Where user's mailbox sits below T: the user's name, or its folder of a
 * Cyrus spool when T/.mailrestore/store says "cyrus <layout>" (written by
 * the engine at start). Into buf[MR_CYRUS_REL_MAX + 1]. */
static const char *user_rel(int mfd, const char *user, char *buf)
{
	char text[64];
	ssize_t n = -1;
	int fd = mfd >= 0 ? openat(mfd, "store", O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	enum mr_cyrus_hash hash = MR_CYRUS_HASH_UNKNOWN;

	if (fd >= 0) {
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
	}
	if (n > 0) {
		text[n] = '\0';
		if (strncmp(text, "cyrus none", 10) == 0)
			hash = MR_CYRUS_HASH_NONE;
		else if (strncmp(text, "cyrus simple", 12) == 0)
			hash = MR_CYRUS_HASH_SIMPLE;
		else if (strncmp(text, "cyrus full", 10) == 0)
			hash = MR_CYRUS_HASH_FULL;
		else if (strncmp(text, "cyrus flat", 10) == 0)
			hash = MR_CYRUS_HASH_FLAT;
	}
	if (hash != MR_CYRUS_HASH_UNKNOWN && mr_cyrus_user_rel(hash, user, buf) != NULL)
		return buf;
	return user;
}

int cli_disk_verdict(const char *target, const char *user, int *active_r)
{
	struct stat st;
	int tfd, mfd = -1, afd = -1, lfd = -1, active, affected = -1;
	char rel[MR_CYRUS_REL_MAX + 1];

	*active_r = 0;
	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return -1;
	mfd = openat(tfd, ".mailrestore", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (mfd >= 0) {
		afd = openat(mfd, "active", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		lfd = openat(mfd, "affected", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	active = afd >= 0 && fstatat(afd, user, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		 fstatat(tfd, user_rel(mfd, user, rel), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		 S_ISDIR(st.st_mode);
	if (!active && lfd >= 0)
		affected = sorted_list_has(lfd, user);
	close(tfd);
	if (mfd >= 0)
		close(mfd);
	if (afd >= 0)
		close(afd);
	if (lfd >= 0)
		close(lfd);
	*active_r = active;
	/* Without the list (or unreadable) nobody can be said untouched. */
	return active || affected == 0;
}

/* `login` without a daemon: the answer from T (see login_usage). */
static int login_from_disk(const char *target, const char *user, int json)
{
	int active, r, rc;

	r = cli_disk_verdict(target, user, &active);
	if (r < 0) {
		cli_error("login", "no daemon answers, and the target %s cannot be opened: %s",
			  target, strerror(errno));
		return MR_EX_UNAVAILABLE;
	}
	rc = r == 1 ? MR_EX_OK : MR_EX_TEMPFAIL;
	if (json) {
		printf("{\"user\":\"%s\",\"state\":\"%s\",\"position\":null,"
		       "\"eta_seconds\":%s,\"eta_status\":\"%s\",\"from\":\"disk\"}\n",
		       user, active ? "active" : rc == MR_EX_OK ? "unknown" : "waiting",
		       rc == MR_EX_OK ? "0" : "null", rc == MR_EX_OK ? "done" : "none");
	} else if (rc == MR_EX_OK) {
		puts("active");
	} else {
		puts("Your mailbox is being restored from backup. The restore service is not "
		     "answering right now; please try again later.");
	}
	return rc;
}

/* `login --state DIR` without a daemon: what the daemon said last. */
static int login_from_snapshot(const char *dir, const char *user, int json)
{
	struct mr_error err;
	enum mr_snap what = MR_SNAP_NONE;
	int fd = mr_snapshot_open(dir, 0, &err), rc;

	if (fd >= 0) {
		what = mr_snapshot_get(fd, user);
		close(fd);
	}
	rc = what != MR_SNAP_NONE ? MR_EX_OK : MR_EX_TEMPFAIL;
	if (json)
		printf("{\"user\":\"%s\",\"state\":\"%s\",\"position\":null,"
		       "\"eta_seconds\":null,\"eta_status\":\"none\",\"from\":\"snapshot\"}\n",
		       user, what == MR_SNAP_ACTIVE ? "active" : what ? "unknown" : "waiting");
	else
		puts(rc == MR_EX_OK ? "active"
				    : "Your mailbox is being restored from backup. The restore "
				      "service cannot be reached; try again later.");
	return rc;
}

/* `login --state DIR`: remembers what the daemon said of user. */
static void login_remember(const char *dir, const char *user, enum mr_snap what)
{
	struct mr_error err;
	int fd = mr_snapshot_open(dir, 1, &err);

	if (fd < 0 || mr_snapshot_put(fd, user, what, &err) < 0)
		cli_error("login", "--state %s: %s", dir, err.msg);
	if (fd >= 0)
		close(fd);
}

/* `mailrestore login USER`: see login_usage. */
int cmd_login(int argc, char **argv)
{
	struct daemon_json_tok toks[64];
	struct cli_opts o;
	struct daemon_client cl;
	struct mr_error err;
	char req[MR_USER_NAME_MAX + 16], buf[8192], state[32], status[32], line[512];
	int n, rc;

	if (cli_parse_opts("login", argc, argv, CLI_OPT_JSON | CLI_OPT_TARGET | CLI_OPT_STATE,
			   &o) < 0)
		return MR_EX_USAGE;
	if (o.state == NULL && (o.state = getenv("MAILRESTORE_CLIENT_STATE")) != NULL &&
	    o.state[0] == '\0')
		o.state = NULL;
	if (o.target == NULL && (o.target = getenv("MAILRESTORE_TARGET")) != NULL &&
	    o.target[0] == '\0')
		o.target = NULL;
	if (o.help) {
		login_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 1) {
		login_usage(stderr);
		return MR_EX_USAGE;
	}
	if (cli_check_user("login", o.args[0]) < 0)
		return MR_EX_DATAERR;
	n = snprintf(req, sizeof(req), "LOGIN %s\n", o.args[0]);
	mr_error_clear(&err);
	rc = cli_connect("login", &o, LOGIN_TIMEOUT, &cl, &err);
	if (rc < 0 && o.target != NULL && err.errnum != EACCES && err.errnum != EPERM)
		return login_from_disk(o.target, o.args[0], o.json);
	if (rc < 0 && o.state != NULL && err.errnum != EACCES && err.errnum != EPERM)
		return login_from_snapshot(o.state, o.args[0], o.json);
	if (rc < 0)
		return cli_unreachable("login", o.where, &err);
	if (rc != 0)
		return rc;
	rc = daemon_client_call(&cl, req, (size_t)n, NULL, 0, buf, sizeof(buf), &err);
	daemon_client_close(&cl);
	if (rc < 0 && o.state != NULL)
		return login_from_snapshot(o.state, o.args[0], o.json);
	if (rc < 0)
		return cli_unreachable("login", o.where, &err);
	n = daemon_json_parse(buf, strlen(buf), toks, 64);
	if (n < 1) {
		cli_error("login", "malformed reply from the daemon");
		return MR_EX_SOFTWARE;
	}
	rc = cli_reply_status("login", buf, toks);
	if (rc != 0)
		return rc;
	daemon_json_text(buf, toks, daemon_json_get(buf, toks, 0, "state"), state, sizeof(state));
	daemon_json_text(buf, toks, daemon_json_get(buf, toks, 0, "mode"), status, sizeof(status));
	/* A dial-tone mailbox is there to log in to while the history comes. */
	rc = strcmp(state, "active") == 0 || strcmp(state, "unknown") == 0 ||
			     strcmp(status, "dial-tone") == 0
		     ? MR_EX_OK
		     : MR_EX_TEMPFAIL;
	if (o.state != NULL && rc == MR_EX_OK)
		login_remember(o.state, o.args[0],
			       strcmp(state, "unknown") == 0 ? MR_SNAP_UNAFFECTED : MR_SNAP_ACTIVE);
	if (o.json) {
		puts(buf);
		return rc;
	}
	if (rc == MR_EX_OK) {
		puts("active");
		return rc;
	}
	puts(cli_login_reply_message(buf, toks, state, line, sizeof(line)));
	return rc;
}
