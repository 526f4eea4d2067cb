/*
 * cmd_views.c: the operator's views of the daemon: `status` (also as
 * Prometheus metrics with --prometheus), `queue` (and `queue --state`),
 * `show` and the live `watch`. Each prints the JSON reply with --json or
 * turns it into lines for people.
 */
#include "cli/cli.h"
#include "cli/cli_private.h"
#include "common/common.h"
#include "daemon/daemon.h"

#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* ---- formatting ------------------------------------------------------- */

/* Prints the raw JSON of token i. */
static void print_tok(const struct cli_reply *r, int i)
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

/* cli_fmt_eta() of object obj of a reply. */
static const char *reply_eta(const struct cli_reply *r, int obj, char *buf, size_t len)
{
	char status[32];
	int i = cli_get(r, obj, "eta_seconds");

	cli_str(r, obj, "eta_status", status, sizeof(status));
	return cli_fmt_eta(
	    daemon_json_is_null(r->text, r->toks, i) ? -1 : cli_num(r, obj, "eta_seconds", -1),
	    status, buf, len);
}

/* ---- status ------------------------------------------------------------- */

static const char *const states[] = { "waiting", "queued",    "restoring", "syncing",
				      "active",  "attention", "unknown" };
#define NSTATES 7

static void status_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore status [--socket PATH | --connect HOST:PORT] [--json | --prometheus]\n\n"
		"Users per state, what each worker is doing, throughput, held mail and the\n"
		"time left. --prometheus prints the same as metrics in the Prometheus text\n"
		"format. Exit 0, 69 when no daemon answers,\n"
		"77 when the socket's group does not let the caller connect.\n");
	fputs("\n" CLI_CONNECT_HELP, out);
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

static void print_worker(const struct cli_reply *r, int w)
{
	char user[MR_USER_NAME_MAX + 1], phase[32], bar[48], a[32], b[32];
	double done, total, prog;
	int pi;

	cli_str(r, w, "user", user, sizeof(user));
	cli_str(r, w, "phase", phase, sizeof(phase));
	if (strcmp(phase, "idle") == 0 || (user[0] == '\0' && phase[0] == '\0')) {
		printf("  worker %-2d idle\n", (int)cli_num(r, w, "id", 0));
		return;
	}
	/* Busy with a user the daemon does not name to this caller. */
	if (user[0] == '\0')
		snprintf(user, sizeof(user), "-");
	done = cli_num(r, w, "progress_done", 0);
	total = cli_num(r, w, "progress_total", 0);
	pi = cli_get(r, w, "progress");
	prog = daemon_json_is_null(r->text, r->toks, pi) ? -1 : daemon_json_num(r->text, r->toks, pi, -1);
	if (prog >= 0) {
		progress_bar(prog, bar, 20);
		printf("  worker %-2d %-20s %-10s %s %3d%%  %s of %s%s\n",
		       (int)cli_num(r, w, "id", 0), user, phase, bar, (int)(prog * 100),
		       mr_human_bytes((uint64_t)done, a, sizeof(a)),
		       mr_human_bytes((uint64_t)total, b, sizeof(b)),
		       strcmp(cli_str(r, w, "priority", a, sizeof(a)), "true") == 0 ? "  (login)"
										    : "");
	} else {
		printf("  worker %-2d %-20s %-10s %s done\n", (int)cli_num(r, w, "id", 0), user,
		       phase, mr_human_bytes((uint64_t)done, a, sizeof(a)));
	}
}

static void print_status(const struct cli_reply *r)
{
	char a[64], b[64];
	int counts = cli_get(r, 0, "counts"), workers = cli_get(r, 0, "workers");
	int tp = cli_get(r, 0, "throughput"), i, w;

	printf("users:");
	for (i = 0; i < NSTATES - 1; i++)
		printf(" %s %.0f%s", states[i], cli_num(r, counts, states[i], 0),
		       i < NSTATES - 2 ? "," : "\n");
	printf("workers (%d)%s:\n", (int)cli_num(r, 0, "jobs", 0),
	       strcmp(cli_str(r, 0, "paused", a, sizeof(a)), "true") == 0
		       ? " - paused: no new user starts"
		       : "");
	for (i = 0; (w = daemon_json_index(r->toks, workers, i)) >= 0; i++)
		print_worker(r, w);
	{
		char held[512];

		if (cli_str(r, 0, "background_held", held, sizeof(held))[0] != '\0')
			printf("BACKGROUND HELD: %s\n", held);
	}
	printf("throughput: %.1f users/min, %s/s (%.0f users finished)\n",
	       cli_num(r, tp, "users_per_minute", 0),
	       mr_human_bytes((uint64_t)cli_num(r, tp, "bytes_per_second", 0), a, sizeof(a)),
	       cli_num(r, tp, "users_done", 0));
	printf("requests waiting: %.0f   held mail: %.0f messages\n", cli_num(r, 0, "pending", 0),
	       cli_num(r, 0, "held_mail", 0));
	i = cli_get(r, 0, "eta_seconds");
	printf("time until every user is back: %s\n",
	       !daemon_json_is_null(r->text, r->toks, i) && cli_num(r, 0, "eta_seconds", -1) == 0
		       ? "nothing left to do"
		       : reply_eta(r, 0, b, sizeof(b)));
	i = cli_get(r, tp, "rates");
	if (i >= 0 && cli_num(r, cli_get(r, i, "run"), "runs", 0) > 0)
		printf("rate per worker: %s/s, %.0f files/s (%.0f runs measured)\n",
		       mr_human_bytes(
			   (uint64_t)cli_num(r, cli_get(r, i, "run"), "bytes_per_second", 0), a,
			   sizeof(a)),
		       cli_num(r, cli_get(r, i, "run"), "files_per_second", 0),
		       cli_num(r, cli_get(r, i, "run"), "runs", 0));
}

static void print_prometheus(const struct cli_reply *r)
{
	int counts = cli_get(r, 0, "counts"), workers = cli_get(r, 0, "workers");
	int tp = cli_get(r, 0, "throughput"), i, w, busy = 0, nw = 0;
	char u[MR_USER_NAME_MAX + 1];

	for (i = 0; (w = daemon_json_index(r->toks, workers, i)) >= 0; i++) {
		nw++;
		/* A busy worker's user is null for callers who may not see it. */
		if (cli_str(r, w, "user", u, sizeof(u))[0] ||
		    (cli_str(r, w, "phase", u, sizeof(u))[0] && strcmp(u, "idle") != 0))
			busy++;
	}
	printf("# HELP mailrestore_users Affected users per state.\n"
	       "# TYPE mailrestore_users gauge\n");
	for (i = 0; i < NSTATES; i++)
		printf("mailrestore_users{state=\"%s\"} %.0f\n", states[i],
		       cli_num(r, counts, states[i], 0));
	printf("# HELP mailrestore_queue_pending Requests (logins, enqueues) not started yet.\n"
	       "# TYPE mailrestore_queue_pending gauge\n"
	       "mailrestore_queue_pending %.0f\n",
	       cli_num(r, 0, "pending", 0));
	printf("# HELP mailrestore_held_messages Messages held for users not active yet.\n"
	       "# TYPE mailrestore_held_messages gauge\n"
	       "mailrestore_held_messages %.0f\n",
	       cli_num(r, 0, "held_mail", 0));
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
	       cli_num(r, tp, "users_done", 0));
	printf("# HELP mailrestore_restored_bytes_total Bytes written by finished runs since start.\n"
	       "# TYPE mailrestore_restored_bytes_total counter\n"
	       "mailrestore_restored_bytes_total %.0f\n",
	       cli_num(r, tp, "bytes_total", 0));
	printf("# HELP mailrestore_seconds_per_user Mean seconds per finished user.\n"
	       "# TYPE mailrestore_seconds_per_user gauge\n"
	       "mailrestore_seconds_per_user %.3f\n",
	       cli_num(r, tp, "seconds_per_user", 0));
	printf("# HELP mailrestore_eta_seconds Estimated seconds until every user is done.\n"
	       "# TYPE mailrestore_eta_seconds gauge\n"
	       "mailrestore_eta_seconds %.0f\n",
	       /* null (paused, estimating): not a number, not a countdown */
	       daemon_json_is_null(r->text, r->toks, cli_get(r, 0, "eta_seconds"))
		       ? NAN
		       : cli_num(r, 0, "eta_seconds", 0));
	printf("# HELP mailrestore_paused 1 when no new user is started.\n"
	       "# TYPE mailrestore_paused gauge\n"
	       "mailrestore_paused %d\n",
	       strcmp(cli_str(r, 0, "paused", u, sizeof(u)), "true") == 0);
}

/* `mailrestore status`: see status_usage. */
int cmd_status(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_reply r;
	int rc;

	if (cli_parse_opts("status", argc, argv, CLI_OPT_JSON | CLI_OPT_PROMETHEUS, &o) < 0)
		return MR_EX_USAGE;
	if (o.help) {
		status_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 0) {
		status_usage(stderr);
		return MR_EX_USAGE;
	}
	rc = cli_call("status", &o, "STATUS\n", &r);
	if (rc == 0) {
		if (o.json)
			puts(r.text);
		else if (o.prometheus)
			print_prometheus(&r);
		else
			print_status(&r);
	}
	cli_reply_free(&r);
	return rc;
}

/* ---- queue ---------------------------------------------------------------- */

static void queue_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore queue [--socket PATH | --connect HOST:PORT] [--json] [--max N]\n"
		"       mailrestore queue [--socket PATH | --connect HOST:PORT] [--json] --state STATE\n\n"
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
	fputs("\n" CLI_CONNECT_HELP, out);
}

struct state_print {
	int json;
	size_t n;
};

static void print_state_user(void *arg, const struct cli_reply *r, int u)
{
	struct state_print *p = arg;
	char user[MR_USER_NAME_MAX * 4 + 8], state[32], reason[4096], when[64];
	double t;

	if (p->json) {
		int start = r->toks[u].start, end = r->toks[u].end;
		printf("%s%.*s", p->n ? ",\n" : "[", end - start, r->text + start);
	} else {
		t = cli_num(r, u, "finished_at", 0);
		if (t <= 0)
			t = cli_num(r, u, "requested_at", 0);
		printf("%-30s %-10s %-19s %s\n", cli_str(r, u, "user", user, sizeof(user)),
		       cli_str(r, u, "state", state, sizeof(state)),
		       fmt_time(t, when, sizeof(when)),
		       cli_str(r, u, "reason", reason, sizeof(reason)));
	}
	p->n++;
}

/* `mailrestore queue --state STATE`. */
static int queue_state(const struct cli_opts *o)
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
	rc = cli_list_state("queue", o, o->state, print_state_user, &p);
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
	struct cli_opts o;
	struct cli_reply r;
	int rc, list, i, u;

	if (cli_parse_opts("queue", argc, argv, CLI_OPT_JSON | CLI_OPT_MAX | CLI_OPT_STATE, &o) < 0)
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
	rc = cli_call("queue", &o, req, &r);
	if (rc == 0) {
		list = cli_get(&r, 0, "queue");
		if (o.json) {
			print_tok(&r, list);
		} else {
			printf("%-8s %-30s %-9s %-19s %s\n", "POSITION", "USER", "KIND", "ASKED",
			       "ESTIMATE");
			for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++)
				printf(
				    "%-8.0f %-30s %-9s %-19s %s\n", cli_num(&r, u, "position", -1),
				    cli_str(&r, u, "user", user, sizeof(user)),
				    strcmp(cli_str(&r, u, "priority", pr, sizeof(pr)), "true") == 0
					? "priority"
					: "enqueue",
				    fmt_time(cli_num(&r, u, "requested_at", 0), when, sizeof(when)),
				    reply_eta(&r, u, eta, sizeof(eta)));
			printf("%.0f request%s waiting\n", cli_num(&r, 0, "total", 0),
			       cli_num(&r, 0, "total", 0) == 1 ? "" : "s");
		}
	}
	cli_reply_free(&r);
	return rc;
}

/* ---- show ----------------------------------------------------------------- */

static void show_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore show [--socket PATH | --connect HOST:PORT] [--json] USER\n\n"
		"One user's state, queue position, estimated time, when it was requested,\n"
		"started and finished, what its last run restored (files and bytes from the\n"
		"backup, copied from the source, renamed, moved to the attic, unreadable),\n"
		"held mail, and the reason when it needs attention. A user the outage does\n"
		"not touch shows as 'unknown' (exit 0). Only operators may see other users;\n"
		"anyone else may see the user named like its login (exit 77 otherwise).\n"
		"Exit 65 invalid name, 69 no daemon.\n");
	fputs("\n" CLI_CONNECT_HELP, out);
}

static void print_show(const struct cli_reply *r)
{
	char a[MR_USER_NAME_MAX + 64], b[64], c[64];
	int k = cli_get(r, 0, "counters"), pi;

	printf("user:        %s\n", cli_str(r, 0, "user", a, sizeof(a)));
	printf("state:       %s\n", cli_str(r, 0, "state", a, sizeof(a)));
	pi = cli_get(r, 0, "position");
	if (!daemon_json_is_null(r->text, r->toks, pi))
		printf("position:    %.0f (requests before it)\n", cli_num(r, 0, "position", 0));
	pi = cli_get(r, 0, "eta_seconds");
	if (strcmp(a, "active") != 0 && strcmp(a, "unknown") != 0)
		printf("estimate:    %s\n", reply_eta(r, 0, b, sizeof(b)));
	if (strcmp(a, "unknown") == 0) {
		printf("(not affected by the outage)\n");
		return;
	}
	printf("requested:   %s\n", fmt_time(cli_num(r, 0, "requested_at", 0), b, sizeof(b)));
	printf("started:     %s\n", fmt_time(cli_num(r, 0, "started_at", 0), b, sizeof(b)));
	printf("finished:    %s\n", fmt_time(cli_num(r, 0, "finished_at", 0), b, sizeof(b)));
	/* Over the network the daemon tells where the user stands, not what
	 * the mailbox holds. */
	if (k < 0) {
		printf("(counters, held mail and reasons only on the daemon's Unix socket)\n");
		return;
	}
	printf("runs:        %.0f\n", cli_num(r, 0, "attempts", 0));
	printf("from backup: %.0f files, %s\n", cli_num(r, k, "backup_files", 0),
	       mr_human_bytes((uint64_t)cli_num(r, k, "backup_bytes", 0), b, sizeof(b)));
	printf("from source: %.0f files copied (%s), %.0f patched, %.0f renamed\n",
	       cli_num(r, k, "copied_files", 0),
	       mr_human_bytes((uint64_t)cli_num(r, k, "copied_bytes", 0), c, sizeof(c)),
	       cli_num(r, k, "patched_files", 0), cli_num(r, k, "renamed", 0));
	printf("source read: %s\n",
	       mr_human_bytes((uint64_t)cli_num(r, k, "source_bytes_read", 0), c, sizeof(c)));
	printf("to attic:    %.0f\n", cli_num(r, k, "attic_files", 0));
	printf("unreadable:  %.0f\n", cli_num(r, k, "unreadable", 0));
	printf("held mail:   %.0f messages (%s), %.0f released at activation\n",
	       cli_num(r, 0, "held_mail", 0),
	       mr_human_bytes((uint64_t)cli_num(r, 0, "held_mail_bytes", 0), b, sizeof(b)),
	       cli_num(r, k, "released_mail", 0));
	if (cli_str(r, 0, "reason", a, sizeof(a))[0])
		printf("reason:      %s\n", a);
}

/* `mailrestore show USER`: see show_usage. */
int cmd_show(int argc, char **argv)
{
	char req[MR_USER_NAME_MAX + 16];
	struct cli_opts o;
	struct cli_reply r;
	int rc;

	if (cli_parse_opts("show", argc, argv, CLI_OPT_JSON, &o) < 0)
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
	rc = cli_call("show", &o, req, &r);
	if (rc == 0) {
		if (o.json)
			puts(r.text);
		else
			print_show(&r);
	}
	cli_reply_free(&r);
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
		"usage: mailrestore watch [--socket PATH | --connect HOST:PORT] [--once]\n\n"
		"A live view, refreshed every second: users per state, each worker with its\n"
		"user, phase and a progress bar, throughput, time left and the next users in\n"
		"line. q or ctrl-c quits; it also ends when the daemon goes away. --once\n"
		"prints one frame and exits. Exit 0, 69 when no daemon answers, 77 not\n"
		"allowed to connect.\n");
	fputs("\n" CLI_CONNECT_HELP, out);
}

/* One frame; 0, or the exit code of a failed request. */
static int watch_frame(const struct cli_opts *o, int tty)
{
	char user[MR_USER_NAME_MAX + 1], eta[64], ts[64];
	struct cli_reply st, q;
	int rc, list, i, u;

	rc = cli_call("watch", o, "STATUS\n", &st);
	if (rc != 0) {
		cli_reply_free(&st);
		return rc;
	}
	rc = cli_call("watch", o, "QUEUE 5\n", &q);
	if (rc != 0) {
		cli_reply_free(&st);
		cli_reply_free(&q);
		return rc;
	}
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("mailrestore watch - %s - daemon pid %.0f%s\n\n",
	       fmt_time(mr_now(), ts, sizeof(ts)), cli_num(&st, 0, "pid", 0),
	       tty ? " - q quits" : "");
	print_status(&st);
	list = cli_get(&q, 0, "queue");
	printf("\nnext in line (%.0f waiting):\n", cli_num(&q, 0, "total", 0));
	for (i = 0; (u = daemon_json_index(q.toks, list, i)) >= 0; i++)
		printf("  %4.0f  %-30s %s\n", cli_num(&q, u, "position", -1),
		       cli_str(&q, u, "user", user, sizeof(user)),
		       reply_eta(&q, u, eta, sizeof(eta)));
	if (i == 0)
		printf("  (nobody)\n");
	fflush(stdout);
	cli_reply_free(&st);
	cli_reply_free(&q);
	return 0;
}

/* `mailrestore watch`: see watch_usage. */
int cmd_watch(int argc, char **argv)
{
	struct termios saved, raw;
	struct sigaction sa;
	struct pollfd pfd;
	struct cli_opts o;
	int tty, raw_on = 0, rc, frames = 0;
	char ch;

	if (cli_parse_opts("watch", argc, argv, CLI_OPT_ONCE, &o) < 0)
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
		return watch_frame(&o, 0);
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
		rc = watch_frame(&o, tty);
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
