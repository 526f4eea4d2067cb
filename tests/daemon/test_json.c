/*
 * test_json.c: the JSON reader of the clients (daemon/json.c), round trips
 * with the daemon's own string writer (mr_json_str), and the request lines
 * of the protocol (daemon/proto.c) handled by a daemon made up here: a real
 * queue in a temporary state folder, no socket, no threads. Every reply the
 * verbs write is read back with the JSON reader.
 */
#include "tests/testutil.h"
#include "daemon/daemon_private.h"

#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTOK 512

static struct daemon_json_tok toks[NTOK];

static int parse(const char *text)
{
	return daemon_json_parse(text, strlen(text), toks, NTOK);
}

static const char *text_of(const char *text, int i)
{
	static char buf[1024];

	return daemon_json_text(text, toks, i, buf, sizeof(buf));
}

/* ---- the JSON reader ------------------------------------------------ */

static void json_object_members(void **state)
{
	const char *t = "{\"ok\":false,\"error\":\"invalid user name\",\"code\":65}";
	int i;

	(void)state;
	assert_int_equal(parse(t), 7);
	assert_int_equal(toks[0].type, DAEMON_JSON_OBJECT);
	assert_int_equal(toks[0].size, 3);
	assert_int_equal(toks[0].next, 7);
	i = daemon_json_get(t, toks, 0, "ok");
	assert_int_equal(toks[i].type, DAEMON_JSON_PRIMITIVE);
	assert_string_equal(text_of(t, i), "false");
	i = daemon_json_get(t, toks, 0, "error");
	assert_int_equal(toks[i].type, DAEMON_JSON_STRING);
	assert_string_equal(text_of(t, i), "invalid user name");
	assert_true(daemon_json_num(t, toks, daemon_json_get(t, toks, 0, "code"), -1) == 65);
	assert_int_equal(daemon_json_get(t, toks, 0, "missing"), -1);
	assert_int_equal(daemon_json_get(t, toks, 0, "cod"), -1);
	assert_int_equal(daemon_json_get(t, toks, 0, "codes"), -1);
	/* A key's value is not a key. */
	assert_int_equal(daemon_json_get(t, toks, 0, "invalid user name"), -1);
	/* Lookups in something that is not an object, or at no token. */
	assert_int_equal(daemon_json_get(t, toks, 1, "ok"), -1);
	assert_int_equal(daemon_json_get(t, toks, -1, "ok"), -1);
	assert_string_equal(text_of(t, -1), "");
}

/* A key deeper down is never taken for the key asked for. */
static void json_nested_objects(void **state)
{
	const char *t = "{\"a\":{\"ok\":1,\"b\":[1,{\"ok\":2}],\"c\":{\"d\":{\"ok\":3}}},\"ok\":4}";
	int a, c, d;

	(void)state;
	assert_true(parse(t) > 0);
	assert_true(daemon_json_num(t, toks, daemon_json_get(t, toks, 0, "ok"), -1) == 4);
	a = daemon_json_get(t, toks, 0, "a");
	assert_int_equal(toks[a].type, DAEMON_JSON_OBJECT);
	assert_int_equal(toks[a].size, 3);
	assert_true(daemon_json_num(t, toks, daemon_json_get(t, toks, a, "ok"), -1) == 1);
	c = daemon_json_get(t, toks, a, "c");
	d = daemon_json_get(t, toks, c, "d");
	assert_true(daemon_json_num(t, toks, daemon_json_get(t, toks, d, "ok"), -1) == 3);
	assert_int_equal(daemon_json_get(t, toks, c, "ok"), -1);
	/* The subtree of "a" ends right before the key "ok" of the top. */
	assert_int_equal(toks[a].next, daemon_json_get(t, toks, 0, "ok") - 1);
}

static void json_array_of_objects(void **state)
{
	const char *t = "{\"ok\":true,\"total\":3,\"queue\":[{\"user\":\"alice\",\"position\":0},"
			"{\"user\":\"bob\",\"position\":1,\"x\":[[],{}]},"
			"{\"user\":\"carol\",\"position\":null}],\"after\":\"end\"}";
	const char *names[] = { "alice", "bob", "carol" };
	int q, e, k;

	(void)state;
	assert_true(parse(t) > 0);
	q = daemon_json_get(t, toks, 0, "queue");
	assert_int_equal(toks[q].type, DAEMON_JSON_ARRAY);
	assert_int_equal(toks[q].size, 3);
	for (k = 0; k < 3; k++) {
		e = daemon_json_index(toks, q, k);
		assert_int_equal(toks[e].type, DAEMON_JSON_OBJECT);
		assert_string_equal(text_of(t, daemon_json_get(t, toks, e, "user")), names[k]);
	}
	e = daemon_json_index(toks, q, 1);
	assert_true(daemon_json_num(t, toks, daemon_json_get(t, toks, e, "position"), -1) == 1);
	e = daemon_json_index(toks, q, 2);
	assert_true(daemon_json_is_null(t, toks, daemon_json_get(t, toks, e, "position")));
	assert_int_equal(daemon_json_index(toks, q, 3), -1);
	assert_int_equal(daemon_json_index(toks, q, -1), -1);
	assert_int_equal(daemon_json_index(toks, 0, 0), -1);
	assert_int_equal(daemon_json_index(toks, -1, 0), -1);
	/* Members after the array are found: next skips whole subtrees. */
	assert_string_equal(text_of(t, daemon_json_get(t, toks, 0, "after")), "end");
}

static void json_empty_containers(void **state)
{
	const char *t = " { \"a\" : [ ] , \"b\" : { } , \"c\" : [ [ ] , { } ] } \r\n";
	int a, b, c;

	(void)state;
	assert_int_equal(parse(t), 9);
	a = daemon_json_get(t, toks, 0, "a");
	b = daemon_json_get(t, toks, 0, "b");
	c = daemon_json_get(t, toks, 0, "c");
	assert_int_equal(toks[a].type, DAEMON_JSON_ARRAY);
	assert_int_equal(toks[a].size, 0);
	assert_int_equal(daemon_json_index(toks, a, 0), -1);
	assert_int_equal(toks[b].type, DAEMON_JSON_OBJECT);
	assert_int_equal(toks[b].size, 0);
	assert_int_equal(daemon_json_get(t, toks, b, "a"), -1);
	assert_int_equal(toks[c].size, 2);
	assert_int_equal(toks[daemon_json_index(toks, c, 1)].type, DAEMON_JSON_OBJECT);
	assert_int_equal(parse("[]"), 1);
	assert_int_equal(parse("{}"), 1);
}

static void json_string_escapes(void **state)
{
	const char *t = "[\"a\\nb\",\"q\\\"q\",\"b\\\\s\",\"\\/\\t\\r\\b\\f\",\"\\u0041\\u00e9\\u00FF\","
			"\"\\u20ac\",\"\"]";
	int s;

	(void)state;
	assert_int_equal(parse(t), 8);
	assert_string_equal(text_of(t, 1), "a\nb");
	assert_string_equal(text_of(t, 2), "q\"q");
	assert_string_equal(text_of(t, 3), "b\\s");
	assert_string_equal(text_of(t, 4), "/\t\r\b\f");
	/* The daemon escapes single bytes as \u00XX. */
	assert_string_equal(text_of(t, 5), "A\xe9\xff");
	/* Beyond a byte: a stand-in. */
	assert_string_equal(text_of(t, 6), "?");
	assert_string_equal(text_of(t, 7), "");
	/* The token is the text between the quotes, still escaped. */
	s = daemon_json_index(toks, 0, 1);
	assert_int_equal(toks[s].end - toks[s].start, (int)strlen("q\\\"q"));
	assert_memory_equal(t + toks[s].start, "q\\\"q", 4);
	/* A key is compared as written. */
	assert_int_equal(parse("{\"a\\nb\":1}"), 3);
	assert_int_equal(daemon_json_get("{\"a\\nb\":1}", toks, 0, "a\\nb"), 2);
}

static void json_text_truncates(void **state)
{
	const char *t = "[\"abcdef\",\"a\\u00e9\\u00e9\",12345]";
	char buf[4];

	(void)state;
	assert_int_equal(parse(t), 4);
	assert_string_equal(daemon_json_text(t, toks, 1, buf, sizeof(buf)), "abc");
	assert_string_equal(daemon_json_text(t, toks, 2, buf, sizeof(buf)), "a\xe9\xe9");
	assert_string_equal(daemon_json_text(t, toks, 3, buf, sizeof(buf)), "123");
	buf[0] = 'x';
	daemon_json_text(t, toks, 1, buf, 0);
	assert_int_equal(buf[0], 'x');
	assert_string_equal(daemon_json_text(t, toks, 1, buf, 1), "");
}

static void json_numbers(void **state)
{
	const char *t = "[0,-7,3.25,-0.5,1e3,2.5E-2,-1.5e+2,1795439994.123,"
			"18446744073709551615,true,null,\"12\",1e999]";
	int a;

	(void)state;
	assert_int_equal(parse(t), 14);
	a = 0;
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 0), -1) == 0);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 1), -1) == -7);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 2), -1) == 3.25);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 3), -1) == -0.5);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 4), -1) == 1000);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 5), -1) == 0.025);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 6), -1) == -150);
	assert_true(fabs(daemon_json_num(t, toks, daemon_json_index(toks, a, 7), -1) -
			 1795439994.123) < 1e-6);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 8), -1) ==
		    18446744073709551615.0);
	/* Not numbers: the default. */
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 9), -3) == -3);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 10), -3) == -3);
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 11), -3) == -3);
	assert_true(daemon_json_num(t, toks, -1, -3) == -3);
	assert_true(daemon_json_num(t, toks, 0, -3) == -3);
	/* Beyond a double: not a number either (never inf). */
	assert_true(daemon_json_num(t, toks, daemon_json_index(toks, a, 12), -3) == -3);
	assert_int_equal(parse("[-1e999,1e-999]"), 3);
	assert_true(daemon_json_num("[-1e999,1e-999]", toks, 1, -3) == -3);
	assert_true(daemon_json_num("[-1e999,1e-999]", toks, 2, -3) >= 0);
}

static void json_literals(void **state)
{
	const char *t = "{\"a\":null,\"b\":true,\"c\":false,\"d\":\"null\",\"e\":0}";

	(void)state;
	assert_int_equal(parse(t), 11);
	assert_true(daemon_json_is_null(t, toks, daemon_json_get(t, toks, 0, "a")));
	assert_false(daemon_json_is_null(t, toks, daemon_json_get(t, toks, 0, "b")));
	assert_false(daemon_json_is_null(t, toks, daemon_json_get(t, toks, 0, "c")));
	assert_false(daemon_json_is_null(t, toks, daemon_json_get(t, toks, 0, "d")));
	assert_false(daemon_json_is_null(t, toks, daemon_json_get(t, toks, 0, "e")));
	assert_true(daemon_json_is_null(t, toks, daemon_json_get(t, toks, 0, "zz")));
	assert_string_equal(text_of(t, daemon_json_get(t, toks, 0, "b")), "true");
	assert_int_equal(parse("null"), 1);
	assert_int_equal(parse("  false  "), 1);
	assert_int_equal(parse("\"just a string\""), 1);
	assert_int_equal(parse("-12.5e3"), 1);
}

static void json_malformed(void **state)
{
	static const char *bad[] = {
		"", " ", "\n", "{", "}", "[", "]", "[1,2", "{\"a\":1", "{\"a\":1,", "{\"a\" 1}",
		"{\"a\":}", "{\"a\"}", "{1:2}", "{a:1}", "[1,]", "[,1]", "{\"a\":1,}", "{,}",
		"[1 2]", "{\"a\":1 \"b\":2}", "\"abc", "\"a\\", "\"a\\\"", "{\"a\":1}}",
		"[1]]", "[1][2]", "{} {}", "\"a\nb\"", "\"a\tb\"", "[\"\x01\"]", "{\"a\":[}", "[{]}",
		"{\"a\":{\"b\":1}", "x", "[@]", "'a'", "{\"a\":'b'}", "[1,2,3]x",
		/* bad escapes */
		"\"\\x\"", "\"\\u12\"", "\"\\u12zz\"", "\"\\uZZZZ\"", "\"\\u\"", "\"\\a\"",
		"\"\\0\"", "\"\\U0041\"",
		/* not numbers, not literals */
		"tru", "nulll", "True", "NULL", "nan", "-", "+1", "1.2.3", "--1", "1e", "1e+",
		".5", "1.", "01", "-01", "0x10", "1-2", "truefalse", "[truee]", "{\"a\":nul}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i]) != -1)
			fail_msg("accepted as JSON: %s", bad[i]);
	}
	/* The length given is the text: a NUL before it is a bad byte, text
	 * after it is not read. */
	assert_int_equal(daemon_json_parse("[1]\0", 4, toks, NTOK), -1);
	assert_int_equal(daemon_json_parse("[1]]]", 3, toks, NTOK), 2);
	assert_int_equal(daemon_json_parse("\"ab\"", 3, toks, NTOK), -1);
}

static void json_token_limit(void **state)
{
	(void)state;
	assert_int_equal(daemon_json_parse("[1,2,3]", 7, toks, 4), 4);
	assert_int_equal(daemon_json_parse("[1,2,3]", 7, toks, 3), -1);
	assert_int_equal(daemon_json_parse("{\"a\":1}", 7, toks, 2), -1);
	assert_int_equal(daemon_json_parse("{\"a\":1}", 7, toks, 3), 3);
	assert_int_equal(daemon_json_parse("1", 1, toks, 0), -1);
	assert_int_equal(daemon_json_parse("1", 1, toks, -1), -1);
}

static void json_deep_nesting(void **state)
{
	char *deep;
	size_t n = 100000, i;

	(void)state;
	deep = malloc(2 * n + 1);
	assert_non_null(deep);
	/* Far too deep: refused without running out of stack. */
	for (i = 0; i < n; i++) {
		deep[i] = '[';
		deep[n + i] = ']';
	}
	deep[2 * n] = '\0';
	assert_int_equal(daemon_json_parse(deep, 2 * n, toks, NTOK), -1);
	/* As deep as a reply may be: read. */
	for (i = 0; i < 20; i++) {
		deep[i] = '[';
		deep[20 + i] = ']';
	}
	assert_int_equal(daemon_json_parse(deep, 40, toks, NTOK), 20);
	assert_int_equal(toks[0].next, 20);
	assert_int_equal(toks[19].size, 0);
	free(deep);
}

/* A number longer than the reader's scratch space is not a number, rather
 * than the value of its first digits. */
static void json_huge_numbers(void **state)
{
	char t[512];
	size_t i;

	(void)state;
	t[0] = '1';
	for (i = 1; i < 300; i++)
		t[i] = '0';
	t[300] = '\0';
	assert_int_equal(parse(t), 1);
	assert_true(daemon_json_num(t, toks, 0, -3) == -3);
	strcpy(t, "0.");
	for (i = 2; i < 100; i++)
		t[i] = '0';
	strcpy(t + 100, "5e99");
	assert_int_equal(parse(t), 1);
	assert_true(daemon_json_num(t, toks, 0, -3) == -3);
	/* Long but fitting: read exactly. */
	assert_int_equal(parse("1234567890123456.5"), 1);
	assert_true(daemon_json_num("1234567890123456.5", toks, 0, -3) == 1234567890123456.5);
}

/* Whatever bytes the daemon writes with mr_json_str come back unchanged. */
static void json_round_trip(void **state)
{
	static const char *const samples[] = {
		"", "alice", "quote \" backslash \\ slash /", "line\nbreak\r\ttab",
		"\x01\x02\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac \xff\xfe",
		"{\"ok\":true}", "\\u0041 is not an escape here",
	};
	char all[256], json[256 * 6 + 3], back[512];
	size_t i, pos;

	(void)state;
	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		pos = 0;
		mr_json_str(json, sizeof(json), &pos, samples[i]);
		assert_int_equal(daemon_json_parse(json, pos, toks, NTOK), 1);
		assert_int_equal(toks[0].type, DAEMON_JSON_STRING);
		assert_string_equal(daemon_json_text(json, toks, 0, back, sizeof(back)), samples[i]);
	}
	/* Every byte value but NUL. */
	for (i = 0; i < 255; i++)
		all[i] = (char)(i + 1);
	all[255] = '\0';
	pos = 0;
	mr_json_str(json, sizeof(json), &pos, all);
	assert_int_equal(daemon_json_parse(json, pos, toks, NTOK), 1);
	assert_string_equal(daemon_json_text(json, toks, 0, back, sizeof(back)), all);
	/* Inside an object, as the daemon writes replies. */
	{
		struct daemon_buf b = { 0 };

		daemon_buf_printf(&b, "{\"ok\":false,\"error\":");
		daemon_buf_json_str(&b, all);
		daemon_buf_printf(&b, ",\"code\":%d}", 65);
		assert_int_equal(daemon_json_parse(b.p, b.len, toks, NTOK), 7);
		assert_string_equal(text_of(b.p, daemon_json_get(b.p, toks, 0, "error")), all);
		daemon_buf_free(&b);
	}
}

/* ---- request lines (daemon/proto.c) --------------------------------- */

struct pt {
	char *dir;
	struct daemon_settings set;
	struct daemon d;
	struct conn *c;
	char *reply;   /* the last reply, without its newline */
};

static struct pt *pt_new(void)
{
	static const char *const users[] = { "alice", "bob", "carol" };
	struct queue_settings qs = { 0, 1 };
	struct mr_error err;
	struct pt *t = calloc(1, sizeof(*t));
	size_t i;
	int fd;

	assert_non_null(t);
	mr_log_quiet = 1;
	t->dir = tu_tmpdir();
	fd = tu_open_dir(t->dir);
	if (queue_open(fd, &qs, &t->d.q, &err) < 0)
		fail_msg("queue_open: %s", err.msg);
	close(fd);
	for (i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		assert_int_equal(queue_add_user(t->d.q, users[i], 100 * (i + 1), &err), 1);
	daemon_settings_init(&t->set);
	t->d.set = &t->set;
	t->d.epoll_fd = t->d.wake_fd = t->d.signal_fd = -1;
	pthread_mutex_init(&t->d.mu, NULL);
	pthread_cond_init(&t->d.work_cv, NULL);
	pthread_mutex_init(&t->d.async_mu, NULL);
	pthread_cond_init(&t->d.commit_cv, NULL);
	pthread_cond_init(&t->d.task_cv, NULL);
	pthread_mutex_init(&t->d.metrics_mu, NULL);
	daemon_metrics_init(&t->d);
	t->c = calloc(1, sizeof(*t->c));
	assert_non_null(t->c);
	t->c->link.fd = -1;
	t->c->link.uid = geteuid(); /* an operator */
	return t;
}

static size_t commits_pending(struct pt *t)
{
	struct commit_item *ci;
	size_t n = 0;

	for (ci = t->d.commit_head; ci != NULL; ci = ci->next)
		n++;
	return n;
}

static void pt_drain(struct pt *t)
{
	daemon_async_drain(&t->d);
}

static void pt_free(struct pt *t)
{
	pt_drain(t);
	free(t->c->body);
	daemon_buf_free(&t->c->out);
	free(t->c);
	daemon_metrics_close(&t->d);
	queue_close(&t->d.q);
	pthread_mutex_destroy(&t->d.mu);
	pthread_cond_destroy(&t->d.work_cv);
	pthread_mutex_destroy(&t->d.async_mu);
	pthread_cond_destroy(&t->d.commit_cv);
	pthread_cond_destroy(&t->d.task_cv);
	pthread_mutex_destroy(&t->d.metrics_mu);
	free(t->reply);
	tu_rmtree(t->dir);
	free(t);
}

/* Sends one request line; the reply must be one line of JSON, an object
 * with "ok". Returns its "code" (0 when ok), and parses it into toks. */
static int req(struct pt *t, const char *line)
{
	char *copy = strdup(line);
	int ok;

	assert_non_null(copy);
	t->c->out.len = 0;
	t->c->reply_waits_commit = t->c->waiting = t->c->close_after = 0;
	daemon_proto_request(&t->d, t->c, 0, copy, strlen(copy));
	free(copy);
	free(t->reply);
	t->reply = NULL;
	if (t->c->waiting)
		return -1;
	assert_true(t->c->out.len > 0);
	assert_int_equal(t->c->out.p[t->c->out.len - 1], '\n');
	assert_null(memchr(t->c->out.p, '\n', t->c->out.len - 1));
	t->reply = strndup(t->c->out.p, t->c->out.len - 1);
	assert_non_null(t->reply);
	if (daemon_json_parse(t->reply, strlen(t->reply), toks, NTOK) < 1 ||
	    toks[0].type != DAEMON_JSON_OBJECT)
		fail_msg("not a JSON object: %s", t->reply);
	ok = daemon_json_get(t->reply, toks, 0, "ok");
	assert_true(ok > 0);
	if (strcmp(text_of(t->reply, ok), "true") == 0)
		return 0;
	assert_string_equal(text_of(t->reply, ok), "false");
	return (int)daemon_json_num(t->reply, toks, daemon_json_get(t->reply, toks, 0, "code"), -1);
}

/* The string member key of the last reply. */
static const char *member(struct pt *t, const char *key)
{
	int i = daemon_json_get(t->reply, toks, 0, key);

	if (i < 0)
		fail_msg("no %s in %s", key, t->reply);
	return text_of(t->reply, i);
}

static void proto_ping_and_framing(void **state)
{
	struct pt *t = pt_new();

	(void)state;
	assert_int_equal(req(t, "PING"), 0);
	assert_string_equal(t->reply, "{\"ok\":true,\"pong\":true}");
	assert_int_equal(req(t, "ping"), 0);
	assert_int_equal(req(t, "pInG"), 0);
	assert_int_equal(req(t, " \t PING \t "), 0);
	assert_string_equal(member(t, "pong"), "true");
	assert_int_equal(req(t, ""), MR_EX_USAGE);
	assert_string_equal(member(t, "error"), "empty request");
	assert_int_equal(req(t, " \t  "), MR_EX_USAGE);
	assert_string_equal(member(t, "error"), "empty request");
	assert_int_equal(req(t, "HELLO alice"), MR_EX_USAGE);
	assert_string_equal(member(t, "error"), "unknown request");
	assert_int_equal(req(t, "PINGX"), MR_EX_USAGE);
	assert_int_equal(req(t, "PI NG"), MR_EX_USAGE);
	assert_false(t->c->close_after);
	pt_free(t);
}

/* DAEMON_ARGS_MAX words are read; one more is refused. */
static void proto_word_limit(void **state)
{
	struct pt *t = pt_new();
	char line[DAEMON_LINE_MAX];
	size_t pos = 0;
	int i;

	(void)state;
	mr_bufcat(line, sizeof(line), &pos, "QUEUE");
	for (i = 1; i < DAEMON_ARGS_MAX; i++)
		mr_bufcat(line, sizeof(line), &pos, " x");
	/* 128 words: QUEUE's own usage error, so they were all read. */
	assert_int_equal(req(t, line), MR_EX_USAGE);
	assert_string_equal(member(t, "error"), "QUEUE takes an optional count");
	mr_bufcat(line, sizeof(line), &pos, "\tx");
	assert_int_equal(req(t, line), MR_EX_USAGE);
	assert_string_equal(member(t, "error"), "too many arguments");
	/* Separators alone are not words. */
	pos = 0;
	mr_bufcat(line, sizeof(line), &pos, "PING");
	for (i = 0; i < 1000; i++)
		mr_bufcat(line, sizeof(line), &pos, " \t");
	assert_int_equal(req(t, line), 0);
	pt_free(t);
}

/* An invalid user name is refused with 65 by every verb that takes one,
 * before the queue or a body buffer is touched. */
static void proto_invalid_names_refused(void **state)
{
	static const char *const verbs[] = { "LOGIN", "SHOW", "BUMP", "RETRY", "ACTIVATE" };
	static const char *const names[] = { "../etc", ".hidden", "-rf", "a/b", "_x",
					     "caf\xc3\xa9", "a\\b", "a:b", "*" };
	struct pt *t = pt_new();
	char line[DAEMON_LINE_MAX], longname[300];
	size_t v, n;
	uint64_t counts[QUEUE_STATE_COUNT];

	(void)state;
	memset(longname, 'a', 256);
	longname[256] = '\0';
	for (v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
		for (n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
			snprintf(line, sizeof(line), "%s %s", verbs[v], names[n]);
			assert_int_equal(req(t, line), MR_EX_DATAERR);
			assert_string_equal(member(t, "error"), "invalid user name");
		}
		snprintf(line, sizeof(line), "%s %s", verbs[v], longname);
		assert_int_equal(req(t, line), MR_EX_DATAERR);
		snprintf(line, sizeof(line), "%s", verbs[v]);
		assert_int_equal(req(t, line), MR_EX_USAGE);
		assert_string_equal(member(t, "error"), "missing user name");
	}
	/* DELIVER: the name before the length; no body is taken. */
	assert_int_equal(req(t, "DELIVER ../x 10"), MR_EX_DATAERR);
	assert_int_equal(req(t, "DELIVER ../x"), MR_EX_DATAERR);
	assert_null(t->c->body);
	assert_true(t->d.body_bytes == 0);
	/* Nothing reached the queue. */
	assert_int_equal(commits_pending(t), 0);
	assert_null(t->d.task_head);
	queue_counts(t->d.q, counts);
	assert_true(counts[QUEUE_WAITING] == 3);
	assert_true(queue_pending(t->d.q) == 0);
	/* The longest valid name is a name. */
	longname[255] = '\0';
	snprintf(line, sizeof(line), "LOGIN %s", longname);
	assert_int_equal(req(t, line), 0);
	assert_string_equal(member(t, "user"), longname);
	assert_string_equal(member(t, "state"), "unknown");
	pt_free(t);
}

static void proto_login_and_show(void **state)
{
	struct pt *t = pt_new();
	int k;

	(void)state;
	assert_int_equal(req(t, "LOGIN alice"), 0);
	assert_string_equal(member(t, "user"), "alice");
	assert_string_equal(member(t, "state"), "queued");
	assert_string_equal(member(t, "position"), "0");
	assert_string_equal(member(t, "priority"), "true");
	assert_false(daemon_json_is_null(t->reply, toks, daemon_json_get(t->reply, toks, 0,
									   "requested_at")));
	/* Answered only once the journal has it. */
	assert_true(t->c->reply_waits_commit);
	assert_int_equal(commits_pending(t), 1);
	assert_int_equal(req(t, "login bob"), 0);
	assert_string_equal(member(t, "position"), "1");
	/* Asking again keeps the place. */
	assert_int_equal(req(t, "LOGIN alice"), 0);
	assert_string_equal(member(t, "position"), "0");
	/* Not affected: let in, nothing journaled. */
	pt_drain(t);
	assert_int_equal(req(t, "LOGIN zed"), 0);
	assert_string_equal(member(t, "state"), "unknown");
	assert_true(daemon_json_is_null(t->reply, toks, daemon_json_get(t->reply, toks, 0,
									  "position")));
	assert_false(t->c->reply_waits_commit);
	assert_int_equal(commits_pending(t), 0);
	/* User names are case-sensitive. */
	assert_int_equal(req(t, "LOGIN Alice"), 0);
	assert_string_equal(member(t, "state"), "unknown");
	/* SHOW adds the times, the counters and held mail. */
	assert_int_equal(req(t, "SHOW bob"), 0);
	assert_string_equal(member(t, "state"), "queued");
	assert_string_equal(member(t, "attempts"), "0");
	assert_string_equal(member(t, "size_hint"), "200");
	assert_true(daemon_json_is_null(t->reply, toks, daemon_json_get(t->reply, toks, 0,
									  "reason")));
	k = daemon_json_get(t->reply, toks, 0, "counters");
	assert_int_equal(toks[k].type, DAEMON_JSON_OBJECT);
	assert_int_equal(toks[k].size, 10);
	assert_string_equal(member(t, "held_mail"), "0");
	assert_int_equal(req(t, "SHOW nobody"), 0);
	assert_string_equal(member(t, "state"), "unknown");
	pt_free(t);
}

static void proto_operator_verbs(void **state)
{
	static const char *const op[] = { "ENQUEUE alice", "BUMP alice", "RETRY alice",
					  "ACTIVATE alice", "PAUSE", "RESUME", "SHUTDOWN" };
	struct pt *t = pt_new();
	size_t i;

	(void)state;
	t->c->link.uid = geteuid() + 4242;
	for (i = 0; i < sizeof(op) / sizeof(op[0]); i++) {
		assert_int_equal(req(t, op[i]), MR_EX_NOPERM);
		assert_non_null(strstr(member(t, "error"), "permission denied"));
	}
	assert_int_equal(t->d.loop_stop, 0);
	assert_int_equal(t->d.paused, 0);
	assert_int_equal(commits_pending(t), 0);
	/* The open verbs stay open. */
	assert_int_equal(req(t, "LOGIN carol"), 0);
	assert_int_equal(req(t, "STATUS"), 0);
	assert_int_equal(req(t, "QUEUE"), 0);
	pt_drain(t);
	/* An operator. */
	t->c->link.uid = geteuid();
	t->c->rights_checked = 0;
	assert_int_equal(req(t, "PAUSE"), 0);
	assert_string_equal(member(t, "paused"), "true");
	assert_int_equal(t->d.paused, 1);
	assert_int_equal(req(t, "STATUS"), 0);
	assert_string_equal(member(t, "paused"), "true");
	assert_int_equal(req(t, "resume"), 0);
	assert_string_equal(member(t, "paused"), "false");
	assert_int_equal(req(t, "BUMP bob"), 0);
	assert_string_equal(member(t, "position"), "0");
	assert_true(t->c->reply_waits_commit);
	assert_int_equal(req(t, "BUMP zed"), MR_EX_NOUSER);
	/* RETRY and ACTIVATE only for users in attention. */
	assert_int_equal(req(t, "RETRY alice"), MR_EX_DATAERR);
	assert_int_equal(req(t, "ACTIVATE alice"), MR_EX_DATAERR);
	assert_int_equal(req(t, "RETRY zed"), MR_EX_NOUSER);
	assert_null(t->d.task_head);
	assert_int_equal(req(t, "SHUTDOWN"), 0);
	assert_string_equal(member(t, "stopping"), "true");
	assert_true(t->c->close_after);
	assert_int_equal(t->d.loop_stop, 1);
	pt_free(t);
}

/* Who may see whom and who may deliver: a peer that is neither root, the
 * daemon's user nor in a group sees no other user and cannot deliver
 * (issue 10: any local user forged mail and read every user's state). */
static void proto_rights(void **state)
{
	struct pt *t = pt_new();
	int q;

	(void)state;
	t->c->link.uid = geteuid() + 4242; /* no account: matches no user name */
	t->c->link.gid = 4242;
	assert_int_equal(req(t, "LOGIN alice"), 0);
	pt_drain(t);
	assert_int_equal(req(t, "SHOW alice"), MR_EX_NOPERM);
	assert_non_null(strstr(member(t, "error"), "permission denied"));
	assert_int_equal(req(t, "QUEUE"), 0);
	q = daemon_json_get(t->reply, toks, 0, "queue");
	assert_int_equal(toks[q].size, 0);
	assert_int_equal(req(t, "DELIVER alice 10"), MR_EX_NOPERM);
	assert_non_null(strstr(member(t, "error"), "deliver"));
	assert_true(t->c->close_after);
	assert_null(t->c->body);
	t->c->close_after = 0;
	/* A member of --deliver-group (its primary group here) may deliver,
	 * and still sees nobody else. */
	t->d.deliver_gid = 4242;
	t->d.have_deliver_gid = 1;
	t->c->rights_checked = 0;
	assert_int_equal(req(t, "DELIVER alice 10"), 0);
	assert_non_null(t->c->body);
	free(t->c->body);
	t->c->body = NULL;
	t->c->out.len = 0;
	assert_int_equal(req(t, "SHOW alice"), MR_EX_NOPERM);
	assert_int_equal(req(t, "PAUSE"), MR_EX_NOPERM);
	/* A member of --operator-group sees everyone. */
	t->d.operator_gid = 4242;
	t->d.have_operator_gid = 1;
	t->c->rights_checked = 0;
	assert_int_equal(req(t, "SHOW alice"), 0);
	assert_int_equal(req(t, "QUEUE"), 0);
	q = daemon_json_get(t->reply, toks, 0, "queue");
	assert_int_equal(toks[q].size, 1);
	pt_free(t);
}

/* A long QUEUE reply is made a piece at a time as the client reads it (a
 * whole queue per connection grew the daemon by hundreds of MB with
 * clients that never read, issue 10); users who start or join between
 * pieces neither repeat nor drop anyone. */
static void proto_queue_pieces(void **state)
{
	struct pt *t = pt_new();
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;
	char name[16], key[40], started[MR_USER_NAME_MAX + 1], *all = NULL, *p;
	size_t all_len = 0;
	int i, prio, shifted = 0;

	(void)state;
	for (i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "u%03d", i);
		assert_int_equal(queue_add_user(t->d.q, name, 10, &err), 1);
		assert_int_equal(queue_request(t->d.q, name, 1000.0 + i, &info, &ticket, &err), 0);
	}
	t->c->out.len = 0;
	p = strdup("QUEUE");
	daemon_proto_request(&t->d, t->c, 0, p, strlen(p));
	free(p);
	assert_true(t->c->streaming);
	for (;;) {
		all = realloc(all, all_len + t->c->out.len + 1);
		assert_non_null(all);
		memcpy(all + all_len, t->c->out.p, t->c->out.len);
		all_len += t->c->out.len;
		all[all_len] = '\0';
		if (!t->c->streaming)
			break;
		/* Between the pieces two users start and one more asks. */
		if (!shifted++) {
			assert_int_equal(queue_next(t->d.q, 1, 2000.0, started, &prio, &err), 1);
			assert_int_equal(queue_next(t->d.q, 1, 2000.0, started, &prio, &err), 1);
			assert_int_equal(queue_add_user(t->d.q, "late", 10, &err), 1);
			assert_int_equal(queue_request(t->d.q, "late", 3000.0, &info, &ticket, &err), 0);
		}
		t->c->out.len = 0;
		daemon_proto_queue_more(&t->d, t->c);
	}
	assert_int_equal(all[all_len - 1], '\n');
	assert_null(memchr(all, '\n', all_len - 1));
	/* Every user once, in order: the first piece's 64, then the rest. */
	for (p = all, i = 0; i < 150; i++) {
		snprintf(key, sizeof(key), "\"user\":\"u%03d\"", i);
		p = strstr(p, key);
		if (p == NULL)
			fail_msg("u%03d missing or out of order", i);
		assert_null(strstr(p + 1, key));
	}
	assert_non_null(strstr(p, "\"user\":\"late\""));
	free(all);
	pt_drain(t);
	pt_free(t);
}

/* STATUS is open to anyone who may connect, but it named the users the
 * workers were restoring: others than operators see a busy worker's user
 * only when it is themselves. */
static void proto_status_names(void **state)
{
	struct pt *t = pt_new();
	struct worker *w = calloc(1, sizeof(*w));
	struct passwd *pw = getpwnam("nobody");

	(void)state;
	assert_non_null(w);
	w->busy = 1;
	w->id = 1;
	snprintf(w->job.user, sizeof(w->job.user), "alice");
	t->d.workers = w;
	t->d.nworkers = 1;
	assert_int_equal(req(t, "STATUS"), 0);
	assert_non_null(strstr(t->reply, "\"user\":\"alice\""));
	t->c->link.uid = geteuid() + 4242; /* no account, no group */
	t->c->rights_checked = 0;
	assert_int_equal(req(t, "STATUS"), 0);
	assert_null(strstr(t->reply, "alice"));
	assert_non_null(strstr(t->reply, "\"phase\":"));
	/* A user's own restore shows. */
	if (pw != NULL && pw->pw_uid != geteuid() && pw->pw_uid != 0) {
		snprintf(w->job.user, sizeof(w->job.user), "nobody");
		t->c->link.uid = pw->pw_uid;
		t->c->rights_checked = 0;
		assert_int_equal(req(t, "STATUS"), 0);
		assert_non_null(strstr(t->reply, "\"user\":\"nobody\""));
	}
	t->d.workers = NULL;
	t->d.nworkers = 0;
	free(w);
	pt_free(t);
}

/* Collects a whole QUEUE reply of t, calling between(t, n) after the n-th
 * piece (1-based) until the reply ends. Returns it (malloc'd). */
static char *queue_in_pieces(struct pt *t, void (*between)(struct pt *t, int n))
{
	char *all = NULL, *p;
	size_t all_len = 0;
	int n = 0;

	t->c->out.len = 0;
	p = strdup("QUEUE");
	daemon_proto_request(&t->d, t->c, 0, p, strlen(p));
	free(p);
	for (;;) {
		all = realloc(all, all_len + t->c->out.len + 1);
		assert_non_null(all);
		memcpy(all + all_len, t->c->out.p, t->c->out.len);
		all_len += t->c->out.len;
		all[all_len] = '\0';
		if (!t->c->streaming)
			break;
		between(t, ++n);
		t->c->out.len = 0;
		daemon_proto_queue_more(&t->d, t->c);
	}
	return all;
}

/* How often "user":"name" is in s. */
static int times_listed(const char *s, const char *name)
{
	char key[48];
	int n = 0;

	snprintf(key, sizeof(key), "\"user\":\"%s\"", name);
	for (s = strstr(s, key); s != NULL; s = strstr(s + 1, key))
		n++;
	return n;
}

static void bump_last(struct pt *t, int n)
{
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;

	if (n == 1)
		assert_int_equal(queue_bump(t->d.q, "u063", 3000.0, &info, &ticket, &err), 0);
}

static void bump_and_start_last(struct pt *t, int n)
{
	char started[MR_USER_NAME_MAX + 1];
	int prio;
	struct mr_error err;

	bump_last(t, n);
	if (n == 1) {
		assert_int_equal(queue_next(t->d.q, 1, 3000.0, started, &prio, &err), 1);
		assert_string_equal(started, "u063");
	}
}

/* The user a piece ended with moves between pieces: bumped to the front,
 * the next piece listed the 63 users before it again; started, the user
 * after it was never listed. Every user stays listed once. */
static void proto_queue_pieces_last_moves(void **state)
{
	struct pt *t;
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;
	char name[16], *all;
	int i, round;

	(void)state;
	for (round = 0; round < 2; round++) {
		t = pt_new();
		for (i = 0; i < 150; i++) {
			snprintf(name, sizeof(name), "u%03d", i);
			assert_int_equal(queue_add_user(t->d.q, name, 10, &err), 1);
			assert_int_equal(queue_request(t->d.q, name, 1000.0 + i, &info, &ticket,
						       &err), 0);
		}
		all = queue_in_pieces(t, round == 0 ? bump_last : bump_and_start_last);
		for (i = 0; i < 150; i++) {
			snprintf(name, sizeof(name), "u%03d", i);
			if (times_listed(all, name) != 1)
				fail_msg("round %d: %s listed %d times", round, name,
					 times_listed(all, name));
		}
		free(all);
		pt_drain(t);
		pt_free(t);
	}
}

static void proto_enqueue_lists(void **state)
{
	struct pt *t = pt_new();
	int u, k;

	(void)state;
	assert_int_equal(req(t, "ENQUEUE"), MR_EX_USAGE);
	assert_int_equal(req(t, "ENQUEUE --priority"), MR_EX_USAGE);
	assert_int_equal(commits_pending(t), 0);
	assert_int_equal(req(t, "ENQUEUE alice ../x nobody bob -rf"), 0);
	u = daemon_json_get(t->reply, toks, 0, "users");
	assert_int_equal(toks[u].size, 2);
	assert_string_equal(text_of(t->reply, daemon_json_get(t->reply, toks,
								daemon_json_index(toks, u, 1),
								"user")),
			    "bob");
	k = daemon_json_get(t->reply, toks, 0, "invalid");
	assert_int_equal(toks[k].size, 2);
	assert_string_equal(text_of(t->reply, daemon_json_index(toks, k, 0)), "../x");
	assert_string_equal(text_of(t->reply, daemon_json_index(toks, k, 1)), "-rf");
	k = daemon_json_get(t->reply, toks, 0, "unknown");
	assert_int_equal(toks[k].size, 1);
	assert_string_equal(text_of(t->reply, daemon_json_index(toks, k, 0)), "nobody");
	assert_true(t->c->reply_waits_commit);
	/* Only invalid or unknown names: nothing to wait for. */
	assert_int_equal(req(t, "ENQUEUE \"quoted\" nobody"), 0);
	assert_false(t->c->reply_waits_commit);
	k = daemon_json_get(t->reply, toks, 0, "invalid");
	assert_string_equal(text_of(t->reply, daemon_json_index(toks, k, 0)), "\"quoted\"");
	assert_int_equal(req(t, "ENQUEUE --priority carol"), 0);
	u = daemon_json_get(t->reply, toks, 0, "users");
	assert_string_equal(text_of(t->reply, daemon_json_get(t->reply, toks,
								daemon_json_index(toks, u, 0),
								"priority")),
			    "true");
	pt_free(t);
}

static void proto_queue_count(void **state)
{
	struct pt *t = pt_new();
	int q;

	(void)state;
	assert_int_equal(req(t, "LOGIN carol"), 0);
	assert_int_equal(req(t, "LOGIN alice"), 0);
	assert_int_equal(req(t, "LOGIN bob"), 0);
	assert_int_equal(req(t, "QUEUE"), 0);
	assert_string_equal(member(t, "total"), "3");
	q = daemon_json_get(t->reply, toks, 0, "queue");
	assert_int_equal(toks[q].size, 3);
	assert_string_equal(text_of(t->reply, daemon_json_get(t->reply, toks,
								daemon_json_index(toks, q, 0),
								"user")),
			    "carol");
	assert_int_equal(req(t, "QUEUE 2"), 0);
	assert_string_equal(member(t, "total"), "3");
	assert_int_equal(toks[daemon_json_get(t->reply, toks, 0, "queue")].size, 2);
	assert_int_equal(req(t, "QUEUE 0"), 0);
	assert_int_equal(toks[daemon_json_get(t->reply, toks, 0, "queue")].size, 3);
	assert_int_equal(req(t, "QUEUE -1"), MR_EX_USAGE);
	assert_int_equal(req(t, "QUEUE 2x"), MR_EX_USAGE);
	assert_int_equal(req(t, "QUEUE 99999999999999999999999"), MR_EX_USAGE);
	pt_free(t);
}

static void proto_deliver_arguments(void **state)
{
	struct pt *t = pt_new();
	struct verb_job *job;

	(void)state;
	assert_int_equal(req(t, "DELIVER alice"), MR_EX_USAGE);
	assert_true(t->c->close_after);
	assert_int_equal(req(t, "DELIVER alice 10 Q1 more"), MR_EX_USAGE);
	assert_int_equal(req(t, "DELIVER alice 10 Q\x7f"), MR_EX_USAGE);
	{
		/* a delivery id is at most 1024 bytes */
		char line[1200];

		memset(line, 'i', sizeof(line));
		memcpy(line, "DELIVER alice 10 ", 17);
		line[17 + 1025] = '\0';
		assert_int_equal(req(t, line), MR_EX_USAGE);
	}
	assert_int_equal(req(t, "DELIVER alice 1x"), MR_EX_USAGE);
	assert_int_equal(req(t, "DELIVER alice -1"), MR_EX_USAGE);
	assert_int_equal(req(t, "DELIVER alice 67108865"), MR_EX_DATAERR);
	assert_true(t->c->close_after);
	assert_int_equal(req(t, "DELIVER zed 10"), MR_EX_NOUSER);
	assert_null(t->c->body);
	assert_true(t->d.body_bytes == 0);
	assert_int_equal(req(t, "DELIVER alice 67108864"), 0);
	assert_string_equal(member(t, "send"), "67108864");
	assert_non_null(t->c->body);
	assert_true(t->d.body_bytes == 67108864);
	/* The body has come: a task stores it. */
	t->c->body_have = t->c->body_len;
	t->c->out.len = 0;
	daemon_proto_deliver_body(&t->d, t->c, 0);
	assert_null(t->c->body);
	assert_true(t->c->waiting);
	assert_non_null(t->d.task_head);
	job = t->d.task_head->arg;
	assert_string_equal(job->user, "alice");
	assert_true(job->len == 67108864);
	assert_non_null(job->body);
	assert_string_equal(job->id, "");
	pt_free(t);
}

/* DELIVER USER LENGTH ID: the id goes with the body to the task. */
static void proto_deliver_id(void **state)
{
	struct pt *t = pt_new();
	struct verb_job *job;

	(void)state;
	assert_int_equal(req(t, "DELIVER alice 5 4XyZ1/alice@example.org"), 0);
	assert_string_equal(member(t, "send"), "5");
	memcpy(t->c->body, "hello", 5);
	t->c->body_have = t->c->body_len;
	t->c->out.len = 0;
	daemon_proto_deliver_body(&t->d, t->c, 0);
	assert_non_null(t->d.task_head);
	job = t->d.task_head->arg;
	assert_memory_equal(job->body, "hello", 5);
	assert_string_equal(job->id, "4XyZ1/alice@example.org");
	pt_free(t);
}

static void proto_status(void **state)
{
	struct pt *t = pt_new();
	int c;

	(void)state;
	assert_int_equal(req(t, "LOGIN alice"), 0);
	assert_int_equal(req(t, "STATUS"), 0);
	c = daemon_json_get(t->reply, toks, 0, "counts");
	assert_int_equal(toks[c].size, QUEUE_STATE_COUNT);
	assert_string_equal(text_of(t->reply, daemon_json_get(t->reply, toks, c, "queued")), "1");
	assert_string_equal(text_of(t->reply, daemon_json_get(t->reply, toks, c, "waiting")), "2");
	assert_int_equal(toks[daemon_json_get(t->reply, toks, 0, "workers")].type,
			 DAEMON_JSON_ARRAY);
	assert_int_equal(toks[daemon_json_get(t->reply, toks, 0, "throughput")].type,
			 DAEMON_JSON_OBJECT);
	assert_string_equal(member(t, "pending"), "1");
	assert_string_equal(member(t, "paused"), "false");
	assert_true(daemon_json_num(t->reply, toks, daemon_json_get(t->reply, toks, 0, "pid"), -1) ==
		    (double)getpid());
	pt_free(t);
}

/* A request line as long as the server passes on (DAEMON_LINE_MAX - 1
 * bytes before the newline) with one long word. */
static void proto_long_line(void **state)
{
	struct pt *t = pt_new();
	char line[DAEMON_LINE_MAX];

	(void)state;
	memcpy(line, "LOGIN ", 6);
	memset(line + 6, 'a', sizeof(line) - 7);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(req(t, line), MR_EX_DATAERR);
	memcpy(line, "ENQUEUE ", 8);
	assert_int_equal(req(t, line), 0);
	assert_int_equal(toks[daemon_json_get(t->reply, toks, 0, "invalid")].size, 1);
	pt_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_object_members),
		cmocka_unit_test(json_nested_objects),
		cmocka_unit_test(json_array_of_objects),
		cmocka_unit_test(json_empty_containers),
		cmocka_unit_test(json_string_escapes),
		cmocka_unit_test(json_text_truncates),
		cmocka_unit_test(json_numbers),
		cmocka_unit_test(json_literals),
		cmocka_unit_test(json_malformed),
		cmocka_unit_test(json_token_limit),
		cmocka_unit_test(json_deep_nesting),
		cmocka_unit_test(json_huge_numbers),
		cmocka_unit_test(json_round_trip),
		cmocka_unit_test(proto_ping_and_framing),
		cmocka_unit_test(proto_word_limit),
		cmocka_unit_test(proto_invalid_names_refused),
		cmocka_unit_test(proto_login_and_show),
		cmocka_unit_test(proto_operator_verbs),
		cmocka_unit_test(proto_rights),
		cmocka_unit_test(proto_queue_pieces),
		cmocka_unit_test(proto_queue_pieces_last_moves),
		cmocka_unit_test(proto_status_names),
		cmocka_unit_test(proto_enqueue_lists),
		cmocka_unit_test(proto_queue_count),
		cmocka_unit_test(proto_deliver_arguments),
		cmocka_unit_test(proto_deliver_id),
		cmocka_unit_test(proto_status),
		cmocka_unit_test(proto_long_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
