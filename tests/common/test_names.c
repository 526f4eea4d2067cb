/* test_names.c: user name validation (docs/LAYOUT.md, "User names"). */
#include "tests/testutil.h"

#include <string.h>

static void valid_names(void **state)
{
	(void)state;
	assert_int_equal(mr_user_name_valid("alice"), 1);
	assert_int_equal(mr_user_name_valid("a"), 1);
	assert_int_equal(mr_user_name_valid("0"), 1);
	assert_int_equal(mr_user_name_valid("bob.smith@example.org"), 1);
	assert_int_equal(mr_user_name_valid("x+tag_1-2"), 1);
}

static void invalid_names(void **state)
{
	static const char *bad[] = {
		"", ".", "..", "../x", "a/b", "/etc", " a", "a b", ".hidden", "-rf",
		"_x", "@x", "+x", "caf\xc3\xa9", "a\tb", "a\nb", "a\\b", "a:b", "a*",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mr_user_name_valid(bad[i]), 0);
	assert_int_equal(mr_user_name_valid(NULL), 0);
}

static void length_limit(void **state)
{
	char name[300];

	(void)state;
	memset(name, 'a', sizeof(name));
	name[255] = '\0';
	assert_int_equal(mr_user_name_valid(name), 1);
	name[255] = 'a';
	name[256] = '\0';
	assert_int_equal(mr_user_name_valid(name), 0);
}

static void relpath_rules(void **state)
{
	(void)state;
	assert_int_equal(mr_relpath_safe("cur/x"), 1);
	assert_int_equal(mr_relpath_safe("./cur/x"), 1);
	assert_int_equal(mr_relpath_safe("cur/"), 1);
	assert_int_equal(mr_relpath_safe("/etc/passwd"), 0);
	assert_int_equal(mr_relpath_safe("../x"), 0);
	assert_int_equal(mr_relpath_safe("a/../../x"), 0);
	assert_int_equal(mr_relpath_safe("a//b"), 0);
	assert_int_equal(mr_relpath_safe(""), 0);
	assert_int_equal(mr_relpath_safe("./"), 0);
	assert_int_equal(mr_relpath_safe("a/./b"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_names),
		cmocka_unit_test(invalid_names),
		cmocka_unit_test(length_limit),
		cmocka_unit_test(relpath_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
