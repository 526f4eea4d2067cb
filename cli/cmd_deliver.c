/*
 * cmd_deliver.c: `mailrestore deliver`, the delivery agent's command: reads
 * the message from stdin and hands it to the daemon (`DELIVER`, then the
 * body), or, when no daemon answers and the target is known, to the
 * delivery from disk (cmd_deliver_disk.c).
 */
#include "cli/cli.h"
#include "cli/cli_private.h"
#include "common/common.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- deliver -------------------------------------------------------------- */

static void deliver_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore deliver [--socket PATH | --connect HOST:PORT] [--target T] [--json] [--id ID]\n"
		"                           [--] USER < message\n\n"
		"Delivers the message on stdin (at most 64 MiB) for USER: into the Maildir\n"
		"T/USER (tmp/ then new/) when USER is active, else held durably and released\n"
		"into new/, in arrival order, when USER goes active. Exit 0 only once the\n"
		"message is safe on disk; 65 invalid name or message too large, 67 a user the\n"
		"outage does not touch, 69 no daemon, 74 reading stdin failed, 75 the daemon\n"
		"could not store it now or a held-mail limit is reached (try again later),\n"
		"77 only root, the daemon's user and --deliver-group may deliver.\n"
		"--id ID: the delivery agent's id for this message and recipient (Postfix:\n"
		"${queue_id} and ${recipient}); a delivery repeated with the same ID\n"
		"(its confirmation was lost) succeeds without storing a second copy. Ids are\n"
		"remembered for 7 days.\n"
		"--target T (or MAILRESTORE_TARGET): when no daemon answers, deliver from\n"
		"the disk: into T/USER for a user mailrestore activated or one the outage\n"
		"never touched (67 when it has no mailbox there), 75 for a touched user not\n"
		"active yet; --id is honoured the same way.\n");
	fputs("\n" CLI_CONNECT_HELP, out);
}

/* Takes "--id ID" / "--id=ID" out of argv (before any "--"): *id_r gets ID
 * with the bytes the protocol cannot carry (space, control, non-ASCII, '%')
 * written as %XX into id (size DAEMON_ID_MAX + 1), or NULL without --id.
 * Returns the new argc, or -1 for a missing, empty or too long ID. */
static int take_id_option(int argc, char **argv, char *id, const char **id_r)
{
	const char *raw = NULL;
	int i, n = 1;
	size_t len = 0;

	*id_r = NULL;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--id") == 0) {
			if (i + 1 >= argc)
				return -1;
			raw = argv[++i];
		} else if (strncmp(argv[i], "--id=", 5) == 0) {
			raw = argv[i] + 5;
		} else {
			argv[n++] = argv[i];
		}
	}
	if (raw == NULL)
		return n;
	for (; *raw != '\0'; raw++) {
		unsigned char ch = (unsigned char)*raw;

		if (len + 3 > DAEMON_ID_MAX)
			return -1;
		if (ch <= 0x20 || ch >= 0x7f || ch == '%')
			len += (size_t)snprintf(id + len, 4, "%%%02X", ch);
		else
			id[len++] = (char)ch;
	}
	id[len] = '\0';
	if (len == 0)
		return -1;
	*id_r = id;
	return n;
}

/* Reads all of fd (at most max bytes; more is an error, EFBIG). */
static int read_all(int fd, size_t max, char **buf_r, size_t *len_r)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap), *p;
	ssize_t n;

	if (buf == NULL)
		return -1;
	for (;;) {
		if (len == cap) {
			if (cap > max) {
				free(buf);
				errno = EFBIG;
				return -1;
			}
			p = realloc(buf, cap * 2);
			if (p == NULL) {
				free(buf);
				return -1;
			}
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		free(buf);
		errno = EFBIG;
		return -1;
	}
	*buf_r = buf;
	*len_r = len;
	return 0;
}

/* `mailrestore deliver USER`: see deliver_usage. */
int cmd_deliver(int argc, char **argv)
{
	char req[MR_USER_NAME_MAX + DAEMON_ID_MAX + 48], *msg = NULL, held[8];
	char idbuf[DAEMON_ID_MAX + 1];
	const char *id;
	struct cli_opts o;
	struct mr_error err;
	struct cli_reply r;
	size_t len = 0;
	struct daemon_client cl = { .fd = -1 };
	int rc;

	memset(&r, 0, sizeof(r));
	argc = take_id_option(argc, argv, idbuf, &id);
	if (argc < 0) {
		cli_error("deliver", "--id takes a non-empty ID of at most %d bytes", DAEMON_ID_MAX / 3);
		return MR_EX_USAGE;
	}
	if (cli_parse_opts("deliver", argc, argv, CLI_OPT_JSON | CLI_OPT_TARGET, &o) < 0)
		return MR_EX_USAGE;
	if (o.target == NULL && (o.target = getenv("MAILRESTORE_TARGET")) != NULL &&
	    o.target[0] == '\0')
		o.target = NULL;
	if (o.help) {
		deliver_usage(stdout);
		return MR_EX_OK;
	}
	if (o.nargs != 1) {
		deliver_usage(stderr);
		return MR_EX_USAGE;
	}
	if (cli_check_user("deliver", o.args[0]) < 0)
		return MR_EX_DATAERR;
	if (read_all(STDIN_FILENO, DAEMON_DELIVER_MAX, &msg, &len) < 0) {
		if (errno == EFBIG) {
			cli_error("deliver", "message larger than 64 MiB");
			return MR_EX_DATAERR;
		}
		cli_error("deliver", "reading the message from stdin failed: %s", strerror(errno));
		return MR_EX_IOERR;
	}
	mr_error_clear(&err);
	rc = cli_connect("deliver", &o, 120.0, &cl, &err);
	if (rc < 0 && o.target != NULL && err.errnum != EACCES && err.errnum != EPERM) {
		rc = cli_deliver_from_disk(o.target, o.args[0], id, msg, len);
		goto out;
	}
	if (rc < 0)
		rc = cli_unreachable("deliver", o.where, &err);
	if (rc != 0)
		goto out;
	snprintf(req, sizeof(req), "DELIVER %s %zu%s%s\n", o.args[0], len, id ? " " : "",
		 id ? id : "");
	rc = cli_call_on("deliver", o.where, &cl, req, &r);
	if (rc == MR_EX_UNAVAILABLE)
		rc = MR_EX_TEMPFAIL;
	if (rc != 0)
		goto out;
	cli_reply_free(&r);
	/* The daemon said "send": the body goes as it is, then the verdict. */
	{
		char *text = NULL;

		if (len > 0 && daemon_client_call_alloc(&cl, msg, len, &text, &err) < 0) {
			cli_error("deliver", "the daemon did not confirm the message: %s", err.msg);
			rc = MR_EX_TEMPFAIL;
			goto out;
		}
		if (len == 0 && daemon_client_call_alloc(&cl, "", 0, &text, &err) < 0) {
			cli_error("deliver", "the daemon did not confirm the message: %s", err.msg);
			rc = MR_EX_TEMPFAIL;
			goto out;
		}
		rc = cli_parse_reply("deliver", text, &r);
	}
	if (rc != 0)
		goto out;
	if (o.json)
		puts(r.text);
	else if (strcmp(cli_str(&r, 0, "held", held, sizeof(held)), "true") == 0)
		printf("held for %s until the mailbox is restored\n", o.args[0]);
	else
		printf("delivered to %s\n", o.args[0]);
out:
	daemon_client_close(&cl);
	cli_reply_free(&r);
	free(msg);
	return rc;
}
