/*
 * restore_private.h: what the files of restore/ share and nothing else
 * sees.
 */
#ifndef MR_RESTORE_PRIVATE_H
#define MR_RESTORE_PRIVATE_H

#include <archive.h>
#include <stdint.h>

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

#endif
