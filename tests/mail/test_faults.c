/* test_faults.c: held mail under a failing disk (mail/held.c through the
 * mr_io fault layer): a full disk or an fsync error while holding gives -1
 * with nothing half-visible and later holds work; short writes are retried;
 * a failing release keeps the held mail and can be repeated. */
#include "mailtest.h"

static const char message[] = "Subject: held\r\n\r\nwhile the disk was full\r\n";

/* Nothing of a failed hold is visible: no held file, no temp file. */
static void check_hold_fails(const struct mr_io_fault *f, size_t nf, int errnum)
{
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t count, seq = 0, released;
	size_t i;
	int lock;

	mt_hold(t, "alice", "before", 6);
	for (i = 0; i < nf; i++)
		assert_int_equal(mr_io_fault_add(&f[i]), 0);
	assert_int_equal(mail_hold_lock(t->store, "alice", &lock, &err), 0);
	assert_int_equal(mail_hold(t->store, "alice", message, sizeof(message) - 1, &seq, &err), -1);
	mail_hold_unlock(lock);
	assert_true(mr_io_fault_fired() > 0);
	assert_int_equal(err.errnum, errnum);
	assert_non_null(strstr(err.msg, "held/alice"));
	mr_io_fault_clear();
	assert_int_equal(mt_count(t->state, "held/alice"), 1);
	assert_int_equal(mail_held_count(t->store, "alice", &count, NULL, &err), 0);
	assert_int_equal(count, 1);

	/* The disk has room again: holding goes on at the next number. */
	assert_int_equal(mt_hold(t, "alice", message, sizeof(message) - 1), 2);
	assert_int_equal(mt_count(t->state, "held/alice"), 2);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 2);
	assert_int_equal(mt_count(t->maildir, "new"), 2);
	mt_free(t);
}

static void enospc_on_write(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_WRITE, .name_contains = "tmp.", .errnum = ENOSPC };

	(void)state;
	check_hold_fails(&f, 1, ENOSPC);
}

static void enospc_after_a_short_write(void **state)
{
	/* The first write gets 10 bytes through, the next finds the disk full. */
	struct mr_io_fault f[2] = {
		{ .op = MR_IO_WRITE, .name_contains = "tmp.", .short_len = 10, .count = 1 },
		{ .op = MR_IO_WRITE, .name_contains = "tmp.", .errnum = ENOSPC },
	};

	(void)state;
	check_hold_fails(f, 2, ENOSPC);
}

static void eio_on_file_fsync(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .name_contains = "tmp.", .errnum = EIO };

	(void)state;
	check_hold_fails(&f, 1, EIO);
}

static void eio_on_folder_fsync(void **state)
{
	/* The folder's fd was opened by the user's name: after the rename,
	 * the fsync of held/alice fails and the file must go again. */
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .name_contains = "alice", .errnum = EIO };

	(void)state;
	check_hold_fails(&f, 1, EIO);
}

static void rename_fails(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_RENAME, .name_contains = ".mrmail", .errnum = EIO };

	(void)state;
	check_hold_fails(&f, 1, EIO);
}

static void open_fails(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_OPEN, .name_contains = "tmp.", .errnum = EDQUOT };

	(void)state;
	check_hold_fails(&f, 1, EDQUOT);
}

static void first_hold_folder_fsync_fails(void **state)
{
	/* The very first hold makes held/alice; held/ must be synced too. */
	struct mt *t = mt_new();
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .name_contains = "held", .errnum = EIO };
	struct mr_error err;
	int lock;

	(void)state;
	/* Reopen the store with the faults on, so its fd is known by name. */
	mail_store_close(&t->store);
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(mail_store_open(t->state_fd, &t->store, &err), 0);
	assert_int_equal(mail_hold_lock(t->store, "alice", &lock, &err), 0);
	assert_int_equal(mail_hold(t->store, "alice", "m", 1, NULL, &err), -1);
	mail_hold_unlock(lock);
	assert_int_equal(err.errnum, EIO);
	assert_non_null(strstr(err.msg, "fsync(held)"));
	mr_io_fault_clear();
	assert_int_equal(mt_count(t->state, "held/alice"), 0);
	assert_int_equal(mt_hold(t, "alice", "m", 1), 1);
	mt_free(t);
}

static void short_writes_are_retried(void **state)
{
	struct mt *t = mt_new();
	struct mr_io_fault f = { .op = MR_IO_WRITE, .short_len = 3 };
	struct mr_error err;
	uint64_t released;
	char **v, *rel, *data;
	size_t n, len;

	(void)state;
	assert_int_equal(mr_io_fault_add(&f), 0);
	mt_hold(t, "alice", message, sizeof(message) - 1);
	assert_true(mr_io_fault_fired() > 5);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	mr_io_fault_clear();
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 1);
	rel = tu_path("new", v[0]);
	data = tu_read_file(t->maildir, rel, &len);
	assert_non_null(data);
	assert_int_equal(len, sizeof(message) - 1);
	assert_memory_equal(data, message, len);
	free(data);
	free(rel);
	mt_names_free(v, n);
	mt_free(t);
}

/* A release that fails on the mailbox side keeps every held file, leaves
 * tmp/ clean and can be repeated. */
static void check_release_fails(const struct mr_io_fault *f, int errnum)
{
	struct mt *t = mt_new();
	struct mr_error err;
	uint64_t released;

	mt_hold(t, "alice", "one", 3);
	mt_hold(t, "alice", "two", 3);
	assert_int_equal(mr_io_fault_add(f), 0);
	assert_int_equal(mt_release(t, "alice", &released, &err), -1);
	assert_int_equal(err.errnum, errnum);
	mr_io_fault_clear();
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	assert_int_equal(mt_count(t->state, "held/alice"), 2);
	assert_int_equal(mt_release(t, "alice", &released, &err), 0);
	assert_int_equal(released, 2);
	assert_int_equal(mt_count(t->maildir, "new"), 2);
	mt_free(t);
}

static void release_enospc(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_WRITE, .name_contains = "mailrestore-held",
				 .errnum = ENOSPC, .after = 1 };

	(void)state;
	check_release_fails(&f, ENOSPC);
}

static void release_fsync_file_eio(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .name_contains = "mailrestore-held",
				 .errnum = EIO };

	(void)state;
	check_release_fails(&f, EIO);
}

static void release_fsync_new_eio(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_FSYNC, .name_contains = "new", .errnum = EIO };

	(void)state;
	check_release_fails(&f, EIO);
}

static void release_read_eio(void **state)
{
	struct mr_io_fault f = { .op = MR_IO_READ, .name_contains = ".mrmail", .errnum = EIO };

	(void)state;
	check_release_fails(&f, EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(enospc_on_write),
		cmocka_unit_test(enospc_after_a_short_write),
		cmocka_unit_test(eio_on_file_fsync),
		cmocka_unit_test(eio_on_folder_fsync),
		cmocka_unit_test(rename_fails),
		cmocka_unit_test(open_fails),
		cmocka_unit_test(first_hold_folder_fsync_fails),
		cmocka_unit_test(short_writes_are_retried),
		cmocka_unit_test(release_enospc),
		cmocka_unit_test(release_fsync_file_eio),
		cmocka_unit_test(release_fsync_new_eio),
		cmocka_unit_test(release_read_eio),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
