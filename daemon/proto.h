/*
 * proto.h: the daemon's request verbs as one table, and the steps a request
 * line takes before a verb runs. Private to daemon/ and its tests; it needs
 * no daemon, so tests drive it without daemon_private.h.
 *
 * How a request line is handled (daemon_proto_request() in proto.c):
 *   1. daemon_proto_parse() splits the line into words and finds the verb
 *      in the table; it refuses an over-long line, an empty one, too many
 *      words and an unknown verb.
 *   2. daemon_proto_check() compares the caller's rights (PEER_*, which
 *      peer.c works out, and only when the verb needs some or the peer
 *      came over the network) with the verb's, then checks the shape of
 *      the arguments.
 *   3. The verb's handler runs on the event loop: it answers at once,
 *      parks the answer until the queue's journal has it on disk, or hands
 *      the work to a task thread (daemon_verb_on_task()).
 * A refusal is a complete reply in the caller's buffer; close_after says
 * the connection must close after it (raw bytes may follow the line).
 */
#ifndef MR_DAEMON_PROTO_H
#define MR_DAEMON_PROTO_H

#include "daemon/buf.h"
#include "daemon/daemon.h"

/* What a peer may do beyond LOGIN, STATUS, PING, QUEUE and its own SHOW,
 * and where it came from. */
enum {
	PEER_OPERATOR = 1 << 0, /* operator verbs; SHOW and QUEUE of anyone */
	PEER_DELIVER = 1 << 1,  /* DELIVER */
	PEER_NETWORK = 1 << 2,  /* came over a --listen: only the verbs the
				 * table marks for the network (SHOW of any
				 * user, without its counters); never with
				 * the two above */
};

/* One row of the table of verbs (proto.c). */
struct daemon_verb;

/* A request line split into words. */
struct daemon_request {
	const struct daemon_verb *verb; /* set when parsed */
	int argc;
	char *argv[DAEMON_ARGS_MAX];    /* point into the line; argv[0] the verb */
	int close_after;                /* the reply must be the connection's last */
};

/* Splits line (len bytes, NUL terminated, the newline removed; len >=
 * DAEMON_LINE_MAX: no newline came within the limit, line is not read)
 * at spaces and tabs
 * into r and finds its verb (case does not matter). Returns 0, or -1 with
 * the refusal (64) written into reply. */
int daemon_proto_parse(char *line, size_t len, struct daemon_request *r,
		       struct daemon_buf *reply);
/* Whether a caller with rights (PEER_*) may run r's verb (77 otherwise:
 * the rights it needs are missing, or PEER_NETWORK and the verb is not
 * for network peers)
 * and the arguments have the verb's shape (64 or 65). Returns 0, or -1
 * with the refusal written into reply. */
int daemon_proto_check(struct daemon_request *r, unsigned rights, struct daemon_buf *reply);

/* The verb named name (any case), or NULL. */
const struct daemon_verb *daemon_verb_find(const char *name);
/* The i-th row of the table, NULL past the last. */
const struct daemon_verb *daemon_verb_at(size_t i);
/* Its name in capitals. */
const char *daemon_verb_name(const struct daemon_verb *v);
/* The PEER_* rights a caller needs (0: anyone may). */
unsigned daemon_verb_rights(const struct daemon_verb *v);
/* 1 when network peers may call it (PEER_NETWORK), 0 when it is only on
 * the Unix socket. */
int daemon_verb_network(const struct daemon_verb *v);
/* 1 when its work runs on a task thread, 0 when on the event loop. */
int daemon_verb_on_task(const struct daemon_verb *v);

#endif
