/*
 * cmd_client.c: the daemon's clients: the login hook (`login`), the
 * operator's views (`status`, `queue`, `show`, `watch`) and controls
 * (`enqueue`, `bump`, `retry`, `activate`, `pause`, `resume`, `shutdown`),
 * and the delivery agent's `deliver`. Each sends requests of the line
 * protocol (docs/PROTOCOL.md) to the socket and turns the JSON reply into
 * human output, or prints it with --json. A reply {"ok":false,...,"code":N}
 * exits N; a daemon that cannot be reached exits 69.
 *
 * `login` sits in every login of the mail server: it loads nothing, does one
 * connect, one write and one read, and allocates nothing.
 */
#include "cli/cli.h"
#include "common/common.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_TIMEOUT 30.0
#define LOGIN_TIMEOUT 10.0

/* ---- options --------------------------------------------------------- */

enum {
	OPT_JSON = 1 << 0,
	OPT_PROMETHEUS = 1 << 1,
	OPT_ONCE = 1 << 2,
	OPT_PRIORITY = 1 << 3,
	OPT_FILE = 1 << 4,
	OPT_MAX = 1 << 5,
	OPT_STATE = 1 << 6,
	OPT_TARGET = 1 << 7,
};

struct copts {
	const char *socket;
	int json, prometheus, once, priority, help;
	const char *file;
	const char *state;
	const char *target;
	uint64_t max;
	int nargs;
	char **args;
};

/* Parses --socket, --help and the options in allowed, anywhere on the line
 * (`show alice --json` as well as `show --json alice`) up to a "--"; the
 * rest are operands, kept in order at the front of argv + 1 (in place:
 * an operand only ever moves to a slot already read, so nothing is
 * allocated on the login path). Returns 0, or -1 after a usage error. */
static int parse_opts(const char *cmd, int argc, char **argv, unsigned allowed, struct copts *o)
{
	int i, nops = 0;
	const char *a, *val;

	memset(o, 0, sizeof(*o));
	o->socket = cli_default_socket();
	for (i = 1; i < argc; i++) {
		a = argv[i];
		val = NULL;
		if (strcmp(a, "--") == 0) {
			for (i++; i < argc; i++)
				argv[1 + nops++] = argv[i];
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			argv[1 + nops++] = argv[i];
			continue;
		}
		if (strncmp(a, "--socket=", 9) == 0) {
			o->socket = a + 9;
		} else if (strcmp(a, "--socket") == 0 && i + 1 < argc) {
			o->socket = argv[++i];
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			o->help = 1;
		} else if ((allowed & OPT_JSON) && strcmp(a, "--json") == 0) {
			o->json = 1;
		} else if ((allowed & OPT_PROMETHEUS) && strcmp(a, "--prometheus") == 0) {
			o->prometheus = 1;
		} else if ((allowed & OPT_ONCE) && strcmp(a, "--once") == 0) {
			o->once = 1;
		} else if ((allowed & OPT_PRIORITY) && strcmp(a, "--priority") == 0) {
			o->priority = 1;
		} else if ((allowed & OPT_FILE) && strcmp(a, "--file") == 0 && i + 1 < argc) {
			o->file = argv[++i];
		} else if ((allowed & OPT_TARGET) && strcmp(a, "--target") == 0 && i + 1 < argc) {
			o->target = argv[++i];
		} else if ((allowed & OPT_STATE) && strcmp(a, "--state") == 0 && i + 1 < argc) {
			o->state = argv[++i];
		} else if ((allowed & OPT_MAX) && strcmp(a, "--max") == 0 && i + 1 < argc) {
			val = argv[++i];
			if (mr_parse_u64(val, &o->max) < 0) {
				cli_error(cmd, "--max takes a number");
				return -1;
			}
		} else {
			cli_error(cmd, "unknown option '%s' (see --help)", a);
			return -1;
		}
	}
	o->args = argv + 1;
	o->nargs = nops;
	return 0;
}

/* ---- talking to the daemon ------------------------------------------- */

struct reply {
	char *text;
	struct daemon_json_tok *toks;
	int ntok;
};

static void reply_free(struct reply *r)
{
	free(r->text);
	free(r->toks);
	memset(r, 0, sizeof(*r));
}

static int unreachable(const char *cmd, const char *sock, const struct mr_error *err)
{
	/* The socket's group decides who may connect: a refusal, not an
	 * absent daemon. */
	if (err->errnum == EACCES || err->errnum == EPERM) {
		cli_error(cmd, "permission denied: not allowed to connect to %s (its group decides)",
			  sock);
		return MR_EX_NOPERM;
	}
	cli_error(cmd, "daemon unreachable at %s: %s", sock,
		  err->errnum ? strerror(err->errnum) : err->msg);
	return MR_EX_UNAVAILABLE;
}

/* Checks a parsed reply: 0 when "ok" is true, else prints its error and
 * returns its code. */
static int reply_status(const char *cmd, const char *text, const struct daemon_json_tok *toks)
{
	char msg[1024];
	int code;

	if (toks[0].type != DAEMON_JSON_OBJECT) {
		cli_error(cmd, "malformed reply from the daemon");
		return MR_EX_SOFTWARE;
	}
	daemon_json_text(text, toks, daemon_json_get(text, toks, 0, "ok"), msg, sizeof(msg));
	if (strcmp(msg, "true") == 0)
		return 0;
	daemon_json_text(text, toks, daemon_json_get(text, toks, 0, "error"), msg, sizeof(msg));
	code = (int)daemon_json_num(text, toks, daemon_json_get(text, toks, 0, "code"),
				    MR_EX_SOFTWARE);
	cli_error(cmd, "%s", msg[0] ? msg : "the daemon refused the request");
	return code > 0 && code < 256 ? code : MR_EX_SOFTWARE;
}

/* Parses text into r (taking ownership of text). */
static int parse_reply(const char *cmd, char *text, struct reply *r)
{
	size_t len = strlen(text);
	int max = (int)(len / 2 + 8);

	r->text = text;
	r->toks = malloc((size_t)max * sizeof(*r->toks));
	if (r->toks == NULL) {
		cli_error(cmd, "out of memory");
		return MR_EX_SOFTWARE;
	}
	r->ntok = daemon_json_parse(text, len, r->toks, max);
	if (r->ntok < 1) {
		cli_error(cmd, "malformed reply from the daemon");
		return MR_EX_SOFTWARE;
	}
	return reply_status(cmd, r->text, r->toks);
}

/* Sends one request on fd and parses the reply. Returns 0 or the exit
 * code (message printed). */
static int call_fd(const char *cmd, const char *sock, int fd, const char *req, struct reply *r)
{
	struct mr_error err;
	char *text = NULL;

	memset(r, 0, sizeof(*r));
	mr_error_clear(&err);
	if (daemon_client_call_alloc(fd, req, strlen(req), &text, &err) < 0)
		return unreachable(cmd, sock, &err);
	return parse_reply(cmd, text, r);
}

/* Connects, sends one request, parses the reply. A daemon that is still
 * starting (reading its queue, indexing the backups) is asked again for up
 * to STARTING_WAIT seconds: operator commands and scripts run right after
 * a start then see the daemon as it is once up. (A login does not wait:
 * it answers "try again", 75, at once.) */
#define STARTING_WAIT 10.0
static int call(const char *cmd, const char *sock, const char *req, struct reply *r)
{
	struct mr_error err;
	double until = mr_monotonic() + STARTING_WAIT;
	char *text;
	int fd;

	for (;;) {
		memset(r, 0, sizeof(*r));
		mr_error_clear(&err);
		text = NULL;
		fd = daemon_client_connect(sock, CLIENT_TIMEOUT, &err);
		if (fd < 0)
			return unreachable(cmd, sock, &err);
		if (daemon_client_call_alloc(fd, req, strlen(req), &text, &err) < 0) {
			close(fd);
			return unreachable(cmd, sock, &err);
		}
		close(fd);
		if (strstr(text, "\"the daemon is starting") == NULL || mr_monotonic() > until)
			return parse_reply(cmd, text, r);
		free(text);
		usleep(100000);
	}
}

static int get(const struct reply *r, int obj, const char *key)
{
	return daemon_json_get(r->text, r->toks, obj, key);
}

static double num(const struct reply *r, int obj, const char *key, double def)
{
	return daemon_json_num(r->text, r->toks, get(r, obj, key), def);
}

/* The string member key of object obj, escaped for a terminal (file
 * names in reasons are anybody's bytes), "" when null or missing. */
static const char *str(const struct reply *r, int obj, const char *key, char *buf, size_t len)
{
	int i = get(r, obj, key);
	char raw[4096];

	if (daemon_json_is_null(r->text, r->toks, i)) {
		buf[0] = '\0';
		return buf;
	}
	daemon_json_text(r->text, r->toks, i, raw, sizeof(raw));
	return mr_escape(raw, buf, len);
}

/* Prints the raw JSON of token i. */
static void print_tok(const struct reply *r, int i)
{
	int start = r->toks[i].start, end = r->toks[i].end;

	if (r->toks[i].type == DAEMON_JSON_STRING) {
		start--;
		end++;
	}
	printf("%.*s\n", end - start, r->text + start);
}

static const char *fmt_time(double t, char *buf, size_t len)
{
	struct tm tm;
	time_t s = (time_t)t;

	if (t <= 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	localtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

/* An estimate as people read it, from eta_seconds (< 0 for null) and
 * eta_status: "paused", "estimating", "no estimate", or "about 3 minutes". */
static const char *fmt_eta(double eta, const char *status, char *buf, size_t len)
{
	if (strcmp(status, "paused") == 0 || strcmp(status, "estimating") == 0)
		snprintf(buf, len, "%s", status);
	else if (eta < 0)
		snprintf(buf, len, "no estimate");
	else
		mr_human_duration(eta, buf, len);
	return buf;
}

/* fmt_eta() of object obj of a reply. */
static const char *reply_eta(const struct reply *r, int obj, char *buf, size_t len)
{
	char status[32];
	int i = get(r, obj, "eta_seconds");

	str(r, obj, "eta_status", status, sizeof(status));
	return fmt_eta(daemon_json_is_null(r->text, r->toks, i) ? -1 : num(r, obj, "eta_seconds", -1),
		       status, buf, len);
}

/* ---- login --------------------------------------------------------------- */

static void login_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore login [--socket PATH] [--target T] [--json] [--] USER\n\n"
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
		"Options end at --. Exit 69 when no daemon answers and the target is\n"
		"unknown, 65 for an invalid user name, 77 when the socket's group does not\n"
		"let the caller connect.\n");
}

/* The one line a person trying to log in reads. */
static void login_message(const char *state, double pos, double eta, const char *status,
			  char *buf, size_t len)
{
	char when[64];
	long p = (long)pos;

	if (strcmp(status, "paused") == 0)
		snprintf(when, sizeof(when), "restoring is paused for now");
	else if (strcmp(status, "estimating") == 0)
		snprintf(when, sizeof(when), "the time is still being estimated");
	else
		fmt_eta(eta, status, when, sizeof(when));
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

int cli_disk_verdict(const char *target, const char *user, int *active_r)
{
	struct stat st;
	int tfd, mfd = -1, afd = -1, lfd = -1, active, affected = -1;

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
		 fstatat(tfd, user, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
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

/* `mailrestore login USER`: see login_usage. */
int cmd_login(int argc, char **argv)
{
	struct daemon_json_tok toks[64];
	struct copts o;
	struct mr_error err;
	char req[MR_USER_NAME_MAX + 16], buf[8192], state[32], status[32], line[512];
	double pos, eta;
	int fd, n, rc, i;

	if (parse_opts("login", argc, argv, OPT_JSON | OPT_TARGET, &o) < 0)
		return MR_EX_USAGE;
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
	fd = daemon_client_connect(o.socket, LOGIN_TIMEOUT, &err);
	if (fd < 0 && o.target != NULL && err.errnum != EACCES && err.errnum != EPERM)
		return login_from_disk(o.target, o.args[0], o.json);
	if (fd < 0)
		return unreachable("login", o.socket, &err);
	rc = daemon_client_call(fd, req, (size_t)n, NULL, 0, buf, sizeof(buf), &err);
	close(fd);
	if (rc < 0)
		return unreachable("login", o.socket, &err);
	n = daemon_json_parse(buf, strlen(buf), toks, 64);
	if (n < 1) {
		cli_error("login", "malformed reply from the daemon");
		return MR_EX_SOFTWARE;
	}
	rc = reply_status("login", buf, toks);
	if (rc != 0)
		return rc;
	daemon_json_text(buf, toks, daemon_json_get(buf, toks, 0, "state"), state, sizeof(state));
	daemon_json_text(buf, toks, daemon_json_get(buf, toks, 0, "mode"), status, sizeof(status));
	/* A dial-tone mailbox is there to log in to while the history comes. */
	rc = strcmp(state, "active") == 0 || strcmp(state, "unknown") == 0 ||
			     strcmp(status, "dial-tone") == 0
		     ? MR_EX_OK
		     : MR_EX_TEMPFAIL;
	if (o.json) {
		puts(buf);
		return rc;
	}
	if (rc == MR_EX_OK) {
		puts("active");
		return rc;
	}
	i = daemon_json_get(buf, toks, 0, "position");
	pos = daemon_json_is_null(buf, toks, i) ? -1 : daemon_json_num(buf, toks, i, -1);
	i = daemon_json_get(buf, toks, 0, "eta_seconds");
	eta = daemon_json_is_null(buf, toks, i) ? -1 : daemon_json_num(buf, toks, i, -1);
	status[0] = '\0';
	i = daemon_json_get(buf, toks, 0, "eta_status");
	if (i >= 0 && !daemon_json_is_null(buf, toks, i))
		daemon_json_text(buf, toks, i, status, sizeof(status));
	login_message(state, pos, eta, status, line, sizeof(line));
	puts(line);
	return rc;
}

/* ---- status ------------------------------------------------------------- */

static const char *const states[] = { "waiting", "queued",    "restoring", "syncing",
				      "active",  "attention", "unknown" };
#define NSTATES 7

static void status_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore status [--socket PATH] [--json | --prometheus]\n\n"
		"Users per state, what each worker is doing, throughput, held mail and the\n"
		"time left. --prometheus prints the same as metrics in the Prometheus text\n"
		"format. Exit 0, 69 when no daemon answers,\n"
		"77 when the socket's group does not let the caller connect.\n");
}

static void progress_bar(double frac, char *buf, size_t width)
{
	size_t i, full;

	if (frac < 0)
		frac = 0;
	if (frac > 1)
		frac = 1;
	full = (size_t)(frac * (double)width + 0.5);
	buf[0] = '[';
	for (i = 0; i < width; i++)
		buf[i + 1] = i < full ? '#' : '-';
	buf[width + 1] = ']';
	buf[width + 2] = '\0';
}

static void print_worker(const struct reply *r, int w)
{
	char user[MR_USER_NAME_MAX + 1], phase[32], bar[48], a[32], b[32];
	double done, total, prog;
	int pi;

	str(r, w, "user", user, sizeof(user));
	str(r, w, "phase", phase, sizeof(phase));
	if (strcmp(phase, "idle") == 0 || (user[0] == '\0' && phase[0] == '\0')) {
		printf("  worker %-2d idle\n", (int)num(r, w, "id", 0));
		return;
	}
	/* Busy with a user the daemon does not name to this caller. */
	if (user[0] == '\0')
		snprintf(user, sizeof(user), "-");
	done = num(r, w, "progress_done", 0);
	total = num(r, w, "progress_total", 0);
	pi = get(r, w, "progress");
	prog = daemon_json_is_null(r->text, r->toks, pi) ? -1 : daemon_json_num(r->text, r->toks, pi, -1);
	if (prog >= 0) {
		progress_bar(prog, bar, 20);
		printf("  worker %-2d %-20s %-10s %s %3d%%  %s of %s%s\n", (int)num(r, w, "id", 0),
		       user, phase, bar, (int)(prog * 100), mr_human_bytes((uint64_t)done, a, sizeof(a)),
		       mr_human_bytes((uint64_t)total, b, sizeof(b)),
		       strcmp(str(r, w, "priority", a, sizeof(a)), "true") == 0 ? "  (login)" : "");
	} else {
		printf("  worker %-2d %-20s %-10s %s done\n", (int)num(r, w, "id", 0), user, phase,
		       mr_human_bytes((uint64_t)done, a, sizeof(a)));
	}
}

static void print_status(const struct reply *r)
{
	char a[64], b[64];
	int counts = get(r, 0, "counts"), workers = get(r, 0, "workers");
	int tp = get(r, 0, "throughput"), i, w;

	printf("users:");
	for (i = 0; i < NSTATES - 1; i++)
		printf(" %s %.0f%s", states[i], num(r, counts, states[i], 0),
		       i < NSTATES - 2 ? "," : "\n");
	printf("workers (%d)%s:\n", (int)num(r, 0, "jobs", 0),
	       strcmp(str(r, 0, "paused", a, sizeof(a)), "true") == 0
		       ? " - paused: no new user starts"
		       : "");
	for (i = 0; (w = daemon_json_index(r->toks, workers, i)) >= 0; i++)
		print_worker(r, w);
	{
		char held[512];

		if (str(r, 0, "background_held", held, sizeof(held))[0] != '\0')
			printf("BACKGROUND HELD: %s\n", held);
	}
	printf("throughput: %.1f users/min, %s/s (%.0f users finished)\n",
	       num(r, tp, "users_per_minute", 0),
	       mr_human_bytes((uint64_t)num(r, tp, "bytes_per_second", 0), a, sizeof(a)),
	       num(r, tp, "users_done", 0));
	printf("requests waiting: %.0f   held mail: %.0f messages\n", num(r, 0, "pending", 0),
	       num(r, 0, "held_mail", 0));
	i = get(r, 0, "eta_seconds");
	printf("time until every user is back: %s\n",
	       !daemon_json_is_null(r->text, r->toks, i) && num(r, 0, "eta_seconds", -1) == 0
		       ? "nothing left to do"
		       : reply_eta(r, 0, b, sizeof(b)));
	i = get(r, tp, "rates");
	if (i >= 0 && num(r, get(r, i, "run"), "runs", 0) > 0)
		printf("rate per worker: %s/s, %.0f files/s (%.0f runs measured)\n",
		       mr_human_bytes((uint64_t)num(r, get(r, i, "run"), "bytes_per_second", 0), a,
				      sizeof(a)),
		       num(r, get(r, i, "run"), "files_per_second", 0),
		       num(r, get(r, i, "run"), "runs", 0));
}

static void print_prometheus(const struct reply *r)
{
	int counts = get(r, 0, "counts"), workers = get(r, 0, "workers");
	int tp = get(r, 0, "throughput"), i, w, busy = 0, nw = 0;
	char u[MR_USER_NAME_MAX + 1];

	for (i = 0; (w = daemon_json_index(r->toks, workers, i)) >= 0; i++) {
		nw++;
		/* A busy worker's user is null for callers who may not see it. */
		if (str(r, w, "user", u, sizeof(u))[0] ||
		    (str(r, w, "phase", u, sizeof(u))[0] && strcmp(u, "idle") != 0))
			busy++;
	}
	printf("# HELP mailrestore_users Affected users per state.\n"
	       "# TYPE mailrestore_users gauge\n");
	for (i = 0; i < NSTATES; i++)
		printf("mailrestore_users{state=\"%s\"} %.0f\n", states[i],
		       num(r, counts, states[i], 0));
	printf("# HELP mailrestore_queue_pending Requests (logins, enqueues) not started yet.\n"
	       "# TYPE mailrestore_queue_pending gauge\n"
	       "mailrestore_queue_pending %.0f\n",
	       num(r, 0, "pending", 0));
	printf("# HELP mailrestore_held_messages Messages held for users not active yet.\n"
	       "# TYPE mailrestore_held_messages gauge\n"
	       "mailrestore_held_messages %.0f\n",
	       num(r, 0, "held_mail", 0));
	printf("# HELP mailrestore_workers Worker threads.\n"
	       "# TYPE mailrestore_workers gauge\n"
	       "mailrestore_workers %d\n"
	       "# HELP mailrestore_workers_busy Workers running a user.\n"
	       "# TYPE mailrestore_workers_busy gauge\n"
	       "mailrestore_workers_busy %d\n",
	       nw, busy);
	printf("# HELP mailrestore_restored_users_total Runs finished (active or attention) since start.\n"
	       "# TYPE mailrestore_restored_users_total counter\n"
	       "mailrestore_restored_users_total %.0f\n",
	       num(r, tp, "users_done", 0));
	printf("# HELP mailrestore_restored_bytes_total Bytes written by finished runs since start.\n"
	       "# TYPE mailrestore_restored_bytes_total counter\n"
	       "mailrestore_restored_bytes_total %.0f\n",
	       num(r, tp, "bytes_total", 0));
	printf("# HELP mailrestore_seconds_per_user Mean seconds per finished user.\n"
	       "# TYPE mailrestore_seconds_per_user gauge\n"
	       "mailrestore_seconds_per_user %.3f\n",
	       num(r, tp, "seconds_per_user", 0));
	printf("# HELP mailrestore_eta_seconds Estimated seconds until every user is done.\n"
	       "# TYPE mailrestore_eta_seconds gauge\n"
	       "mailrestore_eta_seconds %.0f\n",
	       /* null (paused, estimating): not a number, not a countdown */
	       daemon_json_is_null(r->text, r->toks, get(r, 0, "eta_seconds"))
		       ? NAN
		       : num(r, 0, "eta_seconds", 0));
	printf("# HELP mailrestore_paused 1 when no new user is started.\n"
	       "# TYPE mailrestore_paused gauge\n"
	       "mailrestore_paused %d\n",
	       strcmp(str(r, 0, "paused", u, sizeof(u)), "true") == 0);
}

/* `mailrestore status`: see status_usage. */
int cmd_status(int argc, char **argv)
{
	struct copts o;
	struct reply r;
	int rc;

	if (parse_opts("status", argc, argv, OPT_JSON | OPT_PROMETHEUS, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		status_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 0) {
		status_usage(stderr);
		return MR_EX_USAGE;
	}
	rc = call("status", o.socket, "STATUS\n", &r);
	if (rc == 0) {
		if (o.json)
			puts(r.text);
		else if (o.prometheus)
			print_prometheus(&r);
		else
			print_status(&r);
	}
	reply_free(&r);
	return rc;
}

/* ---- queue ---------------------------------------------------------------- */

static void queue_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore queue [--socket PATH] [--json] [--max N]\n"
		"       mailrestore queue [--socket PATH] [--json] --state STATE\n\n"
		"The requests not started yet, in the order they will be served: logins,\n"
		"`enqueue --priority` and bumps first, then plain enqueues. --json prints a\n"
		"list of objects with user, state, position, eta_seconds, priority and\n"
		"requested_at. Only operators see the whole queue; anyone else sees at most\n"
		"its own entry.\n\n"
		"--state STATE lists every user in STATE (waiting, queued, restoring,\n"
		"syncing, active, attention, or any) with its reason, for operators:\n"
		"`queue --state attention` is the list of users who need a look; --json\n"
		"prints a list of the objects `show --json` prints.\n"
		"Exit 0, 64 no such state, 69 when no daemon answers, 77 not allowed.\n");
}

/* Calls fn for each user object of `LIST state`, a page at a time on one
 * connection. Returns 0 or the exit code (message printed). */
static int list_state(const char *cmd, const char *sock, const char *state,
		      void (*fn)(void *arg, const struct reply *r, int obj), void *arg)
{
	char req[96];
	struct mr_error err;
	struct reply r;
	uint64_t cursor = 0;
	int fd, rc = 0, list, i, u, next;

	mr_error_clear(&err);
	fd = daemon_client_connect(sock, CLIENT_TIMEOUT, &err);
	if (fd < 0)
		return unreachable(cmd, sock, &err);
	for (;;) {
		snprintf(req, sizeof(req), "LIST %s %llu\n", state, (unsigned long long)cursor);
		rc = call_fd(cmd, sock, fd, req, &r);
		if (rc != 0)
			break;
		list = get(&r, 0, "users");
		for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++)
			fn(arg, &r, u);
		next = get(&r, 0, "next");
		if (next < 0 || daemon_json_is_null(r.text, r.toks, next)) {
			reply_free(&r);
			break;
		}
		cursor = (uint64_t)num(&r, 0, "next", 0);
		reply_free(&r);
	}
	reply_free(&r);
	close(fd);
	return rc;
}

struct state_print {
	int json;
	size_t n;
};

static void print_state_user(void *arg, const struct reply *r, int u)
{
	struct state_print *p = arg;
	char user[MR_USER_NAME_MAX * 4 + 8], state[32], reason[4096], when[64];
	double t;

	if (p->json) {
		int start = r->toks[u].start, end = r->toks[u].end;
		printf("%s%.*s", p->n ? ",\n" : "[", end - start, r->text + start);
	} else {
		t = num(r, u, "finished_at", 0);
		if (t <= 0)
			t = num(r, u, "requested_at", 0);
		printf("%-30s %-10s %-19s %s\n", str(r, u, "user", user, sizeof(user)),
		       str(r, u, "state", state, sizeof(state)), fmt_time(t, when, sizeof(when)),
		       str(r, u, "reason", reason, sizeof(reason)));
	}
	p->n++;
}

/* `mailrestore queue --state STATE`. */
static int queue_state(const struct copts *o)
{
	struct state_print p = { o->json, 0 };
	int rc;

	size_t i;

	for (i = 0; i < NSTATES - 1; i++) /* "unknown" users are not listed */
		if (strcmp(o->state, states[i]) == 0)
			break;
	if (i == NSTATES - 1 && strcmp(o->state, "any") != 0) {
		cli_error("queue", "no such state '%s' (waiting, queued, restoring, syncing, "
			  "active, attention, any)", o->state);
		return MR_EX_USAGE;
	}
	if (!o->json)
		printf("%-30s %-10s %-19s %s\n", "USER", "STATE", "SINCE", "REASON");
	rc = list_state("queue", o->socket, o->state, print_state_user, &p);
	if (o->json)
		printf("%s]\n", p.n ? "" : "[");
	else if (rc == 0)
		printf("%zu user%s %s %s\n", p.n, p.n == 1 ? "" : "s",
		       strcmp(o->state, "any") == 0 ? "in" : "in state", o->state);
	return rc;
}

/* `mailrestore queue`: see queue_usage. */
int cmd_queue(int argc, char **argv)
{
	char req[64], user[MR_USER_NAME_MAX + 1], eta[64], when[64], pr[8];
	struct copts o;
	struct reply r;
	int rc, list, i, u;

	if (parse_opts("queue", argc, argv, OPT_JSON | OPT_MAX | OPT_STATE, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		queue_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 0) {
		queue_usage(stderr);
		return MR_EX_USAGE;
	}
	if (o.state != NULL)
		return queue_state(&o);
	snprintf(req, sizeof(req), "QUEUE %llu\n", (unsigned long long)o.max);
	rc = call("queue", o.socket, req, &r);
	if (rc == 0) {
		list = get(&r, 0, "queue");
		if (o.json) {
			print_tok(&r, list);
		} else {
			printf("%-8s %-30s %-9s %-19s %s\n", "POSITION", "USER", "KIND", "ASKED",
			       "ESTIMATE");
			for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++)
				printf("%-8.0f %-30s %-9s %-19s %s\n", num(&r, u, "position", -1),
				       str(&r, u, "user", user, sizeof(user)),
				       strcmp(str(&r, u, "priority", pr, sizeof(pr)), "true") == 0
					       ? "priority"
					       : "enqueue",
				       fmt_time(num(&r, u, "requested_at", 0), when, sizeof(when)),
				       reply_eta(&r, u, eta, sizeof(eta)));
			printf("%.0f request%s waiting\n", num(&r, 0, "total", 0),
			       num(&r, 0, "total", 0) == 1 ? "" : "s");
		}
	}
	reply_free(&r);
	return rc;
}

/* ---- show ----------------------------------------------------------------- */

static void show_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore show [--socket PATH] [--json] USER\n\n"
		"One user's state, queue position, estimated time, when it was requested,\n"
		"started and finished, what its last run restored (files and bytes from the\n"
		"backup, copied from the source, renamed, moved to the attic, unreadable),\n"
		"held mail, and the reason when it needs attention. A user the outage does\n"
		"not touch shows as 'unknown' (exit 0). Only operators may see other users;\n"
		"anyone else may see the user named like its login (exit 77 otherwise).\n"
		"Exit 65 invalid name, 69 no daemon.\n");
}

static void print_show(const struct reply *r)
{
	char a[MR_USER_NAME_MAX + 64], b[64], c[64];
	int k = get(r, 0, "counters"), pi;

	printf("user:        %s\n", str(r, 0, "user", a, sizeof(a)));
	printf("state:       %s\n", str(r, 0, "state", a, sizeof(a)));
	pi = get(r, 0, "position");
	if (!daemon_json_is_null(r->text, r->toks, pi))
		printf("position:    %.0f (requests before it)\n", num(r, 0, "position", 0));
	pi = get(r, 0, "eta_seconds");
	if (strcmp(a, "active") != 0 && strcmp(a, "unknown") != 0)
		printf("estimate:    %s\n", reply_eta(r, 0, b, sizeof(b)));
	if (strcmp(a, "unknown") == 0) {
		printf("(not affected by the outage)\n");
		return;
	}
	printf("requested:   %s\n", fmt_time(num(r, 0, "requested_at", 0), b, sizeof(b)));
	printf("started:     %s\n", fmt_time(num(r, 0, "started_at", 0), b, sizeof(b)));
	printf("finished:    %s\n", fmt_time(num(r, 0, "finished_at", 0), b, sizeof(b)));
	printf("runs:        %.0f\n", num(r, 0, "attempts", 0));
	printf("from backup: %.0f files, %s\n", num(r, k, "backup_files", 0),
	       mr_human_bytes((uint64_t)num(r, k, "backup_bytes", 0), b, sizeof(b)));
	printf("from source: %.0f files copied (%s), %.0f patched, %.0f renamed\n",
	       num(r, k, "copied_files", 0),
	       mr_human_bytes((uint64_t)num(r, k, "copied_bytes", 0), c, sizeof(c)),
	       num(r, k, "patched_files", 0), num(r, k, "renamed", 0));
	printf("source read: %s\n",
	       mr_human_bytes((uint64_t)num(r, k, "source_bytes_read", 0), c, sizeof(c)));
	printf("to attic:    %.0f\n", num(r, k, "attic_files", 0));
	printf("unreadable:  %.0f\n", num(r, k, "unreadable", 0));
	printf("held mail:   %.0f messages (%s), %.0f released at activation\n",
	       num(r, 0, "held_mail", 0),
	       mr_human_bytes((uint64_t)num(r, 0, "held_mail_bytes", 0), b, sizeof(b)),
	       num(r, k, "released_mail", 0));
	if (str(r, 0, "reason", a, sizeof(a))[0])
		printf("reason:      %s\n", a);
}

/* `mailrestore show USER`: see show_usage. */
int cmd_show(int argc, char **argv)
{
	char req[MR_USER_NAME_MAX + 16];
	struct copts o;
	struct reply r;
	int rc;

	if (parse_opts("show", argc, argv, OPT_JSON, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		show_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 1) {
		show_usage(stderr);
		return MR_EX_USAGE;
	}
	if (cli_check_user("show", o.args[0]) < 0)
		return MR_EX_DATAERR;
	snprintf(req, sizeof(req), "SHOW %s\n", o.args[0]);
	rc = call("show", o.socket, req, &r);
	if (rc == 0) {
		if (o.json)
			puts(r.text);
		else
			print_show(&r);
	}
	reply_free(&r);
	return rc;
}

/* ---- watch ---------------------------------------------------------------- */

static volatile sig_atomic_t watch_stop;

static void on_watch_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

static void watch_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore watch [--socket PATH] [--once]\n\n"
		"A live view, refreshed every second: users per state, each worker with its\n"
		"user, phase and a progress bar, throughput, time left and the next users in\n"
		"line. q or ctrl-c quits; it also ends when the daemon goes away. --once\n"
		"prints one frame and exits. Exit 0, 69 when no daemon answers, 77 not\n"
		"allowed to connect.\n");
}

/* One frame; 0, or the exit code of a failed request. */
static int watch_frame(const char *sock, int tty)
{
	char user[MR_USER_NAME_MAX + 1], eta[64], ts[64];
	struct reply st, q;
	int rc, list, i, u;

	rc = call("watch", sock, "STATUS\n", &st);
	if (rc != 0) {
		reply_free(&st);
		return rc;
	}
	rc = call("watch", sock, "QUEUE 5\n", &q);
	if (rc != 0) {
		reply_free(&st);
		reply_free(&q);
		return rc;
	}
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("mailrestore watch - %s - daemon pid %.0f%s\n\n",
	       fmt_time(mr_now(), ts, sizeof(ts)), num(&st, 0, "pid", 0),
	       tty ? " - q quits" : "");
	print_status(&st);
	list = get(&q, 0, "queue");
	printf("\nnext in line (%.0f waiting):\n", num(&q, 0, "total", 0));
	for (i = 0; (u = daemon_json_index(q.toks, list, i)) >= 0; i++)
		printf("  %4.0f  %-30s %s\n", num(&q, u, "position", -1),
		       str(&q, u, "user", user, sizeof(user)),
		       reply_eta(&q, u, eta, sizeof(eta)));
	if (i == 0)
		printf("  (nobody)\n");
	fflush(stdout);
	reply_free(&st);
	reply_free(&q);
	return 0;
}

/* `mailrestore watch`: see watch_usage. */
int cmd_watch(int argc, char **argv)
{
	struct termios saved, raw;
	struct sigaction sa;
	struct pollfd pfd;
	struct copts o;
	int tty, raw_on = 0, rc, frames = 0;
	char ch;

	if (parse_opts("watch", argc, argv, OPT_ONCE, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		watch_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 0) {
		watch_usage(stderr);
		return MR_EX_USAGE;
	}
	tty = isatty(STDOUT_FILENO);
	if (o.once)
		return watch_frame(o.socket, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_watch_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			raw_on = 1;
	}
	rc = MR_EX_OK;
	while (!watch_stop) {
		rc = watch_frame(o.socket, tty);
		if (rc != 0) {
			if (frames > 0) {
				fprintf(stderr, "the daemon went away\n");
				rc = MR_EX_OK;
			}
			break;
		}
		frames++;
		pfd.fd = STDIN_FILENO;
		pfd.events = POLLIN;
		if (poll(&pfd, raw_on ? 1 : 0, 1000) > 0 && read(STDIN_FILENO, &ch, 1) == 1 &&
		    (ch == 'q' || ch == 'Q'))
			break;
	}
	if (raw_on)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	return rc;
}

/* ---- enqueue -------------------------------------------------------------- */

static void enqueue_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore enqueue [--socket PATH] [--json] [--priority] USER...\n"
		"       mailrestore enqueue [--socket PATH] [--json] [--priority] --file F\n\n"
		"Queues users for restore ahead of the background order, in the order given\n"
		"(for batch scripts). --priority puts them in the login lane, in order after\n"
		"the logins so far. --file reads one name a line ('-' is stdin). Users already\n"
		"queued, running or done keep their place. Invalid names are reported and\n"
		"skipped (exit 65 after queueing the others); names the outage does not touch\n"
		"are reported (exit 67). Operators only (exit 77 otherwise).\n");
}

/* Prints a name from outside with unprintable bytes replaced. */
static void print_name_safe(FILE *out, const char *s)
{
	char buf[4 * MR_USER_NAME_MAX + 8];

	fputs(mr_escape(s, buf, sizeof(buf)), out);
}

struct batch {
	char line[DAEMON_LINE_MAX];
	size_t len, base;
	int count;
	int listed;      /* user objects the daemon answered with */
	int active;      /* of them already active (nothing to queue) */
	int running;     /* of them being restored or in attention right now */
};

/* Sends the batch; merges its lists into users/unknown; returns 0 or the
 * exit code. */
static int enqueue_flush(const char *sock, int fd, struct batch *b, FILE *json_users,
			 int *n_users, int *n_unknown)
{
	struct reply r;
	char name[MR_USER_NAME_MAX + 1];
	int rc, list, i, u, first;

	if (b->count == 0)
		return 0;
	b->line[b->len++] = '\n';
	b->line[b->len] = '\0';
	rc = call_fd("enqueue", sock, fd, b->line, &r);
	b->len = b->base;
	b->count = 0;
	if (rc != 0) {
		reply_free(&r);
		return rc;
	}
	list = get(&r, 0, "users");
	for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++) {
		char st[32];

		if (json_users != NULL) {
			first = r.toks[u].start;
			fprintf(json_users, "%s%.*s", b->listed ? "," : "", r.toks[u].end - first,
				r.text + first);
		}
		b->listed++;
		daemon_json_text(r.text, r.toks, get(&r, u, "state"), st, sizeof(st));
		/* Only a user now waiting its turn counts as queued. */
		if (strcmp(st, "queued") == 0 || strcmp(st, "waiting") == 0)
			(*n_users)++;
		else if (strcmp(st, "active") == 0)
			b->active++;
		else
			b->running++;
	}
	list = get(&r, 0, "unknown");
	for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++) {
		daemon_json_text(r.text, r.toks, u, name, sizeof(name));
		cli_error("enqueue", "not an affected user: %s", name);
		(*n_unknown)++;
	}
	reply_free(&r);
	return 0;
}

static int enqueue_one(const char *sock, int fd, struct batch *b, const char *name,
		       FILE *json_users, int *n_users, int *n_unknown)
{
	size_t n = strlen(name);
	int rc;

	/* Two words for the verb and --priority. */
	if (b->len + 1 + n + 2 > sizeof(b->line) || b->count >= DAEMON_ARGS_MAX - 2) {
		rc = enqueue_flush(sock, fd, b, json_users, n_users, n_unknown);
		if (rc != 0)
			return rc;
	}
	b->line[b->len++] = ' ';
	memcpy(b->line + b->len, name, n);
	b->len += n;
	b->count++;
	return 0;
}

/* `mailrestore enqueue`: see enqueue_usage. */
int cmd_enqueue(int argc, char **argv)
{
	struct copts o;
	struct mr_error err;
	struct batch b;
	FILE *in = NULL, *json_users = NULL;
	char *line = NULL, *json_buf = NULL;
	size_t cap = 0, json_len = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int fd = -1, rc = MR_EX_OK, i, n_users = 0, n_unknown = 0, n_invalid = 0;

	if (parse_opts("enqueue", argc, argv, OPT_JSON | OPT_PRIORITY | OPT_FILE, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		enqueue_usage(stdout);
		return MR_EX_OK;
	}
	if ((o.file == NULL) == (o.nargs == 0)) {
		enqueue_usage(stderr);
		return MR_EX_USAGE;
	}
	if (o.file != NULL) {
		in = strcmp(o.file, "-") == 0 ? stdin : fopen(o.file, "re");
		if (in == NULL) {
			cli_error("enqueue", "open(%s) failed: %s", o.file, strerror(errno));
			return MR_EX_NOINPUT;
		}
	}
	if (o.json) {
		json_users = open_memstream(&json_buf, &json_len);
		if (json_users == NULL) {
			rc = MR_EX_OSERR;
			goto out;
		}
	}
	mr_error_clear(&err);
	fd = daemon_client_connect(o.socket, CLIENT_TIMEOUT, &err);
	if (fd < 0) {
		rc = unreachable("enqueue", o.socket, &err);
		goto out;
	}
	b.len = (size_t)snprintf(b.line, sizeof(b.line), "ENQUEUE%s", o.priority ? " --priority" : "");
	b.base = b.len;
	b.count = 0;
	b.listed = b.active = b.running = 0;
	if (in == NULL) {
		for (i = 0; i < o.nargs && rc == 0; i++) {
			if (!mr_user_name_valid(o.args[i])) {
				fprintf(stderr, "mailrestore enqueue: invalid user name: ");
				print_name_safe(stderr, o.args[i]);
				fputc('\n', stderr);
				n_invalid++;
				continue;
			}
			rc = enqueue_one(o.socket, fd, &b, o.args[i], json_users, &n_users, &n_unknown);
		}
	} else {
		while (rc == 0 && (n = getline(&line, &cap, in)) >= 0) {
			lineno++;
			while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
				line[--n] = '\0';
			if (n == 0)
				continue;
			if (!mr_user_name_valid(line) || (size_t)n != strlen(line)) {
				fprintf(stderr, "mailrestore enqueue: invalid user name on line %lu: ",
					lineno);
				print_name_safe(stderr, line);
				fputc('\n', stderr);
				n_invalid++;
				continue;
			}
			rc = enqueue_one(o.socket, fd, &b, line, json_users, &n_users, &n_unknown);
		}
		if (rc == 0 && ferror(in)) {
			cli_error("enqueue", "read(%s) failed", o.file);
			rc = MR_EX_IOERR;
		}
	}
	if (rc == 0)
		rc = enqueue_flush(o.socket, fd, &b, json_users, &n_users, &n_unknown);
	if (rc != 0)
		goto out;
	if (o.json) {
		fclose(json_users);
		json_users = NULL;
		printf("{\"users\":[%s],\"queued\":%d,\"active\":%d,\"running\":%d,"
		       "\"invalid\":%d,\"unknown\":%d}\n",
		       json_buf ? json_buf : "", n_users, b.active, b.running, n_invalid, n_unknown);
	} else {
		printf("%d user%s in the %s queue", n_users, n_users == 1 ? "" : "s",
		       o.priority ? "priority" : "enqueue");
		if (b.active)
			printf("; %d already active", b.active);
		if (b.running)
			printf("; %d being restored or in attention", b.running);
		printf("\n");
	}
	rc = n_invalid ? MR_EX_DATAERR : n_unknown ? MR_EX_NOUSER : MR_EX_OK;
out:
	if (fd >= 0)
		close(fd);
	if (json_users != NULL)
		fclose(json_users);
	free(json_buf);
	free(line);
	if (in != NULL && in != stdin)
		fclose(in);
	return rc;
}

/* ---- one-user operator commands, pause, resume, shutdown ------------------- */

static void user_cmd_usage(FILE *out, const char *cmd)
{
	if (strcmp(cmd, "bump") == 0)
		fprintf(out, "usage: mailrestore bump [--socket PATH] [--json] USER\n\n"
			     "Moves USER to the front of the priority queue (a running, active or\n"
			     "attention user stays where it is).\n");
	else if (strcmp(cmd, "retry") == 0)
		fprintf(out, "usage: mailrestore retry [--socket PATH] [--json] USER...\n"
			     "       mailrestore retry [--socket PATH] [--json] --file F\n"
			     "       mailrestore retry [--socket PATH] [--json] --state attention\n\n"
			     "Puts users in attention back in the queue (end of the priority\n"
			     "lane) for another run, after the cause was fixed: the names given,\n"
			     "those in file F (one a line; - reads standard input), or every user\n"
			     "in attention. Each user's outcome is printed (--json: a list of the\n"
			     "objects `show --json` prints); the exit is the first failure's.\n");
	else
		fprintf(out, "usage: mailrestore activate [--socket PATH] [--json] USER\n\n"
			     "Accepts a user in attention as it is: its work copy (with held mail\n"
			     "released into it) becomes T/USER.\n");
	fprintf(out, "Operators only (exit 77 otherwise). Exit 65 invalid name or not in\n"
		     "attention, 67 not an affected user, 69 no daemon.\n");
}

static int user_cmd(const char *cmd, const char *verb, int argc, char **argv)
{
	char req[MR_USER_NAME_MAX + 32], s[32];
	struct copts o;
	struct reply r;
	int rc, pi;

	if (parse_opts(cmd, argc, argv, OPT_JSON, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		user_cmd_usage(stdout, cmd);
		return MR_EX_OK;
	}
	if (o.nargs != 1) {
		user_cmd_usage(stderr, cmd);
		return MR_EX_USAGE;
	}
	if (cli_check_user(cmd, o.args[0]) < 0)
		return MR_EX_DATAERR;
	snprintf(req, sizeof(req), "%s %s\n", verb, o.args[0]);
	rc = call(cmd, o.socket, req, &r);
	if (rc == 0) {
		if (o.json) {
			puts(r.text);
		} else {
			str(&r, 0, "state", s, sizeof(s));
			pi = get(&r, 0, "position");
			if (daemon_json_is_null(r.text, r.toks, pi))
				printf("%s: %s\n", o.args[0], s);
			else
				printf("%s: %s, %.0f request%s before it\n", o.args[0], s,
				       num(&r, 0, "position", 0),
				       num(&r, 0, "position", 0) == 1 ? "" : "s");
		}
	}
	reply_free(&r);
	return rc;
}

/* `mailrestore bump USER`. */
int cmd_bump(int argc, char **argv)
{
	return user_cmd("bump", "BUMP", argc, argv);
}

struct names_acc {
	char **v;
	size_t n, cap;
	int oom;
};

static void names_add(struct names_acc *a, const char *name)
{
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 64;
		char **v = realloc(a->v, ncap * sizeof(*v));
		if (v == NULL) {
			a->oom = 1;
			return;
		}
		a->v = v;
		a->cap = ncap;
	}
	if ((a->v[a->n] = strdup(name)) == NULL)
		a->oom = 1;
	else
		a->n++;
}

static void collect_user(void *arg, const struct reply *r, int u)
{
	char raw[MR_USER_NAME_MAX + 1];

	daemon_json_text(r->text, r->toks, get(r, u, "user"), raw, sizeof(raw));
	names_add(arg, raw);
}

/* The names of `retry`: operands, --file or --state. Returns 0 or an exit
 * code; invalid names are reported and counted in *invalid_r. */
static int retry_names(const struct copts *o, struct names_acc *a, int *invalid_r)
{
	FILE *in;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int i, rc = 0;

	if (o->state != NULL) {
		if (strcmp(o->state, "attention") != 0) {
			cli_error("retry", "--state takes attention (only users in attention "
				  "can be retried)");
			return MR_EX_USAGE;
		}
		rc = list_state("retry", o->socket, o->state, collect_user, a);
	} else if (o->file != NULL) {
		in = strcmp(o->file, "-") == 0 ? stdin : fopen(o->file, "re");
		if (in == NULL) {
			cli_error("retry", "open(%s) failed: %s", o->file, strerror(errno));
			return MR_EX_NOINPUT;
		}
		while ((n = getline(&line, &cap, in)) >= 0) {
			while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
				line[--n] = '\0';
			if (n == 0)
				continue;
			if (!mr_user_name_valid(line) || (size_t)n != strlen(line)) {
				fprintf(stderr, "mailrestore retry: invalid user name: ");
				print_name_safe(stderr, line);
				fputc('\n', stderr);
				(*invalid_r)++;
				continue;
			}
			names_add(a, line);
		}
		if (ferror(in)) {
			cli_error("retry", "read(%s) failed", o->file);
			rc = MR_EX_IOERR;
		}
		if (in != stdin)
			fclose(in);
		free(line);
	} else {
		for (i = 0; i < o->nargs; i++) {
			if (!mr_user_name_valid(o->args[i])) {
				fprintf(stderr, "mailrestore retry: invalid user name: ");
				print_name_safe(stderr, o->args[i]);
				fputc('\n', stderr);
				(*invalid_r)++;
				continue;
			}
			names_add(a, o->args[i]);
		}
	}
	if (rc == 0 && a->oom) {
		cli_error("retry", "out of memory");
		rc = MR_EX_SOFTWARE;
	}
	return rc;
}

/* `mailrestore retry USER... | --file F | --state attention`. */
int cmd_retry(int argc, char **argv)
{
	char req[MR_USER_NAME_MAX + 32], st[32], user[MR_USER_NAME_MAX * 4 + 8];
	struct names_acc a = { 0 };
	struct copts o;
	struct mr_error err;
	struct reply r;
	size_t i, done = 0;
	int rc, one, fd = -1, invalid = 0, sources;

	if (parse_opts("retry", argc, argv, OPT_JSON | OPT_FILE | OPT_STATE, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		user_cmd_usage(stdout, "retry");
		return MR_EX_OK;
	}
	sources = (o.nargs > 0) + (o.file != NULL) + (o.state != NULL);
	if (sources != 1) {
		user_cmd_usage(stderr, "retry");
		return MR_EX_USAGE;
	}
	rc = retry_names(&o, &a, &invalid);
	if (rc != 0)
		goto out;
	mr_error_clear(&err);
	if (a.n > 0 && (fd = daemon_client_connect(o.socket, CLIENT_TIMEOUT, &err)) < 0) {
		rc = unreachable("retry", o.socket, &err);
		goto out;
	}
	if (o.json)
		printf("[");
	for (i = 0; i < a.n; i++) {
		snprintf(req, sizeof(req), "RETRY %s\n", a.v[i]);
		one = call_fd("retry", o.socket, fd, req, &r);
		if (one == MR_EX_UNAVAILABLE || one == MR_EX_SOFTWARE) {
			rc = one;
			reply_free(&r);
			break;
		}
		if (one != 0) {
			if (rc == 0)
				rc = one;
		} else if (o.json) {
			printf("%s%s", done ? ",\n" : "", r.text);
			done++;
		} else {
			printf("%s: %s\n", mr_escape(a.v[i], user, sizeof(user)),
			       str(&r, 0, "state", st, sizeof(st)));
			done++;
		}
		reply_free(&r);
	}
	if (o.json)
		printf("]\n");
	else if (o.state != NULL || a.n + (size_t)invalid > 1)
		printf("%zu of %zu user%s back in the queue\n", done, a.n + (size_t)invalid,
		       a.n + (size_t)invalid == 1 ? "" : "s");
	if (rc == 0 && invalid > 0)
		rc = MR_EX_DATAERR;
out:
	if (fd >= 0)
		close(fd);
	for (i = 0; i < a.n; i++)
		free(a.v[i]);
	free(a.v);
	return rc;
}

/* `mailrestore activate USER`. */
int cmd_activate(int argc, char **argv)
{
	return user_cmd("activate", "ACTIVATE", argc, argv);
}

static int simple_cmd(const char *cmd, const char *req, const char *done, const char *help,
		      int argc, char **argv)
{
	struct copts o;
	struct reply r;
	int rc;

	if (parse_opts(cmd, argc, argv, OPT_JSON, &o) < 0)
		return MR_EX_USAGE;
	if (o.help || o.nargs != 0) {
		fprintf(o.help ? stdout : stderr,
			"usage: mailrestore %s [--socket PATH] [--json]\n\n%s\n"
			"Operators only (exit 77 otherwise); 69 when no daemon answers.\n",
			cmd, help);
		return o.help ? MR_EX_OK : MR_EX_USAGE;
	}
	rc = call(cmd, o.socket, req, &r);
	if (rc == 0)
		puts(o.json ? r.text : done);
	reply_free(&r);
	return rc;
}

/* `mailrestore pause`. */
int cmd_pause(int argc, char **argv)
{
	return simple_cmd("pause", "PAUSE\n", "paused: no new user starts (running ones finish)",
			  "Stops starting new users; running ones finish. Logins still queue.\n"
			  "The pause is journaled: a daemon restarted after a crash stays paused.",
			  argc, argv);
}

/* `mailrestore resume`. */
int cmd_resume(int argc, char **argv)
{
	return simple_cmd("resume", "RESUME\n", "resumed", "Starts users again after `pause`.",
			  argc, argv);
}

/* `mailrestore shutdown`. */
int cmd_shutdown(int argc, char **argv)
{
	return simple_cmd("shutdown", "SHUTDOWN\n", "the daemon is stopping",
			  "Stops the daemon cleanly (as SIGTERM does): running users stop at a\n"
			  "file boundary and resume at the next start.",
			  argc, argv);
}

/* ---- deliver -------------------------------------------------------------- */

static void deliver_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore deliver [--socket PATH] [--target T] [--json] [--id ID]\n"
		"                           [--] USER < message\n\n"
		"Delivers the message on stdin (at most 64 MiB) for USER: into the Maildir\n"
		"T/USER (tmp/ then new/) when USER is active, else held durably and released\n"
		"into new/, in arrival order, when USER goes active. Exit 0 only once the\n"
		"message is safe on disk; 65 invalid name or message too large, 67 a user the\n"
		"outage does not touch, 69 no daemon, 74 reading stdin failed, 75 the daemon\n"
		"could not store it now or a held-mail limit is reached (try again later),\n"
		"77 only root, the daemon's user and --deliver-group may deliver.\n"
		"--id ID: the delivery agent's id for this message and recipient (Postfix:\n"
		"${queue_id} and ${recipient}); a delivery repeated with the same ID\n"
		"(its confirmation was lost) succeeds without storing a second copy. Ids are\n"
		"remembered for 7 days.\n"
		"--target T (or MAILRESTORE_TARGET): when no daemon answers, deliver from\n"
		"the disk: into T/USER for a user mailrestore activated or one the outage\n"
		"never touched (67 when it has no mailbox there), 75 for a touched user not\n"
		"active yet; --id is honoured the same way.\n");
}

/* Takes "--id ID" / "--id=ID" out of argv (before any "--"): *id_r gets ID
 * with the bytes the protocol cannot carry (space, control, non-ASCII, '%')
 * written as %XX into id (size DAEMON_ID_MAX + 1), or NULL without --id.
 * Returns the new argc, or -1 for a missing, empty or too long ID. */
static int take_id_option(int argc, char **argv, char *id, const char **id_r)
{
	const char *raw = NULL;
	int i, n = 1;
	size_t len = 0;

	*id_r = NULL;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--id") == 0) {
			if (i + 1 >= argc)
				return -1;
			raw = argv[++i];
		} else if (strncmp(argv[i], "--id=", 5) == 0) {
			raw = argv[i] + 5;
		} else {
			argv[n++] = argv[i];
		}
	}
	if (raw == NULL)
		return n;
	for (; *raw != '\0'; raw++) {
		unsigned char ch = (unsigned char)*raw;

		if (len + 3 > DAEMON_ID_MAX)
			return -1;
		if (ch <= 0x20 || ch >= 0x7f || ch == '%')
			len += (size_t)snprintf(id + len, 4, "%%%02X", ch);
		else
			id[len++] = (char)ch;
	}
	id[len] = '\0';
	if (len == 0)
		return -1;
	*id_r = id;
	return n;
}

/* Reads all of fd (at most max bytes; more is an error, EFBIG). */
static int read_all(int fd, size_t max, char **buf_r, size_t *len_r)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap), *p;
	ssize_t n;

	if (buf == NULL)
		return -1;
	for (;;) {
		if (len == cap) {
			if (cap > max) {
				free(buf);
				errno = EFBIG;
				return -1;
			}
			p = realloc(buf, cap * 2);
			if (p == NULL) {
				free(buf);
				return -1;
			}
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		free(buf);
		errno = EFBIG;
		return -1;
	}
	*buf_r = buf;
	*len_r = len;
	return 0;
}

int (*cli_deliver_offline)(const char *target, const char *user, const char *id, const void *msg,
			   size_t len);

/* `mailrestore deliver USER`: see deliver_usage. */
int cmd_deliver(int argc, char **argv)
{
	char req[MR_USER_NAME_MAX + DAEMON_ID_MAX + 48], *msg = NULL, held[8];
	char idbuf[DAEMON_ID_MAX + 1];
	const char *id;
	struct copts o;
	struct mr_error err;
	struct reply r;
	size_t len = 0;
	int fd = -1, rc;

	memset(&r, 0, sizeof(r));
	argc = take_id_option(argc, argv, idbuf, &id);
	if (argc < 0) {
		cli_error("deliver", "--id takes a non-empty ID of at most %d bytes", DAEMON_ID_MAX / 3);
		return MR_EX_USAGE;
	}
	if (parse_opts("deliver", argc, argv, OPT_JSON | OPT_TARGET, &o) < 0)
		return MR_EX_USAGE;
	if (o.target == NULL && (o.target = getenv("MAILRESTORE_TARGET")) != NULL &&
	    o.target[0] == '\0')
		o.target = NULL;
	if (o.help) {
		deliver_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 1) {
		deliver_usage(stderr);
		return MR_EX_USAGE;
	}
	if (cli_check_user("deliver", o.args[0]) < 0)
		return MR_EX_DATAERR;
	if (read_all(STDIN_FILENO, DAEMON_DELIVER_MAX, &msg, &len) < 0) {
		if (errno == EFBIG) {
			cli_error("deliver", "message larger than 64 MiB");
			return MR_EX_DATAERR;
		}
		cli_error("deliver", "reading the message from stdin failed: %s", strerror(errno));
		return MR_EX_IOERR;
	}
	mr_error_clear(&err);
	fd = daemon_client_connect(o.socket, 120.0, &err);
	if (fd < 0 && o.target != NULL && cli_deliver_offline != NULL && err.errnum != EACCES &&
	    err.errnum != EPERM) {
		rc = cli_deliver_offline(o.target, o.args[0], id, msg, len);
		goto out;
	}
	if (fd < 0) {
		rc = unreachable("deliver", o.socket, &err);
		goto out;
	}
	snprintf(req, sizeof(req), "DELIVER %s %zu%s%s\n", o.args[0], len, id ? " " : "",
		 id ? id : "");
	rc = call_fd("deliver", o.socket, fd, req, &r);
	if (rc == MR_EX_UNAVAILABLE)
		rc = MR_EX_TEMPFAIL;
	if (rc != 0)
		goto out;
	reply_free(&r);
	/* The daemon said "send": the body goes as it is, then the verdict. */
	{
		char *text = NULL;

		if (len > 0 && daemon_client_call_alloc(fd, msg, len, &text, &err) < 0) {
			cli_error("deliver", "the daemon did not confirm the message: %s", err.msg);
			rc = MR_EX_TEMPFAIL;
			goto out;
		}
		if (len == 0 && daemon_client_call_alloc(fd, "", 0, &text, &err) < 0) {
			cli_error("deliver", "the daemon did not confirm the message: %s", err.msg);
			rc = MR_EX_TEMPFAIL;
			goto out;
		}
		rc = parse_reply("deliver", text, &r);
	}
	if (rc != 0)
		goto out;
	if (o.json)
		puts(r.text);
	else if (strcmp(str(&r, 0, "held", held, sizeof(held)), "true") == 0)
		printf("held for %s until the mailbox is restored\n", o.args[0]);
	else
		printf("delivered to %s\n", o.args[0]);
out:
	if (fd >= 0)
		close(fd);
	reply_free(&r);
	free(msg);
	return rc;
}
