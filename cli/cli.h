/*
 * cli.h: the subcommands of the one mailrestore binary and the few helpers
 * they share. Each cmd_* takes the arguments after "mailrestore" (argv[0]
 * is the subcommand's name) and returns the process exit code (sysexits,
 * see common.h).
 */
#ifndef MR_CLI_H
#define MR_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The socket used when --socket is not given: $MAILRESTORE_SOCKET, else
 * /run/mailrestore/mailrestore.sock. */
const char *cli_default_socket(void);

/* Prints "mailrestore <cmd>: <message>" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Validates a user name from the command line. Returns 0 when valid; else
 * prints "invalid user name" and returns -1 (the caller exits 65). */
int cli_check_user(const char *cmd, const char *user);

/* Parses arg, the value of option opt ("--jobs"), as a whole number from
 * min to max. 0 with *val_r, or -1 after printing "<opt> takes <what> from
 * <min> to <max>" (what: "a number", "a percentage", ...); the caller exits
 * 64. */
/* The store options of every command that reads a source (daemon,
 * restore-user, sync, verify, backup): --format maildir|cyrus and, for
 * Cyrus, --cyrus-config-dir, --cyrus-target-config-dir and
 * --cyrus-mailboxes (docs/LAYOUT.md, "A Cyrus spool"). */
#define CLI_OPT_FORMAT 2000
#define CLI_OPT_CYRUS_CONFIG 2001
#define CLI_OPT_CYRUS_TCONFIG 2002
#define CLI_OPT_CYRUS_MBOXES 2003
#define CLI_STORE_OPTIONS                                                             \
	{ "format", required_argument, NULL, CLI_OPT_FORMAT },                        \
	{ "cyrus-config-dir", required_argument, NULL, CLI_OPT_CYRUS_CONFIG },        \
	{ "cyrus-target-config-dir", required_argument, NULL, CLI_OPT_CYRUS_TCONFIG }, \
	{ "cyrus-mailboxes", required_argument, NULL, CLI_OPT_CYRUS_MBOXES }
struct cli_store {
	int format;                 /* enum mr_store_format; 0 auto */
	const char *config_dir, *target_config_dir, *mailboxes;
};
/* The usage lines of those options. */
#define CLI_STORE_USAGE                                                                   \
	"  --format maildir|cyrus  the store on S (default: cyrus when S holds user/ or\n"   \
	"                    <h>/user/ folders with cyrus.header files, or is one of\n"    \
	"                    them, else maildir); with cyrus, S/USER and T/USER mean\n"   \
	"                    the user's folder of the spool, <h>/user/USER\n"             \
	"  --cyrus-config-dir DIR  the damaged Cyrus server's config directory: each\n"    \
	"                    user's user/<h>/<user>.seen and .sub are restored too\n"      \
	"  --cyrus-target-config-dir DIR  the live Cyrus server's config directory,\n"     \
	"                    where those files go (with --cyrus-config-dir)\n"             \
	"  --cyrus-mailboxes FILE  Cyrus's mailbox list (`ctl_mboxlist -d` output):\n"     \
	"                    a folder gone from S that it still lists is damage\n"
/* Takes option c (with its argument) into st: 1 when c is one of them, 0
 * when not, -1 after a usage error was written. */
int cli_store_option(const char *cmd, int c, const char *arg, struct cli_store *st);

int cli_number_arg(const char *cmd, const char *opt, const char *arg, const char *what,
		   uint64_t min, uint64_t max, uint64_t *val_r);

/* Daemon and its clients (cmd_daemon.c; cmd_login.c, cmd_views.c, cmd_control.c,
 * cmd_deliver.c, which share cli_private.h). */
int cmd_daemon(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_enqueue(int argc, char **argv);
int cmd_bump(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_activate(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);
int cmd_deliver(int argc, char **argv);
/* The fronts on proxy and MX hosts (cmd_agent.c, front/front.h). */
int cmd_agent(int argc, char **argv);
int cmd_release_agent(int argc, char **argv);

/* What T says of user when no daemon answers (`login --target`): 1 when
 * the user may use T/<user> (mailrestore activated it; *active_r 1) or the
 * outage never touched it (not in T/.mailrestore/affected); 0 when it is
 * touched and not active yet (or T holds no list); -1 with errno when T
 * cannot be opened. Plain libc calls: the lean login binary uses it. */
int cli_disk_verdict(const char *target, const char *user, int *active_r);

/* Delivery without a daemon (`deliver --target T`, cmd_deliver_disk.c):
 * msg (len bytes, id NULL or the --id) for user into T. Returns an exit
 * code (message printed). */
int cli_deliver_from_disk(const char *target, const char *user, const char *id, const void *msg,
			  size_t len);

/* Without a daemon (cmd_offline.c, cmd_backup.c, cmd_demo.c). */
int cmd_restore_user(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_demo(int argc, char **argv);
/* The queue journal, daemon stopped (cmd_journal.c). */
int cmd_journal(int argc, char **argv);

#endif
