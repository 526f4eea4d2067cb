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
/* Reads what is left of the frames after the archive format ended
 * (checking the content checksum that follows the last block). 0, or -1
 * with the reason set on a. */
int lz4src_drain(struct archive *a, struct lz4src *s);
/* Compressed bytes read from fd so far. */
uint64_t lz4src_consumed(const struct lz4src *s);

struct gzsrc;

/* The same for gzip (members inflated by zlib, CRC-32 and length checked):
 * 1 when fd starts with a gzip member, and the same open, drain and
 * consumed calls. */
int gzsrc_probe(int fd);
int gzsrc_open(struct archive *a, int fd, struct gzsrc **out);
int gzsrc_drain(struct archive *a, struct gzsrc *s);
uint64_t gzsrc_consumed(const struct gzsrc *s);

#endif
