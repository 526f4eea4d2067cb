/*
 * test_corrupt.c: truncated, corrupt, empty and non-archive input is a
 * clear per-user error (return 1 with an MR_PROBLEM_ARCHIVE problem) that
 * keeps what was extracted and never crashes.
 */
#include "tests/restore/archgen.h"

#include <lz4frame.h>

/* Forty files of 20 KiB of noise each, so a cut lands inside data. */
static void write_user(const char *path, int filter)
{
	struct archive *a = archive_write_new();
	static char data[20 * 1024];
	uint32_t x = 99;
	size_t i;
	int f;

	assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
	if (filter != ARCHIVE_FILTER_NONE)
		assert_int_equal(archive_write_add_filter(a, filter), ARCHIVE_OK);
	/* Small lz4 blocks, as restore_backup_user() writes them: a cut
	 * loses only the block it falls in. */
	if (filter == ARCHIVE_FILTER_LZ4)
		assert_int_equal(archive_write_set_filter_option(a, "lz4", "block-size", "4"),
				 ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (f = 0; f < 40; f++) {
		char name[64];

		for (i = 0; i < sizeof(data); i++) {
			x = x * 1103515245 + 12345;
			data[i] = (char)(x >> 16);
		}
		snprintf(name, sizeof(name), "cur/msg%02d", f);
		ag_file(a, name, data, sizeof(data), 0600, 1500000000 + f, 0);
	}
	ag_close(a);
}

static off_t file_size(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static void expect_archive_error(const char *arc, const char *work, struct restore_stats *st)
{
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct mr_error err;
	int rc = ag_extract(arc, work, NULL, st, &pb, &err);

	if (rc != 1)
		fail_msg("%s: expected 1, got %d (%s)", arc, rc, err.msg);
	assert_true(mr_problems_count(&pb, MR_PROBLEM_ARCHIVE) >= 1);
	/* No temporary file survives a failure. */
	assert_int_equal(tu_sh("test -z \"$(find '%s' -name '.mrx.*')\"", work), 0);
	mr_problems_reset(&pb);
}

static void test_truncated_keeps_partial(void **state)
{
	static const int filters[] = { ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_LZ4, ARCHIVE_FILTER_GZIP,
				       ARCHIVE_FILTER_ZSTD, ARCHIVE_FILTER_XZ };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		char *root = tu_tmpdir(), *arc = tu_path(root, "u.tar"), *work = tu_path(root, "work");
		struct restore_stats st;

		write_user(arc, filters[i]);
		assert_int_equal(truncate(arc, file_size(arc) / 2), 0);
		expect_archive_error(arc, work, &st);
		/* What came before the cut is there and whole. */
		assert_true(st.files >= 5);
		assert_true(st.files < 40);
		assert_int_equal(ag_lstat(work, "cur/msg00").st_size, 20 * 1024);
		assert_int_equal(ag_lstat(work, "cur/msg00").st_mtim.tv_sec, 1500000000);
		assert_false(ag_exists(work, "cur/msg39"));
		free(work);
		free(arc);
		tu_rmtree(root);
	}
}

enum { F_CONTENT_SUM = 1, F_BLOCK_SUM = 2, F_LINKED = 4, F_SIZE = 8, F_SMALL_BLOCKS = 16 };

/* Appends one LZ4 frame of data to f, made by liblz4 with the given F_
 * flags. */
static void put_frame_with(FILE *f, const void *data, size_t len, int flags)
{
	LZ4F_preferences_t pr;
	size_t cap, n;
	void *buf;

	memset(&pr, 0, sizeof(pr));
	if (flags & F_CONTENT_SUM)
		pr.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	if (flags & F_BLOCK_SUM)
		pr.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
	pr.frameInfo.blockMode = (flags & F_LINKED) ? LZ4F_blockLinked : LZ4F_blockIndependent;
	if (flags & F_SIZE)
		pr.frameInfo.contentSize = len;
	pr.frameInfo.blockSizeID = (flags & F_SMALL_BLOCKS) ? LZ4F_max64KB : LZ4F_max4MB;
	cap = LZ4F_compressFrameBound(len, &pr);
	buf = malloc(cap);
	assert_non_null(buf);
	n = LZ4F_compressFrame(buf, cap, data, len, &pr);
	assert_false(LZ4F_isError(n));
	assert_int_equal(fwrite(buf, 1, n, f), n);
	free(buf);
}

static void put_frame(FILE *f, const void *data, size_t len)
{
	put_frame_with(f, data, len, F_CONTENT_SUM);
}

/* Flips one bit in the byte at off of root/name. */
static void flip_byte(const char *root, const char *name, size_t off)
{
	size_t len = 0;
	char *data = tu_read_file(root, name, &len);

	assert_non_null(data);
	assert_true(off < len);
	data[off] ^= 0x20;
	tu_write_file(root, name, data, len);
	free(data);
}

/* LZ4 frames as other tools write them, read by liblz4 (lz4src.c): frames
 * in a row with a skippable frame between and bytes after the last; a
 * frame whose data is damaged; a frame cut short. */
static void test_lz4_frames(void **state)
{
	char *root = tu_tmpdir(), *plain = tu_path(root, "u.tar"), *work = tu_path(root, "work");
	char *multi = tu_path(root, "multi.tar.lz4"), *bad = tu_path(root, "bad.tar.lz4");
	char *cut = tu_path(root, "cut.tar.lz4"), *ref = tu_path(root, "ref");
	static const unsigned char skippable[] = { 0x53, 0x2A, 0x4D, 0x18, 5, 0, 0, 0,
						   'h', 'e', 'l', 'l', 'o' };
	static const char zeros[512];
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	size_t len = 0;
	char *tar;
	FILE *f;

	(void)state;
	write_user(plain, ARCHIVE_FILTER_NONE);
	tar = tu_read_file(root, "u.tar", &len);
	assert_non_null(tar);
	assert_int_equal(ag_extract(plain, ref, NULL, &st, &pb, &err), 0);

	f = fopen(multi, "wb");
	assert_non_null(f);
	put_frame(f, tar, len / 3);
	assert_int_equal(fwrite(skippable, 1, sizeof(skippable), f), sizeof(skippable));
	put_frame(f, tar + len / 3, len - len / 3);
	assert_int_equal(fwrite(zeros, 1, sizeof(zeros), f), sizeof(zeros));   /* padding */
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ag_extract(multi, work, NULL, &st, &pb, &err), 0);
	assert_int_equal(pb.n, 0);
	assert_int_equal(st.files, 40);
	/* The same files with the same content, modes and times (the
	 * archive has no folder entries, so folder times differ). */
	assert_int_equal(tu_sh("diff -r '%s' '%s'", ref, work), 0);
	assert_int_equal(tu_sh("cd '%s' && find . -type f -printf '%%p %%s %%m %%T@\\n' | sort >../a && "
			       "cd '%s' && find . -type f -printf '%%p %%s %%m %%T@\\n' | sort >../b && "
			       "cmp ../a ../b", ref, work), 0);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	/* Anything but zeros after the last frame is an error (all files are
	 * still there: the damage is after the tar's end). */
	f = fopen(multi, "ab");
	assert_non_null(f);
	assert_int_equal(fwrite("trailing bytes", 1, 14, f), 14);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ag_extract(multi, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "not an LZ4 frame"));
	assert_int_equal(st.files, 40);
	mr_problems_reset(&pb);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	/* Frames split where a tar entry ends (4 entries of 512 + 20480
	 * bytes), the second frame's magic damaged: the tar reader would take
	 * the first 4 files for the whole archive (a reviewer's find). */
	{
		size_t second;

		f = fopen(multi, "wb");
		assert_non_null(f);
		put_frame(f, tar, 4 * 20992);
		second = (size_t)ftell(f);   /* where the second frame starts */
		put_frame(f, tar + 4 * 20992, len - 4 * 20992);
		assert_int_equal(fclose(f), 0);
		flip_byte(root, "multi.tar.lz4", second);
	}
	assert_int_equal(ag_extract(multi, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "not an LZ4 frame"));
	assert_int_equal(st.files, 4);
	mr_problems_reset(&pb);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	/* Noise does not compress: the blocks are stored as they are, so a
	 * flipped byte is found by the content checksum alone. */
	f = fopen(bad, "wb");
	assert_non_null(f);
	put_frame(f, tar, len);
	assert_int_equal(fclose(f), 0);
	flip_byte(root, "bad.tar.lz4", (size_t)file_size(bad) / 2);
	assert_int_equal(ag_extract(bad, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "lz4: content checksum mismatch"));
	mr_problems_reset(&pb);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	/* A frame with block checksums only, after one with a content
	 * checksum: its blocks are checked, and the damage found. */
	f = fopen(bad, "wb");
	assert_non_null(f);
	put_frame(f, tar, len / 3);
	put_frame_with(f, tar + len / 3, len - len / 3, F_BLOCK_SUM);
	assert_int_equal(fclose(f), 0);
	flip_byte(root, "bad.tar.lz4", (size_t)file_size(bad) * 3 / 4);
	assert_int_equal(ag_extract(bad, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "lz4: "));
	assert_false(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "content checksum"));
	mr_problems_reset(&pb);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	f = fopen(cut, "wb");
	assert_non_null(f);
	put_frame_with(f, tar, len, F_CONTENT_SUM | F_SMALL_BLOCKS);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(truncate(cut, file_size(cut) / 2), 0);
	assert_int_equal(ag_extract(cut, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "ends inside a frame"));
	assert_true(st.files >= 5);
	assert_false(ag_exists(work, "cur/msg39"));
	mr_problems_reset(&pb);

	free(tar);
	free(ref);
	free(cut);
	free(bad);
	free(multi);
	free(work);
	free(plain);
	tu_rmtree(root);
}

/* Compressible data in frames whose blocks refer to earlier ones (64 KiB
 * blocks, so references cross blocks), with a content size; and a damaged
 * frame descriptor. */
static void test_lz4_linked(void **state)
{
	char *root = tu_tmpdir(), *plain = tu_path(root, "u.tar"), *work = tu_path(root, "work");
	char *arc = tu_path(root, "linked.tar.lz4"), *ref = tu_path(root, "ref");
	static const int variants[] = { F_LINKED | F_SMALL_BLOCKS | F_SIZE | F_CONTENT_SUM,
					F_LINKED | F_SMALL_BLOCKS | F_BLOCK_SUM,
					F_LINKED | F_CONTENT_SUM | F_BLOCK_SUM | F_SIZE,
					F_SMALL_BLOCKS };
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	struct archive *a;
	static char body[48 * 1024];
	size_t len = 0, i, v;
	char *tar;
	FILE *f;

	(void)state;
	a = ag_open(plain, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE);
	for (i = 0; i < 30; i++) {
		char name[64];
		size_t o = 0;

		/* Text that repeats within and across messages. */
		while (o + 64 < sizeof(body))
			o += (size_t)snprintf(body + o, sizeof(body) - o,
					      "Line %zu of message %zu: the meeting moved to %zu.\n",
					      o % 97, i % 7, (o + i) % 13);
		snprintf(name, sizeof(name), "cur/%zu.M%zu.host:2,S", 1500000000 + i, i);
		ag_file(a, name, body, o, 0600, 1500000000 + (time_t)i, 0);
	}
	ag_close(a);
	tar = tu_read_file(root, "u.tar", &len);
	assert_non_null(tar);
	assert_int_equal(ag_extract(plain, ref, NULL, &st, &pb, &err), 0);

	for (v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		f = fopen(arc, "wb");
		assert_non_null(f);
		put_frame_with(f, tar, len, variants[v]);
		assert_int_equal(fclose(f), 0);
		/* It compresses: the blocks are decoded, not stored. */
		assert_true(file_size(arc) < (off_t)len / 4);
		assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 0);
		assert_int_equal(pb.n, 0);
		assert_int_equal(st.files, 30);
		assert_int_equal(tu_sh("diff -r '%s' '%s'", ref, work), 0);
		assert_int_equal(tu_sh("rm -rf '%s'", work), 0);
	}

	/* The descriptor's checksum byte (magic, FLG, BD, content size, HC). */
	f = fopen(arc, "wb");
	assert_non_null(f);
	put_frame_with(f, tar, len, F_SIZE | F_CONTENT_SUM);
	assert_int_equal(fclose(f), 0);
	flip_byte(root, "linked.tar.lz4", 14);
	assert_int_equal(ag_extract(arc, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "descriptor checksum"));
	assert_int_equal(st.files, 0);
	mr_problems_reset(&pb);

	free(tar);
	free(ref);
	free(arc);
	free(work);
	free(plain);
	tu_rmtree(root);
}

/* gzip: libarchive's reader never checks a member's CRC-32; ours (zlib)
 * does. Noise makes stored deflate blocks, so a flipped byte decodes
 * without complaint and only the CRC-32 after the tar's end finds it. And
 * members in a row (as `cat a.gz b.gz` makes) with bytes after the last. */
static void test_gzip_members(void **state)
{
	char *root = tu_tmpdir(), *plain = tu_path(root, "u.tar"), *work = tu_path(root, "work");
	char *ref = tu_path(root, "ref"), *bad = tu_path(root, "bad.tar.gz");
	char *multi = tu_path(root, "multi.tar.gz");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;

	(void)state;
	write_user(plain, ARCHIVE_FILTER_NONE);
	assert_int_equal(ag_extract(plain, ref, NULL, &st, &pb, &err), 0);

	assert_int_equal(tu_sh("gzip -c '%s' > '%s'", plain, bad), 0);
	flip_byte(root, "bad.tar.gz", (size_t)file_size(bad) / 2);
	assert_int_equal(ag_extract(bad, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "gzip: incorrect data check"));
	mr_problems_reset(&pb);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	assert_int_equal(tu_sh("cd '%s' && head -c 300000 u.tar | gzip > '%s' && "
			       "tail -c +300001 u.tar | gzip >> '%s' && head -c 700 /dev/zero >> '%s'",
			       root, multi, multi, multi), 0);
	assert_int_equal(ag_extract(multi, work, NULL, &st, &pb, &err), 0);
	assert_int_equal(pb.n, 0);
	assert_int_equal(st.files, 40);
	assert_int_equal(tu_sh("diff -r '%s' '%s'", ref, work), 0);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	/* Anything but zeros after the last member is an error. */
	assert_int_equal(tu_sh("printf 'junk' >> '%s'", multi), 0);
	assert_int_equal(ag_extract(multi, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "not a gzip member"));
	assert_int_equal(st.files, 40);
	mr_problems_reset(&pb);
	assert_int_equal(tu_sh("rm -rf '%s'", work), 0);

	/* Members split where a tar entry ends (4 entries of 512 + 20480
	 * bytes), the second member's first byte damaged: the tar reader
	 * would take the first 4 files for the whole archive. */
	assert_int_equal(tu_sh("cd '%s' && head -c 83968 u.tar | gzip > '%s' && "
			       "tail -c +83969 u.tar | gzip | (printf 'X'; tail -c +2) >> '%s'",
			       root, multi, multi), 0);
	assert_int_equal(ag_extract(multi, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "not a gzip member"));
	assert_int_equal(st.files, 4);
	mr_problems_reset(&pb);

	free(multi);
	free(bad);
	free(ref);
	free(work);
	free(plain);
	tu_rmtree(root);
}

static void test_corrupt_middle(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "u.tar.gz"), *work = tu_path(root, "work");
	struct restore_stats st;
	off_t size;

	(void)state;
	write_user(arc, ARCHIVE_FILTER_GZIP);
	size = file_size(arc);
	/* Overwrite 4 KiB in the middle of the deflate stream. */
	assert_int_equal(tu_sh("dd if=/dev/urandom of='%s' bs=1 seek=%lld count=4096 conv=notrunc "
			       "status=none", arc, (long long)size / 2), 0);
	expect_archive_error(arc, work, &st);
	assert_true(ag_exists(work, "cur/msg00"));
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_corrupt_tar_header(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "u.tar"), *work = tu_path(root, "work");
	struct restore_stats st;
	int fd;

	(void)state;
	write_user(arc, ARCHIVE_FILTER_NONE);
	/* Smash the checksum field of the 11th entry's header: each entry
	 * is a 512-byte header (no pax extension is needed) and 20 KiB. */
	fd = open(arc, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XXXXXXXX", 8, 10L * (512 + 20 * 1024) + 148), 8);
	close(fd);
	expect_archive_error(arc, work, &st);
	assert_true(st.files >= 9);
	free(work);
	free(arc);
	tu_rmtree(root);
}

static void test_empty_and_garbage(void **state)
{
	char *root = tu_tmpdir(), *work = tu_path(root, "work");
	char *empty = tu_path(root, "empty.tar"), *garbage = tu_path(root, "garbage.tar.gz");
	char *text = tu_path(root, "text.tar"), *gzempty = tu_path(root, "gzempty.tar.gz");
	struct mr_problems pb = { NULL, 0, 0, 0 };
	struct restore_stats st;
	struct mr_error err;
	static char noise[64 * 1024];
	uint32_t x = 7;
	size_t i;

	(void)state;
	tu_write_file(root, "empty.tar", "", 0);
	for (i = 0; i < sizeof(noise); i++) {
		x = x * 1103515245 + 12345;
		noise[i] = (char)(x >> 16);
	}
	tu_write_file(root, "garbage.tar.gz", noise, sizeof(noise));
	tu_write_file(root, "text.tar", "From: someone\nSubject: not an archive\n\nhello\n", 45);
	assert_int_equal(tu_sh("printf '' | gzip > '%s'", gzempty), 0);

	assert_int_equal(ag_extract(empty, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "empty"));
	mr_problems_reset(&pb);
	assert_int_equal(ag_extract(gzempty, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "empty"));
	mr_problems_reset(&pb);
	assert_int_equal(ag_extract(garbage, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "not a readable archive"));
	mr_problems_reset(&pb);
	assert_int_equal(ag_extract(text, work, NULL, &st, &pb, &err), 1);
	assert_true(ag_has_problem(&pb, MR_PROBLEM_ARCHIVE, "not a readable archive"));
	assert_int_equal(st.entries, 0);
	/* Nothing was made of them. */
	assert_int_equal(tu_sh("test -z \"$(ls -A '%s')\"", work), 0);
	mr_problems_reset(&pb);
	free(gzempty);
	free(text);
	free(garbage);
	free(empty);
	free(work);
	tu_rmtree(root);
}

/* Cut at every 97th byte of a small archive: never a crash, never a
 * result other than 0 or 1, never a temporary file left. */
static void test_every_cut(void **state)
{
	char *root = tu_tmpdir(), *arc = tu_path(root, "u.tar.lz4"), *cut = tu_path(root, "cut");
	char *work = tu_path(root, "work");
	struct archive *a;
	off_t size, n;

	(void)state;
	a = ag_open(arc, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_LZ4);
	ag_dir(a, "cur", 0700, 1500000000);
	ag_file(a, "cur/a", "aaaa", 4, 0600, 1500000000, 0);
	ag_symlink(a, "l", "cur/a");
	ag_hardlink(a, "h", "cur/a");
	ag_file(a, "b", "bbbbbbbbbbbb", 12, 0600, 1500000000, 0);
	ag_close(a);
	size = file_size(arc);
	for (n = 0; n < size; n += 97) {
		struct mr_problems pb = { NULL, 0, 0, 0 };
		struct restore_stats st;
		struct mr_error err;
		int rc;

		assert_int_equal(tu_sh("rm -rf '%s' && head -c %lld '%s' > '%s'", work, (long long)n,
				       arc, cut), 0);
		rc = ag_extract(cut, work, NULL, &st, &pb, &err);
		assert_int_equal(rc, 1);
		mr_problems_reset(&pb);
	}
	free(work);
	free(cut);
	free(arc);
	tu_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_truncated_keeps_partial),
		cmocka_unit_test(test_corrupt_middle),
		cmocka_unit_test(test_lz4_frames),
		cmocka_unit_test(test_lz4_linked),
		cmocka_unit_test(test_gzip_members),
		cmocka_unit_test(test_corrupt_tar_header),
		cmocka_unit_test(test_empty_and_garbage),
		cmocka_unit_test(test_every_cut),
	};

	mr_log_quiet = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
