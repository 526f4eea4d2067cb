/*
 * policy.c: Postfix's SMTP access policy delegation (front.h, "Postfix
 * policy delegation"): the strict parser of one request ("name=value"
 * lines, an empty line) and the action for its recipient. Bytes come from
 * whoever reaches the port: every limit is checked before a byte is used.
 */
#include "front/front_private.h"

#include <stdio.h>
#include <string.h>

static int copy(const char *v, size_t n, char *out, size_t len)
{
	if (n + 1 > len)
		return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

long front_policy_parse(const char *buf, size_t len, struct front_policy_req *r,
			const char **why)
{
	size_t pos = 0, eol, n, c, lines = 0, lim = len < FRONT_POLICY_REQUEST_MAX
							   ? len
							   : FRONT_POLICY_REQUEST_MAX;
	const char *line, *eq, *nl;
	int have_request = 0;

	memset(r, 0, sizeof(*r));
	*why = "";
	for (;;) {
		nl = pos < lim ? memchr(buf + pos, '\n', lim - pos) : NULL;
		if (nl == NULL) {
			if (len >= FRONT_POLICY_REQUEST_MAX) {
				*why = "policy request longer than 16384 bytes";
				return -1;
			}
			if (memchr(buf + pos, '\0', len - pos) != NULL) {
				*why = "a NUL byte in the request";
				return -1;
			}
			return 0;
		}
		eol = (size_t)(nl - buf);
		line = buf + pos;
		n = eol - pos;
		pos = eol + 1;
		if (n == 0)
			break;
		if (++lines > FRONT_POLICY_ATTRS_MAX) {
			*why = "more than 128 attributes";
			return -1;
		}
		for (c = 0; c < n; c++)
			if ((unsigned char)line[c] < 0x20 || line[c] == 0x7f) {
				*why = "a control byte in the request";
				return -1;
			}
		eq = memchr(line, '=', n);
		if (eq == NULL || eq == line) {
			*why = "a line that is not name=value";
			return -1;
		}
		for (c = 0; line + c < eq; c++) {
			char ch = line[c];

			if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
				*why = "an attribute name outside a-z 0-9 _";
				return -1;
			}
		}
		c = (size_t)(eq - line);
		if (c == 9 && memcmp(line, "recipient", 9) == 0) {
			if (copy(eq + 1, n - c - 1, r->recipient, sizeof(r->recipient)) < 0) {
				*why = "recipient longer than 1023 bytes";
				return -1;
			}
		} else if (c == 7 && memcmp(line, "request", 7) == 0) {
			if (copy(eq + 1, n - c - 1, r->request, sizeof(r->request)) < 0) {
				*why = "request too long";
				return -1;
			}
			have_request = 1;
		} else if (c == 14 && memcmp(line, "protocol_state", 14) == 0) {
			if (copy(eq + 1, n - c - 1, r->state, sizeof(r->state)) < 0) {
				*why = "protocol_state too long";
				return -1;
			}
		}
	}
	if (!have_request || strcmp(r->request, "smtpd_access_policy") != 0) {
		*why = "not an smtpd_access_policy request";
		return -1;
	}
	return (long)pos;
}

size_t front_policy_answer(struct front *f, const struct front_policy_req *r, char *out,
			   size_t len)
{
	struct front_answer a;
	int n;

	if (r->recipient[0] == '\0')
		n = snprintf(out, len, "action=DUNNO\n\n");
	else
		switch (front_ask(f, r->recipient, FRONT_ASK_PLUS, &a)) {
		case FRONT_WAIT:
			n = snprintf(out, len, "action=HOLD mailrestore: %s is being restored\n\n",
				     a.user);
			break;
		case FRONT_AWAY:
			n = snprintf(out, len,
				     "action=DEFER_IF_PERMIT mailrestore: restore service "
				     "unreachable\n\n");
			break;
		default: /* back, not affected, or no user name at all */
			n = snprintf(out, len, "action=DUNNO\n\n");
			break;
		}
	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}
