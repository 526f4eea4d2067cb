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
 *   4. Activation (engine.c): make the work copy durable; mail_hold_lock();
 *      rename it active (T/<user>) and make that durable; mail_release()
 *      into the active mailbox's new/ (names derived from the held sequence
 *      number, so a release repeated after a crash skips what is already
 *      there, in new/ or cur/); mail_release_done() forgets the held files;
 *      mail_hold_unlock().
 *
 * Held file format (integers little-endian): "<seq>.mrmail", seq a
 * zero-padded 20-digit decimal so names sort in arrival order, holding
 *     0  "MRML"                 magic
 *     4  u16 major = 1          a reader refuses any other major
 *     6  u16 minor = 0          later minors only add header fields
 *     8  u32 header size = 44   the frame starts here
 *    12  u64 arrival time       Unix time in nanoseconds
 *    20  u64 message length     bytes, uncompressed
 *    28  u64 xxh3-64 of the message
 *    36  u64 xxh3-64 of the header bytes before it (always the header's
 *        last 8 bytes), so a damaged arrival time or length is caught too
 * followed by one lz4 frame with content checksum. A file that fails any
 * check is reported (errnum EBADMSG, or EPROTONOSUPPORT for an unknown
 * major), never delivered half, and never deleted.
 *
 * Every function validates user with mr_user_name_valid() (it becomes a path
 * component) and fails with errnum EINVAL, "invalid user name", otherwise.
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

/* How much mail may be held, so held mail never fills the disk that the
 * restores need. Bytes are bytes on disk (compressed). 0 means the default
 * given with each field. */
struct mail_limits {
	uint64_t user_messages;   /* per user; default 1000 */
	uint64_t user_bytes;      /* per user; default 256 MiB */
	uint64_t total_messages;  /* over every user; default 1000000 */
	uint64_t total_bytes;     /* over every user; default a fifth of the
				   * size of the file system holding held/ */
	uint64_t reserve_bytes;   /* free space a hold must leave on that file
				   * system; default 5% of its size, at least
				   * 64 MiB */
};
/* Sets the limits mail_hold() keeps (copied). Without a call: the
 * defaults. Call before the store is shared between threads. */
void mail_store_set_limits(struct mail_store *store, const struct mail_limits *limits);

/* Delivers msg (len bytes) into the Maildir rooted at maildir_fd (tmp/, new/
 * and cur/ created 0700 when missing): written to tmp/ under a unique name
 * "<sec>.M<usec>P<pid>Q<counter>.<host>,S=<len>", fsync'd, linked into new/
 * (renamed where hard links fail), new/ fsync'd. name_r (may be NULL, size
 * name_len, truncated when short) gets the file name. Thread safe. 0 or -1
 * with err (the message is then not delivered: nothing of it is left in
 * tmp/ or new/; err->errnum is ENOSPC, EIO, ... of the failing call). */
int mail_deliver_maildir(int maildir_fd, const void *msg, size_t len, char *name_r,
			 size_t name_len, struct mr_error *err);

/* Locks user's held mail against concurrent hold/release: flock(LOCK_EX) on
 * <state>/held/<user>.lock, blocking, so it works across processes and
 * between threads (each call opens its own descriptor). *lockfd_r gets the
 * lock to pass to mail_hold_unlock(). 0 or -1 with err. */
int mail_hold_lock(struct mail_store *store, const char *user, int *lockfd_r,
		   struct mr_error *err);
void mail_hold_unlock(int lockfd);

/* Holds msg for user, durably, in arrival order: seq = 1 + the highest
 * held; written to a temp file, fsync'd, renamed to <seq>.mrmail, the
 * folder fsync'd. Call with the user's hold lock held. seq_r (may be NULL)
 * gets its sequence number. 0, or -1 with err: then nothing of the message
 * is visible (ENOSPC, EIO of a failed write or fsync: not durable, so the
 * caller must not answer ok). A message beyond a limit of mail_limits is
 * refused before anything is written: errnum EDQUOT ("held mail limit
 * reached: ...") for the counts and sizes, ENOSPC for the free space
 * reserve; the sender should try again later. */
int mail_hold(struct mail_store *store, const char *user, const void *msg, size_t len,
	      uint64_t *seq_r, struct mr_error *err);

/* Counts user's held messages and their (uncompressed) bytes; a user with
 * nothing held counts 0. count_r and bytes_r may be NULL (no header is read
 * without bytes_r). 0 or -1 with err. */
int mail_held_count(struct mail_store *store, const char *user, uint64_t *count_r,
		    uint64_t *bytes_r, struct mr_error *err);
/* Total held messages of every user (for status). 0 or -1 with err. */
int mail_held_total(struct mail_store *store, uint64_t *count_r, struct mr_error *err);

/* Writes every held message of user, in arrival order, into maildir_fd's
 * new/ (tmp/, new/, cur/ created when missing), each checked (header
 * checksum, lz4 frame checksum, xxh3), written via tmp/ and fsync'd, with
 * its arrival time as mtime, under the deterministic name
 * "<arrival sec>.M<usec>P0Q<seq>.mailrestore-held,S=<len>"; then fsyncs
 * new/. A message whose name (up to ",S=") is already in new/ or cur/ (with
 * any ",..." or ":2,..." after it) was released by an earlier, interrupted
 * call and is skipped. The held files stay until mail_release_done(). Call with
 * the hold lock held. released_r gets the number of messages now in place.
 * Returns 0, or -1 with err (a corrupt held file stops the release and is
 * named; nothing is deleted). */
int mail_release(struct mail_store *store, const char *user, int maildir_fd,
		 uint64_t *released_r, struct mr_error *err);

/* Deletes user's held files and folder (then fsyncs held/) after the
 * release is durable in an active mailbox. Nothing held: 0. 0 or -1. */
int mail_release_done(struct mail_store *store, const char *user, struct mr_error *err);

/* Lists users that have held mail, sorted (malloc'd names; free with
 * mr_names_free). 0 or -1 with err. */
int mail_held_users(struct mail_store *store, char ***names_r, size_t *n_r,
		    struct mr_error *err);

/* ---- delivery ids: a repeated delivery is stored once ----------------
 *
 * A mail transfer agent that lost the answer to a delivery (the daemon was
 * killed between storing the message and replying) delivers it again. With
 * the id it gave (Postfix: queue id and recipient), the second delivery is
 * recognised. Per user, <state>/ids/<user> (format in ids.c: magic "MRID",
 * version 1.0, a checksum per record, a torn tail cut off) records:
 *   1. "begin" for the id, with the message's xxh3 and length, fsync'd
 *      before the message is stored;
 *   2. "done", fsync'd after the message is safe.
 * A repeat finds "done": nothing to store. It finds only "begin": the first
 * attempt stopped between 1 and 2, and the message may or may not be there;
 * the caller looks for it (mail_held_find, mail_maildir_find) and stores it
 * only when it is absent. So a crash never loses a message, and the only
 * double left is a first copy that the user moved or deleted (or that was
 * released) in the moment between the crash and the repeat.
 * Ids are forgotten after MAIL_IDS_KEEP_SECONDS (Postfix gives up on a
 * message after 5 days by default) and at most 8192 are kept per user.
 * Call these with the user's hold lock held. */
#define MAIL_IDS_KEEP_SECONDS (7 * 86400)

struct mail_ids;
enum mail_id_seen {
	MAIL_ID_NEW = 0,      /* never seen: "begin" is now recorded */
	MAIL_ID_DONE = 1,     /* stored before: nothing to do */
	MAIL_ID_PENDING = 2,  /* "begin" without "done": look for the message */
};
struct mail_id_pending {
	uint64_t since_ns;  /* when the first attempt began (Unix ns) */
	uint64_t msg_hash;  /* xxh3-64 of that message */
	uint64_t msg_len;
};

/* Opens (creating) <state>/ids below state_dirfd. 0 or -1 with err. */
int mail_ids_open(int state_dirfd, struct mail_ids **ids_r, struct mr_error *err);
/* Frees *ids and sets it NULL. Accepts NULL. */
void mail_ids_close(struct mail_ids **ids);
/* Looks id (any non-empty string) up for user; when it is new, records
 * "begin" (with msg's hash and length, time now_ns) durably. *seen_r says
 * which; pending_r (may be NULL) is filled for MAIL_ID_PENDING. 0, or -1
 * with err (nothing may be stored then: the caller answers "try later"). */
int mail_id_begin(struct mail_ids *ids, const char *user, const char *id, const void *msg,
		  size_t len, uint64_t now_ns, enum mail_id_seen *seen_r,
		  struct mail_id_pending *pending_r, struct mr_error *err);
/* Records "done" for id, durably. 0 or -1 with err (the message is safe
 * anyway: a repeat then finds "begin" and the message). */
int mail_id_done(struct mail_ids *ids, const char *user, const char *id, uint64_t now_ns,
		 struct mr_error *err);

/* 1 when user has a held message of len bytes with xxh3-64 hash that
 * arrived at or after since_ns, 0 when not, -1 with err. */
int mail_held_find(struct mail_store *store, const char *user, uint64_t hash, uint64_t len,
		   uint64_t since_ns, struct mr_error *err);
/* 1 when the Maildir at maildir_fd has in new/ or cur/ a message of len
 * bytes (",S=<len>" in its name), modified at or after since_ns, whose
 * content has xxh3-64 hash; 0 when not; -1 with err. Reads every such
 * candidate: meant for the rare repeat after a crash. */
int mail_maildir_find(int maildir_fd, uint64_t hash, uint64_t len, uint64_t since_ns,
		      struct mr_error *err);

#endif
