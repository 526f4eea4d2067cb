/* test_corrupt.c: damaged held files (mail/held.c): a flipped byte in the
 * lz4 frame, in the header's message checksum, in the arrival time, a torn
 * tail, an unknown major version, a file that is no held mail at all. Each
 * is set aside (kept, renamed damaged.<name>) and never delivered half; the
 * other messages are released, and nothing is deleted. */
#include "mailtest.h"

#include <xxhash.h>

#define FILE2 "held/alice/00000000000000000002.mrmail"

static const char *const msgs[3] = {
	"Subject: one\r\n\r\nfirst message body, long enough to compress a bit\r\n",
	"Subject: two\r\n\r\nsecond message body, long enough to compress a bit\r\n",
	"Subject: three\r\n\r\nthird message body, long enough to compress a bit\r\n",
};

static void rewrite_file(struct mt *t, const char *rel, void (*edit)(unsigned char *, size_t *))
{
	size_t len;
	unsigned char *data = (unsigned char *)tu_read_file(t->state, rel, &len);

	assert_non_null(data);
	edit(data, &len);
	tu_write_file(t->state, rel, data, len);
	free(data);
}

/* Holds three messages, damages the second with edit, and checks that the
 * release sets it aside without delivering any of it, releases the other
 * two, and that forgetting the released ones keeps the damaged file. */
static void check_damage(void (*edit)(unsigned char *, size_t *), int errnum)
{
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t released = 99;
	int i;

	(void)errnum;
	for (i = 0; i < 3; i++)
		mt_hold(t, "alice", msgs[i], strlen(msgs[i]));
	rewrite_file(t, FILE2, edit);

	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release: %s", err.msg);
	assert_int_equal(released, 2);
	assert_int_equal(mt_count(t->maildir, "new"), 2);
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	assert_int_equal(mt_count(t->state, "held/alice"), 3);
	assert_int_equal(tu_sh("test -f '%s/held/alice/damaged.00000000000000000002.mrmail'", t->state), 0);
	assert_int_equal(tu_sh("grep -l 'Subject: two' '%s'/new/* 2>/dev/null", t->maildir), 1);

	/* Asking again adds nothing; forgetting keeps the damaged file. */
	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release again: %s", err.msg);
	assert_int_equal(mt_count(t->maildir, "new"), 2);
	assert_int_equal(mail_release_done(t->store, "alice", &err), 0);
	assert_int_equal(mt_count(t->state, "held/alice"), 1);
	mt_free(t);
}

static void flip_frame_byte(unsigned char *d, size_t *len)
{
	d[44 + (*len - 44) / 2] ^= 0x20;
}

static void flip_last_byte(unsigned char *d, size_t *len)
{
	/* The frame's content checksum itself. */
	d[*len - 1] ^= 0x01;
}

static void flip_message_checksum(unsigned char *d, size_t *len)
{
	d[28] ^= 0x01;
}

static void flip_arrival_time(unsigned char *d, size_t *len)
{
	d[13] ^= 0x01;
}

/* A consistent header (its own checksum recomputed) whose message checksum
 * is wrong: only the check of the decompressed message can catch it. */
static void forge_message_checksum(unsigned char *d, size_t *len)
{
	uint64_t h;
	int i;

	d[28] ^= 0x01;
	h = XXH3_64bits(d, 36);
	for (i = 0; i < 8; i++)
		d[36 + i] = (unsigned char)(h >> (8 * i));
}

static void major_two(unsigned char *d, size_t *len)
{
	uint64_t h;
	int i;

	d[4] = 2;
	h = XXH3_64bits(d, 36);
	for (i = 0; i < 8; i++)
		d[36 + i] = (unsigned char)(h >> (8 * i));
}

static void torn_tail(unsigned char *d, size_t *len)
{
	*len -= 5;
}

static void trailing_garbage(unsigned char *d, size_t *len)
{
	/* The buffer has one spare byte (tu_read_file adds a NUL). */
	d[*len] = 'x';
	*len += 1;
}

static void not_held_mail(unsigned char *d, size_t *len)
{
	memcpy(d, "From ", 5);
}

static void truncated_header(unsigned char *d, size_t *len)
{
	*len = 20;
}

static void frame_byte(void **state) { (void)state; check_damage(flip_frame_byte, EBADMSG); }
static void frame_checksum(void **state) { (void)state; check_damage(flip_last_byte, EBADMSG); }
static void header_message_checksum(void **state)
{
	(void)state;
	check_damage(flip_message_checksum, EBADMSG);
}
static void header_arrival_time(void **state)
{
	(void)state;
	check_damage(flip_arrival_time, EBADMSG);
}
static void forged_message_checksum(void **state)
{
	(void)state;
	check_damage(forge_message_checksum, EBADMSG);
}
static void unknown_major_refused(void **state)
{
	(void)state;
	check_damage(major_two, EPROTONOSUPPORT);
}
static void torn(void **state) { (void)state; check_damage(torn_tail, EBADMSG); }
static void garbage_after_frame(void **state) { (void)state; check_damage(trailing_garbage, EBADMSG); }
static void wrong_magic(void **state) { (void)state; check_damage(not_held_mail, EBADMSG); }
static void short_header(void **state) { (void)state; check_damage(truncated_header, EBADMSG); }

/* A message of an unknown major version is set aside, not delivered. */
static void unknown_major_message(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t released;

	(void)state;
	mt_hold(t, "alice", "x", 1);
	mt_hold(t, "alice", "y", 1);
	rewrite_file(t, FILE2, major_two);
	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release: %s", err.msg);
	assert_int_equal(released, 1);
	assert_int_equal(tu_sh("test -f '%s/held/alice/damaged.00000000000000000002.mrmail'", t->state), 0);
	mt_free(t);
}

/* A later minor version with a longer header is still read. */
static void later_minor_accepted(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t released, h;
	size_t len, n;
	unsigned char *d, *out;
	char **v, *rel, *got;
	int i;

	(void)state;
	mt_hold(t, "alice", msgs[0], strlen(msgs[0]));
	d = (unsigned char *)tu_read_file(t->state, "held/alice/00000000000000000001.mrmail", &len);
	assert_non_null(d);
	/* minor 1, header 52 bytes: 8 new bytes before the header checksum. */
	out = calloc(1, len + 8);
	assert_non_null(out);
	memcpy(out, d, 36);
	out[6] = 1;
	out[8] = 52;
	memset(out + 36, 0xab, 8);
	h = XXH3_64bits(out, 44);
	for (i = 0; i < 8; i++)
		out[44 + i] = (unsigned char)(h >> (8 * i));
	memcpy(out + 52, d + 44, len - 44);
	tu_write_file(t->state, "held/alice/00000000000000000001.mrmail", out, len + 8);
	free(d);
	free(out);

	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release: %s", err.msg);
	assert_int_equal(released, 1);
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 1);
	rel = tu_path("new", v[0]);
	got = tu_read_file(t->maildir, rel, &len);
	assert_non_null(got);
	assert_int_equal(len, strlen(msgs[0]));
	assert_memory_equal(got, msgs[0], len);
	free(got);
	free(rel);
	mt_names_free(v, n);
	mt_free(t);
}

/* A damaged message set aside is no held message any more (a count from
 * the disk after a restart skips it): it must not stay in the running
 * total of held mail, or every damaged file took a message of the
 * total limit from everyone until the daemon restarted. */
static void set_aside_leaves_the_total(void **state)
{
	struct mt *t = mt_new();
	struct mail_limits l = { .total_messages = 3 };
	struct mr_error err;
	uint64_t released = 0;
	int i;

	(void)state;
	mail_store_set_limits(t->store, &l);
	for (i = 0; i < 3; i++)
		mt_hold(t, "alice", msgs[i], strlen(msgs[i]));
	rewrite_file(t, FILE2, flip_frame_byte);
	if (mt_release(t, "alice", &released, &err) < 0)
		fail_msg("release: %s", err.msg);
	assert_int_equal(released, 2);
	assert_int_equal(mail_release_done(t->store, "alice", &err), 0);
	/* Nothing is held now: the whole total is free again. */
	for (i = 0; i < 3; i++)
		mt_hold(t, "bob", msgs[i], strlen(msgs[i]));
	mt_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frame_byte),
		cmocka_unit_test(frame_checksum),
		cmocka_unit_test(header_message_checksum),
		cmocka_unit_test(header_arrival_time),
		cmocka_unit_test(forged_message_checksum),
		cmocka_unit_test(unknown_major_refused),
		cmocka_unit_test(unknown_major_message),
		cmocka_unit_test(torn),
		cmocka_unit_test(garbage_after_frame),
		cmocka_unit_test(wrong_magic),
		cmocka_unit_test(short_header),
		cmocka_unit_test(later_minor_accepted),
		cmocka_unit_test(set_aside_leaves_the_total),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
