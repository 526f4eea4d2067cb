/*
 * fuzz_uidlist.c: libFuzzer target for the mailbox index reader of the
 * remove guard (sync/uidlist.c). Each input is parsed as a dovecot-uidlist
 * / courierimapuiddb and as a subscriptions file, from a buffer of its own
 * size (so ASan sees any read past the end). When a parse succeeds, the
 * names must be sorted and each found again by sync_index_has(); an
 * index's names must also be non-empty and hold no '/', ':' or ',' (they
 * are base names of files).
 *
 * Each input is also read as a Dovecot transaction log
 * (sync_expunged_parse): the UID ranges it yields must be real, sorted,
 * apart, and found again.
 *
 * Seeds: any dovecot-uidlist, courierimapuiddb, subscriptions or
 * dovecot.index.log file (a
 * test's tree kept with MR_KEEP_TMP=1) copied into fuzz/corpus/fuzz_uidlist/,
 * which git ignores.
 */
#include "sync/sync_private.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct sync_index *ix, int base_names)
{
	size_t i;

	for (i = 0; i < ix->n; i++) {
		const char *name = ix->v[i].name;
		size_t len = strlen(name);

		/* Base names come from file names; subscriptions are only
		 * compared with, never opened. */
		if (base_names && (len == 0 || strchr(name, '/') != NULL ||
				   strchr(name, ':') != NULL || strchr(name, ',') != NULL))
			abort();
		if (i > 0 && strcmp(ix->v[i - 1].name, name) > 0)
			abort();
		if (!sync_index_has(ix, name, len))
			abort();
	}
	if (ix->records < ix->n)
		abort();
}

static void run(const uint8_t *data, size_t size, int subs)
{
	struct sync_index ix;
	char *buf = malloc(size ? size : 1);

	if (buf == NULL)
		return;
	memcpy(buf, data, size);
	memset(&ix, 0, sizeof(ix));
	if ((subs ? sync_subs_parse(&ix, buf, size) : sync_index_parse(&ix, buf, size)) == 0)
		check(&ix, !subs);
	(void)sync_index_clean(&ix);
	sync_index_free(&ix);
	free(buf);
}

/* As a Dovecot transaction log: every range read is a real one. */
static void run_log(const uint8_t *data, size_t size)
{
	struct sync_expunged ex;
	unsigned char *buf = malloc(size ? size : 1);
	size_t i;

	if (buf == NULL)
		return;
	memcpy(buf, data, size);
	memset(&ex, 0, sizeof(ex));
	if (sync_expunged_parse(&ex, buf, size) == 0)
		for (i = 0; i < ex.n; i++)
			if (ex.v[i].lo == 0 || ex.v[i].hi < ex.v[i].lo ||
			    (i > 0 && ex.v[i].lo <= (uint64_t)ex.v[i - 1].hi + 1) ||
			    !sync_expunged_has(&ex, ex.v[i].lo) || !sync_expunged_has(&ex, ex.v[i].hi))
				abort();
	sync_expunged_free(&ex);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size, 0);
	run(data, size, 1);
	run_log(data, size);
	return 0;
}
