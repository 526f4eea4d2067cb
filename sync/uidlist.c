/*
 * uidlist.c: reads what a Maildir folder's own index says it holds, for the
 * remove guard (guard.c): Dovecot's dovecot-uidlist and Courier's
 * courierimapuiddb, and the Maildir++ subscriptions files.
 *
 * The formats, as the servers write them (one record a line, '\n' ends
 * every line, the file replaced whole by a rename):
 *   version 3 (Dovecot):  "3 V<uidvalidity> N<nextuid> [<key><value> ...]"
 *                         then "<uid> [<key><value> ...] :<file name>"
 *   version 1 (Courier, and old Dovecot):
 *                         "1 <uidvalidity> <nextuid>"
 *                         then "<uid> <file name>"
 *   subscriptions:        one folder name a line ("Sent", "INBOX.Sent", or
 *                         Dovecot's newer "V\t2" header and names with tabs
 *                         between hierarchy levels).
 * A message is known by its base name: the file name up to the first ':'
 * (where ":2,<flags>" starts) or ',' (where Dovecot's ",S=<size>" and
 * ",W=<vsize>" start); a Maildir unique name holds neither.
 *
 * The file comes from the damaged source, so nothing in it is trusted: it
 * is opened below the held folder fd with O_NOFOLLOW, read only, never
 * mmapped, up to SYNC_INDEX_MAX bytes; odd lines are skipped and counted,
 * a last line without its '\n' (a torn file) is dropped and marked.
 */
#include "sync/sync_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t sync_index_key(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < len && name[i] != ':' && name[i] != ',' && name[i] != '\0'; i++)
		;
	return i;
}

/* Parses a decimal number of s[0..len). 0 or -1 (empty, not digits,
 * overflow). */
static int parse_u64(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return 0;
}

static int add_name(struct sync_index *ix, char *name, uint64_t uid)
{
	if (ix->n == ix->cap) {
		size_t ncap = ix->cap ? ix->cap * 2 : 64;
		struct sync_index_entry *nv = realloc(ix->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		ix->v = nv;
		ix->cap = ncap;
	}
	ix->v[ix->n].name = name;
	ix->v[ix->n].uid = uid;
	ix->n++;
	return 0;
}

/* 32 hex digits into 16 bytes. 0 or -1. */
static int parse_guid(const char *s, unsigned char guid[16])
{
	int i, hi, lo;

	for (i = 0; i < 16; i++) {
		hi = mr_hex_digit(s[2 * i]);
		lo = mr_hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		guid[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* Reads the header line (NUL-terminated): 0 with ix->version and
 * ix->next_uid set, or -1 when it is no header this reader knows. */
static int parse_header(struct sync_index *ix, const char *line)
{
	const char *p, *sp;
	int have_v = 0, have_n = 0;
	uint64_t v;

	if (line[0] == '1' && line[1] == ' ') {
		/* "1 <uidvalidity> <nextuid>" */
		p = line + 2;
		sp = strchr(p, ' ');
		if (sp == NULL || parse_u64(p, (size_t)(sp - p), &v) < 0)
			return -1;
		p = sp + 1;
		sp = strchr(p, ' ');
		if (parse_u64(p, sp ? (size_t)(sp - p) : strlen(p), &ix->next_uid) < 0)
			return -1;
		ix->version = 1;
		return 0;
	}
	if (line[0] != '3' || line[1] != ' ')
		return -1;
	for (p = line + 2; *p != '\0'; p = *sp ? sp + 1 : sp) {
		sp = strchr(p, ' ');
		if (sp == NULL)
			sp = p + strlen(p);
		if (*p == 'V') {
			have_v = parse_u64(p + 1, (size_t)(sp - p - 1), &v) == 0;
		} else if (*p == 'N') {
			have_n = parse_u64(p + 1, (size_t)(sp - p - 1), &ix->next_uid) == 0;
		} else if (*p == 'G' && sp - p == 33) {
			/* The mailbox GUID, 32 hex digits. */
			ix->have_guid = parse_guid(p + 1, ix->guid) == 0;
		}
	}
	if (!have_v || !have_n)
		return -1;
	ix->version = 3;
	return 0;
}

/* Reads one record line (NUL-terminated, in place): its base name goes
 * into ix. 0, 1 when the line is odd (skipped), -1 on ENOMEM. */
static int parse_record(struct sync_index *ix, char *line, uint64_t *last_uid)
{
	char *sp = strchr(line, ' '), *name;
	uint64_t uid;
	size_t klen;

	if (sp == NULL || parse_u64(line, (size_t)(sp - line), &uid) < 0)
		return 1;
	if (ix->version == 3) {
		/* Extension fields never hold a space; the name follows " :". */
		if (sp[1] == ':')
			name = sp + 2;
		else if ((name = strstr(sp, " :")) != NULL)
			name += 2;
		else
			return 1;
	} else {
		name = sp + 1;
	}
	/* UIDs only grow. (Not bounded by the header's next UID: Dovecot
	 * appends records to its uidlist without rewriting the header, so
	 * "N1" may well head UIDs 1 to 500.) */
	if (uid == 0 || uid <= *last_uid)
		return 1;
	if (*name == '\0' || strchr(name, '/') != NULL)
		return 1;
	klen = sync_index_key(name, strlen(name));
	if (klen == 0)
		return 1;
	name[klen] = '\0';
	*last_uid = uid;
	return add_name(ix, name, uid) < 0 ? -1 : 0;
}

static int cmp_names(const void *a, const void *b)
{
	const struct sync_index_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Splits buf into lines in place; calls fn on each complete one. Marks a
 * last line without '\n' as torn and drops it. */
static int for_lines(struct sync_index *ix, char *buf, size_t len,
		     int (*fn)(struct sync_index *ix, char *line, size_t lineno, void *arg),
		     void *arg)
{
	size_t off = 0, lineno = 0;
	int r;

	while (off < len) {
		char *nl = memchr(buf + off, '\n', len - off);
		char *line = buf + off;

		if (nl == NULL) {
			ix->torn = 1;
			break;
		}
		*nl = '\0';
		off = (size_t)(nl - buf) + 1;
		if (memchr(line, '\0', (size_t)(nl - line)) != NULL) {
			/* A NUL inside a line: zeroed blocks of a damaged file. */
			ix->bad_lines++;
			lineno++;
			continue;
		}
		r = fn(ix, line, lineno++, arg);
		if (r != 0)
			return r;
	}
	return 0;
}

static int uidlist_line(struct sync_index *ix, char *line, size_t lineno, void *arg)
{
	uint64_t *last_uid = arg;
	int r;

	if (lineno == 0)
		return parse_header(ix, line) < 0 ? 1 : 0;
	r = parse_record(ix, line, last_uid);
	if (r < 0)
		return -1;
	if (r > 0)
		ix->bad_lines++;
	else
		ix->records++;
	return 0;
}

int sync_index_parse(struct sync_index *ix, char *buf, size_t len)
{
	uint64_t last_uid = 0;
	int r;

	ix->version = 0;
	r = for_lines(ix, buf, len, uidlist_line, &last_uid);
	if (r < 0) {
		errno = ENOMEM;
		return -1;
	}
	if (r > 0 || ix->version == 0) {
		errno = EINVAL;
		return -1;
	}
	if (ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), cmp_names);
	return 0;
}

static int subs_line(struct sync_index *ix, char *line, size_t lineno, void *arg)
{
	char *p;

	(void)arg;
	/* Dovecot's newer subscriptions file starts with "V\t2". */
	if (lineno == 0 && strcmp(line, "V\t2") == 0)
		return 0;
	if (*line == '\0')
		return 0;
	for (p = line; *p != '\0'; p++)
		if (*p == '\t')
			*p = '.';
	if (strncmp(line, "INBOX.", 6) == 0)
		line += 6;
	ix->records++;
	return add_name(ix, line, 0) < 0 ? -1 : 0;
}

int sync_subs_parse(struct sync_index *ix, char *buf, size_t len)
{
	ix->version = 1;
	if (for_lines(ix, buf, len, subs_line, NULL) < 0) {
		errno = ENOMEM;
		return -1;
	}
	if (ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), cmp_names);
	return 0;
}

int sync_index_find(const struct sync_index *ix, const char *name, size_t len, uint64_t *uid_r)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(ix->v[mid].name, name, len);

		if (c == 0 && ix->v[mid].name[len] != '\0')
			c = 1;
		if (c == 0) {
			if (uid_r != NULL)
				*uid_r = ix->v[mid].uid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int sync_index_clean(const struct sync_index *ix)
{
	/* A few odd lines are tolerated; many mean the file is not what the
	 * server wrote, and a torn one may have lost names. */
	return ix->version != 0 && !ix->torn && ix->bad_lines * 8 <= ix->records;
}

int sync_index_has(const struct sync_index *ix, const char *name, size_t len)
{
	return sync_index_find(ix, name, len, NULL);
}

void sync_index_free(struct sync_index *ix)
{
	free(ix->v);
	free(ix->buf);
	memset(ix, 0, sizeof(*ix));
}

static const char *const ix_names[SYNC_IX_N] = {
	"dovecot-uidlist", "courierimapuiddb", "dovecot.index.log", "dovecot.index.log.2",
	"subscriptions", "courierimapsubscribed", "dovecot.mailbox.log",
};

const char *sync_ixfile_name(enum sync_ixfile f)
{
	return ix_names[f];
}

int sync_ixfile_of(const char *name)
{
	int i;

	for (i = 0; i < SYNC_IX_N; i++)
		if (strcmp(name, ix_names[i]) == 0)
			return i;
	return -1;
}

/* Reads index file f of the folder d names whole into a malloc'd *buf_r
 * (one byte to spare): from the destination's copy when d says it is the
 * same, else from the source. 1 read, 0 there is none, -1 with errno
 * (unreadable, no regular file, too big). */
static int read_small(const struct sync_ixdir *d, enum sync_ixfile f, char **buf_r,
		      size_t *len_r)
{
	const char *name = ix_names[f];
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc = -1, e = 0;

	if (d->dst_fd >= 0 && (d->same & (1u << f)))
		fd = mr_io->openat(d->dst_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
	else
		fd = sync_src_openat(d->src_fd, name, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (mr_io->fstat(fd, &st) < 0) {
		e = errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > SYNC_INDEX_MAX) {
		e = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		e = ENOMEM;
		goto out;
	}
	/* Read to EOF, not to st_size: a file that grew is refused, one
	 * that shrank ends where it ends. */
	for (;;) {
		ssize_t n = mr_io->read(fd, buf + len, (size_t)st.st_size + 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)st.st_size) {
			e = EFBIG;
			goto out;
		}
	}
	*buf_r = buf;
	*len_r = len;
	buf = NULL;
	rc = 1;
out:
	mr_close(fd);
	free(buf);
	if (rc < 0)
		errno = e;
	return rc;
}

/* Reads and parses the first of files a and b that the folder has.
 * 1 read, 0 neither there, -1/errno. */
static int read_first(const struct sync_ixdir *d, enum sync_ixfile a, enum sync_ixfile b,
		      int (*parse)(struct sync_index *ix, char *buf, size_t len),
		      struct sync_index *ix)
{
	enum sync_ixfile files[2] = { a, b };
	size_t i;
	int r;

	memset(ix, 0, sizeof(*ix));
	for (i = 0; i < 2; i++) {
		r = read_small(d, files[i], &ix->buf, &ix->len);
		if (r == 0)
			continue;
		if (r < 0)
			return -1;
		if (parse(ix, ix->buf, ix->len) < 0) {
			int e = errno;
			sync_index_free(ix);
			errno = e;
			return -1;
		}
		return 1;
	}
	return 0;
}

int sync_index_read_in(const struct sync_ixdir *d, struct sync_index *ix)
{
	return read_first(d, SYNC_IX_UIDLIST, SYNC_IX_COURIER_UIDDB, sync_index_parse, ix);
}

int sync_index_read(int folder_fd, struct sync_index *ix)
{
	struct sync_ixdir d = { folder_fd, -1, 0 };

	return sync_index_read_in(&d, ix);
}

int sync_subs_read_in(const struct sync_ixdir *d, struct sync_index *ix)
{
	return read_first(d, SYNC_IX_SUBS, SYNC_IX_COURIER_SUBS, sync_subs_parse, ix);
}

int sync_subs_read(int folder_fd, struct sync_index *ix)
{
	struct sync_ixdir d = { folder_fd, -1, 0 };

	return sync_subs_read_in(&d, ix);
}

/* ---- Dovecot's transaction log: the UIDs it expunged ------------------ */

/* Record types of dovecot.index.log (lib-index/mail-transaction-log.h).
 * Expunge records carry a protection pattern in their type. */
#define TLOG_TYPE_MASK 0x0fffffffu
#define TLOG_EXPUNGE_PROT 0x0000cd90u
#define TLOG_EXPUNGE (0x00000001u | TLOG_EXPUNGE_PROT)      /* {uid1, uid2}... */
#define TLOG_EXPUNGE_GUID (0x00002000u | TLOG_EXPUNGE_PROT) /* {uid, guid[16]}... */
#define TLOG_HDR_MIN 24

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int add_range(struct sync_expunged *ex, uint32_t lo, uint32_t hi)
{
	if (lo == 0 || hi < lo)
		return 0;
	if (ex->n == ex->cap) {
		size_t ncap = ex->cap ? ex->cap * 2 : 16;
		struct sync_uid_range *nv = realloc(ex->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		ex->v = nv;
		ex->cap = ncap;
	}
	ex->v[ex->n].lo = lo;
	ex->v[ex->n].hi = hi;
	ex->n++;
	return 0;
}

static int cmp_ranges(const void *a, const void *b)
{
	const struct sync_uid_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts the ranges and merges those that overlap or touch, so lookups
 * can bisect. */
static void ranges_merge(struct sync_expunged *ex)
{
	size_t i, n = 0;

	if (ex->n > 1)
		qsort(ex->v, ex->n, sizeof(*ex->v), cmp_ranges);
	for (i = 0; i < ex->n; i++) {
		if (n > 0 && ex->v[i].lo <= (uint64_t)ex->v[n - 1].hi + 1) {
			if (ex->v[i].hi > ex->v[n - 1].hi)
				ex->v[n - 1].hi = ex->v[i].hi;
			continue;
		}
		ex->v[n++] = ex->v[i];
	}
	ex->n = n;
}

int sync_expunged_parse(struct sync_expunged *ex, const unsigned char *buf, size_t len)
{
	size_t off, hdr_size;
	int rc = -1;

	/* Header: major version 1, minor, then its own size (LE16). */
	if (len < TLOG_HDR_MIN || buf[0] != 1) {
		errno = EINVAL;
		return -1;
	}
	hdr_size = (size_t)buf[2] | (size_t)buf[3] << 8;
	if (hdr_size < TLOG_HDR_MIN || hdr_size > len) {
		errno = EINVAL;
		return -1;
	}
	for (off = hdr_size; len - off >= 8;) {
		const unsigned char *p = buf + off;
		uint32_t size, type, i;

		/* The size is stored 7 bits a byte, each byte's top bit set. */
		if ((get_le32(p) & 0x80808080u) != 0x80808080u)
			break;
		size = ((uint32_t)(p[3] & 0x7f) << 2) | ((uint32_t)(p[2] & 0x7f) << 9) |
		       ((uint32_t)(p[1] & 0x7f) << 16) | ((uint32_t)(p[0] & 0x7f) << 23);
		if (size < 8 || size > len - off)
			break; /* torn or damaged: what came before stands */
		type = get_le32(p + 4) & TLOG_TYPE_MASK;
		if (type == TLOG_EXPUNGE) {
			for (i = 8; i + 8 <= size; i += 8)
				if (add_range(ex, get_le32(p + i), get_le32(p + i + 4)) < 0)
					goto nomem;
		} else if (type == TLOG_EXPUNGE_GUID) {
			for (i = 8; i + 20 <= size; i += 20)
				if (add_range(ex, get_le32(p + i), get_le32(p + i)) < 0)
					goto nomem;
		}
		off += size;
	}
	rc = 0;
nomem:
	/* Sorted and merged even after ENOMEM, so ex stays searchable. */
	ranges_merge(ex);
	if (rc < 0)
		errno = ENOMEM;
	return rc;
}

int sync_expunged_has(const struct sync_expunged *ex, uint64_t uid)
{
	size_t lo = 0, hi = ex->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (uid < ex->v[mid].lo)
			hi = mid;
		else if (uid > ex->v[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

int sync_expunged_read(int folder_fd, struct sync_expunged *ex)
{
	struct sync_ixdir d = { folder_fd, -1, 0 };

	return sync_expunged_read_in(&d, ex);
}

int sync_expunged_read_in(const struct sync_ixdir *d, struct sync_expunged *ex)
{
	static const enum sync_ixfile logs[] = { SYNC_IX_LOG, SYNC_IX_LOG2 };
	size_t i, len;
	int n = 0;

	memset(ex, 0, sizeof(*ex));
	for (i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
		char *buf = NULL;
		int r = read_small(d, logs[i], &buf, &len);

		/* A log that cannot be read shows nothing expunged: the
		 * guard is only the stricter for it. */
		if (r <= 0)
			continue;
		r = sync_expunged_parse(ex, (const unsigned char *)buf, len);
		free(buf);
		if (r < 0 && errno == ENOMEM) {
			sync_expunged_free(ex);
			errno = ENOMEM;
			return -1;
		}
		if (r == 0)
			n++;
	}
	return n;
}

void sync_expunged_free(struct sync_expunged *ex)
{
	free(ex->v);
	memset(ex, 0, sizeof(*ex));
}

/* ---- Dovecot's mailbox log: the mailboxes the user deleted ----------- */

/* dovecot.mailbox.log (lib-index/mailbox-log.h): 24-byte records of a
 * type byte, three padding bytes, the mailbox GUID and a timestamp. */
#define MBLOG_RECORD_SIZE 24
#define MBLOG_DELETE_MAILBOX 1

int sync_mailbox_deleted(int folder_fd, const unsigned char guid[16])
{
	struct sync_ixdir d = { folder_fd, -1, 0 };

	return sync_mailbox_deleted_in(&d, guid);
}

int sync_mailbox_deleted_in(const struct sync_ixdir *d, const unsigned char guid[16])
{
	char *buf = NULL;
	size_t len = 0, off;
	int r, found = 0;

	r = read_small(d, SYNC_IX_MAILBOX_LOG, &buf, &len);
	if (r <= 0)
		return r;
	/* A torn last record is left out. */
	for (off = 0; off + MBLOG_RECORD_SIZE <= len; off += MBLOG_RECORD_SIZE)
		if ((unsigned char)buf[off] == MBLOG_DELETE_MAILBOX &&
		    memcmp(buf + off + 4, guid, 16) == 0)
			found = 1;
	free(buf);
	return found;
}

int sync_index_read_dst(int dst_root, const char *rel, struct sync_index *ix)
{
	struct mr_error err = { 0 };
	int fd, r;

	memset(ix, 0, sizeof(*ix));
	fd = *rel ? mr_open_beneath(dst_root, rel, O_RDONLY | O_DIRECTORY, 0, &err)
		  : dup(dst_root);
	if (fd < 0) {
		errno = err.errnum ? err.errnum : errno;
		return errno == ENOENT ? 0 : -1;
	}
	r = sync_index_read(fd, ix);
	mr_close(fd);
	return r;
}
