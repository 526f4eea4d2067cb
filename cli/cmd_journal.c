/*
 * cmd_journal.c: `mailrestore journal check|salvage`: what an operator runs
 * when the daemon refuses to start over a damaged queue journal (the queue
 * library does the reading: queue_journal_check()).
 */
#include "cli/cli.h"
#include "common/common.h"
#include "queue/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore journal check|salvage (--state DIR | --target T) [--json]\n\n"
		"Reads the daemon's queue journal (DIR/queue.journal; with --target,\n"
		"T/.mailrestore/state). Every record carries a sequence number and a\n"
		"checksum. Damage at the very end is a torn tail from a crash and is\n"
		"dropped by the daemon on its own; damage followed by valid records makes\n"
		"the daemon refuse to start (exit 65) with the offset.\n\n"
		"  check    reports the damage; changes nothing\n"
		"  salvage  keeps every valid record: writes a clean journal of them and\n"
		"           keeps the damaged original beside it as\n"
		"           queue.journal.damaged-<time>; start the daemon again after it\n"
		"  --json   one JSON object on stdout\n\n"
		"Stop the daemon first (both take the state folder's lock).\n"
		"Exit: 0 no damage (check) or salvaged (salvage), 1 damage found (check),\n"
		"64 usage, 66 no state folder or journal, 74 I/O error, 75 a daemon is\n"
		"using the state folder.\n");
}

static void print_report(const struct queue_journal_report *r, int salvage, int json)
{
	if (json) {
		char why[512], torn[512];
		size_t p = 0, t = 0;

		mr_json_str(why, sizeof(why), &p, r->first_damage_why);
		mr_json_str(torn, sizeof(torn), &t, r->torn_why);
		printf("{\"version\":%u,\"size\":%llu,\"records\":%llu,\"users\":%llu,"
		       "\"unapplied\":%llu,\"damaged_regions\":%llu,\"damaged_bytes\":%llu,"
		       "\"first_damage\":",
		       r->version, (unsigned long long)r->size, (unsigned long long)r->records,
		       (unsigned long long)r->users, (unsigned long long)r->unapplied,
		       (unsigned long long)r->damaged_regions,
		       (unsigned long long)r->damaged_bytes);
		if (r->damaged_regions > 0)
			printf("%llu,\"first_damage_reason\":%s", (unsigned long long)r->first_damage,
			       why);
		else
			printf("null");
		printf(",\"torn_bytes\":%llu,\"torn_offset\":", (unsigned long long)r->torn_bytes);
		if (r->torn_bytes > 0)
			printf("%llu", (unsigned long long)r->torn_offset);
		else
			printf("null");
		if (salvage)
			printf(",\"salvaged\":%s,\"kept_aside\":\"%s\"", r->aside[0] ? "true" : "false",
			       r->aside);
		printf("}\n");
		return;
	}
	printf("queue.journal: version %u, %llu bytes, %llu valid records, %llu users\n",
	       r->version, (unsigned long long)r->size, (unsigned long long)r->records,
	       (unsigned long long)r->users);
	if (r->damaged_regions > 0)
		printf("damaged: %llu stretch(es), %llu bytes; the first at offset %llu (%s)\n",
		       (unsigned long long)r->damaged_regions, (unsigned long long)r->damaged_bytes,
		       (unsigned long long)r->first_damage, r->first_damage_why);
	if (r->unapplied > 0)
		printf("not applying: %llu whole record(s)%s\n", (unsigned long long)r->unapplied,
		       salvage ? ", left out" : "");
	if (r->torn_bytes > 0)
		printf("torn tail: %llu bytes from offset %llu (%s): a crash mid-write, dropped "
		       "at start\n",
		       (unsigned long long)r->torn_bytes, (unsigned long long)r->torn_offset,
		       r->torn_why);
	if (r->damaged_regions == 0 && r->unapplied == 0)
		printf("no damage\n");
	else if (!salvage)
		printf("run `mailrestore journal salvage` with the same options to keep every "
		       "valid record\n");
	if (salvage && r->aside[0] != '\0')
		printf("salvaged: a clean journal of the valid records written; the original "
		       "is kept as %s\n", r->aside);
}

/* `mailrestore journal check|salvage`. */
int cmd_journal(int argc, char **argv)
{
	struct queue_journal_report rep;
	struct mr_error err;
	const char *state = NULL, *target = NULL, *action = NULL;
	char path[4096];
	int i, json = 0, salvage, fd = -1, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return MR_EX_OK;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
			state = argv[++i];
		} else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
			target = argv[++i];
		} else if (argv[i][0] != '-' && action == NULL) {
			action = argv[i];
		} else {
			cli_error("journal", "unknown or incomplete option '%s'", argv[i]);
			usage(stderr);
			return MR_EX_USAGE;
		}
	}
	if (action == NULL || (strcmp(action, "check") != 0 && strcmp(action, "salvage") != 0) ||
	    (state == NULL) == (target == NULL)) {
		usage(stderr);
		return MR_EX_USAGE;
	}
	salvage = strcmp(action, "salvage") == 0;
	if (state == NULL) {
		if ((size_t)snprintf(path, sizeof(path), "%s/.mailrestore/state", target) >=
		    sizeof(path)) {
			cli_error("journal", "target path too long");
			return MR_EX_USAGE;
		}
		state = path;
	}
	fd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		cli_error("journal", "open(%s) failed: %s", state, strerror(errno));
		return MR_EX_NOINPUT;
	}
	mr_error_clear(&err);
	rc = queue_journal_check(fd, salvage, &rep, &err);
	close(fd);
	if (rc < 0) {
		cli_error("journal", "%s: %s", state, err.msg);
		if (err.errnum == EWOULDBLOCK)
			return MR_EX_TEMPFAIL;
		if (err.errnum == ENOENT)
			return MR_EX_NOINPUT;
		return MR_EX_IOERR;
	}
	print_report(&rep, salvage, json);
	if (salvage)
		return MR_EX_OK;
	return rc > 0 ? MR_EX_PROBLEMS : MR_EX_OK;
}
