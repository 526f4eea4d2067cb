/* test_le.c: the little-endian codec of the on-disk formats (held mail,
 * delivery ids, the queue journal) against known bytes. */
#include "tests/testutil.h"

#include <string.h>

static void known_bytes(void **state)
{
	static const unsigned char want[8] = { 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
	unsigned char b[9];

	(void)state;
	memset(b, 0xee, sizeof(b));
	mr_put_le(b, 0x0102030405060708ull, 8);
	assert_memory_equal(b, want, 8);
	assert_int_equal(b[8], 0xee);
	assert_true(mr_get_le(b, 8) == 0x0102030405060708ull);
	assert_true(mr_get_le(b, 4) == 0x05060708u);
	assert_true(mr_get_le(b, 2) == 0x0708u);
	assert_true(mr_get_le(b, 1) == 0x08u);
}

/* Only the low bytes are stored; the bytes after them are not touched. */
static void narrow_fields(void **state)
{
	unsigned char b[4] = { 0xee, 0xee, 0xee, 0xee };

	(void)state;
	mr_put_le(b, 0xffffabcdu, 2);
	assert_int_equal(b[0], 0xcd);
	assert_int_equal(b[1], 0xab);
	assert_int_equal(b[2], 0xee);
	assert_true(mr_get_le(b, 2) == 0xabcdu);
	mr_put_le(b, UINT64_MAX, 4);
	assert_true(mr_get_le(b, 4) == 0xffffffffu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(known_bytes),
		cmocka_unit_test(narrow_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
