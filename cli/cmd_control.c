/*
 * cmd_control.c: the operator's controls of the daemon: `enqueue`, `bump`,
 * `retry`, `activate`, `pause`, `resume` and `shutdown`. Each sends its
 * verb and prints the outcome (the JSON reply with --json).
 */
#include "cli/cli.h"
#include "cli/cli_private.h"
#include "common/common.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- enqueue -------------------------------------------------------------- */

static void enqueue_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore enqueue [--socket PATH | --connect HOST:PORT] [--json] [--priority] USER...\n"
		"       mailrestore enqueue [--socket PATH | --connect HOST:PORT] [--json] [--priority] --file F\n\n"
		"Queues users for restore ahead of the background order, in the order given\n"
		"(for batch scripts). --priority puts them in the login lane, in order after\n"
		"the logins so far. --file reads one name a line ('-' is stdin). Users already\n"
		"queued, running or done keep their place. Invalid names are reported and\n"
		"skipped (exit 65 after queueing the others); names the outage does not touch\n"
		"are reported (exit 67). Operators only (exit 77 otherwise).\n");
	fputs("\n" CLI_CONNECT_HELP, out);
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
static int enqueue_flush(const char *sock, struct daemon_client *c, struct batch *b, FILE *json_users,
			 int *n_users, int *n_unknown)
{
	struct cli_reply r;
	char name[MR_USER_NAME_MAX + 1];
	int rc, list, i, u, first;

	if (b->count == 0)
		return 0;
	b->line[b->len++] = '\n';
	b->line[b->len] = '\0';
	rc = cli_call_on("enqueue", sock, c, b->line, &r);
	b->len = b->base;
	b->count = 0;
	if (rc != 0) {
		cli_reply_free(&r);
		return rc;
	}
	list = cli_get(&r, 0, "users");
	for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++) {
		char st[32];

		if (json_users != NULL) {
			first = r.toks[u].start;
			fprintf(json_users, "%s%.*s", b->listed ? "," : "", r.toks[u].end - first,
				r.text + first);
		}
		b->listed++;
		daemon_json_text(r.text, r.toks, cli_get(&r, u, "state"), st, sizeof(st));
		/* Only a user now waiting its turn counts as queued. */
		if (strcmp(st, "queued") == 0 || strcmp(st, "waiting") == 0)
			(*n_users)++;
		else if (strcmp(st, "active") == 0)
			b->active++;
		else
			b->running++;
	}
	list = cli_get(&r, 0, "unknown");
	for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++) {
		daemon_json_text(r.text, r.toks, u, name, sizeof(name));
		cli_error("enqueue", "not an affected user: %s", name);
		(*n_unknown)++;
	}
	cli_reply_free(&r);
	return 0;
}

static int enqueue_one(const char *sock, struct daemon_client *c, struct batch *b, const char *name,
		       FILE *json_users, int *n_users, int *n_unknown)
{
	size_t n = strlen(name);
	int rc;

	/* Two words for the verb and --priority. */
	if (b->len + 1 + n + 2 > sizeof(b->line) || b->count >= DAEMON_ARGS_MAX - 2) {
		rc = enqueue_flush(sock, c, b, json_users, n_users, n_unknown);
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
	struct cli_opts o;
	struct mr_error err;
	struct batch b;
	FILE *in = NULL, *json_users = NULL;
	char *line = NULL, *json_buf = NULL;
	size_t cap = 0, json_len = 0;
	ssize_t n;
	unsigned long lineno = 0;
	struct daemon_client cl = { .fd = -1 };
	int rc = MR_EX_OK, i, n_users = 0, n_unknown = 0, n_invalid = 0;

	if (cli_parse_opts("enqueue", argc, argv, CLI_OPT_JSON | CLI_OPT_PRIORITY | CLI_OPT_FILE,
			   &o) < 0)
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
	rc = cli_connect("enqueue", &o, CLI_CLIENT_TIMEOUT, &cl, NULL);
	if (rc != 0)
		goto out;
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
			rc = enqueue_one(o.where, &cl, &b, o.args[i], json_users, &n_users, &n_unknown);
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
			rc = enqueue_one(o.where, &cl, &b, line, json_users, &n_users, &n_unknown);
		}
		if (rc == 0 && ferror(in)) {
			cli_error("enqueue", "read(%s) failed", o.file);
			rc = MR_EX_IOERR;
		}
	}
	if (rc == 0)
		rc = enqueue_flush(o.where, &cl, &b, json_users, &n_users, &n_unknown);
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
	daemon_client_close(&cl);
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
		fprintf(out, "usage: mailrestore bump [--socket PATH | --connect HOST:PORT] [--json] USER\n\n"
			     "Moves USER to the front of the priority queue (a running, active or\n"
			     "attention user stays where it is).\n");
	else if (strcmp(cmd, "retry") == 0)
		fprintf(out, "usage: mailrestore retry [--socket PATH | --connect HOST:PORT] [--json] USER...\n"
			     "       mailrestore retry [--socket PATH | --connect HOST:PORT] [--json] --file F\n"
			     "       mailrestore retry [--socket PATH | --connect HOST:PORT] [--json] --state attention\n\n"
			     "Puts users in attention back in the queue (end of the priority\n"
			     "lane) for another run, after the cause was fixed: the names given,\n"
			     "those in file F (one a line; - reads standard input), or every user\n"
			     "in attention. Each user's outcome is printed (--json: a list of the\n"
			     "objects `show --json` prints); the exit is the first failure's.\n");
	else
		fprintf(out, "usage: mailrestore activate [--socket PATH | --connect HOST:PORT] [--json] USER\n\n"
			     "Accepts a user in attention as it is: its work copy (with held mail\n"
			     "released into it) becomes T/USER.\n");
	fprintf(out, "Operators only (exit 77 otherwise). Exit 65 invalid name or not in\n"
		     "attention, 67 not an affected user, 69 no daemon.\n");
	fputs("\n" CLI_CONNECT_HELP, out);
}

static int user_cmd(const char *cmd, const char *verb, int argc, char **argv)
{
	char req[MR_USER_NAME_MAX + 32], s[32];
	struct cli_opts o;
	struct cli_reply r;
	int rc, pi;

	if (cli_parse_opts(cmd, argc, argv, CLI_OPT_JSON, &o) < 0)
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
	rc = cli_call(cmd, &o, req, &r);
	if (rc == 0) {
		if (o.json) {
			puts(r.text);
		} else {
			cli_str(&r, 0, "state", s, sizeof(s));
			pi = cli_get(&r, 0, "position");
			if (daemon_json_is_null(r.text, r.toks, pi))
				printf("%s: %s\n", o.args[0], s);
			else
				printf("%s: %s, %.0f request%s before it\n", o.args[0], s,
				       cli_num(&r, 0, "position", 0),
				       cli_num(&r, 0, "position", 0) == 1 ? "" : "s");
		}
	}
	cli_reply_free(&r);
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

static void collect_user(void *arg, const struct cli_reply *r, int u)
{
	char raw[MR_USER_NAME_MAX + 1];

	daemon_json_text(r->text, r->toks, cli_get(r, u, "user"), raw, sizeof(raw));
	names_add(arg, raw);
}

/* The names of `retry`: operands, --file or --state. Returns 0 or an exit
 * code; invalid names are reported and counted in *invalid_r. */
static int retry_names(const struct cli_opts *o, struct names_acc *a, int *invalid_r)
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
		rc = cli_list_state("retry", o, o->state, collect_user, a);
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
	struct cli_opts o;
	struct mr_error err;
	struct cli_reply r;
	size_t i, done = 0;
	struct daemon_client cl = { .fd = -1 };
	int rc, one, invalid = 0, sources;

	if (cli_parse_opts("retry", argc, argv, CLI_OPT_JSON | CLI_OPT_FILE | CLI_OPT_STATE, &o) <
	    0)
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
	if (a.n > 0 && (rc = cli_connect("retry", &o, CLI_CLIENT_TIMEOUT, &cl, NULL)) != 0)
		goto out;
	if (o.json)
		printf("[");
	for (i = 0; i < a.n; i++) {
		snprintf(req, sizeof(req), "RETRY %s\n", a.v[i]);
		one = cli_call_on("retry", o.where, &cl, req, &r);
		if (one == MR_EX_UNAVAILABLE || one == MR_EX_SOFTWARE) {
			rc = one;
			cli_reply_free(&r);
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
			       cli_str(&r, 0, "state", st, sizeof(st)));
			done++;
		}
		cli_reply_free(&r);
	}
	if (o.json)
		printf("]\n");
	else if (o.state != NULL || a.n + (size_t)invalid > 1)
		printf("%zu of %zu user%s back in the queue\n", done, a.n + (size_t)invalid,
		       a.n + (size_t)invalid == 1 ? "" : "s");
	if (rc == 0 && invalid > 0)
		rc = MR_EX_DATAERR;
out:
	daemon_client_close(&cl);
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
	struct cli_opts o;
	struct cli_reply r;
	int rc;

	if (cli_parse_opts(cmd, argc, argv, CLI_OPT_JSON, &o) < 0)
		return MR_EX_USAGE;
	if (o.help || o.nargs != 0) {
		fprintf(o.help ? stdout : stderr,
			"usage: mailrestore %s [--socket PATH | --connect HOST:PORT] [--json]\n\n%s\n"
			"Operators only (exit 77 otherwise); 69 when no daemon answers.\n\n"
			CLI_CONNECT_HELP, cmd, help);
		return o.help ? MR_EX_OK : MR_EX_USAGE;
	}
	rc = cli_call(cmd, &o, req, &r);
	if (rc == 0)
		puts(o.json ? r.text : done);
	cli_reply_free(&r);
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
