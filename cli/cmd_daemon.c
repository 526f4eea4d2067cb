/*
 * cmd_daemon.c: `mailrestore daemon`: parses the command line into a
 * struct daemon_settings and runs the daemon in the foreground
 * (daemon/daemon.h says what it does; docs/PROTOCOL.md how to talk to it).
 */
#include "cli/cli.h"
#include "common/common.h"
#include "daemon/daemon.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void daemon_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore daemon --backups B --source S --target T [--state DIR]\n"
		"         [--jobs N] [--users FILE] [--background on|off] [--on-active CMD]\n"
		"         [--exit-when-done] [--socket PATH] [--operator-group GROUP]\n"
		"         [--max-remove PCT] [--min-remove N]\n\n"
		"Runs the restore daemon in the foreground, logging to stderr. Every affected\n"
		"user (a backup in B or a folder in S, or the names in --users FILE, one a\n"
		"line) is restored from its newest backup, synced against the read-only\n"
		"source S and made active as T/<user>. Users who log in (or are enqueued with\n"
		"--priority, or bumped) go first, in the order they asked; the others follow\n"
		"in the background, smallest first (--background off: only users someone\n"
		"asked for). A priority user that finds every worker busy pauses the\n"
		"background user started last; it resumes later from its work copy.\n"
		"A T/<user> that already exists at start is taken as active and left alone.\n\n"
		"  --jobs N              worker threads (default 2)\n"
		"  --state DIR           journal and held mail (default T/.mailrestore/state)\n"
		"  --on-active CMD       run CMD USER T/USER after each activation (no shell)\n"
		"  --exit-when-done      exit 0 once every user is active or in attention\n"
		"  --socket PATH         the client socket (default %s)\n"
		"  --operator-group G    members of G may use the operator commands too\n"
		"  --max-remove PCT      attic guard of each sync (default 50): missing messages\n"
		"                        a folder's mailbox index still lists, or files no index\n"
		"                        shows deleted, above PCT%% stop the sync (attention)\n"
		"  --min-remove N        the files no index shows deleted must also be at least\n"
		"                        N (default 10; 0: the percentage alone)\n\n"
		"The queue and every user's state survive kill -9; restart resumes. SIGTERM\n"
		"(or `mailrestore shutdown`) stops cleanly: running users resume at the next\n"
		"start. Exit: 0 clean stop, 64 usage, 66 --users file unreadable, 69 the\n"
		"socket cannot be served, 74 I/O error on B, S, T or the state, 75 another\n"
		"daemon already runs on this state or socket.\n",
		cli_default_socket());
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
		{ "socket", required_argument, NULL, 'k' },
		{ "operator-group", required_argument, NULL, 'o' },
		{ "max-remove", required_argument, NULL, 'm' },
		{ "min-remove", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_settings s;
	uint64_t v;
	int c;

	daemon_settings_init(&s);
	s.socket_path = cli_default_socket();
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
		case 'k': s.socket_path = optarg; break;
		case 'o': s.operator_group = optarg; break;
		case 'j':
			if (mr_parse_u64(optarg, &v) < 0 || v < 1 || v > 256) {
				cli_error("daemon", "--jobs takes a number from 1 to 256");
				return MR_EX_USAGE;
			}
			s.jobs = (int)v;
			break;
		case 'm':
			if (mr_parse_u64(optarg, &v) < 0 || v > 100) {
				cli_error("daemon", "--max-remove takes a percentage from 0 to 100");
				return MR_EX_USAGE;
			}
			s.max_remove_pct = (int)v;
			break;
		case 'M':
			if (mr_parse_u64(optarg, &v) < 0 || v > 1000000000) {
				cli_error("daemon", "--min-remove takes a number of files");
				return MR_EX_USAGE;
			}
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
		case 'h':
			daemon_usage(stdout);
			return MR_EX_OK;
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
	return daemon_run(&s);
}
