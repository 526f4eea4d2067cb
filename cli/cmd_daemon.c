/*
 * cmd_daemon.c: `mailrestore daemon`: parses the command line into a
 * struct daemon_settings and runs the daemon in the foreground
 * (daemon/daemon.h says what it does; docs/PROTOCOL.md how to talk to it).
 */
#include "cli/cli.h"
#include "common/common.h"
#include "daemon/daemon.h"
#include "front/front.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void daemon_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore daemon --backups B --source S --target T [--state DIR]\n"
		"         [--jobs N] [--users FILE] [--background on|off] [--on-active CMD]\n"
		"         [--exit-when-done] [--allow-empty-source] [--dial-tone] [--socket PATH]\n"
		"         [--socket-group GROUP] [--operator-group GROUP] [--deliver-group GROUP]\n"
		"         [--max-remove PCT] [--min-remove N] [--max-clients N]\n"
		"         [--max-clients-per-uid N] [--idle-timeout SEC] [--deliver-memory SIZE]\n"
		"         [--held-max-messages N] [--held-max-bytes SIZE]\n"
		"         [--held-total-messages N] [--held-total-bytes SIZE] [--held-reserve SIZE]\n"
		"         [--format maildir|cyrus] [--cyrus-config-dir DIR]\n"
		"         [--cyrus-target-config-dir DIR] [--cyrus-mailboxes FILE]\n"
		"         [--listen ADDR:PORT]... [--allow CIDR]... [--tls-cert FILE --tls-key FILE\n"
		"         [--tls-client-ca FILE]] [--auth-http ADDR:PORT --backend-map FILE]\n"
		"         [--policy ADDR:PORT]\n\n"
		"Runs the restore daemon in the foreground, logging to stderr. Every affected\n"
		"user (a backup in B or a folder in S, or the names in --users FILE, one a\n"
		"line) is restored from its newest backup, synced against the read-only\n"
		"source S and made active as T/<user>. Users who log in (or are enqueued with\n"
		"--priority, or bumped) go first, in the order they asked; the others follow\n"
		"in the background, smallest first (--background off: only users someone\n"
		"asked for). A priority user that finds every worker busy pauses the\n"
		"background user started last; it resumes later from its work copy.\n"
		"Only a T/<user> that mailrestore activated counts as active. One the mail\n"
		"server made before the user's restore is merged: the restore gets what it\n"
		"holds that the restore lacks (nothing is overwritten), takes its place in\n"
		"one atomic exchange, and the old tree goes to the attic.\n\n"
		"  --jobs N              worker threads (default 2)\n"
		"  --state DIR           journal and held mail (default T/.mailrestore/state)\n"
		"  --on-active CMD       run CMD USER T/USER after each activation (no shell)\n"
		"  --exit-when-done      exit 0 once every user is active or in attention\n"
		"  --dial-tone           a user who logs in before its restore is let in at\n"
		"                        once to an empty mailbox T/USER that takes new mail;\n"
		"                        the history is merged in when its turn comes\n"
		"  --allow-empty-source  start even though S holds no user folders, or far\n"
		"                        fewer than have backups (without it such a start\n"
		"                        is refused with exit 66: S is most likely not\n"
		"                        mounted)\n"
		"  --socket PATH         the client socket (default %s)\n"
		"  --socket-group G      the socket is mode 0660, group G: only G's members\n"
		"                        (and root) may connect (default: mode 0666, anyone)\n"
		"  --operator-group G    members of G may use the operator commands and see\n"
		"                        every user (others see only themselves); exit 77\n"
		"  --deliver-group G     members of G may deliver mail (besides root and the\n"
		"                        daemon's user); exit 77 for anyone else\n"
		"  --max-remove PCT      attic guard of each sync (default 50): missing messages\n"
		"                        a folder's mailbox index still lists, or files no index\n"
		"                        shows deleted, above PCT%% stop the sync (attention)\n"
		"  --min-remove N        the files no index shows deleted must also be at least\n"
		"                        N (default 10; 0: the percentage alone)\n"
		"  --max-clients N       connections at once (default 1024; 16 of them kept\n"
		"                        for root, the daemon's user and operators)\n"
		"  --max-clients-per-uid N  connections of one other user (default a quarter\n"
		"                        of --max-clients)\n"
		"  --idle-timeout SEC    close a client idle that long (default 10)\n"
		"  --deliver-memory SIZE messages being received at once (default 256M;\n"
		"                        one user may use half)\n"
		"  --held-max-messages N held mail per user (default 1000)\n"
		"  --held-max-bytes SIZE held mail per user (default 256M)\n"
		"  --held-total-messages N  held mail over all users (default 1000000)\n"
		"  --held-total-bytes SIZE  held mail over all users (default a fifth of\n"
		"                        the file system holding it)\n"
		"  --held-reserve SIZE   free space held mail always leaves (default 5%%\n"
		"                        of that file system, at least 64M); over any\n"
		"                        held-mail limit `deliver` exits 75 (try later)\n"
		"  --listen ADDR:PORT    also serve the network there (repeatable; IPv4\n"
		"                        127.0.0.2:7790, IPv6 [::1]:7790); network peers may\n"
		"                        only log users in, show users and follow activations\n"
		"  --allow CIDR          network peers served (repeatable; 10.1.0.0/16,\n"
		"                        2001:db8::/48, a bare address is one host); one list\n"
		"                        for --listen, --auth-http and --policy: any other\n"
		"                        peer is closed before a byte (logged with its\n"
		"                        address). Without any --allow, --listen serves\n"
		"                        nobody and --auth-http/--policy serve loopback only\n"
		"  --tls-cert FILE       with --tls-key FILE: every --listen speaks TLS (1.2\n"
		"                        or later) with this certificate chain (PEM)\n"
		"  --tls-client-ca FILE  network peers must show a certificate this CA signed\n"
		"  --auth-http ADDR:PORT nginx's mail auth_http on this host (single-host set-ups;\n"
		"                        on proxies `mailrestore agent` serves it): the queue\n"
		"                        line and Auth-Wait for a user not back, else the\n"
		"                        backend of --backend-map FILE ('USER HOST:PORT' lines,\n"
		"                        '*' for everyone else)\n"
		"  --policy ADDR:PORT    Postfix's policy service on this host: HOLD for a\n"
		"                        recipient not back yet, DUNNO otherwise\n"
		CLI_STORE_USAGE
		"With a Cyrus store T/USER is the user's folder of the spool (user/USER or\n"
		"<h>/user/USER), --on-active gets that path, and --dial-tone and `deliver`\n"
		"are refused (mail reaches Cyrus over LMTP: hold it in the MTA).\n"
		"SIZE takes a K, M or G suffix. --max-clients-per-uid holds each network\n"
		"address too.\n\n"
		"The queue and every user's state survive kill -9; restart resumes. SIGTERM\n"
		"(or `mailrestore shutdown`) stops cleanly: running users resume at the next\n"
		"start. Exit: 0 clean stop, 64 usage, 65 the queue journal is damaged in the\n"
		"middle (the message names the offset; see `mailrestore journal --help`),\n"
		"66 the source looks unmounted or the --users file is unreadable, 69 the\n"
		"socket or a --listen address cannot be served, 74 I/O error on B, S, T or the state, 75 another\n"
		"daemon already runs on this target, state or socket.\n",
		cli_default_socket());
}

/* A size: digits and an optional K, M or G (powers of 1024). 0 or -1. */
static int parse_size(const char *s, uint64_t *val_r)
{
	char num[32];
	size_t n = strlen(s);
	unsigned shift = 0;
	uint64_t v;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	}
	if (shift)
		num[n - 1] = '\0';
	if (mr_parse_u64(num, &v) < 0 || v > (UINT64_MAX >> shift))
		return -1;
	*val_r = v << shift;
	return 0;
}

/* --auth-http and --policy beside the daemon: the same front as on the
 * proxies and MX hosts (front/front.h), on threads of its own that ask the
 * daemon over its own socket (as the daemon's user: every right), so the
 * event loop knows nothing of them; while the daemon starts, T answers. */
struct daemon_fronts {
	const char *auth_http, *policy, *backend_map;
	struct mr_cidr allow[DAEMON_ALLOW_MAX]; /* --allow, the listeners' too */
	size_t nallow;                          /* 0: loopback only */
};

static int run_with_fronts(const struct daemon_settings *s, const struct daemon_fronts *df)
{
	struct front_settings fs;
	struct front_server *srv = NULL;
	struct front *f = NULL;
	struct mr_error err;
	int rc;

	front_settings_init(&fs);
	fs.daemon.socket = s->socket_path;
	fs.target = s->target;
	fs.backend_map = df->backend_map;
	fs.allow = df->allow;
	fs.n_allow = df->nallow;
	mr_error_clear(&err);
	if (front_new(&fs, &f, &err) < 0) {
		cli_error("daemon", "%s", err.msg);
		return MR_EX_NOINPUT;
	}
	if (front_serve_start(f, df->auth_http, df->policy, &srv, &err) < 0) {
		cli_error("daemon", "%s", err.msg);
		front_free(&f);
		return MR_EX_UNAVAILABLE;
	}
	rc = daemon_run(s);
	front_serve_stop(&srv);
	front_free(&f);
	return rc;
}

/* `mailrestore daemon ...` (see daemon_usage). */
int cmd_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backups", required_argument, NULL, 'b' },
		{ "source", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "state", required_argument, NULL, 'S' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "users", required_argument, NULL, 'u' },
		{ "background", required_argument, NULL, 'g' },
		{ "on-active", required_argument, NULL, 'a' },
		{ "exit-when-done", no_argument, NULL, 'x' },
		{ "allow-empty-source", no_argument, NULL, 'E' },
		{ "dial-tone", no_argument, NULL, 'T' },
		{ "socket", required_argument, NULL, 'k' },
		{ "operator-group", required_argument, NULL, 'o' },
		{ "max-remove", required_argument, NULL, 'm' },
		{ "socket-group", required_argument, NULL, 'G' },
		{ "deliver-group", required_argument, NULL, 'D' },
		{ "max-clients", required_argument, NULL, 'C' },
		{ "max-clients-per-uid", required_argument, NULL, 'U' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "deliver-memory", required_argument, NULL, 1000 },
		{ "held-max-messages", required_argument, NULL, 1001 },
		{ "held-max-bytes", required_argument, NULL, 1002 },
		{ "held-total-messages", required_argument, NULL, 1003 },
		{ "held-total-bytes", required_argument, NULL, 1004 },
		{ "held-reserve", required_argument, NULL, 1005 },
		{ "min-remove", required_argument, NULL, 'M' },
		{ "listen", required_argument, NULL, 1010 },
		{ "allow", required_argument, NULL, 1011 },
		{ "tls-cert", required_argument, NULL, 1012 },
		{ "tls-key", required_argument, NULL, 1013 },
		{ "tls-client-ca", required_argument, NULL, 1014 },
		{ "auth-http", required_argument, NULL, 3000 },
		{ "backend-map", required_argument, NULL, 3001 },
		{ "policy", required_argument, NULL, 3002 },
		CLI_STORE_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *listen[DAEMON_LISTEN_MAX], *allow[DAEMON_ALLOW_MAX];
	struct daemon_settings s;
	struct daemon_fronts df;
	struct cli_store store = { 0 };
	uint64_t v;
	int c, i, r;

	memset(&df, 0, sizeof(df));
	daemon_settings_init(&s);
	s.socket_path = cli_default_socket();
	s.listen = listen;
	s.allow = allow;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': s.backups = optarg; break;
		case 's': s.source = optarg; break;
		case 't': s.target = optarg; break;
		case 'S': s.state_dir = optarg; break;
		case 'u': s.users_file = optarg; break;
		case 'a': s.on_active = optarg; break;
		case 'x': s.exit_when_done = 1; break;
		case 'E': s.allow_empty_source = 1; break;
		case 'T': s.dial_tone = 1; break;
		case 'k': s.socket_path = optarg; break;
		case 'o': s.operator_group = optarg; break;
		case 'G': s.socket_group = optarg; break;
		case 'D': s.deliver_group = optarg; break;
		case 'C':
		case 'U':
			if (cli_number_arg("daemon",
					   c == 'C' ? "--max-clients" : "--max-clients-per-uid",
					   optarg, "a number", 1, 65536, &v) < 0)
				return MR_EX_USAGE;
			if (c == 'C')
				s.max_clients = (int)v;
			else
				s.max_clients_per_uid = (int)v;
			break;
		case 'I':
			if (cli_number_arg("daemon", "--idle-timeout", optarg, "seconds", 1, 86400,
					   &v) < 0)
				return MR_EX_USAGE;
			s.idle_seconds = (double)v;
			break;
		case 1000: case 1001: case 1002: case 1003: case 1004: case 1005:
			if ((c == 1001 || c == 1003 ? mr_parse_u64(optarg, &v)
						    : parse_size(optarg, &v)) < 0 || v == 0) {
				cli_error("daemon", "%s takes a %s above 0", argv[optind - 1],
					  c == 1001 || c == 1003 ? "number" : "size (K, M, G)");
				return MR_EX_USAGE;
			}
			if (c == 1000) s.deliver_memory = v;
			if (c == 1001) s.held_user_messages = v;
			if (c == 1002) s.held_user_bytes = v;
			if (c == 1003) s.held_total_messages = v;
			if (c == 1004) s.held_total_bytes = v;
			if (c == 1005) s.held_reserve_bytes = v;
			break;
		case 1010:
			if (s.nlisten == DAEMON_LISTEN_MAX) {
				cli_error("daemon", "at most %d --listen", DAEMON_LISTEN_MAX);
				return MR_EX_USAGE;
			}
			listen[s.nlisten++] = optarg;
			break;
		case 1011:
			if (s.nallow == DAEMON_ALLOW_MAX) {
				cli_error("daemon", "at most %d --allow", DAEMON_ALLOW_MAX);
				return MR_EX_USAGE;
			}
			allow[s.nallow++] = optarg;
			break;
		case 1012: s.tls_cert = optarg; break;
		case 1013: s.tls_key = optarg; break;
		case 1014: s.tls_client_ca = optarg; break;
		case 'j':
			if (cli_number_arg("daemon", "--jobs", optarg, "a number", 1, 256, &v) < 0)
				return MR_EX_USAGE;
			s.jobs = (int)v;
			break;
		case 'm':
			if (cli_number_arg("daemon", "--max-remove", optarg, "a percentage", 0, 100,
					   &v) < 0)
				return MR_EX_USAGE;
			s.max_remove_pct = (int)v;
			break;
		case 'M':
			if (cli_number_arg("daemon", "--min-remove", optarg, "a number of files", 0,
					   1000000000, &v) < 0)
				return MR_EX_USAGE;
			s.min_remove_files = v == 0 ? -1 : (int)v;
			break;
		case 'g':
			if (strcmp(optarg, "on") == 0) {
				s.background = 1;
			} else if (strcmp(optarg, "off") == 0) {
				s.background = 0;
			} else {
				cli_error("daemon", "--background takes on or off");
				return MR_EX_USAGE;
			}
			break;
		case 3000: df.auth_http = optarg; break;
		case 3001: df.backend_map = optarg; break;
		case 3002: df.policy = optarg; break;
		case 'h':
			daemon_usage(stdout);
			return MR_EX_OK;
		case CLI_OPT_FORMAT: case CLI_OPT_CYRUS_CONFIG: case CLI_OPT_CYRUS_TCONFIG:
		case CLI_OPT_CYRUS_MBOXES:
			r = cli_store_option("daemon", c, optarg, &store);
			if (r < 0)
				return MR_EX_USAGE;
			break;
		default:
			cli_error("daemon", "unknown option '%s'", argv[optind - 1]);
			daemon_usage(stderr);
			return MR_EX_USAGE;
		}
	}
	if (optind != argc) {
		cli_error("daemon", "unexpected argument '%s'", argv[optind]);
		return MR_EX_USAGE;
	}
	if (s.source == NULL || s.target == NULL) {
		cli_error("daemon", "--source and --target are required");
		daemon_usage(stderr);
		return MR_EX_USAGE;
	}
	s.format = (enum mr_store_format)store.format;
	s.cyrus_config_dir = store.config_dir;
	s.cyrus_target_config_dir = store.target_config_dir;
	s.cyrus_mailboxes = store.mailboxes;
	if ((df.auth_http != NULL) != (df.backend_map != NULL)) {
		cli_error("daemon", "--auth-http and --backend-map go together");
		return MR_EX_USAGE;
	}
	if (df.auth_http == NULL && df.policy == NULL)
		return daemon_run(&s);
	/* The one --allow list: the daemon's listeners parse it for
	 * themselves (daemon/transport.c); the fronts get it parsed here. */
	for (i = 0; i < s.nallow; i++) {
		if (mr_cidr_parse(allow[i], &df.allow[i]) < 0) {
			cli_error("daemon", "--allow %s: not an address or a network (10.0.0.0/8, "
				  "2001:db8::/32; no bits set below the prefix)", allow[i]);
			return MR_EX_USAGE;
		}
	}
	df.nallow = (size_t)s.nallow;
	return run_with_fronts(&s, &df);
}
