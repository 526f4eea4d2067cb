/*
 * test_proto.c: the table of verbs and the steps a request line takes
 * before a verb runs (daemon/proto.h): splitting the line, finding the
 * verb, the caller's rights, the shape of the arguments. Only the
 * proto-facing header: no daemon is made up, none is needed to refuse a
 * request. Every refusal is read back with the client's JSON reader.
 */
#include "tests/testutil.h"
#include "daemon/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Who may call each verb, whether network peers may, and where its work
 * runs: the table must say exactly this (an operator verb open to everyone
 * is issue 10 again; one open to the network is issue 18's hole).
 * ACTIVATIONS joins with network 1 when it is merged. */
static const struct {
	const char *name;
	unsigned rights;
	int on_task;
	int network;
} expected[] = {
	{ "LOGIN", 0, 0, 1 },
	{ "SHOW", 0, 0, 1 },
	{ "STATUS", 0, 0, 0 },
	{ "QUEUE", 0, 0, 0 },
	{ "PING", 0, 0, 1 },
	{ "DELIVER", PEER_DELIVER, 1, 0 },
	{ "LIST", PEER_OPERATOR, 0, 0 },
	{ "ENQUEUE", PEER_OPERATOR, 0, 0 },
	{ "BUMP", PEER_OPERATOR, 0, 0 },
	{ "RETRY", PEER_OPERATOR, 1, 0 },
	{ "ACTIVATE", PEER_OPERATOR, 1, 0 },
	{ "PAUSE", PEER_OPERATOR, 0, 0 },
	{ "RESUME", PEER_OPERATOR, 0, 0 },
	{ "SHUTDOWN", PEER_OPERATOR, 0, 0 },
};
#define NEXPECTED (sizeof(expected) / sizeof(expected[0]))

#define DENY_OPERATOR_START "permission denied: operator commands"
#define DENY_DELIVER_START "permission denied: delivering"

/* The outcome of one line: 0 when the verb may run, else the reply's code. */
struct outcome {
	int code;
	char error[256];
	int close_after;
	struct daemon_request req;
	char line[DAEMON_LINE_MAX + 8];
};

/* Reads {"ok":false,"error":...,"code":N} and a newline from b into o. */
static void read_refusal(const struct daemon_buf *b, struct outcome *o)
{
	struct daemon_json_tok toks[16];
	int n;

	assert_non_null(b->p);
	assert_true(b->len > 1);
	assert_int_equal(b->p[b->len - 1], '\n');
	assert_null(memchr(b->p, '\n', b->len - 1));
	n = daemon_json_parse(b->p, b->len - 1, toks, 16);
	assert_true(n > 0);
	assert_int_equal(toks[0].type, DAEMON_JSON_OBJECT);
	assert_string_equal(daemon_json_text(b->p, toks, daemon_json_get(b->p, toks, 0, "ok"),
					     o->error, sizeof(o->error)),
			    "false");
	o->code = (int)daemon_json_num(b->p, toks, daemon_json_get(b->p, toks, 0, "code"), -1);
	daemon_json_text(b->p, toks, daemon_json_get(b->p, toks, 0, "error"), o->error,
			 sizeof(o->error));
}

/* Parses and checks line as a caller with rights would send it. */
static void decide(const char *line, unsigned rights, struct outcome *o)
{
	struct daemon_buf b = { 0 };
	size_t len = strlen(line);

	memset(o, 0, sizeof(*o));
	assert_true(len < sizeof(o->line));
	memcpy(o->line, line, len + 1);
	if (daemon_proto_parse(o->line, len, &o->req, &b) == 0) {
		assert_non_null(o->req.verb);
		if (daemon_proto_check(&o->req, rights, &b) == 0) {
			assert_int_equal(b.len, 0);
			o->close_after = o->req.close_after;
			daemon_buf_free(&b);
			return;
		}
	}
	read_refusal(&b, o);
	assert_true(o->code > 0);
	o->close_after = o->req.close_after;
	daemon_buf_free(&b);
}

static void refused(const char *line, unsigned rights, int code, const char *error,
		    int close_after)
{
	struct outcome o;

	decide(line, rights, &o);
	if (o.code != code || strncmp(o.error, error, strlen(error)) != 0 ||
	    o.close_after != close_after)
		fail_msg("%.60s: got %d \"%s\" close %d, want %d \"%s...\" close %d", line, o.code,
			 o.error, o.close_after, code, error, close_after);
}

static void allowed(const char *line, unsigned rights)
{
	struct outcome o;

	decide(line, rights, &o);
	if (o.code != 0)
		fail_msg("%.60s: refused %d \"%s\"", line, o.code, o.error);
	assert_int_equal(o.close_after, 0);
}

/* The table holds every verb, with its rights and where it runs, and
 * nothing else. */
static void proto_table(void **state)
{
	const struct daemon_verb *v;
	size_t i, n = 0;

	(void)state;
	for (i = 0; i < NEXPECTED; i++) {
		v = daemon_verb_find(expected[i].name);
		if (v == NULL)
			fail_msg("no verb %s", expected[i].name);
		assert_string_equal(daemon_verb_name(v), expected[i].name);
		if (daemon_verb_rights(v) != expected[i].rights)
			fail_msg("%s needs rights %u, want %u", expected[i].name,
				 daemon_verb_rights(v), expected[i].rights);
		if (daemon_verb_network(v) != expected[i].network)
			fail_msg("%s open to network peers: %d, want %d", expected[i].name,
				 daemon_verb_network(v), expected[i].network);
		if (daemon_verb_on_task(v) != expected[i].on_task)
			fail_msg("%s on a task thread: %d, want %d", expected[i].name,
				 daemon_verb_on_task(v), expected[i].on_task);
	}
	for (i = 0; (v = daemon_verb_at(i)) != NULL; i++) {
		for (n = 0; n < NEXPECTED; n++)
			if (strcmp(daemon_verb_name(v), expected[n].name) == 0)
				break;
		if (n == NEXPECTED)
			fail_msg("verb %s is not in the test's list", daemon_verb_name(v));
	}
	assert_int_equal(i, NEXPECTED);
	/* Any case finds a verb; a prefix or a longer word does not. */
	assert_ptr_equal(daemon_verb_find("login"), daemon_verb_find("LOGIN"));
	assert_ptr_equal(daemon_verb_find("sHuTdOwN"), daemon_verb_find("SHUTDOWN"));
	assert_null(daemon_verb_find("LOG"));
	assert_null(daemon_verb_find("LOGINS"));
	assert_null(daemon_verb_find(""));
}

/* Words are split at spaces and tabs; the verb is found in any case. */
static void proto_parse_words(void **state)
{
	struct outcome o;

	(void)state;
	decide("  login\talice  ", 0, &o);
	assert_int_equal(o.code, 0);
	assert_int_equal(o.req.argc, 2);
	assert_string_equal(o.req.argv[0], "login");
	assert_string_equal(o.req.argv[1], "alice");
	assert_ptr_equal(o.req.verb, daemon_verb_find("LOGIN"));
	decide("PING", 0, &o);
	assert_int_equal(o.code, 0);
	assert_int_equal(o.req.argc, 1);
}

/* Lines that name no verb: empty, blank, unknown, too many words, too long. */
static void proto_bad_lines(void **state)
{
	char *line = malloc(DAEMON_LINE_MAX + 1);
	struct daemon_request req;
	struct daemon_buf b = { 0 };
	struct outcome o;
	size_t i, len;

	(void)state;
	assert_non_null(line);
	refused("", 0, MR_EX_USAGE, "empty request", 0);
	refused(" \t ", 0, MR_EX_USAGE, "empty request", 0);
	refused("FROB alice", PEER_OPERATOR | PEER_DELIVER, MR_EX_USAGE, "unknown request", 0);
	refused("LOGINalice", 0, MR_EX_USAGE, "unknown request", 0);
	/* DAEMON_ARGS_MAX words are a request; one more is not. */
	len = (size_t)snprintf(line, DAEMON_LINE_MAX, "PING");
	for (i = 1; i < DAEMON_ARGS_MAX; i++)
		len += (size_t)snprintf(line + len, DAEMON_LINE_MAX - len, " x");
	allowed(line, 0);
	snprintf(line + len, DAEMON_LINE_MAX - len, " x");
	refused(line, 0, MR_EX_USAGE, "too many arguments", 0);
	/* No newline within DAEMON_LINE_MAX bytes: refused, and the rest of
	 * the line must not be read as a request (the connection closes). */
	memset(line, 'A', DAEMON_LINE_MAX);
	line[DAEMON_LINE_MAX] = '\0';
	memcpy(line, "PING ", 5);
	assert_int_equal(daemon_proto_parse(line, DAEMON_LINE_MAX, &req, &b), -1);
	read_refusal(&b, &o);
	assert_int_equal(o.code, MR_EX_USAGE);
	assert_string_equal(o.error, "request line longer than 4096 bytes");
	assert_int_equal(req.close_after, 1);
	daemon_buf_free(&b);
	/* The longest line that fits is a request. */
	line[DAEMON_LINE_MAX - 1] = '\0';
	assert_int_equal(daemon_proto_parse(line, DAEMON_LINE_MAX - 1, &req, &b), 0);
	assert_int_equal(b.len, 0);
	daemon_buf_free(&b);
	free(line);
}

/* Operator verbs need PEER_OPERATOR, DELIVER needs PEER_DELIVER (and a
 * refused DELIVER closes: its body must not be read as requests); the
 * open verbs need nothing. The rights come before the arguments. */
static void proto_rights_decision(void **state)
{
	char line[64];
	size_t i;

	(void)state;
	for (i = 0; i < NEXPECTED; i++) {
		snprintf(line, sizeof(line), "%s", expected[i].name);
		if (expected[i].rights == PEER_OPERATOR) {
			refused(line, 0, MR_EX_NOPERM, DENY_OPERATOR_START, 0);
			refused(line, PEER_DELIVER, MR_EX_NOPERM, DENY_OPERATOR_START, 0);
		} else if (expected[i].rights == PEER_DELIVER) {
			refused(line, 0, MR_EX_NOPERM, DENY_DELIVER_START, 1);
			refused(line, PEER_OPERATOR, MR_EX_NOPERM, DENY_DELIVER_START, 1);
		}
	}
	refused("SHUTDOWN", 0, MR_EX_NOPERM, DENY_OPERATOR_START, 0);
	allowed("SHUTDOWN", PEER_OPERATOR);
	allowed("pause", PEER_OPERATOR);
	allowed("RESUME", PEER_OPERATOR | PEER_DELIVER);
	refused("ENQUEUE ../x", 0, MR_EX_NOPERM, DENY_OPERATOR_START, 0);
	refused("DELIVER alice 10", PEER_OPERATOR, MR_EX_NOPERM, DENY_DELIVER_START, 1);
	allowed("DELIVER alice 10", PEER_DELIVER);
	allowed("LOGIN alice", 0);
	allowed("SHOW alice", 0);
	allowed("STATUS", 0);
	allowed("QUEUE", 0);
	allowed("PING", 0);
}

/* A network peer (PEER_NETWORK, never with other rights) asks about users:
 * every other verb is refused with 77 before its arguments are looked at,
 * and DELIVER closes the connection (its body must not be read as
 * requests). */
static void proto_network_peers(void **state)
{
	char line[64];
	size_t i;

	(void)state;
	for (i = 0; i < NEXPECTED; i++) {
		snprintf(line, sizeof(line), "%s", expected[i].name);
		if (!expected[i].network)
			refused(line, PEER_NETWORK, MR_EX_NOPERM, "permission denied: ",
				expected[i].rights == PEER_DELIVER);
	}
	refused("STATUS", PEER_NETWORK, MR_EX_NOPERM,
		"permission denied: STATUS is only on the Unix socket", 0);
	refused("DELIVER alice 10", PEER_NETWORK, MR_EX_NOPERM,
		"permission denied: DELIVER is only on the Unix socket", 1);
	refused("pause", PEER_NETWORK, MR_EX_NOPERM,
		"permission denied: PAUSE is only on the Unix socket", 0);
	allowed("LOGIN alice", PEER_NETWORK);
	allowed("SHOW bob", PEER_NETWORK);
	allowed("PING", PEER_NETWORK);
	refused("LOGIN ../x", PEER_NETWORK, MR_EX_DATAERR, "invalid user name", 0);
}

/* Missing and malformed arguments, checked before anything is looked up. */
static void proto_arguments(void **state)
{
	(void)state;
	refused("LOGIN", 0, MR_EX_USAGE, "missing user name", 0);
	refused("LOGIN ../etc", 0, MR_EX_DATAERR, "invalid user name", 0);
	refused("SHOW", 0, MR_EX_USAGE, "missing user name", 0);
	refused("BUMP", PEER_OPERATOR, MR_EX_USAGE, "missing user name", 0);
	refused("RETRY", PEER_OPERATOR, MR_EX_USAGE, "missing user name", 0);
	refused("ACTIVATE a/b", PEER_OPERATOR, MR_EX_DATAERR, "invalid user name", 0);
	refused("QUEUE many", 0, MR_EX_USAGE, "QUEUE takes an optional count", 0);
	allowed("QUEUE 10", 0);
	refused("LIST", PEER_OPERATOR, MR_EX_USAGE, "LIST takes a state", 0);
	refused("LIST any x", PEER_OPERATOR, MR_EX_USAGE, "LIST takes a state", 0);
	refused("LIST nowhere", PEER_OPERATOR, MR_EX_USAGE, "LIST: no such state", 0);
	allowed("LIST any 500", PEER_OPERATOR);
	allowed("LIST attention", PEER_OPERATOR);
	refused("ENQUEUE", PEER_OPERATOR, MR_EX_USAGE, "ENQUEUE needs user names", 0);
	refused("ENQUEUE --priority", PEER_OPERATOR, MR_EX_USAGE, "ENQUEUE needs user names", 0);
	/* Invalid names among several are reported in the reply, not refused. */
	allowed("ENQUEUE --priority alice ../x", PEER_OPERATOR);
	/* DELIVER: a bad name is refused like any other (the connection stays:
	 * the client learns before it sends a body); a bad length or id, or a
	 * message too large, closes it. */
	refused("DELIVER", PEER_DELIVER, MR_EX_USAGE, "missing user name", 0);
	refused("DELIVER ../x 10", PEER_DELIVER, MR_EX_DATAERR, "invalid user name", 0);
	refused("DELIVER alice", PEER_DELIVER, MR_EX_USAGE, "usage: DELIVER", 1);
	refused("DELIVER alice ten", PEER_DELIVER, MR_EX_USAGE, "usage: DELIVER", 1);
	refused("DELIVER alice 10 id more", PEER_DELIVER, MR_EX_USAGE, "usage: DELIVER", 1);
	refused("DELIVER alice 67108865", PEER_DELIVER, MR_EX_DATAERR, "message larger", 1);
	allowed("DELIVER alice 67108864 Q1/x@y", PEER_DELIVER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(proto_table),
		cmocka_unit_test(proto_parse_words),
		cmocka_unit_test(proto_bad_lines),
		cmocka_unit_test(proto_rights_decision),
		cmocka_unit_test(proto_network_peers),
		cmocka_unit_test(proto_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
