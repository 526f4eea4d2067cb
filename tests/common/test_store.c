/*
 * test_store.c: the store formats and a Cyrus spool's layout
 * (common/store.c). The hash letters are those a real Cyrus 3.6 (Debian
 * 12) chose for these users, with hashimapspool and with fulldirhash.
 */
#include "tests/testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void hash_letters_as_cyrus(void **state)
{
	/* user, hashimapspool's letter, fulldirhash's letter (Cyrus 3.6) */
	static const struct {
		const char *user;
		char simple, full;
	} kat[] = {
		{ "bob", 'b', 'E' },     { "j.smith", 'j', 'O' },  { "alice", 'a', 'L' },
		{ "9lives", 'q', 'M' },  { "Zed", 'z', 'L' },      { "x.y.z", 'x', 'F' },
		{ "user12345", 'u', 'N' },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		assert_int_equal(mr_cyrus_hash_char(kat[i].user, 0), kat[i].simple);
		assert_int_equal(mr_cyrus_hash_char(kat[i].user, 1), kat[i].full);
	}
}

static void user_paths(void **state)
{
	char buf[MR_CYRUS_REL_MAX + 1], user[MR_USER_NAME_MAX + 1];

	(void)state;
	assert_string_equal(mr_cyrus_user_rel(MR_CYRUS_HASH_SIMPLE, "j.smith", buf),
			    "j/user/j^smith");
	assert_string_equal(mr_cyrus_user_rel(MR_CYRUS_HASH_FULL, "x.y.z", buf), "F/user/x^y^z");
	assert_string_equal(mr_cyrus_user_rel(MR_CYRUS_HASH_NONE, "bob", buf), "user/bob");
	assert_null(mr_cyrus_user_rel(MR_CYRUS_HASH_SIMPLE, "../x", buf));
	assert_null(mr_cyrus_user_rel(MR_CYRUS_HASH_SIMPLE, "a/b", buf));
	assert_null(mr_cyrus_user_rel(MR_CYRUS_HASH_UNKNOWN, "bob", buf));
	/* names on disk: '^' read as '.', and only valid names are users */
	assert_int_equal(mr_cyrus_user_from_disk("j^smith", user), 1);
	assert_string_equal(user, "j.smith");
	assert_int_equal(mr_cyrus_user_from_disk("^x", user), 0);
	assert_int_equal(mr_cyrus_user_from_disk("a.b", user), 0);   /* never on disk */
	assert_int_equal(mr_cyrus_user_from_disk("a b", user), 0);
	assert_int_equal(mr_cyrus_user_from_disk("..", user), 0);
	assert_int_equal(mr_cyrus_user_from_disk("DELETED", user), 1);
}

static void detection(void **state)
{
	char *dir = tu_tmpdir(), *p;
	enum mr_store_format f;
	int fd;

	(void)state;
	assert_int_equal(mr_store_format_parse("cyrus", &f), 0);
	assert_int_equal(f, MR_FORMAT_CYRUS);
	assert_int_equal(mr_store_format_parse("maildir", &f), 0);
	assert_int_equal(f, MR_FORMAT_MAILDIR);
	assert_int_equal(mr_store_format_parse("mbox", &f), -1);

	/* Maildir users, one of them named "user" */
	tu_write_file(dir, "user/cur/1700000000.M1P1.host:2,S", "x", 1);
	tu_write_file(dir, "bob/cur/1700000000.M1P1.host:2,S", "x", 1);
	fd = tu_open_dir(dir);
	assert_int_equal(mr_store_detect(fd), MR_FORMAT_MAILDIR);
	close(fd);
	tu_rmtree(dir);

	/* hashimapspool */
	dir = tu_tmpdir();
	tu_write_file(dir, "b/user/bob/cyrus.header", "h", 1);
	tu_write_file(dir, "j/user/j^smith/cyrus.header", "h", 1);
	tu_write_file(dir, "j/user/bad name/cyrus.header", "h", 1);
	p = tu_path(dir, "stage.");
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
	fd = tu_open_dir(dir);
	assert_int_equal(mr_store_detect(fd), MR_FORMAT_CYRUS);
	assert_int_equal(mr_cyrus_detect_hash(fd), MR_CYRUS_HASH_SIMPLE);
	{
		char **names = NULL;
		size_t n = 0;
		struct mr_error err = { 0 };

		assert_int_equal(mr_cyrus_list_users(fd, MR_CYRUS_HASH_SIMPLE, &names, &n, &err), 0);
		assert_int_equal(n, 2);
		assert_string_equal(names[0], "bob");
		assert_string_equal(names[1], "j.smith");
		mr_names_free(names, n);
	}
	close(fd);
	tu_rmtree(dir);

	/* fulldirhash, and no hash at all */
	dir = tu_tmpdir();
	tu_write_file(dir, "E/user/bob/cyrus.header", "h", 1);
	fd = tu_open_dir(dir);
	assert_int_equal(mr_cyrus_detect_hash(fd), MR_CYRUS_HASH_FULL);
	close(fd);
	tu_rmtree(dir);
	dir = tu_tmpdir();
	tu_write_file(dir, "user/bob/cyrus.header", "h", 1);
	fd = tu_open_dir(dir);
	assert_int_equal(mr_store_detect(fd), MR_FORMAT_CYRUS);
	assert_int_equal(mr_cyrus_detect_hash(fd), MR_CYRUS_HASH_NONE);
	close(fd);
	tu_rmtree(dir);
	/* a spool's user/ folder itself: its users right there */
	dir = tu_tmpdir();
	tu_write_file(dir, "bob/cyrus.header", "h", 1);
	tu_write_file(dir, "j^smith/cyrus.header", "h", 1);
	fd = tu_open_dir(dir);
	assert_int_equal(mr_store_detect(fd), MR_FORMAT_CYRUS);
	assert_int_equal(mr_cyrus_detect_hash(fd), MR_CYRUS_HASH_FLAT);
	{
		char **names = NULL, buf[MR_CYRUS_REL_MAX + 1];
		size_t n = 0;
		struct mr_error err = { 0 };

		assert_int_equal(mr_cyrus_list_users(fd, MR_CYRUS_HASH_FLAT, &names, &n, &err), 0);
		assert_int_equal(n, 2);
		assert_string_equal(names[1], "j.smith");
		mr_names_free(names, n);
		assert_string_equal(mr_cyrus_user_rel(MR_CYRUS_HASH_FLAT, "j.smith", buf), "j^smith");
	}
	close(fd);
	tu_rmtree(dir);
	/* an empty spool: unknown */
	dir = tu_tmpdir();
	fd = tu_open_dir(dir);
	assert_int_equal(mr_cyrus_detect_hash(fd), MR_CYRUS_HASH_UNKNOWN);
	assert_int_equal(mr_store_detect(fd), MR_FORMAT_MAILDIR);
	close(fd);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hash_letters_as_cyrus),
		cmocka_unit_test(user_paths),
		cmocka_unit_test(detection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
