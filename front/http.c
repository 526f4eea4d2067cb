/*
 * http.c: nginx's auth_http (ngx_mail_auth_http_module): the strict parser
 * of the request head nginx sends and the answer in the response headers
 * (front.h, "nginx auth_http"). The parser takes bytes from anyone who
 * reaches the port: every limit is checked before a byte is used, and no
 * input can make it read or write outside its buffers.
 */
#include "front/front_private.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Attempts of one nginx session after which Auth-Wait is left out (nginx's
 * manual: answer without it after 10-20 attempts, so the session ends). */
#define ATTEMPTS_WITH_WAIT 10

/* Copies value (n bytes) into out (size len), %XX decoded when decode.
 * -1 when it does not fit, a %-sequence is broken or decodes to a
 * control byte. */
static int copy_value(const char *v, size_t n, char *out, size_t len, int decode)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)v[i];

		if (decode && c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = mr_hex_digit(v[i + 1]);
			lo = mr_hex_digit(v[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			if (c < 0x20 || c == 0x7f)
				return -1;
			i += 2;
		}
		if (o + 1 >= len)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* The end of the head: the index just past its empty line, or 0. */
static size_t head_end(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* "GET /path HTTP/1.x" */
static int request_line(const char *p, size_t n)
{
	size_t i = 4;

	if (n < 4 || memcmp(p, "GET ", 4) != 0)
		return -1;
	if (i >= n || p[i] != '/')
		return -1;
	while (i < n && p[i] != ' ')
		if ((unsigned char)p[i++] <= 0x20)
			return -1;
	if (n - i != 9 || memcmp(p + i, " HTTP/1.", 8) != 0 || (p[i + 8] != '0' && p[i + 8] != '1'))
		return -1;
	return 0;
}

static int header(struct front_http_req *r, const char *name, size_t nlen, const char *v,
		  size_t vlen, const char **why)
{
	char num[16];
	size_t i;

#define IS(h) (nlen == sizeof(h) - 1 && strncasecmp(name, h, nlen) == 0)
	if (IS("Auth-User")) {
		if (r->have_user) {
			*why = "Auth-User given twice";
			return -1;
		}
		if (copy_value(v, vlen, r->user, sizeof(r->user), 1) < 0) {
			*why = "Auth-User too long or badly escaped";
			return -1;
		}
		r->have_user = 1;
	} else if (IS("Auth-Method")) {
		if (copy_value(v, vlen, r->method, sizeof(r->method), 0) < 0) {
			*why = "Auth-Method too long";
			return -1;
		}
	} else if (IS("Auth-Protocol")) {
		if (copy_value(v, vlen, r->protocol, sizeof(r->protocol), 0) < 0) {
			*why = "Auth-Protocol too long";
			return -1;
		}
	} else if (IS("Client-IP")) {
		if (copy_value(v, vlen, r->client_ip, sizeof(r->client_ip), 0) < 0) {
			*why = "Client-IP too long";
			return -1;
		}
	} else if (IS("Auth-Login-Attempt")) {
		if (vlen == 0 || vlen > 9 || copy_value(v, vlen, num, sizeof(num), 0) < 0) {
			*why = "Auth-Login-Attempt is not a number";
			return -1;
		}
		r->attempt = 0;
		for (i = 0; i < vlen; i++) {
			if (num[i] < '0' || num[i] > '9') {
				*why = "Auth-Login-Attempt is not a number";
				return -1;
			}
			r->attempt = r->attempt * 10 + (unsigned)(num[i] - '0');
		}
	}
#undef IS
	return 0;
}

int front_http_parse(const char *buf, size_t len, struct front_http_req *r, const char **why)
{
	size_t end, pos, eol, n, c, nlines = 0;
	const char *line, *colon;

	memset(r, 0, sizeof(*r));
	*why = "";
	end = head_end(buf, len < FRONT_HTTP_HEAD_MAX ? len : FRONT_HTTP_HEAD_MAX);
	if (end == 0) {
		if (len >= FRONT_HTTP_HEAD_MAX) {
			*why = "request head longer than 8192 bytes";
			return -1;
		}
		if (memchr(buf, '\0', len) != NULL) {
			*why = "a NUL byte in the request";
			return -1;
		}
		return 0;
	}
	for (pos = 0; pos < end; pos = eol + 1) {
		line = buf + pos;
		eol = pos;
		while (buf[eol] != '\n')
			eol++;
		n = eol - pos;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		for (c = 0; c < n; c++)
			if ((unsigned char)line[c] < 0x20 && line[c] != '\t') {
				*why = "a control byte in the request";
				return -1;
			}
		if (pos == 0) {
			if (request_line(line, n) < 0) {
				*why = "not a GET ... HTTP/1.x request line";
				return -1;
			}
			continue;
		}
		if (n == 0)
			break; /* the empty line */
		if (++nlines > FRONT_HTTP_HEADERS_MAX) {
			*why = "more than 64 header lines";
			return -1;
		}
		colon = memchr(line, ':', n);
		if (colon == NULL || colon == line) {
			*why = "a header line without a name";
			return -1;
		}
		for (c = 0; line + c < colon; c++) {
			char ch = line[c];

			if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			      (ch >= '0' && ch <= '9') || ch == '-')) {
				*why = "a header name with a byte outside A-Z a-z 0-9 -";
				return -1;
			}
		}
		c = (size_t)(colon - line) + 1;
		while (c < n && (line[c] == ' ' || line[c] == '\t'))
			c++;
		{
			size_t vend = n;

			while (vend > c && (line[vend - 1] == ' ' || line[vend - 1] == '\t'))
				vend--;
			if (header(r, line, (size_t)(colon - line), line + c, vend - c, why) < 0)
				return -1;
		}
	}
	return 1;
}

/* Status text safe for a header value (no control bytes). */
static void clean(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static size_t refuse(char *out, size_t len, const char *status, int wait)
{
	char s[600];
	int n;

	snprintf(s, sizeof(s), "%s", status);
	clean(s);
	if (wait)
		n = snprintf(out, len, "HTTP/1.0 200 OK\r\nAuth-Status: %s\r\nAuth-Wait: %d\r\n\r\n",
			     s, FRONT_AUTH_WAIT);
	else
		n = snprintf(out, len, "HTTP/1.0 200 OK\r\nAuth-Status: %s\r\n\r\n", s);
	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

size_t front_http_answer(struct front *f, const struct front_http_req *r, char *out, size_t len)
{
	const struct front_backend *b;
	struct front_answer a;
	unsigned port;
	int wait = r->attempt < ATTEMPTS_WITH_WAIT, n;

	if (!r->have_user || front_ask(f, r->user, FRONT_ASK_LOGIN, &a) == FRONT_REFUSED)
		return refuse(out, len, "Invalid login or password", wait);
	if (a.verdict == FRONT_WAIT || a.verdict == FRONT_AWAY)
		return refuse(out, len, a.message, wait);
	/* nginx holds the password of plain and login only; it needs
	 * Auth-Pass for the others, and mailrestore never has one. */
	if (r->method[0] != '\0' && strcasecmp(r->method, "plain") != 0 &&
	    strcasecmp(r->method, "login") != 0)
		return refuse(out, len,
			      "This server takes plain logins only while mailboxes are restored",
			      0);
	b = front_map_find(f, a.user);
	if (b == NULL) {
		mr_log("auth_http: no backend for %s in %s (no line for the user, no \"*\" line)",
		       a.user, f->set.backend_map ? f->set.backend_map : "the backend map");
		return refuse(out, len,
			      "Temporary server problem: mailrestore has no backend for this user "
			      "(see the backend map)",
			      0);
	}
	port = b->port;
	if (strcasecmp(r->protocol, "imap") == 0 && b->imap)
		port = b->imap;
	else if (strcasecmp(r->protocol, "pop3") == 0 && b->pop3)
		port = b->pop3;
	else if (strcasecmp(r->protocol, "smtp") == 0 && b->smtp)
		port = b->smtp;
	n = snprintf(out, len, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: %s\r\n"
			       "Auth-Port: %u\r\n\r\n",
		     b->host, port);
	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}
