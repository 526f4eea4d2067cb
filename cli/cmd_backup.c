/*
 * cmd_backup.c: "mailrestore backup", the daily-backup side: one archive
 * per user of the source, written to a temporary name in the backups
 * folder, fsync'd, and renamed into place so a reader never sees half of
 * one.
 */
#include "cli/cli.h"
#include "common/common.h"
#include "restore/restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore backup --source S --out B [--compress lz4|zstd|gzip|none]\n"
		"                          [--dated] [--format maildir|cyrus] [USER...]\n\n"
		"Writes one archive per user folder of S to B/<user><suffix> (with --dated\n"
		"to B/<YYYY-MM-DD>/<user><suffix>, today's UTC date): a pax archive,\n"
		"lz4-compressed unless --compress says otherwise. Without USER, every folder\n"
		"of S whose name is a valid user name. Prints one line per user:\n"
		"user, files, bytes, archive.\n"
		"A Cyrus spool (--format cyrus, or found by itself: S holds user/ or\n"
		"<h>/user/ folders with cyrus.header files) gives one archive per folder\n"
		"user/<name> (or <h>/user/<name>), holding that folder's tree.\n\n"
		"Exit: 0 done, 1 some entries were unreadable (listed on stderr),\n"
		"64 usage, 65 invalid user name, 74 I/O error.\n");
}

/* Writes one user's archive into outfd (the folder shown as outshow).
 * Returns an exit code. */
static int backup_one(int srcfd, enum mr_cyrus_hash hash, int outfd, const char *outshow,
		      const char *user, enum restore_compression c)
{
	char rel[MR_CYRUS_REL_MAX + 1];
	struct mr_problems problems = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct mr_publish pub = { .fd = -1 };
	char final[MR_USER_NAME_MAX + 16];
	int ufd = -1, r, ex = MR_EX_IOERR;
	size_t i;

	mr_error_clear(&err);
	snprintf(final, sizeof(final), "%s%s", user, restore_compression_suffix(c));
	if (hash == MR_CYRUS_HASH_UNKNOWN) {
		ufd = mr_io->openat(srcfd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		snprintf(rel, sizeof(rel), "%s", user);
	} else {
		ufd = mr_cyrus_user_rel(hash, user, rel) == NULL ? -1
			: mr_open_beneath(srcfd, rel, O_RDONLY | O_DIRECTORY, 0, &err);
		errno = err.errnum ? err.errnum : EINVAL;
	}
	if (ufd < 0) {
		cli_error("backup", "%s: openat(%s) failed: %s", user, rel, strerror(errno));
		ex = MR_EX_PROBLEMS;
		goto out;
	}
	/* The temporary name starts with a dot: finding backups skips it. */
	if (mr_publish_begin(&pub, outfd, outshow, final, ".mrbackup.", 0600, 0, &err) < 0) {
		cli_error("backup", "%s: %s", user, err.msg);
		goto out;
	}
	r = restore_backup_user_stats(ufd, pub.fd, c, &st, &problems, &err);
	if (r < 0 || mr_publish_commit(&pub, &err) < 0) {
		cli_error("backup", "%s: %s", user, err.msg);
		goto out;
	}
	for (i = 0; i < problems.n; i++)
		cli_error("backup", "%s: left out %s: %s", user, problems.v[i].path,
			  problems.v[i].message);
	if (problems.dropped > 0)
		cli_error("backup", "%s: %zu more entries left out", user, problems.dropped);
	printf("%s files=%llu bytes=%llu archive=%s/%s\n", user, (unsigned long long)st.files,
	       (unsigned long long)st.bytes, outshow, final);
	fflush(stdout);
	ex = mr_problems_count(&problems, 0) > 0 ? MR_EX_PROBLEMS : MR_EX_OK;
out:
	mr_publish_abort(&pub);
	mr_close(ufd);
	mr_problems_reset(&problems);
	return ex;
}

/* The worst exit code wins: I/O error over problems over success. */
static int worse(int a, int b)
{
	if (a == MR_EX_IOERR || b == MR_EX_IOERR)
		return MR_EX_IOERR;
	return a > b ? a : b;
}

int cmd_backup(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "compress", required_argument, NULL, 'c' },
		{ "dated", no_argument, NULL, 'd' },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *source = NULL, *out = NULL;
	enum restore_compression c = RESTORE_COMPRESS_LZ4;
	struct mr_dirlist list = { NULL, 0 };
	struct mr_error err;
	char outshow[4096];
	int dated = 0, opt, i, ex = MR_EX_OK;
	enum mr_store_format format = MR_FORMAT_AUTO;
	enum mr_cyrus_hash hash = MR_CYRUS_HASH_UNKNOWN;
	char **cyrus_users = NULL;
	size_t ncyrus = 0;
	int srcfd = -1, bfd = -1, outfd = -1;
	size_t j;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:o:c:dh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			source = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'c':
			if (restore_compression_parse(optarg, &c) < 0) {
				cli_error("backup", "unknown compression '%s' (lz4, zstd, gzip, none)",
					  optarg);
				return MR_EX_USAGE;
			}
			break;
		case 'd':
			dated = 1;
			break;
		case 'f':
			if (mr_store_format_parse(optarg, &format) < 0) {
				cli_error("backup", "--format takes maildir or cyrus");
				return MR_EX_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return MR_EX_OK;
		default:
			usage(stderr);
			return MR_EX_USAGE;
		}
	}
	if (source == NULL || out == NULL) {
		cli_error("backup", "--source and --out are required");
		usage(stderr);
		return MR_EX_USAGE;
	}
	for (i = optind; i < argc; i++)
		if (cli_check_user("backup", argv[i]) < 0)
			return MR_EX_DATAERR;

	mr_error_clear(&err);
	srcfd = mr_open_dir_path(source, 0, &err);
	if (srcfd < 0) {
		cli_error("backup", "%s", err.msg);
		ex = MR_EX_IOERR;
		goto out;
	}
	bfd = mr_open_dir_path(out, 1, &err);
	if (bfd < 0) {
		cli_error("backup", "%s", err.msg);
		ex = MR_EX_IOERR;
		goto out;
	}
	if (format == MR_FORMAT_AUTO)
		format = mr_store_detect(srcfd);
	if (format == MR_FORMAT_CYRUS) {
		hash = mr_cyrus_detect_hash(srcfd);
		if (hash == MR_CYRUS_HASH_UNKNOWN)
			hash = MR_CYRUS_HASH_SIMPLE;
	}
	snprintf(outshow, sizeof(outshow), "%s", out);
	if (dated) {
		char date[32];
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
		if (mr_io->mkdirat(bfd, date, 0755) < 0 && errno != EEXIST) {
			cli_error("backup", "mkdirat(%s/%s) failed: %s", out, date, strerror(errno));
			ex = MR_EX_IOERR;
			goto out;
		}
		outfd = mr_io->openat(bfd, date, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (outfd < 0) {
			cli_error("backup", "openat(%s/%s) failed: %s", out, date, strerror(errno));
			ex = MR_EX_IOERR;
			goto out;
		}
		snprintf(outshow, sizeof(outshow), "%s/%s", out, date);
	} else {
		outfd = bfd;
	}

	if (optind < argc) {
		for (i = optind; i < argc; i++)
			ex = worse(ex, backup_one(srcfd, hash, outfd, outshow, argv[i], c));
		goto out;
	}
	if (format == MR_FORMAT_CYRUS) {
		if (mr_cyrus_list_users(srcfd, hash, &cyrus_users, &ncyrus, &err) < 0) {
			cli_error("backup", "listing %s: %s", source, err.msg);
			ex = MR_EX_IOERR;
			goto out;
		}
		for (j = 0; j < ncyrus; j++)
			ex = worse(ex, backup_one(srcfd, hash, outfd, outshow, cyrus_users[j], c));
		goto out;
	}
	if (mr_listdir(srcfd, &list, &err) < 0) {
		cli_error("backup", "listing %s: %s", source, err.msg);
		ex = MR_EX_IOERR;
		goto out;
	}
	for (j = 0; j < list.n; j++) {
		struct stat sb;

		if (!mr_user_name_valid(list.v[j].name))
			continue;
		if (list.v[j].type != DT_DIR &&
		    (list.v[j].type != DT_UNKNOWN ||
		     mr_io->fstatat(srcfd, list.v[j].name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		     !S_ISDIR(sb.st_mode)))
			continue;
		ex = worse(ex, backup_one(srcfd, hash, outfd, outshow, list.v[j].name, c));
	}
out:
	mr_dirlist_free(&list);
	mr_names_free(cyrus_users, ncyrus);
	if (outfd != bfd)
		mr_close(outfd);
	mr_close(bfd);
	mr_close(srcfd);
	return ex;
}
