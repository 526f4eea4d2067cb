/*
 * lz4src.c: LZ4 frame archives decoded here, block by block with liblz4,
 * and handed to libarchive as plain data.
 *
 * libarchive reads .tar.lz4 itself, but on a restore its reader cost more
 * CPU than the decoding: its own XXH32 for the content checksum ran at a
 * third of libxxhash's speed, and every block was copied once more. Here
 * the frame format (magic, descriptor and its checksum, blocks, end mark,
 * content checksum) is read directly: a block stored uncompressed is handed
 * to libarchive where it was read, a compressed one is decoded by
 * LZ4_decompress_safe (with the previous 64 KiB as dictionary when the
 * frame links its blocks), and block and content checksums are checked
 * with libxxhash. Everything that is not an LZ4 frame (the legacy LZ4
 * format included) is still read by libarchive's own filters.
 *
 * Each block is read with one read(): its data, its checksum and the next
 * block's 4-byte header, so nothing is copied between buffers.
 *
 * A reader of the archive format stops at the format's own end, which may
 * come before the frame's end mark and content checksum: extract.c goes on
 * calling lz4src_read() to the end, which checks the rest.
 *
 * Concatenated and skippable frames are read in turn. After the last
 * complete frame only zero bytes (padding) may follow: anything else may be
 * the start of a frame cut short or damaged, and is an error. A frame cut
 * short, a bad descriptor, a block that does not decode and a checksum that
 * does not match are errors that say so.
 */
#include "restore/restore_private.h"

#include "common/common.h"

#include <archive.h>
#include <errno.h>
#include <lz4.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define MAGIC_FRAME 0x184D2204u
#define MAGIC_SKIPPABLE 0x184D2A50u   /* the low four bits are free */
#define DICT_SIZE (64 * 1024)
#define SKIP_CHUNK (64 * 1024)

struct lz4src {
	int fd;
	unsigned char *in;    /* one block as read, its checksum, next header */
	unsigned char *out;   /* one decoded block */
	size_t cap;           /* of in and out: the largest block so far */
	unsigned char *dict;  /* linked blocks: the last decoded bytes */
	size_t dict_len;
	XXH32_state_t *xxh;
	unsigned char ahead[4]; /* header bytes read with the previous block */
	size_t ahead_len;
	uint64_t consumed;    /* compressed bytes read from fd */
	uint64_t frames;      /* frames started */
	/* The frame being read. */
	int in_frame, linked, block_sum, content_sum, has_size;
	size_t block_max;
	uint64_t content_size, decoded;
	int done;             /* no frame follows: the data ended */
};

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int lz4src_probe(int fd)
{
	unsigned char b[4];
	ssize_t n = mr_pread_full(fd, b, sizeof(b), 0);

	return n == (ssize_t)sizeof(b) && le32(b) == MAGIC_FRAME;
}

/* Reads n bytes into p, taking the bytes read ahead first. Returns the
 * number read (less than n only at end of file), or -1 with errno. */
static ssize_t take(struct lz4src *s, unsigned char *p, size_t n)
{
	size_t got = s->ahead_len < n ? s->ahead_len : n;
	ssize_t r;

	memcpy(p, s->ahead, got);
	memmove(s->ahead, s->ahead + got, s->ahead_len - got);
	s->ahead_len -= got;
	if (got == n)
		return (ssize_t)n;
	r = mr_read_full(s->fd, p + got, n - got);
	if (r < 0)
		return -1;
	s->consumed += (uint64_t)r;
	return (ssize_t)(got + (size_t)r);
}

static int grow(struct lz4src *s, size_t block_max)
{
	unsigned char *in, *out;

	if (block_max <= s->cap)
		return 0;
	/* in also holds the block checksum and the next block's header. */
	in = realloc(s->in, block_max + 8);
	if (in == NULL)
		return -1;
	s->in = in;
	out = realloc(s->out, block_max);
	if (out == NULL)
		return -1;
	s->out = out;
	s->cap = block_max;
	return 0;
}

static la_ssize_t fail(struct archive *a, int errnum, const char *msg)
{
	archive_set_error(a, errnum, "%s", msg);
	return -1;
}

static la_ssize_t read_failed(struct archive *a)
{
	archive_set_error(a, errno, "reading the archive failed: %s", strerror(errno));
	return -1;
}

/* Skips a skippable frame (its magic already read). 0 or -1. */
static int skip_frame(struct archive *a, struct lz4src *s)
{
	unsigned char b[4];
	ssize_t r = take(s, b, 4);
	uint32_t left;

	if (r < 0)
		return (int)read_failed(a);
	if (r < 4)
		return (int)fail(a, EIO, "lz4: the archive ends inside a frame");
	left = le32(b);
	if (grow(s, SKIP_CHUNK) < 0)
		return (int)fail(a, ENOMEM, "lz4: out of memory");
	while (left > 0) {
		size_t want = left < SKIP_CHUNK ? left : SKIP_CHUNK;

		r = take(s, s->in, want);
		if (r < 0)
			return (int)read_failed(a);
		if ((size_t)r < want)
			return (int)fail(a, EIO, "lz4: the archive ends inside a frame");
		left -= (uint32_t)want;
	}
	return 0;
}

/* Reads a frame descriptor (after its magic). 0 or -1. */
static int start_frame(struct archive *a, struct lz4src *s)
{
	unsigned char d[15];
	size_t len;
	ssize_t r = take(s, d, 2);
	unsigned flg, bd, id;

	if (r < 0)
		return (int)read_failed(a);
	if (r < 2)
		return (int)fail(a, EIO, "lz4: the archive ends inside a frame");
	flg = d[0];
	bd = d[1];
	if ((flg >> 6) != 1 || (flg & 0x02) != 0 || (bd & 0x8F) != 0)
		return (int)fail(a, EIO, "lz4: unknown frame version or reserved bits set");
	if (flg & 0x01)
		return (int)fail(a, EIO, "lz4: the frame needs a dictionary it does not carry");
	id = (bd >> 4) & 7;
	if (id < 4)
		return (int)fail(a, EIO, "lz4: invalid block size in the frame descriptor");
	len = 2 + ((flg & 0x08) ? 8 : 0);
	r = take(s, d + 2, len - 2 + 1);
	if (r < 0)
		return (int)read_failed(a);
	if ((size_t)r < len - 2 + 1)
		return (int)fail(a, EIO, "lz4: the archive ends inside a frame");
	if (((XXH32(d, len, 0) >> 8) & 0xFF) != d[len])
		return (int)fail(a, EIO, "lz4: frame descriptor checksum mismatch");
	s->linked = (flg & 0x20) == 0;
	s->block_sum = (flg & 0x10) != 0;
	s->content_sum = (flg & 0x04) != 0;
	s->has_size = (flg & 0x08) != 0;
	s->content_size = 0;
	if (s->has_size)
		for (int i = 7; i >= 0; i--)
			s->content_size = s->content_size << 8 | d[2 + i];
	s->block_max = (size_t)1 << (8 + 2 * id);
	if (grow(s, s->block_max) < 0 ||
	    (s->linked && s->dict == NULL && (s->dict = malloc(DICT_SIZE)) == NULL))
		return (int)fail(a, ENOMEM, "lz4: out of memory");
	s->dict_len = 0;
	s->decoded = 0;
	XXH32_reset(s->xxh, 0);
	s->in_frame = 1;
	s->frames++;
	return 0;
}

/* A linked frame's next block may refer to the last 64 KiB decoded. */
static void keep_dict(struct lz4src *s, const unsigned char *p, size_t n)
{
	if (n >= DICT_SIZE) {
		memcpy(s->dict, p + n - DICT_SIZE, DICT_SIZE);
		s->dict_len = DICT_SIZE;
		return;
	}
	if (s->dict_len + n > DICT_SIZE) {
		size_t drop = s->dict_len + n - DICT_SIZE;

		memmove(s->dict, s->dict + drop, s->dict_len - drop);
		s->dict_len -= drop;
	}
	memcpy(s->dict + s->dict_len, p, n);
	s->dict_len += n;
}

/* The end mark was read: checks the content. 0 or -1. */
static int end_frame(struct archive *a, struct lz4src *s)
{
	unsigned char b[4];

	if (s->content_sum) {
		ssize_t r = take(s, b, 4);

		if (r < 0)
			return (int)read_failed(a);
		if (r < 4)
			return (int)fail(a, EIO, "lz4: the archive ends inside a frame");
		if (XXH32_digest(s->xxh) != le32(b))
			return (int)fail(a, EIO, "lz4: content checksum mismatch");
	}
	if (s->has_size && s->decoded != s->content_size)
		return (int)fail(a, EIO, "lz4: the frame holds less or more than it says");
	s->in_frame = 0;
	return 0;
}

/* After the last frame: are the n bytes at p and the rest of the file
 * zero (padding)? 1 yes, 0 no, -1 read error (errno). */
static int rest_is_zero(struct lz4src *s, const unsigned char *p, size_t n)
{
	unsigned char chunk[4096];
	ssize_t r;

	do {
		for (size_t i = 0; i < n; i++)
			if (p[i] != 0)
				return 0;
		r = take(s, chunk, sizeof(chunk));
		if (r < 0)
			return -1;
		p = chunk;
		n = (size_t)r;
	} while (n > 0);
	return 1;
}

la_ssize_t lz4src_read(struct archive *a, void *arg, const void **buf)
{
	struct lz4src *s = arg;
	unsigned char h[4];

	*buf = NULL;
	while (!s->done) {
		const unsigned char *data;
		uint32_t v;
		size_t size, need, n;
		ssize_t r;

		if (!s->in_frame) {
			/* Between frames: a magic, or the end of the data. */
			r = take(s, h, 4);
			if (r < 0)
				return read_failed(a);
			if (r < 4 || (le32(h) != MAGIC_FRAME &&
				      (le32(h) & 0xFFFFFFF0u) != MAGIC_SKIPPABLE)) {
				/* Only zero padding may follow the last frame:
				 * anything else may be a frame cut or damaged at
				 * its start, and the tar reader might take what
				 * came before for the whole archive. */
				int z = s->frames == 0 ? 0 : rest_is_zero(s, h, (size_t)r);

				if (z < 0)
					return read_failed(a);
				if (z == 0)
					return fail(a, EIO, "lz4: bytes after the last frame are not an "
							    "LZ4 frame (cut or damaged)");
				s->done = 1;
				break;
			}
			if (le32(h) != MAGIC_FRAME) {
				if (skip_frame(a, s) < 0)
					return -1;
				continue;
			}
			if (start_frame(a, s) < 0)
				return -1;
		}
		r = take(s, h, 4);
		if (r < 0)
			return read_failed(a);
		if (r < 4)
			return fail(a, EIO, "lz4: the archive ends inside a frame");
		v = le32(h);
		if (v == 0) {
			if (end_frame(a, s) < 0)
				return -1;
			continue;
		}
		size = v & 0x7FFFFFFFu;
		if (size > s->block_max)
			return fail(a, EIO, "lz4: a block is larger than its frame allows");
		/* The block, its checksum, and the next block's header. */
		need = size + (s->block_sum ? 4 : 0);
		r = take(s, s->in, need + 4);
		if (r < 0)
			return read_failed(a);
		if ((size_t)r < need)
			return fail(a, EIO, "lz4: the archive ends inside a frame");
		memcpy(s->ahead, s->in + need, (size_t)r - need);
		s->ahead_len = (size_t)r - need;
		if (s->block_sum && XXH32(s->in, size, 0) != le32(s->in + size))
			return fail(a, EIO, "lz4: block checksum mismatch");
		if (v & 0x80000000u) {
			data = s->in;
			n = size;
		} else {
			int got = s->linked
					  ? LZ4_decompress_safe_usingDict((const char *)s->in, (char *)s->out,
									  (int)size, (int)s->block_max,
									  (const char *)s->dict,
									  (int)s->dict_len)
					  : LZ4_decompress_safe((const char *)s->in, (char *)s->out,
								(int)size, (int)s->block_max);
			if (got < 0)
				return fail(a, EIO, "lz4: a block does not decode (damaged data)");
			data = s->out;
			n = (size_t)got;
		}
		if (s->linked)
			keep_dict(s, data, n);
		if (s->content_sum)
			XXH32_update(s->xxh, data, n);
		s->decoded += n;
		if (n > 0) {
			*buf = data;
			return (la_ssize_t)n;
		}
	}
	return 0;
}

static int lz4src_close(struct archive *a, void *arg)
{
	struct lz4src *s = arg;

	(void)a;
	if (s != NULL) {
		if (s->xxh != NULL)
			XXH32_freeState(s->xxh);
		free(s->in);
		free(s->out);
		free(s->dict);
		free(s);
	}
	return ARCHIVE_OK;
}

int lz4src_open(struct archive *a, int fd, struct lz4src **out)
{
	struct lz4src *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s == NULL || (s->xxh = XXH32_createState()) == NULL) {
		lz4src_close(a, s);
		archive_set_error(a, ENOMEM, "lz4: out of memory");
		return ARCHIVE_FATAL;
	}
	s->fd = fd;
	*out = s;
	/* libarchive calls lz4src_close on every path from here, the failed
	 * open included. */
	return archive_read_open(a, s, NULL, lz4src_read, lz4src_close);
}

uint64_t lz4src_consumed(const struct lz4src *s)
{
	return s->consumed;
}
