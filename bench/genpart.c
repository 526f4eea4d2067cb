/*
 * genpart.c: the benchmarks' partition generator, a thin command line over
 * fixture.h.
 *
 *   genpart [options] generate DIR   writes a partition below DIR
 *   genpart [options] day DIR        applies one day of changes to DIR
 *
 * Prints the resulting fixture_stats as key=value lines on stdout (bytes
 * that really changed: new_bytes + changed_bytes; renames cost nothing),
 * so scripts can `eval` or grep them. Pass the same options to `day` as to
 * `generate`: the seed and the user count decide the changes and the new
 * users' names.
 */
#include "common/common.h"
#include "fixture/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: genpart [--users N] [--messages N] [--folders N] [--seed S]\n"
		"               [--index-kib K] [--no-indexes] [--no-mbox] [--prefix P]\n"
		"               [--cyrus]\n"
		"               generate|day DIR\n\n"
		"  generate DIR  write a partition of Maildir++ users below DIR\n"
		"  day DIR       apply one day of changes (new mail, flag renames, moves,\n"
		"                deletions, index updates, mbox appends, new users)\n"
		"  --cyrus       a Cyrus spool instead (<h>/user/<name>/, N. files,\n"
		"                cyrus.index; a day appends, expunges, changes flags)\n\n"
		"Defaults: 20 users, 300 messages each on average, 4 folders, seed 1,\n"
		"512 KiB dovecot.index.cache in INBOX, an mbox for every 5th user.\n"
		"Prints the statistics as key=value lines.\n");
}

static int parse_uint(const char *opt, const char *val, unsigned *out)
{
	uint64_t v;

	if (val == NULL || mr_parse_u64(val, &v) < 0 || v > 1000000000u) {
		fprintf(stderr, "genpart: %s needs a number\n", opt);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct fixture_settings s;
	struct fixture_stats st;
	struct mr_error err;
	const char *cmd, *dir;
	double t0;
	int i, rc;

	fixture_settings_init(&s);
	mr_error_clear(&err);
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(opt, "--help") == 0) {
			usage(stdout);
			return MR_EX_OK;
		} else if (strcmp(opt, "--no-indexes") == 0) {
			s.with_indexes = 0;
			continue;
		} else if (strcmp(opt, "--cyrus") == 0) {
			s.format = MR_FORMAT_CYRUS;
			continue;
		} else if (strcmp(opt, "--no-mbox") == 0) {
			s.with_mbox = 0;
			continue;
		} else if (strcmp(opt, "--users") == 0) {
			if (parse_uint(opt, val, &s.users) < 0)
				return MR_EX_USAGE;
		} else if (strcmp(opt, "--messages") == 0) {
			if (parse_uint(opt, val, &s.messages) < 0)
				return MR_EX_USAGE;
		} else if (strcmp(opt, "--folders") == 0) {
			if (parse_uint(opt, val, &s.folders) < 0)
				return MR_EX_USAGE;
		} else if (strcmp(opt, "--index-kib") == 0) {
			if (parse_uint(opt, val, &s.index_kib) < 0)
				return MR_EX_USAGE;
		} else if (strcmp(opt, "--seed") == 0) {
			if (val == NULL || mr_parse_u64(val, &s.seed) < 0) {
				fprintf(stderr, "genpart: --seed needs a number\n");
				return MR_EX_USAGE;
			}
		} else if (strcmp(opt, "--prefix") == 0) {
			if (val == NULL) {
				fprintf(stderr, "genpart: --prefix needs a value\n");
				return MR_EX_USAGE;
			}
			s.name_prefix = val;
		} else {
			fprintf(stderr, "genpart: unknown option %s\n", opt);
			usage(stderr);
			return MR_EX_USAGE;
		}
		i++;
	}
	if (argc - i != 2) {
		usage(stderr);
		return MR_EX_USAGE;
	}
	cmd = argv[i];
	dir = argv[i + 1];
	t0 = mr_monotonic();
	if (strcmp(cmd, "generate") == 0) {
		rc = fixture_generate(dir, &s, &st, &err);
	} else if (strcmp(cmd, "day") == 0) {
		rc = fixture_apply_day(dir, &s, &st, &err);
	} else {
		fprintf(stderr, "genpart: unknown command '%s'\n", cmd);
		usage(stderr);
		return MR_EX_USAGE;
	}
	if (rc < 0) {
		fprintf(stderr, "genpart %s %s: %s\n", cmd, dir, err.msg);
		return mr_exit_code_for_errno(err.errnum);
	}
	printf("users=%llu\nfiles=%llu\nbytes=%llu\nnew_files=%llu\nnew_bytes=%llu\n"
	       "renamed=%llu\ndeleted=%llu\nchanged_files=%llu\nchanged_bytes=%llu\n"
	       "seconds=%.3f\n",
	       (unsigned long long)st.users, (unsigned long long)st.files,
	       (unsigned long long)st.bytes, (unsigned long long)st.new_files,
	       (unsigned long long)st.new_bytes, (unsigned long long)st.renamed,
	       (unsigned long long)st.deleted, (unsigned long long)st.changed_files,
	       (unsigned long long)st.changed_bytes, mr_monotonic() - t0);
	return MR_EX_OK;
}
