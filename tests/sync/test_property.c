/* test_property.c: property and differential test of sync_tree. For each
 * seed: a random Maildir-like tree, a backup of it (cp -a, some times cut
 * to seconds as ustar would), a day of random changes on the source (new,
 * removed, edited, grown and truncated files, flag changes and moves,
 * chmod, touch, symlinks, type changes, folders added and removed); then
 * our sync. Afterwards sync_verify says equal, a second sync writes
 * nothing, the source is stat-for-stat untouched, and `rsync -a --delete
 * --modify-window=-1` run on a copy of the same backup gives a tree equal
 * to ours. */
#include "tests/sync/synctest.h"

#include <sys/stat.h>

#define SEEDS 30

struct rng {
	uint64_t x;
};

static uint32_t rnd(struct rng *r)
{
	r->x ^= r->x << 13;
	r->x ^= r->x >> 7;
	r->x ^= r->x << 17;
	return (uint32_t)(r->x >> 11);
}

static uint32_t below(struct rng *r, uint32_t n)
{
	return n ? rnd(r) % n : 0;
}

/* The source's regular files, kept as the test changes them. */
struct names {
	char **v;
	size_t n, cap;
};

static void names_add(struct names *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	l->v[l->n] = strdup(s);
	assert_non_null(l->v[l->n]);
	l->n++;
}

static void names_del(struct names *l, size_t i)
{
	free(l->v[i]);
	l->v[i] = l->v[--l->n];
}

static void names_free(struct names *l)
{
	while (l->n)
		names_del(l, 0);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static const char *folders[] = {
	"cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Trash/cur", ".Drafts/cur",
	".Archive.2025/cur", "deep/a/b",
};
#define NFOLDERS (sizeof(folders) / sizeof(folders[0]))

static size_t random_size(struct rng *r, int *large_left)
{
	uint32_t k = below(r, 100);

	if (k < 3 && *large_left > 0) {
		(*large_left)--;
		return 1024 * 1024 + below(r, 1536 * 1024);
	}
	if (k < 15)
		return below(r, 200000);
	return below(r, 8000);
}

static void write_random(const char *dir, const char *rel, size_t len, struct rng *r)
{
	char *buf = malloc(len + 1);

	assert_non_null(buf);
	sfx_random(buf, len, rnd(r));
	tu_write_file(dir, rel, buf, len);
	free(buf);
}

static void random_times(const char *dir, const char *rel, struct rng *r)
{
	sfx_set_mtime(dir, rel, 1500000000 + (time_t)below(r, 100000000), (long)below(r, 1000000000));
}

static void random_mode(const char *dir, const char *rel, struct rng *r, int is_dir)
{
	static const mode_t fm[] = { 0600, 0644, 0640, 0400, 0755, 0604 };
	static const mode_t dm[] = { 0700, 0755, 0750, 0711 };
	char *p = tu_path(dir, rel);

	assert_int_equal(chmod(p, is_dir ? dm[below(r, 4)] : fm[below(r, 6)]), 0);
	free(p);
}

static void new_message(const char *dir, struct names *l, struct rng *r, int *large_left)
{
	const char *folder = folders[below(r, NFOLDERS)];
	size_t len = random_size(r, large_left);
	char rel[512];

	if (strstr(folder, "new") || strstr(folder, "tmp") || strstr(folder, "deep"))
		snprintf(rel, sizeof(rel), "%s/17%08u.M%uP%u.host,S=%zu", folder, rnd(r) % 100000000,
			 rnd(r) % 1000000, rnd(r) % 100000, len);
	else
		snprintf(rel, sizeof(rel), "%s/17%08u.M%uP%u.host,S=%zu:2,%s", folder,
			 rnd(r) % 100000000, rnd(r) % 1000000, rnd(r) % 100000, len,
			 below(r, 2) ? "S" : "");
	write_random(dir, rel, len, r);
	random_mode(dir, rel, r, 0);
	random_times(dir, rel, r);
	names_add(l, rel);
}

static void build_tree(const char *dir, struct names *l, struct rng *r)
{
	int large_left = 2, i, n = 40 + (int)below(r, 80);
	size_t k;

	for (k = 0; k < NFOLDERS; k++) {
		char *p = tu_path(dir, folders[k]);
		assert_int_equal(tu_sh("mkdir -p '%s'", p), 0);
		free(p);
	}
	for (i = 0; i < n; i++)
		new_message(dir, l, r, &large_left);
	write_random(dir, "dovecot.index", 1024 * 1024 + below(r, 500000), r);
	names_add(l, "dovecot.index");
	tu_write_file(dir, "subscriptions", "Sent\nTrash\n", 11);
	names_add(l, "subscriptions");
	assert_int_equal(tu_sh("cd '%s' && ln -s cur link-cur && ln -s /nowhere dangling", dir), 0);
	for (k = 0; k < NFOLDERS; k++) {
		random_mode(dir, folders[k], r, 1);
		random_times(dir, folders[k], r);
	}
}

/* Renames a message the way a mail client would. */
static void move_message(const char *dir, struct names *l, size_t i, struct rng *r)
{
	char to[600], *colon, *slash, base[512];
	const char *folder;

	slash = strrchr(l->v[i], '/');
	if (slash == NULL)
		return;
	snprintf(base, sizeof(base), "%s", slash + 1);
	colon = strchr(base, ':');
	if (colon)
		*colon = '\0';
	folder = folders[below(r, NFOLDERS)];
	snprintf(to, sizeof(to), "%s/%s:2,%s", folder, base, below(r, 2) ? "RS" : "ST");
	if (strcmp(to, l->v[i]) == 0)
		return;
	assert_int_equal(tu_sh("cd '%s' && mv '%s' '%s'", dir, l->v[i], to), 0);
	free(l->v[i]);
	l->v[i] = strdup(to);
}

static void mutate(const char *dir, struct names *l, struct rng *r)
{
	int large_left = 1, k, n = (int)below(r, 40);

	for (k = 0; k < n && l->n > 3; k++) {
		size_t i = below(r, (uint32_t)l->n);
		char *p;

		switch (below(r, 12)) {
		case 0:
		case 1:
			new_message(dir, l, r, &large_left);
			break;
		case 2:
			p = tu_path(dir, l->v[i]);
			assert_int_equal(unlink(p), 0);
			free(p);
			names_del(l, i);
			break;
		case 3: {
			/* Edited in place: same size, a few bytes. Not a Maildir
			 * message in cur/ or new/: its name names its content
			 * (never rewritten in place), and the sync trusts that. */
			if (strstr(l->v[i], "cur/17") != NULL || strstr(l->v[i], "new/17") != NULL)
				break;
			p = tu_path(dir, l->v[i]);
			assert_int_equal(tu_sh("printf 'EDIT' | dd of='%s' bs=1 seek=%u conv=notrunc "
					       "status=none", p, below(r, 4000)), 0);
			free(p);
			break;
		}
		case 4:
			p = tu_path(dir, l->v[i]);
			assert_int_equal(tu_sh("head -c %u /dev/urandom >> '%s'", below(r, 300000), p), 0);
			free(p);
			break;
		case 5:
			p = tu_path(dir, l->v[i]);
			assert_int_equal(tu_sh("truncate -s %u '%s'", below(r, 3000), p), 0);
			free(p);
			break;
		case 6:
		case 7:
			move_message(dir, l, i, r);
			break;
		case 8:
			random_mode(dir, l->v[i], r, 0);
			break;
		case 9:
			random_times(dir, l->v[i], r);
			break;
		case 10:
			assert_int_equal(tu_sh("cd '%s' && ln -sfn 'target-%u' link-cur && "
					       "ln -sfn new 'link-%u'", dir, below(r, 5), below(r, 3)), 0);
			break;
		case 11:
			/* A type change: a message becomes a folder. */
			p = tu_path(dir, l->v[i]);
			assert_int_equal(tu_sh("rm '%s' && mkdir '%s' && echo inner > '%s/inner'", p, p,
					       p), 0);
			free(p);
			names_del(l, i);
			break;
		}
	}
	if (below(r, 4) == 0)
		assert_int_equal(tu_sh("rm -rf '%s/.Drafts'", dir), 0);
	if (below(r, 4) == 0)
		assert_int_equal(tu_sh("mkdir -p '%s/.New/cur' && echo hello > '%s/.New/cur/1:2,'", dir,
				       dir), 0);
	if (below(r, 4) == 0)
		assert_int_equal(tu_sh("rm -rf '%s/tmp' && echo file > '%s/tmp'", dir, dir), 0);
}

/* What all seeds together did, so the test notices when its mutations
 * stop reaching a code path. */
static struct sync_stats total;

static void one_seed(unsigned seed, int have_rsync)
{
	struct sfx f;
	struct names l = { 0 };
	struct rng r = { 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x100000001b3ull) };
	char *snap, *rs;
	int i;

	sfx_setup(&f);
	build_tree(f.src, &l, &r);
	sfx_backup(&f);
	/* The backup kept seconds only for some files. */
	for (i = 0; i < 10 && l.n; i++) {
		const char *rel = l.v[below(&r, (uint32_t)l.n)];
		struct stat st = sfx_lstat(f.dst, rel);

		sfx_set_mtime(f.dst, rel, st.st_mtim.tv_sec, 0);
	}
	mutate(f.src, &l, &r);
	rs = tu_path(f.dir, "rsync");
	if (have_rsync)
		assert_int_equal(tu_sh("cp -a '%s' '%s'", f.dst, rs), 0);
	snap = tu_path(f.dir, "snap");
	sfx_snapshot(f.src, snap);

	f.set.max_remove_pct = 100;
	f.beside = seed % 2;
	if (sfx_sync(&f) != 0) {
		sfx_print_problems(&f);
		fail_msg("seed %u: sync failed", seed);
	}
	if (sfx_verify(&f) != 0)
		fail_msg("seed %u: not equal after sync", seed);
	total.copied_files += f.stats.copied_files;
	total.copied_bytes += f.stats.copied_bytes;
	total.renamed += f.stats.renamed;
	total.patched_files += f.stats.patched_files;
	total.patched_bytes += f.stats.patched_bytes;
	total.attic_files += f.stats.attic_files;
	total.meta_fixed += f.stats.meta_fixed;
	total.bytes_written += f.stats.bytes_written;
	sfx_snapshot_same(f.src, snap);
	assert_int_equal(sfx_sync(&f), 0);
	if (f.stats.bytes_written != 0 || f.stats.copied_files != 0 || f.stats.meta_fixed != 0 ||
	    f.stats.attic_files != 0 || f.stats.renamed != 0)
		fail_msg("seed %u: a second sync still did work", seed);

	if (have_rsync) {
		struct mr_problems diffs = { 0 };
		struct mr_error err = { 0 };
		int a, b, rc;
		size_t k;

		/* --modify-window=-1: rsync's quick check then sees nanoseconds
		 * too; by default it matches whole seconds and leaves a
		 * backup's cut times (and folder times) as they were. */
		assert_int_equal(tu_sh("rsync -a --delete --modify-window=-1 '%s/' '%s/'", f.src, rs),
				 0);
		a = tu_open_dir(rs);
		b = tu_open_dir(f.dst);
		rc = sync_verify(a, b, geteuid() == 0, &diffs, &err);
		for (k = 0; k < diffs.n; k++)
			fprintf(stderr, "  rsync vs ours: %s: %s\n", diffs.v[k].path,
				diffs.v[k].message);
		mr_problems_reset(&diffs);
		close(a);
		close(b);
		if (rc != 0)
			fail_msg("seed %u: rsync -a --delete and our sync disagree", seed);
	}
	free(rs);
	free(snap);
	names_free(&l);
	sfx_teardown(&f);
}

static void random_trees(void **state)
{
	int have_rsync = tu_sh("command -v rsync >/dev/null") == 0;
	unsigned seed;

	(void)state;
	if (!have_rsync)
		fprintf(stderr, "rsync not found: the differential part is skipped\n");
	for (seed = 1; seed <= SEEDS; seed++)
		one_seed(seed, have_rsync);
	fprintf(stderr, "%d seeds: copied %llu files (%llu bytes), renamed %llu, patched %llu "
		"(%llu bytes), attic %llu, metadata only %llu, written %llu bytes\n", SEEDS,
		(unsigned long long)total.copied_files, (unsigned long long)total.copied_bytes,
		(unsigned long long)total.renamed, (unsigned long long)total.patched_files,
		(unsigned long long)total.patched_bytes, (unsigned long long)total.attic_files,
		(unsigned long long)total.meta_fixed, (unsigned long long)total.bytes_written);
	assert_true(total.copied_files > 0);
	assert_true(total.renamed > 0);
	assert_true(total.patched_files > 0);
	assert_true(total.attic_files > 0);
	assert_true(total.meta_fixed > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_trees),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
