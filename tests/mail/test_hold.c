/* test_hold.c: held mail (mail/held.c): hold, count, release in arrival
 * order with exact content and mtimes, a release repeated after a crash
 * (also after the user's client moved a message to cur/), release_done,
 * the list of users with held mail, big messages and bad user names. */
#include "mailtest.h"

#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *const msgs[3] = {
	"Subject: one\r\n\r\nfirst\r\n",
	"Subject: two\r\n\r\nsecond, a little longer than the first\r\n",
	"Subject: three\r\n\r\nthird\r\n",
};

struct window {
	uint64_t before, after;
};

/* Holds the three messages for alice, remembering when each arrived. */
static void hold_three(struct mt *t, struct window w[3])
{
	int i;

	for (i = 0; i < 3; i++) {
		w[i].before = now_ns();
		assert_int_equal(mt_hold(t, "alice", msgs[i], strlen(msgs[i])), (uint64_t)i + 1);
		w[i].after = now_ns();
	}
}

/* Checks that new/ and cur/ together hold the three messages exactly once,
 * each with its content and an mtime inside its arrival window. */
static void check_three(struct mt *t, const struct window w[3])
{
	int seen[3] = { 0, 0, 0 };
	const char *subs[2] = { "new", "cur" };
	int s;

	for (s = 0; s < 2; s++) {
		size_t n, i;
		char **v = mt_list(t->maildir, subs[s], &n);

		for (i = 0; i < n; i++) {
			unsigned long long seq = mt_name_seq(v[i]);
			char *rel = tu_path(subs[s], v[i]), *path = tu_path(t->maildir, rel);
			char *data;
			size_t len;
			struct stat st;
			uint64_t mtime;

			assert_true(seq >= 1 && seq <= 3);
			seen[seq - 1]++;
			data = tu_read_file(t->maildir, rel, &len);
			assert_non_null(data);
			assert_int_equal(len, strlen(msgs[seq - 1]));
			assert_memory_equal(data, msgs[seq - 1], len);
			assert_int_equal(stat(path, &st), 0);
			mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
			assert_true(mtime >= w[seq - 1].before);
			assert_true(mtime <= w[seq - 1].after);
			free(data);
			free(rel);
			free(path);
		}
		mt_names_free(v, n);
	}
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 1);
	assert_int_equal(seen[2], 1);
}

static void hold_count_release(void **state)
{
	struct mt *t = mt_new();
	struct window w[3];
	struct mr_error err;
	uint64_t count, bytes, released, total;
	char **v;
	size_t n, i;

	(void)state;
	hold_three(t, w);
	assert_int_equal(mail_held_count(t->store, "alice", &count, &bytes, &err), 0);
	assert_int_equal(count, 3);
	assert_int_equal(bytes, strlen(msgs[0]) + strlen(msgs[1]) + strlen(msgs[2]));
	assert_int_equal(mail_held_total(t->store, &total, &err), 0);
	assert_int_equal(total, 3);
	assert_int_equal(mail_held_count(t->store, "bob", &count, &bytes, &err), 0);
	assert_int_equal(count, 0);
	assert_int_equal(bytes, 0);

	v = mt_list(t->state, "held/alice", &n);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "00000000000000000001.mrmail");
	assert_string_equal(v[2], "00000000000000000003.mrmail");
	mt_names_free(v, n);

	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release: %s", err.msg);
	assert_int_equal(released, 3);
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	assert_int_equal(mt_count(t->maildir, "cur"), 0);
	check_three(t, w);

	/* Arrival order: by name (time first) the seqs come out 1, 2, 3. */
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		char expect[64];
		snprintf(expect, sizeof(expect), "P0Q%zu.mailrestore-held,S=%zu", i + 1,
			 strlen(msgs[i]));
		assert_non_null(strstr(v[i], expect));
	}
	mt_names_free(v, n);

	/* The held files stay until release_done. */
	assert_int_equal(mt_count(t->state, "held/alice"), 3);
	assert_int_equal(mail_release_done(t->store, "alice", &err), 0);
	assert_int_equal(mt_count(t->state, "held/alice"), 0);
	assert_int_equal(access(t->state, F_OK), 0);
	assert_int_equal(mail_held_count(t->store, "alice", &count, NULL, &err), 0);
	assert_int_equal(count, 0);
	/* Nothing held: release and release_done are no-ops. */
	assert_int_equal(mail_release_done(t->store, "alice", &err), 0);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 0);
	assert_int_equal(mt_count(t->maildir, "new"), 3);

	/* Holding again starts over at 1, after what was released. */
	assert_int_equal(mt_hold(t, "alice", "x", 1), 1);
	mt_free(t);
}

static void release_repeated_after_crash(void **state)
{
	struct mt *t = mt_new();
	struct window w[3];
	struct mr_error err;
	uint64_t released;

	(void)state;
	hold_three(t, w);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	/* The crash came before release_done: the next start releases again. */
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 3);
	assert_int_equal(mt_count(t->maildir, "new"), 3);
	check_three(t, w);
	mt_free(t);
}

static void release_repeated_after_user_read_one(void **state)
{
	struct mt *t = mt_new();
	struct window w[3];
	struct mr_error err;
	uint64_t released;
	char **v, from[4096], to[4096];
	size_t n;

	(void)state;
	hold_three(t, w);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	/* The client saw the second message: new/ -> cur/ with flags. */
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 3);
	snprintf(from, sizeof(from), "%s/new/%s", t->maildir, v[1]);
	snprintf(to, sizeof(to), "%s/cur/%s:2,S", t->maildir, v[1]);
	assert_int_equal(rename(from, to), 0);
	mt_names_free(v, n);

	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 3);
	assert_int_equal(mt_count(t->maildir, "new"), 2);
	assert_int_equal(mt_count(t->maildir, "cur"), 1);
	check_three(t, w);
	mt_free(t);
}

/* A crash in the middle of a release leaves some messages in new/ and maybe
 * a part-written file in tmp/: the next release completes it. */
static void release_after_partial_release(void **state)
{
	struct mt *t = mt_new();
	struct window w[3];
	struct mr_error err;
	uint64_t released;
	char **v;
	size_t n;

	(void)state;
	hold_three(t, w);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 3);
	/* Take the third back and leave a torn copy of it in tmp/. */
	assert_int_equal(tu_sh("mv '%s/new/%s' '%s/tmp/%s' && truncate -s 3 '%s/tmp/%s'",
			       t->maildir, v[2], t->maildir, v[2], t->maildir, v[2]), 0);
	mt_names_free(v, n);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 3);
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	assert_int_equal(mt_count(t->maildir, "new"), 3);
	check_three(t, w);
	mt_free(t);
}

static void held_users_lists_only_users_with_mail(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	char **names;
	size_t n;
	uint64_t total;
	int lock;

	(void)state;
	assert_int_equal(mail_held_users(t->store, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	mr_names_free(names, n);

	mt_hold(t, "zoe", "z", 1);
	mt_hold(t, "bob@example.org", "b", 1);
	mt_hold(t, "bob@example.org", "b", 1);
	/* A lock alone (and its .lock file) is not held mail. */
	assert_int_equal(mail_hold_lock(t->store, "carol", &lock, &err), 0);
	mail_hold_unlock(lock);
	assert_int_equal(mail_held_users(t->store, &names, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "bob@example.org");
	assert_string_equal(names[1], "zoe");
	mr_names_free(names, n);
	assert_int_equal(mail_held_total(t->store, &total, &err), 0);
	assert_int_equal(total, 3);

	assert_int_equal(mail_release_done(t->store, "zoe", &err), 0);
	assert_int_equal(mail_held_users(t->store, &names, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "bob@example.org");
	mr_names_free(names, n);
	mt_free(t);
}

static void large_message_round_trip(void **state)
{
	struct mt *t = mt_new();
	size_t len = 5u << 20, i, n, got;
	unsigned char *msg = malloc(len);
	uint32_t x = 12345;
	struct mr_error err;
	uint64_t released;
	char **v, *rel, *data;
	struct stat st;

	(void)state;
	assert_non_null(msg);
	/* Half text (compresses), half noise (does not). */
	for (i = 0; i < len / 2; i++)
		msg[i] = (unsigned char)("Lorem ipsum dolor sit amet\r\n"[i % 28]);
	for (; i < len; i++) {
		x = x * 1103515245u + 12345u;
		msg[i] = (unsigned char)(x >> 16);
	}
	mt_hold(t, "alice", msg, len);
	rel = tu_path(t->state, "held/alice/00000000000000000001.mrmail");
	assert_int_equal(stat(rel, &st), 0);
	assert_true((size_t)st.st_size < len);  /* it was compressed */
	free(rel);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 1);
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 1);
	rel = tu_path("new", v[0]);
	data = tu_read_file(t->maildir, rel, &got);
	assert_non_null(data);
	assert_int_equal(got, len);
	assert_memory_equal(data, msg, len);
	free(data);
	free(rel);
	mt_names_free(v, n);
	free(msg);
	mt_free(t);
}

static void empty_message_round_trip(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t released;
	char **v;
	size_t n;

	(void)state;
	mt_hold(t, "alice", "", 0);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 1);
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 1);
	assert_non_null(strstr(v[0], ",S=0"));
	mt_names_free(v, n);
	mt_free(t);
}

/* Released as root into a user's Maildir: the user owns the files. */
static void released_files_belong_to_the_maildir_owner(void **state)
{
	struct mt *t;
	struct mr_error err;
	uint64_t released;
	char **v, path[4096];
	size_t n;
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	t = mt_new();
	assert_int_equal(chown(t->maildir, 65534, 65534), 0);
	mt_hold(t, "alice", "m", 1);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 1);
	snprintf(path, sizeof(path), "%s/new/%s", t->maildir, v[0]);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	mt_names_free(v, n);
	mt_free(t);
}

static void invalid_user_names_refused(void **state)
{
	static const char *bad[] = { "", "../x", "a/b", ".", "..", "a b", "-x", ".lock" };
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t count, released;
	size_t i;
	int lock;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(mail_hold_lock(t->store, bad[i], &lock, &err), -1);
		assert_int_equal(err.errnum, EINVAL);
		assert_int_equal(lock, -1);
		assert_int_equal(mail_hold(t->store, bad[i], "x", 1, NULL, &err), -1);
		assert_int_equal(err.errnum, EINVAL);
		assert_string_equal(err.msg, "invalid user name");
		assert_int_equal(mail_held_count(t->store, bad[i], &count, NULL, &err), -1);
		assert_int_equal(mail_release(t->store, bad[i], t->maildir_fd, &released, &err), -1);
		assert_int_equal(err.errnum, EINVAL);
		assert_int_equal(mail_release_done(t->store, bad[i], &err), -1);
	}
	assert_int_equal(mail_hold(t->store, NULL, "x", 1, NULL, &err), -1);
	/* Nothing was created anywhere: held/ is empty, no ../x escaped. */
	assert_int_equal(mt_count(t->state, "held"), 0);
	assert_int_equal(mt_count(t->dir, "."), 2);
	mt_free(t);
}

/* Held mail has limits (issue 10: 16 messages of 16 MiB filled the target
 * and every restore after failed with ENOSPC): per user and in all, in
 * messages and bytes, and a free-space reserve; a refusal writes nothing
 * and says why (EDQUOT, ENOSPC), and released mail counts no more. */
static int hold_one(struct mt *t, const char *user, const char *msg, struct mr_error *err)
{
	int lock, rc;

	if (mail_hold_lock(t->store, user, &lock, err) < 0)
		return -1;
	rc = mail_hold(t->store, user, msg, strlen(msg), NULL, err);
	mail_hold_unlock(lock);
	return rc;
}

static void held_mail_limits(void **state)
{
	struct mt *t = mt_new();
	struct mail_limits l = { .user_messages = 2, .total_messages = 3 };
	struct mr_error err;
	uint64_t count, released;

	(void)state;
	mail_store_set_limits(t->store, &l);
	assert_int_equal(hold_one(t, "alice", "one", &err), 0);
	assert_int_equal(hold_one(t, "alice", "two", &err), 0);
	assert_int_equal(hold_one(t, "alice", "three", &err), -1);
	assert_int_equal(err.errnum, EDQUOT);
	assert_non_null(strstr(err.msg, "held mail limit reached"));
	assert_int_equal(mail_held_count(t->store, "alice", &count, NULL, &err), 0);
	assert_int_equal(count, 2);
	assert_int_equal(mt_count(t->state, "held/alice"), 2);
	/* The total: bob gets one, carol none. */
	assert_int_equal(hold_one(t, "bob", "b1", &err), 0);
	assert_int_equal(hold_one(t, "carol", "c1", &err), -1);
	assert_int_equal(err.errnum, EDQUOT);
	/* Released mail frees its room. */
	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release: %s", err.msg);
	assert_int_equal(mail_release_done(t->store, "alice", &err), 0);
	assert_int_equal(hold_one(t, "carol", "c1", &err), 0);
	/* Bytes per user and in all (on disk: the header and the frame). */
	l.user_messages = l.total_messages = 0;
	l.user_bytes = 200;
	mail_store_set_limits(t->store, &l);
	assert_int_equal(hold_one(t, "dave", "small", &err), 0);
	{
		char big[400];

		/* Bytes that lz4 cannot shrink below the 200 allowed. */
		big[sizeof(big) - 1] = '\0';
		for (size_t i = 0; i + 1 < sizeof(big); i++)
			big[i] = (char)('!' + (i * 7919 + i / 3) % 90);
		assert_int_equal(hold_one(t, "dave", big, &err), -1);
		assert_int_equal(err.errnum, EDQUOT);
	}
	l.user_bytes = 0;
	l.total_bytes = 1;
	mail_store_set_limits(t->store, &l);
	assert_int_equal(hold_one(t, "erin", "e", &err), -1);
	assert_int_equal(err.errnum, EDQUOT);
	/* The free space reserve: more than the disk has. */
	l.total_bytes = 0;
	l.reserve_bytes = UINT64_MAX / 4;
	mail_store_set_limits(t->store, &l);
	assert_int_equal(hold_one(t, "erin", "e", &err), -1);
	assert_int_equal(err.errnum, ENOSPC);
	assert_non_null(strstr(err.msg, "free"));
	assert_int_equal(mail_held_count(t->store, "erin", &count, NULL, &err), 0);
	assert_int_equal(count, 0);
	mt_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hold_count_release),
		cmocka_unit_test(release_repeated_after_crash),
		cmocka_unit_test(release_repeated_after_user_read_one),
		cmocka_unit_test(release_after_partial_release),
		cmocka_unit_test(held_users_lists_only_users_with_mail),
		cmocka_unit_test(large_message_round_trip),
		cmocka_unit_test(empty_message_round_trip),
		cmocka_unit_test(released_files_belong_to_the_maildir_owner),
		cmocka_unit_test(invalid_user_names_refused),
		cmocka_unit_test(held_mail_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
