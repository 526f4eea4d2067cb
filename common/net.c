/*
 * net.c: network addresses for the listeners: --allow CIDR rules and their
 * check against a peer, and "ADDR:PORT" split for getaddrinfo (common.h).
 */
#include "common/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int mr_cidr_parse(const char *s, struct mr_cidr *c, struct mr_error *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long bits;
	char *end;
	int max, i;

	memset(c, 0, sizeof(*c));
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		goto bad;
	}
	bits = (unsigned long)max;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9')
			goto bad;
		errno = 0;
		bits = strtoul(slash + 1, &end, 10);
		if (errno != 0 || *end != '\0' || bits > (unsigned long)max)
			goto bad;
	}
	c->bits = (int)bits;
	for (i = c->bits; i < max; i++)
		c->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
	return 0;
bad:
	mr_error_set(err, EINVAL, "not an address or network (CIDR): %s", s);
	return -1;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	return rest == 0 || ((a[full] ^ b[full]) & (unsigned char)(0xff00u >> rest)) == 0;
}

int mr_cidr_match(const struct mr_cidr *rules, size_t n, const void *sa)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const struct sockaddr *s = sa;
	unsigned char v4[4], v6[16];
	int have4 = 0, have6 = 0;
	size_t i;

	if (s->sa_family == AF_INET) {
		memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		have4 = 1;
	} else if (s->sa_family == AF_INET6) {
		memcpy(v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		have6 = 1;
		if (memcmp(v6, mapped, 12) == 0) {
			memcpy(v4, v6 + 12, 4);
			have4 = 1;
		}
	}
	for (i = 0; i < n; i++) {
		if (rules[i].family == AF_INET && have4 && prefix_equal(v4, rules[i].addr, rules[i].bits))
			return 1;
		if (rules[i].family == AF_INET6 && have6 &&
		    prefix_equal(v6, rules[i].addr, rules[i].bits))
			return 1;
	}
	return 0;
}

int mr_hostport_split(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
		      struct mr_error *err)
{
	const char *colon, *h = s, *he;

	if (s[0] == '[') {
		he = strchr(s, ']');
		if (he == NULL || he[1] != ':')
			goto bad;
		h = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			goto bad;
		he = colon;
	}
	if (he == h || (size_t)(he - h) >= hostlen || colon[1] == '\0' ||
	    strlen(colon + 1) >= portlen || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		goto bad;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
bad:
	mr_error_set(err, EINVAL, "not ADDR:PORT (IPv6 as [ADDR]:PORT): %s", s);
	return -1;
}
