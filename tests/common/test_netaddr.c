/* test_netaddr.c: HOST:PORT, ADDR:PORT and CIDR networks (common/netaddr.c):
 * the daemon's --listen and --allow, the clients' --connect. */
#include "tests/testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static void hostport(void **state)
{
	char host[MR_HOST_MAX];
	unsigned port;

	(void)state;
	assert_int_equal(mr_hostport_split("127.0.0.2:7790", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.2");
	assert_int_equal(port, 7790);
	assert_int_equal(mr_hostport_split("[::1]:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 1);
	assert_int_equal(mr_hostport_split("store.example:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "store.example");
	assert_int_equal(port, 65535);
}

static void hostport_refused(void **state)
{
	static const char *bad[] = {
		"", "7790", ":7790", "host:", "host:0", "host:65536", "host:77x", "host:-1",
		"::1:7790", "[::1]7790", "[::1]", "[]:7790", "host: 7790", "[::1:7790",
	};
	char host[MR_HOST_MAX], small[4];
	unsigned port;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mr_hostport_split(bad[i], host, sizeof(host), &port), -1);
	/* a host longer than the caller's buffer */
	assert_int_equal(mr_hostport_split("abcd:1", small, sizeof(small), &port), -1);
}

static void sockaddr_parse(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	char text[MR_ADDR_TEXT_MAX];
	unsigned len;

	(void)state;
	assert_int_equal(mr_sockaddr_parse("127.0.0.2:7790", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(*v4));
	assert_int_equal(ntohs(v4->sin_port), 7790);
	assert_int_equal(ntohl(v4->sin_addr.s_addr), 0x7f000002);
	assert_string_equal(mr_sockaddr_text((struct sockaddr *)&ss, text, sizeof(text)),
			    "127.0.0.2:7790");
	assert_int_equal(mr_sockaddr_parse("[::1]:7790", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(*v6));
	assert_int_equal(ntohs(v6->sin6_port), 7790);
	assert_string_equal(mr_sockaddr_text((struct sockaddr *)&ss, text, sizeof(text)),
			    "[::1]:7790");
	/* numeric only: a name, an IPv6 address without brackets, IPv4 in
	 * brackets */
	assert_int_equal(mr_sockaddr_parse("localhost:7790", &ss, &len), -1);
	assert_int_equal(mr_sockaddr_parse("[127.0.0.1]:7790", &ss, &len), -1);
	assert_int_equal(mr_sockaddr_parse("::1:7790", &ss, &len), -1);
	assert_int_equal(mr_sockaddr_parse("127.0.0.256:7790", &ss, &len), -1);
	/* an IPv4 peer on an IPv6 socket is written as IPv4 */
	assert_int_equal(mr_sockaddr_parse("[::ffff:10.1.2.3]:25", &ss, &len), 0);
	assert_string_equal(mr_sockaddr_text((struct sockaddr *)&ss, text, sizeof(text)),
			    "10.1.2.3:25");
}

/* 1 when text ("ADDR:PORT") lies in cidr. */
static int in(const char *cidr, const char *text)
{
	struct mr_cidr c;
	struct sockaddr_storage ss;
	unsigned len;

	assert_int_equal(mr_cidr_parse(cidr, &c), 0);
	assert_int_equal(mr_sockaddr_parse(text, &ss, &len), 0);
	return mr_cidr_match(&c, (struct sockaddr *)&ss);
}

static void cidr_match(void **state)
{
	(void)state;
	assert_int_equal(in("127.0.0.2/32", "127.0.0.2:1"), 1);
	assert_int_equal(in("127.0.0.2/32", "127.0.0.9:1"), 0);
	assert_int_equal(in("127.0.0.2", "127.0.0.2:1"), 1);     /* bare = /32 */
	assert_int_equal(in("127.0.0.2", "127.0.0.3:1"), 0);
	assert_int_equal(in("10.0.0.0/8", "10.255.1.2:1"), 1);
	assert_int_equal(in("10.0.0.0/8", "11.0.0.1:1"), 0);
	assert_int_equal(in("192.168.4.0/22", "192.168.7.255:1"), 1); /* within a byte */
	assert_int_equal(in("192.168.4.0/22", "192.168.8.0:1"), 0);
	assert_int_equal(in("192.168.4.0/22", "192.168.3.255:1"), 0);
	assert_int_equal(in("0.0.0.0/0", "203.0.113.7:1"), 1);
	assert_int_equal(in("0.0.0.0/0", "[::1]:1"), 0);            /* families apart */
	assert_int_equal(in("::1", "[::1]:1"), 1);                  /* bare = /128 */
	assert_int_equal(in("::1", "[::2]:1"), 0);
	assert_int_equal(in("2001:db8::/32", "[2001:db8:ffff::1]:1"), 1);
	assert_int_equal(in("2001:db8::/32", "[2001:db9::1]:1"), 0);
	assert_int_equal(in("2001:db8:80::/41", "[2001:db8:ff::1]:1"), 1);
	assert_int_equal(in("2001:db8:80::/41", "[2001:db8:7f::1]:1"), 0);
	assert_int_equal(in("::/0", "127.0.0.1:1"), 0);
	/* an IPv4 peer seen through an IPv6 socket matches IPv4 networks */
	assert_int_equal(in("10.1.0.0/16", "[::ffff:10.1.2.3]:1"), 1);
	assert_int_equal(in("10.1.0.0/16", "[::ffff:10.2.2.3]:1"), 0);
}

static void cidr_refused(void **state)
{
	static const char *bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/8x", "10.0.0/8",
		"host/8", "10.0.0.1/8",      /* bits set below the prefix */
		"2001:db8::1/32", "10.0.0.0/-1", "10.0.0.0 /8",
	};
	struct mr_cidr c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mr_cidr_parse(bad[i], &c), -1);
	assert_int_equal(mr_cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.bits, 8);
	assert_int_equal(mr_cidr_parse("2001:db8::/32", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.bits, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostport),
		cmocka_unit_test(hostport_refused),
		cmocka_unit_test(sockaddr_parse),
		cmocka_unit_test(cidr_match),
		cmocka_unit_test(cidr_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
