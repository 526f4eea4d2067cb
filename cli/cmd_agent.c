/*
 * cmd_agent.c: `mailrestore agent` and `mailrestore release-agent`, the
 * fronts on proxy hosts and MX hosts (front/front.h): follow the daemon's
 * activations into a local snapshot, serve nginx's auth_http and Postfix's
 * policy service from it, and (release-agent) release Postfix's held mail
 * when its recipients are back. Also the options the daemon shares with
 * them (cli_front_opt).
 */
#include "cli/cli.h"
#include "common/common.h"
#include "front/front.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where an agent keeps what it learned when --state does not say (the
 * systemd unit's StateDirectory). */
#define CLI_AGENT_STATE "/var/lib/mailrestore-agent"

static volatile int agent_stop;

static void on_signal(int sig)
{
	(void)sig;
	agent_stop = 1;
}

static void agent_usage(FILE *out, const char *cmd)
{
	fprintf(out,
		"usage: mailrestore %s [--socket PATH | --connect HOST:PORT [--tls-ca FILE]\n"
		"         [--tls-cert FILE --tls-key FILE]] [--state DIR] [--policy ADDR:PORT]\n"
		"         [--auth-http ADDR:PORT --backend-map FILE] [--allow CIDR]...\n"
		"         [--postfix-config DIR] [--interval S] [--rescan S]\n\n"
		"Runs on a proxy or an MX host in front of the restore daemon. It follows\n"
		"the daemon's activations (the users who may log in and receive mail) into\n"
		"a snapshot under --state DIR (also MAILRESTORE_CLIENT_STATE; default\n"
		"/var/lib/mailrestore-agent, made when missing), so that when\n"
		"the daemon cannot be reached a user known back is still let in and anyone\n"
		"else is told to try again later, never let in or bounced.\n\n"
		"  --policy ADDR:PORT       serve Postfix's policy delegation: HOLD for a\n"
		"                           recipient not back yet, DUNNO otherwise,\n"
		"                           DEFER_IF_PERMIT while the daemon is away\n"
		"  --auth-http ADDR:PORT    serve nginx's mail auth_http: the queue line and\n"
		"                           Auth-Wait for a user not back, else Auth-Server and\n"
		"                           Auth-Port from --backend-map FILE (lines\n"
		"                           'USER HOST:PORT [imap=P] [pop3=P]', '*' for others)\n"
		"  --allow CIDR             peers the listeners serve (repeatable; default:\n"
		"                           loopback only)\n"
		"  --interval S             seconds between polls of the stream (default 1)\n"
		"  --rescan S               seconds between scans of the hold queue (default 10)\n"
		"  --postfix-config DIR     run postqueue and postsuper with -c DIR\n\n"
		"release-agent is agent plus the release: the messages in Postfix's hold\n"
		"queue whose recipients are all back (at least one of them through the\n"
		"stream) are released with postsuper -H and sent on with postqueue -i,\n"
		"oldest first. On the daemon's socket the agent needs operator rights; with\n"
		"--connect HOST:PORT (also MAILRESTORE_CONNECT) it reaches the daemon's\n"
		"--listen as a network peer (its address in the daemon's --allow; TLS with\n"
		"--tls-ca, and --tls-cert/--tls-key for --tls-client-ca). SIGTERM stops it.\n"
		"Exit 0 when stopped, 64 usage, 66 a backend map that cannot be read,\n"
		"74 a state folder that cannot be made.\n",
		cmd);
}

static int agent_main(int argc, char **argv, int release)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'k' },
		{ "connect", required_argument, NULL, 'c' },
		{ "tls-ca", required_argument, NULL, 'A' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "state", required_argument, NULL, 'S' },
		{ "policy", required_argument, NULL, 'p' },
		{ "auth-http", required_argument, NULL, 'a' },
		{ "backend-map", required_argument, NULL, 'm' },
		{ "allow", required_argument, NULL, 'w' },
		{ "postfix-config", required_argument, NULL, 'P' },
		{ "interval", required_argument, NULL, 'i' },
		{ "rescan", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = release ? "release-agent" : "agent";
	const char *policy = NULL, *auth_http = NULL;
	struct front_agent_settings as;
	struct front_settings fs;
	struct front_server *srv = NULL;
	struct front *f = NULL;
	struct mr_cidr *allow = NULL;
	struct mr_error err;
	struct sigaction sa;
	size_t nallow = 0;
	uint64_t v;
	int c, rc = MR_EX_USAGE;

	front_settings_init(&fs);
	memset(&as, 0, sizeof(as));
	as.release = release;
	fs.daemon.socket = cli_default_socket();
	fs.daemon.connect = getenv("MAILRESTORE_CONNECT");
	if (fs.daemon.connect != NULL && fs.daemon.connect[0] == '\0')
		fs.daemon.connect = NULL;
	fs.state_dir = getenv("MAILRESTORE_CLIENT_STATE");
	if (fs.state_dir != NULL && fs.state_dir[0] == '\0')
		fs.state_dir = NULL;
	allow = calloc((size_t)argc + 1, sizeof(*allow));
	if (allow == NULL)
		return MR_EX_OSERR;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': fs.daemon.socket = optarg; fs.daemon.connect = NULL; break;
		case 'c': fs.daemon.connect = optarg; break;
		case 'A': fs.daemon.tls_ca = optarg; break;
		case 'C': fs.daemon.tls_cert = optarg; break;
		case 'K': fs.daemon.tls_key = optarg; break;
		case 'S': fs.state_dir = optarg; break;
		case 'p': policy = optarg; break;
		case 'a': auth_http = optarg; break;
		case 'm': fs.backend_map = optarg; break;
		case 'P': as.postfix_config = optarg; break;
		case 'w':
			if (mr_cidr_parse(optarg, &allow[nallow]) < 0) {
				cli_error(cmd, "--allow %s: not an address or a network (10.0.0.0/8, "
					  "2001:db8::/32; no bits set below the prefix)", optarg);
				goto out;
			}
			nallow++;
			break;
		case 'i':
		case 'r':
			if (cli_number_arg(cmd, c == 'i' ? "--interval" : "--rescan", optarg,
					   "seconds", 1, 3600, &v) < 0)
				goto out;
			if (c == 'i')
				as.interval = (double)v;
			else
				as.rescan = (double)v;
			break;
		case 'h':
			agent_usage(stdout, cmd);
			rc = MR_EX_OK;
			goto out;
		default:
			cli_error(cmd, "unknown option '%s'", argv[optind - 1]);
			agent_usage(stderr, cmd);
			goto out;
		}
	}
	if (optind != argc) {
		cli_error(cmd, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (fs.state_dir == NULL)
		fs.state_dir = CLI_AGENT_STATE;
	if ((auth_http != NULL) != (fs.backend_map != NULL)) {
		cli_error(cmd, "--auth-http and --backend-map go together");
		goto out;
	}
	fs.allow = allow;
	fs.n_allow = nallow;
	if (fs.daemon.connect != NULL) {
		char host[MR_HOST_MAX];
		unsigned port;

		if (mr_hostport_split(fs.daemon.connect, host, sizeof(host), &port) < 0) {
			cli_error(cmd, "--connect %s: not HOST:PORT (or [IPV6]:PORT)",
				  fs.daemon.connect);
			goto out;
		}
	} else if (fs.daemon.tls_ca != NULL || fs.daemon.tls_cert != NULL ||
		   fs.daemon.tls_key != NULL) {
		cli_error(cmd, "--tls-ca, --tls-cert and --tls-key go with --connect");
		goto out;
	}
	if ((fs.daemon.tls_cert == NULL) != (fs.daemon.tls_key == NULL) ||
	    (fs.daemon.tls_cert != NULL && fs.daemon.tls_ca == NULL)) {
		cli_error(cmd, "--tls-cert and --tls-key go together, and with --tls-ca FILE (the "
			       "CA of the daemon's certificate)");
		goto out;
	}
	mr_error_clear(&err);
	if (front_new(&fs, &f, &err) < 0) {
		cli_error(cmd, "%s", err.msg);
		rc = fs.backend_map != NULL && err.msg[0] && strstr(err.msg, fs.backend_map)
			     ? MR_EX_NOINPUT
			     : MR_EX_IOERR;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((policy != NULL || auth_http != NULL) &&
	    front_serve_start(f, auth_http, policy, &srv, &err) < 0) {
		cli_error(cmd, "%s", err.msg);
		rc = MR_EX_UNAVAILABLE;
		goto out;
	}
	rc = front_agent_run(f, &as, &agent_stop, &err) < 0 ? MR_EX_IOERR : MR_EX_OK;
	if (rc != MR_EX_OK)
		cli_error(cmd, "%s", err.msg);
	mr_log("%s: stopped", cmd);
out:
	front_serve_stop(&srv);
	front_free(&f);
	free(allow);
	return rc;
}

int cmd_agent(int argc, char **argv)
{
	return agent_main(argc, argv, 0);
}

int cmd_release_agent(int argc, char **argv)
{
	return agent_main(argc, argv, 1);
}
