/*
 * fuzz_proto.c: libFuzzer target for the daemon's socket protocol
 * (daemon/proto.c) and the client's JSON reader (daemon/json.c). The first
 * byte of an input chooses what the rest is (its low 6 bits modulo 3):
 *   0: request lines, cut at '\n' (a '\r' before it dropped, lines longer
 *      than DAEMON_LINE_MAX left out, as the server does), each handed to
 *      daemon_proto_request() of a daemon made up here: a real queue with a
 *      few users in a temporary state folder (no fsync), no socket, no
 *      worker or task threads. Bit 0x80 of the first byte makes the peer an
 *      operator, bit 0x40 a network peer (then above all): a verb the
 *      table does not mark for the network must be refused with 77 and
 *      leave no body, no waiting reply. Every reply must be one line of
 *      valid JSON with "ok".
 *   1: a reply for daemon_json_parse(); when it parses, every token is
 *      checked to lie inside the text and its subtree, and every lookup is
 *      tried.
 *   2: a C string written by mr_json_str() and read back by the JSON reader,
 *      which must give the same bytes.
 *
 * Seeds: a few request lines, e.g. printf '\0LOGIN alice\nSTATUS\n'.
 */
#include "daemon/daemon_private.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKS_MAX 256

static struct daemon_settings settings;
static struct daemon fake;
static struct conn *conn;
static char state_dir[256];

/* The made-up daemon, once per process. */
static void setup(void)
{
	static const char *const users[] = { "alice", "bob", "carol", "dave", "a.b-c+d@e_f" };
	struct queue_settings qs = { 0, 1 };
	struct mr_error err;
	const char *t = getenv("TMPDIR");
	size_t i;
	int fd;

	mr_log_quiet = 1;
	snprintf(state_dir, sizeof(state_dir), "%s/mr-fuzz-proto.XXXXXX", t && *t ? t : "/tmp");
	if (mkdtemp(state_dir) == NULL)
		abort();
	fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		abort();
	daemon_settings_init(&settings);
	fake.set = &settings;
	fake.epoll_fd = fake.wake_fd = fake.signal_fd = -1;
	if (queue_open(fd, &qs, &fake.q, &err) < 0) {
		fprintf(stderr, "queue_open: %s\n", err.msg);
		abort();
	}
	close(fd);
	for (i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		if (queue_add_user(fake.q, users[i], 1000 * (i + 1), &err) < 0)
			abort();
	pthread_mutex_init(&fake.mu, NULL);
	pthread_cond_init(&fake.work_cv, NULL);
	pthread_mutex_init(&fake.async_mu, NULL);
	pthread_cond_init(&fake.commit_cv, NULL);
	pthread_cond_init(&fake.task_cv, NULL);
	pthread_mutex_init(&fake.metrics_mu, NULL);
	daemon_metrics_init(&fake);
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		abort();
	conn->link.fd = -1;
}

/* What the committer and the task threads would take: commits are waited
 * for (the journal stays small), tasks are dropped unrun. */
static void drain(void)
{
	daemon_async_drain(&fake);
}

/* The reply in conn->out must be one line of JSON: an object with "ok". */
static void check_reply(void)
{
	struct daemon_json_tok toks[4096];
	const char *p = conn->out.p;
	size_t len = conn->out.len;
	int n, ok;

	if (conn->waiting)
		return;
	if (len == 0 || p == NULL || p[len - 1] != '\n' || memchr(p, '\n', len - 1) != NULL ||
	    strlen(p) != len) {
		fprintf(stderr, "reply is not one line: %.*s\n", (int)len, p ? p : "");
		abort();
	}
	n = daemon_json_parse(p, len - 1, toks, 4096);
	if (n < 1 || toks[0].type != DAEMON_JSON_OBJECT) {
		fprintf(stderr, "reply is not a JSON object: %s", p);
		abort();
	}
	ok = daemon_json_get(p, toks, 0, "ok");
	if (ok < 0 || toks[ok].type != DAEMON_JSON_PRIMITIVE) {
		fprintf(stderr, "reply without ok: %s", p);
		abort();
	}
}

static void one_line(const uint8_t *s, size_t len)
{
	static struct daemon_buf scratch;
	char line[DAEMON_LINE_MAX], copy[DAEMON_LINE_MAX];
	struct daemon_request q;

	if (len >= sizeof(line))
		return;
	memcpy(line, s, len);
	line[len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	conn->out.len = 0;
	conn->out_off = 0;
	conn->reply_waits_commit = conn->waiting = conn->close_after = 0;
	memcpy(copy, line, strlen(line) + 1);
	daemon_proto_request(&fake, conn, 0, line, strlen(line));
	check_reply();
	if (conn->link.net && daemon_proto_parse(copy, strlen(copy), &q, &scratch) == 0 &&
	    !daemon_verb_network(q.verb) &&
	    (strstr(conn->out.p, "\"code\":77") == NULL || conn->body != NULL || conn->waiting ||
	     conn->reply_waits_commit)) {
		fprintf(stderr, "a network peer ran %s: %s", daemon_verb_name(q.verb), conn->out.p);
		abort();
	}
	if (conn->body != NULL) {
		/* A DELIVER was accepted: its body arrives (its bytes are
		 * never read: the task is dropped unrun). */
		conn->body_have = conn->body_len;
		conn->out.len = 0;
		daemon_proto_deliver_body(&fake, conn, 0);
		if (conn->body != NULL || !conn->waiting)
			abort();
	}
	drain();
	fake.loop_stop = 0;
}

static void fuzz_proto(const uint8_t *data, size_t size, int op)
{
	const uint8_t *nl;

	conn->link.net = (op & 0x40) != 0;
	conn->link.uid = conn->link.net ? (uid_t)-1 : op & 0x80 ? geteuid()
						: (uid_t)(geteuid() + 4242);
	conn->link.gid = (gid_t)-1;
	conn->link.pid = 0;
	conn->rights_checked = 0;
	while (size > 0) {
		nl = memchr(data, '\n', size);
		if (nl == NULL)
			break; /* an unfinished line is never handled */
		one_line(data, (size_t)(nl - data));
		size -= (size_t)(nl - data) + 1;
		data = nl + 1;
	}
	if (fake.body_bytes != 0)
		abort();
}

/* Every token lies inside the text and inside its parent's subtree. */
static void check_tokens(const char *text, size_t len, const struct daemon_json_tok *toks, int n)
{
	char buf[512];
	int i, k, v;

	for (i = 0; i < n; i++) {
		if (toks[i].start < 0 || toks[i].start > toks[i].end || (size_t)toks[i].end > len ||
		    toks[i].next <= i || toks[i].next > n)
			abort();
		daemon_json_text(text, toks, i, buf, sizeof(buf));
		(void)daemon_json_num(text, toks, i, 0);
		(void)daemon_json_is_null(text, toks, i);
		if (toks[i].type == DAEMON_JSON_ARRAY) {
			for (k = 0; k < toks[i].size; k++) {
				v = daemon_json_index(toks, i, k);
				if (v <= i || v >= toks[i].next)
					abort();
			}
			if (daemon_json_index(toks, i, toks[i].size) != -1)
				abort();
		}
		if (toks[i].type == DAEMON_JSON_OBJECT) {
			for (k = i + 1; k < toks[i].next; k = toks[k + 1].next) {
				if (toks[k].type != DAEMON_JSON_STRING)
					abort();
				/* Lookups compare escaped text: use the key as written. */
				if ((size_t)(toks[k].end - toks[k].start) >= sizeof(buf))
					continue;
				memcpy(buf, text + toks[k].start, (size_t)(toks[k].end - toks[k].start));
				buf[toks[k].end - toks[k].start] = '\0';
				if (strlen(buf) != (size_t)(toks[k].end - toks[k].start))
					continue;
				v = daemon_json_get(text, toks, i, buf);
				if (v <= i || v >= toks[i].next)
					abort();
			}
		}
	}
}

static void fuzz_json(const uint8_t *data, size_t size)
{
	struct daemon_json_tok toks[TOKS_MAX];
	char *text = malloc(size + 1);
	int n;

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	n = daemon_json_parse(text, size, toks, TOKS_MAX);
	if (n == 0 || n > TOKS_MAX)
		abort();
	if (n > 0)
		check_tokens(text, size, toks, n);
	free(text);
}

static void fuzz_round_trip(const uint8_t *data, size_t size)
{
	struct daemon_json_tok toks[2];
	char *s, *json, *back;
	size_t len, pos = 0, cap;

	s = malloc(size + 1);
	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	len = strlen(s);
	cap = len * 6 + 3;
	json = malloc(cap);
	back = malloc(len + 1);
	if (json == NULL || back == NULL)
		abort();
	mr_json_str(json, cap, &pos, s);
	if (daemon_json_parse(json, pos, toks, 2) != 1 || toks[0].type != DAEMON_JSON_STRING)
		abort();
	daemon_json_text(json, toks, 0, back, len + 1);
	if (strcmp(s, back) != 0)
		abort();
	free(back);
	free(json);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (conn == NULL)
		setup();
	if (size == 0)
		return 0;
	switch ((data[0] & 0x3f) % 3) {
	case 0: fuzz_proto(data + 1, size - 1, data[0] & 0xc0); break;
	case 1: fuzz_json(data + 1, size - 1); break;
	default: fuzz_round_trip(data + 1, size - 1); break;
	}
	return 0;
}
