/*
 * util.c: the few helpers every subcommand shares (the default socket, error
 * lines, user-name checks). Kept apart from main.c so the lean login hook
 * binary (cli/hook/) can use them without the whole command table.
 */
#include "cli/cli.h"
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *cli_default_socket(void)
{
	const char *s = getenv("MAILRESTORE_SOCKET");

	return (s && *s) ? s : MR_SOCKET_DEFAULT;
}

void cli_error(const char *cmd, const char *fmt, ...)
{
	char msg[2048], safe[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages carry the daemon's words and file names: one line, no
	 * terminal control. */
	fprintf(stderr, "mailrestore %s: %s\n", cmd, mr_escape(msg, safe, sizeof(safe)));
}

int cli_check_user(const char *cmd, const char *user)
{
	if (mr_user_name_valid(user))
		return 0;
	fprintf(stderr, "mailrestore %s: invalid user name\n", cmd);
	return -1;
}

int cli_number_arg(const char *cmd, const char *opt, const char *arg, const char *what,
		   uint64_t min, uint64_t max, uint64_t *val_r)
{
	uint64_t v;

	if (mr_parse_u64(arg, &v) < 0 || v < min || v > max) {
		cli_error(cmd, "%s takes %s from %llu to %llu", opt, what, (unsigned long long)min,
			  (unsigned long long)max);
		return -1;
	}
	*val_r = v;
	return 0;
}

int cli_store_option(const char *cmd, int c, const char *arg, struct cli_store *st)
{
	enum mr_store_format f;

	switch (c) {
	case CLI_OPT_FORMAT:
		if (mr_store_format_parse(arg, &f) < 0) {
			cli_error(cmd, "--format takes maildir or cyrus");
			return -1;
		}
		st->format = (int)f;
		return 1;
	case CLI_OPT_CYRUS_CONFIG: st->config_dir = arg; return 1;
	case CLI_OPT_CYRUS_TCONFIG: st->target_config_dir = arg; return 1;
	case CLI_OPT_CYRUS_MBOXES: st->mailboxes = arg; return 1;
	default: return 0;
	}
}
