/*
 * test_snapshot.c: common/snapshot.c (what a client on another host last
 * learned from the daemon).
 */
#include "tests/testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void snapshot_markers(void **state)
{
	char *dir = tu_tmpdir(), *snap = tu_path(dir, "snap");
	struct mr_error err;
	int fd;

	(void)state;
	assert_int_equal(mr_snapshot_open(snap, 0, &err), -1);
	fd = mr_snapshot_open(snap, 1, &err);
	assert_true(fd >= 0);
	assert_int_equal(mr_snapshot_get(fd, "alice"), MR_SNAP_NONE);
	assert_int_equal(mr_snapshot_put(fd, "alice", MR_SNAP_UNAFFECTED, &err), 0);
	assert_int_equal(mr_snapshot_get(fd, "alice"), MR_SNAP_UNAFFECTED);
	/* Active wins and stays: never marked otherwise afterwards. */
	assert_int_equal(mr_snapshot_put(fd, "alice", MR_SNAP_ACTIVE, &err), 0);
	assert_int_equal(mr_snapshot_put(fd, "alice", MR_SNAP_UNAFFECTED, &err), 0);
	assert_int_equal(mr_snapshot_get(fd, "alice"), MR_SNAP_ACTIVE);
	/* Names that are no user names are never paths. */
	assert_int_equal(mr_snapshot_put(fd, "../x", MR_SNAP_ACTIVE, &err), -1);
	assert_int_equal(mr_snapshot_get(fd, "../active/alice"), MR_SNAP_NONE);
	assert_int_equal(mr_snapshot_get(-1, "alice"), MR_SNAP_NONE);
	/* A symlink planted as a marker is not one. */
	assert_int_equal(tu_sh("ln -s /etc/passwd '%s/active/mallory'", snap), 0);
	assert_int_equal(mr_snapshot_get(fd, "mallory"), MR_SNAP_NONE);
	assert_int_equal(mr_snapshot_put(fd, "mallory", MR_SNAP_ACTIVE, &err), -1);
	close(fd);
	free(snap);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(snapshot_markers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
