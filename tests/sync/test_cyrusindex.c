/*
 * test_cyrusindex.c: a Cyrus mailbox's cyrus.index read for the remove
 * guard (sync/cyrusindex.c), the mailbox list (sync/cyrusmboxes.c), and the
 * guard and the quick check on Cyrus folders (sync/guard.c, sync/plan.c).
 * Index files are built byte by byte here, for every minor version Cyrus
 * 2.4 to 3.12 writes, with the layout of Cyrus's imap/mailbox.h; the one
 * in tests/sync/data/ was written by a real Cyrus 3.6 (Debian 12).
 */
#include "tests/sync/synctest.h"

#include <zlib.h>

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void crc_at_end(unsigned char *p, size_t len)
{
	put32(p + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)(len - 4)));
}

struct rec {
	uint32_t uid, size, flags;
};

/* A cyrus.index of minor version v holding recs[0..n): malloc'd, *len_r. */
static unsigned char *build_index(uint32_t v, const struct rec *recs, size_t n, size_t *len_r)
{
	size_t hl = v >= 14 ? 160 : 128, rl = v == 12 ? 96 : v <= 15 ? 104 : 112, i;
	unsigned char *b = calloc(1, hl + n * rl);
	uint32_t last = 0, exists = 0;

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		unsigned char *r = b + hl + i * rl;

		put32(r, recs[i].uid);
		put32(r + 4, 1700000000);
		put32(r + 12, recs[i].size);
		put32(r + 32, recs[i].flags);
		crc_at_end(r, rl);
		if (recs[i].uid > last)
			last = recs[i].uid;
		if (!(recs[i].flags & SYNC_CYRUS_FLAG_EXPUNGED))
			exists++;
	}
	put32(b, 3);
	put32(b + 8, v);
	put32(b + 12, (uint32_t)hl);
	put32(b + 16, (uint32_t)rl);
	put32(b + 20, (uint32_t)n);
	put32(b + 28, last);
	put32(b + 44, 1234567890);
	put32(b + (v >= 19 ? 60 : 84), exists);
	crc_at_end(b, hl);
	*len_r = hl + n * rl;
	return b;
}

static int parse(const unsigned char *b, size_t len, struct sync_cyrus_index *ix, char *why)
{
	return sync_cyrus_index_parse(b, len, ix, why, 256);
}

static void test_every_version_read(void **state)
{
	static const uint32_t versions[] = { 12, 13, 14, 15, 16, 17, 18, 19 };
	const struct rec recs[] = { { 1, 100, 0 }, { 2, 200, SYNC_CYRUS_FLAG_EXPUNGED | 0x10 },
				    { 7, 700, 0x11 } };
	size_t i, len;
	char why[256];

	(void)state;
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		struct sync_cyrus_index ix;
		unsigned char *b = build_index(versions[i], recs, 3, &len);
		const struct sync_cyrus_record *r;

		assert_int_equal(parse(b, len, &ix, why), 0);
		assert_int_equal(ix.version, versions[i]);
		assert_int_equal(ix.n, 3);
		assert_int_equal(ix.last_uid, 7);
		assert_int_equal(ix.uidvalidity, 1234567890);
		assert_int_equal(ix.exists, 2);
		r = sync_cyrus_index_find(&ix, 2);
		assert_non_null(r);
		assert_int_equal(r->size, 200);
		assert_true(r->flags & SYNC_CYRUS_FLAG_EXPUNGED);
		assert_null(sync_cyrus_index_find(&ix, 3));
		assert_int_equal(sync_cyrus_index_find(&ix, 7)->flags, 0x11);
		sync_cyrus_index_free(&ix);
		free(b);
	}
}

/* Every damage is refused with a reason; nothing is guessed. */
static void test_refused_with_reason(void **state)
{
	const struct rec recs[] = { { 1, 100, 0 }, { 2, 200, 0 } };
	struct sync_cyrus_index ix;
	unsigned char *b;
	size_t len;
	char why[256];

	(void)state;
	b = build_index(17, recs, 2, &len);
	/* truncated anywhere */
	assert_int_equal(parse(b, 5, &ix, why), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(why, "truncated"));
	assert_int_equal(parse(b, 100, &ix, why), -1);
	assert_non_null(strstr(why, "truncated"));
	assert_int_equal(parse(b, len - 1, &ix, why), -1);
	assert_non_null(strstr(why, "truncated: 383 bytes, 2 records need 384"));
	/* a flipped bit in a record */
	b[160 + 112 + 13] ^= 1;
	assert_int_equal(parse(b, len, &ix, why), -1);
	assert_string_equal(why, "record 2's checksum fails");
	b[160 + 112 + 13] ^= 1;
	/* ... in the header */
	b[30] ^= 0x40;
	assert_int_equal(parse(b, len, &ix, why), -1);
	assert_string_equal(why, "the header's checksum fails");
	free(b);
	/* versions Cyrus 2.4 to 3.12 do not write, the 64-bit 20 of 3.13 too */
	b = build_index(17, recs, 2, &len);
	put32(b + 8, 20);
	crc_at_end(b, 160);
	assert_int_equal(parse(b, len, &ix, why), -1);
	assert_non_null(strstr(why, "minor version 20 is not one"));
	put32(b + 8, 11);
	assert_int_equal(parse(b, len, &ix, why), -1);
	assert_non_null(strstr(why, "minor version 11"));
	/* a record size that does not fit the version */
	put32(b + 8, 16);
	put32(b + 16, 104);
	crc_at_end(b, 160);
	assert_int_equal(parse(b, len, &ix, why), -1);
	assert_non_null(strstr(why, "record size 104"));
	free(b);
}

static void test_message_names(void **state)
{
	uint32_t uid = 0;

	(void)state;
	assert_true(sync_cyrus_message_name("1.", &uid));
	assert_int_equal(uid, 1);
	assert_true(sync_cyrus_message_name("4294967295.", &uid));
	assert_int_equal(uid, 4294967295u);
	assert_false(sync_cyrus_message_name("4294967296.", NULL));
	assert_false(sync_cyrus_message_name("0.", NULL));
	assert_false(sync_cyrus_message_name("01.", NULL));
	assert_false(sync_cyrus_message_name("1", NULL));
	assert_false(sync_cyrus_message_name("1.x", NULL));
	assert_false(sync_cyrus_message_name(".", NULL));
	assert_false(sync_cyrus_message_name("cyrus.index", NULL));
}

static void test_mailbox_list_forms(void **state)
{
	static const char json[] =
		"{\n"
		"\"user.bob\": {\"name\": \"user.bob\", \"mbtype\": \"e\", \"partition\": \"default\"},\n"
		"\"user.bob.Old\": {\"name\": \"user.bob.Old\", \"mbtype\": \"deleted\"},\n"
		"\"user.bob.Sent\": {\"name\": \"user.bob.Sent\", \"mbtype\": \"e\"},\n"
		"\"user.j^smith\": {\"name\": \"user.j^smith\", \"mbtype\": \"e\"}\n"
		"}\n";
	static const char flat[] = "user.ann\t0 default ann\tlrswipkxtecda\t\n"
				   "user.ann.Drafts\t0 default ann\tlrs\t\n"
				   "Nuser.cy\t%(I 1234 P default)\n"
				   "I1234\t%(N user.cy)\n";
	struct sync_cyrus_mboxes mb;

	(void)state;
	assert_int_equal(sync_cyrus_mboxes_parse(&mb, json, strlen(json)), 0);
	assert_true(sync_cyrus_mboxes_has(&mb, "user.bob"));
	assert_true(sync_cyrus_mboxes_has(&mb, "user.bob.Sent"));
	assert_true(sync_cyrus_mboxes_has(&mb, "user.j^smith"));
	assert_false(sync_cyrus_mboxes_has(&mb, "user.bob.Old"));   /* a tombstone */
	assert_false(sync_cyrus_mboxes_has(&mb, "user.bob.Trash"));
	sync_cyrus_mboxes_free(&mb);
	assert_int_equal(sync_cyrus_mboxes_parse(&mb, flat, strlen(flat)), 0);
	assert_true(sync_cyrus_mboxes_has(&mb, "user.ann"));
	assert_true(sync_cyrus_mboxes_has(&mb, "user.ann.Drafts"));
	assert_true(sync_cyrus_mboxes_has(&mb, "user.cy"));
	assert_false(sync_cyrus_mboxes_has(&mb, "user.ann.Sent"));
	sync_cyrus_mboxes_free(&mb);
	assert_false(sync_cyrus_mboxes_has(NULL, "user.ann"));
}

/* ---- the guard on Cyrus folders ---------------------------------------- */

/* Writes messages first..last (body "message N") into folder of root and
 * its cyrus.index (version v), flags[uid] when given. */
static void cyrus_folder(const char *root, const char *folder, int first, int last,
			 uint32_t v)
{
	struct rec recs[200];
	char rel[300], body[64];
	unsigned char *b;
	size_t len;
	int i, n = 0;

	for (i = first; i <= last; i++) {
		snprintf(rel, sizeof(rel), "%s%s%d.", folder, *folder ? "/" : "", i);
		snprintf(body, sizeof(body), "Subject: message %d\n\nbody %d\n", i, i);
		tu_write_file(root, rel, body, strlen(body));
		recs[n].uid = (uint32_t)i;
		recs[n].size = (uint32_t)strlen(body);
		recs[n++].flags = 0x10;
	}
	b = build_index(v, recs, (size_t)n, &len);
	snprintf(rel, sizeof(rel), "%s%scyrus.index", folder, *folder ? "/" : "");
	tu_write_file(root, rel, b, len);
	free(b);
	snprintf(rel, sizeof(rel), "%s%scyrus.header", folder, *folder ? "/" : "");
	tu_write_file(root, rel, "header\n", 7);
}

/* Rewrites folder's index on the source with uids first..last, those
 * listed in expunged[] flagged expunged (their files removed). */
static void cyrus_expunge(const char *root, const char *folder, int first, int last,
			  int (*expunged)(int uid))
{
	struct rec recs[200];
	char rel[300], body[64];
	unsigned char *b;
	size_t len;
	int i, n = 0;

	for (i = first; i <= last; i++) {
		snprintf(body, sizeof(body), "Subject: message %d\n\nbody %d\n", i, i);
		recs[n].uid = (uint32_t)i;
		recs[n].size = (uint32_t)strlen(body);
		recs[n].flags = 0x10;
		if (expunged(i)) {
			recs[n].flags |= SYNC_CYRUS_FLAG_EXPUNGED;
			snprintf(rel, sizeof(rel), "%s%s%d.", folder, *folder ? "/" : "", i);
			assert_int_equal(tu_sh("rm -f '%s/%s'", root, rel), 0);
		}
		n++;
	}
	b = build_index(17, recs, (size_t)n, &len);
	snprintf(rel, sizeof(rel), "%s%scyrus.index", folder, *folder ? "/" : "");
	tu_write_file(root, rel, b, len);
	free(b);
}

static int odd_uid(int uid)
{
	return uid % 2;
}

static struct sfx *cyrus_setup(void)
{
	struct sfx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	sfx_setup(f);
	f->set.format = MR_FORMAT_CYRUS;
	f->set.cyrus_inbox = "user.bob";
	cyrus_folder(f->src, "", 1, 40, 17);
	assert_int_equal(tu_sh("mkdir -p '%s/Sent'", f->src), 0);
	cyrus_folder(f->src, "Sent", 1, 12, 17);
	sfx_backup(f);
	return f;
}

static void cyrus_teardown(struct sfx *f)
{
	sfx_teardown(f);
	free(f);
}

/* The user expunged half the INBOX: records flagged, files gone. */
static void test_user_expunged_half_passes(void **state)
{
	struct sfx *f = cyrus_setup();

	(void)state;
	cyrus_expunge(f->src, "", 1, 40, odd_uid);
	assert_int_equal(sfx_sync(f), 0);
	sfx_print_problems(f);
	assert_int_equal(f->stats.attic_files, 20);
	assert_true(sfx_exists(f->attic, "1."));
	assert_false(sfx_exists(f->dst, "1."));
	assert_int_equal(sfx_verify(f), 0);
	cyrus_teardown(f);
}

/* The files are gone but the index still lists them: damage. */
static void test_listed_but_missing_trips(void **state)
{
	struct sfx *f = cyrus_setup();
	int i;

	(void)state;
	for (i = 1; i <= 30; i++)
		assert_int_equal(tu_sh("rm '%s/%d.'", f->src, i), 0);
	assert_int_equal(sfx_sync(f), 1);
	assert_int_equal(mr_problems_count(&f->problems, MR_PROBLEM_GUARD), 1);
	assert_non_null(strstr(f->problems.v[0].message,
			       "INBOX: 30 messages the mailbox index still lists are missing"));
	assert_true(sfx_exists(f->dst, "1."));
	assert_int_equal(f->stats.attic_files, 0);
	/* a few missing stay under the percentage: they go to the attic */
	cyrus_teardown(f);
	f = cyrus_setup();
	for (i = 1; i <= 3; i++)
		assert_int_equal(tu_sh("rm '%s/%d.'", f->src, i), 0);
	assert_int_equal(sfx_sync(f), 0);
	assert_int_equal(f->stats.attic_files, 3);
	cyrus_teardown(f);
}

/* A truncated or unknown cyrus.index stops the sync naming the file. */
static void test_bad_index_trips_naming_file(void **state)
{
	struct sfx *f = cyrus_setup();
	unsigned char junk[200] = { 0 };

	(void)state;
	{
		char *p = tu_path(f->src, "Sent/cyrus.index");

		assert_int_equal(truncate(p, 100), 0);
		free(p);
	}
	assert_int_equal(sfx_sync(f), 1);
	assert_int_equal(mr_problems_count(&f->problems, MR_PROBLEM_GUARD), 1);
	assert_non_null(strstr(f->problems.v[0].message, "Sent/cyrus.index: truncated"));
	/* nothing changed: the backup's index stays */
	assert_int_not_equal(sfx_lstat(f->dst, "Sent/cyrus.index").st_size, 100);
	cyrus_teardown(f);

	f = cyrus_setup();
	put32(junk + 8, 20);
	tu_write_file(f->src, "cyrus.index", junk, sizeof(junk));
	assert_int_equal(sfx_sync(f), 1);
	assert_non_null(strstr(f->problems.v[0].message, "cyrus.index: minor version 20"));
	cyrus_teardown(f);
}

/* The backup's index would go to the attic while the folder stays: no. */
static void test_index_gone_from_live_folder_trips(void **state)
{
	struct sfx *f = cyrus_setup();

	(void)state;
	assert_int_equal(tu_sh("rm '%s/Sent/cyrus.index'", f->src), 0);
	assert_int_equal(sfx_sync(f), 1);
	assert_int_equal(mr_problems_count(&f->problems, MR_PROBLEM_GUARD), 1);
	assert_non_null(strstr(f->problems.v[0].message,
			       "Sent/cyrus.index: gone from the source while its folder is still "
			       "there"));
	assert_true(sfx_exists(f->dst, "Sent/cyrus.index"));
	cyrus_teardown(f);
}

/* Message files are never read again: same name and size is the same. */
static void test_message_files_not_read(void **state)
{
	struct sfx *f = cyrus_setup();

	(void)state;
	/* the backup's copy differs in content but not in size or name */
	tu_write_file(f->dst, "5.", "Subject: message 9\n\nbody 9\n", 27);
	sfx_set_mtime(f->dst, "5.", 1000, 0);
	assert_int_equal(sfx_sync(f), 0);
	assert_int_equal(f->stats.source_bytes_read, 0);
	assert_int_equal(f->stats.copied_files, 0);
	assert_int_equal(sfx_lstat(f->dst, "5.").st_mtime, sfx_lstat(f->src, "5.").st_mtime);
	/* an index of the same size and other content is compared */
	cyrus_teardown(f);
	f = cyrus_setup();
	cyrus_expunge(f->src, "Sent", 1, 12, odd_uid);
	assert_int_equal(sfx_sync(f), 0);
	assert_int_equal(sfx_verify(f), 0);
	cyrus_teardown(f);
}

/* A folder gone from the source: the mailbox list decides. */
static void test_vanished_folder_by_mailbox_list(void **state)
{
	static const char listed[] = "user.bob\t0 default bob\tlrs\t\n"
				     "user.bob.Sent\t0 default bob\tlrs\t\n";
	static const char dropped[] = "user.bob\t0 default bob\tlrs\t\n";
	struct sync_cyrus_mboxes mb;
	struct sfx *f = cyrus_setup();

	(void)state;
	assert_int_equal(tu_sh("rm -rf '%s/Sent'", f->src), 0);
	assert_int_equal(sync_cyrus_mboxes_parse(&mb, listed, strlen(listed)), 0);
	f->set.cyrus_mboxes = &mb;
	f->set.min_remove_files = 1000;
	assert_int_equal(sfx_sync(f), 1);
	assert_non_null(strstr(f->problems.v[0].message,
			       "Sent: the folder is gone from the source but Cyrus's mailbox list "
			       "still names it"));
	sync_cyrus_mboxes_free(&mb);
	assert_int_equal(sync_cyrus_mboxes_parse(&mb, dropped, strlen(dropped)), 0);
	f->set.min_remove_files = 1;
	assert_int_equal(sfx_sync(f), 0);
	assert_true(sfx_exists(f->attic, "Sent/3."));
	sync_cyrus_mboxes_free(&mb);
	cyrus_teardown(f);
}

/* A cyrus.index written by a real Cyrus 3.6 (Debian 12's cyrus-imapd),
 * kept in tests/sync/data/: read as Cyrus wrote it. */
static void test_real_cyrus_index(void **state)
{
	const char *src = getenv("MR_SRC");
	char *path = tu_path(src ? src : ".", "tests/sync/data/cyrus36.index");
	struct sync_cyrus_index ix;
	unsigned char buf[65536];
	char why[256];
	FILE *fp = fopen(path, "rb");
	size_t len;

	(void)state;
	free(path);
	if (fp == NULL)
		skip();
	len = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	assert_int_equal(parse(buf, len, &ix, why), 0);
	assert_int_equal(ix.version, 17);
	assert_true(ix.n >= 3);
	/* the test data's last message was expunged (delayed expunge) */
	assert_true(ix.v[ix.n - 1].flags & SYNC_CYRUS_FLAG_EXPUNGED);
	assert_false(ix.v[0].flags & SYNC_CYRUS_FLAG_EXPUNGED);
	sync_cyrus_index_free(&ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_version_read),
		cmocka_unit_test(test_refused_with_reason),
		cmocka_unit_test(test_message_names),
		cmocka_unit_test(test_mailbox_list_forms),
		cmocka_unit_test(test_user_expunged_half_passes),
		cmocka_unit_test(test_listed_but_missing_trips),
		cmocka_unit_test(test_bad_index_trips_naming_file),
		cmocka_unit_test(test_index_gone_from_live_folder_trips),
		cmocka_unit_test(test_message_files_not_read),
		cmocka_unit_test(test_vanished_folder_by_mailbox_list),
		cmocka_unit_test(test_real_cyrus_index),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
