/*
 * util.c: the few helpers every subcommand shares (the default socket, error
 * lines, user-name checks). Kept apart from main.c so the lean login hook
 * binary (cli/hook/) can use them without the whole command table.
 */
#include "cli/cli.h"
#include "common/common.h"

#include <stdarg.h>
#include <stdlib.h>

const char *cli_default_socket(void)
{
	const char *s = getenv("MAILRESTORE_SOCKET");

	return (s && *s) ? s : "/run/mailrestore/mailrestore.sock";
}

void cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mailrestore %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_check_user(const char *cmd, const char *user)
{
	if (mr_user_name_valid(user))
		return 0;
	fprintf(stderr, "mailrestore %s: invalid user name\n", cmd);
	return -1;
}
