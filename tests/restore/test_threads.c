/*
 * test_threads.c: several users extract at once on threads, sharing one
 * scratch folder, each into its own work copy, and every copy comes out
 * whole (restore_extract keeps no global state but a temp-name counter).
 */
#include "tests/restore/archgen.h"

#include <pthread.h>

#define USERS 6
#define FILES 150

struct job {
	const char *arc;
	char *work;
	int tmp_fd;
	int rc;
	struct restore_stats st;
};

static void *run(void *arg)
{
	struct job *j = arg;
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_settings s;
	struct mr_error err;
	int afd = open(j->arc, O_RDONLY | O_CLOEXEC), wfd;

	mkdir(j->work, 0755);
	wfd = open(j->work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	restore_settings_init(&s);
	s.tmp_dirfd = j->tmp_fd;
	j->rc = (afd < 0 || wfd < 0) ? -1 : restore_extract(afd, wfd, &s, &j->st, &pb, &err);
	mr_problems_reset(&pb);
	close(afd);
	close(wfd);
	return NULL;
}

static void test_parallel_users(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "u.tar.lz4"), *scratch = tu_path(root, "tmp");
	struct job jobs[USERS];
	pthread_t th[USERS];
	struct archive *a;
	char name[64], body[64];
	int i, f;

	(void)state;
	a = ag_open(arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_LZ4);
	for (f = 0; f < FILES; f++) {
		snprintf(name, sizeof(name), "%s/cur/%d.M%d", f % 2 ? ".Sent" : "", f, f);
		snprintf(body, sizeof(body), "message %d\n", f);
		ag_file(a, name[0] == '/' ? name + 1 : name, body, strlen(body), 0600,
			1500000000 + f, f);
	}
	ag_close(a);
	mkdir(scratch, 0700);
	for (i = 0; i < USERS; i++) {
		snprintf(name, sizeof(name), "work%d", i);
		jobs[i].arc = arc;
		jobs[i].work = tu_path(root, name);
		jobs[i].tmp_fd = tu_open_dir(scratch);
		assert_int_equal(pthread_create(&th[i], NULL, run, &jobs[i]), 0);
	}
	for (i = 0; i < USERS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < USERS; i++) {
		assert_int_equal(jobs[i].rc, 0);
		assert_int_equal(jobs[i].st.files, FILES);
		for (f = 0; f < FILES; f++) {
			snprintf(name, sizeof(name), "%s/cur/%d.M%d", f % 2 ? ".Sent" : "", f, f);
			snprintf(body, sizeof(body), "message %d\n", f);
			ag_assert_content(jobs[i].work, name[0] == '/' ? name + 1 : name, body,
					  strlen(body));
		}
		close(jobs[i].tmp_fd);
		free(jobs[i].work);
	}
	assert_int_equal(tu_sh("test -z \"$(ls -A '%s')\"", scratch), 0);
	free(scratch);
	free(arc);
	tu_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parallel_users),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
