/*
 * mailrestore_login.c: `mailrestore-login USER`, the login hook alone.
 *
 * It is `mailrestore login` (the very same code, cli/cmd_login.c, with
 * cli/client.c and cli/util.c) in a binary that links nothing but libc:
 * the full binary pulls in libarchive and, through it, libxml2, ICU and
 * libstdc++, whose loading costs a few milliseconds before main() on every
 * login. Same arguments, output and exit codes as `mailrestore login`.
 *
 * It speaks to the Unix socket and, with --connect HOST:PORT (or
 * MAILRESTORE_CONNECT), plain TCP. TLS would load OpenSSL: a login with a
 * --tls-* option is handed whole to the full `mailrestore login` in the
 * same folder (execv), which answers it the same way.
 */
#include "cli/cli.h"
#include "common/common.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ARGS_MAX 64

/* execs `<this folder>/mailrestore login ARGS...`; returns only on failure
 * (69, the message printed). */
static int exec_full(int argc, char **argv)
{
	char self[PATH_MAX], *slash, *args[ARGS_MAX + 2];
	char login[] = "login";
	ssize_t n;
	int i;

	n = readlink("/proc/self/exe", self, sizeof(self) - sizeof("mailrestore"));
	if (n <= 0 || argc > ARGS_MAX) {
		fprintf(stderr, "mailrestore login: TLS needs the full mailrestore binary, which "
				"cannot be found from here; use `mailrestore login`\n");
		return MR_EX_UNAVAILABLE;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	strcpy(slash != NULL ? slash + 1 : self, "mailrestore");
	args[0] = self;
	args[1] = login;
	for (i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	args[argc + 1] = NULL;
	execv(self, args);
	fprintf(stderr, "mailrestore login: TLS needs the full binary: execv(%s) failed: %s\n",
		self, strerror(errno));
	return MR_EX_UNAVAILABLE;
}

int main(int argc, char **argv)
{
	char name[] = "login";
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strncmp(argv[i], "--tls-", 6) == 0)
			return exec_full(argc, argv);
	argv[0] = name;
	return cmd_login(argc, argv);
}
