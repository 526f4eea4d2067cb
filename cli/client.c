/*
 * client.c: what every client of the daemon shares (see cli_private.h):
 * the option parser, sending a request of the line protocol
 * (docs/PROTOCOL.md) and parsing its JSON reply, reading members of it,
 * the paged `LIST`, and the estimate as people read it. The lean login
 * binary links it too, so it calls nothing but libc, common/ and the
 * daemon's client functions: TLS comes through the pointer cli_tls_start,
 * which only the full binary sets (cli/main.c).
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

/* ---- options --------------------------------------------------------- */

/* Parses --socket, --connect and TLS, --help and the options in allowed,
 * anywhere on the line
 * (`show alice --json` as well as `show --json alice`) up to a "--"; the
 * rest are operands, kept in order at the front of argv + 1 (in place:
 * an operand only ever moves to a slot already read, so nothing is
 * allocated on the login path). Returns 0, or -1 after a usage error. */
int cli_parse_opts(const char *cmd, int argc, char **argv, unsigned allowed, struct cli_opts *o)
{
	int i, nops = 0;
	const char *a, *val;

	memset(o, 0, sizeof(*o));
	o->socket = cli_default_socket();
	o->connect = getenv("MAILRESTORE_CONNECT");
	if (o->connect != NULL && o->connect[0] == '\0')
		o->connect = NULL;
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
			o->connect = NULL;
		} else if (strcmp(a, "--socket") == 0 && i + 1 < argc) {
			o->socket = argv[++i];
			o->connect = NULL;
		} else if (strcmp(a, "--connect") == 0 && i + 1 < argc) {
			o->connect = argv[++i];
		} else if (strcmp(a, "--tls-ca") == 0 && i + 1 < argc) {
			o->tls_ca = argv[++i];
		} else if (strcmp(a, "--tls-cert") == 0 && i + 1 < argc) {
			o->tls_cert = argv[++i];
		} else if (strcmp(a, "--tls-key") == 0 && i + 1 < argc) {
			o->tls_key = argv[++i];
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			o->help = 1;
		} else if ((allowed & CLI_OPT_JSON) && strcmp(a, "--json") == 0) {
			o->json = 1;
		} else if ((allowed & CLI_OPT_PROMETHEUS) && strcmp(a, "--prometheus") == 0) {
			o->prometheus = 1;
		} else if ((allowed & CLI_OPT_ONCE) && strcmp(a, "--once") == 0) {
			o->once = 1;
		} else if ((allowed & CLI_OPT_PRIORITY) && strcmp(a, "--priority") == 0) {
			o->priority = 1;
		} else if ((allowed & CLI_OPT_FILE) && strcmp(a, "--file") == 0 && i + 1 < argc) {
			o->file = argv[++i];
		} else if ((allowed & CLI_OPT_TARGET) && strcmp(a, "--target") == 0 &&
			   i + 1 < argc) {
			o->target = argv[++i];
		} else if ((allowed & CLI_OPT_STATE) && strcmp(a, "--state") == 0 && i + 1 < argc) {
			o->state = argv[++i];
		} else if ((allowed & CLI_OPT_MAX) && strcmp(a, "--max") == 0 && i + 1 < argc) {
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
	if ((o->tls_ca != NULL || o->tls_cert != NULL || o->tls_key != NULL) &&
	    o->connect == NULL) {
		cli_error(cmd, "--tls-ca, --tls-cert and --tls-key go with --connect HOST:PORT");
		return -1;
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL) ||
	    (o->tls_cert != NULL && o->tls_ca == NULL)) {
		cli_error(cmd, "--tls-cert and --tls-key go together, and with --tls-ca FILE (the "
			       "CA of the daemon's certificate)");
		return -1;
	}
	o->where = o->connect != NULL ? o->connect : o->socket;
	return 0;
}

/* ---- talking to the daemon ------------------------------------------- */

void cli_reply_free(struct cli_reply *r)
{
	free(r->text);
	free(r->toks);
	memset(r, 0, sizeof(*r));
}

int (*cli_tls_start)(struct daemon_client *c, const char *host, const char *ca_file,
		     const char *cert_file, const char *key_file, struct mr_error *err);

int cli_unreachable(const char *cmd, const char *sock, const struct mr_error *err)
{
	/* The socket's group decides who may connect: a refusal, not an
	 * absent daemon. */
	if (err->errnum == EACCES || err->errnum == EPERM) {
		cli_error(cmd, "permission denied: not allowed to connect to %s (its group decides)",
			  sock);
		return MR_EX_NOPERM;
	}
	/* TLS and name lookups say more than their errno. */
	cli_error(cmd, "daemon unreachable at %s: %s", sock,
		  err->errnum == EPROTO || err->errnum == EHOSTUNREACH || err->errnum == EINVAL ||
				  err->errnum == 0
			  ? err->msg
			  : strerror(err->errnum));
	return MR_EX_UNAVAILABLE;
}

/* Connects as o says (see cli_private.h). */
int cli_connect(const char *cmd, const struct cli_opts *o, double timeout,
		struct daemon_client *c, struct mr_error *open_err)
{
	struct mr_error err;
	char host[MR_HOST_MAX];
	unsigned port;

	mr_error_clear(&err);
	if (daemon_client_open(c, o->socket, o->connect, timeout, &err) < 0) {
		if (open_err == NULL)
			return cli_unreachable(cmd, o->where, &err);
		*open_err = err;
		return -1;
	}
	if (o->tls_ca == NULL && o->tls_cert == NULL && o->tls_key == NULL)
		return 0;
	if (cli_tls_start == NULL) {
		daemon_client_close(c);
		cli_error(cmd, "this binary has no TLS: use `mailrestore %s`", cmd);
		return MR_EX_USAGE;
	}
	if (mr_hostport_split(o->connect, host, sizeof(host), &port) < 0 ||
	    cli_tls_start(c, host, o->tls_ca, o->tls_cert, o->tls_key, &err) < 0) {
		daemon_client_close(c);
		if (open_err == NULL)
			return cli_unreachable(cmd, o->where, &err);
		/* A handshake that fails (an expired certificate, a daemon
		 * that now wants another CA) leaves the caller its fallback,
		 * as a refused connect does; the reason still needs a look. */
		cli_error(cmd, "TLS to %s failed: %s", o->where, err.msg);
		*open_err = err;
		return -1;
	}
	return 0;
}

/* Checks a parsed reply: 0 when "ok" is true, else prints its error and
 * returns its code. */
int cli_reply_status(const char *cmd, const char *text, const struct daemon_json_tok *toks)
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
int cli_parse_reply(const char *cmd, char *text, struct cli_reply *r)
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
	return cli_reply_status(cmd, r->text, r->toks);
}

/* Sends one request on c and parses the reply. Returns 0 or the exit
 * code (message printed). */
int cli_call_on(const char *cmd, const char *where, struct daemon_client *c, const char *req,
		struct cli_reply *r)
{
	struct mr_error err;
	char *text = NULL;

	memset(r, 0, sizeof(*r));
	mr_error_clear(&err);
	if (daemon_client_call_alloc(c, req, strlen(req), &text, &err) < 0)
		return cli_unreachable(cmd, where, &err);
	return cli_parse_reply(cmd, text, r);
}

/* Connects, sends one request, parses the reply. A daemon that is still
 * starting (reading its queue, indexing the backups) is asked again for up
 * to STARTING_WAIT seconds: operator commands and scripts run right after
 * a start then see the daemon as it is once up. (A login does not wait:
 * it answers "try again", 75, at once.) */
#define STARTING_WAIT 10.0
int cli_call(const char *cmd, const struct cli_opts *o, const char *req, struct cli_reply *r)
{
	struct daemon_client c;
	struct mr_error err;
	double until = mr_monotonic() + STARTING_WAIT;
	char *text;
	int rc;

	for (;;) {
		memset(r, 0, sizeof(*r));
		mr_error_clear(&err);
		text = NULL;
		rc = cli_connect(cmd, o, CLI_CLIENT_TIMEOUT, &c, NULL);
		if (rc != 0)
			return rc;
		if (daemon_client_call_alloc(&c, req, strlen(req), &text, &err) < 0) {
			daemon_client_close(&c);
			return cli_unreachable(cmd, o->where, &err);
		}
		daemon_client_close(&c);
		if (strstr(text, "\"the daemon is starting") == NULL || mr_monotonic() > until)
			return cli_parse_reply(cmd, text, r);
		free(text);
		usleep(100000);
	}
}

int cli_get(const struct cli_reply *r, int obj, const char *key)
{
	return daemon_json_get(r->text, r->toks, obj, key);
}

double cli_num(const struct cli_reply *r, int obj, const char *key, double def)
{
	return daemon_json_num(r->text, r->toks, cli_get(r, obj, key), def);
}

/* The string member key of object obj, escaped for a terminal (file
 * names in reasons are anybody's bytes), "" when null or missing. */
const char *cli_str(const struct cli_reply *r, int obj, const char *key, char *buf, size_t len)
{
	int i = cli_get(r, obj, key);
	char raw[4096];

	if (daemon_json_is_null(r->text, r->toks, i)) {
		buf[0] = '\0';
		return buf;
	}
	daemon_json_text(r->text, r->toks, i, raw, sizeof(raw));
	return mr_escape(raw, buf, len);
}

/* An estimate as people read it, from eta_seconds (< 0 for null) and
 * eta_status: "paused", "estimating", "no estimate", or "about 3 minutes". */
const char *cli_fmt_eta(double eta, const char *status, char *buf, size_t len)
{
	if (strcmp(status, "paused") == 0 || strcmp(status, "estimating") == 0)
		snprintf(buf, len, "%s", status);
	else if (eta < 0)
		snprintf(buf, len, "no estimate");
	else
		mr_human_duration(eta, buf, len);
	return buf;
}

/* Calls fn for each user object of `LIST state`, a page at a time on one
 * connection. Returns 0 or the exit code (message printed). */
int cli_list_state(const char *cmd, const struct cli_opts *o, const char *state,
		   void (*fn)(void *arg, const struct cli_reply *r, int obj), void *arg)
{
	char req[96];
	struct daemon_client c;
	struct cli_reply r;
	uint64_t cursor = 0;
	int rc = 0, list, i, u, next;

	memset(&r, 0, sizeof(r));
	rc = cli_connect(cmd, o, CLI_CLIENT_TIMEOUT, &c, NULL);
	if (rc != 0)
		return rc;
	for (;;) {
		snprintf(req, sizeof(req), "LIST %s %llu\n", state, (unsigned long long)cursor);
		rc = cli_call_on(cmd, o->where, &c, req, &r);
		if (rc != 0)
			break;
		list = cli_get(&r, 0, "users");
		for (i = 0; (u = daemon_json_index(r.toks, list, i)) >= 0; i++)
			fn(arg, &r, u);
		next = cli_get(&r, 0, "next");
		if (next < 0 || daemon_json_is_null(r.text, r.toks, next)) {
			cli_reply_free(&r);
			break;
		}
		cursor = (uint64_t)cli_num(&r, 0, "next", 0);
		cli_reply_free(&r);
	}
	cli_reply_free(&r);
	daemon_client_close(&c);
	return rc;
}
