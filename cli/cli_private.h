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
 * socket defaulting to cli_default_socket(), connect to
 * $MAILRESTORE_CONNECT unless --socket is given, and the operands. */
struct cli_opts {
	const char *socket;
	const char *connect;  /* HOST:PORT: the daemon over TCP, not socket */
	const char *tls_ca, *tls_cert, *tls_key; /* TLS over connect */
	const char *where;    /* connect or socket, for messages */
	int json, prometheus, once, priority, help;
	const char *file;
	const char *state;
	const char *target;
	uint64_t max;
	int nargs;
	char **args;
};

/* Parses --socket, --connect, --tls-ca, --tls-cert, --tls-key, --help and
 * the CLI_OPT_* in allowed, anywhere before a "--"; the operands stay in
 * order at o->args (inside argv, nothing is allocated). Returns 0, or -1
 * after printing the usage error. */
int cli_parse_opts(const char *cmd, int argc, char **argv, unsigned allowed, struct cli_opts *o);

/* The options every client's usage lists after its first line. */
#define CLI_CONNECT_HELP \
	"Where the daemon is: --socket PATH (default $MAILRESTORE_SOCKET, else\n" \
	"/run/mailrestore/mailrestore.sock), or --connect HOST:PORT over the\n" \
	"network (default $MAILRESTORE_CONNECT; [ADDR]:PORT for IPv6) with TLS\n" \
	"when --tls-ca FILE (the CA of the daemon's certificate) is given, and\n" \
	"--tls-cert FILE --tls-key FILE when the daemon asks for a client\n" \
	"certificate. Over the network only login and show may be used: the\n" \
	"daemon refuses the rest with 77.\n"

/* Connects to the daemon o names (the socket, or o->connect with TLS when
 * asked) into *c. Returns 0, or the exit code with the message printed
 * (69 unreachable, 77 refused by the socket's group, 64 for TLS options
 * this binary cannot use). With open_err, a connect that fails returns
 * -1 with open_err filled (nothing printed for the connect itself, one
 * line naming a failed TLS handshake): the caller may answer from the
 * disk or its snapshot instead. */
int cli_connect(const char *cmd, const struct cli_opts *o, double timeout,
		struct daemon_client *c, struct mr_error *open_err);
/* TLS for cli_connect: daemon_client_tls_start() in the full binary
 * (cli/main.c sets it); NULL in the lean login hook, which loads no TLS
 * library and hands such a login to the full binary. */
extern int (*cli_tls_start)(struct daemon_client *c, const char *host, const char *ca_file,
			    const char *cert_file, const char *key_file, struct mr_error *err);

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

/* Prints why sock (a socket path or HOST:PORT) could not be reached (err
 * from daemon_client_*) and returns 77 for a refused permission, else 69. */
int cli_unreachable(const char *cmd, const char *sock, const struct mr_error *err);

/* 0 when the parsed reply (toks[0] the object) says "ok":true; else prints
 * its "error" and returns its "code" (70 for a malformed reply). */
int cli_reply_status(const char *cmd, const char *text, const struct daemon_json_tok *toks);

/* Parses text (taking ownership: r frees it) into r; returns
 * cli_reply_status() of it, or 70. */
int cli_parse_reply(const char *cmd, char *text, struct cli_reply *r);

/* Sends req (one line) on the connection c and parses the reply into r
 * (where names the daemon in messages). Returns 0 or the exit code; r is
 * always left for cli_reply_free. */
int cli_call_on(const char *cmd, const char *where, struct daemon_client *c, const char *req,
		struct cli_reply *r);

/* Connects to the daemon o names, sends req, parses the reply into r (as
 * cli_call_on); a daemon still starting is asked again for up to 10
 * seconds. */
int cli_call(const char *cmd, const struct cli_opts *o, const char *req, struct cli_reply *r);

/* Calls fn for each user object of `LIST state` on one connection, a
 * page at a time. Returns 0 or the exit code. */
int cli_list_state(const char *cmd, const struct cli_opts *o, const char *state,
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
/* The same line from the daemon's reply to LOGIN (text reply parsed into
 * toks) about a user in state: its position, eta_seconds and eta_status read
 * (null or missing: none). Returns buf. */
const char *cli_login_reply_message(const char *reply, const struct daemon_json_tok *toks,
				    const char *state, char *buf, size_t len);

#endif
