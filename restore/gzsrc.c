/*
 * gzsrc.c: gzip archives inflated with zlib, which checks each member's
 * CRC-32 and length, and handed to libarchive as plain data.
 *
 * libarchive's gzip reader does not check the CRC-32 in a member's trailer:
 * a .tgz with a damaged byte in a stored deflate block extracts without a
 * word (bsdtar too). zlib's inflate checks the trailer itself. As with LZ4
 * frames (lz4src.c), the tar reader stops at its end-of-archive blocks,
 * before the trailer: extract.c reads the rest through gzsrc_read().
 *
 * Concatenated members are read in turn; after the last complete member
 * only zero bytes (padding) may follow: anything else may be the start of a
 * member cut short or damaged, and is an error. A member cut short or
 * failing its check is an error that says so.
 */
#include "restore/restore_private.h"

#include "common/common.h"

#include <archive.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IN_SIZE (128 * 1024)
#define OUT_SIZE (256 * 1024)

struct gzsrc {
	int fd;
	z_stream z;
	int z_ready;
	unsigned char *in, *out;
	uint64_t consumed;   /* compressed bytes read from fd */
	int in_member;       /* inside a member: its end is still to come */
	int eof, done;
};

int gzsrc_probe(int fd)
{
	unsigned char b[2];

	return mr_pread_full(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b) && b[0] == 0x1f &&
	       b[1] == 0x8b;
}

/* More input after what inflate has not used. 0, or -1 with errno. */
static int fill(struct gzsrc *s)
{
	ssize_t n;

	if (s->eof)
		return 0;
	if (s->z.avail_in > 0)
		memmove(s->in, s->z.next_in, s->z.avail_in);
	s->z.next_in = s->in;
	n = mr_read_full(s->fd, s->in + s->z.avail_in, IN_SIZE - s->z.avail_in);
	if (n < 0)
		return -1;
	if ((size_t)n < IN_SIZE - s->z.avail_in)
		s->eof = 1;
	s->z.avail_in += (uInt)n;
	s->consumed += (uint64_t)n;
	return 0;
}

/* After the last member: is the rest of the file zero bytes (padding)?
 * 1 yes, 0 no, -1 read error (errno). */
static int rest_is_zero(struct gzsrc *s)
{
	for (;;) {
		for (uInt i = 0; i < s->z.avail_in; i++)
			if (s->z.next_in[i] != 0)
				return 0;
		s->z.avail_in = 0;
		if (s->eof)
			return 1;
		if (fill(s) < 0)
			return -1;
	}
}

la_ssize_t gzsrc_read(struct archive *a, void *arg, const void **buf)
{
	struct gzsrc *s = arg;

	*buf = s->out;
	while (!s->done) {
		int r;

		if (s->z.avail_in < 2 && fill(s) < 0) {
			archive_set_error(a, errno, "reading the archive failed: %s", strerror(errno));
			return -1;
		}
		if (!s->in_member) {
			/* Between members: another one, or the end of the data,
			 * where only zero padding may follow. Anything else is a
			 * member cut or damaged at its start, and the tar reader
			 * might take what came before for the whole archive. */
			if (s->z.avail_in < 2 || s->z.next_in[0] != 0x1f || s->z.next_in[1] != 0x8b) {
				int z = rest_is_zero(s);

				if (z < 0) {
					archive_set_error(a, errno, "reading the archive failed: %s",
							  strerror(errno));
					return -1;
				}
				if (z == 0) {
					archive_set_error(a, EIO, "gzip: bytes after the last member are not "
							  "a gzip member (cut or damaged)");
					return -1;
				}
				s->done = 1;
				break;
			}
			if (inflateReset(&s->z) != Z_OK) {
				archive_set_error(a, EIO, "gzip: inflateReset failed");
				return -1;
			}
			s->in_member = 1;
		}
		if (s->z.avail_in == 0) {
			archive_set_error(a, EIO, "gzip: the archive ends inside a member");
			return -1;
		}
		s->z.next_out = s->out;
		s->z.avail_out = OUT_SIZE;
		r = inflate(&s->z, Z_NO_FLUSH);
		if (r == Z_STREAM_END) {
			s->in_member = 0;
		} else if (r == Z_BUF_ERROR && s->eof && s->z.avail_out == OUT_SIZE) {
			archive_set_error(a, EIO, "gzip: the archive ends inside a member");
			return -1;
		} else if (r != Z_OK && r != Z_BUF_ERROR) {
			/* "incorrect data check": the CRC-32 did not match. */
			archive_set_error(a, EIO, "gzip: %s", s->z.msg != NULL ? s->z.msg : "damaged data");
			return -1;
		}
		if (s->z.avail_out < OUT_SIZE)
			return (la_ssize_t)(OUT_SIZE - s->z.avail_out);
		if (r == Z_STREAM_END)
			continue;
		if (r == Z_BUF_ERROR || s->z.avail_in == 0) {
			/* inflate wants more than is buffered. */
			if (s->eof) {
				archive_set_error(a, EIO, "gzip: the archive ends inside a member");
				return -1;
			}
			if (fill(s) < 0) {
				archive_set_error(a, errno, "reading the archive failed: %s",
						  strerror(errno));
				return -1;
			}
		}
	}
	return 0;
}

static int gzsrc_close(struct archive *a, void *arg)
{
	struct gzsrc *s = arg;

	(void)a;
	if (s != NULL) {
		if (s->z_ready)
			inflateEnd(&s->z);
		free(s->in);
		free(s->out);
		free(s);
	}
	return ARCHIVE_OK;
}

int gzsrc_open(struct archive *a, int fd, struct gzsrc **out)
{
	struct gzsrc *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s != NULL) {
		s->in = malloc(IN_SIZE);
		s->out = malloc(OUT_SIZE);
	}
	/* 15 + 16: a gzip wrapper only, its CRC-32 and length checked. */
	if (s == NULL || s->in == NULL || s->out == NULL ||
	    inflateInit2(&s->z, 15 + 16) != Z_OK) {
		gzsrc_close(a, s);
		archive_set_error(a, ENOMEM, "gzip: out of memory");
		return ARCHIVE_FATAL;
	}
	s->z_ready = 1;
	s->fd = fd;
	s->z.next_in = s->in;
	s->z.avail_in = 0;
	*out = s;
	return archive_read_open(a, s, NULL, gzsrc_read, gzsrc_close);
}

uint64_t gzsrc_consumed(const struct gzsrc *s)
{
	return s->consumed;
}
