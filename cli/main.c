/*
 * main.c: the mailrestore binary. Looks the subcommand up in one table and
 * hands it the rest of the command line.
 */
#include "cli/cli.h"
#include "cli/cli_private.h"
#include "common/common.h"
#include "daemon/daemon.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "daemon", cmd_daemon, "run the restore daemon in the foreground" },
	{ "login", cmd_login, "login hook: exit 0 when USER may log in, 75 with the queue position otherwise" },
	{ "status", cmd_status, "counts per state, throughput, workers, time left" },
	{ "queue", cmd_queue, "the priority queue in order" },
	{ "show", cmd_show, "one user's state, position, times and counters" },
	{ "watch", cmd_watch, "a live view of the daemon" },
	{ "enqueue", cmd_enqueue, "queue users (batch scripts; --priority to jump the queue)" },
	{ "bump", cmd_bump, "move a user to the front of the priority queue" },
	{ "retry", cmd_retry, "put a user in attention back in the queue" },
	{ "activate", cmd_activate, "accept a user in attention as it is" },
	{ "pause", cmd_pause, "stop starting new users" },
	{ "resume", cmd_resume, "start users again" },
	{ "shutdown", cmd_shutdown, "stop the daemon cleanly" },
	{ "deliver", cmd_deliver, "deliver a message (stdin) to USER, holding it until USER is active" },
	{ "restore-user", cmd_restore_user, "restore, sync and activate users now, without a daemon" },
	{ "sync", cmd_sync, "make DST equal SRC with the rules of a user's sync" },
	{ "verify", cmd_verify, "compare users on the target against the source" },
	{ "backup", cmd_backup, "write one archive per user of the source" },
	{ "journal", cmd_journal, "check or salvage the daemon's queue journal (daemon stopped)" },
	{ "demo", cmd_demo, "a self-contained run on generated data that checks its own result" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: mailrestore COMMAND [OPTIONS] [ARGS]\n\n"
		     "Restores a mail server's users from per-user backups and a read-only\n"
		     "damaged partition. Commands:\n\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'mailrestore COMMAND --help' describes each command.\n"
		     "Exit codes: 0 ok, 1 finished with problems, 64 usage, 65 bad input,\n"
		     "66 source looks unmounted or input missing, 67 user not affected,\n"
		     "69 daemon unreachable, 74 I/O error, 75 try later, 77 not allowed.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	/* A client whose peer went away gets EPIPE, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	/* This binary speaks TLS to the daemon (the lean login hook does not). */
	cli_tls_start = daemon_client_tls_start;
	if (argc < 2) {
		usage(stderr);
		return MR_EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return MR_EX_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("mailrestore 0.1.0\n");
		return MR_EX_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "mailrestore: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return MR_EX_USAGE;
}
