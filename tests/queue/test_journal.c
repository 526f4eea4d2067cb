/*
 * test_journal.c: the queue's journal (queue/journal.c): replay gives back
 * the queue that was closed or crashed, a torn tail cut at any byte is
 * dropped, a bad checksum ends the replay there, a zero-filled tail is cut,
 * an unknown major version or a foreign file is refused untouched, a newer
 * minor is read (records of types it added skipped), a whole record that
 * does not apply refuses the open instead of being cut, a second open of
 * the same state fails, fsync and write failures fail the commit, and
 * compaction keeps everything.
 */
#include "tests/queue/qtest.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <xxhash.h>

static size_t put_record_v1(char *p, uint16_t type, const void *payload, uint32_t len);

static size_t journal_size(struct qt *t)
{
	char *path = tu_path(t->dir, "queue.journal");
	struct stat st;

	if (stat(path, &st) < 0)
		fail_msg("stat(%s): %s", path, strerror(errno));
	free(path);
	return (size_t)st.st_size;
}

static char *journal_read(struct qt *t, size_t *len)
{
	char *data = tu_read_file(t->dir, "queue.journal", len);

	assert_non_null(data);
	return data;
}

static void journal_write(struct qt *t, const void *data, size_t len)
{
	tu_write_file(t->dir, "queue.journal", data, len);
}

/* A queue with every kind of record in it. */
static void busy_queue(struct qt *t)
{
	struct queue_counters c = { .backup_files = 3, .copied_bytes = 12345, .held_mail = 2 };
	struct mr_error err;
	char name[32];
	int i;

	qt_add_n(t, 40);
	for (i = 0; i < 40; i += 3) {
		snprintf(name, sizeof(name), "u%04d", i);
		qt_ask(t, 'r', name);
	}
	qt_ask(t, 'e', "u0001");
	qt_ask(t, 'e', "u0002");
	qt_ask(t, 'b', "u0030");
	qt_ask(t, 'b', "u0031");
	qt_next(t, 1, "u0031");
	qt_next(t, 1, "u0030");
	assert_int_equal(queue_set_state(t->q, "u0031", QUEUE_SYNCING, NULL, &c, 2001, &err), 0);
	assert_int_equal(queue_set_state(t->q, "u0031", QUEUE_ACTIVE, NULL, &c, 2002, &err), 0);
	assert_int_equal(queue_set_state(t->q, "u0030", QUEUE_ATTENTION, "source folder missing",
					 &c, 2003, &err), 0);
	qt_next(t, 1, "u0000");
	assert_int_equal(queue_requeue(t->q, "u0000", &err), 0);
	qt_next(t, 1, "u0000");
	qt_set(t, "u0000", QUEUE_ACTIVE, NULL);
	assert_int_equal(queue_retry(t->q, "u0030", 2100, &err), 0);
	qt_set(t, "u0039", QUEUE_ACTIVE, NULL);
	qt_next(t, 0, "u0003");
	qt_set(t, "u0003", QUEUE_SYNCING, NULL);
	qt_add(t, "late.user@example.org", 7);
}

static void test_replay_equals_close(void **state)
{
	struct qt t;
	struct qt_dump a, b;

	(void)state;
	qt_setup(&t, 1);
	busy_queue(&t);
	/* u0003 is running; a restart puts it back in line like a requeue. */
	assert_int_equal(queue_requeue(t.q, "u0003", NULL), 0);
	a = qt_dump(&t);
	qt_reopen(&t);
	b = qt_dump(&t);
	qt_dump_equal(&a, &b);
	/* And once more after a compaction, from the snapshot. */
	assert_int_equal(queue_compact(t.q, NULL), 0);
	qt_reopen(&t);
	qt_dump_free(&b);
	b = qt_dump(&t);
	qt_dump_equal(&a, &b);
	qt_next(&t, 1, "u0003");
	qt_dump_free(&a);
	qt_dump_free(&b);
	qt_teardown(&t);
}

/* kill -9 stand-in: a child does the work and _exit()s without closing. */
static void test_replay_after_crash(void **state)
{
	struct qt t;
	struct queue_user_info info;
	pid_t pid;
	int status;

	(void)state;
	qt_setup(&t, 1);
	qt_add_n(&t, 10);
	queue_close(&t.q);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mr_error err;
		char name[MR_USER_NAME_MAX + 1];

		if (queue_open(t.dirfd, &t.settings, &t.q, &err) < 0)
			_exit(2);
		qt_ask(&t, 'r', "u0005");
		qt_ask(&t, 'r', "u0002");
		qt_ask(&t, 'r', "u0007");
		if (queue_next(t.q, 1, 10.0, name, NULL, &err) != 1)
			_exit(3);
		/* Not committed: may or may not survive. */
		queue_request(t.q, "u0009", 11.0, NULL, NULL, &err);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	qt_open(&t);
	/* u0005 was running: back at the front, its run counted. */
	assert_int_equal(queue_lookup(t.q, "u0005", &info), 0);
	assert_int_equal(info.state, QUEUE_QUEUED);
	assert_int_equal(info.position, 0);
	assert_int_equal(info.attempts, 1);
	assert_int_equal(qt_pos(&t, "u0002"), 1);
	assert_int_equal(qt_pos(&t, "u0007"), 2);
	qt_next(&t, 1, "u0005");
	qt_teardown(&t);
}

/* Cuts the last record at every byte: it is dropped, the rest kept. */
static void test_torn_tail(void **state)
{
	struct qt t;
	struct mr_error err;
	size_t before, full, len, cut;
	char *data;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 3);
	qt_ask(&t, 'r', "u0001");
	queue_close(&t.q);
	before = journal_size(&t);
	qt_open(&t);
	qt_ask(&t, 'r', "u0002");
	queue_close(&t.q);
	full = journal_size(&t);
	assert_true(full > before);
	data = journal_read(&t, &len);
	for (cut = before; cut < full; cut++) {
		journal_write(&t, data, cut);
		if (queue_open(t.dirfd, &t.settings, &t.q, &err) < 0)
			fail_msg("open with tail cut at %zu: %s", cut, err.msg);
		assert_int_equal(qt_pos(&t, "u0001"), 0);
		assert_int_equal(qt_state(&t, "u0002"), QUEUE_WAITING);
		queue_close(&t.q);
		assert_int_equal(journal_size(&t), before);
	}
	journal_write(&t, data, full);
	qt_open(&t);
	assert_int_equal(qt_pos(&t, "u0002"), 1);
	free(data);
	qt_teardown(&t);
}

/* Issue 10 finding 7: one flipped bit in the second of 7 answered
 * requests used to cut the journal there, losing 6 answered positions.
 * Damage followed by valid records refuses the open, naming the offset and
 * leaving the file as it is; check reports it, salvage keeps the other 6
 * and sets the damaged file aside. */
static void test_damage_in_middle_refused_then_salvaged(void **state)
{
	struct queue_journal_report rep;
	struct qt t;
	struct mr_error err;
	size_t a, len, rec = 24 + 22, i;
	char *data, *aside, want[64], name[16];

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 8);
	queue_close(&t.q);
	a = journal_size(&t);
	qt_open(&t);
	for (i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "u%04zu", i);
		qt_ask(&t, 'r', name);
	}
	queue_close(&t.q);
	data = journal_read(&t, &len);
	assert_int_equal(len, a + 7 * rec);
	data[a + rec + 24 + 6] ^= 0x08;
	journal_write(&t, data, len);
	assert_int_equal(queue_open(t.dirfd, &t.settings, &t.q, &err), -1);
	assert_int_equal(err.errnum, EBADMSG);
	snprintf(want, sizeof(want), "damaged at offset %zu", a + rec);
	if (strstr(err.msg, want) == NULL || strstr(err.msg, "journal salvage") == NULL)
		fail_msg("\"%s\" does not say \"%s\" and what to do", err.msg, want);
	/* Nothing was cut. */
	assert_int_equal(journal_size(&t), len);

	assert_int_equal(queue_journal_check(t.dirfd, 0, &rep, &err), 1);
	assert_int_equal(rep.damaged_regions, 1);
	assert_int_equal(rep.first_damage, a + rec);
	assert_int_equal(rep.damaged_bytes, rec);
	assert_int_equal(rep.torn_bytes, 0);
	assert_string_equal(rep.aside, "");
	assert_int_equal(journal_size(&t), len);

	assert_int_equal(queue_journal_check(t.dirfd, 1, &rep, &err), 1);
	assert_true(rep.aside[0] != '\0');
	aside = tu_read_file(t.dir, rep.aside, &i);
	assert_non_null(aside);
	assert_int_equal(i, len);
	assert_memory_equal(aside, data, len);
	free(aside);
	/* The salvaged journal is clean, and holds the other 6 in order. */
	assert_int_equal(queue_journal_check(t.dirfd, 0, &rep, &err), 0);
	qt_open(&t);
	assert_int_equal(qt_pos(&t, "u0000"), 0);
	assert_int_equal(qt_state(&t, "u0001"), QUEUE_WAITING);
	for (i = 2; i < 7; i++) {
		snprintf(name, sizeof(name), "u%04zu", i);
		assert_int_equal(qt_pos(&t, name), (int64_t)i - 1);
	}
	free(data);
	qt_teardown(&t);
}

/* Salvage over a damaged ADD: the users added after it keep their
 * requests (records name users by number; the hole is bridged). */
static void test_salvage_over_damaged_add(void **state)
{
	struct queue_journal_report rep;
	struct qt t;
	struct mr_error err;
	size_t a, len;
	char *data;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 1);
	queue_close(&t.q);
	a = journal_size(&t);
	qt_open(&t);
	qt_add_n(&t, 4); /* u0001 .. u0003 are new: their ADDs follow */
	qt_ask(&t, 'r', "u0003");
	qt_ask(&t, 'r', "u0000");
	qt_ask(&t, 'r', "u0002");
	queue_close(&t.q);
	data = journal_read(&t, &len);
	data[a + 24 + 2] ^= 0x01; /* the ADD of u0001 */
	journal_write(&t, data, len);
	assert_int_equal(queue_journal_check(t.dirfd, 1, &rep, &err), 1);
	assert_int_equal(rep.damaged_regions, 1);
	assert_int_equal(rep.unapplied, 0);
	qt_open(&t);
	assert_int_equal(qt_pos(&t, "u0003"), 0);
	assert_int_equal(qt_pos(&t, "u0000"), 1);
	assert_int_equal(qt_pos(&t, "u0002"), 2);
	/* u0001 is gone from the journal; the daemon adds it again. */
	qt_add(&t, "u0001", 100);
	assert_int_equal(qt_state(&t, "u0001"), QUEUE_WAITING);
	free(data);
	qt_teardown(&t);
}

/* Damage in the last record is a torn tail: dropped, the rest kept. */
static void test_damage_at_end_is_torn_tail(void **state)
{
	struct queue_journal_report rep;
	struct qt t;
	struct mr_error err;
	size_t a, b, len;
	char *data;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 3);
	queue_close(&t.q);
	a = journal_size(&t);
	qt_open(&t);
	qt_ask(&t, 'r', "u0001");
	queue_close(&t.q);
	b = journal_size(&t);
	qt_open(&t);
	qt_ask(&t, 'r', "u0002");
	queue_close(&t.q);
	data = journal_read(&t, &len);
	data[b + 24 + 6] ^= 0x40;
	journal_write(&t, data, len);
	assert_int_equal(queue_journal_check(t.dirfd, 0, &rep, &err), 0);
	assert_int_equal(rep.torn_offset, b);
	assert_int_equal(rep.torn_bytes, len - b);
	qt_open(&t);
	assert_int_equal(qt_pos(&t, "u0001"), 0);
	assert_int_equal(qt_state(&t, "u0002"), QUEUE_WAITING);
	queue_close(&t.q);
	assert_int_equal(journal_size(&t), b);
	assert_true(b > a);
	free(data);
	qt_teardown(&t);
}

/* A record missing from the middle (a whole one cut out) breaks the
 * sequence: refused like any damage. */
static void test_missing_record_refused(void **state)
{
	struct qt t;
	struct mr_error err;
	size_t a, len, rec = 24 + 22;
	char *data;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 3);
	queue_close(&t.q);
	a = journal_size(&t);
	qt_open(&t);
	qt_ask(&t, 'r', "u0000");
	qt_ask(&t, 'r', "u0001");
	qt_ask(&t, 'r', "u0002");
	queue_close(&t.q);
	data = journal_read(&t, &len);
	memmove(data + a + rec, data + a + 2 * rec, rec);
	journal_write(&t, data, len - rec);
	assert_int_equal(queue_open(t.dirfd, &t.settings, &t.q, &err), -1);
	assert_int_equal(err.errnum, EBADMSG);
	assert_non_null(strstr(err.msg, "sequence number"));
	free(data);
	qt_teardown(&t);
}

/* A version 1 journal (records without sequence numbers) is read and
 * rewritten as version 2. */
static void test_version1_read(void **state)
{
	static const uint8_t add0[] = { 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0,
					'a', 'l', 'i', 'c', 'e' };
	static const uint8_t add1[] = { 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 'b', 'o', 'b' };
	uint8_t req[22] = { 1, 0, 0, 0, 1, 0 }; /* bob, priority lane, seq 0 */
	struct qt t;
	char j[256];
	size_t len = 16;
	char *after;

	(void)state;
	qt_setup(&t, 0);
	queue_close(&t.q);
	memcpy(j, "MRQJ\1\0\0\0\20\0\0\0\1\0\0\0", 16);
	len += put_record_v1(j + len, 1, add0, sizeof(add0));
	len += put_record_v1(j + len, 1, add1, sizeof(add1));
	len += put_record_v1(j + len, 2, req, sizeof(req));
	journal_write(&t, j, len);
	qt_open(&t);
	assert_int_equal(qt_state(&t, "alice"), QUEUE_WAITING);
	assert_int_equal(qt_pos(&t, "bob"), 0);
	after = journal_read(&t, &len);
	assert_int_equal(after[4], 2);
	free(after);
	qt_reopen(&t);
	assert_int_equal(qt_pos(&t, "bob"), 0);
	qt_teardown(&t);
}

/* `pause` survives a crash (issue 10 finding 8) and a compaction. */
static void test_pause_journaled(void **state)
{
	struct qt t;
	struct mr_error err;
	pid_t pid;
	int status;

	(void)state;
	qt_setup(&t, 1);
	qt_add_n(&t, 2);
	assert_int_equal(queue_paused(t.q), 0);
	queue_close(&t.q);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Paused, then killed without a close. */
		if (queue_open(t.dirfd, &t.settings, &t.q, &err) < 0 ||
		    queue_set_paused(t.q, 1, &err) < 0)
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	qt_open(&t);
	assert_int_equal(queue_paused(t.q), 1);
	assert_int_equal(queue_compact(t.q, &err), 0);
	qt_reopen(&t);
	assert_int_equal(queue_paused(t.q), 1);
	assert_int_equal(queue_set_paused(t.q, 0, &err), 0);
	qt_reopen(&t);
	assert_int_equal(queue_paused(t.q), 0);
	qt_teardown(&t);
}

static void test_zero_tail(void **state)
{
	struct qt t;
	size_t len, good;
	char *data, *grown;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 3);
	qt_ask(&t, 'r', "u0002");
	queue_close(&t.q);
	data = journal_read(&t, &len);
	good = len;
	grown = calloc(1, len + 4096);
	assert_non_null(grown);
	memcpy(grown, data, len);
	journal_write(&t, grown, len + 4096);
	qt_open(&t);
	assert_int_equal(qt_pos(&t, "u0002"), 0);
	queue_close(&t.q);
	assert_int_equal(journal_size(&t), good);
	free(data);
	free(grown);
	qt_teardown(&t);
}

static void expect_refused(struct qt *t, const char *data, size_t len, const char *msg)
{
	struct mr_error err;
	size_t after_len;
	char *after;

	journal_write(t, data, len);
	assert_int_equal(queue_open(t->dirfd, &t->settings, &t->q, &err), -1);
	assert_null(t->q);
	if (strstr(err.msg, msg) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err.msg, msg);
	after = journal_read(t, &after_len);
	assert_int_equal(after_len, len);
	assert_memory_equal(after, data, len);
	free(after);
}

static void test_unknown_major(void **state)
{
	struct qt t;
	size_t len;
	char *data;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 3);
	queue_close(&t.q);
	data = journal_read(&t, &len);
	data[4] = 3;
	expect_refused(&t, data, len, "version 3.0");
	data[4] = 1;
	data[5] = 1;
	expect_refused(&t, data, len, "version 257.0");
	free(data);
	qt_teardown(&t);
}

static void test_wrong_magic(void **state)
{
	struct qt t;
	static const char junk[] = "From: someone\nSubject: not a journal at all\n\n";
	static const char tiny[] = "MRQX";

	(void)state;
	qt_setup(&t, 0);
	queue_close(&t.q);
	expect_refused(&t, junk, sizeof(junk) - 1, "not a mailrestore journal");
	expect_refused(&t, tiny, sizeof(tiny) - 1, "not a mailrestore journal");
	qt_teardown(&t);
}

/* A newer minor version with a longer header is read. */
static void test_newer_minor(void **state)
{
	struct qt t;
	size_t len;
	char *data, *grown;

	(void)state;
	qt_setup(&t, 0);
	qt_add_n(&t, 3);
	qt_ask(&t, 'r', "u0001");
	queue_close(&t.q);
	data = journal_read(&t, &len);
	grown = calloc(1, len + 8);
	assert_non_null(grown);
	memcpy(grown, data, 16);
	memcpy(grown + 24, data + 16, len - 16);
	grown[6] = 3;   /* minor 3 */
	grown[8] = 24;  /* header size 24 */
	journal_write(&t, grown, len + 8);
	qt_open(&t);
	assert_int_equal(qt_pos(&t, "u0001"), 0);
	free(data);
	free(grown);
	qt_teardown(&t);
}

static void store_le(uint8_t *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A version 1 record: u32 length, u16 type, u16 0, u64 xxh3 of the type
 * (u16) and the payload, payload. */
static size_t put_record_v1(char *p, uint16_t type, const void *payload, uint32_t len)
{
	uint8_t *h = (uint8_t *)p;
	XXH3_state_t *st = XXH3_createState();
	uint8_t t[2] = { (uint8_t)type, (uint8_t)(type >> 8) };

	memset(h, 0, 16);
	store_le(h, len, 4);
	store_le(h + 4, type, 2);
	memcpy(p + 16, payload, len);
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, t, 2);
	XXH3_64bits_update(st, payload, len);
	store_le(h + 8, XXH3_64bits_digest(st), 8);
	XXH3_freeState(st);
	return 16 + len;
}

/* Appends a record with a right checksum (layout in queue/journal.c). */
static size_t put_record(char *p, uint16_t type, uint64_t seq, const void *payload, uint32_t len)
{
	uint8_t *h = (uint8_t *)p;
	XXH3_state_t *st = XXH3_createState();

	memset(h, 0, 24);
	store_le(h, len, 4);
	store_le(h + 4, type, 2);
	store_le(h + 8, seq, 8);
	memcpy(p + 24, payload, len);
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, h, 16);
	XXH3_64bits_update(st, p + 24, len);
	store_le(h + 16, XXH3_64bits_digest(st), 8);
	XXH3_freeState(st);
	return 24 + len;
}

/* Gives the records of a version 2 journal consecutive sequence numbers
 * from the first one's, with checksums to match. */
static void renumber(char *j, size_t len)
{
	size_t off = 16;
	uint64_t seq = 0;

	while (off + 24 <= len) {
		uint8_t *h = (uint8_t *)j + off;
		uint32_t plen = (uint32_t)(h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24);
		uint16_t type = (uint16_t)(h[4] | h[5] << 8);
		char *payload = malloc(plen + 1);

		assert_non_null(payload);
		if (seq == 0) {
			int i;

			for (i = 0; i < 8; i++)
				seq |= (uint64_t)h[8 + i] << (8 * i);
			if (seq == 0)
				seq = 1;
		}
		memcpy(payload, j + off + 24, plen);
		put_record(j + off, type, seq++, payload, plen);
		free(payload);
		off += 24 + plen;
	}
}

/* A journal of minor version minor: the records of first, then one
 * checksummed record of type type (payload given), then the records second
 * has after first's length. Returns it, its length in len_r. */
static char *journal_with_record(const char *first, size_t first_len, const char *second,
				 size_t second_len, int minor, uint16_t type, const void *payload,
				 uint32_t plen, size_t *len_r)
{
	size_t len = second_len + 24 + plen, at = first_len;
	char *j = malloc(len);

	assert_non_null(j);
	assert_true(second_len > first_len);
	memcpy(j, first, first_len);
	j[6] = (char)minor;
	at += put_record(j + at, type, 0, payload, plen);
	memcpy(j + at, second + first_len, second_len - first_len);
	renumber(j, len);
	*len_r = len;
	return j;
}

/* Two journals of the same queue: after a request of u0001, and after one
 * more request of u0002. */
static void two_journals(struct qt *t, char **first, size_t *first_len, char **second,
			 size_t *second_len)
{
	qt_add_n(t, 3);
	qt_ask(t, 'r', "u0001");
	queue_close(&t->q);
	*first = journal_read(t, first_len);
	qt_open(t);
	qt_ask(t, 'r', "u0002");
	queue_close(&t->q);
	*second = journal_read(t, second_len);
}

/* A record of a type a newer minor version added, whole and checksummed, is
 * skipped: what follows it is replayed and nothing is cut. */
static void test_newer_minor_unknown_record_skipped(void **state)
{
	static const char future[] = "written by mailrestore 1.9";
	struct qt t;
	size_t a_len, b_len, len;
	char *a, *b, *j;

	(void)state;
	qt_setup(&t, 0);
	two_journals(&t, &a, &a_len, &b, &b_len);
	j = journal_with_record(a, a_len, b, b_len, 4, 200, future, sizeof(future), &len);
	journal_write(&t, j, len);
	qt_open(&t);
	assert_int_equal(journal_size(&t), len);
	assert_int_equal(qt_pos(&t, "u0001"), 0);
	assert_int_equal(qt_pos(&t, "u0002"), 1);
	assert_int_equal(qt_state(&t, "u0000"), QUEUE_WAITING);
	/* The queue keeps appending after it, and reads it all again. */
	qt_ask(&t, 'r', "u0000");
	qt_reopen(&t);
	assert_int_equal(qt_pos(&t, "u0002"), 1);
	assert_int_equal(qt_pos(&t, "u0000"), 2);
	free(a);
	free(b);
	free(j);
	qt_teardown(&t);
}

/* A whole, checksummed record that does not apply is no torn tail: open
 * refuses and leaves every byte, the answered requests after it included. */
static void test_whole_record_not_applying_refused(void **state)
{
	static const char future[] = "not of this version";
	/* REQUEST of user id 999, which the journal never added. */
	static const uint8_t stray[22] = { 0xe7, 0x03, 0, 0, 1, 0, 5 };
	struct qt t;
	size_t a_len, b_len, len;
	char *a, *b, *j;

	(void)state;
	qt_setup(&t, 0);
	two_journals(&t, &a, &a_len, &b, &b_len);
	/* An unknown type in a journal of our own minor version. */
	j = journal_with_record(a, a_len, b, b_len, 0, 200, future, sizeof(future), &len);
	expect_refused(&t, j, len, "unknown record type 200");
	free(j);
	j = journal_with_record(a, a_len, b, b_len, 0, 2, stray, sizeof(stray), &len);
	expect_refused(&t, j, len, "does not apply");
	free(j);
	free(a);
	free(b);
	qt_teardown(&t);
}

/* A crash at birth leaves an empty or partial header: start afresh. */
static void test_torn_header(void **state)
{
	struct qt t;

	(void)state;
	qt_setup(&t, 0);
	queue_close(&t.q);
	journal_write(&t, "MRQJ\2", 5);
	qt_open(&t);
	qt_add_n(&t, 1);
	qt_reopen(&t);
	assert_int_equal(qt_state(&t, "u0000"), QUEUE_WAITING);
	queue_close(&t.q);
	journal_write(&t, "", 0);
	qt_open(&t);
	qt_teardown(&t);
}

static void test_second_open_refused(void **state)
{
	struct qt t;
	struct queue *other = NULL;
	struct mr_error err;

	(void)state;
	qt_setup(&t, 0);
	assert_int_equal(queue_open(t.dirfd, NULL, &other, &err), -1);
	assert_null(other);
	assert_int_equal(err.errnum, EWOULDBLOCK);
	assert_non_null(strstr(err.msg, "another mailrestore daemon is using this state folder"));
	queue_close(&t.q);
	assert_int_equal(queue_open(t.dirfd, NULL, &other, &err), 0);
	queue_close(&other);
	assert_null(other);
	queue_close(NULL);
	qt_teardown(&t);
}

static void test_fsync_failure(void **state)
{
	struct qt t;
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .errnum = EIO };
	struct queue_user_info info;
	struct mr_error err;
	queue_ticket ticket;
	char name[MR_USER_NAME_MAX + 1];

	(void)state;
	qt_setup(&t, 1);
	qt_add_n(&t, 3);
	qt_ask(&t, 'r', "u0000");
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(queue_request(t.q, "u0001", 5.0, &info, &ticket, &err), 0);
	assert_int_equal(queue_commit_wait(t.q, ticket, &err), -1);
	assert_int_equal(err.errnum, EIO);
	assert_non_null(strstr(err.msg, "fsync(queue.journal)"));
	mr_io_fault_clear();
	/* The journal stays broken: nothing may look saved that was not. */
	assert_int_equal(queue_commit_wait(t.q, ticket, &err), -1);
	assert_int_equal(queue_request(t.q, "u0002", 6.0, &info, &ticket, &err), -1);
	assert_int_equal(err.errnum, EIO);
	assert_int_equal(queue_next(t.q, 0, 7.0, name, NULL, &err), -1);
	/* Lookups still answer. */
	assert_int_equal(qt_pos(&t, "u0000"), 0);
	qt_reopen(&t);
	assert_int_equal(qt_pos(&t, "u0000"), 0);
	qt_teardown(&t);
}

static void test_write_failure(void **state)
{
	struct qt t;
	struct mr_io_fault f = { .op = MR_IO_WRITE, .errnum = ENOSPC };
	struct mr_error err;

	(void)state;
	qt_setup(&t, 1);
	qt_add_n(&t, 3);
	qt_ask(&t, 'r', "u0000");
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(queue_set_state(t.q, "u0001", QUEUE_ACTIVE, NULL, NULL, 5.0, &err), -1);
	assert_int_equal(err.errnum, ENOSPC);
	assert_non_null(strstr(err.msg, "write(queue.journal)"));
	mr_io_fault_clear();
	qt_reopen(&t);
	assert_int_equal(qt_state(&t, "u0001"), QUEUE_WAITING);
	assert_int_equal(qt_pos(&t, "u0000"), 0);
	qt_teardown(&t);
}

static void test_compaction_keeps_everything(void **state)
{
	struct qt t;
	struct qt_dump a, b;
	struct mr_error err;
	size_t grown;
	int i;

	(void)state;
	qt_setup(&t, 0);
	busy_queue(&t);
	qt_set(&t, "u0003", QUEUE_ACTIVE, NULL);
	/* Churn: a preempted background user, many times over. */
	for (i = 0; i < 40000; i++) {
		qt_next(&t, 1, "u0006");
		assert_int_equal(queue_requeue(t.q, "u0006", &err), 0);
	}
	/* Commits had the compactor thread compact on its own: 40000 runs
	 * are ~2.2 MiB of records, the threshold is about 1.07 MiB here. */
	for (i = 0; i < 5000; i++) {
		struct queue_journal_stats st;

		queue_journal_stats(t.q, &st);
		if (st.compactions > 0)
			break;
		usleep(1000);
	}
	{
		struct queue_journal_stats st;

		queue_journal_stats(t.q, &st);
		assert_true(st.compactions > 0);
	}
	/* Never far past the threshold (the compactor runs beside the
	 * commits, so a little more may have come meanwhile). */
	grown = journal_size(&t);
	assert_true(grown < (1u << 21));
	a = qt_dump(&t);
	assert_int_equal(queue_compact(t.q, &err), 0);
	assert_true(journal_size(&t) < 16384);
	b = qt_dump(&t);
	qt_dump_equal(&a, &b);
	qt_dump_free(&b);
	/* Records after the snapshot replay on top of it. */
	qt_ask(&t, 'b', "u0010");
	qt_dump_free(&a);
	a = qt_dump(&t);
	qt_reopen(&t);
	b = qt_dump(&t);
	qt_dump_equal(&a, &b);
	qt_dump_free(&a);
	qt_dump_free(&b);
	qt_teardown(&t);
}

/* A compaction that fails before its rename leaves the old journal. */
static void test_compaction_failure(void **state)
{
	struct qt t;
	struct mr_io_fault f = { .op = MR_IO_RENAME, .errnum = EIO };
	struct qt_dump a, b;
	struct mr_error err;
	char *leftover;

	(void)state;
	qt_setup(&t, 1);
	busy_queue(&t);
	a = qt_dump(&t);
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(queue_compact(t.q, &err), -1);
	assert_non_null(strstr(err.msg, "renameat"));
	mr_io_fault_clear();
	leftover = tu_read_file(t.dir, "queue.journal.new", NULL);
	assert_null(leftover);
	qt_ask(&t, 'r', "u0004");
	queue_close(&t.q);
	/* A crash mid-compaction leaves a partial new file: ignored. */
	tu_write_file(t.dir, "queue.journal.new", "MRQJ\1\0\0\0", 8);
	qt_open(&t);
	b = qt_dump(&t);
	assert_int_equal(qt_pos(&t, "u0004"), qt_pos(&t, "u0030") + 1);
	assert_int_equal(a.n, b.n);
	leftover = tu_read_file(t.dir, "queue.journal.new", NULL);
	assert_null(leftover);
	qt_dump_free(&a);
	qt_dump_free(&b);
	qt_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_equals_close),
		cmocka_unit_test(test_replay_after_crash),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_damage_in_middle_refused_then_salvaged),
		cmocka_unit_test(test_damage_at_end_is_torn_tail),
		cmocka_unit_test(test_salvage_over_damaged_add),
		cmocka_unit_test(test_missing_record_refused),
		cmocka_unit_test(test_version1_read),
		cmocka_unit_test(test_pause_journaled),
		cmocka_unit_test(test_zero_tail),
		cmocka_unit_test(test_unknown_major),
		cmocka_unit_test(test_wrong_magic),
		cmocka_unit_test(test_newer_minor),
		cmocka_unit_test(test_torn_header),
		cmocka_unit_test(test_newer_minor_unknown_record_skipped),
		cmocka_unit_test(test_whole_record_not_applying_refused),
		cmocka_unit_test(test_second_open_refused),
		cmocka_unit_test(test_fsync_failure),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_compaction_keeps_everything),
		cmocka_unit_test(test_compaction_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
