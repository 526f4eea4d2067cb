/* test_deliver.c: delivery into a Maildir for an active user (mail/maildir.c):
 * the file lands in new/ with its content, tmp/ stays clean, and a failed
 * write or fsync leaves nothing behind. */
#include "mailtest.h"

static const char message[] =
	"From: a@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

static void deliver_into_fresh_maildir(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	char name[512], *path, *data, expect_suffix[64];
	size_t n, len;
	char **v;
	struct stat st;

	(void)state;
	if (mail_deliver_maildir(t->maildir_fd, message, sizeof(message) - 1, name,
				 sizeof(name), &err) < 0)
		fail_msg("deliver: %s", err.msg);
	v = mt_list(t->maildir, "new", &n);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], name);
	mt_names_free(v, n);
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	assert_int_equal(mt_count(t->maildir, "cur"), 0);

	/* <sec>.M<usec>P<pid>Q<n>.<host>,S=<size>, no ':' or '/' in it. */
	snprintf(expect_suffix, sizeof(expect_suffix), ",S=%zu", sizeof(message) - 1);
	assert_non_null(strstr(name, ".M"));
	assert_non_null(strstr(name, "Q"));
	assert_null(strchr(name, ':'));
	assert_null(strchr(name, '/'));
	assert_string_equal(name + strlen(name) - strlen(expect_suffix), expect_suffix);

	path = tu_path("new", name);
	data = tu_read_file(t->maildir, path, &len);
	assert_non_null(data);
	assert_int_equal(len, sizeof(message) - 1);
	assert_memory_equal(data, message, len);
	free(data);
	free(path);

	path = tu_path(t->maildir, "new");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	free(path);
	mt_free(t);
}

static void names_are_unique(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	int i;

	(void)state;
	for (i = 0; i < 50; i++)
		if (mail_deliver_maildir(t->maildir_fd, "x", 1, NULL, 0, &err) < 0)
			fail_msg("deliver: %s", err.msg);
	assert_int_equal(mt_count(t->maildir, "new"), 50);
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	mt_free(t);
}

static void empty_message(void **state)
{
	struct mt *t = mt_new();
	struct mr_error err;
	char name[512];

	(void)state;
	assert_int_equal(mail_deliver_maildir(t->maildir_fd, "", 0, name, sizeof(name), &err), 0);
	assert_string_equal(name + strlen(name) - 4, ",S=0");
	assert_int_equal(mt_count(t->maildir, "new"), 1);
	mt_free(t);
}

/* Any failure before the delivery is durable leaves neither tmp/ nor new/
 * holding the message, so the MTA's retry cannot make a double. */
static void failure_leaves_nothing(enum mr_io_op op, const char *name, int errnum)
{
	struct mt *t = mt_new();
	struct mr_io_fault f = { .op = op, .name_contains = name, .errnum = errnum };
	struct mr_error err;

	/* Make the folders first so the fault hits the delivery itself. */
	assert_int_equal(mail_deliver_maildir(t->maildir_fd, "a", 1, NULL, 0, &err), 0);
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(mail_deliver_maildir(t->maildir_fd, message, sizeof(message) - 1,
					      NULL, 0, &err), -1);
	assert_true(mr_io_fault_fired() > 0);
	assert_int_equal(err.errnum, errnum);
	assert_int_equal(mt_count(t->maildir, "new"), 1);
	assert_int_equal(mt_count(t->maildir, "tmp"), 0);
	mr_io_fault_clear();
	assert_int_equal(mail_deliver_maildir(t->maildir_fd, message, sizeof(message) - 1,
					      NULL, 0, &err), 0);
	assert_int_equal(mt_count(t->maildir, "new"), 2);
	mt_free(t);
}

static void enospc_on_write(void **state)
{
	(void)state;
	failure_leaves_nothing(MR_IO_WRITE, NULL, ENOSPC);
}

static void eio_on_file_fsync(void **state)
{
	(void)state;
	/* Every file name carries ",S=": only the message file's fsync. */
	failure_leaves_nothing(MR_IO_FSYNC, ",S=", EIO);
}

static void eio_on_new_fsync(void **state)
{
	(void)state;
	/* The fd of new/ was opened by the name "new". */
	failure_leaves_nothing(MR_IO_FSYNC, "new", EIO);
}

static void link_failure(void **state)
{
	(void)state;
	failure_leaves_nothing(MR_IO_RENAME, NULL, EIO);
}

static void short_writes_are_retried(void **state)
{
	struct mt *t = mt_new();
	struct mr_io_fault f = { .op = MR_IO_WRITE, .short_len = 7 };
	struct mr_error err;
	char name[512], *path, *data;
	size_t len;

	(void)state;
	assert_int_equal(mr_io_fault_add(&f), 0);
	assert_int_equal(mail_deliver_maildir(t->maildir_fd, message, sizeof(message) - 1,
					      name, sizeof(name), &err), 0);
	assert_true(mr_io_fault_fired() > 1);
	path = tu_path("new", name);
	data = tu_read_file(t->maildir, path, &len);
	assert_non_null(data);
	assert_int_equal(len, sizeof(message) - 1);
	assert_memory_equal(data, message, len);
	free(data);
	free(path);
	mt_free(t);
}

/* Run as root (the daemon), delivery gives the files and new folders to
 * the Maildir's owner, or the IMAP server could not read them. */
static void files_belong_to_the_maildir_owner(void **state)
{
	struct mt *t;
	struct mr_error err;
	char name[512], path[4096];
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	t = mt_new();
	assert_int_equal(chown(t->maildir, 65534, 65534), 0);
	assert_int_equal(mail_deliver_maildir(t->maildir_fd, message, sizeof(message) - 1, name,
					      sizeof(name), &err), 0);
	snprintf(path, sizeof(path), "%s/new/%s", t->maildir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/cur", t->maildir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	mt_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(deliver_into_fresh_maildir),
		cmocka_unit_test(names_are_unique),
		cmocka_unit_test(empty_message),
		cmocka_unit_test(enospc_on_write),
		cmocka_unit_test(eio_on_file_fsync),
		cmocka_unit_test(eio_on_new_fsync),
		cmocka_unit_test(link_failure),
		cmocka_unit_test(short_writes_are_retried),
		cmocka_unit_test(files_belong_to_the_maildir_owner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
