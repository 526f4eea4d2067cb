/* test_client.c: what the daemon's clients share (cli/client.c): the option
 * parser, a reply's status and members, the estimate as people read it. */
#include "tests/testutil.h"
#include "cli/cli_private.h"

#include <stdlib.h>
#include <string.h>

/* Options anywhere before "--", operands kept in order in place. */
static void options_anywhere_operands_in_order(void **state)
{
	char *argv[] = { "show", "alice", "--json", "--socket", "/s", "bob", "--", "--max", "-x",
			 NULL };
	struct cli_opts o;

	(void)state;
	setenv("MAILRESTORE_SOCKET", "/env.sock", 1);
	assert_int_equal(cli_parse_opts("show", 9, argv, CLI_OPT_JSON | CLI_OPT_MAX, &o), 0);
	assert_int_equal(o.json, 1);
	assert_string_equal(o.socket, "/s");
	assert_int_equal(o.max, 0);
	assert_int_equal(o.nargs, 4);
	assert_string_equal(o.args[0], "alice");
	assert_string_equal(o.args[1], "bob");
	assert_string_equal(o.args[2], "--max");
	assert_string_equal(o.args[3], "-x");
	assert_ptr_equal(o.args, argv + 1);
}

/* The default socket comes from the environment; "-" is an operand; a
 * number for --max; --socket=PATH. */
static void defaults_and_values(void **state)
{
	char *a1[] = { "queue", "--max", "5", "-", NULL };
	char *a2[] = { "status", "--socket=/x.sock", NULL };
	struct cli_opts o;

	(void)state;
	setenv("MAILRESTORE_SOCKET", "/env.sock", 1);
	assert_int_equal(cli_parse_opts("queue", 4, a1, CLI_OPT_MAX, &o), 0);
	assert_string_equal(o.socket, "/env.sock");
	assert_int_equal(o.max, 5);
	assert_int_equal(o.nargs, 1);
	assert_string_equal(o.args[0], "-");
	unsetenv("MAILRESTORE_SOCKET");
	assert_int_equal(cli_parse_opts("status", 2, a2, 0, &o), 0);
	assert_string_equal(o.socket, "/x.sock");
	assert_int_equal(o.nargs, 0);
}

/* An option the subcommand does not take, a --max that is no number, an
 * option missing its value: usage errors. */
static void refused_options(void **state)
{
	char *a1[] = { "login", "--prometheus", "alice", NULL };
	char *a2[] = { "queue", "--max", "many", NULL };
	char *a3[] = { "enqueue", "--file", NULL };
	struct cli_opts o;

	(void)state;
	assert_int_equal(cli_parse_opts("login", 3, a1, CLI_OPT_JSON | CLI_OPT_TARGET, &o), -1);
	assert_int_equal(cli_parse_opts("queue", 3, a2, CLI_OPT_MAX, &o), -1);
	assert_int_equal(cli_parse_opts("enqueue", 2, a3, CLI_OPT_FILE, &o), -1);
}

static int parse(const char *json, struct cli_reply *r)
{
	char *text = strdup(json);

	assert_non_null(text);
	return cli_parse_reply("test", text, r);
}

/* "ok":true is 0; a refusal is its code; anything else is 70. */
static void reply_status_codes(void **state)
{
	struct cli_reply r;

	(void)state;
	assert_int_equal(parse("{\"ok\":true,\"n\":3}", &r), 0);
	cli_reply_free(&r);
	assert_int_equal(parse("{\"ok\":false,\"error\":\"not an affected user\",\"code\":67}", &r),
			 67);
	cli_reply_free(&r);
	assert_int_equal(parse("{\"ok\":false,\"code\":300}", &r), MR_EX_SOFTWARE);
	cli_reply_free(&r);
	assert_int_equal(parse("[1,2]", &r), MR_EX_SOFTWARE);
	cli_reply_free(&r);
	assert_int_equal(parse("{\"ok\":tru", &r), MR_EX_SOFTWARE);
	cli_reply_free(&r);
}

/* Members by name; strings escaped for a terminal; null and missing read
 * as "" or the default. */
static void reply_members(void **state)
{
	struct cli_reply r;
	char buf[128];

	(void)state;
	assert_int_equal(parse("{\"ok\":true,\"user\":\"a\\u001b[2Jb\",\"n\":2.5,\"z\":null,"
			       "\"o\":{\"k\":7}}",
			       &r),
			 0);
	assert_string_equal(cli_str(&r, 0, "user", buf, sizeof(buf)), "a\\x1b[2Jb");
	assert_true(cli_num(&r, 0, "n", -1) == 2.5);
	assert_true(cli_num(&r, 0, "missing", -1) == -1);
	assert_true(cli_num(&r, 0, "z", -1) == -1);
	assert_string_equal(cli_str(&r, 0, "z", buf, sizeof(buf)), "");
	assert_string_equal(cli_str(&r, 0, "missing", buf, sizeof(buf)), "");
	assert_true(cli_num(&r, cli_get(&r, 0, "o"), "k", 0) == 7);
	assert_int_equal(cli_get(&r, 0, "missing"), -1);
	cli_reply_free(&r);
	cli_reply_free(&r);
}

/* The estimate as people read it. */
static void estimates_in_words(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(cli_fmt_eta(100, "paused", buf, sizeof(buf)), "paused");
	assert_string_equal(cli_fmt_eta(-1, "estimating", buf, sizeof(buf)), "estimating");
	assert_string_equal(cli_fmt_eta(-1, "none", buf, sizeof(buf)), "no estimate");
	assert_non_null(strstr(cli_fmt_eta(25 * 60, "estimate", buf, sizeof(buf)), "25 minutes"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(options_anywhere_operands_in_order),
		cmocka_unit_test(defaults_and_values),
		cmocka_unit_test(refused_options),
		cmocka_unit_test(reply_status_codes),
		cmocka_unit_test(reply_members),
		cmocka_unit_test(estimates_in_words),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
