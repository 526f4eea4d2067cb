/* misc.c: clocks, the log line, JSON string output, human numbers. */
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int mr_log_quiet;

double mr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double mr_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Length of the valid UTF-8 sequence at p (n bytes left) that is not a
 * C1 control, or 0. */
static size_t utf8_ok(const unsigned char *p, size_t n)
{
	size_t need, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		need = 1;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		need = 2;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		need = 3;
	else
		return 0;
	/* No overlong forms, no surrogates, nothing above U+10FFFF. */
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n < need + 1 || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i <= need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	if (p[0] == 0xc2 && p[1] < 0xa0)
		return 0; /* C1 controls: some terminals obey them */
	return need + 1;
}

const char *mr_escape_n(const char *s, size_t n, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, k;
	char esc[5];
	const char *add;

	if (len == 0)
		return buf;
	while (i < n) {
		k = 1;
		add = esc;
		if (p[i] == '\n')
			add = "\\n";
		else if (p[i] == '\r')
			add = "\\r";
		else if (p[i] == '\t')
			add = "\\t";
		else if (p[i] == '\\')
			add = "\\\\";
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			add = NULL;
		else if (p[i] >= 0x80 && (k = utf8_ok(p + i, n - i)) > 0)
			add = NULL;
		else {
			k = 1;
			snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
		}
		if (add == NULL) {
			if (o + k >= len)
				break;
			memcpy(buf + o, p + i, k);
			o += k;
		} else {
			if (o + strlen(add) >= len)
				break;
			memcpy(buf + o, add, strlen(add));
			o += strlen(add);
		}
		i += k;
	}
	buf[o] = '\0';
	return buf;
}

const char *mr_escape(const char *s, char *buf, size_t len)
{
	return mr_escape_n(s ? s : "", s ? strlen(s) : 0, buf, len);
}

void mr_log(const char *fmt, ...)
{
	char msg[2048], line[8192], stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;
	int n;

	if (mr_log_quiet)
		return;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* File names and reasons come from users' trees: one line each, and
	 * no terminal control reaches whoever reads the log. */
	n = snprintf(line, sizeof(line), "%s mailrestore[%d]: ", stamp, (int)getpid());
	mr_escape(msg, line + n, sizeof(line) - (size_t)n - 1);
	strcat(line, "\n");
	/* one write so lines from several threads don't interleave */
	if (write(STDERR_FILENO, line, strlen(line)) < 0)
		(void)0;
}

void mr_bufcat(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos += (size_t)n;
	if (*pos >= len)
		*pos = len - 1;
}

void mr_json_str(char *buf, size_t len, size_t *pos, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	mr_bufcat(buf, len, pos, "\"");
	for (; *p; p++) {
		switch (*p) {
		case '"': mr_bufcat(buf, len, pos, "\\\""); break;
		case '\\': mr_bufcat(buf, len, pos, "\\\\"); break;
		case '\n': mr_bufcat(buf, len, pos, "\\n"); break;
		case '\r': mr_bufcat(buf, len, pos, "\\r"); break;
		case '\t': mr_bufcat(buf, len, pos, "\\t"); break;
		default:
			if (*p < 0x20 || *p >= 0x7f)
				mr_bufcat(buf, len, pos, "\\u%04x", *p);
			else
				mr_bufcat(buf, len, pos, "%c", *p);
		}
	}
	mr_bufcat(buf, len, pos, "\"");
}

const char *mr_human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

const char *mr_human_duration(double s, char *buf, size_t len)
{
	long n;

	if (s < 0) {
		snprintf(buf, len, "unknown");
	} else if (s < 60) {
		snprintf(buf, len, "less than a minute");
	} else if (s < 90) {
		snprintf(buf, len, "about a minute");
	} else if (s < 55 * 60) {
		n = (long)(s / 60 + 0.5);
		/* Past ten minutes nobody counts single minutes. */
		if (n > 10)
			n = (n + 2) / 5 * 5;
		snprintf(buf, len, "about %ld minutes", n);
	} else if (s < 90 * 60) {
		snprintf(buf, len, "about an hour");
	} else if (s < 36 * 3600) {
		snprintf(buf, len, "about %ld hours", (long)(s / 3600 + 0.5));
	} else {
		snprintf(buf, len, "about %ld days", (long)(s / 86400 + 0.5));
	}
	return buf;
}

int mr_parse_u64(const char *s, uint64_t *val_r)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*val_r = v;
	return 0;
}

int mr_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
