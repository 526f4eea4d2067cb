/*
 * mail_private.h: helpers shared by maildir.c (delivery), held.c (held
 * mail and its release) and ids.c (delivery ids). Not for other modules.
 */
#ifndef MR_MAIL_PRIVATE_H
#define MR_MAIL_PRIVATE_H

#include "common/common.h"

/* Indexes into the fds filled by mail_maildir_open(). */
enum { MAILDIR_TMP = 0, MAILDIR_NEW = 1, MAILDIR_CUR = 2 };

#include <sys/types.h>

/* Who owns a Maildir. The daemon runs as root while the IMAP server reads
 * the mailbox as its user, so what root writes into a Maildir is given to
 * the owner of the Maildir's root folder. */
struct maildir_owner {
	uid_t uid;
	gid_t gid;
	int chown;  /* 1 when we are root and the Maildir belongs to another */
};

/* Opens tmp/, new/ and cur/ below maildir_fd, creating the missing ones
 * with mode 0700 and the Maildir's owner (and then fsyncing maildir_fd so
 * the new folders are durable). fds_r[MAILDIR_*] get the three fds, which
 * the caller closes with mail_maildir_close(); owner_r gets the owner that
 * mail_maildir_fill() gives new files. 0, or -1 with err (then no fd is left
 * open). */
int mail_maildir_open(int maildir_fd, int fds_r[3], struct maildir_owner *owner_r,
		      struct mr_error *err);
/* Fills the new file tmp/<name>, open for writing as *fd: gives it to the
 * Maildir's owner (when owner->chown says so), writes the len bytes of
 * msg, sets its times to *mtime (unless NULL), fsyncs and closes it (*fd
 * becomes -1 either way once closed). 0, or -1 with err naming the call
 * and tmp/<name>. */
int mail_maildir_fill(int *fd, const char *name, const struct maildir_owner *owner,
		      const void *msg, size_t len, const struct timespec *mtime,
		      struct mr_error *err);
/* 0 when user is a valid user name, else -1 with errno and err's errnum
 * EINVAL and the message "invalid user name" (the documented wording,
 * without strerror after it). */
int mail_check_user(const char *user, struct mr_error *err);
/* Closes the fds of mail_maildir_open() (accepts -1 entries). */
void mail_maildir_close(int fds[3]);

#endif
