/*
 * cmd_demo.c: `mailrestore demo`, the whole story on generated data in one
 * command: a partition is generated and backed up, a day of mail changes
 * it, it "dies" (one user's folder is lost, one backup is corrupt), the
 * daemon restores everyone while users log in and mail arrives, and every
 * user is verified against the source at the end.
 *
 * It drives this very binary's subcommands (daemon, login, deliver, watch,
 * show) as separate processes, exactly as an operator or a login hook would.
 */
#include "cli/cli.h"
#include "common/common.h"
#include "fixture/fixture.h"
#include "restore/restore.h"
#include "sync/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct demo {
	char dir[4096];
	char src[4200], bak[4200], tgt[4200], sock[4200];
	char self[4096];
	unsigned users;
	pid_t daemon;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Runs this binary with args; captures stdout+stderr into out (may be
 * NULL: then they go to ours) and, when in_data is set, feeds it to stdin.
 * Returns the exit status (or -1). */
static int run_self(struct demo *d, char *out, size_t outlen, const char *in_data,
		    char *const args[])
{
	int opipe[2] = { -1, -1 }, ipipe[2] = { -1, -1 }, status;
	char *argv[32];
	size_t n = 0, got = 0;
	pid_t pid;

	argv[n++] = d->self;
	while (args[n - 1] != NULL && n < 31) {
		argv[n] = args[n - 1];
		n++;
	}
	argv[n] = NULL;
	if ((out && pipe(opipe) < 0) || (in_data && pipe(ipipe) < 0))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (out) {
			dup2(opipe[1], 1);
			dup2(opipe[1], 2);
			close(opipe[0]);
			close(opipe[1]);
		}
		if (in_data) {
			dup2(ipipe[0], 0);
			close(ipipe[0]);
			close(ipipe[1]);
		}
		execv(d->self, argv);
		_exit(127);
	}
	if (in_data) {
		close(ipipe[0]);
		if (write(ipipe[1], in_data, strlen(in_data)) < 0)
			(void)0;
		close(ipipe[1]);
	}
	if (out) {
		ssize_t r;
		close(opipe[1]);
		while ((r = read(opipe[0], out + got, outlen - 1 - got)) > 0) {
			got += (size_t)r;
			if (got >= outlen - 1)
				break;
		}
		out[got] = '\0';
		while (got > 0 && out[got - 1] == '\n')
			out[--got] = '\0';
		close(opipe[0]);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void user_name(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "user%u", i);
}

/* Takes the nightly backup of every user in S into B. */
static int backup_all(struct demo *d, struct mr_error *err)
{
	char *args[] = { "backup", "--source", d->src, "--out", d->bak, "--compress", "lz4", NULL };
	char out[65536];
	int rc = run_self(d, out, sizeof(out), NULL, args);

	if (rc != 0) {
		mr_error_set(err, 0, "backup failed (exit %d): %s", rc, out);
		return -1;
	}
	return 0;
}

/* Bytes of the regular files below dirfd (what `du -sb` would count). */
static uint64_t tree_bytes(int dirfd)
{
	struct mr_dirlist list;
	uint64_t sum = 0;
	size_t i;

	if (mr_listdir(dirfd, &list, NULL) < 0)
		return 0;
	for (i = 0; i < list.n; i++) {
		struct stat st;
		int sub;

		if (fstatat(dirfd, list.v[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			sum += (uint64_t)st.st_size;
		} else if (S_ISDIR(st.st_mode)) {
			sub = openat(dirfd, list.v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				sum += tree_bytes(sub);
				close(sub);
			}
		}
	}
	mr_dirlist_free(&list);
	return sum;
}

static uint64_t dir_bytes(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t n;

	if (fd < 0)
		return 0;
	n = tree_bytes(fd);
	close(fd);
	return n;
}

/* The outage's damage: the lost user's folder goes, the corrupt user's
 * newest archive is cut in half. 0 or -1 with err. */
static int damage(struct demo *d, const char *lost, const char *corrupt, struct mr_error *err)
{
	int sfd = -1, bfd = -1, afd = -1, rc = -1;
	char *rel = NULL;
	struct stat st;

	sfd = mr_open_dir_path(d->src, 0, err);
	bfd = mr_open_dir_path(d->bak, 0, err);
	if (sfd < 0 || bfd < 0)
		goto out;
	if (mr_remove_tree_at(sfd, lost, err) < 0)
		goto out;
	if (restore_find_backup(bfd, corrupt, &rel, err) != 1) {
		mr_error_set(err, ENOENT, "no backup of %s to damage", corrupt);
		goto out;
	}
	afd = mr_open_beneath(bfd, rel, O_WRONLY, 0, err);
	if (afd < 0)
		goto out;
	if (fstat(afd, &st) < 0 || ftruncate(afd, st.st_size / 2) < 0) {
		mr_error_set(err, errno, "truncate(%s) failed", rel);
		goto out;
	}
	rc = 0;
out:
	free(rel);
	mr_close(afd);
	mr_close(sfd);
	mr_close(bfd);
	return rc;
}

/* Counts the messages in T/<user>/new that contain needle. */
static int count_mail(const char *target, const char *user, const char *needle)
{
	char path[8400];
	struct mr_dirlist list;
	size_t i;
	int fd, n = 0;

	snprintf(path, sizeof(path), "%s/%s/new", target, user);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (mr_listdir(fd, &list, NULL) == 0) {
		for (i = 0; i < list.n; i++) {
			char buf[8192];
			int mfd = openat(fd, list.v[i].name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			ssize_t r;

			if (mfd < 0)
				continue;
			r = read(mfd, buf, sizeof(buf) - 1);
			close(mfd);
			if (r > 0) {
				buf[r] = '\0';
				if (strstr(buf, needle) != NULL)
					n++;
			}
		}
		mr_dirlist_free(&list);
	}
	close(fd);
	return n;
}

static int wait_for_socket(struct demo *d)
{
	int i;
	char out[4096];
	char *args[] = { "status", "--socket", d->sock, NULL };

	for (i = 0; i < 200; i++) {
		if (run_self(d, out, sizeof(out), NULL, args) == 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

/* A user who got mail during the outage differs from the source by exactly
 * that: new messages in new/ (and new/'s time). Anything else is a real
 * difference. */
static int only_delivered_mail(const struct mr_problems *diffs, const char *user,
			       char mail_users[][64])
{
	size_t i;
	int got_mail = 0;

	for (i = 0; i < 3; i++)
		if (strcmp(user, mail_users[i]) == 0)
			got_mail = 1;
	if (!got_mail || diffs->n == 0 || diffs->dropped > 0)
		return 0;
	for (i = 0; i < diffs->n; i++) {
		const char *p = diffs->v[i].path;
		/* delivery writes through tmp/ into new/, so both folders' times move */
		if (strcmp(p, "new") != 0 && strcmp(p, "tmp") != 0 && strncmp(p, "new/", 4) != 0)
			return 0;
		if (strncmp(p, "new/", 4) == 0 && strstr(diffs->v[i].message, "not in the source") == NULL)
			return 0;
	}
	return 1;
}

/* The number after "<state>": in the counts of a status --json reply. */
static unsigned count_of(const char *json, const char *state)
{
	char key[64];
	const char *p, *counts = strstr(json, "\"counts\"");

	snprintf(key, sizeof(key), "\"%s\":", state);
	p = counts ? strstr(counts, key) : NULL;
	return p ? (unsigned)strtoul(p + strlen(key), NULL, 10) : 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mailrestore demo [--dir DIR] [--users N] [--keep]\n\n"
		"Runs the whole story on generated data and checks its own result:\n"
		"generate a partition of N users (default 200), back it up (lz4), apply a\n"
		"day of changes, lose one user's folder and corrupt one backup, run the\n"
		"daemon with two workers while users log in and mail arrives, then verify\n"
		"every user against the source. Exit 0 when everything checks out.\n"
		"--dir keeps the data there (default: a fresh folder under /tmp, removed\n"
		"at the end unless --keep).\n");
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "users", required_argument, NULL, 'u' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct demo d = { .users = 200, .daemon = -1 };
	struct fixture_settings fs;
	struct fixture_stats gst = { 0 }, dst = { 0 };
	struct mr_error err = { 0 };
	char out[65536], lost[64], corrupt[64], late[64], hb[32], hb2[32];
	char login_users[4][64], mail_users[3][64];
	unsigned i, active = 0, attention = 0, equal = 0, differ = 0;
	uint64_t v;
	int c, keep = 0, corrupt_ok = 0, rc = MR_EX_SOFTWARE, status, failed = 0, src_fd = -1, tgt_fd = -1;
	double t0 = mr_monotonic(), t_daemon;
	ssize_t sl;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': snprintf(d.dir, sizeof(d.dir), "%s", optarg); keep = 1; break;
		case 'u':
			if (cli_number_arg(argv[0], "--users", optarg, "a number", 10, 100000, &v) < 0)
				return MR_EX_USAGE;
			d.users = (unsigned)v;
			break;
		case 'k': keep = 1; break;
		case 'h': usage(stdout); return MR_EX_OK;
		default: usage(stderr); return MR_EX_USAGE;
		}
	}
	sl = readlink("/proc/self/exe", d.self, sizeof(d.self) - 1);
	if (sl <= 0) {
		cli_error(argv[0], "cannot find my own binary: %s", strerror(errno));
		return MR_EX_SOFTWARE;
	}
	d.self[sl] = '\0';
	if (d.dir[0] == '\0') {
		snprintf(d.dir, sizeof(d.dir), "/tmp/mailrestore-demo.XXXXXX");
		if (mkdtemp(d.dir) == NULL) {
			cli_error(argv[0], "mkdtemp failed: %s", strerror(errno));
			return MR_EX_IOERR;
		}
	} else if (mkdir(d.dir, 0755) < 0 && errno != EEXIST) {
		cli_error(argv[0], "mkdir(%s) failed: %s", d.dir, strerror(errno));
		return MR_EX_IOERR;
	}
	snprintf(d.src, sizeof(d.src), "%s/source", d.dir);
	snprintf(d.bak, sizeof(d.bak), "%s/backups", d.dir);
	snprintf(d.tgt, sizeof(d.tgt), "%s/target", d.dir);
	snprintf(d.sock, sizeof(d.sock), "%s/mailrestore.sock", d.dir);
	user_name(lost, sizeof(lost), 7);
	user_name(corrupt, sizeof(corrupt), 11);
	user_name(late, sizeof(late), d.users - 1);

	say("== mailrestore demo, working in %s", d.dir);
	say("\n1. A mail partition: %u users with Maildir++ folders and Dovecot index files", d.users);
	fixture_settings_init(&fs);
	fs.users = d.users;
	fs.messages = 20;
	fs.folders = 3;
	fs.index_kib = 16;
	fs.with_mbox = 0;
	if (fixture_generate(d.src, &fs, &gst, &err) < 0) {
		cli_error(argv[0], "generating the partition: %s", err.msg);
		goto out;
	}
	say("   %" PRIu64 " files, %s in %s", gst.files, mr_human_bytes(gst.bytes, hb, sizeof(hb)), d.src);

	say("\n2. Last night's backup: one lz4 archive per user");
	if (backup_all(&d, &err) < 0) {
		cli_error(argv[0], "%s", err.msg);
		goto out;
	}
	say("   %s of archives in %s", mr_human_bytes(dir_bytes(d.bak), hb, sizeof(hb)), d.bak);

	say("\n3. A day of mail: new messages, flags set, messages moved and deleted, indexes updated");
	if (fixture_apply_day(d.src, &fs, &dst, &err) < 0) {
		cli_error(argv[0], "applying a day of changes: %s", err.msg);
		goto out;
	}
	say("   %" PRIu64 " new messages (%s), %" PRIu64 " renamed or moved, %" PRIu64
	    " deleted, %s changed in place",
	    dst.new_files, mr_human_bytes(dst.new_bytes, hb, sizeof(hb)), dst.renamed, dst.deleted,
	    mr_human_bytes(dst.changed_bytes, hb2, sizeof(hb2)));

	say("\n4. The partition dies. It still mounts read-only, but %s's folder is gone,", lost);
	say("   and %s's backup archive is corrupt on the backup server.", corrupt);
	if (damage(&d, lost, corrupt, &err) < 0) {
		cli_error(argv[0], "damaging the demo data failed: %s", err.msg);
		goto out;
	}

	say("\n5. The restore daemon starts with two workers:");
	say("   mailrestore daemon --backups B --source S --target T --jobs 2");
	t_daemon = mr_monotonic();
	d.daemon = fork();
	if (d.daemon == 0) {
		int null = open("/dev/null", O_WRONLY);
		char logpath[4300];
		int logfd;
		snprintf(logpath, sizeof(logpath), "%s/daemon.log", d.dir);
		logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(null, 1);
		dup2(logfd >= 0 ? logfd : null, 2);
		execl(d.self, d.self, "daemon", "--backups", d.bak, "--source", d.src, "--target",
		      d.tgt, "--socket", d.sock, "--jobs", "2", (char *)NULL);
		_exit(127);
	}
	if (d.daemon < 0 || wait_for_socket(&d) < 0) {
		cli_error(argv[0], "the daemon did not come up (see %s/daemon.log)", d.dir);
		goto out;
	}

	say("\n6. Users try to log in and are told where they stand (the IMAP login hook):");
	for (i = 0; i < 4; i++) {
		char *args[] = { "login", "--socket", d.sock, login_users[i], NULL };
		user_name(login_users[i], sizeof(login_users[i]), d.users - 20 + i * 5);
		status = run_self(&d, out, sizeof(out), NULL, args);
		say("   $ mailrestore login %s   -> exit %d\n     %s", login_users[i], status, out);
	}

	say("\n7. Mail arrives for users who are not back yet; it is held, not lost:");
	for (i = 0; i < 3; i++) {
		char msg[512];
		char *args[] = { "deliver", "--socket", d.sock, mail_users[i], NULL };
		snprintf(mail_users[i], sizeof(mail_users[i]), "%s", i == 0 ? late : login_users[i]);
		snprintf(msg, sizeof(msg),
			 "From: colleague@example.org\r\nTo: %s@example.org\r\nSubject: during the "
			 "outage %u\r\nMessage-ID: <demo-%u@example.org>\r\n\r\nHello while your "
			 "mailbox is being restored.\r\n",
			 mail_users[i], i, i);
		status = run_self(&d, out, sizeof(out), msg, args);
		say("   $ mailrestore deliver %s < message   -> exit %d %s", mail_users[i], status, out);
		if (status != 0)
			failed = 1;
	}

	say("\n8. The live view (mailrestore watch --once):");
	{
		char *args[] = { "watch", "--once", "--socket", d.sock, NULL };
		run_self(&d, out, sizeof(out), NULL, args);
		say("%s\n", out);
	}

	say("9. %s keeps trying to log in; the line it is told moves:", login_users[3]);
	{
		char last[4096] = "";
		char *args[] = { "login", "--socket", d.sock, login_users[3], NULL };
		for (i = 0; i < 200; i++) {
			status = run_self(&d, out, sizeof(out), NULL, args);
			if (strcmp(out, last) != 0) {
				say("   $ mailrestore login %s   -> exit %d\n     %s", login_users[3], status,
				    out);
				snprintf(last, sizeof(last), "%s", out);
			}
			if (status != MR_EX_TEMPFAIL)
				break;
			usleep(50000);
		}
		if (status != 0)
			failed = 1;
	}

	say("\n10. The daemon works through everyone else, smallest backup first:");
	{
		char *args[] = { "status", "--json", "--socket", d.sock, NULL };
		double last_print = 0;
		unsigned left = 1, total = 0;

		while (left > 0 && mr_monotonic() - t_daemon < 600) {
			unsigned w, q, r, sy, a, at;
			if (run_self(&d, out, sizeof(out), NULL, args) != 0)
				break;
			w = count_of(out, "waiting");
			q = count_of(out, "queued");
			r = count_of(out, "restoring");
			sy = count_of(out, "syncing");
			a = count_of(out, "active");
			at = count_of(out, "attention");
			left = w + q + r + sy;
			total = left + a + at;
			if (mr_monotonic() - last_print >= 1 || left == 0) {
				say("   %4.1f s: %u of %u users done (%u active, %u in attention)",
				    mr_monotonic() - t_daemon, a + at, total, a, at);
				last_print = mr_monotonic();
			}
			if (left > 0)
				usleep(200000);
		}
	}
	{
		char *args[] = { "status", "--socket", d.sock, NULL };
		run_self(&d, out, sizeof(out), NULL, args);
		say("\n   $ mailrestore status\n%s", out);
	}
	{
		char *args[] = { "show", "--socket", d.sock, lost, NULL };
		run_self(&d, out, sizeof(out), NULL, args);
		say("\n   $ mailrestore show %s\n%s", lost, out);
	}
	{
		char *args[] = { "shutdown", "--socket", d.sock, NULL };
		run_self(&d, out, sizeof(out), NULL, args);
	}
	if (waitpid(d.daemon, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		cli_error(argv[0], "the daemon ended badly (status %d; see %s/daemon.log)", status, d.dir);
		d.daemon = -1;
		goto out;
	}
	d.daemon = -1;

	say("\n11. Every user checked against the source (as mailrestore verify does):");
	src_fd = open(d.src, O_RDONLY | O_DIRECTORY);
	tgt_fd = open(d.tgt, O_RDONLY | O_DIRECTORY);
	for (i = 0; i < d.users + 2 && src_fd >= 0 && tgt_fd >= 0; i++) {
		char name[64];
		struct mr_problems diffs = { 0 };
		int s, t;
		struct stat st;

		user_name(name, sizeof(name), i);
		if (fstatat(tgt_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (strcmp(name, lost) == 0) {
				attention++;
				continue;
			}
			if (i >= d.users)
				continue;   /* source-only users the fixture didn't make */
			say("    %s: not active", name);
			failed = 1;
			continue;
		}
		active++;
		s = openat(src_fd, name, O_RDONLY | O_DIRECTORY);
		t = openat(tgt_fd, name, O_RDONLY | O_DIRECTORY);
		if (s >= 0 && t >= 0 && (sync_verify(s, t, geteuid() == 0, &diffs, &err) == 0 ||
					 only_delivered_mail(&diffs, name, mail_users))) {
			equal++;
			if (strcmp(name, corrupt) == 0)
				corrupt_ok = 1;
		} else {
			char summary[512];
			mr_problems_summary(&diffs, summary, sizeof(summary), 2);
			say("    %s differs: %s", name, summary);
			differ++;
			failed = 1;
		}
		mr_problems_reset(&diffs);
		if (s >= 0)
			close(s);
		if (t >= 0)
			close(t);
	}
	say("\n    %-34s %u", "users active", active);
	say("    %-34s %u", "active and equal to the source", equal);
	say("    %-34s %s", "(users who got mail", "differ by exactly that mail)");
	say("    %-34s %u", "active but different", differ);
	say("    %-34s %u (%s: folder lost on the source)", "in attention", attention, lost);
	{
		int got = count_mail(d.tgt, late, "during the outage");
		say("    %-34s %s", "held mail found in its mailbox", got == 1 ? "yes" : "NO");
		if (got != 1)
			failed = 1;
	}
	say("    %-34s %s", "corrupt backup made up by source", corrupt_ok ? "yes" : "NO");
	if (!corrupt_ok)
		failed = 1;
	if (attention != 1)
		failed = 1;
	say("\n== %s in %.1f s%s%s", failed ? "DEMO FAILED" : "demo passed: every healthy user is back and equal to the source",
	    mr_monotonic() - t0, keep ? "; data kept in " : "", keep ? d.dir : "");
	rc = failed ? MR_EX_PROBLEMS : MR_EX_OK;
out:
	if (src_fd >= 0)
		close(src_fd);
	if (tgt_fd >= 0)
		close(tgt_fd);
	if (d.daemon > 0) {
		kill(d.daemon, SIGTERM);
		waitpid(d.daemon, NULL, 0);
	}
	if (!keep && d.dir[0] != '\0') {
		struct mr_error rm_err;
		if (mr_remove_tree_at(AT_FDCWD, d.dir, &rm_err) < 0)
			cli_error(argv[0], "cleaning up %s: %s", d.dir, rm_err.msg);
	}
	return rc;
}
