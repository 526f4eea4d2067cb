/*
 * json.c: a small, strict JSON tokenizer for the daemon's replies (the
 * CLI's side). Tokens are kept flat in document order, each with the index
 * of the token after its subtree, so lookups walk siblings without
 * recursion and without allocating.
 */
#include "daemon/daemon.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 64

struct parser {
	const char *s;
	size_t len, pos;
	struct daemon_json_tok *toks;
	int n, max;
};

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
				   p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static int new_tok(struct parser *p, enum daemon_json_type type, int start)
{
	if (p->n >= p->max)
		return -1;
	p->toks[p->n].type = type;
	p->toks[p->n].start = start;
	p->toks[p->n].end = start;
	p->toks[p->n].size = 0;
	p->toks[p->n].next = p->n + 1;
	return p->n++;
}

static int is_hex(char c)
{
	return c != '\0' && strchr("0123456789abcdefABCDEF", c) != NULL;
}

/* Length of the escape at p->pos (the byte after a backslash): 1, or 5 for
 * \uXXXX; 0 when it is not one JSON allows. */
static size_t escape_len(const struct parser *p)
{
	size_t k;

	if (p->pos >= p->len)
		return 0;
	if (p->s[p->pos] != 'u')
		return p->s[p->pos] != '\0' && strchr("\"\\/bfnrt", p->s[p->pos]) != NULL;
	for (k = 1; k <= 4; k++)
		if (p->pos + k >= p->len || !is_hex(p->s[p->pos + k]))
			return 0;
	return 5;
}

/* Index after the digits of s from i (n bytes in s). */
static size_t skip_digits(const char *s, size_t n, size_t i)
{
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

/* Length of the number or literal (true, false, null) at p->pos; 0 when
 * there is none. What follows it is the caller's to check. */
static size_t primitive_len(const struct parser *p)
{
	static const char *const words[] = { "true", "false", "null" };
	const char *s = p->s + p->pos;
	size_t n = p->len - p->pos, i = 0, k, w;

	for (w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		if (n >= strlen(words[w]) && memcmp(s, words[w], strlen(words[w])) == 0)
			return strlen(words[w]);
	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if ((k = skip_digits(s, n, i)) > i)
		i = k;
	else
		return 0;
	if (i < n && s[i] == '.') {
		k = skip_digits(s, n, i + 1);
		if (k == i + 1)
			return 0;
		i = k;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		k = skip_digits(s, n, i);
		if (k == i)
			return 0;
		i = k;
	}
	return i;
}

static int parse_string(struct parser *p)
{
	size_t e;
	int t;

	p->pos++; /* the quote */
	t = new_tok(p, DAEMON_JSON_STRING, (int)p->pos);
	if (t < 0)
		return -1;
	while (p->pos < p->len && p->s[p->pos] != '"') {
		if ((unsigned char)p->s[p->pos] < 0x20)
			return -1;
		if (p->s[p->pos] == '\\') {
			p->pos++;
			e = escape_len(p);
			if (e == 0)
				return -1;
			p->pos += e;
			continue;
		}
		p->pos++;
	}
	if (p->pos >= p->len)
		return -1;
	p->toks[t].end = (int)p->pos;
	p->pos++;
	return t;
}

static int parse_value(struct parser *p, int depth);

static int parse_container(struct parser *p, int depth, int object)
{
	int t = new_tok(p, object ? DAEMON_JSON_OBJECT : DAEMON_JSON_ARRAY, (int)p->pos);
	char close = object ? '}' : ']';

	if (t < 0 || depth > DEPTH_MAX)
		return -1;
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		p->toks[t].end = (int)p->pos;
		p->toks[t].next = p->n;
		return t;
	}
	for (;;) {
		skip_ws(p);
		if (object) {
			if (p->pos >= p->len || p->s[p->pos] != '"' || parse_string(p) < 0)
				return -1;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return -1;
			p->pos++;
		}
		if (parse_value(p, depth + 1) < 0)
			return -1;
		p->toks[t].size++;
		skip_ws(p);
		if (p->pos >= p->len)
			return -1;
		if (p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->s[p->pos] != close)
			return -1;
		p->pos++;
		p->toks[t].end = (int)p->pos;
		p->toks[t].next = p->n;
		return t;
	}
}

static int parse_value(struct parser *p, int depth)
{
	size_t n;
	int t;
	char c;

	skip_ws(p);
	if (p->pos >= p->len)
		return -1;
	c = p->s[p->pos];
	if (c == '{' || c == '[')
		return parse_container(p, depth, c == '{');
	if (c == '"')
		return parse_string(p);
	t = new_tok(p, DAEMON_JSON_PRIMITIVE, (int)p->pos);
	if (t < 0)
		return -1;
	n = primitive_len(p);
	if (n == 0)
		return -1;
	p->pos += n;
	p->toks[t].end = (int)p->pos;
	return t;
}

/* See daemon.h. */
int daemon_json_parse(const char *text, size_t len, struct daemon_json_tok *toks, int max)
{
	struct parser p = { text, len, 0, toks, 0, max };

	if (len > (size_t)0x7fffffff || parse_value(&p, 0) < 0)
		return -1;
	skip_ws(&p);
	if (p.pos != p.len)
		return -1;
	return p.n;
}

/* See daemon.h. */
int daemon_json_get(const char *text, const struct daemon_json_tok *toks, int obj,
		    const char *key)
{
	size_t klen = strlen(key);
	int i, m;

	if (obj < 0 || toks[obj].type != DAEMON_JSON_OBJECT)
		return -1;
	i = obj + 1;
	for (m = 0; m < toks[obj].size; m++) {
		if ((size_t)(toks[i].end - toks[i].start) == klen &&
		    memcmp(text + toks[i].start, key, klen) == 0)
			return i + 1;
		i = toks[i + 1].next;
	}
	return -1;
}

/* See daemon.h. */
int daemon_json_index(const struct daemon_json_tok *toks, int arr, int idx)
{
	int i, m;

	if (arr < 0 || toks[arr].type != DAEMON_JSON_ARRAY || idx < 0 || idx >= toks[arr].size)
		return -1;
	i = arr + 1;
	for (m = 0; m < idx; m++)
		i = toks[i].next;
	return i;
}

static unsigned hexval(const char *s)
{
	unsigned v = 0;
	int k;

	for (k = 0; k < 4; k++) {
		v <<= 4;
		if (s[k] >= '0' && s[k] <= '9')
			v |= (unsigned)(s[k] - '0');
		else if (s[k] >= 'a' && s[k] <= 'f')
			v |= (unsigned)(s[k] - 'a' + 10);
		else if (s[k] >= 'A' && s[k] <= 'F')
			v |= (unsigned)(s[k] - 'A' + 10);
	}
	return v;
}

/* See daemon.h. */
const char *daemon_json_text(const char *text, const struct daemon_json_tok *toks, int i,
			     char *buf, size_t len)
{
	size_t o = 0;
	int k;
	unsigned v;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (i < 0)
		return buf;
	for (k = toks[i].start; k < toks[i].end && o + 1 < len; k++) {
		if (toks[i].type == DAEMON_JSON_STRING && text[k] == '\\' && k + 1 < toks[i].end) {
			k++;
			switch (text[k]) {
			case 'n': buf[o++] = '\n'; break;
			case 't': buf[o++] = '\t'; break;
			case 'r': buf[o++] = '\r'; break;
			case 'b': buf[o++] = '\b'; break;
			case 'f': buf[o++] = '\f'; break;
			case 'u':
				if (k + 4 < toks[i].end) {
					v = hexval(text + k + 1);
					/* The daemon escapes single bytes this way. */
					buf[o++] = v < 0x100 ? (char)v : '?';
					k += 4;
				}
				break;
			default: buf[o++] = text[k]; break;
			}
			continue;
		}
		buf[o++] = text[k];
	}
	buf[o] = '\0';
	return buf;
}

/* See daemon.h. */
double daemon_json_num(const char *text, const struct daemon_json_tok *toks, int i, double def)
{
	char buf[64], *end;
	double v;

	/* A number cut to buf would read as another number. */
	if (i < 0 || toks[i].type != DAEMON_JSON_PRIMITIVE ||
	    toks[i].end - toks[i].start >= (int)sizeof(buf))
		return def;
	daemon_json_text(text, toks, i, buf, sizeof(buf));
	v = strtod(buf, &end);
	return end == buf || *end || !isfinite(v) ? def : v;
}

/* See daemon.h. */
int daemon_json_is_null(const char *text, const struct daemon_json_tok *toks, int i)
{
	return i < 0 || (toks[i].type == DAEMON_JSON_PRIMITIVE && toks[i].end - toks[i].start == 4 &&
			 memcmp(text + toks[i].start, "null", 4) == 0);
}
