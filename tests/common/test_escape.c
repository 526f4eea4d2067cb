/* test_escape.c: mr_escape, the one way untrusted bytes reach a terminal or
 * a log line (issue 10: ESC, BEL and newlines from file names reached
 * `show` and the daemon's log as they were). */
#include "tests/testutil.h"

#include <string.h>

static void escapes(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "cur/plain name,S=12:2,S", "cur/plain name,S=12:2,S" },
		{ "\x1b[31mred\x07", "\\x1b[31mred\\x07" },
		{ "line\nforged: line\r\t", "line\\nforged: line\\r\\t" },
		{ "back\\slash", "back\\\\slash" },
		{ "del\x7f", "del\\x7f" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7" },
		{ "bad\xff\xfe", "bad\\xff\\xfe" },
		{ "cut\xc3", "cut\\xc3" },
		{ "c1\xc2\x9b" "31m", "c1\\xc2\\x9b31m" },        /* CSI as C1 */
		{ "overlong\xc0\xaf", "overlong\\xc0\\xaf" },
		{ "surrogate\xed\xa0\x80", "surrogate\\xed\\xa0\\x80" },
		{ "", "" },
	};
	char buf[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(mr_escape(cases[i].in, buf, sizeof(buf)), cases[i].out);
	assert_string_equal(mr_escape(NULL, buf, sizeof(buf)), "");
	assert_string_equal(mr_escape_n("a\0b", 3, buf, sizeof(buf)), "a\\x00b");
}

/* A short buffer cuts at a whole escape, never inside one. */
static void truncation(void **state)
{
	char buf[8];

	(void)state;
	assert_string_equal(mr_escape("abcdefghij", buf, sizeof(buf)), "abcdefg");
	assert_string_equal(mr_escape("abcde\x1b", buf, sizeof(buf)), "abcde");
	assert_string_equal(mr_escape("ab\xe2\x82\xac\xe2\x82\xac", buf, sizeof(buf)),
			    "ab\xe2\x82\xac");
	assert_string_equal(mr_escape("x", buf, 1), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escapes),
		cmocka_unit_test(truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
