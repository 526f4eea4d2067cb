/*
 * fuzz_cyrusindex.c: libFuzzer target for the readers of Cyrus's files
 * that the remove guard trusts (sync/cyrusindex.c, sync/cyrusmboxes.c).
 * Each input is parsed as a cyrus.index twice, from a buffer of its own
 * size (so ASan sees any read past the end): as it is, and with its
 * header's and records' CRC-32s made right (as far as its own version and
 * record size say where they are), so that the fuzzer gets past the
 * checksums to the fields behind them. A parse that succeeds must give
 * records sorted by UID, each found again, no more than the header counts,
 * of a version 12 to 19; one that fails must say why. Each input is also
 * read as a mailbox list: its names must be sorted and found again.
 *
 * Seeds: any cyrus.index (tests/sync/data/cyrus36.index, or a generated
 * spool's: `genpart --cyrus generate DIR`) and `ctl_mboxlist -d` output,
 * copied into fuzz/corpus/fuzz_cyrusindex/, which git ignores.
 */
#include "sync/sync.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void crc_at(uint8_t *p, size_t len)
{
	uint32_t c = (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)(len - 4));

	p[len - 4] = (uint8_t)(c >> 24);
	p[len - 3] = (uint8_t)(c >> 16);
	p[len - 2] = (uint8_t)(c >> 8);
	p[len - 1] = (uint8_t)c;
}

static void parse_index(const uint8_t *buf, size_t size)
{
	struct sync_cyrus_index ix;
	char why[256];
	size_t i;

	why[0] = '\0';
	if (sync_cyrus_index_parse(buf, size, &ix, why, sizeof(why)) < 0) {
		if (why[0] == '\0')
			abort();
		return;
	}
	if (ix.version < SYNC_CYRUS_INDEX_MIN_VERSION || ix.version > SYNC_CYRUS_INDEX_MAX_VERSION ||
	    ix.n != ix.num_records)
		abort();
	for (i = 0; i < ix.n; i++) {
		if (i > 0 && ix.v[i - 1].uid > ix.v[i].uid)
			abort();
		if (sync_cyrus_index_find(&ix, ix.v[i].uid) == NULL)
			abort();
	}
	sync_cyrus_index_free(&ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_cyrus_mboxes mb;
	uint8_t *buf = malloc(size ? size : 1);
	size_t hl, rl, i;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	parse_index(buf, size);
	/* the same with its checksums made right */
	if (size >= 24) {
		uint32_t v = be32(buf + 8), start = be32(buf + 12), num = be32(buf + 20);

		hl = sync_cyrus_header_size(v);
		rl = sync_cyrus_record_size(v);
		if (hl > 0 && size >= hl) {
			for (i = 0; i < num && start + (i + 1) * rl <= size && start >= hl; i++)
				crc_at(buf + start + i * rl, rl);
			crc_at(buf, hl);
			parse_index(buf, size);
		}
	}
	memcpy(buf, data, size);
	if (sync_cyrus_mboxes_parse(&mb, (const char *)buf, size) == 0) {
		for (i = 0; i < mb.n; i++) {
			if (i > 0 && strcmp(mb.v[i - 1], mb.v[i]) > 0)
				abort();
			if (!sync_cyrus_mboxes_has(&mb, mb.v[i]))
				abort();
		}
		sync_cyrus_mboxes_free(&mb);
	}
	free(buf);
	return 0;
}
