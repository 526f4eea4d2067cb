/* error.c: error messages written once, and per-path problem lists. */
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mr_error_set(struct mr_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (errnum != 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(errnum));
	err->errnum = errnum;
}

void mr_error_prefix(struct mr_error *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err->msg)];
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	{
		size_t pos = 0;
		mr_bufcat(err->msg, sizeof(err->msg), &pos, "%s: ", prefix);
		mr_bufcat(err->msg, sizeof(err->msg), &pos, "%s", old);
	}
}

void mr_error_clear(struct mr_error *err)
{
	if (err == NULL)
		return;
	err->errnum = 0;
	err->msg[0] = '\0';
}

int mr_exit_code_for_errno(int errnum)
{
	switch (errnum) {
	case EIO: case ENOSPC: case EDQUOT: case EROFS: case EFBIG: case ENOENT:
	case EACCES: case EPERM: case ENOTDIR: case EISDIR: case ELOOP: case EXDEV:
	case ENAMETOOLONG: case EBADF:
		return MR_EX_IOERR;
	default:
		return MR_EX_SOFTWARE;
	}
}

void mr_problems_add(struct mr_problems *p, enum mr_problem_kind kind, int errnum,
		     const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mr_problems_addv(p, kind, errnum, path, fmt, ap);
	va_end(ap);
}

void mr_problems_addv(struct mr_problems *p, enum mr_problem_kind kind, int errnum,
		      const char *path, const char *fmt, va_list ap)
{
	struct mr_problem *pr;
	char msg[1024];

	if (p->n >= MR_PROBLEMS_MAX) {
		p->dropped++;
		return;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct mr_problem *v = realloc(p->v, cap * sizeof(*v));
		if (v == NULL) {
			p->dropped++;
			return;
		}
		p->v = v;
		p->cap = cap;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	pr = &p->v[p->n];
	pr->kind = kind;
	pr->errnum = errnum;
	pr->path = strdup(path ? path : "");
	pr->message = strdup(msg);
	if (pr->path == NULL || pr->message == NULL) {
		free(pr->path);
		free(pr->message);
		p->dropped++;
		return;
	}
	p->n++;
}

size_t mr_problems_count(const struct mr_problems *p, enum mr_problem_kind kind)
{
	size_t i, n = 0;

	if (kind == 0)
		return p->n + p->dropped;
	for (i = 0; i < p->n; i++)
		if (p->v[i].kind == kind)
			n++;
	return n;
}

void mr_problems_reset(struct mr_problems *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->v[i].path);
		free(p->v[i].message);
	}
	free(p->v);
	p->v = NULL;
	p->n = p->cap = p->dropped = 0;
}

const char *mr_problem_kind_name(enum mr_problem_kind kind)
{
	switch (kind) {
	case MR_PROBLEM_UNREADABLE: return "unreadable";
	case MR_PROBLEM_REFUSED: return "refused";
	case MR_PROBLEM_ARCHIVE: return "archive";
	case MR_PROBLEM_GUARD: return "max-remove";
	case MR_PROBLEM_MISSING: return "missing";
	case MR_PROBLEM_DIFF: return "differs";
	default: return "problem";
	}
}

void mr_problems_summary(const struct mr_problems *p, char *buf, size_t len, size_t max_paths)
{
	size_t pos = 0, i;

	buf[0] = '\0';
	for (i = 0; i < p->n && i < max_paths; i++) {
		mr_bufcat(buf, len, &pos, "%s%s: %s", i ? "; " : "",
			  mr_problem_kind_name(p->v[i].kind), p->v[i].message);
	}
	if (p->n + p->dropped > max_paths)
		mr_bufcat(buf, len, &pos, "; and %zu more", p->n + p->dropped - max_paths);
}
