/*
 * mail_private.h: helpers shared by maildir.c (delivery) and held.c (held
 * mail and its release). Not for other modules.
 */
#ifndef MR_MAIL_PRIVATE_H
#define MR_MAIL_PRIVATE_H

#include "common/common.h"

/* Indexes into the fds filled by mail_maildir_open(). */
enum { MAILDIR_TMP = 0, MAILDIR_NEW = 1, MAILDIR_CUR = 2 };

/* Opens tmp/, new/ and cur/ below maildir_fd, creating the missing ones
 * with mode 0700 (and then fsyncing maildir_fd so the new folders are
 * durable). fds_r[MAILDIR_*] get the three fds, which the caller closes
 * with mail_maildir_close(). 0, or -1 with err (then no fd is left open). */
int mail_maildir_open(int maildir_fd, int fds_r[3], struct mr_error *err);
/* Closes the fds of mail_maildir_open() (accepts -1 entries). */
void mail_maildir_close(int fds[3]);

#endif
