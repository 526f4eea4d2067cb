/*
 * test_uidlist.c: the mailbox index reader of the remove guard
 * (sync/uidlist.c): Dovecot's version 3 and Courier's version 1 formats,
 * base names, odd and torn lines, headers it does not know, subscriptions
 * files, and reading below a folder fd without following links.
 */
#include "tests/sync/synctest.h"
#include "sync/sync_private.h"

/* Parses text (copied) as an index; returns the parse result. */
static int parse(struct sync_index *ix, char **copy, const char *text)
{
	memset(ix, 0, sizeof(*ix));
	*copy = strdup(text);
	assert_non_null(*copy);
	return sync_index_parse(ix, *copy, strlen(text));
}

static int has(const struct sync_index *ix, const char *file_name)
{
	return sync_index_has(ix, file_name, sync_index_key(file_name, strlen(file_name)));
}

static void base_names(void **state)
{
	(void)state;
	assert_int_equal(sync_index_key("1700.M1P2.host:2,S", 18), 14);
	assert_int_equal(sync_index_key("1700.M1P2.host,S=12,W=14:2,", 27), 14);
	assert_int_equal(sync_index_key("plain", 5), 5);
	assert_int_equal(sync_index_key(":2,S", 4), 0);
}

static void dovecot_version3(void **state)
{
	struct sync_index ix;
	char *buf;

	(void)state;
	assert_int_equal(parse(&ix, &buf,
			       "3 V1700000000 N5 G3085f01b7f11094c501100008c4a11c1\n"
			       "1 :1700000001.M1P10.mail,S=120,W=122\n"
			       "2 W300 G3085f01b :1700000002.M2P10.mail,S=290:2,S\n"
			       "4 :1700000004.M4P10.mail\n"),
			 0);
	assert_int_equal(ix.version, 3);
	assert_int_equal(ix.next_uid, 5);
	assert_int_equal(ix.records, 3);
	assert_int_equal(ix.bad_lines, 0);
	assert_true(sync_index_clean(&ix));
	/* The file on disk may carry other flags and size fields. */
	assert_true(has(&ix, "1700000001.M1P10.mail,S=120,W=122:2,RS"));
	assert_true(has(&ix, "1700000002.M2P10.mail,S=290:2,"));
	assert_true(has(&ix, "1700000004.M4P10.mail"));
	assert_false(has(&ix, "1700000003.M3P10.mail:2,S"));
	assert_false(has(&ix, "1700000004.M4P10.mai"));
	assert_false(has(&ix, "1700000004.M4P10.mail2"));
	sync_index_free(&ix);
	free(buf);
}

/* As Dovecot's LDA leaves it: records appended after a header whose next
 * UID ("N1") was written before any of them. */
static void dovecot_appended(void **state)
{
	struct sync_index ix;
	char *buf;

	(void)state;
	assert_int_equal(parse(&ix, &buf,
			       "3 V1795848748 N1 G4cf6351b2c7a0a6ba524000083ecc375\n"
			       "1 :1795848748.M456113P9381.vm,S=30,W=34\n"
			       "2 :1795848748.M476077P9385.vm,S=30,W=34\n"
			       "3 :1795848748.M499640P9399.vm,S=30,W=34\n"),
			 0);
	assert_int_equal(ix.records, 3);
	assert_true(sync_index_clean(&ix));
	assert_true(has(&ix, "1795848748.M499640P9399.vm,S=30,W=34:2,S"));
	sync_index_free(&ix);
	free(buf);
}

static void courier_version1(void **state)
{
	struct sync_index ix;
	char *buf;

	(void)state;
	assert_int_equal(parse(&ix, &buf,
			       "1 1234567890 4\n"
			       "1 1234567891.12345_1.mail.example.com\n"
			       "3 1234567893.12345_3.mail.example.com:2,S\n"),
			 0);
	assert_int_equal(ix.version, 1);
	assert_int_equal(ix.records, 2);
	assert_true(sync_index_clean(&ix));
	assert_true(has(&ix, "1234567891.12345_1.mail.example.com:2,"));
	assert_true(has(&ix, "1234567893.12345_3.mail.example.com"));
	assert_false(has(&ix, "1234567892.12345_2.mail.example.com"));
	sync_index_free(&ix);
	free(buf);
}

static void unknown_headers_refused(void **state)
{
	static const char *const bad[] = {
		"", "\n", "2 123 4\n1 a\n", "3 N5\n1 :a\n", "3 V1\n1 :a\n", "3 Vx N5\n",
		"1 12\n", "1 x 4\n", "garbage\n1 a\n", "3V1 N2\n",
	};
	struct sync_index ix;
	char *buf;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (parse(&ix, &buf, bad[i]) != -1 || errno != EINVAL)
			fail_msg("header accepted: '%s'", bad[i]);
		sync_index_free(&ix);
		free(buf);
	}
}

/* Odd lines are skipped and counted; a few leave the index usable, many
 * do not; UIDs must grow and stay below the next one. */
static void odd_lines(void **state)
{
	struct sync_index ix;
	char *buf, text[8192];
	size_t pos = 0;
	int i;

	(void)state;
	pos += (size_t)snprintf(text + pos, sizeof(text) - pos, "3 V1 N100\n");
	for (i = 1; i <= 60; i++)
		pos += (size_t)snprintf(text + pos, sizeof(text) - pos, "%d :m%d.host\n", i, i);
	pos += (size_t)snprintf(text + pos, sizeof(text) - pos,
				"x :bad1\n"          /* no uid */
				"61 no-colon\n"      /* version 3 wants " :" */
				"30 :goes-back\n"    /* uid not growing */
				"62 :a/b\n"          /* a slash is no file name */
				"63 :\n");           /* empty */
	assert_int_equal(parse(&ix, &buf, text), 0);
	assert_int_equal(ix.records, 60);
	assert_int_equal(ix.bad_lines, 5);
	assert_true(sync_index_clean(&ix));
	assert_true(has(&ix, "m60.host:2,S"));
	assert_false(has(&ix, "goes-back"));
	sync_index_free(&ix);
	free(buf);

	/* Mostly odd: not clean. */
	assert_int_equal(parse(&ix, &buf, "3 V1 N9\n1 :a\nx\ny\nz\n"), 0);
	assert_int_equal(ix.records, 1);
	assert_false(sync_index_clean(&ix));
	sync_index_free(&ix);
	free(buf);
}

/* A last line without its newline was cut: dropped, and the index is not
 * trusted to tell deleted from missing. So are zeroed blocks. */
static void torn_and_zeroed(void **state)
{
	static const char zeroed[] = "1 1 9\n1 a\n\0\0\0\0\n2 b\n";
	struct sync_index ix;
	char *buf;

	(void)state;
	assert_int_equal(parse(&ix, &buf, "3 V1 N9\n1 :a.host\n2 :b.ho"), 0);
	assert_int_equal(ix.torn, 1);
	assert_int_equal(ix.records, 1);
	assert_false(has(&ix, "b.ho"));
	assert_false(sync_index_clean(&ix));
	sync_index_free(&ix);
	free(buf);

	memset(&ix, 0, sizeof(ix));
	buf = malloc(sizeof(zeroed) - 1);
	assert_non_null(buf);
	memcpy(buf, zeroed, sizeof(zeroed) - 1);
	assert_int_equal(sync_index_parse(&ix, buf, sizeof(zeroed) - 1), 0);
	assert_int_equal(ix.records, 2);
	assert_int_equal(ix.bad_lines, 1);
	assert_true(has(&ix, "b"));
	sync_index_free(&ix);
	free(buf);
}

/* Appends a transaction log record: the size 7 bits a byte with each
 * byte's top bit set, the type, the body. */
static size_t tlog_record(unsigned char *buf, size_t off, uint32_t type, const void *body,
			  uint32_t len)
{
	uint32_t size = 8 + len;

	buf[off] = (unsigned char)(0x80 | ((size >> 23) & 0x7f));
	buf[off + 1] = (unsigned char)(0x80 | ((size >> 16) & 0x7f));
	buf[off + 2] = (unsigned char)(0x80 | ((size >> 9) & 0x7f));
	buf[off + 3] = (unsigned char)(0x80 | ((size >> 2) & 0x7f));
	memcpy(buf + off + 4, &type, 4); /* little-endian hosts only, as Dovecot's own */
	memcpy(buf + off + 8, body, len);
	return off + size;
}

/* Dovecot's transaction log: expunges by range and by GUID, requested
 * (0xcd91 / 0xed90) or done (with the external bit); other records and a
 * torn tail are passed over. */
static void transaction_log(void **state)
{
	unsigned char log[512] = { 1, 3, 40, 0 };
	uint32_t ranges[] = { 5, 7, 20, 20 };
	unsigned char guids[2 * 20] = { 0 };
	uint32_t other[] = { 9, 9 }, overlap[] = { 18, 25, 24, 30 };
	struct sync_expunged ex = { 0 };
	size_t off = 40;

	(void)state;
	guids[0] = 2;
	guids[20] = 3;
	off = tlog_record(log, off, 0x10080000u, other, 4);          /* a boundary */
	off = tlog_record(log, off, 0x00000004u, other, 8);          /* flags of 9 */
	off = tlog_record(log, off, 0x0000cd91u, ranges, 16);        /* expunge 5-7, 20 */
	off = tlog_record(log, off, 0x1000ed90u, guids, 40);         /* done: 2, 3 */
	off = tlog_record(log, off, 0x00000001u, other, 8);          /* no protection */
	off = tlog_record(log, off, 0x0000cd91u, overlap, 16);       /* 18-25, 24-30 */
	memcpy(log + off, "\x80\x80\x80\x90\x91\xcd\0\0", 8);     /* torn: size 64 */
	off += 8;
	assert_int_equal(sync_expunged_parse(&ex, log, off), 0);
	assert_false(sync_expunged_has(&ex, 1));
	assert_true(sync_expunged_has(&ex, 2));
	assert_true(sync_expunged_has(&ex, 3));
	assert_false(sync_expunged_has(&ex, 4));
	assert_true(sync_expunged_has(&ex, 6));
	assert_false(sync_expunged_has(&ex, 9));
	assert_true(sync_expunged_has(&ex, 20));
	assert_true(sync_expunged_has(&ex, 30));
	assert_false(sync_expunged_has(&ex, 31));
	assert_false(sync_expunged_has(&ex, 17));
	/* Merged: 2-3, 5-7, 18-30. */
	assert_int_equal(ex.n, 3);
	sync_expunged_free(&ex);

	/* No log header: refused. */
	log[0] = 2;
	assert_int_equal(sync_expunged_parse(&ex, log, off), -1);
	assert_int_equal(errno, EINVAL);
	log[0] = 1;
	log[2] = 200;
	assert_int_equal(sync_expunged_parse(&ex, log, 100), -1);
	sync_expunged_free(&ex);
}

static void subscriptions(void **state)
{
	struct sync_index ix;
	char *buf;

	(void)state;
	memset(&ix, 0, sizeof(ix));
	buf = strdup("V\t2\n\nSent\nArchive\t2020\nINBOX.Drafts\n");
	assert_non_null(buf);
	assert_int_equal(sync_subs_parse(&ix, buf, strlen(buf)), 0);
	assert_int_equal(ix.n, 3);
	assert_true(sync_index_has(&ix, "Sent", 4));
	assert_true(sync_index_has(&ix, "Archive.2020", 12));
	assert_true(sync_index_has(&ix, "Drafts", 6));
	assert_false(sync_index_has(&ix, "Archive", 7));
	assert_false(sync_index_has(&ix, "V", 1));
	sync_index_free(&ix);
	free(buf);
}

static int open_sub(const char *dir, const char *name)
{
	char *p = tu_path(dir, name);
	int fd = tu_open_dir(p);

	free(p);
	return fd;
}

/* Read below a folder fd: dovecot-uidlist first, courierimapuiddb else;
 * none is 0; a symlink, a folder or a file too odd to parse is -1. */
static void read_from_folder(void **state)
{
	struct sync_index ix;
	char *dir = tu_tmpdir(), *link;
	int fd;

	(void)state;
	assert_int_equal(tu_sh("mkdir -p '%s/a' '%s/b' '%s/c' '%s/d/dovecot-uidlist' '%s/e'", dir,
			       dir, dir, dir, dir), 0);
	tu_write_file(dir, "a/courierimapuiddb", "1 5 3\n1 x.host\n2 y.host\n", 24);
	tu_write_file(dir, "e/dovecot-uidlist", "not an index\n", 13);
	link = tu_path(dir, "c/dovecot-uidlist");
	assert_int_equal(symlink("../a/courierimapuiddb", link), 0);

	fd = open_sub(dir, "a");
	assert_int_equal(sync_index_read(fd, &ix), 1);
	assert_true(sync_index_clean(&ix));
	assert_true(has(&ix, "y.host:2,S"));
	sync_index_free(&ix);
	close(fd);
	fd = open_sub(dir, "b");
	assert_int_equal(sync_index_read(fd, &ix), 0);
	close(fd);
	fd = open_sub(dir, "c");
	assert_int_equal(sync_index_read(fd, &ix), -1);
	assert_int_equal(errno, ELOOP);
	close(fd);
	fd = open_sub(dir, "d");
	assert_int_equal(sync_index_read(fd, &ix), -1);
	close(fd);
	fd = open_sub(dir, "e");
	assert_int_equal(sync_index_read(fd, &ix), -1);
	assert_int_equal(errno, EINVAL);
	close(fd);
	/* A read error is not absence. */
	tu_write_file(dir, "b/dovecot-uidlist", "3 V1 N2\n1 :x\n", 13);
	fd = open_sub(dir, "b");
	{
		struct mr_io_fault fl = { MR_IO_READ, "dovecot-uidlist", EIO, 0, 0, 0 };
		assert_int_equal(mr_io_fault_add(&fl), 0);
	}
	assert_int_equal(sync_index_read(fd, &ix), -1);
	assert_int_equal(errno, EIO);
	mr_io_fault_clear();
	close(fd);
	free(link);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base_names),
		cmocka_unit_test(dovecot_version3),
		cmocka_unit_test(dovecot_appended),
		cmocka_unit_test(courier_version1),
		cmocka_unit_test(unknown_headers_refused),
		cmocka_unit_test(odd_lines),
		cmocka_unit_test(torn_and_zeroed),
		cmocka_unit_test(transaction_log),
		cmocka_unit_test(subscriptions),
		cmocka_unit_test(read_from_folder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
