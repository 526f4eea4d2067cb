/*
 * cmd_sync.c: `mailrestore sync` (make DST equal SRC with the rules of a
 * user's sync) and `mailrestore verify` (compare users on the target with
 * the source), without a daemon.
 *
 * Where `sync` keeps its own files, outside DST so DST is never polluted
 * and on DST's file system so everything moves by rename:
 *   - the attic: DST/../.mailrestore-attic/ (or --attic DIR), relative
 *     paths kept as in docs/LAYOUT.md "attic";
 *   - scratch for temporary files: DST/../.mailrestore-tmp.<pid>/, made at
 *     start and removed at the end (a crash leaves only that folder, named
 *     for what it is). When DST is a mount point of its own, temporary
 *     files go beside their final place instead.
 */
#include "cli/cli.h"
#include "common/common.h"
#include "sync/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void sync_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore sync [--attic DIR] [--max-remove PCT] [--min-remove N]\n"
		"                        [--format maildir|cyrus] [--cyrus-mailboxes FILE]\n"
		"                        [--json] SRC DST\n\n"
		"Makes DST equal SRC (SRC is only read): copies what is new or changed,\n"
		"renames Maildir messages that moved or changed flags, patches large files\n"
		"block by block, fixes modes, times, symlinks (and owners when run as root),\n"
		"and moves what SRC no longer has to the attic (DST/../.mailrestore-attic/\n"
		"unless --attic DIR; it must be on DST's file system). Entries of SRC that\n"
		"fail to read keep DST's version; a folder that fails to list is not pruned.\n"
		"A Maildir folder's own index in SRC (dovecot-uidlist, courierimapuiddb)\n"
		"tells messages the user deleted (no longer listed, or expunged in\n"
		"Dovecot's dovecot.index.log) from missing ones (still listed). When a\n"
		"folder's missing messages are more than PCT percent (default 50) of its\n"
		"messages in DST, or the files no index shows deleted are at least N\n"
		"(default 10; 0: no minimum) and more than PCT percent of DST's files,\n"
		"the sync changes nothing.\n"
		"With --format cyrus (the default when SRC holds cyrus.header), SRC and DST\n"
		"are one user's Cyrus folder (user/NAME of a spool): message files N. of\n"
		"the same size are never read, the guard reads each folder's cyrus.index\n"
		"(an expunged record is a deletion, a listed one a missing message; an\n"
		"index Cyrus 2.4 to 3.12 does not write stops the sync), and a folder gone\n"
		"from SRC is judged by --cyrus-mailboxes FILE (`ctl_mboxlist -d` output),\n"
		"the INBOX being user.<SRC's last component>.\n\n"
		"Exit: 0 DST equals SRC, 1 finished with problems (listed on stderr),\n"
		"64 usage, 66 SRC cannot be opened, 74 I/O error.\n");
}

static void verify_usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore verify --source S --target T [--format maildir|cyrus]\n"
		"                          [--json] USER...\n\n"
		"Compares T/USER with S/USER for each USER (with a Cyrus spool, found by\n"
		"itself or --format cyrus: the user's folder user/USER or <h>/user/USER of\n"
		"each side, in the layout each side has): paths, types, contents, permission\n"
		"bits, modification times, symlink targets, and owners when run as root.\n"
		"Prints one line per difference: 'USER: PATH: what'.\n\n"
		"Exit: 0 all equal, 1 differences, 64 usage, 65 invalid user name,\n"
		"66 S or T cannot be opened, 74 I/O error.\n");
}

/* The folder DST lives in, as a malloc'd path. */
static char *parent_of(const char *path)
{
	char *p = strdup(path), *slash;
	size_t n;

	if (p == NULL)
		return NULL;
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	slash = strrchr(p, '/');
	if (slash == NULL) {
		free(p);
		return strdup(".");
	}
	if (slash == p)
		slash[1] = '\0';
	else
		*slash = '\0';
	return p;
}

static void json_problems(FILE *out, const struct mr_problems *p)
{
	size_t i;

	fputs("[", out);
	for (i = 0; i < p->n; i++) {
		char buf[4096];
		size_t pos = 0;

		mr_bufcat(buf, sizeof(buf), &pos, "%s{\"kind\":", i ? "," : "");
		mr_json_str(buf, sizeof(buf), &pos, mr_problem_kind_name(p->v[i].kind));
		mr_bufcat(buf, sizeof(buf), &pos, ",\"path\":");
		mr_json_str(buf, sizeof(buf), &pos, p->v[i].path);
		mr_bufcat(buf, sizeof(buf), &pos, ",\"message\":");
		mr_json_str(buf, sizeof(buf), &pos, p->v[i].message);
		mr_bufcat(buf, sizeof(buf), &pos, "}");
		fputs(buf, out);
	}
	fputs("]", out);
}

static void print_summary(const struct sync_stats *st, int rc, const struct mr_problems *p,
			  int json)
{
	char a[32], b[32], c[32], d[32], e[32];

	if (json) {
		printf("{\"result\":\"%s\",\"files\":%llu,\"dirs\":%llu,\"symlinks\":%llu,"
		       "\"bytes\":%llu,\"copied_files\":%llu,\"copied_bytes\":%llu,"
		       "\"renamed\":%llu,\"patched_files\":%llu,\"patched_bytes\":%llu,"
		       "\"attic_files\":%llu,\"unreadable\":%llu,\"meta_fixed\":%llu,"
		       "\"bytes_written\":%llu,\"source_bytes_read\":%llu,\"problems\":",
		       rc == 0 ? "equal" : rc > 0 ? "problems" : "error",
		       (unsigned long long)st->files, (unsigned long long)st->dirs,
		       (unsigned long long)st->symlinks, (unsigned long long)st->bytes,
		       (unsigned long long)st->copied_files, (unsigned long long)st->copied_bytes,
		       (unsigned long long)st->renamed, (unsigned long long)st->patched_files,
		       (unsigned long long)st->patched_bytes, (unsigned long long)st->attic_files,
		       (unsigned long long)st->unreadable, (unsigned long long)st->meta_fixed,
		       (unsigned long long)st->bytes_written,
		       (unsigned long long)st->source_bytes_read);
		json_problems(stdout, p);
		printf("}\n");
		return;
	}
	printf("sync: %llu files (%s) in the source; copied %llu (%s), renamed %llu, "
	       "patched %llu (%s written), attic %llu, unreadable %llu, metadata fixed %llu; "
	       "%s written, %s read from the source\n",
	       (unsigned long long)st->files, mr_human_bytes(st->bytes, a, sizeof(a)),
	       (unsigned long long)st->copied_files, mr_human_bytes(st->copied_bytes, b, sizeof(b)),
	       (unsigned long long)st->renamed, (unsigned long long)st->patched_files,
	       mr_human_bytes(st->patched_bytes, c, sizeof(c)), (unsigned long long)st->attic_files,
	       (unsigned long long)st->unreadable, (unsigned long long)st->meta_fixed,
	       mr_human_bytes(st->bytes_written, d, sizeof(d)),
	       mr_human_bytes(st->source_bytes_read, e, sizeof(e)));
}

/* `mailrestore sync`. Returns the exit code. */
int cmd_sync(int argc, char **argv)
{
	struct sync_settings set;
	struct sync_stats stats;
	struct mr_problems problems = { 0 };
	struct mr_error err = { 0 };
	const char *attic = NULL, *src = NULL, *dst = NULL;
	char *parent = NULL, *attic_path = NULL, *tmp_path = NULL;
	int json = 0, pct = 50, min_files = 10, i, src_fd = -1, dst_fd = -1, attic_fd = -1, tmp_fd = -1;
	int rc = MR_EX_IOERR, r;
	struct stat sd, sa, stt;
	size_t k;
	enum mr_store_format format = MR_FORMAT_AUTO;
	const char *mboxes_path = NULL;
	struct sync_cyrus_mboxes mboxes = { 0 };
	char inbox[NAME_MAX + 8];

	memset(&stats, 0, sizeof(stats));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			sync_usage(stdout);
			return MR_EX_OK;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--attic") == 0 && i + 1 < argc) {
			attic = argv[++i];
		} else if (strcmp(argv[i], "--max-remove") == 0 && i + 1 < argc) {
			uint64_t v;
			if (mr_parse_u64(argv[++i], &v) < 0 || v > 100) {
				cli_error("sync", "--max-remove wants a percentage 0-100");
				return MR_EX_USAGE;
			}
			pct = (int)v;
		} else if (strcmp(argv[i], "--min-remove") == 0 && i + 1 < argc) {
			uint64_t v;
			if (mr_parse_u64(argv[++i], &v) < 0 || v > 1000000000) {
				cli_error("sync", "--min-remove wants a number of files");
				return MR_EX_USAGE;
			}
			min_files = (int)v;
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			if (mr_store_format_parse(argv[++i], &format) < 0) {
				cli_error("sync", "--format takes maildir or cyrus");
				return MR_EX_USAGE;
			}
		} else if (strcmp(argv[i], "--cyrus-mailboxes") == 0 && i + 1 < argc) {
			mboxes_path = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			cli_error("sync", "unknown option '%s'", argv[i]);
			sync_usage(stderr);
			return MR_EX_USAGE;
		} else if (src == NULL) {
			src = argv[i];
		} else if (dst == NULL) {
			dst = argv[i];
		} else {
			sync_usage(stderr);
			return MR_EX_USAGE;
		}
	}
	if (src == NULL || dst == NULL) {
		sync_usage(stderr);
		return MR_EX_USAGE;
	}
	src_fd = mr_open_dir_path(src, 0, &err);
	if (src_fd < 0) {
		cli_error("sync", "source: %s", err.msg);
		rc = MR_EX_NOINPUT;
		goto out;
	}
	parent = parent_of(dst);
	if (parent == NULL || (attic == NULL && asprintf(&attic_path, "%s/.mailrestore-attic",
							 parent) < 0) ||
	    asprintf(&tmp_path, "%s/.mailrestore-tmp.%ld", parent, (long)getpid()) < 0) {
		cli_error("sync", "out of memory");
		goto out;
	}
	if ((dst_fd = mr_open_dir_path(dst, 1, &err)) < 0 ||
	    (attic_fd = mr_open_dir_path(attic ? attic : attic_path, 1, &err)) < 0 ||
	    (tmp_fd = mr_open_dir_path(tmp_path, 1, &err)) < 0) {
		cli_error("sync", "%s", err.msg);
		goto out;
	}
	if (fstat(dst_fd, &sd) < 0 || fstat(attic_fd, &sa) < 0 || fstat(tmp_fd, &stt) < 0) {
		cli_error("sync", "fstat failed: %s", strerror(errno));
		goto out;
	}
	if (sa.st_dev != sd.st_dev) {
		cli_error("sync", "the attic %s is not on the file system of %s; use --attic",
			  attic ? attic : attic_path, dst);
		goto out;
	}
	sync_settings_init(&set);
	set.max_remove_pct = pct;
	set.min_remove_files = min_files;
	set.preserve_owner = geteuid() == 0;
	set.attic_dirfd = attic_fd;
	set.tmp_dirfd = stt.st_dev == sd.st_dev ? tmp_fd : -1;
	if (format == MR_FORMAT_AUTO) {
		struct stat sh;

		format = fstatat(src_fd, "cyrus.header", &sh, AT_SYMLINK_NOFOLLOW) == 0
				 ? MR_FORMAT_CYRUS
				 : MR_FORMAT_MAILDIR;
	}
	set.format = format;
	if (format == MR_FORMAT_CYRUS) {
		size_t n = strlen(src), b;

		/* the INBOX's internal name: "user." and SRC's last component */
		while (n > 1 && src[n - 1] == '/')
			n--;
		for (b = n; b > 0 && src[b - 1] != '/'; b--)
			;
		snprintf(inbox, sizeof(inbox), "user.%.*s", (int)(n - b), src + b);
		set.cyrus_inbox = inbox;
		if (mboxes_path != NULL) {
			if (sync_cyrus_mboxes_load(mboxes_path, &mboxes, &err) < 0) {
				cli_error("sync", "--cyrus-mailboxes: %s", err.msg);
				rc = MR_EX_NOINPUT;
				goto out;
			}
			set.cyrus_mboxes = &mboxes;
		}
	}
	r = sync_tree(src_fd, dst_fd, &set, &stats, &problems, &err);
	for (k = 0; k < problems.n; k++)
		cli_error("sync", "%s: %s", mr_problem_kind_name(problems.v[k].kind),
			  problems.v[k].message);
	if (problems.dropped)
		cli_error("sync", "and %zu more problems", problems.dropped);
	if (r < 0)
		cli_error("sync", "%s", err.msg);
	print_summary(&stats, r, &problems, json);
	rc = r == 0 ? MR_EX_OK : r > 0 ? MR_EX_PROBLEMS : MR_EX_IOERR;
out:
	if (tmp_fd >= 0) {
		/* Our scratch: empty unless a crash left something. */
		mr_close(tmp_fd);
		rmdir(tmp_path);
	}
	mr_close(attic_fd);
	mr_close(dst_fd);
	mr_close(src_fd);
	mr_problems_reset(&problems);
	sync_cyrus_mboxes_free(&mboxes);
	free(parent);
	free(attic_path);
	free(tmp_path);
	return rc;
}

/* Verifies one user. Returns 0 equal, 1 different, -1 error (printed). */
/* Opens user's folder below root: S/<user>, or in a Cyrus spool of
 * layout hash (MR_CYRUS_HASH_UNKNOWN: Maildir) its user/ folder. */
static int open_user(int root, enum mr_cyrus_hash hash, const char *user)
{
	char rel[MR_CYRUS_REL_MAX + 1];
	struct mr_error e2 = { 0 };
	int fd;

	if (hash == MR_CYRUS_HASH_UNKNOWN)
		return mr_io->openat(root, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (mr_cyrus_user_rel(hash, user, rel) == NULL) {
		errno = EINVAL;
		return -1;
	}
	fd = mr_open_beneath(root, rel, O_RDONLY | O_DIRECTORY, 0, &e2);
	if (fd < 0)
		errno = e2.errnum;
	return fd;
}

static int verify_user(int s_fd, int t_fd, enum mr_cyrus_hash sh, enum mr_cyrus_hash th,
		       const char *user, int json, int *first)
{
	struct mr_problems diffs = { 0 };
	struct mr_error err = { 0 };
	int sfd = -1, tfd = -1, rc = -1;
	size_t k;

	sfd = open_user(s_fd, sh, user);
	if (sfd < 0)
		mr_problems_add(&diffs, MR_PROBLEM_UNREADABLE, errno, ".",
				"cannot open the user's folder in the source: %s", strerror(errno));
	tfd = open_user(t_fd, th, user);
	if (tfd < 0)
		mr_problems_add(&diffs, MR_PROBLEM_DIFF, errno, ".",
				"cannot open the user's folder in the target: %s", strerror(errno));
	if (sfd >= 0 && tfd >= 0) {
		rc = sync_verify(sfd, tfd, geteuid() == 0, &diffs, &err);
		if (rc < 0) {
			cli_error("verify", "%s: %s", user, err.msg);
			goto out;
		}
	}
	rc = diffs.n > 0 || diffs.dropped > 0;
	if (json) {
		char buf[1024];
		size_t pos = 0;

		mr_bufcat(buf, sizeof(buf), &pos, "%s{\"user\":", *first ? "" : ",");
		mr_json_str(buf, sizeof(buf), &pos, user);
		mr_bufcat(buf, sizeof(buf), &pos, ",\"equal\":%s,\"differences\":",
			  rc ? "false" : "true");
		fputs(buf, stdout);
		json_problems(stdout, &diffs);
		fputs("}", stdout);
		*first = 0;
	} else {
		for (k = 0; k < diffs.n; k++) {
			char p[8192], m[8192];

			printf("%s: %s: %s\n", user, mr_escape(diffs.v[k].path, p, sizeof(p)),
			       mr_escape(diffs.v[k].message, m, sizeof(m)));
		}
		if (diffs.dropped)
			printf("%s: and %zu more differences\n", user, diffs.dropped);
	}
out:
	mr_close(sfd);
	mr_close(tfd);
	mr_problems_reset(&diffs);
	return rc;
}

/* `mailrestore verify`. Returns the exit code. */
int cmd_verify(int argc, char **argv)
{
	struct mr_error err = { 0 };
	const char *source = NULL, *target = NULL;
	int json = 0, i, nusers = 0, s_fd = -1, t_fd = -1, rc = MR_EX_OK, first = 1;
	enum mr_store_format format = MR_FORMAT_AUTO;
	enum mr_cyrus_hash sh = MR_CYRUS_HASH_UNKNOWN, th = MR_CYRUS_HASH_UNKNOWN;
	char **users;

	users = calloc((size_t)argc, sizeof(*users));
	if (users == NULL)
		return MR_EX_OSERR;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			verify_usage(stdout);
			rc = MR_EX_OK;
			goto out;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--source") == 0 && i + 1 < argc) {
			source = argv[++i];
		} else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
			target = argv[++i];
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			if (mr_store_format_parse(argv[++i], &format) < 0) {
				cli_error("verify", "--format takes maildir or cyrus");
				rc = MR_EX_USAGE;
				goto out;
			}
		} else if (strcmp(argv[i], "--") == 0) {
			for (i++; i < argc; i++)
				users[nusers++] = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			cli_error("verify", "unknown option '%s'", argv[i]);
			verify_usage(stderr);
			rc = MR_EX_USAGE;
			goto out;
		} else {
			users[nusers++] = argv[i];
		}
	}
	if (source == NULL || target == NULL || nusers == 0) {
		verify_usage(stderr);
		rc = MR_EX_USAGE;
		goto out;
	}
	for (i = 0; i < nusers; i++) {
		if (cli_check_user("verify", users[i]) < 0) {
			rc = MR_EX_DATAERR;
			goto out;
		}
	}
	if ((s_fd = mr_open_dir_path(source, 0, &err)) < 0 ||
	    (t_fd = mr_open_dir_path(target, 0, &err)) < 0) {
		cli_error("verify", "%s", err.msg);
		rc = MR_EX_NOINPUT;
		goto out;
	}
	if (format == MR_FORMAT_AUTO)
		format = mr_store_detect(s_fd);
	if (format == MR_FORMAT_CYRUS) {
		/* each side in its own layout; an empty one takes the other's */
		sh = mr_cyrus_detect_hash(s_fd);
		th = mr_cyrus_detect_hash(t_fd);
		if (sh == MR_CYRUS_HASH_UNKNOWN)
			sh = th != MR_CYRUS_HASH_UNKNOWN ? th : MR_CYRUS_HASH_SIMPLE;
		if (th == MR_CYRUS_HASH_UNKNOWN)
			th = sh;
	}
	if (json)
		fputs("{\"users\":[", stdout);
	for (i = 0; i < nusers; i++) {
		int r = verify_user(s_fd, t_fd, sh, th, users[i], json, &first);
		if (r < 0)
			rc = MR_EX_IOERR;
		else if (r > 0 && rc == MR_EX_OK)
			rc = MR_EX_PROBLEMS;
	}
	if (json)
		fputs("]}\n", stdout);
out:
	mr_close(s_fd);
	mr_close(t_fd);
	free(users);
	return rc;
}
