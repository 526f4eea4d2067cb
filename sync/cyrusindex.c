/*
 * cyrusindex.c: a Cyrus mailbox's own index (cyrus.index) read for the
 * remove guard, and what a Cyrus message file is called.
 *
 * The format (Cyrus's imap/mailbox.h and mailbox.c, mailbox_buf_to_index_
 * header and _record): every field big-endian. The header starts with
 *   0 generation_no, 4 format, 8 minor_version, 12 start_offset,
 *   16 record_size, 20 num_records, 28 last_uid, 44 uidvalidity,
 *   exists at 84 (at 60 from version 19), and ends with a CRC-32 of the
 *   bytes before it: the header is 128 bytes in versions 12 and 13 and 160
 *   in versions 14 to 19. num_records records of record_size bytes follow
 *   at start_offset: 0 uid, 12 size, 32 system_flags (the high 16 bits are
 *   Cyrus's internal flags: 1<<31 expunged, 1<<30 unlinked, 1<<29
 *   archived), each ending with a CRC-32 of the bytes before it: records
 *   are 96 bytes in version 12, 104 in 13 to 15 and 112 in 16 to 19.
 * Cyrus 2.4 writes version 12, 2.5 and 3.0 write 13, 3.2 writes 16, 3.4 to
 * 3.8 write 17, 3.10 and 3.12 write 19. Anything else (older versions,
 * 3.13's 20 with its 64-bit fields, a record size or start that does not
 * fit its version, a file shorter than its records, a checksum that fails)
 * is refused with the reason, never guessed at.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc_of(const unsigned char *p, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

size_t sync_cyrus_header_size(uint32_t version)
{
	if (version == 12 || version == 13)
		return 128;
	if (version >= 14 && version <= SYNC_CYRUS_INDEX_MAX_VERSION)
		return 160;
	return 0;
}

size_t sync_cyrus_record_size(uint32_t version)
{
	if (version == 12)
		return 96;
	if (version >= 13 && version <= 15)
		return 104;
	if (version >= 16 && version <= SYNC_CYRUS_INDEX_MAX_VERSION)
		return 112;
	return 0;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct sync_cyrus_record *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

int sync_cyrus_index_parse(const unsigned char *buf, size_t len, struct sync_cyrus_index *ix,
			   char *why, size_t whylen)
{
	size_t hlen, rlen, i;
	uint64_t need;

	memset(ix, 0, sizeof(*ix));
	if (len < 12) {
		snprintf(why, whylen, "truncated: %zu bytes, not even a version", len);
		goto bad;
	}
	ix->generation = be32(buf);
	ix->format = be32(buf + 4);
	ix->version = be32(buf + 8);
	hlen = sync_cyrus_header_size(ix->version);
	if (hlen == 0) {
		snprintf(why, whylen,
			 "minor version %u is not one that Cyrus 2.4 to 3.12 writes (%d to %d)",
			 ix->version, SYNC_CYRUS_INDEX_MIN_VERSION, SYNC_CYRUS_INDEX_MAX_VERSION);
		goto bad;
	}
	if (len < hlen) {
		snprintf(why, whylen, "truncated: %zu bytes, the version %u header needs %zu", len,
			 ix->version, hlen);
		goto bad;
	}
	if (be32(buf + hlen - 4) != crc_of(buf, hlen - 4)) {
		snprintf(why, whylen, "the header's checksum fails");
		goto bad;
	}
	ix->start_offset = be32(buf + 12);
	ix->record_size = be32(buf + 16);
	ix->num_records = be32(buf + 20);
	ix->last_uid = be32(buf + 28);
	ix->uidvalidity = be32(buf + 44);
	ix->exists = be32(buf + (ix->version >= 19 ? 60 : 84));
	rlen = sync_cyrus_record_size(ix->version);
	if (ix->record_size != rlen || ix->start_offset < hlen) {
		snprintf(why, whylen,
			 "record size %u and start %u do not fit version %u (%zu, at least %zu)",
			 ix->record_size, ix->start_offset, ix->version, rlen, hlen);
		goto bad;
	}
	need = (uint64_t)ix->start_offset + (uint64_t)ix->num_records * rlen;
	if (need > len) {
		snprintf(why, whylen, "truncated: %zu bytes, %u records need %llu", len,
			 ix->num_records, (unsigned long long)need);
		goto bad;
	}
	if (ix->num_records > 0) {
		ix->v = calloc(ix->num_records, sizeof(*ix->v));
		if (ix->v == NULL) {
			errno = ENOMEM;
			return -1;
		}
	}
	for (i = 0; i < ix->num_records; i++) {
		const unsigned char *r = buf + ix->start_offset + i * rlen;

		if (be32(r + rlen - 4) != crc_of(r, rlen - 4)) {
			snprintf(why, whylen, "record %zu's checksum fails", i + 1);
			sync_cyrus_index_free(ix);
			goto bad;
		}
		ix->v[i].uid = be32(r);
		ix->v[i].size = be32(r + 12);
		ix->v[i].flags = be32(r + 32);
	}
	ix->n = ix->num_records;
	/* Cyrus appends in UID order; a sort costs nothing then. */
	if (ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), rec_cmp);
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int sync_cyrus_index_read(int folder_fd, struct sync_cyrus_index *ix, char *why, size_t whylen)
{
	unsigned char *buf = NULL;
	struct stat st;
	ssize_t got;
	int fd, rc = -1, e;

	memset(ix, 0, sizeof(*ix));
	why[0] = '\0';
	fd = sync_src_openat(folder_fd, SYNC_CYRUS_INDEX, O_RDONLY);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		e = errno;
		snprintf(why, whylen, "open failed: %s", strerror(e));
		errno = e;
		return -1;
	}
	if (mr_io->fstat(fd, &st) < 0) {
		e = errno;
		snprintf(why, whylen, "fstat failed: %s", strerror(e));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SYNC_INDEX_MAX) {
		e = EINVAL;
		snprintf(why, whylen, "not a regular file of at most %u bytes", SYNC_INDEX_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		e = ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	got = mr_read_full(fd, buf, (size_t)st.st_size);
	if (got < 0) {
		e = errno;
		snprintf(why, whylen, "read failed: %s", strerror(e));
		goto out;
	}
	if (sync_cyrus_index_parse(buf, (size_t)got, ix, why, whylen) < 0) {
		e = errno;
		goto out;
	}
	rc = 1;
	e = 0;
out:
	free(buf);
	mr_close(fd);
	if (rc < 0)
		errno = e;
	return rc;
}

const struct sync_cyrus_record *sync_cyrus_index_find(const struct sync_cyrus_index *ix,
						      uint32_t uid)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->v[mid].uid == uid)
			return &ix->v[mid];
		if (ix->v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void sync_cyrus_index_free(struct sync_cyrus_index *ix)
{
	free(ix->v);
	memset(ix, 0, sizeof(*ix));
}

int sync_cyrus_message_name(const char *name, uint32_t *uid_r)
{
	uint64_t v = 0;
	const char *p;

	for (p = name; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return 0;
	}
	if (p == name || name[0] == '0' || p[0] != '.' || p[1] != '\0')
		return 0;
	if (uid_r != NULL)
		*uid_r = (uint32_t)v;
	return 1;
}
