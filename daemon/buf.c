/*
 * buf.c: the reply buffer of daemon/ (see buf.h). Plain memory and
 * formatting: it calls nothing else in daemon/.
 */
#include "daemon/buf.h"
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_reserve(struct daemon_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends printf output to b, growing it. */
void daemon_buf_printf(struct daemon_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (buf_reserve(b, 64) < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		if (buf_reserve(b, (size_t)n) < 0) {
			b->p[b->len] = '\0';
			return;
		}
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Appends s as a JSON string literal. */
void daemon_buf_json_str(struct daemon_buf *b, const char *s)
{
	size_t need = strlen(s) * 6 + 3, pos;

	if (buf_reserve(b, need) < 0)
		return;
	pos = b->len;
	mr_json_str(b->p, b->cap, &pos, s);
	b->len = pos;
}

/* Appends v, or null when v is negative (no estimate, unset time). */
void daemon_buf_num_or_null(struct daemon_buf *b, double v)
{
	if (v < 0)
		daemon_buf_printf(b, "null");
	else
		daemon_buf_printf(b, "%.3f", v);
}

/* Writes {"ok":false,...} as the whole of b. */
void daemon_buf_error(struct daemon_buf *b, int code, const char *msg)
{
	b->len = 0;
	daemon_buf_printf(b, "{\"ok\":false,\"error\":");
	daemon_buf_json_str(b, msg);
	daemon_buf_printf(b, ",\"code\":%d}\n", code);
}

/* Frees b's memory and empties it. */
void daemon_buf_free(struct daemon_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
