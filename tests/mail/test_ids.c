/*
 * test_ids.c: delivery ids (ids.c): a new id is recorded, a done one is
 * recognised, one begun but not done is pending; a torn tail is cut off, a
 * damaged header is moved aside, an id is forgotten after its time, and the
 * file stays bounded.
 */
#include "mailtest.h"

#include <xxhash.h>

#include <cmocka.h>

#define NS 1000000000ull
#define T0 (1800000000ull * NS)

static struct mail_ids *ids_open(struct mt *t)
{
	struct mail_ids *ids = NULL;
	struct mr_error err = { 0 };

	if (mail_ids_open(t->state_fd, &ids, &err) < 0)
		fail_msg("mail_ids_open: %s", err.msg);
	return ids;
}

static enum mail_id_seen begin(struct mail_ids *ids, const char *user, const char *id,
			       const char *msg, uint64_t now, struct mail_id_pending *p)
{
	enum mail_id_seen seen = 99;
	struct mr_error err = { 0 };

	if (mail_id_begin(ids, user, id, msg, strlen(msg), now, &seen, p, &err) < 0)
		fail_msg("mail_id_begin: %s", err.msg);
	return seen;
}

static void done(struct mail_ids *ids, const char *user, const char *id, uint64_t now)
{
	struct mr_error err = { 0 };

	if (mail_id_done(ids, user, id, now, &err) < 0)
		fail_msg("mail_id_done: %s", err.msg);
}

static off_t file_size(struct mt *t, const char *rel)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", t->state, rel);
	if (stat(path, &st) < 0)
		return -1;
	return st.st_size;
}

static void new_done_pending(void **state)
{
	struct mt *t = mt_new();
	struct mail_ids *ids = ids_open(t);
	struct mail_id_pending p = { 0 };

	(void)state;
	assert_int_equal(begin(ids, "bob", "Q1/bob@x", "hello", T0, NULL), MAIL_ID_NEW);
	/* begun, not done: the message may or may not be there */
	assert_int_equal(begin(ids, "bob", "Q1/bob@x", "hello", T0 + NS, &p), MAIL_ID_PENDING);
	assert_int_equal(p.since_ns, T0);
	assert_int_equal(p.msg_len, 5);
	done(ids, "bob", "Q1/bob@x", T0 + 2 * NS);
	assert_int_equal(begin(ids, "bob", "Q1/bob@x", "hello", T0 + 3 * NS, NULL), MAIL_ID_DONE);
	/* ids are per user and per id */
	assert_int_equal(begin(ids, "alice", "Q1/bob@x", "hello", T0, NULL), MAIL_ID_NEW);
	assert_int_equal(begin(ids, "bob", "Q2/bob@x", "hello", T0, NULL), MAIL_ID_NEW);
	/* and kept across a reopen (the daemon restarted) */
	mail_ids_close(&ids);
	assert_null(ids);
	ids = ids_open(t);
	assert_int_equal(begin(ids, "bob", "Q1/bob@x", "hello", T0 + 4 * NS, NULL), MAIL_ID_DONE);
	mail_ids_close(&ids);
	mt_free(t);
}

static void torn_tail_is_cut_off(void **state)
{
	struct mt *t = mt_new();
	struct mail_ids *ids = ids_open(t);
	off_t size;

	(void)state;
	assert_int_equal(begin(ids, "bob", "A", "m", T0, NULL), MAIL_ID_NEW);
	done(ids, "bob", "A", T0);
	size = file_size(t, "ids/bob");
	/* a crash in the middle of the next append leaves half a record */
	assert_int_equal(tu_sh("head -c 30 /dev/urandom >> '%s/ids/bob'", t->state), 0);
	assert_int_equal(begin(ids, "bob", "A", "m", T0, NULL), MAIL_ID_DONE);
	assert_int_equal(begin(ids, "bob", "B", "m", T0, NULL), MAIL_ID_NEW);
	/* the torn bytes were cut before the new record went on */
	assert_int_equal(file_size(t, "ids/bob"), size + 56);
	assert_int_equal(begin(ids, "bob", "B", "m", T0, NULL), MAIL_ID_PENDING);
	/* a record whose checksum fails ends the good part too */
	assert_int_equal(tu_sh("printf 'X' | dd of='%s/ids/bob' bs=1 seek=%lld conv=notrunc 2>/dev/null",
			       t->state, (long long)size + 10), 0);
	assert_int_equal(begin(ids, "bob", "B", "m", T0, NULL), MAIL_ID_NEW);
	mail_ids_close(&ids);
	mt_free(t);
}

static void damaged_header_is_set_aside(void **state)
{
	struct mt *t = mt_new();
	struct mail_ids *ids = ids_open(t);
	enum mail_id_seen seen;
	struct mr_error err = { 0 };

	(void)state;
	assert_int_equal(begin(ids, "bob", "A", "m", T0, NULL), MAIL_ID_NEW);
	assert_int_equal(tu_sh("printf 'XXXX' | dd of='%s/ids/bob' conv=notrunc 2>/dev/null", t->state), 0);
	assert_int_equal(begin(ids, "bob", "A", "m", T0, NULL), MAIL_ID_NEW);
	assert_true(file_size(t, "ids/.damaged.bob") > 0);
	/* a newer major version is refused, not overwritten */
	assert_int_equal(tu_sh("printf 'MRID\\002' | dd of='%s/ids/bob' conv=notrunc 2>/dev/null",
			       t->state), 0);
	assert_int_equal(mail_id_begin(ids, "bob", "A", "m", 1, T0, &seen, NULL, &err), -1);
	assert_int_equal(err.errnum, EPROTONOSUPPORT);
	/* names that are no user name never become paths */
	assert_int_equal(mail_id_begin(ids, "../x", "A", "m", 1, T0, &seen, NULL, &err), -1);
	assert_int_equal(err.errnum, EINVAL);
	assert_int_equal(mail_id_begin(ids, "bob", "", "m", 1, T0, &seen, NULL, &err), -1);
	mail_ids_close(&ids);
	mt_free(t);
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
	int i;

	for (i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes ids/<user> with n "begin" records for ids "id0".."id<n-1>": the
 * header "MRID" 1.0, size 16, low 32 bits of xxh3 of its first 12 bytes;
 * records of kind, 0, time, id xxh3-128 low and high, message hash and
 * length, xxh3 of the 48 bytes before. */
static void write_records(struct mt *t, const char *user, int n, uint64_t time_ns)
{
	unsigned char head[16], rec[56];
	char path[4096], id[32];
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "%s/ids/%s", t->state, user);
	f = fopen(path, "wb");
	assert_non_null(f);
	memcpy(head, "MRID", 4);
	put_le(head + 4, 1, 2);
	put_le(head + 6, 0, 2);
	put_le(head + 8, 16, 4);
	put_le(head + 12, (uint32_t)XXH3_64bits(head, 12), 4);
	assert_int_equal(fwrite(head, 1, sizeof(head), f), sizeof(head));
	for (i = 0; i < n; i++) {
		XXH128_hash_t h;

		snprintf(id, sizeof(id), "id%d", i);
		h = XXH3_128bits(id, strlen(id));
		memset(rec, 0, sizeof(rec));
		put_le(rec, 1, 4);
		put_le(rec + 8, time_ns + (uint64_t)i, 8);
		put_le(rec + 16, h.low64, 8);
		put_le(rec + 24, h.high64, 8);
		put_le(rec + 32, XXH3_64bits("m", 1), 8);
		put_le(rec + 40, 1, 8);
		put_le(rec + 48, XXH3_64bits(rec, 48), 8);
		assert_int_equal(fwrite(rec, 1, sizeof(rec), f), sizeof(rec));
	}
	assert_int_equal(fclose(f), 0);
}

static void old_ids_expire_and_the_file_is_bounded(void **state)
{
	struct mt *t = mt_new();
	struct mail_ids *ids = ids_open(t);
	uint64_t keep = (uint64_t)MAIL_IDS_KEEP_SECONDS * NS;

	(void)state;
	assert_int_equal(begin(ids, "bob", "old", "m", T0, NULL), MAIL_ID_NEW);
	done(ids, "bob", "old", T0);
	assert_int_equal(begin(ids, "bob", "old", "m", T0 + keep - NS, NULL), MAIL_ID_DONE);
	/* after its time an id is forgotten */
	assert_int_equal(begin(ids, "bob", "old", "m", T0 + keep + 2 * NS, NULL), MAIL_ID_NEW);
	/* many ids: the file never grows past 8192 records (written here
	 * directly, in the documented format, to spare 8192 fsyncs) */
	write_records(t, "carl", 8192, T0);
	assert_int_equal(begin(ids, "carl", "id8191", "m", T0 + 9000, NULL), MAIL_ID_PENDING);
	assert_int_equal(begin(ids, "carl", "id9000", "m", T0 + 9000, NULL), MAIL_ID_NEW);
	assert_true(file_size(t, "ids/carl") <= 16 + 8192 * 56);
	/* the newest are still known, the oldest half is gone */
	assert_int_equal(begin(ids, "carl", "id8191", "m", T0 + 9000, NULL), MAIL_ID_PENDING);
	assert_int_equal(begin(ids, "carl", "id9000", "m", T0 + 9000, NULL), MAIL_ID_PENDING);
	assert_int_equal(begin(ids, "carl", "id0", "m", T0 + 9000, NULL), MAIL_ID_NEW);
	/* the compaction's temp file is no other user's file: a user named
	 * "carl.tmp" keeps its ids */
	write_records(t, "carl", 8192, T0);
	assert_int_equal(begin(ids, "carl.tmp", "mine", "m", T0, NULL), MAIL_ID_NEW);
	assert_int_equal(begin(ids, "carl", "id9001", "m", T0 + 9000, NULL), MAIL_ID_NEW);
	assert_int_equal(begin(ids, "carl.tmp", "mine", "m", T0, NULL), MAIL_ID_PENDING);
	mail_ids_close(&ids);
	mt_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_done_pending),
		cmocka_unit_test(torn_tail_is_cut_off),
		cmocka_unit_test(damaged_header_is_set_aside),
		cmocka_unit_test(old_ids_expire_and_the_file_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
