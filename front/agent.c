/*
 * agent.c: the agent on a proxy or an MX (front.h, "following the
 * activations and releasing held mail"): it follows the daemon's stream of
 * activations (the verb ACTIVATIONS), keeps the snapshot, and on an MX
 * releases from Postfix's hold queue exactly the messages whose recipients
 * are all back, oldest first.
 *
 * The place in the stream is the file "follow" in the state folder, one
 * line: "mailrestore-follow 1 EPOCH NEXT CHECK" (EPOCH in hex, NEXT the
 * index of the next user to read, CHECK the xxh3 of the text before it in
 * hex), published whole (temporary file, fsync, rename). A line that does
 * not check is ignored: the stream is read again from 0, which costs only
 * time (each user is remembered once, a release of a released message
 * finds nothing).
 */
#include "front/front_private.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#define FOLLOW_FILE "follow"
#define FOLLOW_MAGIC "mailrestore-follow"
#define FOLLOW_VERSION 1
/* Users asked for per ACTIVATIONS call. */
#define FOLLOW_PIECE 1000
/* Bytes of `postqueue -j` output read at most: the messages beyond it are
 * not seen by this scan (nothing is released for them; never wrongly). */
#define POSTQUEUE_MAX (256u << 20)

/* ---- the place in the stream ------------------------------------------- */

static void follow_load(struct front *f, uint64_t *epoch, uint64_t *next)
{
	char buf[256], head[160];
	unsigned long long e, n, check;
	unsigned version;
	ssize_t got;
	int fd, len;

	*epoch = *next = 0;
	fd = openat(f->snapfd, FOLLOW_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return;
	buf[got] = '\0';
	if (sscanf(buf, FOLLOW_MAGIC " %u %llx %llu %llx", &version, &e, &n, &check) != 4 ||
	    version != FOLLOW_VERSION)
		goto bad;
	len = snprintf(head, sizeof(head), FOLLOW_MAGIC " %u %016llx %llu", version, e, n);
	if (len <= 0 || XXH3_64bits(head, (size_t)len) != check)
		goto bad;
	*epoch = e;
	*next = n;
	return;
bad:
	mr_log("agent: %s/%s does not check; reading the stream from its start",
	       f->set.state_dir, FOLLOW_FILE);
}

static int follow_save(struct front *f, uint64_t epoch, uint64_t next, struct mr_error *err)
{
	char head[160], line[200];
	struct mr_publish p;
	int len, rc;

	len = snprintf(head, sizeof(head), FOLLOW_MAGIC " %u %016llx %llu", FOLLOW_VERSION,
		       (unsigned long long)epoch, (unsigned long long)next);
	len = snprintf(line, sizeof(line), "%s %016llx\n", head,
		       (unsigned long long)XXH3_64bits(head, (size_t)len));
	rc = mr_publish_begin(&p, f->snapfd, f->set.state_dir, FOLLOW_FILE, "follow.tmp.", 0644, 0,
			      err) < 0 ||
			     mr_publish_write(&p, line, (size_t)len, err) < 0 ||
			     mr_publish_commit(&p, err) < 0
		     ? -1
		     : 0;
	mr_publish_abort(&p);
	return rc;
}

/* ---- postqueue -j --------------------------------------------------------- */

void front_held_clear(struct front_held *h)
{
	size_t i;

	for (i = 0; i < h->nrcpt; i++)
		free(h->rcpt[i]);
	free(h->rcpt);
	memset(h, 0, sizeof(*h));
}

int front_held_parse(const char *line, size_t len, struct front_held *h)
{
	struct daemon_json_tok *toks;
	char qname[32], addr[1024];
	int n, max, arr, i, obj, rc = -1;

	memset(h, 0, sizeof(*h));
	if (len == 0 || len > (64u << 20))
		return -1;
	max = (int)(len / 2 + 8);
	toks = malloc((size_t)max * sizeof(*toks));
	if (toks == NULL)
		return -1;
	n = daemon_json_parse(line, len, toks, max);
	if (n < 1 || toks[0].type != DAEMON_JSON_OBJECT)
		goto out;
	daemon_json_text(line, toks, daemon_json_get(line, toks, 0, "queue_name"), qname,
			 sizeof(qname));
	if (strcmp(qname, "hold") != 0) {
		rc = 0;
		goto out;
	}
	i = daemon_json_get(line, toks, 0, "queue_id");
	if (i < 0 || toks[i].type != DAEMON_JSON_STRING)
		goto out;
	daemon_json_text(line, toks, i, h->queue_id, sizeof(h->queue_id));
	if (h->queue_id[0] == '\0' ||
	    strspn(h->queue_id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") !=
		    strlen(h->queue_id))
		goto out;
	h->arrival_time = daemon_json_num(line, toks, daemon_json_get(line, toks, 0, "arrival_time"),
					  0);
	arr = daemon_json_get(line, toks, 0, "recipients");
	if (arr < 0 || toks[arr].type != DAEMON_JSON_ARRAY)
		goto out;
	h->rcpt = calloc((size_t)toks[arr].size + 1, sizeof(*h->rcpt));
	if (h->rcpt == NULL)
		goto out;
	for (i = 0; i < toks[arr].size; i++) {
		obj = daemon_json_index(toks, arr, i);
		if (obj < 0 || toks[obj].type != DAEMON_JSON_OBJECT)
			goto out;
		daemon_json_text(line, toks, daemon_json_get(line, toks, obj, "address"), addr,
				 sizeof(addr));
		h->rcpt[h->nrcpt] = strdup(addr);
		if (h->rcpt[h->nrcpt] == NULL)
			goto out;
		h->nrcpt++;
	}
	rc = 1;
out:
	free(toks);
	if (rc != 1)
		front_held_clear(h);
	return rc;
}

/* Held messages due in one scan from which they are released in one
 * `postsuper -H -` and sent on with one `postqueue -f` (fewer: one by one,
 * each hurried with `postqueue -i`). */
#define RELEASE_BATCH 32

/* Writes all of in to fd (the child's stdin), then closes it. */
static void feed(int fd, const char *in)
{
	size_t n = strlen(in);
	ssize_t w;

	while (n > 0) {
		w = write(fd, in, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* the child went away: its status says so */
		in += w;
		n -= (size_t)w;
	}
	close(fd);
}

/* Runs argv (no shell); with in, that text is its stdin; with out, its
 * stdout is read into *out (malloc'd, NUL terminated). Returns its exit
 * status, or -1 when it could not run (logged). */
static int run(char *const argv[], const char *in, char **out)
{
	size_t have = 0, cap = 0;
	int pfd[2] = { -1, -1 }, ifd[2] = { -1, -1 }, status = 0;
	char *buf = NULL, *nb;
	ssize_t got;
	pid_t pid;

	if (out != NULL)
		*out = NULL;
	if ((out != NULL && pipe2(pfd, O_CLOEXEC) < 0) ||
	    (in != NULL && pipe2(ifd, O_CLOEXEC) < 0)) {
		mr_log("agent: pipe: %s", strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		mr_log("agent: fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		if (out != NULL && dup2(pfd[1], 1) < 0)
			_exit(127);
		if (in != NULL && dup2(ifd[0], 0) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "agent: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (in != NULL) {
		close(ifd[0]);
		feed(ifd[1], in);
	}
	if (out != NULL) {
		close(pfd[1]);
		for (;;) {
			if (have + 65536 + 1 > cap) {
				cap = cap ? cap * 2 : 262144;
				nb = cap <= POSTQUEUE_MAX ? realloc(buf, cap) : NULL;
				if (nb == NULL)
					break;
				buf = nb;
			}
			got = read(pfd[0], buf + have, cap - have - 1);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				break;
			have += (size_t)got;
		}
		close(pfd[0]);
		if (buf != NULL)
			buf[have] = '\0';
		*out = buf;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
fail:
	for (status = 0; status < 2; status++) {
		if (pfd[status] >= 0)
			close(pfd[status]);
		if (ifd[status] >= 0)
			close(ifd[status]);
	}
	return -1;
}

/* ---- the release ----------------------------------------------------------- */

enum rcpt_state { R_WAIT = 0, R_BACK, R_UNTOUCHED };

/* Where a recipient stands: back through the stream (the snapshot knows
 * it), not affected (the daemon says so), or still waiting. When ask is 0
 * only the snapshot is read (R_WAIT for everything else). */
static enum rcpt_state rcpt_state(struct front *f, const char *addr, int ask)
{
	char names[3][MR_USER_NAME_MAX + 1];
	struct front_answer a;
	int n, i;

	n = front_candidates(addr, FRONT_ASK_PLUS, names);
	for (i = 0; i < n; i++)
		if (mr_snapshot_get(f->snapfd, names[i]) == MR_SNAP_ACTIVE)
			return R_BACK;
	if (!ask || n == 0)
		return R_WAIT;
	/* Only the daemon's word counts here: a snapshot's "untouched" from
	 * an answer long ago would do too, but an unreachable daemon keeps
	 * the mail where it is. */
	if (front_ask(f, addr, FRONT_ASK_PLUS, &a) != FRONT_OPEN || a.from_snapshot)
		return R_WAIT;
	return a.affected ? R_BACK : R_UNTOUCHED;
}

struct due {
	char id[64];
	double arrival;
};

static int by_arrival(const void *a, const void *b)
{
	const struct due *x = a, *y = b;

	if (x->arrival != y->arrival)
		return x->arrival < y->arrival ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Many due at once: one `postsuper -H -` reads their ids, oldest first,
 * and one `postqueue -f` sends the deferred queue on (postqueue -i takes
 * one id a run). Returns the number released (all of them when postsuper
 * succeeds; none is lost when it fails: the next scan finds them held). */
static int release_batch(const struct front_agent_settings *s, const struct due *due,
			 size_t ndue)
{
	char *argv[8], *ids;
	size_t i, k = 0, len = 0;
	int rc;

	ids = malloc(ndue * sizeof(due->id) + 1);
	if (ids == NULL)
		return -1;
	for (i = 0; i < ndue; i++)
		len += (size_t)sprintf(ids + len, "%s\n", due[i].id);
	argv[k++] = (char *)"postsuper";
	if (s->postfix_config != NULL) {
		argv[k++] = (char *)"-c";
		argv[k++] = (char *)s->postfix_config;
	}
	argv[k++] = (char *)"-H";
	argv[k++] = (char *)"-";
	argv[k] = NULL;
	rc = run(argv, ids, NULL);
	free(ids);
	if (rc != 0) {
		mr_log("agent: postsuper -H - of %zu messages failed (exit %d); the next scan "
		       "tries again",
		       ndue, rc);
		return -1;
	}
	argv[0] = (char *)"postqueue";
	argv[k - 2] = (char *)"-f";
	argv[k - 1] = NULL;
	(void)run(argv, NULL, NULL);
	mr_log("agent: released %zu messages, from %s (arrived %.0f) to %s (arrived %.0f)", ndue,
	       due[0].id, due[0].arrival, due[ndue - 1].id, due[ndue - 1].arrival);
	return (int)ndue;
}

/* One scan of the hold queue: releases what is due, oldest first.
 * Returns the number released, -1 when postqueue could not be read. */
static int release_pass(struct front *f, const struct front_agent_settings *s)
{
	char *argv[8], *text = NULL, *line, *nl;
	struct due *due = NULL, *nd;
	struct front_held h;
	size_t ndue = 0, cap = 0, i, k;
	int rc, n = 0, back, ok;

	k = 0;
	argv[k++] = (char *)"postqueue";
	if (s->postfix_config != NULL) {
		argv[k++] = (char *)"-c";
		argv[k++] = (char *)s->postfix_config;
	}
	argv[k++] = (char *)"-j";
	argv[k] = NULL;
	rc = run(argv, NULL, &text);
	if (rc != 0 || text == NULL) {
		mr_log("agent: postqueue -j failed (exit %d): the hold queue is scanned again later",
		       rc);
		free(text);
		return -1;
	}
	for (line = text; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			nl = line + strlen(line) - 1;
		if (front_held_parse(line, (size_t)(nl - line + (*nl != '\n')), &h) != 1)
			continue;
		/* Only a message with a recipient who came back through the
		 * stream: mail held for other reasons stays held. */
		back = 0;
		for (i = 0; i < h.nrcpt && !back; i++)
			back = rcpt_state(f, h.rcpt[i], 0) == R_BACK;
		ok = back;
		for (i = 0; i < h.nrcpt && ok; i++)
			ok = rcpt_state(f, h.rcpt[i], 1) != R_WAIT;
		if (ok && ndue == cap) {
			cap = cap ? cap * 2 : 64;
			nd = realloc(due, cap * sizeof(*due));
			if (nd == NULL) {
				ok = 0;
				cap = ndue;
			} else {
				due = nd;
			}
		}
		if (ok) {
			snprintf(due[ndue].id, sizeof(due[ndue].id), "%s", h.queue_id);
			due[ndue++].arrival = h.arrival_time;
		}
		front_held_clear(&h);
		if (*nl == '\0')
			break;
	}
	free(text);
	if (ndue > 1)
		qsort(due, ndue, sizeof(*due), by_arrival);
	if (ndue >= RELEASE_BATCH) {
		n = release_batch(s, due, ndue);
		free(due);
		return n;
	}
	for (i = 0; i < ndue; i++) {
		k = 0;
		argv[k++] = (char *)"postsuper";
		if (s->postfix_config != NULL) {
			argv[k++] = (char *)"-c";
			argv[k++] = (char *)s->postfix_config;
		}
		argv[k++] = (char *)"-H";
		argv[k++] = due[i].id;
		argv[k] = NULL;
		rc = run(argv, NULL, NULL);
		if (rc != 0) {
			mr_log("agent: postsuper -H %s failed (exit %d); tried again at the next scan",
			       due[i].id, rc);
			continue;
		}
		argv[k - 2] = (char *)"-i";
		argv[0] = (char *)"postqueue";
		(void)run(argv, NULL, NULL); /* only hurries it: the queue manager sends it anyway */
		mr_log("agent: released %s (arrived %.0f)", due[i].id, due[i].arrival);
		n++;
	}
	free(due);
	return n;
}

/* ---- the loop ----------------------------------------------------------------- */

/* One ACTIVATIONS call: new users into the snapshot. Returns the number
 * of users read, -1 when the daemon gave no answer; *more when the
 * stream has more now, *new_epoch when the daemon restarted. */
static int follow_once(struct front *f, uint64_t *epoch, uint64_t *next, int *more,
		       int *new_epoch, struct mr_error *why)
{
	struct daemon_json_tok *toks = NULL;
	char req[96], ep[32], name[MR_USER_NAME_MAX + 1], *reply = NULL;
	struct mr_error err;
	uint64_t e, nx, total;
	struct daemon_client cl;
	int n, arr, i, rc = -1, max;

	*more = *new_epoch = 0;
	mr_error_clear(why);
	if (front_daemon_connect(&f->set.daemon, &cl, why) < 0)
		return -1;
	mr_error_clear(&err);
	snprintf(req, sizeof(req), "ACTIVATIONS %016llx %llu %d\n", (unsigned long long)*epoch,
		 (unsigned long long)*next, FOLLOW_PIECE);
	if (front_call(&cl, req, &reply, why) < 0)
		goto out;
	max = (int)(strlen(reply) / 2 + 16);
	toks = malloc((size_t)max * sizeof(*toks));
	if (toks == NULL)
		goto out;
	n = daemon_json_parse(reply, strlen(reply), toks, max);
	if (n < 1)
		goto out;
	daemon_json_text(reply, toks, daemon_json_get(reply, toks, 0, "ok"), ep, sizeof(ep));
	if (strcmp(ep, "true") != 0) {
		/* starting (75), refused, or a daemon without the verb */
		daemon_json_text(reply, toks, daemon_json_get(reply, toks, 0, "error"), name,
				 sizeof(name));
		mr_error_set(why, EAGAIN, "ACTIVATIONS: %s", name);
		goto out;
	}
	daemon_json_text(reply, toks, daemon_json_get(reply, toks, 0, "epoch"), ep, sizeof(ep));
	e = strtoull(ep, NULL, 16);
	nx = (uint64_t)daemon_json_num(reply, toks, daemon_json_get(reply, toks, 0, "next"), 0);
	total = (uint64_t)daemon_json_num(reply, toks, daemon_json_get(reply, toks, 0, "total"), 0);
	arr = daemon_json_get(reply, toks, 0, "users");
	if (e == 0 || arr < 0 || toks[arr].type != DAEMON_JSON_ARRAY) {
		mr_error_set(why, EPROTO, "ACTIVATIONS: a reply without epoch or users");
		goto out;
	}
	for (i = 0; i < toks[arr].size; i++) {
		daemon_json_text(reply, toks, daemon_json_index(toks, arr, i), name, sizeof(name));
		if (mr_snapshot_put(f->snapfd, name, MR_SNAP_ACTIVE, &err) < 0)
			mr_log("agent: %s", err.msg);
	}
	if (e != *epoch) {
		if (*epoch != 0)
			mr_log("agent: the daemon restarted (a new epoch): reading its activations "
			       "again");
		*new_epoch = 1;
	}
	*epoch = e;
	*next = nx;
	*more = nx < total;
	rc = toks[arr].size;
out:
	free(toks);
	free(reply);
	daemon_client_close(&cl);
	return rc;
}

static void nap(double seconds, volatile int *stop)
{
	double end = mr_monotonic() + seconds;
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	while (!*stop && mr_monotonic() < end)
		nanosleep(&ts, NULL);
}

int front_agent_run(struct front *f, const struct front_agent_settings *s, volatile int *stop,
		    struct mr_error *err)
{
	double interval = s->interval > 0 ? s->interval : 1.0;
	double rescan = s->rescan > 0 ? s->rescan : 10.0, last_scan = -1e9;
	uint64_t epoch, next, saved_epoch, saved_next;
	unsigned long passes = 0;
	int got, more, new_epoch, scan = 1, away = 0;
	struct mr_error why;

	if (f->snapfd < 0) {
		mr_error_set(err, EINVAL, "the agent needs a state folder (--state DIR)");
		return -1;
	}
	follow_load(f, &epoch, &next);
	saved_epoch = epoch;
	saved_next = next;
	mr_log("agent: following the activations from %llu (epoch %016llx)%s",
	       (unsigned long long)next, (unsigned long long)epoch,
	       s->release ? "; releasing held mail" : "");
	while (!*stop) {
		got = follow_once(f, &epoch, &next, &more, &new_epoch, &why);
		if (got < 0) {
			/* Said once per outage; the snapshot answers meanwhile. */
			if (!away)
				mr_log("agent: the daemon cannot be reached (%s); answering from "
				       "what it said last",
				       why.msg[0] ? why.msg : "no answer");
			away = 1;
		} else {
			if (away)
				mr_log("agent: the daemon answers again");
			away = 0;
			scan |= got > 0 || new_epoch;
			if ((epoch != saved_epoch || next != saved_next) &&
			    follow_save(f, epoch, next, err) == 0) {
				saved_epoch = epoch;
				saved_next = next;
			} else if (epoch != saved_epoch || next != saved_next) {
				mr_log("agent: %s", err->msg);
			}
		}
		if (more && !*stop)
			continue;
		if (s->release && (scan || mr_monotonic() - last_scan >= rescan)) {
			if (release_pass(f, s) >= 0)
				scan = 0;
			last_scan = mr_monotonic();
		}
		if (s->max_passes && ++passes >= s->max_passes)
			break;
		nap(interval, stop);
	}
	return 0;
}
