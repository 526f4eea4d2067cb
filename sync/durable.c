/*
 * durable.c: making a finished work copy durable before it is renamed into
 * place. One syncfs() does it: it writes back every dirty file and inode of
 * the file system and commits the journal, so the folders' entries (the
 * renames of the extraction and the sync) are on disk with the data; and
 * since Linux 5.8 it reports a write-back error that happened after
 * dst_dirfd was opened. An fsync of each folder on top would cost one
 * journal commit per folder for nothing (the benchmark measured ~40 per
 * user). Any failure means "not done": the caller sets the work copy aside.
 */
#include "sync/sync_private.h"

#include <errno.h>

/* Makes everything below dst_dirfd durable. See sync.h. */
int sync_make_durable(int dst_dirfd, struct mr_error *err)
{
	if (mr_io->syncfs(dst_dirfd) < 0) {
		mr_error_set(err, errno, "syncfs of the work copy failed");
		return -1;
	}
	return 0;
}
