/*
 * testutil.h: helpers shared by the cmocka tests: a fresh temporary folder
 * per test, files and trees built in it, tree comparison by running a
 * command.
 */
#ifndef MR_TESTUTIL_H
#define MR_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"

/* Creates a fresh temporary directory (under $TMPDIR or /tmp) and returns
 * its malloc'd path. Fails the test on error. */
char *tu_tmpdir(void);
/* Removes a directory tree by path (best effort) and frees path. */
void tu_rmtree(char *path);
/* Writes len bytes of data to dir/rel, creating parent folders. */
void tu_write_file(const char *dir, const char *rel, const void *data, size_t len);
/* Reads dir/rel into a malloc'd buffer; *len_r gets the size. NULL if missing. */
char *tu_read_file(const char *dir, const char *rel, size_t *len_r);
/* Runs a shell command (printf-style); returns its exit status. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Opens a directory by path, failing the test on error. */
int tu_open_dir(const char *path);
/* Builds d/d/d/... levels deep below dirfd, a file "f" every 500 levels,
 * holding one descriptor at a time; returns the deepest folder's fd (the
 * caller adds what it wants there and closes it). */
int tu_build_deep(int dirfd, int levels);
/* Joins two path pieces into a static-free malloc'd string. */
char *tu_path(const char *a, const char *b);

#endif
