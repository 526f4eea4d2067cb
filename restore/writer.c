/*
 * writer.c: write-behind for extraction into a fresh work copy.
 *
 * Creating a file needs the folder's lock and is done by the thread that
 * reads the archive, in archive order (names, links and folders stay as
 * simple as without it). What follows the create is the larger part of the
 * kernel's work per file: the data, the owner, the mode, the times and the
 * close. For a small file read whole into memory, that part is handed to
 * one helper thread here, so a user with a million messages is written by
 * two cores instead of one. A file becomes "done" for a resumed run only
 * when its mode is set (extract.c's same_file()), which the helper does
 * last, so a crash in between leaves files a later run writes again.
 *
 * Memory is bounded: at most WB_QUEUE_BYTES of data and WB_QUEUE_JOBS files
 * wait; a submit blocks while the queue is full. The first failure stops
 * the helper's work (later jobs are closed unwritten) and is reported by
 * the next submit or drain.
 */
#include "restore/restore_private.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WB_QUEUE_JOBS 512
#define WB_QUEUE_BYTES (16u * 1024u * 1024u)

struct wb_job {
	struct wb_file f;
	struct wb_job *next;
};

struct wb {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t more;    /* a job was queued, or stop */
	pthread_cond_t room;    /* a job was taken or finished */
	struct wb_job *head, *tail;
	size_t njobs, nbytes;   /* queued, not yet finished */
	int stop;
	int failed;
	struct mr_error err;    /* the first failure */
};

/* Extractions running now, in this process: write-behind is used only when
 * a core would otherwise idle. */
static atomic_int running;

void wb_extraction_begin(void)
{
	atomic_fetch_add(&running, 1);
}

void wb_extraction_end(void)
{
	atomic_fetch_sub(&running, 1);
}

int wb_worth_it(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cpus > 1 && atomic_load(&running) < cpus;
}

/* Writes one file and closes it. 0, or -1 with err set. */
static int write_file(const struct wb_file *f, struct mr_error *err)
{
	int rc = -1;

	if (f->len > 0 && mr_pwrite_all(f->fd, f->data, f->len, 0) < 0) {
		mr_error_set(err, errno, "pwrite(%s) failed", f->path);
		goto out;
	}
	if (f->size > (uint64_t)f->len && mr_io->ftruncate(f->fd, (off_t)f->size) < 0) {
		mr_error_set(err, errno, "ftruncate(%s) failed", f->path);
		goto out;
	}
	if (f->set_owner && mr_io->fchownat(f->fd, "", f->uid, f->gid, AT_EMPTY_PATH) < 0) {
		mr_error_set(err, errno, "fchown(%s) failed", f->path);
		goto out;
	}
	if (mr_io->fchmod(f->fd, f->perm) < 0) {
		mr_error_set(err, errno, "fchmod(%s) failed", f->path);
		goto out;
	}
	if (mr_io->futimens(f->fd, f->ts) < 0) {
		mr_error_set(err, errno, "futimens(%s) failed", f->path);
		goto out;
	}
	rc = 0;
out:
	if (mr_io->close(f->fd) < 0 && rc == 0) {
		mr_error_set(err, errno, "close(%s) failed", f->path);
		rc = -1;
	}
	return rc;
}

static void *wb_main(void *arg)
{
	struct wb *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct wb_job *j;
		struct mr_error err;
		int failed;

		while (w->head == NULL && !w->stop)
			pthread_cond_wait(&w->more, &w->lock);
		if (w->head == NULL)
			break;
		j = w->head;
		w->head = j->next;
		if (w->head == NULL)
			w->tail = NULL;
		failed = w->failed;
		pthread_mutex_unlock(&w->lock);

		if (failed) {
			mr_close(j->f.fd);
		} else if (write_file(&j->f, &err) < 0) {
			pthread_mutex_lock(&w->lock);
			if (!w->failed) {
				w->failed = 1;
				w->err = err;
			}
			pthread_mutex_unlock(&w->lock);
		}

		pthread_mutex_lock(&w->lock);
		w->njobs--;
		w->nbytes -= j->f.len;
		pthread_cond_broadcast(&w->room);
		free(j->f.data);
		free(j->f.path);
		free(j);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int wb_start(struct wb **w_r, struct mr_error *err)
{
	struct wb *w = calloc(1, sizeof(*w));
	int e;

	*w_r = NULL;
	if (w == NULL) {
		mr_error_set(err, ENOMEM, "write-behind: out of memory");
		return -1;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->more, NULL);
	pthread_cond_init(&w->room, NULL);
	e = pthread_create(&w->thread, NULL, wb_main, w);
	if (e != 0) {
		pthread_cond_destroy(&w->room);
		pthread_cond_destroy(&w->more);
		pthread_mutex_destroy(&w->lock);
		free(w);
		mr_error_set(err, e, "pthread_create(write-behind) failed");
		return -1;
	}
	*w_r = w;
	return 0;
}

int wb_submit(struct wb *w, struct wb_file *f, struct mr_error *err)
{
	struct wb_job *j = malloc(sizeof(*j));
	int rc = -1;

	if (j == NULL) {
		mr_error_set(err, ENOMEM, "write-behind: out of memory");
		goto fail;
	}
	j->f = *f;
	j->next = NULL;
	pthread_mutex_lock(&w->lock);
	while (!w->failed && w->njobs > 0 &&
	       (w->njobs >= WB_QUEUE_JOBS || w->nbytes + f->len > WB_QUEUE_BYTES))
		pthread_cond_wait(&w->room, &w->lock);
	if (w->failed) {
		*err = w->err;
		pthread_mutex_unlock(&w->lock);
		free(j);
		goto fail;
	}
	if (w->tail != NULL)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	w->njobs++;
	w->nbytes += f->len;
	pthread_cond_signal(&w->more);
	pthread_mutex_unlock(&w->lock);
	rc = 0;
	goto out;
fail:
	mr_close(f->fd);
	free(f->data);
	free(f->path);
out:
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	return rc;
}

int wb_drain(struct wb *w, struct mr_error *err)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	while (w->njobs > 0)
		pthread_cond_wait(&w->room, &w->lock);
	rc = w->failed ? -1 : 0;
	if (w->failed)
		*err = w->err;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int wb_stop(struct wb *w, struct mr_error *err)
{
	int rc;

	if (w == NULL)
		return 0;
	rc = wb_drain(w, err);
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_signal(&w->more);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->room);
	pthread_cond_destroy(&w->more);
	pthread_mutex_destroy(&w->lock);
	free(w);
	return rc;
}
