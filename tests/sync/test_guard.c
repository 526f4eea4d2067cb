/*
 * test_guard.c: the remove guard on realistic Maildir++ trees (sync/guard.c).
 * A user's deletions, which the folder's own index on the source no longer
 * lists, never stop a sync; messages the index still lists but the source
 * lacks do, per folder; without an index a count guard applies that a tiny
 * mailbox or one stray file cannot trip; a vanished folder is judged by
 * its parent's subscriptions file. Everything removed goes to the attic.
 */
#include "tests/sync/synctest.h"

/* The file name of message i of a folder (Dovecot style, with size). */
static void msg_name(char *buf, size_t len, int i, const char *flags)
{
	snprintf(buf, len, "17000%05d.M%dP4242Q%d.mail.example.com,S=%d,W=%d%s", i, i, i, 40 + i,
		 41 + i, flags);
}

/* Writes messages first..last into src folder (relative, "" the root),
 * in cur/ with flags ":2,S" (even) or new/ (odd). */
static void add_msgs(const char *root, const char *folder, int first, int last)
{
	char name[200], rel[300], body[64];
	int i;

	for (i = first; i <= last; i++) {
		msg_name(name, sizeof(name), i, i % 2 ? "" : ":2,S");
		snprintf(rel, sizeof(rel), "%s%s%s/%s", folder, *folder ? "/" : "",
			 i % 2 ? "new" : "cur", name);
		snprintf(body, sizeof(body), "Subject: message %d\n\nbody %d\n", i, i);
		tu_write_file(root, rel, body, strlen(body));
	}
	snprintf(rel, sizeof(rel), "%s%stmp", folder, *folder ? "/" : "");
	assert_int_equal(tu_sh("mkdir -p '%s/%s'", root, rel), 0);
}

/* Writes folder's dovecot-uidlist (version 3) naming messages first..last
 * (the names as Dovecot saw them: without flags, with size fields). */
static void write_uidlist3(const char *root, const char *folder, int first, int last)
{
	char name[200], rel[300], *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	int i;

	assert_non_null(m);
	fprintf(m, "3 V1700000000 N%d G3085f01b7f11094c501100008c4a11c1\n", last + 1);
	for (i = first; i <= last; i++) {
		msg_name(name, sizeof(name), i, "");
		fprintf(m, "%d G%08x%024x W%d :%s\n", i, i, i, 41 + i, name);
	}
	fclose(m);
	snprintf(rel, sizeof(rel), "%s%sdovecot-uidlist", folder, *folder ? "/" : "");
	tu_write_file(root, rel, text, len);
	free(text);
}

/* The same as Courier writes it (courierimapuiddb, version 1). */
static void write_uiddb1(const char *root, const char *folder, int first, int last)
{
	char name[200], rel[300], *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	int i;

	assert_non_null(m);
	fprintf(m, "1 1700000000 %d\n", last + 1);
	for (i = first; i <= last; i++) {
		msg_name(name, sizeof(name), i, "");
		fprintf(m, "%d %s\n", i, name);
	}
	fclose(m);
	snprintf(rel, sizeof(rel), "%s%scourierimapuiddb", folder, *folder ? "/" : "");
	tu_write_file(root, rel, text, len);
	free(text);
}

/* A Dovecot Maildir++ user: INBOX (n messages), .Sent (5), .Drafts (1),
 * subscriptions, and Dovecot's own files. */
static void dovecot_user(struct sfx *f, int n)
{
	add_msgs(f->src, "", 1, n);
	write_uidlist3(f->src, "", 1, n);
	add_msgs(f->src, ".Sent", 101, 105);
	write_uidlist3(f->src, ".Sent", 101, 105);
	add_msgs(f->src, ".Drafts", 201, 201);
	write_uidlist3(f->src, ".Drafts", 201, 201);
	tu_write_file(f->src, "subscriptions", "Sent\nDrafts\n", 12);
	tu_write_file(f->src, "dovecot.index", "index", 5);
	tu_write_file(f->src, "dovecot.index.cache", "cache", 5);
	tu_write_file(f->src, "dovecot-keywords", "0 $Junk\n", 8);
}

/* Number of files below dir. */
static int count_files(const char *dir)
{
	char cmd[4200];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "find '%s' -type f | wc -l", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static const char *guard_message(const struct sfx *f)
{
	size_t i;

	for (i = 0; i < f->problems.n; i++)
		if (f->problems.v[i].kind == MR_PROBLEM_GUARD)
			return f->problems.v[i].message;
	return "";
}

/* POP users: every message of the backup fetched and deleted, three new
 * ones arrived, the index names only those. */
static void pop_user_deleted_everything(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 40);
	write_uidlist3(f.src, "", 1, 40);
	tu_write_file(f.src, "dovecot.index", "index", 5);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/* '%s'/new/*", f.src, f.src), 0);
	add_msgs(f.src, "", 41, 43);
	write_uidlist3(f.src, "", 41, 43);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 40);
	assert_int_equal(count_files(f.attic), 40);
	sfx_teardown(&f);
}

/* Writes dovecot.index.log of root recording the expunge of UIDs 1..40. */
static void write_expunge_log_40(const char *root)
{
	unsigned char log[40 + 8 + 40 * 20] = { 1, 3, 40, 0 };
	uint32_t size = 8 + 40 * 20, type = 0x1000ed90u, uid;

	log[40] = (unsigned char)(0x80 | ((size >> 23) & 0x7f));
	log[41] = (unsigned char)(0x80 | ((size >> 16) & 0x7f));
	log[42] = (unsigned char)(0x80 | ((size >> 9) & 0x7f));
	log[43] = (unsigned char)(0x80 | ((size >> 2) & 0x7f));
	memcpy(log + 44, &type, 4);
	for (uid = 1; uid <= 40; uid++)
		memcpy(log + 48 + (uid - 1) * 20, &uid, 4);
	tu_write_file(root, "dovecot.index.log", log, sizeof(log));
}

/* Index files opened in the source, counted by a wrapped openat. */
static char counted_src[PATH_MAX];
static int counted_opens;

static int counting_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	char link[64], dir[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, dir, sizeof(dir) - 1);
	if (n > 0 && (size_t)n >= strlen(counted_src) &&
	    strncmp(dir, counted_src, strlen(counted_src)) == 0 &&
	    strncmp(path, "dovecot", 7) == 0)
		counted_opens++;
	return mr_io_libc.openat(dirfd, path, flags, mode);
}

/* The backup was taken after Dovecot expunged forty messages (the log
 * records it) but before it unlinked their files; the source has them
 * gone. The uidlist and the logs did not change since: the guard reads
 * the work copy's copies of them (the same bytes, by the quick check), not
 * the damaged disk, and still sees the user's deletions. */
static void unchanged_index_read_from_work_copy(void **state)
{
	struct mr_io_ops counting = mr_io_libc;
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 40);
	write_uidlist3(f.src, "", 1, 40);
	write_expunge_log_40(f.src);
	tu_write_file(f.src, "dovecot.index.log.2", "old log", 7);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/* '%s'/new/*", f.src, f.src), 0);
	snprintf(counted_src, sizeof(counted_src), "%s", f.src);
	counted_opens = 0;
	counting.openat = counting_openat;
	mr_io = &counting;
	assert_int_equal(sfx_sync(&f), 0);
	mr_io = &mr_io_libc;
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 40);
	assert_int_equal(f.stats.source_bytes_read, 0);
	assert_int_equal(counted_opens, 0);
	sfx_teardown(&f);
}

/* POP3 as Dovecot leaves it: the files of the expunged messages are gone
 * at once, their names stay in the uidlist until a later sync, and the
 * transaction log records the expunges. */
static void pop_user_expunged_in_log(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 40);
	write_uidlist3(f.src, "", 1, 40);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/* '%s'/new/*", f.src, f.src), 0);
	add_msgs(f.src, "", 41, 42);
	write_uidlist3(f.src, "", 1, 42);
	/* Without the log the index still lists them all: missing. */
	assert_int_equal(sfx_sync(&f), 1);
	assert_int_equal(f.stats.attic_files, 0);
	write_expunge_log_40(f.src);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 40);
	sfx_teardown(&f);
}

/* The same with Courier's index. */
static void pop_user_courier(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 30);
	write_uiddb1(f.src, "", 1, 30);
	tu_write_file(f.src, "courierimapkeywords/:list", "x", 1);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/* '%s'/new/*", f.src, f.src), 0);
	add_msgs(f.src, "", 31, 32);
	write_uiddb1(f.src, "", 31, 32);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 30);
	sfx_teardown(&f);
}

/* A one-message mailbox without an index whose message was deleted. */
static void tiny_mailbox_without_index(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 2, 2);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/*", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 1);
	sfx_teardown(&f);
}

/* A backup that holds one stray file the source lacks (an empty
 * mailbox otherwise: 1 of 1 files). */
static void stray_file_in_backup(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	assert_int_equal(tu_sh("mkdir -p '%s/cur' '%s/new' '%s/tmp'", f.src, f.src, f.src), 0);
	sfx_backup(&f);
	tu_write_file(f.dst, "dovecot.index.log.2", "old log", 7);
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	assert_true(sfx_exists(f.attic, "dovecot.index.log.2"));
	sfx_teardown(&f);
}

/* fsck cleared INBOX: it lists, empty, while its index names 40 messages.
 * The sync changes nothing and says where and how many. */
static void folder_empty_index_names_40(void **state)
{
	struct sfx f;
	char *snap;

	(void)state;
	sfx_setup(&f);
	dovecot_user(&f, 40);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/* '%s'/new/*", f.src, f.src), 0);
	/* Other changes the sync would make, to prove it makes none. */
	add_msgs(f.src, ".Sent", 106, 106);
	write_uidlist3(f.src, ".Sent", 101, 106);
	snap = tu_path(f.dir, "dst.snap");
	sfx_snapshot(f.dst, snap);
	assert_int_equal(sfx_sync(&f), 1);
	sfx_print_problems(&f);
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_GUARD), 1);
	if (strstr(guard_message(&f),
		   "INBOX: 40 messages the mailbox index still lists are missing on the source") ==
	    NULL)
		fail_msg("guard message: %s", guard_message(&f));
	assert_int_equal(f.stats.attic_files, 0);
	assert_int_equal(f.stats.bytes_written, 0);
	assert_int_equal(count_files(f.attic), 0);
	sfx_snapshot_same(f.dst, snap);
	/* All 40 are still in the work copy. */
	assert_int_equal(tu_sh("test $(ls '%s/cur' '%s/new' | grep -c example) = 40", f.dst, f.dst),
			 0);
	free(snap);
	sfx_teardown(&f);
}

/* The same in a Courier folder below the root: named by its path. */
static void courier_subfolder_missing(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 30);
	write_uiddb1(f.src, "", 1, 30);
	add_msgs(f.src, ".Archive.2020", 401, 412);
	write_uiddb1(f.src, ".Archive.2020", 401, 412);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/.Archive.2020/cur/* '%s'/.Archive.2020/new/*", f.src,
			       f.src), 0);
	assert_int_equal(sfx_sync(&f), 1);
	if (strstr(guard_message(&f), ".Archive.2020: 12 messages the mailbox index still lists") ==
	    NULL)
		fail_msg("guard message: %s", guard_message(&f));
	assert_int_equal(f.stats.attic_files, 0);
	sfx_teardown(&f);
}

/* The server still lists a few expunged messages until it rewrites its
 * index: a minority of missing messages goes through. */
static void stale_names_minority(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	dovecot_user(&f, 20);
	sfx_backup(&f);
	/* Three expunged, the index not rewritten yet; two new ones appended. */
	assert_int_equal(tu_sh("cd '%s' && rm -f cur/1700000002.* new/1700000003.* cur/1700000004.*",
			       f.src), 0);
	add_msgs(f.src, "", 21, 22);
	write_uidlist3(f.src, "", 1, 22);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 3);
	sfx_teardown(&f);
}

/* Messages that moved (new/ to cur/, flags) are renames, never missing. */
static void renames_are_not_missing(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	dovecot_user(&f, 12);
	sfx_backup(&f);
	assert_int_equal(tu_sh("cd '%s' && for m in new/*; do b=${m#new/}; mv \"$m\" \"cur/$b:2,S\"; "
			       "done && for m in cur/*:2,S; do mv \"$m\" \"${m%%S}RS\"; done", f.src), 0);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 0);
	assert_int_equal(f.stats.renamed, 12);
	sfx_teardown(&f);
}

/* A user who deleted a whole folder (and unsubscribed from it, as clients
 * do): its parent's subscriptions no longer name it. Goes through, the
 * folder to the attic. */
static void folder_deleted_by_user(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	dovecot_user(&f, 4);
	add_msgs(f.src, ".Old", 301, 330);
	write_uidlist3(f.src, ".Old", 301, 330);
	tu_write_file(f.src, "subscriptions", "V\t2\n\nSent\nDrafts\nOld\n", 21);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -rf '%s/.Old'", f.src), 0);
	tu_write_file(f.src, "subscriptions", "V\t2\n\nSent\nDrafts\n", 17);
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 31);
	assert_true(sfx_exists(f.attic, ".Old/dovecot-uidlist"));
	sfx_teardown(&f);
}

/* A folder gone from the source that the subscriptions still name is
 * missing: attention, nothing changed. */
static void folder_gone_still_subscribed(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	dovecot_user(&f, 4);
	add_msgs(f.src, ".Old", 301, 303);
	write_uidlist3(f.src, ".Old", 301, 303);
	tu_write_file(f.src, "subscriptions", "Sent\nDrafts\nOld\n", 16);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -rf '%s/.Old'", f.src), 0);
	assert_int_equal(sfx_sync(&f), 1);
	if (strstr(guard_message(&f), ".Old: the folder is gone from the source but its parent's "
				      "subscriptions still name it: 3 messages missing") == NULL)
		fail_msg("guard message: %s", guard_message(&f));
	assert_true(sfx_exists(f.dst, ".Old/dovecot-uidlist"));
	assert_int_equal(f.stats.attic_files, 0);
	sfx_teardown(&f);
}

/* Dovecot's mailbox log in the parent records the deletion by the GUID
 * the backup's uidlist of the folder holds: the user deleted it, whatever
 * the subscriptions say (IMAP DELETE does not unsubscribe). Another
 * mailbox's deletion in the log changes nothing. */
static void folder_deleted_in_mailbox_log(void **state)
{
	static const unsigned char guid[16] = { 0x30, 0x85, 0xf0, 0x1b, 0x7f, 0x11, 0x09, 0x4c,
						0x50, 0x11, 0x00, 0x00, 0x8c, 0x4a, 0x11, 0xc1 };
	unsigned char log[3 * 24] = { 0 };
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	dovecot_user(&f, 4);
	add_msgs(f.src, ".Old", 301, 303);
	write_uidlist3(f.src, ".Old", 301, 303);
	tu_write_file(f.src, "subscriptions", "Sent\nDrafts\nOld\n", 16);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -rf '%s/.Old'", f.src), 0);
	/* Subscribe (4) and delete (1) of other mailboxes, and a torn tail. */
	log[0] = 4;
	memcpy(log + 4, guid, 16);
	log[24] = 1;
	memcpy(log + 28, guid, 16);
	log[28 + 15] ^= 1;
	tu_write_file(f.src, "dovecot.mailbox.log", log, 2 * 24 + 10);
	assert_int_equal(sfx_sync(&f), 1);
	log[48] = 1;
	memcpy(log + 52, guid, 16);
	tu_write_file(f.src, "dovecot.mailbox.log", log, sizeof(log));
	assert_int_equal(sfx_sync(&f), 0);
	sfx_print_problems(&f);
	assert_int_equal(sfx_verify(&f), 0);
	assert_int_equal(f.stats.attic_files, 4);
	sfx_teardown(&f);
}

/* Without a subscriptions file, a vanished folder is only counted. */
static void folder_gone_nothing_known(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 4);
	add_msgs(f.src, ".Old", 301, 330);
	write_uidlist3(f.src, ".Old", 301, 330);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -rf '%s/.Old'", f.src), 0);
	assert_int_equal(sfx_sync(&f), 1);
	if (strstr(guard_message(&f), "31 of 35 files would go to the attic") == NULL)
		fail_msg("guard message: %s", guard_message(&f));
	/* --min-remove above the count lets it through. */
	f.set.min_remove_files = 32;
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(sfx_verify(&f), 0);
	sfx_teardown(&f);
}

/* A torn index (its last line cut) cannot tell deleted from missing: the
 * count guard decides, and 40 gone files trip it. */
static void torn_index_counts(void **state)
{
	struct sfx f;

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 40);
	write_uidlist3(f.src, "", 1, 40);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/* '%s'/new/*", f.src, f.src), 0);
	tu_write_file(f.src, "dovecot-uidlist", "3 V1700000000 N42\n41 :17000000", 30);
	assert_int_equal(sfx_sync(&f), 1);
	if (strstr(guard_message(&f), "40 of 41 files would go to the attic") == NULL)
		fail_msg("guard message: %s", guard_message(&f));
	sfx_teardown(&f);
}

/* An index the source fails to read is not an empty one. */
static void unreadable_index_counts(void **state)
{
	struct sfx f;
	struct mr_io_fault fl = { MR_IO_READ, "dovecot-uidlist", EIO, 0, 0, 0 };

	(void)state;
	sfx_setup(&f);
	add_msgs(f.src, "", 1, 40);
	write_uidlist3(f.src, "", 1, 40);
	sfx_backup(&f);
	assert_int_equal(tu_sh("rm -f '%s'/cur/* '%s'/new/*", f.src, f.src), 0);
	write_uidlist3(f.src, "", 41, 41);
	assert_int_equal(mr_io_fault_add(&fl), 0);
	assert_int_equal(sfx_sync(&f), 1);
	mr_io_fault_clear();
	assert_int_equal(mr_problems_count(&f.problems, MR_PROBLEM_GUARD), 1);
	assert_int_equal(f.stats.attic_files, 0);
	/* Readable again, it shows the user deleted them. */
	assert_int_equal(sfx_sync(&f), 0);
	assert_int_equal(f.stats.attic_files, 40);
	sfx_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pop_user_deleted_everything),
		cmocka_unit_test(pop_user_expunged_in_log),
		cmocka_unit_test(unchanged_index_read_from_work_copy),
		cmocka_unit_test(pop_user_courier),
		cmocka_unit_test(tiny_mailbox_without_index),
		cmocka_unit_test(stray_file_in_backup),
		cmocka_unit_test(folder_empty_index_names_40),
		cmocka_unit_test(courier_subfolder_missing),
		cmocka_unit_test(stale_names_minority),
		cmocka_unit_test(renames_are_not_missing),
		cmocka_unit_test(folder_deleted_by_user),
		cmocka_unit_test(folder_gone_still_subscribed),
		cmocka_unit_test(folder_deleted_in_mailbox_log),
		cmocka_unit_test(folder_gone_nothing_known),
		cmocka_unit_test(torn_index_counts),
		cmocka_unit_test(unreadable_index_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
