/* test_crash.c: kill -9 at random points (mail/held.c). A child process
 * holds messages and reports "done N" on a pipe after each mail_hold()
 * returns; it is SIGKILLed at a random moment, again and again. Every hold
 * that completed is then released exactly once; one that was cut short is
 * there at most once; no held file is ever torn. Then children releasing
 * are killed the same way, and the final release still has every message
 * exactly once. MR_CRASH_SEED repeats a run. */
#include "mailtest.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define ROUNDS 12
#define MAX_PER_ROUND 4000

static unsigned seed;

/* The message of round r, number i: an id line, then a body of a size
 * that varies so writes take different times. */
static char *make_message(int r, int i, size_t *len_r)
{
	size_t body = 200 + (size_t)((r * 7919 + i * 104729) % 60000), pos, k;
	char *m = malloc(body + 64);

	assert_non_null(m);
	pos = (size_t)sprintf(m, "X-Id: %d.%d\r\n\r\n", r, i);
	for (k = 0; k < body; k++)
		m[pos + k] = (char)('a' + (int)((k * 31 + (size_t)i) % 26));
	*len_r = pos + body;
	return m;
}

static void child_hold(const char *state_dir, int r, int out)
{
	struct mail_store *store;
	struct mr_error err;
	int fd = open(state_dir, O_RDONLY | O_DIRECTORY), i, lock;

	if (fd < 0 || mail_store_open(fd, &store, &err) < 0)
		_exit(2);
	for (i = 0; i < MAX_PER_ROUND; i++) {
		char line[32];
		size_t len;
		char *m = make_message(r, i, &len);
		int n;

		if (mail_hold_lock(store, "alice", &lock, &err) < 0 ||
		    mail_hold(store, "alice", m, len, NULL, &err) < 0)
			_exit(3);
		mail_hold_unlock(lock);
		free(m);
		n = snprintf(line, sizeof(line), "done %d\n", i);
		if (write(out, line, (size_t)n) != n)
			_exit(4);
	}
	_exit(0);
}

/* Reads everything the child wrote; returns the highest N of "done N"
 * (-1 when none). */
static int read_done(int in)
{
	char buf[65536];
	size_t len = 0;
	ssize_t n;
	int last = -1;
	char *p;

	while ((n = read(in, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	for (p = buf; (p = strstr(p, "done ")) != NULL; p += 5) {
		/* Only whole lines count: the kill may cut a write short. */
		char *nl = strchr(p, '\n');
		if (nl == NULL)
			break;
		last = atoi(p + 5);
	}
	return last;
}

static void sleep_random_us(unsigned max_us)
{
	struct timespec ts;
	unsigned us = (unsigned)rand() % max_us;

	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (long)(us % 1000000) * 1000;
	nanosleep(&ts, NULL);
}

/* Counts, per message id, the copies in new/ and cur/. Fails on a file
 * whose content is not the message its id names. */
static void count_copies(struct mt *t, int copies[ROUNDS][MAX_PER_ROUND])
{
	size_t n, i;
	char **v = mt_list(t->maildir, "new", &n);

	memset(copies, 0, sizeof(int) * ROUNDS * MAX_PER_ROUND);
	for (i = 0; i < n; i++) {
		char *rel = tu_path("new", v[i]), *data, *expect;
		size_t len, elen;
		int r, k;

		data = tu_read_file(t->maildir, rel, &len);
		assert_non_null(data);
		assert_int_equal(sscanf(data, "X-Id: %d.%d", &r, &k), 2);
		assert_true(r >= 0 && r < ROUNDS && k >= 0 && k < MAX_PER_ROUND);
		expect = make_message(r, k, &elen);
		assert_int_equal(len, elen);
		assert_memory_equal(data, expect, len);
		copies[r][k]++;
		free(expect);
		free(data);
		free(rel);
	}
	mt_names_free(v, n);
}

static int (*copies)[MAX_PER_ROUND];
static int done_upto[ROUNDS];

static void holds_survive_kill9(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t held, released;
	int r, k, total_done = 0, extra = 0;

	(void)state;
	copies = calloc(ROUNDS, sizeof(*copies));
	assert_non_null(copies);
	for (r = 0; r < ROUNDS; r++) {
		int fds[2], status;
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			child_hold(t->state, r, fds[1]);
		}
		close(fds[1]);
		/* From "before the first hold" to "well into the stream". */
		sleep_random_us(r == 0 ? 2000 : 60000);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
		done_upto[r] = read_done(fds[0]);
		close(fds[0]);
		total_done += done_upto[r] + 1;
	}
	print_message("seed %u: %d holds completed over %d kills\n", seed, total_done, ROUNDS);

	/* No torn held file: a release reads and checks every one. */
	assert_int_equal(mail_held_count(t->store, "alice", &held, NULL, &err), 0);
	assert_true(held >= (uint64_t)total_done);
	assert_true(held <= (uint64_t)total_done + ROUNDS);
	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release after kills (seed %u): %s", seed, err.msg);
	assert_int_equal(released, held);

	count_copies(t, copies);
	for (r = 0; r < ROUNDS; r++) {
		for (k = 0; k < MAX_PER_ROUND; k++) {
			if (k <= done_upto[r]) {
				if (copies[r][k] != 1)
					fail_msg("seed %u: message %d.%d completed but found %d times",
						 seed, r, k, copies[r][k]);
			} else if (copies[r][k] > 1) {
				fail_msg("seed %u: message %d.%d found %d times", seed, r, k,
					 copies[r][k]);
			} else {
				/* The one cut short between rename and "done". */
				assert_true(copies[r][k] == 0 || k == done_upto[r] + 1);
				extra += copies[r][k];
			}
		}
	}
	assert_int_equal((uint64_t)(total_done + extra), held);

	/* Now kill releases instead: start over in an empty Maildir. */
	assert_int_equal(tu_sh("rm -rf '%s'/new '%s'/cur '%s'/tmp", t->maildir, t->maildir,
			       t->maildir), 0);
	for (r = 0; r < ROUNDS; r++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct mail_store *store;
			int sfd = open(t->state, O_RDONLY | O_DIRECTORY);
			int mfd = open(t->maildir, O_RDONLY | O_DIRECTORY), lock;

			if (sfd < 0 || mfd < 0 || mail_store_open(sfd, &store, &err) < 0 ||
			    mail_hold_lock(store, "alice", &lock, &err) < 0 ||
			    mail_release(store, "alice", mfd, &released, &err) < 0)
				_exit(3);
			_exit(0);
		}
		sleep_random_us(30000);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
	}
	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release after killed releases (seed %u): %s", seed, err.msg);
	assert_int_equal(released, held);
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	count_copies(t, copies);
	for (r = 0; r < ROUNDS; r++)
		for (k = 0; k <= done_upto[r]; k++)
			if (copies[r][k] != 1)
				fail_msg("seed %u: message %d.%d found %d times after killed releases",
					 seed, r, k, copies[r][k]);
	assert_int_equal(mail_release_done(t->store, "alice", &err), 0);
	free(copies);
	mt_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(holds_survive_kill9),
	};
	const char *s = getenv("MR_CRASH_SEED");

	seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
	srand(seed);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
