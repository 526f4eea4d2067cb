/*
 * netaddr.c: network addresses as operators write them: HOST:PORT and
 * [IPV6]:PORT (the daemon's --listen, the clients' --connect) and CIDR
 * networks (the daemon's --allow), and the one check of a peer's address
 * against a network. Plain libc: the lean login hook links it.
 */
#include "common/common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Splits HOST:PORT (see common.h). */
int mr_hostport_split(const char *s, char *host, size_t len, unsigned *port_r)
{
	const char *colon, *h = s, *end;
	uint64_t port;
	size_t n;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		h = s + 1;
		n = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1; /* an IPv6 address needs its brackets */
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= len || n >= MR_HOST_MAX || mr_parse_u64(colon + 1, &port) < 0 ||
	    port < 1 || port > 65535)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	*port_r = (unsigned)port;
	return 0;
}

/* A numeric ADDR:PORT (see common.h). */
int mr_sockaddr_parse(const char *s, struct sockaddr_storage *ss, unsigned *len_r)
{
	char host[MR_HOST_MAX];
	unsigned port;
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (mr_hostport_split(s, host, sizeof(host), &port) < 0)
		return -1;
	if (s[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len_r = sizeof(*v4);
		return 0;
	}
	if (s[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*v6);
		return 0;
	}
	return -1;
}

/* The address bytes of sa and their family, an IPv4-mapped IPv6 address
 * taken as IPv4. Returns the family, or 0 for another kind of address. */
static int addr_bytes(const struct sockaddr *sa, const unsigned char **p_r)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family == AF_INET) {
		*p_r = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	*p_r = v6->sin6_addr.s6_addr;
	if (memcmp(*p_r, mapped, sizeof(mapped)) == 0) {
		*p_r += 12;
		return AF_INET;
	}
	return AF_INET6;
}

/* As "ADDR:PORT" (see common.h). */
const char *mr_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	const unsigned char *p = NULL;
	unsigned port = 0;
	int fam = addr_bytes(sa, &p);

	if (sa->sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	else if (sa->sa_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	if (fam == 0 || inet_ntop(fam, p, a, sizeof(a)) == NULL)
		snprintf(buf, len, "(address family %d)", (int)sa->sa_family);
	else if (fam == AF_INET)
		snprintf(buf, len, "%s:%u", a, port);
	else
		snprintf(buf, len, "[%s]:%u", a, port);
	return buf;
}

/* Parses a CIDR network (see common.h). */
int mr_cidr_parse(const char *s, struct mr_cidr *c)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s), bytes, i;
	uint64_t bits;

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(addr))
		return -1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		bytes = 4;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		bytes = 16;
	} else {
		return -1;
	}
	bits = bytes * 8;
	if (slash != NULL && (mr_parse_u64(slash + 1, &bits) < 0 || bits > bytes * 8))
		return -1;
	c->bits = (unsigned)bits;
	/* Host bits set: refused rather than silently widened. */
	for (i = 0; i < bytes; i++) {
		unsigned keep = c->bits >= (i + 1) * 8 ? 8 : c->bits > i * 8 ? c->bits - i * 8 : 0;
		unsigned char mask = (unsigned char)(keep == 0 ? 0 : 0xff << (8 - keep));

		if (c->addr[i] & (unsigned char)~mask)
			return -1;
	}
	return 0;
}

/* Whether sa lies in c (see common.h). */
int mr_cidr_match(const struct mr_cidr *c, const struct sockaddr *sa)
{
	const unsigned char *p = NULL;
	unsigned full = c->bits / 8, rest = c->bits % 8;

	if (addr_bytes(sa, &p) != c->family)
		return 0;
	if (memcmp(p, c->addr, full) != 0)
		return 0;
	return rest == 0 ||
	       ((p[full] ^ c->addr[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}
