/*
 * test_net.c: common/net.c (--allow rules and their match, ADDR:PORT) and
 * common/snapshot.c (what a client last learned).
 */
#include "tests/testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sockaddr_storage v4(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &s->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, a, &s->sin6_addr), 1);
	return ss;
}

static void cidr_rules(void **state)
{
	static const char *const bad[] = { "", "10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "x",
					   "::1/129", "10.0.0.0/8x", "/8", "10.0.0.0/-1" };
	struct mr_cidr r[3];
	struct sockaddr_storage ss;
	struct mr_error err;
	size_t i;

	(void)state;
	assert_int_equal(mr_cidr_parse("10.1.2.3/8", &r[0], &err), 0);
	assert_int_equal(mr_cidr_parse("2001:db8::/32", &r[1], &err), 0);
	assert_int_equal(mr_cidr_parse("192.0.2.7", &r[2], &err), 0);
	ss = v4("10.200.0.1");
	assert_true(mr_cidr_match(r, 3, &ss));
	ss = v4("11.0.0.1");
	assert_false(mr_cidr_match(r, 3, &ss));
	ss = v4("192.0.2.7");
	assert_true(mr_cidr_match(r, 3, &ss));
	ss = v4("192.0.2.8");
	assert_false(mr_cidr_match(r, 3, &ss));
	ss = v6("2001:db8:ffff::1");
	assert_true(mr_cidr_match(r, 3, &ss));
	ss = v6("2001:db9::1");
	assert_false(mr_cidr_match(r, 3, &ss));
	/* An IPv4 peer on an IPv6 socket matches the IPv4 rules. */
	ss = v6("::ffff:10.9.9.9");
	assert_true(mr_cidr_match(r, 3, &ss));
	ss = v6("::ffff:11.9.9.9");
	assert_false(mr_cidr_match(r, 3, &ss));
	/* No rules: nobody. /0: everybody of its family. */
	assert_false(mr_cidr_match(r, 0, &ss));
	assert_int_equal(mr_cidr_parse("0.0.0.0/0", &r[0], &err), 0);
	ss = v4("203.0.113.9");
	assert_true(mr_cidr_match(r, 1, &ss));
	ss = v6("::1");
	assert_false(mr_cidr_match(r, 1, &ss));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mr_cidr_parse(bad[i], &r[0], &err) == 0)
			fail_msg("accepted %s", bad[i]);
}

static void host_and_port(void **state)
{
	static const char *const bad[] = { "127.0.0.1", "127.0.0.1:", ":25", "::1:25",
					   "[::1]25", "[::1]:", "host:2x5" };
	char host[64], port[16];
	struct mr_error err;
	size_t i;

	(void)state;
	assert_int_equal(mr_hostport_split("127.0.0.1:10025", host, sizeof(host), port,
					   sizeof(port), &err), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_string_equal(port, "10025");
	assert_int_equal(mr_hostport_split("[::1]:143", host, sizeof(host), port, sizeof(port),
					   &err), 0);
	assert_string_equal(host, "::1");
	assert_string_equal(port, "143");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mr_hostport_split(bad[i], host, sizeof(host), port, sizeof(port), &err) == 0)
			fail_msg("accepted %s", bad[i]);
}

static void snapshot_markers(void **state)
{
	char *dir = tu_tmpdir(), *snap = tu_path(dir, "snap");
	struct mr_error err;
	int fd;

	(void)state;
	assert_int_equal(mr_snapshot_open(snap, 0, &err), -1);
	fd = mr_snapshot_open(snap, 1, &err);
	assert_true(fd >= 0);
	assert_int_equal(mr_snapshot_get(fd, "alice"), MR_SNAP_NONE);
	assert_int_equal(mr_snapshot_put(fd, "alice", MR_SNAP_UNAFFECTED, &err), 0);
	assert_int_equal(mr_snapshot_get(fd, "alice"), MR_SNAP_UNAFFECTED);
	/* Active wins and stays: never marked otherwise afterwards. */
	assert_int_equal(mr_snapshot_put(fd, "alice", MR_SNAP_ACTIVE, &err), 0);
	assert_int_equal(mr_snapshot_put(fd, "alice", MR_SNAP_UNAFFECTED, &err), 0);
	assert_int_equal(mr_snapshot_get(fd, "alice"), MR_SNAP_ACTIVE);
	/* Names that are no user names are never paths. */
	assert_int_equal(mr_snapshot_put(fd, "../x", MR_SNAP_ACTIVE, &err), -1);
	assert_int_equal(mr_snapshot_get(fd, "../active/alice"), MR_SNAP_NONE);
	assert_int_equal(mr_snapshot_get(-1, "alice"), MR_SNAP_NONE);
	/* A symlink planted as a marker is not one. */
	assert_int_equal(tu_sh("ln -s /etc/passwd '%s/active/mallory'", snap), 0);
	assert_int_equal(mr_snapshot_get(fd, "mallory"), MR_SNAP_NONE);
	assert_int_equal(mr_snapshot_put(fd, "mallory", MR_SNAP_ACTIVE, &err), -1);
	close(fd);
	free(snap);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cidr_rules),
		cmocka_unit_test(host_and_port),
		cmocka_unit_test(snapshot_markers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
