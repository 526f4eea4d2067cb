/*
 * cli_private.h: what the daemon's clients share behind cli.h (client.c):
 * the option parser of the client subcommands, one request and its parsed
 * JSON reply, reading members of that reply, and the estimate as people
 * read it. Its users: the login hook (cmd_login.c, also the whole of the
 * lean mailrestore-login binary with client.c and util.c), the views
 * (cmd_views.c), the controls (cmd_control.c) and `deliver`
 * (cmd_deliver.c).
 *
 * A reply {"ok":false,...,"code":N} is exit code N; a daemon that cannot be
 * reached is 69 (77 when the socket's group refuses the caller). Every
 * function that returns an exit code has printed its message already.
 */
#ifndef MR_CLI_PRIVATE_H
#define MR_CLI_PRIVATE_H

#include "common/common.h"
#include "daemon/daemon.h"

#include <stddef.h>
#include <stdint.h>

/* Seconds an operator command waits for the daemon's answer. */
#define CLI_CLIENT_TIMEOUT 30.0

/* ---- options (client.c) ---------------------------------------------- */

/* The options a subcommand takes besides --socket and --help. */
enum {
	CLI_OPT_JSON = 1 << 0,
	CLI_OPT_PROMETHEUS = 1 << 1,
	CLI_OPT_ONCE = 1 << 2,
	CLI_OPT_PRIORITY = 1 << 3,
	CLI_OPT_FILE = 1 << 4,
	CLI_OPT_MAX = 1 << 5,
	CLI_OPT_STATE = 1 << 6,
	CLI_OPT_TARGET = 1 << 7,
};

/* A parsed command line: each option's value (0 / NULL when not given),
 * socket defaulting to cli_default_socket(), and the operands. */
struct cli_opts {
	const char *socket;
	int json, prometheus, once, priority, help;
	const char *file;
	const char *state;
	const char *target;
	uint64_t max;
	int nargs;
	char **args;
};

/* Parses --socket, --help and the CLI_OPT_* in allowed, anywhere before a
 * "--"; the operands stay in order at o->args (inside argv, nothing is
 * allocated). Returns 0, or -1 after printing the usage error. */
int cli_parse_opts(const char *cmd, int argc, char **argv, unsigned allowed, struct cli_opts *o);

/* ---- requests and replies (client.c) ---------------------------------- */

/* One reply: its text and JSON tokens (both malloc'ed, freed by
 * cli_reply_free). */
struct cli_reply {
	char *text;
	struct daemon_json_tok *toks;
	int ntok;
};

/* Frees r's text and tokens and zeroes r (a zeroed reply is fine). */
void cli_reply_free(struct cli_reply *r);

/* Prints why sock could not be reached (err from daemon_client_*) and
 * returns 77 for a refused permission, else 69. */
int cli_unreachable(const char *cmd, const char *sock, const struct mr_error *err);

/* 0 when the parsed reply (toks[0] the object) says "ok":true; else prints
 * its "error" and returns its "code" (70 for a malformed reply). */
int cli_reply_status(const char *cmd, const char *text, const struct daemon_json_tok *toks);

/* Parses text (taking ownership: r frees it) into r; returns
 * cli_reply_status() of it, or 70. */
int cli_parse_reply(const char *cmd, char *text, struct cli_reply *r);

/* Sends req (one line) on the connection fd and parses the reply into r.
 * Returns 0 or the exit code; r is always left for cli_reply_free. */
int cli_call_fd(const char *cmd, const char *sock, int fd, const char *req,
		struct cli_reply *r);

/* Connects to sock, sends req, parses the reply into r (as cli_call_fd);
 * a daemon still starting is asked again for up to 10 seconds. */
int cli_call(const char *cmd, const char *sock, const char *req, struct cli_reply *r);

/* Calls fn for each user object of `LIST state` on one connection, a
 * page at a time. Returns 0 or the exit code. */
int cli_list_state(const char *cmd, const char *sock, const char *state,
		   void (*fn)(void *arg, const struct cli_reply *r, int obj), void *arg);

/* ---- reading a reply (client.c) --------------------------------------- */

/* The token of member key of object obj, -1 when missing. */
int cli_get(const struct cli_reply *r, int obj, const char *key);
/* Member key of object obj as a number, def when missing or not one. */
double cli_num(const struct cli_reply *r, int obj, const char *key, double def);
/* Member key of object obj as a string escaped for a terminal, in buf;
 * "" when null or missing. Returns buf. */
const char *cli_str(const struct cli_reply *r, int obj, const char *key, char *buf, size_t len);

/* An estimate as people read it, in buf: status "paused" or "estimating"
 * as it is, "no estimate" for eta < 0 (null), else "about 3 minutes".
 * Returns buf. */
const char *cli_fmt_eta(double eta, const char *status, char *buf, size_t len);

/* The line a person trying to log in reads, from a user's reply: state,
 * position (< 0: none), eta seconds (< 0: none) and eta_status; the same
 * words wherever a login is refused (the hook, nginx's auth_http). */
void cli_login_message(const char *state, double pos, double eta, const char *status,
		       char *buf, size_t len);

#endif
