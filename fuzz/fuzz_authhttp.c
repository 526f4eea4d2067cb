/*
 * fuzz_authhttp.c: libFuzzer target for nginx's auth_http request parser
 * (front/http.c). The input is the bytes a peer sends; every prefix is
 * parsed as the server sees it arrive, and a whole head that parses is
 * answered by a front whose daemon cannot be reached and that has no
 * snapshot (so the answer path runs without a network). An answer must be
 * one HTTP/1.0 response with an Auth-Status header and no byte below 0x20
 * inside a header value.
 *
 * Seeds: printf 'GET /auth HTTP/1.0\r\nAuth-User: alice\r\nAuth-Method: plain\r\n\r\n'
 */
#include "front/front.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct front *front_away(void)
{
	static struct front *f;
	struct front_settings s;
	struct mr_error err;

	if (f == NULL) {
		mr_log_quiet = 1;
		front_settings_init(&s);
		s.daemon.socket = "/nonexistent/mailrestore-fuzz.sock";
		if (front_new(&s, &f, &err) < 0)
			abort();
	}
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct front_http_req r;
	const char *why;
	char out[2048];
	size_t n, i;
	int rc = 0;

	for (i = 0; i <= size && rc == 0; i += 1 + i / 4)
		rc = front_http_parse((const char *)data, i, &r, &why);
	rc = front_http_parse((const char *)data, size, &r, &why);
	if (rc < 0 && why[0] == '\0')
		abort();
	if (rc != 1)
		return 0;
	if (strnlen(r.user, sizeof(r.user)) == sizeof(r.user))
		abort();
	n = front_http_answer(front_away(), &r, out, sizeof(out));
	if (n == 0 || n >= sizeof(out) || strncmp(out, "HTTP/1.0 200 OK\r\nAuth-Status: ", 30) != 0 ||
	    strcmp(out + n - 4, "\r\n\r\n") != 0)
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 && out[i] != '\r' && out[i] != '\n')
			abort();
	return 0;
}
