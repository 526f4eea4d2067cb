/* test_login.c: the login hook's answer from T without a daemon
 * (cli_disk_verdict in cli/cmd_login.c): activation records, and the sorted
 * list of affected users searched by byte offsets. */
#include "tests/testutil.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes T/.mailrestore/affected with names[0..n) sorted, one a line. */
static void write_affected(const char *t, char **names, size_t n)
{
	size_t i, len = 0, cap = 1;
	char *buf;

	for (i = 0; i < n; i++)
		cap += strlen(names[i]) + 1;
	buf = malloc(cap);
	assert_non_null(buf);
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(buf + len, "%s\n", names[i]);
	tu_write_file(t, ".mailrestore/affected", buf, len);
	free(buf);
}

static int verdict(const char *t, const char *user, int *active_r)
{
	*active_r = -1;
	return cli_disk_verdict(t, user, active_r);
}

/* Every listed name is found wherever it lies in the file (first, last,
 * around the binary search's probes, names that are prefixes of others,
 * the longest names), and no name between them is. */
static void affected_list_is_searched_exactly(void **state)
{
	char *t = tu_tmpdir();
	char *names[2003], absent[MR_USER_NAME_MAX + 8];
	size_t n = 0, i;
	int active;

	(void)state;
	for (i = 0; i < 2000; i++) {
		names[n] = malloc(32);
		assert_non_null(names[n]);
		snprintf(names[n++], 32, "user%zu", i * 3);
	}
	names[n] = malloc(MR_USER_NAME_MAX + 1);
	assert_non_null(names[n]);
	memset(names[n], 'z', MR_USER_NAME_MAX);
	names[n++][MR_USER_NAME_MAX] = '\0';
	names[n++] = strdup("a");
	names[n++] = strdup("user1");
	write_affected(t, names, n);

	for (i = 0; i < n; i++)
		assert_int_equal(verdict(t, names[i], &active), 0);
	assert_int_equal(active, 0);
	for (i = 0; i < 2000; i++) {
		snprintf(absent, sizeof(absent), "user%zu", i * 3 + 1);
		if (strcmp(absent, "user1") == 0)
			continue;
		assert_int_equal(verdict(t, absent, &active), 1);
		snprintf(absent, sizeof(absent), "user%zux", i * 3);
		assert_int_equal(verdict(t, absent, &active), 1);
	}
	assert_int_equal(verdict(t, "0", &active), 1);
	assert_int_equal(verdict(t, "user", &active), 1);
	memset(absent, 'z', MR_USER_NAME_MAX - 1);
	absent[MR_USER_NAME_MAX - 1] = '\0';
	assert_int_equal(verdict(t, absent, &active), 1);
	for (i = 0; i < n; i++)
		free(names[i]);
	tu_rmtree(t);
}

/* An activation record counts only with T/<user> a folder beside it. */
static void activation_record_needs_the_mailbox(void **state)
{
	char *t = tu_tmpdir(), *names[2] = { strdup("alice"), strdup("bob") };
	int active;

	(void)state;
	write_affected(t, names, 2);
	tu_write_file(t, ".mailrestore/active/alice", "", 0);
	tu_write_file(t, ".mailrestore/active/bob", "", 0);
	tu_write_file(t, "alice/cur/1.M1:2,S", "m", 1);
	tu_write_file(t, "bob", "not a folder", 12);
	assert_int_equal(verdict(t, "alice", &active), 1);
	assert_int_equal(active, 1);
	assert_int_equal(verdict(t, "bob", &active), 0);
	assert_int_equal(active, 0);
	free(names[0]);
	free(names[1]);
	tu_rmtree(t);
}

/* Without the list nobody can be said untouched; without T, -1. */
static void no_list_no_target(void **state)
{
	char *t = tu_tmpdir(), *missing = tu_path(t, "nowhere"), *home = tu_path(t, "carol");
	int active;

	(void)state;
	assert_int_equal(verdict(t, "carol", &active), 0);
	assert_int_equal(active, 0);
	tu_write_file(t, ".mailrestore/active/carol", "", 0);
	assert_int_equal(mkdir(home, 0700), 0);
	assert_int_equal(verdict(t, "carol", &active), 1);
	assert_int_equal(active, 1);
	assert_int_equal(cli_disk_verdict(missing, "carol", &active), -1);
	free(missing);
	free(home);
	tu_rmtree(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(affected_list_is_searched_exactly),
		cmocka_unit_test(activation_record_needs_the_mailbox),
		cmocka_unit_test(no_list_no_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
