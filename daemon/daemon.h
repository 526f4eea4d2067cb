/*
 * daemon.h: the restore daemon and the client side of its socket.
 *
 * How to use it (cli/cmd_daemon.c and the clients in cli/ are the users):
 *   1. Server: fill a struct daemon_settings (daemon_settings_init() gives
 *      the defaults) and call daemon_run(). It runs in the foreground until
 *      SIGTERM/SIGINT, a `SHUTDOWN` request, or (with exit_when_done) the
 *      moment no affected user is waiting, queued, restoring or syncing any
 *      more, and returns the process exit code.
 *   2. Client: daemon_client_open() connects to the socket or, with
 *      --connect HOST:PORT, over TCP (daemon_client_tls_start() then
 *      speaks TLS on it), daemon_client_call() sends one request line and
 *      reads its one-line JSON reply into a caller's buffer (the login
 *      hook's path: no allocation), or daemon_client_call_alloc() for
 *      replies of any size (`QUEUE`, `STATUS`); daemon_client_close().
 *      daemon_json_*() pick fields out of a reply.
 *
 * What daemon_run() does, in order:
 *   - locks the target (flock on T/.mailrestore/daemon.lock, not waiting):
 *     one daemon per target whatever --state says (exit 75 otherwise);
 *   - opens the engine (B, S, T) and the durable queue in the engine's state
 *     folder: a second daemon on the same state refuses to start (exit 75,
 *     "try again later": the first one is still running);
 *   - replays the queue, puts users a crash left running back in line,
 *     releases mail held for users that went active just before a crash
 *     (engine_recover), registers the affected users (engine_list_affected,
 *     or the --users file) with their background size, marks the users
 *     mailrestore already activated as active (an activation record, or a
 *     T/<user> the journal calls active; a T/<user> it did not make is
 *     merged by the user's run) and writes T/.mailrestore/affected;
 *   - listens on a Unix stream socket (mode 0660 and --socket-group, or
 *     0666 without one; what each peer may do is checked against its
 *     credentials, daemon/peer.c) and on the --listen addresses (TCP, TLS
 *     with tls_cert; only peers in an --allow network, which may call only
 *     the verbs the table marks for the network), and serves every client
 *     from one event loop with limits per peer uid or address; the
 *     protocol is docs/PROTOCOL.md;
 *   - runs `jobs` worker threads, each taking the next user from the queue
 *     (priority lane, then enqueue lane, then waiting users smallest first
 *     unless background is off) through engine_run(); a priority request
 *     that finds every worker busy with background users cancels the most
 *     recently started one (it resumes later from its work copy).
 *
 * Exit codes of daemon_run(): 0 clean stop, 64 bad settings (also a
 * --listen or --allow of another shape, a TLS certificate or key that
 * cannot be loaded), 65 a queue journal damaged in its middle (`mailrestore
 * journal`), 66 a source that looks unmounted or an unreadable --users
 * file, 69 when the socket or a --listen address cannot be served, 70/71 an internal or system error, 74 I/O error opening B/S/T
 * or the state, 75 when another daemon holds the target, the state or
 * answers on the socket.
 */
#ifndef MR_DAEMON_H
#define MR_DAEMON_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Protocol limits (docs/PROTOCOL.md). */
#define DAEMON_LINE_MAX 4096                    /* request line, newline included */
#define DAEMON_ARGS_MAX 128                     /* words in a request line */
#define DAEMON_DELIVER_MAX (64u * 1024 * 1024)  /* DELIVER body bytes */
#define DAEMON_IDLE_SECONDS 10                  /* without a complete request */
#define DAEMON_MAX_CONNS 1024                   /* clients served at once */
#define DAEMON_ID_MAX 1024                      /* DELIVER's delivery id, bytes */
#define DAEMON_RESERVED_CONNS 16                /* of them, kept for root, the daemon's
						 * user and operators */
#define DAEMON_DELIVER_MEMORY (256u * 1024 * 1024) /* DELIVER bodies in memory */
#define DAEMON_BODY_RATE (64u * 1024)           /* bytes/s a DELIVER body must keep up */
#define DAEMON_OUT_PENDING_MAX (16u * 1024 * 1024) /* reply bytes not yet read, over all
						    * clients, beyond which QUEUE and
						    * LIST are answered 75 */

/* Users in a row in attention for the same kind of reason after which
 * background work is held (status says why; `resume` goes on). */
#define DAEMON_ATTENTION_STREAK 10

struct daemon_settings {
	/* B, the per-user backup archives; may be NULL (source only). */
	const char *backups;
	/* S, the damaged partition, read only. Required. */
	const char *source;
	/* T, the spare disk. Required. */
	const char *target;
	/* Where the journal and held mail live; NULL: T/.mailrestore/state. */
	const char *state_dir;
	/* The socket path; NULL: the CLI default (cli_default_socket()). Its
	 * parent folder is created (0755) when missing. */
	const char *socket_path;
	/* A file with one user name a line: only these users are affected
	 * (invalid names are reported and skipped). NULL: every user with a
	 * backup or a source folder. */
	const char *users_file;
	/* Run after each activation as [on_active, user, T/<user>] (execvp,
	 * no shell); NULL: nothing. It is waited for at most 60 s, then killed. */
	const char *on_active;
	/* Group whose members may use the operator verbs and see every user
	 * (besides root and the daemon's own user); NULL: none. */
	const char *operator_group;
	/* Group whose members may DELIVER (besides root and the daemon's own
	 * user); NULL: none. */
	const char *deliver_group;
	/* The socket's group: the socket is made mode 0660 and given to it,
	 * so only its members (and root, and the daemon's user) may connect.
	 * NULL: mode 0666, every local user may connect. */
	const char *socket_group;
	/* Worker threads; >= 1 (default 2). */
	int jobs;
	/* 1: waiting users are restored in the background, smallest first;
	 * 0: only users someone asked for (login, enqueue, bump). Default 1. */
	int background;
	/* 1: exit 0 once no user is waiting, queued, restoring or syncing. */
	int exit_when_done;
	/* 1: start even when the source looks unmounted (no user folders, or
	 * far fewer than users with backups; engine_census_suspicious()).
	 * Default 0: such a start is refused with MR_EX_NOINPUT. */
	int allow_empty_source;
	/* 1: a user who logs in before its restore gets an empty Maildir at
	 * once (engine_dial_tone) and is let in; the history follows. */
	int dial_tone;
	/* The store and its Cyrus files (struct engine_config in
	 * engine/engine.h): MR_FORMAT_AUTO (0) finds it on the source. */
	enum mr_store_format format;
	const char *cyrus_config_dir, *cyrus_target_config_dir, *cyrus_mailboxes;
	/* The attic guard of each user's sync (percent); < 0: default 50. */
	int max_remove_pct;
	/* Its minimum count where no mailbox index decides; 0: default 10,
	 * < 0: none. */
	int min_remove_files;
	/* Seconds a connection may stay without a complete request; 0: the
	 * default DAEMON_IDLE_SECONDS. */
	double idle_seconds;
	/* Group commit delay of the queue's journal; 0: the queue's default. */
	double commit_delay;
	/* Clients served at once; 0: DAEMON_MAX_CONNS. The last
	 * DAEMON_RESERVED_CONNS (at most a quarter) are only for root, the
	 * daemon's user and operators, so the operator and a privileged login
	 * hook always get in. */
	int max_clients;
	/* Clients of one peer uid at once (root, the daemon's user and
	 * operators are not limited); 0: a quarter of max_clients. */
	int max_clients_per_uid;
	/* DELIVER bodies held in memory at once, over all clients; one peer
	 * uid may use at most half of it. 0: DAEMON_DELIVER_MEMORY. */
	uint64_t deliver_memory;
	/* Held mail limits (struct mail_limits in mail/mail.h; 0: defaults):
	 * messages and bytes per user, over all users, and the free space to
	 * keep on the file system that holds them. */
	uint64_t held_user_messages, held_user_bytes;
	uint64_t held_total_messages, held_total_bytes;
	uint64_t held_reserve_bytes;
	/* Network listeners (daemon/transport.c): "ADDR:PORT" each, IPv4
	 * ("127.0.0.2:7790") or IPv6 ("[::1]:7790"); nlisten of them (at most
	 * DAEMON_LISTEN_MAX). Network peers may only call the verbs the table
	 * marks for them (docs/PROTOCOL.md). */
	const char *const *listen;
	int nlisten;
	/* Networks whose peers a listener serves: CIDRs ("10.1.0.0/16",
	 * "2001:db8::/48"; a bare address is /32 or /128); nallow of them (at
	 * most DAEMON_ALLOW_MAX). Nobody is allowed unless named: any other
	 * peer is closed at once, before a byte of the protocol. */
	const char *const *allow;
	int nallow;
	/* TLS on every listener: the certificate chain and its key (PEM);
	 * NULL: plain TCP. With tls_client_ca (PEM), peers must show a
	 * certificate that CA signed. TLS 1.2 at least. */
	const char *tls_cert, *tls_key, *tls_client_ca;
};

/* At most so many --listen and --allow. */
#define DAEMON_LISTEN_MAX 16
#define DAEMON_ALLOW_MAX 256

/* Sets the defaults described above (everything NULL, jobs 2, background 1,
 * max_remove_pct -1). */
void daemon_settings_init(struct daemon_settings *s);

/* Runs the daemon in the foreground (see the top of this file). Logs to
 * stderr. Returns the process exit code. */
int daemon_run(const struct daemon_settings *settings);

/* ---- client side ----------------------------------------------------- */

/* A connection to the daemon: the Unix socket, or TCP (TLS when
 * daemon_client_tls_start() ran on it). Zero it, or fill it with
 * daemon_client_open(); daemon_client_close() ends it. */
struct daemon_client {
	int fd;               /* -1: not connected */
	void *tls;            /* the TLS session (client_tls.c); NULL: plain */
	/* Set by client_tls.c: the TLS session's I/O (NULL: plain fd), so
	 * client.c needs no TLS library and the lean login hook loads none. */
	ssize_t (*send)(struct daemon_client *c, const void *p, size_t len);
	ssize_t (*recv)(struct daemon_client *c, void *p, size_t len);
	void (*end)(struct daemon_client *c);
};

/* Connects to the daemon: to connect ("HOST:PORT", "[IPV6]:PORT"; HOST a
 * name or an address) over TCP when it is not NULL, else to the Unix
 * socket at path; later reads and writes time out after timeout_seconds
 * (so does the TCP connect). Returns 0, or -1 with err (errnum is the
 * connect() errno: ENOENT/ECONNREFUSED mean no daemon; EINVAL a connect
 * string of another shape; EHOSTUNREACH a HOST that does not resolve). */
int daemon_client_open(struct daemon_client *c, const char *path, const char *connect,
		       double timeout_seconds, struct mr_error *err);
/* Speaks TLS on c (a TCP connection; client_tls.c, which links OpenSSL):
 * the server's certificate must be signed by the CA in ca_file (PEM) and
 * name host (a name or an IP address); cert_file and key_file (both or
 * neither) are the client's certificate for --tls-client-ca. TLS 1.2 at
 * least. Returns 0, or -1 with err (errnum EPROTO for a failed handshake,
 * with OpenSSL's reason in the message). */
int daemon_client_tls_start(struct daemon_client *c, const char *host, const char *ca_file,
			    const char *cert_file, const char *key_file, struct mr_error *err);
/* Ends c (a TLS session first); fd becomes -1. A zeroed or closed c is
 * fine. */
void daemon_client_close(struct daemon_client *c);

/* Sends req (len bytes; it must end with '\n') and, when body is not NULL,
 * body_len raw bytes after it; then reads the one-line reply into buf (size
 * len, NUL terminated, the newline removed). Allocates nothing. Returns 0,
 * or -1 with err (a reply longer than the buffer is an error, EMSGSIZE). */
int daemon_client_call(struct daemon_client *c, const char *req, size_t req_len,
		       const void *body, size_t body_len, char *buf, size_t len,
		       struct mr_error *err);

/* Same, for replies of any size: *reply_r is malloc'd (caller frees). */
int daemon_client_call_alloc(struct daemon_client *c, const char *req, size_t req_len,
			     char **reply_r, struct mr_error *err);

/* ---- reading replies -------------------------------------------------
 * A tiny JSON reader for the daemon's replies. daemon_json_parse() splits
 * text into at most max tokens (objects, arrays, strings, primitives) in
 * document order; a token's size is its number of members (objects: keys)
 * or elements (arrays). Strings point into the text, still escaped. */
enum daemon_json_type {
	DAEMON_JSON_OBJECT = 1,
	DAEMON_JSON_ARRAY,
	DAEMON_JSON_STRING,
	DAEMON_JSON_PRIMITIVE, /* number, true, false, null */
};
struct daemon_json_tok {
	enum daemon_json_type type;
	int start, end;  /* byte range in the text (strings: without quotes) */
	int size;        /* members or elements */
	int next;        /* index of the token after this one and its children */
};

/* Returns the number of tokens, or -1 when text is not valid JSON or needs
 * more than max tokens. */
int daemon_json_parse(const char *text, size_t len, struct daemon_json_tok *toks, int max);
/* Index of the value of key in the object at index obj, or -1. */
int daemon_json_get(const char *text, const struct daemon_json_tok *toks, int obj,
		    const char *key);
/* Index of the i-th element of the array at index arr, or -1. */
int daemon_json_index(const struct daemon_json_tok *toks, int arr, int i);
/* The string (unescaped, truncated to len) or primitive text at index i
 * into buf; "" for a missing (-1) token. Returns buf. */
const char *daemon_json_text(const char *text, const struct daemon_json_tok *toks, int i,
			     char *buf, size_t len);
/* The number at index i; def when missing, null or not a number (also
 * beyond a double's range, or longer than 63 characters). */
double daemon_json_num(const char *text, const struct daemon_json_tok *toks, int i, double def);
/* 1 when the token at index i is the primitive null or missing. */
int daemon_json_is_null(const char *text, const struct daemon_json_tok *toks, int i);

#endif
