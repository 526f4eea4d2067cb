/*
 * test_front.c: front/ without real servers: the user names a login or a
 * recipient stands for, the strict auth_http and policy parsers (limits,
 * hostile bytes), their answers against a fake daemon (a thread on a Unix
 * socket with canned replies) and, with no daemon, from the snapshot; the
 * backend map; `postqueue -j` lines.
 */
#include "tests/testutil.h"
#include "front/front.h"
#include "tests/front/fakedaemon.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct front *new_front(const char *sock, const char *state, const char *map)
{
	struct front_settings s;
	struct front *f = NULL;
	struct mr_error err;

	front_settings_init(&s);
	s.daemon.socket = sock;
	s.state_dir = state;
	s.backend_map = map;
	if (front_new(&s, &f, &err) < 0)
		fail_msg("front_new: %s", err.msg);
	return f;
}

/* ---- names ------------------------------------------------------------------ */

static void candidates_for_logins_and_recipients(void **state)
{
	char n[3][MR_USER_NAME_MAX + 1];

	(void)state;
	assert_int_equal(front_candidates("alice", 0, n), 1);
	assert_string_equal(n[0], "alice");
	assert_int_equal(front_candidates("alice@example.org", 0, n), 2);
	assert_string_equal(n[0], "alice@example.org");
	assert_string_equal(n[1], "alice");
	assert_int_equal(front_candidates("odd+name@example.org", FRONT_ASK_PLUS, n), 3);
	assert_string_equal(n[1], "odd+name");
	assert_string_equal(n[2], "odd");
	assert_int_equal(front_candidates("odd+name@example.org", 0, n), 2);
	/* Not names: never a path, never an option. */
	assert_int_equal(front_candidates("../etc@x", FRONT_ASK_PLUS, n), 0);
	assert_int_equal(front_candidates("--help@example.org", FRONT_ASK_PLUS, n), 0);
	assert_int_equal(front_candidates("", 0, n), 0);
	assert_int_equal(front_candidates("a b", 0, n), 0);
	/* A local part that is no name, a domain that makes none. */
	assert_int_equal(front_candidates("Odd.User@ex ample", FRONT_ASK_PLUS, n), 1);
	assert_string_equal(n[0], "Odd.User");
}

/* ---- auth_http ---------------------------------------------------------------- */

#define GOOD_HEAD                                                                   \
	"GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\n"             \
	"Auth-User: alice\r\nAuth-Pass: secret\r\nAuth-Protocol: imap\r\n"            \
	"Auth-Login-Attempt: 1\r\nClient-IP: 192.0.2.42\r\nClient-Host: c.example\r\n\r\n"

static int parse_http(const char *s, struct front_http_req *r, const char **why)
{
	return front_http_parse(s, strlen(s), r, why);
}

static void http_parses_what_nginx_sends(void **state)
{
	struct front_http_req r;
	const char *why;
	size_t i, len = strlen(GOOD_HEAD);

	(void)state;
	assert_int_equal(parse_http(GOOD_HEAD, &r, &why), 1);
	assert_string_equal(r.user, "alice");
	assert_string_equal(r.method, "plain");
	assert_string_equal(r.protocol, "imap");
	assert_string_equal(r.client_ip, "192.0.2.42");
	assert_int_equal(r.attempt, 1);
	/* Every prefix needs more bytes; none is an error. */
	for (i = 0; i < len; i++)
		assert_int_equal(front_http_parse(GOOD_HEAD, i, &r, &why), 0);
	/* %XX escapes of nginx are decoded. */
	assert_int_equal(parse_http("GET /a HTTP/1.0\r\nAuth-User: a%40b.org\r\n\r\n", &r, &why), 1);
	assert_string_equal(r.user, "a@b.org");
	/* Bare LF line ends too. */
	assert_int_equal(parse_http("GET /a HTTP/1.0\nAuth-User: bob\n\n", &r, &why), 1);
	assert_string_equal(r.user, "bob");
}

static void http_refuses_hostile_heads(void **state)
{
	static const char *const bad[] = {
		"POST /a HTTP/1.0\r\n\r\n",
		"GET a HTTP/1.0\r\n\r\n",
		"GET /a HTTP/2.0\r\n\r\n",
		"GET /a HTTP/1.0 extra\r\n\r\n",
		"GET /a HTTP/1.0\r\nNo colon here\r\n\r\n",
		"GET /a HTTP/1.0\r\n: empty name\r\n\r\n",
		"GET /a HTTP/1.0\r\nBad Name: x\r\n\r\n",
		"GET /a HTTP/1.0\r\nAuth-User: a\r\nAuth-User: b\r\n\r\n",
		"GET /a HTTP/1.0\r\nAuth-User: a%4\r\n\r\n",
		"GET /a HTTP/1.0\r\nAuth-User: a%0d%0aAuth-Status: OK\r\n\r\n",
		"GET /a HTTP/1.0\r\nAuth-User: a\rb\r\n\r\n",
		"GET /a HTTP/1.0\r\nAuth-Login-Attempt: 1x\r\n\r\n",
		"GET /a HTTP/1.0\r\nAuth-Login-Attempt: 99999999999\r\n\r\n",
	};
	struct front_http_req r;
	const char *why;
	char *big;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_http(bad[i], &r, &why) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_true(why[0] != '\0');
	}
	/* A NUL byte, even before the end of the head. */
	assert_int_equal(front_http_parse("GET /a HTTP/1.0\r\nX: \0\r\n", 22, &r, &why), -1);
	/* More header lines than allowed, a head too long, a user too long. */
	big = malloc(FRONT_HTTP_HEAD_MAX * 2);
	n = (size_t)sprintf(big, "GET /a HTTP/1.0\r\n");
	for (i = 0; i <= FRONT_HTTP_HEADERS_MAX; i++)
		n += (size_t)sprintf(big + n, "X-%zu: y\r\n", i);
	sprintf(big + n, "\r\n");
	assert_int_equal(parse_http(big, &r, &why), -1);
	memset(big, 'a', FRONT_HTTP_HEAD_MAX + 10);
	memcpy(big, "GET /", 5);
	assert_int_equal(front_http_parse(big, FRONT_HTTP_HEAD_MAX + 10, &r, &why), -1);
	n = (size_t)sprintf(big, "GET /a HTTP/1.0\r\nAuth-User: ");
	memset(big + n, 'u', 2000);
	sprintf(big + n + 2000, "\r\n\r\n");
	assert_int_equal(parse_http(big, &r, &why), -1);
	free(big);
}

static void http_answers_from_the_daemon(void **state)
{
	struct front_http_req r;
	struct fake fk;
	struct front *f;
	const char *why;
	char out[2048], *map;

	(void)state;
	fake_start(&fk);
	tu_write_file(fk.dir, "map", "# the map\n* 192.0.2.10:143 pop3=110\nbob 127.0.0.1:1143\n",
		      strlen("# the map\n* 192.0.2.10:143 pop3=110\nbob 127.0.0.1:1143\n"));
	map = tu_path(fk.dir, "map");
	f = new_front(fk.sock, NULL, map);
	/* Not back: the queue line, as the login hook says it, and a wait. */
	assert_int_equal(parse_http(GOOD_HEAD, &r, &why), 1);
	front_http_answer(f, &r, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.0 200 OK\r\n"));
	assert_non_null(strstr(out, "Auth-Status: Your mailbox is being restored from backup. "
				    "There are 1837 requests in the queue before you; about 3 "
				    "hours.\r\n"));
	assert_non_null(strstr(out, "Auth-Wait: 3\r\n"));
	/* From the 10th attempt on, no wait: nginx ends the session. */
	r.attempt = 10;
	front_http_answer(f, &r, out, sizeof(out));
	assert_null(strstr(out, "Auth-Wait"));
	/* Back: its own backend; not affected: the default, pop3's port. */
	snprintf(r.user, sizeof(r.user), "bob");
	front_http_answer(f, &r, out, sizeof(out));
	assert_string_equal(out, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
				 "Auth-Port: 1143\r\n\r\n");
	snprintf(r.user, sizeof(r.user), "carol@example.org");
	snprintf(r.protocol, sizeof(r.protocol), "pop3");
	front_http_answer(f, &r, out, sizeof(out));
	assert_non_null(strstr(out, "Auth-Server: 192.0.2.10\r\nAuth-Port: 110\r\n"));
	/* A method whose password nginx does not hold. */
	snprintf(r.method, sizeof(r.method), "cram-md5");
	front_http_answer(f, &r, out, sizeof(out));
	assert_null(strstr(out, "Auth-Status: OK"));
	/* No user name at all. */
	snprintf(r.method, sizeof(r.method), "plain");
	snprintf(r.user, sizeof(r.user), "../x");
	front_http_answer(f, &r, out, sizeof(out));
	assert_non_null(strstr(out, "Auth-Status: Invalid login or password\r\n"));
	front_free(&f);
	/* No default line: a user without a backend gets an error, no OK. */
	tu_write_file(fk.dir, "map2", "bob 127.0.0.1:1143\n", 19);
	free(map);
	map = tu_path(fk.dir, "map2");
	f = new_front(fk.sock, NULL, map);
	snprintf(r.user, sizeof(r.user), "carol");
	front_http_answer(f, &r, out, sizeof(out));
	assert_non_null(strstr(out, "no backend for this user"));
	front_free(&f);
	free(map);
	fake_stop(&fk);
}

static void backend_map_errors(void **state)
{
	static const char *const bad[] = {
		"bob\n", "bob 127.0.0.1\n", "bob 127.0.0.1:0\n", "bob 127.0.0.1:70000\n",
		"../x 127.0.0.1:143\n", "bob 127.0.0.1:143 imap=x\n", "bob 127.0.0.1:143 nntp=1\n",
		"bob 127.0.0.1:143\nbob 127.0.0.1:144\n",
	};
	struct front_settings s;
	struct front *f = NULL;
	struct mr_error err;
	char *dir = tu_tmpdir(), *map = tu_path(dir, "map");
	size_t i;

	(void)state;
	mr_log_quiet = 1;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tu_write_file(dir, "map", bad[i], strlen(bad[i]));
		front_settings_init(&s);
		s.backend_map = map;
		if (front_new(&s, &f, &err) == 0)
			fail_msg("map accepted: %s", bad[i]);
		assert_non_null(strstr(err.msg, "map"));
	}
	free(map);
	tu_rmtree(dir);
}

/* ---- policy ---------------------------------------------------------------------- */

#define POLICY(rcpt)                                                                    \
	"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"       \
	"client_address=192.0.2.1\nsender=s@example.net\nrecipient=" rcpt "\n\n"

static void policy_parses_and_refuses(void **state)
{
	static const char *const bad[] = {
		"recipient=a@b\n\n",                         /* no request= */
		"request=other\nrecipient=a@b\n\n",
		"request=smtpd_access_policy\nnoequals\n\n",
		"request=smtpd_access_policy\n=x\n\n",
		"request=smtpd_access_policy\nRecipient=a\n\n",
		"request=smtpd_access_policy\nrecipient=a\rb\n\n",
	};
	struct front_policy_req r;
	const char *why, *good = POLICY("alice@example.org");
	char two[1024], *big;
	size_t i, n;

	(void)state;
	assert_int_equal(front_policy_parse(good, strlen(good), &r, &why), (long)strlen(good));
	assert_string_equal(r.recipient, "alice@example.org");
	assert_string_equal(r.state, "RCPT");
	for (i = 0; i < strlen(good); i++)
		assert_int_equal(front_policy_parse(good, i, &r, &why), 0);
	/* Two requests in a row: the first one's length. */
	snprintf(two, sizeof(two), "%s%s", good, POLICY("bob@example.org"));
	assert_int_equal(front_policy_parse(two, strlen(two), &r, &why), (long)strlen(good));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (front_policy_parse(bad[i], strlen(bad[i]), &r, &why) != -1)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(front_policy_parse("request=x\0\n", 11, &r, &why), -1);
	big = malloc(FRONT_POLICY_REQUEST_MAX + 64);
	n = (size_t)sprintf(big, "request=smtpd_access_policy\n");
	for (i = 0; i <= FRONT_POLICY_ATTRS_MAX; i++)
		n += (size_t)sprintf(big + n, "a%zu=b\n", i);
	sprintf(big + n, "\n");
	assert_int_equal(front_policy_parse(big, strlen(big), &r, &why), -1);
	memset(big, 'a', FRONT_POLICY_REQUEST_MAX + 1);
	assert_int_equal(front_policy_parse(big, FRONT_POLICY_REQUEST_MAX + 1, &r, &why), -1);
	free(big);
}

static const char *policy_answer(struct front *f, const char *rcpt, char *out, size_t len)
{
	struct front_policy_req r;

	memset(&r, 0, sizeof(r));
	snprintf(r.recipient, sizeof(r.recipient), "%s", rcpt);
	snprintf(r.request, sizeof(r.request), "smtpd_access_policy");
	front_policy_answer(f, &r, out, len);
	return out;
}

static void policy_answers(void **state)
{
	struct fake fk;
	struct front *f;
	char out[512], *snap;

	(void)state;
	fake_start(&fk);
	snap = tu_path(fk.dir, "snap");
	f = new_front(fk.sock, snap, NULL);
	assert_string_equal(policy_answer(f, "alice@example.org", out, sizeof(out)),
			    "action=HOLD mailrestore: alice is being restored\n\n");
	assert_string_equal(policy_answer(f, "bob@example.org", out, sizeof(out)),
			    "action=DUNNO\n\n");
	assert_string_equal(policy_answer(f, "odd+name@example.org", out, sizeof(out)),
			    "action=DUNNO\n\n");
	assert_string_equal(policy_answer(f, "dt@example.org", out, sizeof(out)),
			    "action=DUNNO\n\n");
	assert_string_equal(policy_answer(f, "carol@example.org", out, sizeof(out)),
			    "action=DUNNO\n\n");
	/* "+ext": alice+news is alice (not a user of its own). */
	assert_string_equal(policy_answer(f, "alice+news@example.org", out, sizeof(out)),
			    "action=HOLD mailrestore: alice is being restored\n\n");
	assert_string_equal(policy_answer(f, "", out, sizeof(out)), "action=DUNNO\n\n");
	front_free(&f);
	/* The daemon away: what the snapshot learned above decides. */
	f = new_front("/nonexistent/mr.sock", snap, NULL);
	assert_string_equal(policy_answer(f, "bob@example.org", out, sizeof(out)),
			    "action=DUNNO\n\n");
	assert_string_equal(policy_answer(f, "dt@example.org", out, sizeof(out)),
			    "action=DUNNO\n\n");
	assert_string_equal(policy_answer(f, "carol@example.org", out, sizeof(out)),
			    "action=DUNNO\n\n");
	assert_string_equal(policy_answer(f, "alice@example.org", out, sizeof(out)),
			    "action=DEFER_IF_PERMIT mailrestore: restore service unreachable\n\n");
	assert_string_equal(policy_answer(f, "nobody-known@example.org", out, sizeof(out)),
			    "action=DEFER_IF_PERMIT mailrestore: restore service unreachable\n\n");
	front_free(&f);
	free(snap);
	fake_stop(&fk);
}

/* ---- postqueue -j ------------------------------------------------------------------ */

static void held_lines(void **state)
{
	static const char hold[] =
		"{\"queue_name\": \"hold\", \"queue_id\": \"4XyZ1abc\", \"arrival_time\": "
		"1700000000, \"message_size\": 351, \"forced_expire\": false, \"sender\": "
		"\"s@example.net\", \"recipients\": [{\"address\": \"alice@example.org\"}, "
		"{\"address\": \"b\\u0062@example.org\", \"delay_reason\": \"x\"}]}";
	static const char deferred[] =
		"{\"queue_name\": \"deferred\", \"queue_id\": \"1\", \"arrival_time\": 1, "
		"\"recipients\": []}";
	static const char *const bad[] = {
		"", "not json", "{\"queue_name\": \"hold\"}",
		"{\"queue_name\": \"hold\", \"queue_id\": \"../x\", \"recipients\": []}",
		"{\"queue_name\": \"hold\", \"queue_id\": \"A\", \"recipients\": [1]}",
	};
	struct front_held h;
	size_t i;

	(void)state;
	assert_int_equal(front_held_parse(hold, strlen(hold), &h), 1);
	assert_string_equal(h.queue_id, "4XyZ1abc");
	assert_true(h.arrival_time == 1700000000.0);
	assert_int_equal(h.nrcpt, 2);
	assert_string_equal(h.rcpt[0], "alice@example.org");
	assert_string_equal(h.rcpt[1], "bb@example.org");
	front_held_clear(&h);
	assert_int_equal(front_held_parse(deferred, strlen(deferred), &h), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(front_held_parse(bad[i], strlen(bad[i]), &h), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(candidates_for_logins_and_recipients),
		cmocka_unit_test(http_parses_what_nginx_sends),
		cmocka_unit_test(http_refuses_hostile_heads),
		cmocka_unit_test(http_answers_from_the_daemon),
		cmocka_unit_test(backend_map_errors),
		cmocka_unit_test(policy_parses_and_refuses),
		cmocka_unit_test(policy_answers),
		cmocka_unit_test(held_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
