/*
 * mail.h: Maildir delivery, and mail held for users who are not active yet.
 *
 * How to use it:
 *   1. mail_store_open(state_dirfd, &store, &err): the held mail lives in
 *      <state>/held/<user>/, one file per message.
 *   2. A message for an active user: mail_deliver_maildir(maildir_fd, ...)
 *      writes it to tmp/, fsyncs it, links it into new/ under a unique name
 *      and fsyncs new/ (the Dovecot/qmail way).
 *   3. A message for a user not active yet: take mail_hold_lock(), check
 *      activeness, mail_hold(), mail_hold_unlock(). mail_hold() returns only
 *      when the message is durable: lz4 frame (content checksum on) in a temp
 *      file, fsync, rename to its sequence number, fsync of the folder.
 *   4. Activation (engine.c): mail_hold_lock(); mail_release() into the
 *      work copy's new/ (names derived from the held sequence number, so a
 *      release repeated after a crash skips what is already there, in new/
 *      or cur/); make the copy durable; rename it active; mail_hold_unlock();
 *      mail_release_done() forgets the held files.
 *
 * Held file format: "<seq>.mrmail" = header {magic "MRML", major 1, minor 0,
 * header size, arrival time (ns), message length, xxh3-64 of the message}
 * followed by one lz4 frame with content checksum. A file that fails its
 * checks is reported, never delivered half, and never deleted.
 */
#ifndef MR_MAIL_H
#define MR_MAIL_H

#include "common/common.h"

#include <stdint.h>

struct mail_store;

/* Opens (creating) <state>/held below state_dirfd. 0 or -1 with err. */
int mail_store_open(int state_dirfd, struct mail_store **store_r, struct mr_error *err);
/* Frees *store and sets it NULL. Accepts NULL. */
void mail_store_close(struct mail_store **store);

/* Delivers msg (len bytes) into the Maildir rooted at maildir_fd (tmp/, new/
 * and cur/ created when missing): tmp/ then new/, unique name, fsync of the
 * file and of new/. name_r (may be NULL, len name_len) gets the file name.
 * 0 or -1 with err (the message is then not delivered and tmp/ is clean). */
int mail_deliver_maildir(int maildir_fd, const void *msg, size_t len, char *name_r,
			 size_t name_len, struct mr_error *err);

/* Locks user's held mail against concurrent hold/release (flock, so it works
 * across processes). *lockfd_r gets the lock to pass to mail_hold_unlock(). */
int mail_hold_lock(struct mail_store *store, const char *user, int *lockfd_r,
		   struct mr_error *err);
void mail_hold_unlock(int lockfd);

/* Holds msg for user, durably, in arrival order. Call with the user's hold
 * lock held. seq_r (may be NULL) gets its sequence number. 0 or -1. */
int mail_hold(struct mail_store *store, const char *user, const void *msg, size_t len,
	      uint64_t *seq_r, struct mr_error *err);

/* Counts user's held messages and their (uncompressed) bytes. 0 or -1. */
int mail_held_count(struct mail_store *store, const char *user, uint64_t *count_r,
		    uint64_t *bytes_r, struct mr_error *err);
/* Total held messages of every user (for status). */
int mail_held_total(struct mail_store *store, uint64_t *count_r, struct mr_error *err);

/* Writes every held message of user, in arrival order, into maildir_fd's
 * new/ (created when missing), each checked (lz4 frame checksum and xxh3),
 * fsync'd, with its arrival time as mtime; then fsyncs new/. Messages
 * already released by an earlier, interrupted call are skipped. Call with
 * the hold lock held. released_r gets the number of messages now in place.
 * Returns 0, or -1 with err (a corrupt held file stops the release and is
 * named; nothing is deleted). */
int mail_release(struct mail_store *store, const char *user, int maildir_fd,
		 uint64_t *released_r, struct mr_error *err);

/* Deletes user's held files after the release is durable in an active
 * mailbox. 0 or -1. */
int mail_release_done(struct mail_store *store, const char *user, struct mr_error *err);

/* Lists users that have held mail (malloc'd names; free with
 * mail_names_free). 0 or -1. */
int mail_held_users(struct mail_store *store, char ***names_r, size_t *n_r,
		    struct mr_error *err);
void mail_names_free(char **names, size_t n);

#endif
