/*
 * snapshot.c: what a client last learned from the daemon, for when the
 * daemon cannot be reached (common.h, "what a client last learned"): marker
 * files DIR/active/<user> and DIR/unaffected/<user>. libc only: the lean
 * login binary (cli/hook/) links it.
 */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const snap_dirs[] = { "active", "unaffected" };

int mr_snapshot_open(const char *dir, int create, struct mr_error *err)
{
	int fd, i;

	if (create && mkdir(dir, 0755) < 0 && errno != EEXIST) {
		mr_error_set(err, errno, "mkdir(%s) failed", dir);
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		mr_error_set(err, errno, "open(%s) failed", dir);
		return -1;
	}
	for (i = 0; create && i < 2; i++)
		if (mkdirat(fd, snap_dirs[i], 0755) < 0 && errno != EEXIST) {
			mr_error_set(err, errno, "mkdir(%s/%s) failed", dir, snap_dirs[i]);
			close(fd);
			return -1;
		}
	return fd;
}

/* 1 when DIR/<sub>/<user> is there. */
static int marked(int dirfd, const char *sub, const char *user)
{
	struct stat st;
	int sfd, rc;

	sfd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return 0;
	rc = fstatat(sfd, user, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	close(sfd);
	return rc;
}

enum mr_snap mr_snapshot_get(int dirfd, const char *user)
{
	if (dirfd < 0 || !mr_user_name_valid(user))
		return MR_SNAP_NONE;
	if (marked(dirfd, snap_dirs[0], user))
		return MR_SNAP_ACTIVE;
	if (marked(dirfd, snap_dirs[1], user))
		return MR_SNAP_UNAFFECTED;
	return MR_SNAP_NONE;
}

int mr_snapshot_put(int dirfd, const char *user, enum mr_snap what, struct mr_error *err)
{
	const char *sub;
	int sfd, fd;

	if (!mr_user_name_valid(user)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	if (what != MR_SNAP_ACTIVE && what != MR_SNAP_UNAFFECTED) {
		mr_error_set(err, EINVAL, "snapshot: nothing to remember of %s", user);
		return -1;
	}
	sub = snap_dirs[what == MR_SNAP_ACTIVE ? 0 : 1];
	/* The common case (asked again) writes nothing. */
	if (marked(dirfd, sub, user) || (what == MR_SNAP_UNAFFECTED &&
					 marked(dirfd, snap_dirs[0], user)))
		return 0;
	sfd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0) {
		mr_error_set(err, errno, "open(%s) in the snapshot failed", sub);
		return -1;
	}
	fd = openat(sfd, user, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		mr_error_set(err, errno, "creating %s/%s in the snapshot failed", sub, user);
		close(sfd);
		return -1;
	}
	close(fd);
	close(sfd);
	return 0;
}
