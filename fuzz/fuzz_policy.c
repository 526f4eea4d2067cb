/*
 * fuzz_policy.c: libFuzzer target for Postfix's policy delegation parser
 * (front/policy.c). The input is the bytes a peer sends on one connection:
 * requests are parsed one after another as the server does, each answered
 * by a front whose daemon cannot be reached and that has no snapshot. Every
 * answer must be one "action=..." line and the empty line, and a request
 * never uses more bytes than it was given.
 *
 * Seeds: printf 'request=smtpd_access_policy\nrecipient=alice@example.org\n\n'
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
	struct front_policy_req r;
	const char *why;
	char out[1024];
	size_t pos = 0, n;
	long used;

	while (pos < size) {
		used = front_policy_parse((const char *)data + pos, size - pos, &r, &why);
		if (used <= 0)
			break;
		if ((size_t)used > size - pos)
			abort();
		n = front_policy_answer(front_away(), &r, out, sizeof(out));
		if (n < 9 || strncmp(out, "action=", 7) != 0 || strcmp(out + n - 2, "\n\n") != 0 ||
		    memchr(out, '\n', n) != out + n - 2)
			abort();
		pos += (size_t)used;
	}
	return 0;
}
