/*
 * engine.c: one user's whole restore (engine.h): newest backup -> work
 * copy -> sync against the source -> held mail released -> durable rename
 * into T/<user>.
 */
#include "engine/engine.h"
#include "mail/mail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

struct engine {
	int backups_fd;   /* -1 when there are no backups */
	struct restore_index *bindex;   /* B read once; NULL without backups */
	int source_fd;
	int target_fd;
	int own_fd;       /* T/.mailrestore, the engine's own folder on T */
	int work_fd, attic_fd, tmp_fd, progress_fd;
	int discarded_fd; /* work copies whose durability failed */
	int locks_fd;     /* one lock file per user being worked on */
	int active_fd;    /* active/<user>: T/<user> was activated by us */
	int damaged_fd;   /* damaged/<user>: that work copy got bytes from a
			   * backup found damaged (see mark_damaged) */
	int state_fd;
	int max_remove_pct;
	int min_remove_files;
	int preserve_owner;
	int dial_tone;
	enum mr_store_format format;
	enum mr_cyrus_hash cyrus_hash;  /* the spool's layout, S's and T's */
	int cfg_src_fd, cfg_dst_fd;      /* Cyrus config folders, -1 none */
	struct sync_cyrus_mboxes mboxes; /* --cyrus-mailboxes */
	int have_mboxes;
	struct mail_store *mail;
	struct mail_ids *ids;  /* delivery ids: a repeat is stored once */
};

static int open_or_make_dir(int dirfd, const char *name, struct mr_error *err)
{
	int fd;

	if (mr_io->mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST) {
		mr_error_set(err, errno, "mkdir(%s) failed", name);
		return -1;
	}
	fd = mr_io->openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		mr_error_set(err, errno, "open(%s) failed", name);
	return fd;
}

/* The store: its format (found on S unless given), and for Cyrus the
 * spool's layout (S's, else T's, else hashimapspool's default), the
 * config folders and the mailbox list. 0 or -1 with err. */
static int open_store(struct engine *e, const struct engine_config *config,
		      struct mr_error *err)
{
	e->format = config->format != MR_FORMAT_AUTO ? config->format
						     : mr_store_detect(e->source_fd);
	if (e->format != MR_FORMAT_CYRUS) {
		if (config->cyrus_config_dir || config->cyrus_target_config_dir ||
		    config->cyrus_mailboxes) {
			mr_error_set(err, EINVAL, "the --cyrus-* options need a Cyrus store "
				     "(--format cyrus, or a source that holds cyrus.header files)");
			return -1;
		}
		return 0;
	}
	if (config->dial_tone) {
		mr_error_set(err, EINVAL, "--dial-tone gives an empty Maildir: not for a Cyrus "
			     "store (let Cyrus create the mailbox, or hold mail in the MTA)");
		return -1;
	}
	e->cyrus_hash = mr_cyrus_detect_hash(e->source_fd);
	if (e->cyrus_hash == MR_CYRUS_HASH_UNKNOWN)
		e->cyrus_hash = mr_cyrus_detect_hash(e->target_fd);
	if (e->cyrus_hash == MR_CYRUS_HASH_UNKNOWN)
		e->cyrus_hash = MR_CYRUS_HASH_SIMPLE;
	if ((config->cyrus_config_dir == NULL) != (config->cyrus_target_config_dir == NULL)) {
		mr_error_set(err, EINVAL, "--cyrus-config-dir and --cyrus-target-config-dir go "
			     "together (the damaged server's and the live server's)");
		return -1;
	}
	if (config->cyrus_config_dir != NULL) {
		e->cfg_src_fd = mr_open_dir_path(config->cyrus_config_dir, 0, err);
		if (e->cfg_src_fd < 0) {
			mr_error_prefix(err, "--cyrus-config-dir");
			return -1;
		}
		e->cfg_dst_fd = mr_open_dir_path(config->cyrus_target_config_dir, 0, err);
		if (e->cfg_dst_fd < 0) {
			mr_error_prefix(err, "--cyrus-target-config-dir");
			return -1;
		}
	}
	if (config->cyrus_mailboxes != NULL) {
		if (sync_cyrus_mboxes_load(config->cyrus_mailboxes, &e->mboxes, err) < 0) {
			mr_error_prefix(err, "--cyrus-mailboxes");
			return -1;
		}
		e->have_mboxes = 1;
	}
	return 0;
}

enum mr_store_format engine_format(const struct engine *engine)
{
	return engine->format;
}

const char *engine_user_rel(const struct engine *engine, const char *user, char *buf)
{
	if (!mr_user_name_valid(user))
		return NULL;
	if (engine->format == MR_FORMAT_CYRUS)
		return mr_cyrus_user_rel(engine->cyrus_hash, user, buf);
	snprintf(buf, MR_CYRUS_REL_MAX + 1, "%s", user);
	return buf;
}

/* Where a user's mailbox sits: the folder that holds it (dirfd: S's or
 * T's root fd, borrowed, or a folder below it, owned) and its name there;
 * rel the whole relative path, for messages. */
struct place {
	int dirfd;
	int owned;
	const char *name;              /* points into rel */
	char rel[MR_CYRUS_REL_MAX + 1];
};

static void place_close(struct place *p)
{
	if (p->owned)
		mr_close(p->dirfd);
	p->dirfd = -1;
	p->owned = 0;
}

/* Makes folder name below dirfd when missing, owned and moded like the
 * source's folder src_rel, or else like T (owners only as root), durably.
 * The fd of the folder, or -1 with err. */
static int make_spool_dir(struct engine *e, int dirfd, const char *name, const char *src_rel,
			  struct mr_error *err)
{
	struct stat st;
	int have = mr_io->fstatat(e->source_fd, src_rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		   S_ISDIR(st.st_mode);
	int fd;

	/* not on S (a user only in the backups): like T itself, which the
	 * operator gave to Cyrus */
	if (!have)
		have = mr_io->fstat(e->target_fd, &st) == 0;

	if (mr_io->mkdirat(dirfd, name, have ? (st.st_mode & 07777) : 0750) == 0) {
		if (have && e->preserve_owner &&
		    mr_io->fchownat(dirfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
			mr_error_set(err, errno, "chown(T/%s) failed", src_rel);
			return -1;
		}
		if (have)
			mr_io->fchmodat(dirfd, name, st.st_mode & 07777, 0);
		if (mr_fsync_dir_at(dirfd, ".", err) < 0)
			return -1;
	} else if (errno != EEXIST) {
		mr_error_set(err, errno, "mkdir(T/%s) failed", src_rel);
		return -1;
	}
	fd = mr_io->openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		mr_error_set(err, errno, "open(T/%s) failed", src_rel);
	return fd;
}

/* Finds user's place on S (on_target 0) or T (1; create: its parent
 * folders are made when missing). 0, 1 when the parent folder does not
 * exist (nor the mailbox, then), or -1 with err. */
static int user_place(struct engine *e, int on_target, const char *user, int create,
		      struct place *p, struct mr_error *err)
{
	int root = on_target ? e->target_fd : e->source_fd;
	char *slash;

	memset(p, 0, sizeof(*p));
	p->dirfd = -1;
	if (engine_user_rel(e, user, p->rel) == NULL) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	if (e->format != MR_FORMAT_CYRUS) {
		p->dirfd = root;
		p->name = p->rel;
		return 0;
	}
	slash = strrchr(p->rel, '/');
	if (slash == NULL) {
		/* S and T are a spool's user/ folder: the user's is right there */
		p->dirfd = root;
		p->name = p->rel;
		return 0;
	}
	p->name = slash + 1;
	*slash = '\0';
	if (on_target && create) {
		/* "h/user" or "user": one or two levels */
		char *mid = strchr(p->rel, '/');
		int fd1, fd2;

		if (mid == NULL) {
			fd2 = make_spool_dir(e, root, p->rel, p->rel, err);
		} else {
			*mid = '\0';
			fd1 = make_spool_dir(e, root, p->rel, p->rel, err);
			*mid = '/';
			if (fd1 < 0) {
				*slash = '/';
				return -1;
			}
			fd2 = make_spool_dir(e, fd1, "user", p->rel, err);
			mr_close(fd1);
		}
		*slash = '/';
		if (fd2 < 0)
			return -1;
		p->dirfd = fd2;
		p->owned = 1;
		return 0;
	}
	p->dirfd = mr_open_beneath(root, p->rel, O_RDONLY | O_DIRECTORY, 0, err);
	*slash = '/';
	if (p->dirfd < 0) {
		if (err->errnum == ENOENT) {
			mr_error_clear(err);
			return 1;
		}
		mr_error_prefix(err, "%s", on_target ? "target" : "source");
		return -1;
	}
	p->owned = 1;
	return 0;
}

int engine_open(const struct engine_config *config, struct engine **engine_r,
		struct mr_error *err)
{
	struct engine *e;

	*engine_r = NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		mr_error_set(err, ENOMEM, "engine");
		return -1;
	}
	e->backups_fd = e->source_fd = e->target_fd = e->own_fd = -1;
	e->work_fd = e->attic_fd = e->tmp_fd = e->progress_fd = e->state_fd = -1;
	e->discarded_fd = e->locks_fd = e->damaged_fd = e->active_fd = -1;
	e->cfg_src_fd = e->cfg_dst_fd = -1;
	e->max_remove_pct = config->max_remove_pct < 0 ? 50 : config->max_remove_pct;
	e->min_remove_files = config->min_remove_files == 0 ? 10
			      : config->min_remove_files < 0 ? 0 : config->min_remove_files;
	e->preserve_owner = config->preserve_owner < 0 ? (geteuid() == 0) : config->preserve_owner;
	e->dial_tone = config->dial_tone;

	if (config->backups != NULL) {
		e->backups_fd = mr_open_dir_path(config->backups, 0, err);
		if (e->backups_fd < 0) {
			mr_error_prefix(err, "backups");
			goto fail;
		}
		if (restore_index_open(e->backups_fd, &e->bindex, err) < 0)
			goto fail;
	}
	e->source_fd = mr_open_dir_path(config->source, 0, err);
	if (e->source_fd < 0) {
		mr_error_prefix(err, "source");
		goto fail;
	}
	e->target_fd = mr_open_dir_path(config->target, 1, err);
	if (e->target_fd < 0) {
		mr_error_prefix(err, "target");
		goto fail;
	}
	if (open_store(e, config, err) < 0)
		goto fail;
	if ((e->own_fd = open_or_make_dir(e->target_fd, ".mailrestore", err)) < 0 ||
	    (e->work_fd = open_or_make_dir(e->own_fd, "work", err)) < 0 ||
	    (e->attic_fd = open_or_make_dir(e->own_fd, "attic", err)) < 0 ||
	    (e->tmp_fd = open_or_make_dir(e->own_fd, "tmp", err)) < 0 ||
	    (e->progress_fd = open_or_make_dir(e->own_fd, "progress", err)) < 0 ||
	    (e->discarded_fd = open_or_make_dir(e->own_fd, "discarded", err)) < 0 ||
	    (e->locks_fd = open_or_make_dir(e->own_fd, "locks", err)) < 0 ||
	    (e->damaged_fd = open_or_make_dir(e->own_fd, "damaged", err)) < 0 ||
	    (e->active_fd = open_or_make_dir(e->own_fd, "active", err)) < 0) {
		mr_error_prefix(err, "target");
		goto fail;
	}
	/* The store, for those who read T without the engine (`login
	 * --target`): "maildir" or "cyrus <layout>". */
	{
		static const char *const layouts[] = { "", "none", "simple", "full", "flat" };
		char text[32];
		int n = e->format == MR_FORMAT_CYRUS
				? snprintf(text, sizeof(text), "cyrus %s\n", layouts[e->cyrus_hash])
				: snprintf(text, sizeof(text), "maildir\n");

		if (mr_publish_file(e->own_fd, "", "store", ".store.tmp", text, (size_t)n, 0644,
				    MR_PUBLISH_FIXED_TMP, err) < 0) {
			mr_error_prefix(err, "target");
			goto fail;
		}
	}
	if (config->state_dir != NULL)
		e->state_fd = mr_open_dir_path(config->state_dir, 1, err);
	else
		e->state_fd = open_or_make_dir(e->own_fd, "state", err);
	if (e->state_fd < 0) {
		mr_error_prefix(err, "state");
		goto fail;
	}
	if (mail_store_open(e->state_fd, &e->mail, err) < 0)
		goto fail;
	if (mail_ids_open(e->state_fd, &e->ids, err) < 0)
		goto fail;
	*engine_r = e;
	return 0;
fail:
	engine_close(&e);
	return -1;
}

void engine_close(struct engine **engine)
{
	struct engine *e = *engine;

	if (e == NULL)
		return;
	mail_store_close(&e->mail);
	restore_index_close(&e->bindex);
	mail_ids_close(&e->ids);
	mr_close(e->backups_fd);
	mr_close(e->source_fd);
	mr_close(e->target_fd);
	mr_close(e->cfg_src_fd);
	mr_close(e->cfg_dst_fd);
	sync_cyrus_mboxes_free(&e->mboxes);
	mr_close(e->own_fd);
	mr_close(e->work_fd);
	mr_close(e->attic_fd);
	mr_close(e->tmp_fd);
	mr_close(e->progress_fd);
	mr_close(e->discarded_fd);
	mr_close(e->locks_fd);
	mr_close(e->damaged_fd);
	mr_close(e->active_fd);
	mr_close(e->state_fd);
	free(e);
	*engine = NULL;
}

int engine_target_fd(const struct engine *engine)
{
	return engine->target_fd;
}

int engine_state_fd(const struct engine *engine)
{
	return engine->state_fd;
}

int engine_source_fd(const struct engine *engine)
{
	return engine->source_fd;
}

struct mail_store *engine_mail_store(struct engine *engine)
{
	return engine->mail;
}

const char *engine_phase_name(int phase)
{
	switch (phase) {
	case ENGINE_PHASE_RESTORING: return "restoring";
	case ENGINE_PHASE_SYNCING: return "syncing";
	case ENGINE_PHASE_ACTIVATING: return "activating";
	case ENGINE_PHASE_DONE: return "done";
	default: return "idle";
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 when entry ent of S's listing is a user's folder: a valid name and a
 * folder. DT_UNKNOWN on some file systems: ask. A stat failure still counts
 * the user: damage is not absence. */
static int source_user_folder(struct engine *engine, const struct mr_dirent *ent)
{
	struct stat st;

	if (!mr_user_name_valid(ent->name))
		return 0;
	if (ent->type == DT_DIR)
		return 1;
	if (ent->type != DT_UNKNOWN)
		return 0;
	return !(mr_io->fstatat(engine->source_fd, ent->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		 !S_ISDIR(st.st_mode));
}

/* The users with a folder on S, sorted by byte order, unique. Free with
 * mr_names_free(). 0 or -1 with err. */
static int source_users(struct engine *engine, char ***names_r, size_t *n_r,
			struct mr_error *err)
{
	struct mr_dirlist list = { 0 };
	char **names;
	size_t i, n = 0;

	*names_r = NULL;
	*n_r = 0;
	if (engine->format == MR_FORMAT_CYRUS) {
		if (mr_cyrus_list_users(engine->source_fd, engine->cyrus_hash, names_r, n_r,
					err) < 0) {
			mr_error_prefix(err, "listing the source");
			return -1;
		}
		return 0;
	}
	if (mr_listdir(engine->source_fd, &list, err) < 0) {
		mr_error_prefix(err, "listing the source");
		return -1;
	}
	names = calloc(list.n + 1, sizeof(*names));
	if (names == NULL) {
		mr_error_set(err, ENOMEM, "listing the source");
		mr_dirlist_free(&list);
		return -1;
	}
	for (i = 0; i < list.n; i++) {
		if (!source_user_folder(engine, &list.v[i]))
			continue;
		if ((names[n] = strdup(list.v[i].name)) == NULL) {
			mr_error_set(err, ENOMEM, "listing the source");
			mr_names_free(names, n);
			mr_dirlist_free(&list);
			return -1;
		}
		n++;
	}
	mr_dirlist_free(&list);
	*names_r = names;
	*n_r = n;
	return 0;
}

int engine_source_census(struct engine *engine, struct engine_census *census_r,
			 struct mr_error *err)
{
	char **backed = NULL, **src = NULL;
	size_t nbacked = 0, nsrc = 0, i, j = 0;
	int rc = -1;

	memset(census_r, 0, sizeof(*census_r));
	if (engine->backups_fd >= 0 &&
	    restore_list_backup_users(engine->backups_fd, &backed, &nbacked, err) < 0)
		goto out;
	if (source_users(engine, &src, &nsrc, err) < 0)
		goto out;
	census_r->with_backup = nbacked;
	/* Both lists are sorted by byte order: one merge counts the overlap. */
	for (i = 0; i < nsrc; i++) {
		int c = 1;
		census_r->on_source++;
		while (j < nbacked && (c = strcmp(backed[j], src[i])) < 0)
			j++;
		if (j < nbacked && c == 0)
			census_r->both++;
	}
	rc = 0;
out:
	mr_names_free(src, nsrc);
	mr_names_free(backed, nbacked);
	return rc;
}

int engine_census_suspicious(const struct engine_census *c)
{
	if (c->with_backup == 0)
		return 0;
	if (c->on_source == 0)
		return 1;
	return c->with_backup >= ENGINE_CENSUS_MIN_USERS &&
	       c->both * ENGINE_CENSUS_FRACTION < c->with_backup;
}

int engine_check_source(struct engine *engine, struct engine_census *census_r,
			struct mr_error *err)
{
	if (engine_source_census(engine, census_r, err) < 0)
		return -1;
	if (!engine_census_suspicious(census_r))
		return 0;
	mr_error_set(err, 0,
		     "the source looks unmounted or wrong: %zu of %zu users with a backup have a "
		     "folder there (%zu user folders in all). Mount the damaged partition "
		     "(read-only) and start again; if it really lost them, say "
		     "--allow-empty-source",
		     census_r->both, census_r->with_backup, census_r->on_source);
	return 1;
}

int engine_list_affected(struct engine *engine, char ***names_r, size_t *n_r,
			 struct mr_error *err)
{
	char **names = NULL, **v, **src = NULL;
	size_t n = 0, i, nsrc = 0;

	*names_r = NULL;
	*n_r = 0;
	if (engine->backups_fd >= 0 &&
	    restore_list_backup_users(engine->backups_fd, &names, &n, err) < 0)
		return -1;
	if (source_users(engine, &src, &nsrc, err) < 0) {
		mr_names_free(names, n);
		return -1;
	}
	v = realloc(names, (n + nsrc + 1) * sizeof(*v));
	if (v == NULL) {
		mr_error_set(err, ENOMEM, "listing users");
		mr_names_free(names, n);
		mr_names_free(src, nsrc);
		return -1;
	}
	names = v;
	/* the names move over */
	for (i = 0; i < nsrc; i++)
		names[n++] = src[i];
	free(src);
	*names_r = names;
	*n_r = mr_names_sort_unique(names, n);
	return 0;
}

uint64_t engine_user_size_hint(struct engine *engine, const char *user)
{
	char *rel = NULL;
	struct stat st;
	uint64_t size = 0;

	if (engine->backups_fd < 0 || !mr_user_name_valid(user))
		return 0;
	/* a hint: the index as it is, no look at whether B changed */
	if (restore_index_find(engine->bindex, user, 0, &rel, NULL) == 1 &&
	    mr_io->fstatat(engine->backups_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
		size = (uint64_t)st.st_size;
	free(rel);
	return size;
}

int engine_user_active(struct engine *engine, const char *user, struct mr_error *err)
{
	struct stat st;

	struct place pl;
	int r;

	if (!mr_user_name_valid(user)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	r = user_place(engine, 1, user, 0, &pl, err);
	if (r != 0)
		return r > 0 ? 0 : -1;
	r = mr_io->fstatat(pl.dirfd, pl.name, &st, AT_SYMLINK_NOFOLLOW);
	if (r < 0) {
		int e2 = errno;

		place_close(&pl);
		if (e2 == ENOENT)
			return 0;
		mr_error_set(err, e2, "stat(T/%s) failed", user);
		return -1;
	}
	place_close(&pl);
	/* Only a T/<user> we activated counts; another is merged. */
	if (mr_io->fstatat(engine->active_fd, user, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	mr_error_set(err, errno, "stat(active/%s) failed", user);
	return -1;
}

/* Records that T/<user> is ours; durable once active/ is fsync'd. 0 or -1
 * with err. */
static int record_activation(struct engine *e, const char *user, struct mr_error *err)
{
	int fd = mr_io->openat(e->active_fd, user, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		mr_error_set(err, errno, "create(active/%s) failed", user);
		return -1;
	}
	mr_close(fd);
	return 0;
}

/* Records that T/<user> is ours, durably. 0 or -1 with err. */
static int mark_activated(struct engine *e, const char *user, struct mr_error *err)
{
	if (record_activation(e, user, err) < 0)
		return -1;
	return mr_fsync_dir_at(e->active_fd, ".", err);
}

int engine_write_affected(struct engine *e, char **names, size_t n, struct mr_error *err)
{
	size_t i, len = 0, pos = 0;
	char *text;
	int rc;

	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	text = malloc(len + 1);
	if (text == NULL) {
		mr_error_set(err, ENOMEM, "malloc(%zu) for affected failed", len + 1);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (i == 0 || strcmp(names[i - 1], names[i]) != 0)
			pos += (size_t)sprintf(text + pos, "%s\n", names[i]);
	rc = mr_publish_file(e->own_fd, "", "affected", ".affected.tmp", text, pos, 0644,
			     MR_PUBLISH_FIXED_TMP, err);
	free(text);
	return rc;
}

int engine_user_dial_tone(struct engine *engine, const char *user)
{
	struct stat st;

	return engine != NULL && engine->dial_tone && engine->format != MR_FORMAT_CYRUS &&
	       mr_user_name_valid(user) &&
	       mr_io->fstatat(engine->target_fd, user, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode) && engine_user_active(engine, user, NULL) == 0;
}

int engine_dial_tone(struct engine *e, const char *user, struct mr_error *err)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	struct stat owner;
	int lockfd = -1, ufd = -1, rc = -1, own, i;

	if (!mr_user_name_valid(user)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	if (e->format == MR_FORMAT_CYRUS) {
		mr_error_set(err, EINVAL, "dial tone is for Maildir stores");
		return -1;
	}
	if (mail_hold_lock(e->mail, user, &lockfd, err) < 0)
		return -1;
	if (mr_io->mkdirat(e->target_fd, user, 0700) < 0) {
		if (errno == EEXIST)
			rc = 0;
		else
			mr_error_set(err, errno, "mkdir(T/%s) failed", user);
		goto out;
	}
	/* The mail server reads it as the user: the owner of S/<user> (a
	 * stat only; the source is never written). */
	own = e->preserve_owner &&
	      mr_io->fstatat(e->source_fd, user, &owner, AT_SYMLINK_NOFOLLOW) == 0;
	ufd = mr_io->openat(e->target_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (ufd < 0) {
		mr_error_set(err, errno, "open(T/%s) failed", user);
		goto out;
	}
	for (i = 0; i < 3; i++)
		if (mr_io->mkdirat(ufd, subs[i], 0700) < 0 ||
		    (own && mr_io->fchownat(ufd, subs[i], owner.st_uid, owner.st_gid,
					    AT_SYMLINK_NOFOLLOW) < 0)) {
			mr_error_set(err, errno, "mkdir(T/%s/%s) failed", user, subs[i]);
			goto out;
		}
	if ((own && mr_io->fchownat(e->target_fd, user, owner.st_uid, owner.st_gid,
				    AT_SYMLINK_NOFOLLOW) < 0)) {
		mr_error_set(err, errno, "chown(T/%s) failed", user);
		goto out;
	}
	if (mr_io->fsync(ufd) < 0 || mr_fsync_dir_at(e->target_fd, ".", err) < 0) {
		if (err->msg[0] == '\0')
			mr_error_set(err, errno, "fsync(T/%s) failed", user);
		goto out;
	}
	rc = 1;
out:
	mr_close(ufd);
	mail_hold_unlock(lockfd);
	return rc;
}

int engine_adopt_active(struct engine *engine, const char *user, struct mr_error *err)
{
	struct stat st;
	struct place pl;
	int r = user_place(engine, 1, user, 0, &pl, err);

	if (r != 0)
		return r > 0 ? 0 : -1;
	r = mr_io->fstatat(pl.dirfd, pl.name, &st, AT_SYMLINK_NOFOLLOW);
	place_close(&pl);
	if (r < 0)
		return errno == ENOENT ? 0 : (mr_error_set(err, errno, "stat(T/%s) failed", user), -1);
	return mark_activated(engine, user, err) < 0 ? -1 : 1;
}

void engine_job_init(struct engine_job *job, const char *user)
{
	memset(job, 0, sizeof(*job));
	snprintf(job->user, sizeof(job->user), "%s", user);
	job->lock_fd = -1;
}

void engine_job_free(struct engine_job *job)
{
	mr_close(job->lock_fd);
	job->lock_fd = -1;
	mr_problems_reset(&job->problems);
}

/* ---- the extracted marker ------------------------------------------- */

/* The marker says which archive was extracted completely into the work
 * copy, so a resumed run doesn't extract it again. It is not fsync'd (that
 * would cost a syncfs per user): it names the boot it was written in, and
 * counts only in that boot. A kill -9 keeps the page cache, so within one
 * boot the marker and the files it speaks for agree; after a reboot (maybe
 * a power loss that took unwritten files) it is ignored, and the extraction
 * runs again, skipping only files that are complete on disk. */
static void boot_id(char *buf, size_t len)
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n <= 0)
		n = 0;   /* unknown: the marker is then never trusted */
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
}

static void marker_text(const char *rel, const struct stat *st, char *buf, size_t len)
{
	char boot[64];

	boot_id(boot, sizeof(boot));
	snprintf(buf, len, "mailrestore-extracted v2\nboot %s\n%s\n%" PRIu64 " %" PRId64 ".%09ld\n",
		 boot[0] ? boot : "unknown", rel, (uint64_t)st->st_size,
		 (int64_t)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
}

static int marker_matches(struct engine *e, const char *user, const char *want)
{
	char buf[2048];
	ssize_t n;
	int fd = mr_io->openat(e->progress_fd, user, O_RDONLY | O_NOFOLLOW, 0);

	if (fd < 0)
		return 0;
	n = mr_read_full(fd, buf, sizeof(buf) - 1);
	mr_close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strstr(want, "\nboot unknown\n") == NULL && strcmp(buf, want) == 0;
}

static int marker_write(struct engine *e, const char *user, const char *text, struct mr_error *err)
{
	char tmpname[MR_USER_NAME_MAX + 1];

	/* renamed so a crash never leaves a half marker; see marker_text for
	 * why there is no fsync */
	mr_user_name_suffixed(user, ".tmp", tmpname);
	return mr_publish_file(e->progress_fd, "progress", user, tmpname, text, strlen(text), 0600,
			       MR_PUBLISH_FIXED_TMP | MR_PUBLISH_NO_FSYNC, err);
}

/* ---- work copies that a damaged backup wrote into ------------------- */

/* A backup can be found damaged only after some of its files were written
 * (an LZ4 or gzip checksum at the end): those files may hold wrong bytes
 * behind the right size and time. damaged/<user> remembers that for the
 * work copy's whole life, so that every later sync of it compares contents
 * with the source, even when a later run extracts a clean archive over it
 * (which skips files whose size and time already match). It is made
 * durable: a work copy outlives reboots. */
static int mark_damaged(struct engine *e, const char *user, struct mr_error *err)
{
	int fd = mr_io->openat(e->damaged_fd, user, O_WRONLY | O_CREAT | O_NOFOLLOW, 0600);

	if (fd < 0 || mr_io->fsync(fd) < 0) {
		mr_error_set(err, errno, "recording damaged/%s failed", user);
		mr_close(fd);
		return -1;
	}
	mr_close(fd);
	return mr_fsync_dir_at(e->damaged_fd, ".", err);
}

static int is_damaged(struct engine *e, const char *user)
{
	struct stat st;

	return mr_io->fstatat(e->damaged_fd, user, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

/* The work copy is gone (activated or set aside) or new. */
static void forget_damaged(struct engine *e, const char *user)
{
	mr_io->unlinkat(e->damaged_fd, user, 0);
}

/* A failed fsync/syncfs means what was written may never reach the disk,
 * and a later fsync on a new fd does not report the old failure. So the work
 * copy can't be trusted: it is moved aside (never deleted) to
 * T/.mailrestore/discarded/<user>.<time>, and the marker goes, so the next
 * run extracts and syncs from scratch. Best effort: a disk this broken may
 * refuse the rename too, and then the next run retries it. */
static void discard_work(struct engine *e, const char *user)
{
	char name[MR_USER_NAME_MAX + 1], suffix[32];

	snprintf(suffix, sizeof(suffix), ".%lld", (long long)mr_now());
	mr_user_name_suffixed(user, suffix, name);
	mr_io->unlinkat(e->progress_fd, user, 0);
	mr_io->fsync(e->progress_fd);
	if (mr_io->renameat(e->work_fd, user, e->discarded_fd, name) == 0) {
		forget_damaged(e, user);
		mr_io->fsync(e->work_fd);
		mr_io->fsync(e->discarded_fd);
		mr_log("%s: durability failed; work copy set aside as discarded/%s", user, name);
	}
}

/* Takes the user's lock (flock on T/.mailrestore/locks/<user>), so that no
 * two runs, in this process or another (a daemon and a restore-user), work
 * on one work copy at once. Returns the lock fd, or -1 with err (EWOULDBLOCK
 * when someone else holds it). */
static int user_lock(struct engine *e, const char *user, struct mr_error *err)
{
	int fd = mr_io->openat(e->locks_fd, user, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);

	if (fd < 0) {
		mr_error_set(err, errno, "open(locks/%s) failed", user);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e2 = errno;
		if (e2 == EWOULDBLOCK)
			mr_error_set(err, e2, "another mailrestore run is working on %s right now", user);
		else
			mr_error_set(err, e2, "flock(locks/%s) failed", user);
		mr_close(fd);
		return -1;
	}
	return fd;
}

/* ---- phases ---------------------------------------------------------- */

static void on_restore_progress(void *arg, uint64_t done, uint64_t total)
{
	struct engine_job *job = arg;

	atomic_store_explicit(&job->progress_done, done, memory_order_relaxed);
	atomic_store_explicit(&job->progress_total, total, memory_order_relaxed);
}

static void on_sync_progress(void *arg, uint64_t files, uint64_t bytes)
{
	struct engine_job *job = arg;

	(void)files;
	atomic_store_explicit(&job->progress_done, bytes, memory_order_relaxed);
}

/* Opens (creating) the user's work copy and a fresh scratch folder. */
static int open_work(struct engine *e, const char *user, int *work_r, int *tmp_r,
		     struct mr_error *err)
{
	*work_r = *tmp_r = -1;
	if (mr_remove_tree_at(e->tmp_fd, user, err) < 0)
		return -1;
	*tmp_r = open_or_make_dir(e->tmp_fd, user, err);
	if (*tmp_r < 0)
		return -1;
	if (mr_io->mkdirat(e->work_fd, user, 0700) == 0)
		forget_damaged(e, user);   /* a new work copy: nothing to remember */
	*work_r = open_or_make_dir(e->work_fd, user, err);
	if (*work_r < 0) {
		mr_close(*tmp_r);
		*tmp_r = -1;
		return -1;
	}
	return 0;
}

/* A time at or before the backup began: the sync's whole-second quick
 * check trusts a file's second only when it is before this (sync.h,
 * backup_started). The archive's birth time: the backup began writing it
 * before it read any file of the user. Where the file system keeps no
 * birth times (NFS, 9p; the I/O layer has no statx, a failure counts the
 * same), a day before the date of its date folder (B/<YYYY-MM-DD>/: the
 * backup ran on that date in whatever time zone), else a day before the
 * archive was last written (a daily backup takes less than a day). Without
 * any of them every file a whole-second backup restored and the source
 * still has at the same size is read to compare: the damaged disk would
 * be asked for every index file and mbox of the user. */
static void backup_birth(int afd, const char *rel, const struct stat *st,
			 struct engine_job *job)
{
	struct statx sx;
	int64_t day;

	job->backup_started = 0;
	if (statx(afd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME))
		job->backup_started = (int64_t)sx.stx_btime.tv_sec;
	else if (restore_dated_day(rel, &day))
		job->backup_started = day - 86400;
	else if (st->st_mtime > 86400)
		job->backup_started = (int64_t)st->st_mtime - 86400;
}

/* Extracts the newest backup unless the marker says it already was.
 * Returns 0 (go on), or an engine_result to end with. */
static int phase_restore(struct engine *e, struct engine_job *job, int work_fd, int tmp_fd)
{
	struct restore_settings rs;
	struct mr_error err = { 0 };
	char *rel = NULL, marker[2048];
	struct stat st;
	int afd = -1, rc, result = 0;

	atomic_store_explicit(&job->phase, ENGINE_PHASE_RESTORING, memory_order_relaxed);
	if (e->backups_fd < 0)
		return 0;
	rc = restore_index_find(e->bindex, job->user, 1, &rel, &err);
	if (rc < 0) {
		snprintf(job->reason, sizeof(job->reason), "finding the backup: %s", err.msg);
		return ENGINE_FAILED;
	}
	if (rc == 0)
		return 0;
	job->had_backup = 1;
	afd = mr_open_beneath(e->backups_fd, rel, O_RDONLY, 0, &err);
	if (afd < 0 || mr_io->fstat(afd, &st) < 0) {
		if (afd >= 0)
			mr_error_set(&err, errno, "fstat(%s) failed", rel);
		/* An unreadable archive is a damaged backup: the source may
		 * still supply everything. */
		mr_problems_add(&job->problems, MR_PROBLEM_ARCHIVE, err.errnum, rel,
				"backup %s: %s", rel, err.msg);
		goto out;
	}
	backup_birth(afd, rel, &st, job);
	marker_text(rel, &st, marker, sizeof(marker));
	if (marker_matches(e, job->user, marker))
		goto out;
	/* The work copy is about to change: a marker of another archive (or
	 * boot) must no longer vouch for it, in case this extraction does not
	 * end clean (a reviewer's find: a damaged newer backup written over a
	 * clean older one, then removed, and the old marker matched again). */
	if (mr_io->unlinkat(e->progress_fd, job->user, 0) < 0 && errno != ENOENT) {
		snprintf(job->reason, sizeof(job->reason), "removing progress/%s failed: %s",
			 job->user, strerror(errno));
		result = ENGINE_FAILED;
		goto out;
	}
	restore_settings_init(&rs);
	rs.preserve_owner = e->preserve_owner;
	rs.tmp_dirfd = tmp_fd;
	rs.cancel = &job->cancel;
	rs.progress = on_restore_progress;
	rs.progress_arg = job;
	rc = restore_extract(afd, work_fd, &rs, &job->restore, &job->problems, &err);
	if (rc != 0 && mr_problems_count(&job->problems, MR_PROBLEM_ARCHIVE) > 0) {
		struct mr_error merr = { 0 };

		if (mark_damaged(e, job->user, &merr) < 0) {
			snprintf(job->reason, sizeof(job->reason), "after extracting %s: %s", rel,
				 merr.msg);
			result = ENGINE_FAILED;
			goto out;
		}
	}
	if (rc < 0) {
		if (err.errnum == ECANCELED) {
			result = ENGINE_CANCELLED;
		} else {
			snprintf(job->reason, sizeof(job->reason), "extracting %s: %s", rel, err.msg);
			job->errnum = err.errnum;
			result = ENGINE_FAILED;
		}
		goto out;
	}
	/* Only a clean extraction is recorded: after a damaged one the next
	 * run extracts again and finds the damage again. */
	if (rc == 0 && marker_write(e, job->user, marker, &err) < 0) {
		snprintf(job->reason, sizeof(job->reason), "after extracting %s: %s", rel, err.msg);
		discard_work(e, job->user);
		result = ENGINE_FAILED;
	}
out:
	mr_close(afd);
	free(rel);
	return result;
}

static void reason_from_problems(struct engine_job *job, const char *lead)
{
	char summary[900];

	mr_problems_summary(&job->problems, summary, sizeof(summary), 3);
	snprintf(job->reason, sizeof(job->reason), "%s: %s", lead, summary);
}

/* The reason of a sync the remove guard stopped: what it saw (which
 * folder, how many messages), whatever else was found before. */
static void reason_from_guard(struct engine_job *job, size_t from)
{
	size_t pos = 0, i, n = 0;

	job->reason[0] = '\0';
	mr_bufcat(job->reason, sizeof(job->reason), &pos, "sync stopped by the remove guard");
	for (i = from; i < job->problems.n; i++)
		if (job->problems.v[i].kind == MR_PROBLEM_GUARD)
			mr_bufcat(job->reason, sizeof(job->reason), &pos, "%s %s", n++ ? ";" : ":",
				  job->problems.v[i].message);
}

/* Syncs the work copy against S/<user>. Returns 0 (go on to activation) or
 * an engine_result. */
static int phase_sync(struct engine *e, struct engine_job *job, int work_fd, int tmp_fd)
{
	struct sync_settings ss;
	struct mr_error err = { 0 };
	int src_fd = -1, attic_fd = -1, rc, result = 0;
	size_t before = job->problems.n;
	struct place pl;
	char inbox[MR_CYRUS_REL_MAX + 8];

	atomic_store_explicit(&job->phase, ENGINE_PHASE_SYNCING, memory_order_relaxed);
	atomic_store_explicit(&job->progress_done, 0, memory_order_relaxed);
	rc = user_place(e, 0, job->user, 0, &pl, &err);
	if (rc == 0) {
		src_fd = mr_io->openat(pl.dirfd, pl.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (src_fd < 0)
			err.errnum = errno;
		place_close(&pl);
	} else {
		err.errnum = rc > 0 ? ENOENT : err.errnum;
	}
	if (src_fd < 0) {
		int e2 = err.errnum;
		const char *rel = pl.rel;
		if (e2 == ENOENT) {
			mr_problems_add(&job->problems, MR_PROBLEM_MISSING, 0, "",
					"the user's folder is missing from the source; %s",
					job->had_backup ? "the backup is restored in the work copy"
							: "and there is no backup");
			snprintf(job->reason, sizeof(job->reason),
				 "missing from the source: folder S/%s does not exist (%s)", rel,
				 job->had_backup ? "backup restored in the work copy" : "no backup either");
		} else {
			mr_problems_add(&job->problems, MR_PROBLEM_UNREADABLE, e2, "",
					"open(S/%s) failed: %s", rel, strerror(e2));
			snprintf(job->reason, sizeof(job->reason),
				 "source unreadable: open(S/%s) failed: %s; backup kept in the work copy",
				 rel, strerror(e2));
		}
		return ENGINE_ATTENTION;
	}
	job->had_source = 1;
	attic_fd = open_or_make_dir(e->attic_fd, job->user, &err);
	if (attic_fd < 0) {
		snprintf(job->reason, sizeof(job->reason), "attic: %s", err.msg);
		job->errnum = err.errnum;
		result = ENGINE_FAILED;
		goto out;
	}
	sync_settings_init(&ss);
	ss.max_remove_pct = e->max_remove_pct;
	ss.min_remove_files = e->min_remove_files;
	ss.preserve_owner = e->preserve_owner;
	ss.attic_dirfd = attic_fd;
	ss.tmp_dirfd = tmp_fd;
	/* A damaged backup may have written wrong bytes before the damage was
	 * found (a content checksum is checked at the end): the work copy's
	 * files are compared with the source by content, not trusted by size
	 * and time. */
	ss.compare_content = mr_problems_count(&job->problems, MR_PROBLEM_ARCHIVE) > 0 ||
			     is_damaged(e, job->user);
	ss.backup_started = job->backup_started;
	ss.cancel = &job->cancel;
	ss.progress = on_sync_progress;
	ss.progress_arg = job;
	ss.format = e->format;
	if (e->format == MR_FORMAT_CYRUS) {
		/* the INBOX's internal name: "user." and the name on disk */
		snprintf(inbox, sizeof(inbox), "user.%s",
			 strrchr(pl.rel, '/') ? strrchr(pl.rel, '/') + 1 : pl.rel);
		ss.cyrus_inbox = inbox;
		ss.cyrus_mboxes = e->have_mboxes ? &e->mboxes : NULL;
	}
	rc = sync_tree(src_fd, work_fd, &ss, &job->sync, &job->problems, &err);
	if (rc < 0) {
		if (err.errnum == ECANCELED) {
			result = ENGINE_CANCELLED;
		} else {
			snprintf(job->reason, sizeof(job->reason), "sync: %s", err.msg);
			job->errnum = err.errnum;
			result = ENGINE_FAILED;
		}
	} else if (rc > 0 || job->problems.n > before) {
		/* Only the sync's own findings hold the user back; a damaged
		 * backup the source fully made up for does not. */
		int only_archive = 1;
		size_t i;
		for (i = before; i < job->problems.n; i++)
			if (job->problems.v[i].kind != MR_PROBLEM_ARCHIVE &&
			    job->problems.v[i].kind != MR_PROBLEM_REFUSED)
				only_archive = 0;
		if (rc > 0 || !only_archive) {
			reason_from_problems(job, "the source could not be fully read");
			if (mr_problems_count(&job->problems, MR_PROBLEM_GUARD) > 0)
				reason_from_guard(job, before);
			result = ENGINE_ATTENTION;
		}
	}
out:
	mr_close(attic_fd);
	mr_close(src_fd);
	return result;
}

/* Whether the work copy's Maildir has a tmp/, new/ or cur/ that is not a
 * folder (mirrored from the source: a symlink, a file). No mail could be
 * delivered into it, held mail included, so such a user does not go
 * active on its own: reason_r (size len) says why and what to do. */
static int maildir_odd(int mfd, const char *user, char *reason_r, size_t len)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		if (mr_io->fstatat(mfd, sub[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode))
			continue;
		snprintf(reason_r, len,
			 "the Maildir's %s is a %s in the source (S/%s/%s), not a folder: no mail "
			 "can be delivered into it and held mail stays held; fix the source and "
			 "`retry`, or `activate` to accept it (the entry is then set aside in "
			 "the attic and a real folder made)",
			 sub[i], S_ISLNK(st.st_mode) ? "symlink" : "file", user, sub[i]);
		return 1;
	}
	return 0;
}

/* Mail is delivered into the Maildir's tmp/ and new/, and read from cur/.
 * When the source had one of them as something else than a folder (a
 * symlink, a file), the work copy mirrors it and no message could be
 * delivered (held mail included). Such an entry is set aside in the attic,
 * as the sync does with what it removes (nothing is lost, it is logged),
 * and an empty folder takes its place; the folders and the attic are
 * fsync'd. Returns the number of entries set aside, or -1 with err. */
static int maildir_folders(struct engine *e, const char *user, int mfd, struct mr_error *err)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	const char *kind;
	char aname[NAME_MAX + 1];
	struct stat st;
	int afd = -1, moved = 0, rc = -1;
	size_t i;
	long n;

	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		if (mr_io->fstatat(mfd, sub[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			mr_error_set(err, errno, "fstatat(%s/%s) failed", user, sub[i]);
			goto out;
		}
		if (S_ISDIR(st.st_mode))
			continue;
		kind = S_ISLNK(st.st_mode) ? "symlink" : "file";
		if (afd < 0) {
			afd = open_or_make_dir(e->attic_fd, user, err);
			if (afd < 0)
				goto out;
		}
		for (n = 0;; n++) {
			if (n == 0)
				snprintf(aname, sizeof(aname), "%s", sub[i]);
			else
				snprintf(aname, sizeof(aname), "%s.%ld", sub[i], n);
			if (mr_io->fstatat(afd, aname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT)
					break;
				mr_error_set(err, errno, "fstatat(attic/%s/%s) failed", user, aname);
				goto out;
			}
		}
		if (mr_io->renameat(mfd, sub[i], afd, aname) < 0) {
			mr_error_set(err, errno, "moving %s/%s (not a folder) to attic/%s/%s failed",
				     user, sub[i], user, aname);
			goto out;
		}
		if (mr_io->mkdirat(mfd, sub[i], 0700) < 0) {
			mr_error_set(err, errno, "mkdirat(%s/%s) failed", user, sub[i]);
			goto out;
		}
		mr_log("%s: the Maildir's %s was a %s, not a folder: set aside as attic/%s/%s, "
		       "an empty folder took its place so mail can be delivered",
		       user, sub[i], kind, user, aname);
		moved++;
	}
	if (moved > 0 &&
	    (mr_fsync_dir_at(mfd, ".", err) < 0 || mr_fsync_dir_at(afd, ".", err) < 0 ||
	     mr_fsync_dir_at(e->attic_fd, ".", err) < 0))
		goto out;
	rc = moved;
out:
	mr_close(afd);
	return rc;
}

/* Releases user's held mail into the active T/<user> and forgets the held
 * copies. Call with the user's hold lock held. A release repeated after a
 * crash skips what is already there. 0 or -1 with err. */
static int release_into_active(struct engine *e, const char *user, uint64_t *released_r,
			       struct mr_error *err)
{
	uint64_t held = 0;
	int ufd, rc;

	/* Cyrus: mail reaches a mailbox only through Cyrus (LMTP); nothing is
	 * held here for it (engine_deliver_id refuses). */
	if (e->format == MR_FORMAT_CYRUS)
		return 0;
	if (mail_held_count(e->mail, user, &held, NULL, err) < 0)
		return -1;
	ufd = mr_io->openat(e->target_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (ufd < 0) {
		mr_error_set(err, errno, "open(T/%s) failed", user);
		return -1;
	}
	/* `activate` of a user whose Maildir folders are not folders
	 * (maildir_odd), or one an older version activated as such: mail
	 * must be deliverable from now on, held or not. */
	rc = maildir_folders(e, user, ufd, err) < 0 ? -1 : 0;
	if (rc == 0 && held > 0)
		rc = mail_release(e->mail, user, ufd, released_r, err);
	mr_close(ufd);
	if (held == 0)
		return rc;
	if (rc == 0)
		rc = mail_release_done(e->mail, user, err);
	return rc;
}

/* A T/<user> that is not ours: what it holds that the work copy lacks is
 * copied into the work copy, which is then made durable again. 0 or -1. */
static int merge_existing(struct engine *e, const char *user, struct mr_error *err)
{
	uint64_t n = 0;
	int tfd, wfd = -1, rc = -1;

	tfd = mr_io->openat(e->target_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (tfd < 0) {
		mr_error_set(err, errno, "open(T/%s) failed", user);
		return -1;
	}
	wfd = mr_io->openat(e->work_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (wfd < 0) {
		mr_error_set(err, errno, "open(work/%s) failed", user);
		goto out;
	}
	if (engine_merge_tree(tfd, wfd, 0, &n, err) < 0 || sync_make_durable(e->work_fd, err) < 0)
		goto out;
	mr_log("%s: T/%s existed before its restore: %llu entries of it merged in", user, user,
	       (unsigned long long)n);
	rc = 0;
out:
	mr_close(tfd);
	mr_close(wfd);
	return rc;
}

/* After the exchange: what reached the old tree (now work/<user>) since the
 * merge is moved over, and the old tree goes to the attic as
 * attic/<user>/.replaced-<time>. Failures are logged: the user is active
 * and whole either way (the old tree then stays in work/<user>). */
static void finish_merge(struct engine *e, const char *user)
{
	struct mr_error err = { 0 };
	char name[64];
	uint64_t n = 0;
	int ofd = -1, tfd = -1, afd = -1;

	ofd = mr_io->openat(e->work_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	tfd = mr_io->openat(e->target_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (ofd < 0 || tfd < 0) {
		mr_error_set(&err, errno, "open(%s) failed", user);
		goto out;
	}
	if (engine_merge_tree(ofd, tfd, 1, &n, &err) < 0)
		goto out;
	afd = open_or_make_dir(e->attic_fd, user, &err);
	if (afd < 0)
		goto out;
	snprintf(name, sizeof(name), ".replaced-%lld", (long long)time(NULL));
	if (mr_io->renameat(e->work_fd, user, afd, name) < 0) {
		mr_error_set(&err, errno, "rename(work/%s -> attic/%s/%s) failed", user, user, name);
		goto out;
	}
	if (mr_fsync_dir_at(afd, ".", &err) < 0 || mr_fsync_dir_at(e->work_fd, ".", &err) < 0 ||
	    mr_fsync_dir_at(tfd, ".", &err) < 0)
		goto out;
	mr_log("%s: the old T/%s is in attic/%s/%s (%llu late entries moved over)", user, user,
	       user, name, (unsigned long long)n);
out:
	if (err.msg[0])
		mr_log("%s: after the merge: %s", user, err.msg);
	mr_close(ofd);
	mr_close(tfd);
	mr_close(afd);
}

/* The reason of a Cyrus mailbox on T that mailrestore did not make. */
static void cyrus_other_reason(struct engine_job *job, const char *rel)
{
	snprintf(job->reason, sizeof(job->reason),
		 "T/%s exists and mailrestore did not make it: a Cyrus mailbox is not merged "
		 "file by file (UIDs would clash); move it aside (or copy its new mail in "
		 "through IMAP later) and `retry`", rel);
}

/* Cyrus: 1 (job->reason set) when the user's folder on T exists and
 * mailrestore did not activate it, found before any work is done. */
static int cyrus_made_by_other(struct engine *e, struct engine_job *job)
{
	struct mr_error err = { 0 };
	struct place pl;
	struct stat st;
	int r = user_place(e, 1, job->user, 0, &pl, &err);

	if (r != 0)
		return 0;
	r = mr_io->fstatat(pl.dirfd, pl.name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (r)
		cyrus_other_reason(job, pl.rel);
	place_close(&pl);
	return r;
}

static int same_mtime(const struct stat *a, const struct stat *b)
{
	return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Cyrus: publishes user's seen and subscription files (user/<h>/<user>.seen,
 * .sub) of the damaged server's config folder into the live one, each
 * written whole to a temporary name with the source's mode, owner (as
 * root) and times, fsync'd and renamed into place. One that the live
 * folder holds already with a later mtime (the live Cyrus wrote it: the
 * user logged in meanwhile) is kept, and so is one equal in size and time.
 * 0, or -1 with err (a source file that fails to read included: damage is
 * not absence). */
static int cyrus_config_publish(struct engine *e, const char *user, struct mr_error *err)
{
	static const char *const sfx[] = { "seen", "sub" };
	char rel[16], name[MR_USER_NAME_MAX + 8];
	struct mr_error e2 = { 0 };
	int sfd = -1, dfd = -1, rc = -1;
	size_t i;

	if (e->cfg_src_fd < 0)
		return 0;
	/* the config folder is always hashed, fully with fulldirhash */
	snprintf(rel, sizeof(rel), "user/%c",
		 mr_cyrus_hash_char(user, e->cyrus_hash == MR_CYRUS_HASH_FULL));
	sfd = mr_open_beneath(e->cfg_src_fd, rel, O_RDONLY | O_DIRECTORY, 0, &e2);
	if (sfd < 0) {
		if (e2.errnum == ENOENT)
			return 0;
		mr_error_set(err, e2.errnum, "Cyrus config: %s", e2.msg);
		return -1;
	}
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		struct mr_publish pub;
		struct stat st, dst;
		char *buf = NULL;
		ssize_t got;
		int fd;

		snprintf(name, sizeof(name), "%s.%s", user, sfx[i]);
		fd = mr_io->openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			mr_error_set(err, errno, "Cyrus config: open(%s/%s) failed", rel, name);
			goto out;
		}
		if (mr_io->fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size > (64u << 20)) {
			mr_error_set(err, errno ? errno : EINVAL,
				     "Cyrus config: %s/%s is no regular file to restore", rel, name);
			mr_close(fd);
			goto out;
		}
		if (dfd < 0) {
			dfd = mr_mkdirs_beneath(e->cfg_dst_fd, rel, 0750, err);
			if (dfd < 0) {
				mr_close(fd);
				mr_error_prefix(err, "Cyrus target config");
				goto out;
			}
		}
		if (mr_io->fstatat(dfd, name, &dst, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (dst.st_mtim.tv_sec > st.st_mtim.tv_sec ||
		     (dst.st_size == st.st_size && same_mtime(&dst, &st)))) {
			if (!(dst.st_size == st.st_size && same_mtime(&dst, &st)))
				mr_log("%s: kept the live server's %s/%s: it is newer than the "
				       "damaged server's", user, rel, name);
			mr_close(fd);
			continue;
		}
		buf = malloc((size_t)st.st_size + 1);
		got = buf != NULL ? mr_read_full(fd, buf, (size_t)st.st_size) : -1;
		if (got < 0) {
			mr_error_set(err, buf ? errno : ENOMEM, "Cyrus config: read(%s/%s) failed",
				     rel, name);
			free(buf);
			mr_close(fd);
			goto out;
		}
		mr_close(fd);
		if (mr_publish_begin(&pub, dfd, rel, name, ".mailrestore-", st.st_mode & 0777, 0,
				     err) < 0 ||
		    mr_publish_write(&pub, buf, (size_t)got, err) < 0 ||
		    (e->preserve_owner && mr_io->fchownat(pub.fd, "", st.st_uid, st.st_gid,
							  AT_EMPTY_PATH) < 0) ||
		    mr_io->futimens(pub.fd, (struct timespec[2]){ st.st_atim, st.st_mtim }) < 0 ||
		    mr_publish_commit(&pub, err) < 0) {
			if (err->msg[0] == '\0')
				mr_error_set(err, errno, "Cyrus config: %s/%s", rel, name);
			mr_publish_abort(&pub);
			free(buf);
			goto out;
		}
		mr_publish_abort(&pub);
		free(buf);
		mr_log("%s: restored the Cyrus config file %s/%s", user, rel, name);
	}
	rc = 0;
out:
	mr_close(sfd);
	mr_close(dfd);
	return rc;
}

/* Activates the ready work copies of jobs[0..n) together (group commit):
 * one syncfs makes all of them durable, then each is renamed into T/<user>
 * under its hold lock (RENAME_NOREPLACE), one fsync of T confirms all the
 * renames, and each user's held mail is released into its now active
 * mailbox, still under the hold lock, so no delivery slips between "not
 * active" and "active". The held mail goes in after the rename, not before:
 * the work copy stays exactly what the sync made, so a retried activation
 * never sees released mail as extra. results[i] gets ENGINE_ACTIVE, or
 * ENGINE_FAILED / ENGINE_ATTENTION with jobs[i]->reason. A failed syncfs
 * sets every work copy aside (discard_work): what it wrote can't be trusted.
 * A failure after a rename leaves T/<user> in place but unconfirmed; the
 * retry finds the user active, fsyncs T and finishes the release. */
static void activate_batch(struct engine *e, struct engine_job **jobs, size_t n,
			   enum engine_result *results)
{
	struct mr_error err = { 0 }, ignored;
	int *holds = calloc(n ? n : 1, sizeof(*holds));
	char *merging = calloc(n ? n : 1, 1);
	struct place *pls = calloc(n ? n : 1, sizeof(*pls));
	double t0;
	size_t i;
	int t_ok, durable;

	for (i = 0; i < n; i++)
		results[i] = ENGINE_FAILED;
	if (holds == NULL || merging == NULL || pls == NULL) {
		for (i = 0; i < n; i++)
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason), "activation: out of memory");
		free(holds);
		free(merging);
		free(pls);
		return;
	}
	for (i = 0; i < n; i++)
		pls[i].dirfd = -1;
	t0 = mr_monotonic();
	durable = sync_make_durable(e->work_fd, &err) == 0 &&
		  mr_fsync_dir_at(e->work_fd, ".", &err) == 0;
	for (i = 0; i < n; i++)
		jobs[i]->durable_seconds = mr_monotonic() - t0;
	if (!durable) {
		for (i = 0; i < n; i++) {
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason), "activation: %s", err.msg);
			discard_work(e, jobs[i]->user);
		}
		free(holds);
		free(merging);
		free(pls);
		return;
	}
	for (i = 0; i < n; i++) {
		struct stat st;
		int rn;

		holds[i] = -1;
		if (mail_hold_lock(e->mail, jobs[i]->user, &holds[i], &err) < 0) {
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason), "activation: %s", err.msg);
			holds[i] = -2;   /* not renamed */
			continue;
		}
		if (user_place(e, 1, jobs[i]->user, 1, &pls[i], &err) != 0) {
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason), "activation: %s", err.msg);
			jobs[i]->errnum = err.errnum;
			mail_hold_unlock(holds[i]);
			holds[i] = -2;
			continue;
		}
		if (e->format == MR_FORMAT_CYRUS &&
		    mr_io->fstatat(pls[i].dirfd, pls[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			/* Cyrus made this mailbox (mail arrived, an autocreate):
			 * its UIDs and the restore's would clash, so no merge. */
			cyrus_other_reason(jobs[i], pls[i].rel);
			results[i] = ENGINE_ATTENTION;
			mail_hold_unlock(holds[i]);
			holds[i] = -2;
			continue;
		}
		if (e->format == MR_FORMAT_CYRUS && cyrus_config_publish(e, jobs[i]->user, &err) < 0) {
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason), "activation: %s", err.msg);
			jobs[i]->errnum = err.errnum;
			mail_hold_unlock(holds[i]);
			holds[i] = -2;
			continue;
		}
		if (mr_io->fstatat(pls[i].dirfd, pls[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			/* Not ours (the run got here): merged, never skipped. */
			if (merge_existing(e, jobs[i]->user, &err) < 0) {
				snprintf(jobs[i]->reason, sizeof(jobs[i]->reason), "activation: %s",
					 err.msg);
				mail_hold_unlock(holds[i]);
				holds[i] = -2;
				continue;
			}
			merging[i] = 1;
			rn = renameat2(e->work_fd, jobs[i]->user, pls[i].dirfd, pls[i].name,
				       RENAME_EXCHANGE);
		} else {
			rn = renameat2(e->work_fd, jobs[i]->user, pls[i].dirfd, pls[i].name,
				       RENAME_NOREPLACE);
		}
		if (rn < 0) {
			int e2 = errno;
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason),
				 "activation: rename(work/%s -> T/%s) failed: %s", jobs[i]->user,
				 pls[i].rel, strerror(e2));
			if (e2 == EEXIST)
				results[i] = ENGINE_ATTENTION;
			mail_hold_unlock(holds[i]);
			holds[i] = -2;
		}
	}
	/* The renames are the activations; they count once T is durable
	 * (for Cyrus, each user/ folder that got one). */
	t_ok = mr_fsync_dir_at(e->target_fd, ".", &err) == 0;
	for (i = 0; t_ok && e->format == MR_FORMAT_CYRUS && i < n; i++)
		if (holds[i] != -2 && mr_fsync_dir_at(pls[i].dirfd, ".", &err) < 0)
			t_ok = 0;
	mr_fsync_dir_at(e->work_fd, ".", NULL);
	/* The activation records, all made durable by one fsync of their
	 * folder (group commit, like the renames). */
	for (i = 0; t_ok && i < n; i++) {
		if (holds[i] == -2)
			continue;
		if (merging[i])
			finish_merge(e, jobs[i]->user);
		if (record_activation(e, jobs[i]->user, &err) < 0)
			t_ok = 0;
	}
	if (t_ok && mr_fsync_dir_at(e->active_fd, ".", &err) < 0)
		t_ok = 0;
	for (i = 0; i < n; i++) {
		if (holds[i] == -2)
			continue;
		if (!t_ok) {
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason), "activation: %s", err.msg);
		} else if (release_into_active(e, jobs[i]->user, &jobs[i]->released_mail, &ignored) < 0) {
			snprintf(jobs[i]->reason, sizeof(jobs[i]->reason),
				 "activation: releasing held mail: %s", ignored.msg);
			jobs[i]->errnum = ignored.errnum;
		} else {
			results[i] = ENGINE_ACTIVE;
			atomic_store_explicit(&jobs[i]->phase, ENGINE_PHASE_DONE, memory_order_relaxed);
			mr_io->unlinkat(e->progress_fd, jobs[i]->user, 0);
			forget_damaged(e, jobs[i]->user);
			mr_remove_tree_at(e->tmp_fd, jobs[i]->user, &ignored);
		}
		mail_hold_unlock(holds[i]);
	}
	for (i = 0; i < n; i++)
		place_close(&pls[i]);
	free(holds);
	free(merging);
	free(pls);
}

/* A user found active: confirm T durably and finish a release a crash
 * interrupted. 0 or -1 with err. */
static int confirm_active(struct engine *e, const char *user, uint64_t *released_r,
			  struct mr_error *err)
{
	int lockfd = -1, rc;

	struct place pl;

	if (mail_hold_lock(e->mail, user, &lockfd, err) < 0)
		return -1;
	rc = user_place(e, 1, user, 0, &pl, err);
	if (rc == 0) {
		rc = mr_fsync_dir_at(pl.dirfd, ".", err);
		place_close(&pl);
	} else if (rc > 0) {
		mr_error_set(err, ENOENT, "T/%s is gone", user);
		rc = -1;
	}
	if (rc == 0)
		rc = release_into_active(e, user, released_r, err);
	mail_hold_unlock(lockfd);
	return rc;
}

static enum engine_result prepare_locked(struct engine *e, struct engine_job *job);


enum engine_result engine_prepare(struct engine *e, struct engine_job *job)
{
	struct mr_error err = { 0 };
	enum engine_result r;

	if (!mr_user_name_valid(job->user)) {
		snprintf(job->reason, sizeof(job->reason), "invalid user name");
		return ENGINE_ATTENTION;
	}
	job->lock_fd = user_lock(e, job->user, &err);
	if (job->lock_fd < 0) {
		snprintf(job->reason, sizeof(job->reason), "%s", err.msg);
		return ENGINE_FAILED;
	}
	r = prepare_locked(e, job);
	if (r != ENGINE_READY) {
		mr_close(job->lock_fd);
		job->lock_fd = -1;
	}
	return r;
}

void engine_activate_batch(struct engine *e, struct engine_job **jobs, size_t n,
			   enum engine_result *results)
{
	size_t i;

	activate_batch(e, jobs, n, results);
	for (i = 0; i < n; i++) {
		mr_close(jobs[i]->lock_fd);
		jobs[i]->lock_fd = -1;
	}
}

enum engine_result engine_run(struct engine *e, struct engine_job *job)
{
	enum engine_result r = engine_prepare(e, job);

	if (r == ENGINE_READY)
		engine_activate_batch(e, &job, 1, &r);
	return r;
}

/* Everything of a run but the activation, under the user's lock: returns
 * ENGINE_READY when the work copy is ready to be activated. */
static enum engine_result prepare_locked(struct engine *e, struct engine_job *job)
{
	static int (*const phases[])(struct engine *e, struct engine_job *job, int work_fd,
				     int tmp_fd) = { phase_restore, phase_sync };
	struct mr_error err = { 0 };
	int work_fd = -1, tmp_fd = -1, r;
	enum engine_result result;
	size_t i;

	r = engine_user_active(e, job->user, &err);
	if (r == 1) {
		if (confirm_active(e, job->user, &job->released_mail, &err) < 0) {
			snprintf(job->reason, sizeof(job->reason), "active, but: %s", err.msg);
			job->errnum = err.errnum;
			return ENGINE_FAILED;
		}
		atomic_store_explicit(&job->phase, ENGINE_PHASE_DONE, memory_order_relaxed);
		return ENGINE_ACTIVE;
	}
	if (r < 0) {
		snprintf(job->reason, sizeof(job->reason), "%s", err.msg);
		return ENGINE_FAILED;
	}
	if (e->format == MR_FORMAT_CYRUS && cyrus_made_by_other(e, job))
		return ENGINE_ATTENTION;
	if (open_work(e, job->user, &work_fd, &tmp_fd, &err) < 0) {
		snprintf(job->reason, sizeof(job->reason), "work copy: %s", err.msg);
		job->errnum = err.errnum;
		return ENGINE_FAILED;
	}
	/* Each phase returns 0 or the run's result; a cancel is looked at
	 * between them. */
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		r = phases[i](e, job, work_fd, tmp_fd);
		if (r != 0) {
			result = (enum engine_result)r;
			goto out;
		}
		if (mr_cancelled(&job->cancel)) {
			result = ENGINE_CANCELLED;
			goto out;
		}
	}
	if (e->format != MR_FORMAT_CYRUS &&
	    maildir_odd(work_fd, job->user, job->reason, sizeof(job->reason))) {
		result = ENGINE_ATTENTION;
		goto out;
	}
	atomic_store_explicit(&job->phase, ENGINE_PHASE_ACTIVATING, memory_order_relaxed);
	result = ENGINE_READY;
out:
	mr_close(work_fd);
	mr_close(tmp_fd);
	return result;
}

int engine_activate_as_is(struct engine *e, const char *user, uint64_t *released_r,
			  struct mr_error *err)
{
	struct engine_job job;
	struct engine_job *jobs[1] = { &job };
	enum engine_result r;
	int rc;

	if (!mr_user_name_valid(user)) {
		mr_error_set(err, EINVAL, "invalid user name");
		return -1;
	}
	engine_job_init(&job, user);
	job.lock_fd = user_lock(e, user, err);
	if (job.lock_fd < 0)
		return -1;
	rc = engine_user_active(e, user, err);
	if (rc != 0) {
		mr_close(job.lock_fd);
		return rc < 0 ? -1 : 0;
	}
	if (mr_io->fstatat(e->work_fd, user, &(struct stat){ 0 }, AT_SYMLINK_NOFOLLOW) < 0) {
		mr_error_set(err, errno, "no work copy for %s: stat(work/%s) failed", user, user);
		mr_close(job.lock_fd);
		return -1;
	}
	engine_activate_batch(e, jobs, 1, &r);
	if (r != ENGINE_ACTIVE)
		mr_error_set(err, 0, "%s", job.reason);
	if (released_r != NULL)
		*released_r = job.released_mail;
	engine_job_free(&job);
	return r == ENGINE_ACTIVE ? 0 : -1;
}

int engine_recover(struct engine *e, struct mr_error *err)
{
	char **names = NULL;
	size_t n = 0, i;
	int rc = 0;
	struct mr_dirlist list;

	/* Scratch of interrupted runs. */
	if (mr_listdir(e->tmp_fd, &list, err) < 0)
		return -1;
	for (i = 0; i < list.n; i++) {
		struct mr_error e2 = { 0 };

		/* Scratch left behind costs space, never correctness: a run
		 * of that user wipes its own scratch again. */
		if (mr_remove_tree_at(e->tmp_fd, list.v[i].name, &e2) < 0)
			mr_log("wiping tmp/%s: %s", list.v[i].name, e2.msg);
	}
	mr_dirlist_free(&list);

	if (mail_held_users(e->mail, &names, &n, err) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct mr_error e2 = { 0 };

		/* Active with held mail left: the crash fell between the
		 * activation and the end of the release. */
		if (engine_user_active(e, names[i], NULL) != 1)
			continue;
		/* One user's failure is that user's: logged, its mail stays
		 * held (the next run or `retry` of it releases it), and the
		 * others are recovered all the same. */
		if (confirm_active(e, names[i], NULL, &e2) < 0)
			mr_log("%s: releasing held mail: %s; the mail stays held", names[i],
			       e2.msg);
	}
	mr_names_free(names, n);
	return rc;
}

int engine_deliver(struct engine *e, const char *user, const void *msg, size_t len,
		   int *held_r, struct mr_error *err)
{
	return engine_deliver_id(e, user, NULL, msg, len, held_r, NULL, err);
}

/* A repeat of id whose first attempt stopped before "done": 1 when its
 * message is stored (held, or in T/<user>), 0 when not, -1 with err. */
static int find_pending(struct engine *e, const char *user, int active,
			const struct mail_id_pending *p, struct mr_error *err)
{
	int r, ufd;

	r = mail_held_find(e->mail, user, p->msg_hash, p->msg_len, p->since_ns, err);
	if (r != 0 || !active)
		return r;
	ufd = mr_io->openat(e->target_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (ufd < 0) {
		mr_error_set(err, errno, "open(T/%s) failed", user);
		return -1;
	}
	r = mail_maildir_find(ufd, p->msg_hash, p->msg_len, p->since_ns, err);
	if (r < 0)
		mr_error_prefix(err, "T/%s", user);
	mr_close(ufd);
	return r;
}

int engine_deliver_id(struct engine *e, const char *user, const char *id, const void *msg,
		      size_t len, int *held_r, int *repeat_r, struct mr_error *err)
{
	int lockfd = -1, rc = -1, active, ufd = -1;
	enum mail_id_seen seen = MAIL_ID_NEW;
	struct mail_id_pending pending;
	struct timespec now;

	*held_r = 0;
	if (repeat_r)
		*repeat_r = 0;
	if (e->format == MR_FORMAT_CYRUS) {
		mr_error_set(err, EOPNOTSUPP, "deliver writes Maildir; a Cyrus store takes mail "
			     "over LMTP only: hold mail in the MTA (the policy service) instead");
		return -1;
	}
	if (mail_hold_lock(e->mail, user, &lockfd, err) < 0)
		return -1;
	active = engine_user_active(e, user, err);
	if (active < 0)
		goto out;
	/* A dial-tone mailbox takes mail at once; the merge brings it along. */
	if (active == 0 && engine_user_dial_tone(e, user))
		active = 1;
	clock_gettime(CLOCK_REALTIME, &now);
	if (id != NULL) {
		uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;

		if (mail_id_begin(e->ids, user, id, msg, len, now_ns, &seen, &pending, err) < 0)
			goto out;
		if (seen == MAIL_ID_PENDING) {
			int r = find_pending(e, user, active, &pending, err);

			if (r < 0)
				goto out;
			if (r > 0)
				seen = MAIL_ID_DONE;
		}
		if (seen == MAIL_ID_DONE) {
			/* Stored by an earlier attempt whose answer was lost. */
			if (repeat_r)
				*repeat_r = 1;
			*held_r = !active;
			rc = 0;
			goto out;
		}
	}
	if (active) {
		ufd = mr_io->openat(e->target_fd, user, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (ufd < 0) {
			mr_error_set(err, errno, "open(T/%s) failed", user);
			goto out;
		}
		rc = mail_deliver_maildir(ufd, msg, len, NULL, 0, err);
	} else {
		rc = mail_hold(e->mail, user, msg, len, NULL, err);
		if (rc == 0)
			*held_r = 1;
	}
	if (rc == 0 && id != NULL) {
		struct mr_error e2 = { 0 };

		clock_gettime(CLOCK_REALTIME, &now);
		/* The message is safe: a failure here only makes a repeat
		 * look for it, so the delivery still succeeds. */
		if (mail_id_done(e->ids, user, id,
				 (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec, &e2) < 0)
			mr_log("%s: recording delivery id: %s", user, e2.msg);
	}
out:
	mr_close(ufd);
	mail_hold_unlock(lockfd);
	return rc;
}
