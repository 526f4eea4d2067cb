/*
 * restore_private.h: what the files of restore/ share and nothing else
 * sees.
 */
#ifndef MR_RESTORE_PRIVATE_H
#define MR_RESTORE_PRIVATE_H

#include "common/common.h"

#include <archive.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct lz4src;

/* 1 when fd's content starts with an LZ4 frame (read at offset 0). */
int lz4src_probe(int fd);
/* Opens a for reading the frames of fd (at its current offset) through
 * liblz4: libarchive sees the decoded data. On success *out is the source
 * for lz4src_consumed(), owned and freed by a. Returns what
 * archive_read_open() returns. */
int lz4src_open(struct archive *a, int fd, struct lz4src **out);
/* Its read callback (an archive_read_callback). extract.c also calls it
 * after the archive format ended, until it returns 0, so that the content
 * checksum after the last block is checked. */
la_ssize_t lz4src_read(struct archive *a, void *src, const void **buf);
/* Compressed bytes read from fd so far. */
uint64_t lz4src_consumed(const struct lz4src *s);

struct gzsrc;

/* The same for gzip (members inflated by zlib, CRC-32 and length checked):
 * 1 when fd starts with a gzip member, and the same open, read and
 * consumed calls. */
int gzsrc_probe(int fd);
int gzsrc_open(struct archive *a, int fd, struct gzsrc **out);
la_ssize_t gzsrc_read(struct archive *a, void *src, const void **buf);
uint64_t gzsrc_consumed(const struct gzsrc *s);

/* Write-behind (writer.c): a helper thread writes the data, owner, mode
 * and times of small files that extract.c created, then closes them.
 *   wb_extraction_begin/end around each extraction; wb_worth_it() says
 *   whether a core is free for a helper (fewer extractions than CPUs);
 *   wb_start, then wb_submit per file (takes fd, data and path in every
 *   case; blocks while the bounded queue is full; -1 with the first
 *   failure), wb_drain before anything that must see the files complete,
 *   wb_stop at the end (drains; accepts NULL). */
struct wb;
struct wb_file {
	int fd;
	char *path;            /* for messages (malloc'd) */
	unsigned char *data;   /* the file's bytes from offset 0 (malloc'd) */
	size_t len;
	uint64_t size;         /* the file's size: > len when it ends in a hole */
	int set_owner;
	uid_t uid;
	gid_t gid;
	mode_t perm;
	struct timespec ts[2];
};
void wb_extraction_begin(void);
void wb_extraction_end(void);
int wb_worth_it(void);
int wb_start(struct wb **w_r, struct mr_error *err);
int wb_submit(struct wb *w, struct wb_file *f, struct mr_error *err);
int wb_drain(struct wb *w, struct mr_error *err);
int wb_stop(struct wb *w, struct mr_error *err);

#endif
