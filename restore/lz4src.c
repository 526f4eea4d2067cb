/*
 * lz4src.c: LZ4 frame archives decoded with liblz4 and handed to libarchive
 * as plain data.
 *
 * libarchive reads .tar.lz4 itself, but it checks the frame's content
 * checksum (XXH32) with a routine of its own that ran at a third of
 * libxxhash's speed here: on a restore that was most of the CPU time spent
 * in user space (liblz4's own XXH32 is no faster). So liblz4 decodes, and
 * when a frame has a content checksum we check it with libxxhash and let
 * liblz4 skip its checksums; a frame without one is checked by liblz4
 * (block checksums, when there are any). Everything that is not an LZ4
 * frame (the legacy LZ4 format included) is still read by libarchive's own
 * filters.
 *
 * Concatenated and skippable frames are read in turn. After the last
 * complete frame, bytes that do not start another frame end the data (the
 * archive format above decides whether what it got is complete). A frame
 * cut short or failing a checksum is an error that says so.
 */
#include "restore/restore_private.h"

#include "common/common.h"

#include <archive.h>
#include <errno.h>
#include <lz4frame.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define IN_SIZE (128 * 1024)
#define OUT_MIN (256 * 1024)
#define MAGIC_FRAME 0x184D2204u
#define MAGIC_SKIPPABLE 0x184D2A50u   /* the low four bits are free */

struct lz4src {
	int fd;
	LZ4F_dctx *dctx;
	XXH32_state_t *xxh;  /* the frame's content, when we check it */
	unsigned char *in, *out;
	size_t out_size;     /* at least the frame's largest block */
	size_t in_pos, in_len;
	uint64_t consumed;   /* compressed bytes read from fd */
	unsigned char tail[4]; /* the last bytes liblz4 consumed */
	int at_boundary;     /* between frames: the next bytes start one */
	int check;           /* this frame's content checksum is ours to check */
	int eof;             /* fd said end of file */
	int done;            /* no frame follows: the data ended */
};

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int is_frame_magic(uint32_t m)
{
	return m == MAGIC_FRAME || (m & 0xFFFFFFF0u) == MAGIC_SKIPPABLE;
}

int lz4src_probe(int fd)
{
	unsigned char b[4];
	ssize_t n = mr_pread_full(fd, b, sizeof(b), 0);

	return n == (ssize_t)sizeof(b) && le32(b) == MAGIC_FRAME;
}

/* Reads more input behind what is left. 0, or -1 with errno. */
static int fill(struct lz4src *s)
{
	ssize_t n;

	if (s->in_pos > 0) {
		memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
		s->in_len -= s->in_pos;
		s->in_pos = 0;
	}
	if (s->in_len == IN_SIZE || s->eof)
		return 0;
	n = mr_read_full(s->fd, s->in + s->in_len, IN_SIZE - s->in_len);
	if (n < 0)
		return -1;
	if ((size_t)n < IN_SIZE - s->in_len)
		s->eof = 1;
	s->in_len += (size_t)n;
	s->consumed += (uint64_t)n;
	return 0;
}

/* Keeps the last four bytes liblz4 consumed: at the end of a frame they
 * are its content checksum. */
static void keep_tail(struct lz4src *s, const unsigned char *p, size_t n)
{
	if (n >= 4) {
		memcpy(s->tail, p + n - 4, 4);
	} else if (n > 0) {
		memmove(s->tail, s->tail + n, 4 - n);
		memcpy(s->tail + 4 - n, p, n);
	}
}

/* At the start of an LZ4 frame: reads its header and decides who checks
 * the content. Returns 0 or -1 (error set on a). */
static int start_frame(struct archive *a, struct lz4src *s)
{
	LZ4F_frameInfo_t fi;
	size_t size, r, block;

	if (s->in_len - s->in_pos < LZ4F_HEADER_SIZE_MAX && fill(s) < 0) {
		archive_set_error(a, errno, "reading the archive failed: %s", strerror(errno));
		return -1;
	}
	/* A context that skipped checksums is not trusted to check the next
	 * frame: a new one starts clean. */
	LZ4F_freeDecompressionContext(s->dctx);
	s->dctx = NULL;
	if (LZ4F_isError(LZ4F_createDecompressionContext(&s->dctx, LZ4F_VERSION))) {
		archive_set_error(a, ENOMEM, "lz4: out of memory");
		return -1;
	}
	size = s->in_len - s->in_pos;
	r = LZ4F_getFrameInfo(s->dctx, &fi, s->in + s->in_pos, &size);
	if (LZ4F_isError(r)) {
		archive_set_error(a, EIO, "lz4: %s", LZ4F_getErrorName(r));
		return -1;
	}
	keep_tail(s, s->in + s->in_pos, size);
	s->in_pos += size;
	/* Whole blocks decode straight into out; a smaller buffer would make
	 * liblz4 decode into its own and copy. */
	block = (size_t)1 << (8 + 2 * (fi.blockSizeID == LZ4F_default ? LZ4F_max64KB
								  : fi.blockSizeID));
	if (block > s->out_size) {
		unsigned char *p = realloc(s->out, block);

		if (p == NULL) {
			archive_set_error(a, ENOMEM, "lz4: out of memory");
			return -1;
		}
		s->out = p;
		s->out_size = block;
	}
	/* The content checksum covers every byte the frame decodes to, so
	 * with it we check the content ourselves (liblz4's XXH32, like
	 * libarchive's, is several times slower than libxxhash's) and liblz4
	 * skips the block checksums. Without it liblz4 checks what there is. */
	s->check = fi.contentChecksumFlag == LZ4F_contentChecksumEnabled;
	if (s->check)
		XXH32_reset(s->xxh, 0);
	s->at_boundary = 0;
	return 0;
}

static la_ssize_t lz4src_read(struct archive *a, void *arg, const void **buf)
{
	struct lz4src *s = arg;
	LZ4F_decompressOptions_t opt;

	*buf = NULL;
	while (!s->done) {
		size_t out_size, in_size, hint, before = s->in_len - s->in_pos;

		if (s->at_boundary) {
			/* Between frames: four bytes tell whether one follows. */
			if (before < 4 && fill(s) < 0)
				goto read_failed;
			if (s->in_len - s->in_pos < 4 || !is_frame_magic(le32(s->in + s->in_pos))) {
				s->done = 1;
				break;
			}
			if (le32(s->in + s->in_pos) == MAGIC_FRAME && start_frame(a, s) < 0)
				return -1;
		} else if (before == 0) {
			if (fill(s) < 0)
				goto read_failed;
			if (s->in_len == s->in_pos)
				goto cut_short;
		}
		out_size = s->out_size;
		memset(&opt, 0, sizeof(opt));
		opt.skipChecksums = (unsigned)s->check;
		in_size = s->in_len - s->in_pos;
		hint = LZ4F_decompress(s->dctx, s->out, &out_size, s->in + s->in_pos, &in_size,
				       &opt);
		if (LZ4F_isError(hint)) {
			archive_set_error(a, EIO, "lz4: %s", LZ4F_getErrorName(hint));
			return -1;
		}
		keep_tail(s, s->in + s->in_pos, in_size);
		s->in_pos += in_size;
		if (s->check && out_size > 0)
			XXH32_update(s->xxh, s->out, out_size);
		if (hint == 0) {
			s->at_boundary = 1;
			if (s->check && XXH32_digest(s->xxh) != le32(s->tail)) {
				archive_set_error(a, EIO, "lz4: content checksum mismatch");
				return -1;
			}
			s->check = 0;
		}
		if (out_size > 0) {
			*buf = s->out;
			return (la_ssize_t)out_size;
		}
		if (in_size == 0) {
			/* liblz4 wants more than is buffered. */
			before = s->in_len - s->in_pos;
			if (fill(s) < 0)
				goto read_failed;
			if (s->in_len - s->in_pos == before)
				goto cut_short;
		}
	}
	return 0;

read_failed:
	archive_set_error(a, errno, "reading the archive failed: %s", strerror(errno));
	return -1;
cut_short:
	archive_set_error(a, EIO, "lz4: the archive ends inside a frame");
	return -1;
}

static int lz4src_close(struct archive *a, void *arg)
{
	struct lz4src *s = arg;

	(void)a;
	if (s != NULL) {
		LZ4F_freeDecompressionContext(s->dctx);
		if (s->xxh != NULL)
			XXH32_freeState(s->xxh);
		free(s->in);
		free(s->out);
		free(s);
	}
	return ARCHIVE_OK;
}

int lz4src_open(struct archive *a, int fd, struct lz4src **out)
{
	struct lz4src *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s == NULL)
		return ARCHIVE_FATAL;
	s->fd = fd;
	s->at_boundary = 1;
	s->in = malloc(IN_SIZE);
	s->out = malloc(OUT_MIN);
	s->out_size = OUT_MIN;
	s->xxh = XXH32_createState();
	if (s->in == NULL || s->out == NULL || s->xxh == NULL ||
	    LZ4F_isError(LZ4F_createDecompressionContext(&s->dctx, LZ4F_VERSION))) {
		lz4src_close(a, s);
		archive_set_error(a, ENOMEM, "lz4: out of memory");
		return ARCHIVE_FATAL;
	}
	*out = s;
	/* libarchive calls lz4src_close on every path from here, the failed
	 * open included. */
	return archive_read_open(a, s, NULL, lz4src_read, lz4src_close);
}

uint64_t lz4src_consumed(const struct lz4src *s)
{
	return s->consumed;
}
