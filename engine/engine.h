/*
 * engine.h: one user's whole restore: find the newest backup, extract it
 * into the work copy, sync the work copy against the damaged source,
 * activate it in one durable rename, and release the user's held mail
 * into the now active mailbox.
 *
 * How to use it (restore-user and the daemon's workers):
 *   1. engine_open(&config, &engine, &err) opens B, S and T and creates
 *      T/.mailrestore/ with the folders listed below, and the state folder.
 *   2. engine_list_affected() gives every user with a backup or a source
 *      folder; engine_user_active() tells whether mailrestore activated one.
 *   3. For each user: engine_job_init(&job, user), engine_run(engine, &job),
 *      read the result and job.stats / job.problems / job.reason, then
 *      engine_job_free(&job). Several jobs may run at once on threads (one
 *      job per user at a time). Or, for many users at once,
 *      engine_prepare() on worker threads and engine_activate_batch() on
 *      one activating thread (group commit of the activations).
 *   4. engine_activate_as_is() is the operator's `activate` of a user in
 *      attention: its work copy is taken as it stands.
 *
 * A Cyrus store (config.format MR_FORMAT_CYRUS): a user's mailbox is the
 * folder user/<disk> (or <h>/user/<disk>) of the spool partition S
 * (mr_cyrus_user_rel, common.h) instead of S/<user>, and goes to the same
 * place under T, which is laid out as a spool partition: "T/<user>" below
 * means that folder. The work copy, the attic and every marker keep the
 * user's name. Activation is the same one rename (the folders h/ and
 * h/user/ made first, durably, owned like the source's); a mailbox Cyrus
 * made there before the restore is not merged file by file (UIDs would
 * clash): the user goes to attention. The seen and subscription files of
 * cyrus_config_dir are published into cyrus_target_config_dir before the
 * rename (each by a durable rename; a newer one there is kept). Held mail
 * is not written into a Cyrus mailbox: hold mail in the MTA instead.
 *
 * Layout under T (docs/LAYOUT.md describes it for operators):
 *   T/<user>                      active users, complete, made in one rename
 *   T/.mailrestore/work/<user>    work copies being built
 *   T/.mailrestore/attic/<user>   what the sync removed, by relative path
 *   T/.mailrestore/tmp/<user>     scratch for files being written (wiped)
 *   T/.mailrestore/progress/<user>  "extracted" marker: the archive that was
 *                                 extracted completely (path, size, mtime)
 *                                 and the boot it was written in
 *   T/.mailrestore/discarded/<user>.<time>  a work copy whose fsync failed,
 *                                 set aside (the next run starts afresh)
 *   T/.mailrestore/damaged/<user>  a damaged backup wrote into the work
 *                                 copy: every later sync compares contents
 *   T/.mailrestore/locks/<user>   flock'd while a run works on the user
 *   T/.mailrestore/active/<user>  T/<user> was activated by mailrestore
 *   T/.mailrestore/affected       the affected users, sorted, one a line
 *                                 (engine_write_affected)
 *   T/.mailrestore/state          unless --state says otherwise: the held
 *                                 mail and delivery ids (mail/), the daemon's
 *                                 journal and time model (queue/)
 *
 * A user is active exactly when T/<user> exists and T/.mailrestore/active/
 * <user> records that mailrestore put it there. Activation: the work copy
 * is made durable (sync_make_durable), renamed with RENAME_NOREPLACE, T is
 * fsync'd, then the record is written and its folder fsync'd, and last the
 * held mail is released into T/<user> (all under the user's hold lock, so
 * no delivery slips between "not active" and "active"); a failed fsync
 * anywhere means "not done" (the job fails and runs again). kill -9
 * at any moment therefore leaves no T/<user> or a complete one; one without
 * its record is merged again on the next run (costly, never lossy).
 *
 * A T/<user> without a record (the mail server made it before the user was
 * restored) is merged, never skipped: the restore is built in the work
 * copy as usual, what T/<user> holds that it lacks is copied in
 * (engine_merge_tree), the work copy is made durable and exchanged with
 * T/<user> in one renameat2(RENAME_EXCHANGE); after T is fsync'd whatever
 * reached the old tree meanwhile is moved over too, and the old tree goes
 * to T/.mailrestore/attic/<user>/.replaced-<time>.
 */
#ifndef MR_ENGINE_H
#define MR_ENGINE_H

#include "common/common.h"
#include "restore/restore.h"
#include "sync/sync.h"

#include <stdatomic.h>
#include <stdint.h>

struct engine_config {
	const char *backups;   /* B; NULL when there are no backups */
	const char *source;    /* S, the read-only damaged partition */
	const char *target;    /* T, the spare disk */
	const char *state_dir; /* NULL: T/.mailrestore/state */
	int max_remove_pct;    /* the attic guard; < 0 means the default 50 */
	int min_remove_files;  /* its minimum count where no mailbox index decides;
	                        * 0 means the default 10, < 0 none */
	int preserve_owner;    /* < 0: when running as root */
	int dial_tone;         /* 1: engine_dial_tone() may give a user who is not
	                        * restored yet an empty Maildir T/<user>, and mail
	                        * for such a user goes straight into it (Maildir
	                        * only: refused with a Cyrus store) */
	enum mr_store_format format; /* AUTO (0): mr_store_detect() on S */
	/* Cyrus only (docs/LAYOUT.md, "A Cyrus spool"): */
	const char *cyrus_config_dir;  /* the damaged server's config directory
	                                * (read-only): user/<h>/<user>.seen and
	                                * .sub are restored with the user; NULL
	                                * none */
	const char *cyrus_target_config_dir; /* where the live Cyrus reads them;
	                                * required with cyrus_config_dir */
	const char *cyrus_mailboxes;   /* `ctl_mboxlist -d` output (or a flat
	                                * mailboxes.db): judges a folder gone
	                                * from the source; NULL none */
};

struct engine;

enum engine_phase {
	ENGINE_PHASE_IDLE = 0,
	ENGINE_PHASE_RESTORING,
	ENGINE_PHASE_SYNCING,
	ENGINE_PHASE_ACTIVATING,
	ENGINE_PHASE_DONE,
};

/* What engine_run() ends with. */
enum engine_result {
	ENGINE_ACTIVE = 0,     /* T/<user> is in place and durable */
	ENGINE_ATTENTION = 1,  /* needs an operator: job.reason says why */
	ENGINE_CANCELLED = 2,  /* job.cancel was set; the work copy resumes later */
	ENGINE_FAILED = 3,     /* a target-side error (ENOSPC, EIO, fsync): retry */
	ENGINE_READY = 4,      /* engine_prepare(): the work copy waits for
	                        * engine_activate_batch() */
};

struct engine_job {
	char user[MR_USER_NAME_MAX + 1];
	/* The four fields below are shared between threads (C11 atomics;
	 * relaxed order is enough: each is a value on its own).
	 * Set nonzero from another thread to stop at the next file boundary. */
	atomic_int cancel;
	/* Progress for live views (written by the job, read by others). */
	atomic_int phase;                 /* enum engine_phase */
	_Atomic uint64_t progress_done;   /* bytes done in the current phase */
	_Atomic uint64_t progress_total;  /* bytes expected (0 unknown) */
	/* Results. */
	int had_backup;                   /* a backup archive was found */
	int64_t backup_started;           /* the backup began at or after this (s):
					    * its birth time, else from its date folder or
					    * mtime; 0 unknown */
	int had_source;                   /* S/<user> could be opened */
	struct restore_stats restore;
	struct sync_stats sync;
	uint64_t released_mail;           /* held messages released into it */
	double durable_seconds;           /* its activation's wait for the work
	                                   * copy to be durable (the syncfs and
	                                   * fsync of the batch; 0 not reached) */
	struct mr_problems problems;
	char reason[1024];                /* attention/failure reason, one line */
	int errnum;                       /* on ENGINE_FAILED: errno of the
	                                   * failing call when known, else 0
	                                   * (the daemon tells an error that
	                                   * may clear, ENOSPC, EIO, from one
	                                   * that cannot, ENOTDIR, ENAMETOOLONG) */
	int lock_fd;                      /* the user's lock, held from
	                                   * engine_prepare() to the activation */
};

/* Opens the engine. 0 or -1 with err. */
int engine_open(const struct engine_config *config, struct engine **engine_r,
		struct mr_error *err);
/* Frees *engine and sets it NULL. Accepts NULL. */
void engine_close(struct engine **engine);

/* File descriptors the daemon and tools need (owned by the engine). */
int engine_target_fd(const struct engine *engine);
int engine_state_fd(const struct engine *engine);
int engine_source_fd(const struct engine *engine);

/* The held-mail store (owned by the engine). */
struct mail_store *engine_mail_store(struct engine *engine);

/* Lists every affected user: a valid name with a backup in B or a folder in
 * S, sorted, unique. Free with mr_names_free(). 0 or -1 with err. */
int engine_list_affected(struct engine *engine, char ***names_r, size_t *n_r,
			 struct mr_error *err);

/* Brings into folder to_fd what folder from_fd holds that to_fd lacks (a
 * Maildir message by its unique base name in cur or new, anything else by
 * its path; the mail server's index files and Maildir tmp never), copying
 * (move 0) or renaming (move 1, same file system); nothing in to_fd is
 * ever replaced. Counts what it brought in *entries_r. 0, or -1 with err. */
int engine_merge_tree(int from_fd, int to_fd, int move, uint64_t *entries_r,
		      struct mr_error *err);

/* A T/<user> that exists but has no activation record was activated by an
 * older mailrestore when the caller knows so (the daemon's journal says
 * active): records it. 1 recorded, 0 no T/<user>, -1 with err. */
int engine_adopt_active(struct engine *engine, const char *user, struct mr_error *err);

/* Writes T/.mailrestore/affected: names[0..n) (any order; sorted here, in
 * place), one a line in byte order, so that `login` can answer from the
 * disk when the daemon is gone (cli_disk_verdict in cli/cmd_login.c). Written to a
 * temporary name, fsync'd, renamed, folder fsync'd. 0, or -1 with err. */
int engine_write_affected(struct engine *engine, char **names, size_t n, struct mr_error *err);

/* Dial tone (engine_config.dial_tone): gives user, affected and not
 * active, an empty Maildir T/<user> (cur, new, tmp; owned like S/<user>
 * when running as root) to log in to at once. Its history comes later by
 * the merge of a T/<user> mailrestore did not activate. 1 made, 0 T/<user>
 * was there already, -1 with err. */
int engine_dial_tone(struct engine *engine, const char *user, struct mr_error *err);

/* 1 when T/<user> is a dial-tone mailbox: dial tone is on and T/<user>
 * exists without an activation record; 0 when not (or engine is NULL). */
int engine_user_dial_tone(struct engine *engine, const char *user);

/* What the start-up check counts: user folders on S, users with a backup
 * in B, and users with both. */
struct engine_census {
	size_t on_source;
	size_t with_backup;
	size_t both;
};
/* Below this many users with a backup only an empty source is suspicious. */
#define ENGINE_CENSUS_MIN_USERS 8
/* With at least ENGINE_CENSUS_MIN_USERS users with a backup, fewer than
 * 1/ENGINE_CENSUS_FRACTION of them having a source folder is suspicious. */
#define ENGINE_CENSUS_FRACTION 4

/* Lists S and B once and counts them into *census_r. 0, or -1 with err when
 * a listing failed. */
int engine_source_census(struct engine *engine, struct engine_census *census_r,
			 struct mr_error *err);

/* 1 when the census says S is most likely not the partition it should be
 * (not mounted, or the wrong folder): users have backups but S holds no
 * user folder at all, or far fewer of them than have backups. A real
 * outage where most folders were lost is the rare case the operator
 * overrides. 0 otherwise. */
int engine_census_suspicious(const struct engine_census *c);

/* The start-up check of daemon and restore-user: the census, and 1 when
 * it is suspicious (err then says so in words an operator can act on), 0
 * when not, -1 with err when a listing failed. */
int engine_check_source(struct engine *engine, struct engine_census *census_r,
			struct mr_error *err);

/* The background order's key: the size of the user's newest backup archive
 * (or 0 when it has none). */
uint64_t engine_user_size_hint(struct engine *engine, const char *user);

/* The store format the engine settled on (never AUTO). */
enum mr_store_format engine_format(const struct engine *engine);
/* The user's mailbox folder relative to S and T into
 * buf[MR_CYRUS_REL_MAX + 1]: the user's name for Maildir, the spool path
 * for Cyrus. NULL for an invalid name. */
const char *engine_user_rel(const struct engine *engine, const char *user, char *buf);

/* Returns 1 when T/<user> exists (active), 0 when not, -1 on error. */
int engine_user_active(struct engine *engine, const char *user, struct mr_error *err);

void engine_job_init(struct engine_job *job, const char *user);
void engine_job_free(struct engine_job *job);

/* Runs a user's whole restore (see the top of this file). An already active
 * user returns ENGINE_ACTIVE at once. Never returns anything else than the
 * values of enum engine_result; job->reason says why on ATTENTION/FAILED. */
enum engine_result engine_run(struct engine *engine, struct engine_job *job);

/* engine_run() in two steps, so that callers running many users keep the
 * CPU busy while finished ones are made durable, and activate them in
 * batches (one syncfs and one fsync of T for the batch):
 * engine_prepare() does everything but the activation and returns
 * ENGINE_READY with the user's lock kept in job->lock_fd, or any other
 * result as engine_run() would. engine_activate_batch() activates READY
 * jobs together and sets results[i] to ENGINE_ACTIVE, ENGINE_ATTENTION or
 * ENGINE_FAILED (with jobs[i]->reason), releasing their locks. */
enum engine_result engine_prepare(struct engine *engine, struct engine_job *job);
void engine_activate_batch(struct engine *engine, struct engine_job **jobs, size_t n,
			   enum engine_result *results);

/* The operator accepts a user in attention: activates its work copy as it
 * is and releases its held mail into it; *released_r (may be NULL) gets the
 * number of held messages released. 0, or -1 with err (no work copy, I/O
 * error). */
int engine_activate_as_is(struct engine *engine, const char *user, uint64_t *released_r,
			  struct mr_error *err);

/* After a crash: releases mail that was held for users who are active now
 * (the crash fell between the activation rename and forgetting the held
 * files) and wipes the scratch folders. Each user on its own: a user whose
 * release or wipe fails is logged and keeps its held mail, the others go
 * on. 0, or -1 with err only when the scratch folder or the held-mail
 * store cannot be listed at all. */
int engine_recover(struct engine *engine, struct mr_error *err);

/* Delivers a message for user: into T/<user> when active, else held
 * durably (under the user's hold lock, so activation can't slip between
 * the check and the hold). *held_r is 1 when it was held. 0, or -1 with
 * err. The caller must have checked that the user is affected. */
int engine_deliver(struct engine *engine, const char *user, const void *msg, size_t len,
		   int *held_r, struct mr_error *err);
/* engine_deliver with the delivery agent's id for the message (NULL: none):
 * a delivery whose id was stored before (see mail_id_begin in mail.h) is
 * not stored again; it succeeds with *repeat_r (may be NULL) set to 1. */
int engine_deliver_id(struct engine *engine, const char *user, const char *id,
		      const void *msg, size_t len, int *held_r, int *repeat_r,
		      struct mr_error *err);

/* "restoring", "syncing", ... for a phase. */
const char *engine_phase_name(int phase);

#endif
