/*
 * mailrestore_login.c: `mailrestore-login USER`, the login hook alone.
 *
 * It is `mailrestore login` (the very same code, cli/cmd_login.c, with
 * cli/client.c and cli/util.c) in a binary that links nothing but libc:
 * the full binary pulls in libarchive and, through it, libxml2, ICU and
 * libstdc++, whose loading costs a few milliseconds before main() on every
 * login. Same arguments, output and exit codes as `mailrestore login`.
 */
#include "cli/cli.h"

#include <signal.h>

int main(int argc, char **argv)
{
	char name[] = "login";

	signal(SIGPIPE, SIG_IGN);
	argv[0] = name;
	return cmd_login(argc, argv);
}
