/*
 * buf.h: the daemon's growable reply buffer (private to daemon/).
 *
 * How to use it:
 *   1. Start from struct daemon_buf b = { 0 } (or reuse one: set len to 0).
 *   2. Append with daemon_buf_printf(), daemon_buf_json_str() and
 *      daemon_buf_num_or_null(); daemon_buf_error() replaces the whole
 *      content with an error reply.
 *   3. b.p is NUL terminated after any append; b.oom says an allocation
 *      failed and the content is cut short (the caller decides what to
 *      answer then).
 *   4. daemon_buf_free() releases the memory.
 *
 * Every file of daemon/ uses it; it calls nothing else in daemon/.
 */
#ifndef MR_DAEMON_BUF_H
#define MR_DAEMON_BUF_H

#include <stddef.h>

/* A growable byte string (replies). */
struct daemon_buf {
	char *p;
	size_t len, cap;
	int oom;  /* an allocation failed: the content is truncated */
};

/* Appends printf output to b, growing it. */
void daemon_buf_printf(struct daemon_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quoted, escaped). */
void daemon_buf_json_str(struct daemon_buf *b, const char *s);
/* Appends a number with three decimals, or null when v < 0. */
void daemon_buf_num_or_null(struct daemon_buf *b, double v);
/* Makes {"ok":false,"error":msg,"code":code} and a newline the whole of b. */
void daemon_buf_error(struct daemon_buf *b, int code, const char *msg);
/* Frees b's memory and empties it. */
void daemon_buf_free(struct daemon_buf *b);

#endif
