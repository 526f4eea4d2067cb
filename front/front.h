/*
 * front.h: what proxies and MX hosts talk to. The restore daemon sits on
 * the store host; the machines in front of it (nginx's mail proxy, Postfix
 * on an MX) ask about users through this module, which asks the daemon and
 * remembers what it learned, so that it can still answer when the daemon
 * cannot be reached.
 *
 * How to use it (cli/cmd_agent.c and cli/cmd_daemon.c are the users):
 *   1. Fill a struct front_settings (front_settings_init() gives the
 *      defaults): where the daemon is (struct front_daemon), the snapshot
 *      folder (--state), the backend map for auth_http. front_new() loads
 *      the map and opens the snapshot.
 *   2. Ask: front_ask() tells whether a user may log in and receive mail
 *      now (FRONT_OPEN), must wait (FRONT_WAIT, with the line a person
 *      reads) or cannot be told because the daemon is away and the
 *      snapshot does not know the user back (FRONT_AWAY). Every answer of
 *      the daemon is remembered in the snapshot (common.h, "what a client
 *      last learned"): a user once back stays back.
 *   3. Serve: front_serve_start() listens on the auth_http endpoint
 *      (nginx's mail proxy, ngx_mail_auth_http_module) and the Postfix
 *      policy service (SMTP access policy delegation) on threads of its
 *      own; front_serve_stop() ends them. The protocols alone, without a
 *      socket, are front_http_parse()/front_http_answer() and
 *      front_policy_parse()/front_policy_answer() (the fuzz targets and the
 *      tests call them).
 *   4. Follow and release (an MX's release agent): front_agent_run() reads
 *      the daemon's stream of activations (the verb ACTIVATIONS), keeps the
 *      snapshot, and releases from Postfix's hold queue exactly the
 *      messages whose recipients are all back, oldest first.
 *   5. front_free().
 *
 * Names: nginx's Auth-User and Postfix's recipient are mapped to user names
 * the same way (front_candidates()): the name as given when it is a valid
 * user name; then, for an address, its local part (before the last "@");
 * then, for a recipient, the local part before its first "+". The first of
 * these the daemon knows as an affected user decides; when it knows none,
 * the user is not affected (may log in, mail goes through). Case is kept.
 *
 * Thread safety: front_ask() and the protocol functions may be called from
 * any number of threads on one struct front; the rest from one thread.
 */
#ifndef MR_FRONT_H
#define MR_FRONT_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

/* ---- where the daemon is ------------------------------------------------ */

/* The one place a front finds the daemon: its Unix socket, or HOST:PORT of
 * its --listen (plain TCP, or TLS when any of the TLS files is named). A
 * network peer may call SHOW (of any user, without the counters), LOGIN,
 * PING and ACTIVATIONS: all an agent needs. */
struct front_daemon {
	const char *socket;     /* the daemon's Unix socket (used when connect is NULL) */
	const char *connect;    /* HOST:PORT of the daemon's --listen; NULL: the socket */
	const char *tls_ca;     /* with connect: the CA that signed the daemon's certificate */
	const char *tls_cert;   /* with connect: this client's certificate ... */
	const char *tls_key;    /* ... and its key (the daemon's --tls-client-ca) */
	double timeout;         /* seconds for a connect and each read or write; 0: 5 */
};

struct daemon_client;

/* Connects c to the daemon (then daemon_client_call() etc. of
 * daemon/daemon.h; daemon_client_close() ends it). 0, or -1 with err
 * (errnum ENOENT/ECONNREFUSED: nobody listens; EPROTO: the TLS handshake
 * failed, OpenSSL's reason in the message). */
int front_daemon_connect(const struct front_daemon *where, struct daemon_client *c,
			 struct mr_error *err);

/* ---- settings and the handle ---------------------------------------------- */

#define FRONT_HTTP_HEAD_MAX 8192     /* an auth_http request's head, bytes */
#define FRONT_HTTP_HEADERS_MAX 64    /* its header lines */
#define FRONT_POLICY_REQUEST_MAX 16384 /* a policy request, bytes */
#define FRONT_POLICY_ATTRS_MAX 128   /* its attribute lines */
#define FRONT_MAX_CONNS 256          /* connections served at once per listener */
#define FRONT_IDLE_SECONDS 30        /* without a complete request, then closed */
#define FRONT_AUTH_WAIT 3            /* Auth-Wait: seconds nginx holds a refused login */

struct front_settings {
	/* Where the daemon is. */
	struct front_daemon daemon;
	/* The snapshot folder (created when missing); NULL: no snapshot, so
	 * an unreachable daemon means FRONT_AWAY for everyone. */
	const char *state_dir;
	/* The target T when the front runs beside the daemon (the daemon's
	 * own --auth-http and --policy): while the daemon cannot answer (it
	 * is starting), T itself tells (as `login --target`), before the
	 * snapshot. NULL: not on the store host. */
	const char *target;
	/* auth_http's backend map (front_map_load); NULL: no auth_http. */
	const char *backend_map;
	/* Peers the listeners serve (--allow); n_allow 0: loopback only. */
	const struct mr_cidr *allow;
	size_t n_allow;
	/* Connections per listener at once; 0: FRONT_MAX_CONNS. */
	int max_conns;
	/* Seconds without a complete request before a connection closes;
	 * 0: FRONT_IDLE_SECONDS. */
	double idle_seconds;
};

/* Sets the defaults (everything 0 / NULL). */
void front_settings_init(struct front_settings *s);

struct front;

/* Loads the backend map (when named) and opens the snapshot (when named).
 * Returns 0 with *f_r, or -1 with err (the map's line and why). The
 * settings' strings must outlive the handle. */
int front_new(const struct front_settings *s, struct front **f_r, struct mr_error *err);
/* Frees *f and sets it NULL (stop the servers first). Accepts NULL. */
void front_free(struct front **f);

/* ---- asking about a user ------------------------------------------------------ */

enum front_verdict {
	FRONT_OPEN = 0, /* may log in and receive mail: active, dial tone, or not affected */
	FRONT_WAIT,     /* affected and not back yet */
	FRONT_AWAY,     /* the daemon cannot be reached (or is starting) and the
			 * snapshot does not know the user back: try again later */
	FRONT_REFUSED,  /* no user name at all (e.g. "../x"): nobody to let in */
};

enum {
	FRONT_ASK_LOGIN = 1 << 0, /* a login: LOGIN (queues the user ahead), not SHOW */
	FRONT_ASK_PLUS = 1 << 1,  /* a recipient: "user+ext" may be user */
};

struct front_answer {
	enum front_verdict verdict;
	/* The user name that decided (an affected user), or the first
	 * candidate when none is affected; "" for FRONT_REFUSED. */
	char user[MR_USER_NAME_MAX + 1];
	int affected;       /* user is one of the outage's users */
	int from_snapshot;  /* the daemon was away; the snapshot answered */
	/* For FRONT_WAIT and FRONT_AWAY: the line a person reads, the same
	 * words as `mailrestore login` ("Your mailbox is being restored from
	 * backup. There are 1837 requests in the queue before you; about 3
	 * hours."). */
	char message[512];
};

/* The user names name may stand for, in the order they are tried
 * (see the top): at most 3 into names (each MR_USER_NAME_MAX + 1 bytes).
 * Returns how many (0 when none is a valid user name). */
int front_candidates(const char *name, unsigned flags, char names[][MR_USER_NAME_MAX + 1]);

/* Asks the daemon about name (flags FRONT_ASK_*) and remembers the answer
 * in the snapshot; when the daemon cannot be reached, answers from the
 * snapshot. Fills *a; returns a->verdict. */
enum front_verdict front_ask(struct front *f, const char *name, unsigned flags,
			     struct front_answer *a);

/* ---- nginx auth_http --------------------------------------------------------
 * nginx's mail module sends an HTTP/1.0 GET whose headers say who logs in
 * (Auth-User, Auth-Pass, Auth-Method, Auth-Protocol, Auth-Login-Attempt,
 * Client-IP ...). The answer is in the headers of "HTTP/1.0 200 OK":
 *   - a user back or not affected: "Auth-Status: OK", "Auth-Server: IP",
 *     "Auth-Port: PORT" from the backend map. No Auth-Pass: nginx passes
 *     the client's own credentials on and the backend checks them
 *     (mailrestore never sees a password's worth: it does not check
 *     passwords at all). Methods whose password nginx does not hold
 *     (apop, cram-md5) are refused with a status saying so.
 *   - a user not back: "Auth-Status: <the queue line>" and
 *     "Auth-Wait: FRONT_AUTH_WAIT" (nginx sends the line after the wait
 *     and lets the client try again); from the 10th attempt of one session
 *     on, no Auth-Wait (nginx then closes, as its manual asks).
 *   - the daemon away and the user not known back: the same, with "the
 *     restore service cannot be reached; try again later".
 *   - no backend for the user in the map (no line and no "*"): a status
 *     naming the map, logged too. */
struct front_http_req {
	char user[1024];        /* Auth-User, %XX decoded ("" when missing) */
	char method[32];        /* Auth-Method: plain, login, apop, cram-md5, external */
	char protocol[16];      /* Auth-Protocol: imap, pop3, smtp */
	char client_ip[64];     /* Client-IP, for the log */
	unsigned attempt;       /* Auth-Login-Attempt (0 when missing) */
	int have_user;
};

/* Parses the request head at buf (len bytes, not NUL terminated). Returns 1
 * when a whole head (up to the empty line) was read and is valid, 0 when
 * more bytes are needed, -1 when it can never be valid (*why says why:
 * not GET, not HTTP/1.x, a header line malformed, too long, too many, a
 * NUL or control byte, a duplicate Auth-User). */
int front_http_parse(const char *buf, size_t len, struct front_http_req *r, const char **why);

/* Writes the whole response for r into out (len bytes, NUL terminated).
 * Returns its length. */
size_t front_http_answer(struct front *f, const struct front_http_req *r, char *out, size_t len);

/* The backend map (--backend-map FILE): one line per user,
 *     USER HOST:PORT [imap=PORT] [pop3=PORT] [smtp=PORT]
 * with "*" as USER for everyone else; "#" starts a comment. HOST is an IP
 * address or a name resolved once when the map is loaded (nginx needs an
 * address). A protocol's own port wins for that protocol. */
struct front_backend {
	char host[64];          /* the address, as text */
	unsigned port;          /* the default port */
	unsigned imap, pop3, smtp; /* 0: port */
};
/* The backend of user (the default "*" when the user has no line), or
 * NULL when neither. */
const struct front_backend *front_map_find(const struct front *f, const char *user);

/* ---- Postfix policy delegation ----------------------------------------------
 * Postfix's smtpd sends "name=value" lines ended by an empty line and
 * reads "action=..." and an empty line; the connection stays open for the
 * next request. Only the recipient matters:
 *   - affected and not back: "action=HOLD mailrestore: USER is being restored"
 *     (the message waits in the MX's hold queue until the release agent
 *     lets it go);
 *   - back, dial tone, not affected, or no recipient: "action=DUNNO";
 *   - the daemon away and the recipient neither known back nor known
 *     untouched: "action=DEFER_IF_PERMIT mailrestore: restore service
 *     unreachable" (a temporary refusal: never a bounce).
 * A malformed request gets "action=DEFER_IF_PERMIT mailrestore: bad policy
 * request" and the connection closes. */
struct front_policy_req {
	char recipient[1024];   /* "" when missing */
	char request[32];       /* "smtpd_access_policy" */
	char state[32];         /* protocol_state: RCPT, DATA, ... */
};
/* Parses one request at buf (len bytes). Returns the bytes it used (its
 * empty line included) when whole and valid, 0 when more are needed, -1
 * when it can never be valid (*why says why). */
long front_policy_parse(const char *buf, size_t len, struct front_policy_req *r,
			const char **why);
/* Writes the reply (action line and the empty line) into out. Returns its
 * length. */
size_t front_policy_answer(struct front *f, const struct front_policy_req *r, char *out,
			   size_t len);

/* ---- the listeners --------------------------------------------------------------- */

struct front_server;

/* Listens on auth_http (ADDR:PORT, or NULL) and policy (ADDR:PORT, or NULL)
 * and serves each connection on a thread of its own: at most max_conns
 * per listener (more wait in the kernel's backlog), idle ones closed, peers
 * outside the allowed networks closed before any byte. Returns 0 with
 * *srv_r, or -1 with err (an address that does not parse or bind). */
int front_serve_start(struct front *f, const char *auth_http, const char *policy,
		      struct front_server **srv_r, struct mr_error *err);
/* Stops listening, closes every connection and waits for the threads;
 * frees *srv and sets it NULL. Accepts NULL. */
void front_serve_stop(struct front_server **srv);

/* ---- following the activations and releasing held mail ------------------ */

struct front_agent_settings {
	/* 1: release held mail from Postfix's hold queue (release-agent). */
	int release;
	/* Postfix's configuration folder (postsuper/postqueue -c); NULL: the
	 * default instance. */
	const char *postfix_config;
	/* Seconds between polls of the stream when caught up; 0: 1. */
	double interval;
	/* Seconds between scans of the hold queue when no activation came
	 * (mail held just before its user went active); 0: 10. */
	double rescan;
	/* Stop after this many passes (tests); 0: until *stop. */
	unsigned long max_passes;
};

/* Follows the daemon's activations until *stop becomes nonzero (a signal
 * handler sets it): each new user is remembered in the snapshot (the
 * settings' state_dir, required; the place in the stream is kept there as
 * "follow"), and with release, the held messages of Postfix whose
 * recipients are now all back (and at least one of them came back through
 * the stream, so mail held for other reasons stays) are released with
 * `postsuper -H` and sent on with `postqueue -i`, oldest first (32 or more
 * due in one scan: one `postsuper -H -` reading their ids oldest first,
 * then one `postqueue -f`). The hold
 * queue is scanned at start, after each new epoch (the daemon restarted),
 * after new activations, and every rescan seconds. Releasing a message
 * twice is harmless (the second finds it gone). Returns 0, or -1 with err
 * for what cannot go on (the state folder). An unreachable daemon is
 * logged and waited for. */
int front_agent_run(struct front *f, const struct front_agent_settings *s,
		    volatile int *stop, struct mr_error *err);

/* One held message as `postqueue -j` (Postfix 3.1+) shows it. */
struct front_held {
	char queue_id[64];
	double arrival_time;
	size_t nrcpt;
	char **rcpt;            /* the recipients' addresses */
};
/* Parses one line of `postqueue -j`. Returns 1 with *h filled for a message
 * in the hold queue (front_held_clear frees it), 0 for a message in another
 * queue, -1 for a line that is not such an object. */
int front_held_parse(const char *line, size_t len, struct front_held *h);
void front_held_clear(struct front_held *h);

#endif
