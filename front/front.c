/*
 * front.c: the handle of front.h (settings, the snapshot folder) and the
 * backend map of auth_http (--backend-map FILE): one line per user,
 * "USER HOST:PORT [imap=PORT] [pop3=PORT] [smtp=PORT]", "*" for everyone
 * else, "#" comments; names resolved to addresses once, at load.
 */
#include "front/front_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A map line longer than this is refused. */
#define MAP_LINE_MAX 1024

void front_settings_init(struct front_settings *s)
{
	memset(s, 0, sizeof(*s));
}

static int parse_port(const char *s, unsigned *port)
{
	uint64_t v;

	if (mr_parse_u64(s, &v) < 0 || v < 1 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* HOST:PORT into b: HOST an address, or a name resolved now. */
static int parse_backend(const char *s, struct front_backend *b, struct mr_error *err)
{
	char host[MR_HOST_MAX];
	struct addrinfo hints, *res = NULL;
	int rc;

	if (mr_hostport_split(s, host, sizeof(host), &b->port) < 0) {
		mr_error_set(err, EINVAL, "not HOST:PORT: %s", s);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		mr_error_set(err, EHOSTUNREACH, "%s does not resolve: %s", host, gai_strerror(rc));
		return -1;
	}
	rc = getnameinfo(res->ai_addr, res->ai_addrlen, b->host, sizeof(b->host), NULL, 0,
			 NI_NUMERICHOST);
	freeaddrinfo(res);
	if (rc != 0) {
		mr_error_set(err, EINVAL, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	return 0;
}

static int by_user(const void *a, const void *b)
{
	return strcmp(((const struct front_map_entry *)a)->user,
		      ((const struct front_map_entry *)b)->user);
}

/* One line's words after USER into b. */
static int parse_map_words(char *save, struct front_backend *b, struct mr_error *err)
{
	char *w;
	int first = 1;

	memset(b, 0, sizeof(*b));
	while ((w = strtok_r(NULL, " \t", &save)) != NULL) {
		unsigned *slot = NULL;

		if (first) {
			if (parse_backend(w, b, err) < 0)
				return -1;
			first = 0;
			continue;
		}
		if (strncmp(w, "imap=", 5) == 0)
			slot = &b->imap;
		else if (strncmp(w, "pop3=", 5) == 0)
			slot = &b->pop3;
		else if (strncmp(w, "smtp=", 5) == 0)
			slot = &b->smtp;
		if (slot == NULL || parse_port(w + 5, slot) < 0) {
			mr_error_set(err, EINVAL, "expected imap=PORT, pop3=PORT or smtp=PORT: %s", w);
			return -1;
		}
	}
	if (first) {
		mr_error_set(err, EINVAL, "a user without HOST:PORT");
		return -1;
	}
	return 0;
}

int front_map_load(struct front *f, const char *path, struct mr_error *err)
{
	char line[MAP_LINE_MAX + 2], *save, *user, *hash;
	struct front_map_entry *e;
	struct front_backend b;
	size_t cap = 0, i;
	unsigned lineno = 0;
	FILE *fp;
	int rc = -1;

	fp = fopen(path, "re");
	if (fp == NULL) {
		mr_error_set(err, errno, "fopen(%s) failed", path);
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			mr_error_set(err, EINVAL, "%s:%u: line longer than %d bytes", path, lineno,
				     MAP_LINE_MAX);
			goto out;
		}
		line[strcspn(line, "\r\n")] = '\0';
		hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		save = NULL;
		user = strtok_r(line, " \t", &save);
		if (user == NULL)
			continue;
		if (strcmp(user, "*") != 0 && !mr_user_name_valid(user)) {
			mr_error_set(err, EINVAL, "%s:%u: invalid user name", path, lineno);
			goto out;
		}
		if (parse_map_words(save, &b, err) < 0) {
			mr_error_prefix(err, "%s:%u", path, lineno);
			goto out;
		}
		if (strcmp(user, "*") == 0) {
			f->def = b;
			f->have_def = 1;
			continue;
		}
		if (f->nmap == cap) {
			cap = cap ? cap * 2 : 64;
			e = realloc(f->map, cap * sizeof(*e));
			if (e == NULL) {
				mr_error_set(err, ENOMEM, "%s", path);
				goto out;
			}
			f->map = e;
		}
		f->map[f->nmap].user = strdup(user);
		if (f->map[f->nmap].user == NULL) {
			mr_error_set(err, ENOMEM, "%s", path);
			goto out;
		}
		f->map[f->nmap++].b = b;
	}
	if (ferror(fp)) {
		mr_error_set(err, EIO, "reading %s failed", path);
		goto out;
	}
	if (f->nmap > 1)
		qsort(f->map, f->nmap, sizeof(*f->map), by_user);
	for (i = 1; i < f->nmap; i++)
		if (strcmp(f->map[i - 1].user, f->map[i].user) == 0) {
			mr_error_set(err, EINVAL, "%s: %s is named twice", path, f->map[i].user);
			goto out;
		}
	rc = 0;
out:
	fclose(fp);
	return rc;
}

const struct front_backend *front_map_find(const struct front *f, const char *user)
{
	struct front_map_entry key, *e;

	key.user = (char *)user;
	e = f->nmap ? bsearch(&key, f->map, f->nmap, sizeof(*f->map), by_user) : NULL;
	if (e != NULL)
		return &e->b;
	return f->have_def ? &f->def : NULL;
}

int front_new(const struct front_settings *s, struct front **f_r, struct mr_error *err)
{
	struct front *f = calloc(1, sizeof(*f));

	*f_r = NULL;
	if (f == NULL) {
		mr_error_set(err, ENOMEM, "front_new");
		return -1;
	}
	f->set = *s;
	f->snapfd = -1;
	if (s->backend_map != NULL && front_map_load(f, s->backend_map, err) < 0)
		goto fail;
	if (s->state_dir != NULL) {
		f->snapfd = mr_snapshot_open(s->state_dir, 1, err);
		if (f->snapfd < 0)
			goto fail;
	}
	*f_r = f;
	return 0;
fail:
	front_free(&f);
	return -1;
}

void front_free(struct front **fp)
{
	struct front *f = fp ? *fp : NULL;
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < f->nmap; i++)
		free(f->map[i].user);
	free(f->map);
	if (f->snapfd >= 0)
		close(f->snapfd);
	free(f);
	*fp = NULL;
}
