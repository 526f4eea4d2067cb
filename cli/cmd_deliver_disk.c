/*
 * cmd_deliver_disk.c: `deliver` when no daemon answers and the target is
 * known (--target T or MAILRESTORE_TARGET): the end of the outage, when the
 * daemon is stopped but the MTA's transport is still wired. The verdict is
 * the login hook's (cli_disk_verdict): a user mailrestore activated, or one
 * the outage never touched, gets the message in its Maildir T/<user>; a
 * touched user not active yet is told to try later (75), so nothing ever
 * lands in a mailbox before its restore. A delivery id is honoured through
 * the same id records the daemon keeps (T/.mailrestore/state/ids), so a
 * repeat is stored once here too.
 */
#include "cli/cli.h"
#include "common/common.h"
#include "mail/mail.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int cli_deliver_from_disk(const char *target, const char *user, const char *id, const void *msg,
			  size_t len)
{
	struct mr_error err = { 0 };
	struct mail_ids *ids = NULL;
	struct mail_store *store = NULL;
	struct mail_id_pending pending;
	enum mail_id_seen seen = MAIL_ID_NEW;
	int active, r, tfd = -1, ufd = -1, sfd = -1, lock = -1, rc = MR_EX_TEMPFAIL;

	r = cli_disk_verdict(target, user, &active);
	if (r < 0) {
		cli_error("deliver", "no daemon answers, and the target %s cannot be opened: %s",
			  target, strerror(errno));
		return MR_EX_TEMPFAIL;
	}
	if (r == 0) {
		cli_error("deliver", "%s is not restored yet and no daemon answers: try again later",
			  user);
		return MR_EX_TEMPFAIL;
	}
	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd >= 0) {
		char kind[8] = { 0 };
		int kfd = openat(tfd, ".mailrestore/store", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (kfd >= 0) {
			if (read(kfd, kind, sizeof(kind) - 1) < 0)
				kind[0] = '\0';
			close(kfd);
		}
		/* a Cyrus spool takes mail only through Cyrus: the MTA keeps
		 * it queued (75) until it is sent to Cyrus's LMTP */
		if (strncmp(kind, "cyrus", 5) == 0) {
			cli_error("deliver", "%s is a Cyrus spool: deliver writes Maildir; deliver "
				  "to Cyrus over LMTP instead", target);
			goto out;
		}
		ufd = openat(tfd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (ufd < 0) {
		cli_error("deliver", "%s has no mailbox in %s: not a user of this outage", user,
			  target);
		rc = MR_EX_NOUSER;
		goto out;
	}
	if (id != NULL) {
		sfd = openat(tfd, ".mailrestore/state", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* The id records want the user's hold lock: other deliveries
		 * of the same user may run at once. */
		if (sfd < 0 || mail_store_open(sfd, &store, &err) < 0 ||
		    mail_hold_lock(store, user, &lock, &err) < 0 || mail_ids_open(sfd, &ids, &err) < 0 ||
		    mail_id_begin(ids, user, id, msg, len, now_ns(), &seen, &pending, &err) < 0) {
			cli_error("deliver", "delivery ids in %s/.mailrestore/state: %s", target,
				  err.msg[0] ? err.msg : strerror(errno));
			goto out;
		}
		if (seen == MAIL_ID_DONE) {
			rc = MR_EX_OK;
			goto out;
		}
		if (seen == MAIL_ID_PENDING) {
			r = mail_maildir_find(ufd, pending.msg_hash, pending.msg_len, pending.since_ns,
					      &err);
			if (r < 0) {
				cli_error("deliver", "%s", err.msg);
				goto out;
			}
			if (r == 1) {
				mail_id_done(ids, user, id, now_ns(), NULL);
				rc = MR_EX_OK;
				goto out;
			}
		}
	}
	if (mail_deliver_maildir(ufd, msg, len, NULL, 0, &err) < 0) {
		cli_error("deliver", "%s", err.msg);
		rc = err.errnum == ENOSPC ? MR_EX_TEMPFAIL : MR_EX_IOERR;
		goto out;
	}
	if (ids != NULL)
		mail_id_done(ids, user, id, now_ns(), NULL);
	rc = MR_EX_OK;
out:
	mail_ids_close(&ids);
	if (lock >= 0)
		mail_hold_unlock(lock);
	mail_store_close(&store);
	if (sfd >= 0)
		close(sfd);
	if (ufd >= 0)
		close(ufd);
	if (tfd >= 0)
		close(tfd);
	return rc;
}
