/*
 * journal.c: the queue's journal on disk, its replay, group commit and
 * compaction.
 *
 * File "queue.journal" in the state folder, little-endian throughout:
 *
 *   header  magic "MRQJ" | u16 major (2) | u16 minor (0) | u32 header_size
 *           | u32 hash_id (1 = xxh3-64)                   (16 bytes today)
 *   record  u32 payload_len | u16 type | u16 reserved (0) | u64 seq
 *           | u64 xxh3_64(the 16 bytes before it || payload) | payload
 *
 * seq goes up by one from each record to the next (a compaction's
 * snapshot continues the count). Version 1 had no seq and a 16-byte record
 * header whose checksum covered the type (u16) and the payload; such a
 * file is still read, and rewritten as version 2 at open.
 *
 * Records (payload fields in order):
 *   1 ADD      u32 id, u64 size_hint, u16 name_len, name
 *   2 REQUEST  u32 id, u8 lane, u8 kind, i64 seq, f64 time
 *   3 START    u32 id, f64 time
 *   4 STATE    u32 id, u8 state, f64 time, 10 x u64 counters (9 in version 1),
 *              u16 reason_len, reason
 *   5 REQUEUE  u32 id
 *   6 RETRY    as REQUEST
 *   7 SNAPSHOT i64 prio_front, prio_back, enq_front, enq_back,
 *              u32 first_id, u32 count, then count users:
 *              u16 name_len, name, u8 state, u8 lane, u8 run_lane, i64 seq,
 *              f64 requested_at, started_at, finished_at, u64 size_hint,
 *              u32 attempts, 10 x u64 counters (9 in version 1), u16 reason_len,
 *              reason
 *   8 PAUSE    u8 paused (1) or resumed (0)
 * Users are numbered in the order they were added; a snapshot continues
 * that numbering. Trailing bytes after the known fields are ignored, so a
 * newer minor version may extend a record.
 *
 * A record is damaged when its header is short, it is longer than 1 MiB
 * or short, fails its checksum, or its seq is not the one due. Damage with
 * no valid record after it (one whose seq could continue the journal, found
 * by trying every later offset) is a torn or zero-filled tail after a
 * crash, expected: the file is cut back to the last good record. Damage
 * followed by a valid record is not a crash's doing, and cutting there
 * would drop answered requests: the open is refused with the offset, the
 * file left as it is, for `mailrestore journal check|salvage`. A record
 * that passed its checksum is never cut either: one of a type we do not
 * know is skipped when the file's minor version is newer than ours (a
 * newer writer's addition), and any other that does not apply (an unknown
 * type at our minor, a record that does not fit the queue's state, no
 * memory) refuses the open and leaves the file as it is. A wrong magic or
 * an unknown major version is refused without touching the file too.
 *
 * Group commit: records go to an in-memory buffer under the queue lock; a
 * caller that needs durability becomes the committer when none is running,
 * writes the whole buffer and fsyncs once, while the others sleep on a
 * condition variable; what arrived meanwhile goes in the next batch. A
 * failed write or fsync fails that batch and every later commit: the queue
 * never pretends that a record it could not write is safe.
 *
 * Compaction runs when the file grows past 4 x the live state + 1 MiB. It
 * writes every user into "queue.journal.new" as snapshot blocks,
 * then the records appended while it ran, fsyncs it, renames it over the
 * journal and fsyncs the folder, so a crash at any point leaves the old or
 * the new journal whole. It holds the queue lock only for short turns
 * (queue_journal_compact() tells how); a thread of its own runs it when a commit
 * finds the journal grown, so no caller waits for it. A snapshot block
 * (version 2) adds u64 as_of, u8 flags, u64 next after count: records of
 * its users with a seq below as_of are already in it and are skipped at
 * replay; the last block (flags 1; 2 = paused) is followed by the record
 * of seq next.
 */
#define XXH_STATIC_LINKING_ONLY
#include "queue/queue_private.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#define JOURNAL "queue.journal"
#define JOURNAL_NEW "queue.journal.new"
#define MAGIC "MRQJ"
#define MAJOR 2
#define MINOR 0
/* Version 1 records had no sequence number; they are still read. */
#define MAJOR_V1 1
#define HASH_XXH3 1
#define HEADER_SIZE 16
#define HEADER_MAX 65536
#define REC_HEADER 24
#define REC_HEADER_V1 16
#define REC_MAX (1u << 20)
/* Snapshot blocks are cut at this size, well below REC_MAX. */
#define SNAP_BLOCK (256u << 10)
/* u64 counters in a version 2 record (struct queue_counters in order). */
#define NCOUNTERS 10

/* Flags of a version 2 snapshot block. */
#define SNAP_LAST 1u   /* the last block: pause and the next seq follow it */
#define SNAP_PAUSED 2u
/* A gathering committer stops once this much is buffered. */
#define GATHER_MAX (64u << 10)
/* Compact when the file is this many times a snapshot, plus the slack. */
#define COMPACT_FACTOR 4
#define COMPACT_SLACK (1u << 20)
/* Fixed part of one snapshot user, names and reasons aside. */
#define SNAP_USER_FIXED (2 + 3 + 8 + 3 * 8 + 8 + 4 + NCOUNTERS * 8 + 2)

/* ---- encoding -------------------------------------------------------- */

static int jb_reserve(struct jbuf *b, size_t n)
{
	size_t ncap;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return 0;
	ncap = b->cap ? b->cap : 4096;
	while (ncap - b->len < n)
		ncap *= 2;
	p = realloc(b->p, ncap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = ncap;
	return 0;
}

/* Callers reserve first; these only store. */
/* The low `bytes` bytes of v, little-endian (mr_put_le). */
static void put_le(struct jbuf *b, uint64_t v, int bytes)
{
	mr_put_le(b->p + b->len, v, bytes);
	b->len += (size_t)bytes;
}

static void put_f64(struct jbuf *b, double d)
{
	uint64_t v;

	memcpy(&v, &d, sizeof(v));
	put_le(b, v, 8);
}

static void put_bytes(struct jbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Version 1: the type and the payload. */
static uint64_t record_hash_v1(uint16_t type, const uint8_t *payload, size_t len)
{
	XXH3_state_t st;
	uint8_t t[2];

	mr_put_le(t, type, 2);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, t, sizeof(t));
	XXH3_64bits_update(&st, payload, len);
	return XXH3_64bits_digest(&st);
}

/* Version 2: the record header up to the checksum (length, type, reserved,
 * sequence number) and the payload, so a flipped bit anywhere shows. */
static uint64_t record_hash(const uint8_t *h, const uint8_t *payload, size_t len)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, h, 16);
	XXH3_64bits_update(&st, payload, len);
	return XXH3_64bits_digest(&st);
}

/* Starts a record in b with room for max_payload bytes; returns its offset
 * or -1 when out of memory. */
static int64_t rec_begin(struct jbuf *b, size_t max_payload)
{
	size_t start = b->len;

	if (jb_reserve(b, REC_HEADER + max_payload) < 0)
		return -1;
	memset(b->p + start, 0, REC_HEADER);
	b->len += REC_HEADER;
	return (int64_t)start;
}

static void rec_end(struct jbuf *b, int64_t start, uint16_t type, uint64_t seq)
{
	uint8_t *h = b->p + start;
	size_t len = b->len - (size_t)start - REC_HEADER;

	mr_put_le(h, (uint32_t)len, 4);
	mr_put_le(h + 4, type, 2);
	mr_put_le(h + 8, seq, 8);
	mr_put_le(h + 16, record_hash(h, h + REC_HEADER, len), 8);
}

static void put_counters(struct jbuf *b, const struct queue_counters *c)
{
	put_le(b, c->backup_files, 8);
	put_le(b, c->backup_bytes, 8);
	put_le(b, c->copied_files, 8);
	put_le(b, c->copied_bytes, 8);
	put_le(b, c->renamed, 8);
	put_le(b, c->patched_files, 8);
	put_le(b, c->attic_files, 8);
	put_le(b, c->unreadable, 8);
	put_le(b, c->held_mail, 8);
	put_le(b, c->source_bytes_read, 8);
}

uint64_t queue_journal_user_bytes(const struct quser *u)
{
	return SNAP_USER_FIXED + u->name_len + (u->reason ? strlen(u->reason) : 0);
}

/* ---- appending ------------------------------------------------------ */

static int carry_put(struct carry *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		struct carry_chunk *k = c->tail;
		size_t room, take;

		if (k == NULL || k->len == sizeof(k->data)) {
			k = malloc(sizeof(*k));
			if (k == NULL)
				return -1;
			k->next = NULL;
			k->len = 0;
			if (c->tail != NULL)
				c->tail->next = k;
			else
				c->head = k;
			c->tail = k;
		}
		room = sizeof(k->data) - k->len;
		take = n < room ? n : room;
		memcpy(k->data + k->len, p, take);
		k->len += take;
		c->bytes += take;
		p += take;
		n -= take;
	}
	return 0;
}

static void carry_free(struct carry *c)
{
	while (c->head != NULL) {
		struct carry_chunk *k = c->head;

		c->head = k->next;
		free(k);
	}
	c->tail = NULL;
	c->bytes = 0;
}

static int carry_write(int fd, const struct carry *c)
{
	const struct carry_chunk *k;

	for (k = c->head; k != NULL; k = k->next)
		if (mr_write_all(fd, k->data, k->len) < 0)
			return -1;
	return 0;
}

/* Marks the journal unusable; every later commit fails with err. */
static void set_broken(struct queue *q, const struct mr_error *err)
{
	if (!q->broken) {
		q->broken = 1;
		q->broken_err = *err;
	}
	pthread_cond_broadcast(&q->commit_cv);
}

static int64_t append_begin(struct queue *q, size_t max_payload, struct mr_error *err)
{
	int64_t start = rec_begin(&q->buf, max_payload);

	if (start < 0) {
		struct mr_error e;

		/* The change is already in memory: refuse further work rather
		 * than let memory and journal disagree. */
		mr_error_set(&e, ENOMEM, "queue journal buffer");
		set_broken(q, &e);
		if (err != NULL)
			*err = e;
	}
	return start;
}

static void append_end(struct queue *q, int64_t start, uint16_t type)
{
	size_t before = q->buf.len, n = before - (size_t)start;

	rec_end(&q->buf, start, type, q->next_seq++);
	q->append_lsn += n;
	if (q->compacting) {
		/* Written after the snapshot being taken. */
		if (carry_put(&q->carry, q->buf.p + start, n) < 0) {
			struct mr_error e;

			mr_error_set(&e, ENOMEM, "queue journal: records kept for a compaction");
			set_broken(q, &e);
		}
	}
	if (q->committing)
		pthread_cond_signal(&q->gather_cv);
}

int queue_journal_add(struct queue *q, const struct quser *u, struct mr_error *err)
{
	int64_t s = append_begin(q, 4 + 8 + 2 + u->name_len, err);

	if (s < 0)
		return -1;
	put_le(&q->buf, u->id, 4);
	put_le(&q->buf, u->size_hint, 8);
	put_le(&q->buf, u->name_len, 2);
	put_bytes(&q->buf, u->name, u->name_len);
	append_end(q, s, REC_ADD);
	return 0;
}

int queue_journal_request(struct queue *q, enum rec_type type, enum request_kind kind,
		    const struct quser *u, double now, struct mr_error *err)
{
	int64_t s = append_begin(q, 4 + 2 + 8 + 8, err);

	if (s < 0)
		return -1;
	put_le(&q->buf, u->id, 4);
	put_le(&q->buf, u->lane, 1);
	put_le(&q->buf, (uint8_t)kind, 1);
	put_le(&q->buf, (uint64_t)u->seq, 8);
	put_f64(&q->buf, now);
	append_end(q, s, (uint16_t)type);
	return 0;
}

int queue_journal_start(struct queue *q, const struct quser *u, double now, struct mr_error *err)
{
	int64_t s = append_begin(q, 4 + 8, err);

	if (s < 0)
		return -1;
	put_le(&q->buf, u->id, 4);
	put_f64(&q->buf, now);
	append_end(q, s, REC_START);
	return 0;
}

int queue_journal_state(struct queue *q, const struct quser *u, double now, struct mr_error *err)
{
	size_t rlen = u->reason ? strlen(u->reason) : 0;
	int64_t s = append_begin(q, 4 + 1 + 8 + NCOUNTERS * 8 + 2 + rlen, err);

	if (s < 0)
		return -1;
	put_le(&q->buf, u->id, 4);
	put_le(&q->buf, u->state, 1);
	put_f64(&q->buf, now);
	put_counters(&q->buf, &u->counters);
	put_le(&q->buf, (uint16_t)rlen, 2);
	put_bytes(&q->buf, u->reason, rlen);
	append_end(q, s, REC_STATE);
	return 0;
}

int queue_journal_requeue(struct queue *q, const struct quser *u, struct mr_error *err)
{
	int64_t s = append_begin(q, 4, err);

	if (s < 0)
		return -1;
	put_le(&q->buf, u->id, 4);
	append_end(q, s, REC_REQUEUE);
	return 0;
}

int queue_journal_pause(struct queue *q, int paused, struct mr_error *err)
{
	int64_t s = append_begin(q, 1, err);

	if (s < 0)
		return -1;
	put_le(&q->buf, paused ? 1 : 0, 1);
	append_end(q, s, REC_PAUSE);
	return 0;
}

/* ---- decoding and replay -------------------------------------------- */

struct dec {
	const uint8_t *p;
	size_t len, pos;
	int bad;
};

static const uint8_t *get_bytes(struct dec *d, size_t n)
{
	const uint8_t *p;

	if (d->bad || d->len - d->pos < n) {
		d->bad = 1;
		return NULL;
	}
	p = d->p + d->pos;
	d->pos += n;
	return p;
}

/* The next n bytes as a little-endian number (mr_get_le); 0 past the end
 * (then d->bad is set). */
static uint64_t get_le(struct dec *d, int n)
{
	const uint8_t *p = get_bytes(d, (size_t)n);

	return p != NULL ? mr_get_le(p, n) : 0;
}

static int64_t get_i64(struct dec *d)
{
	uint64_t v = get_le(d, 8);
	int64_t s;

	memcpy(&s, &v, sizeof(s));
	return s;
}

static double get_f64(struct dec *d)
{
	uint64_t v = get_le(d, 8);
	double f;

	memcpy(&f, &v, sizeof(f));
	return f;
}

/* Version 1 wrote the first 9 counters; version 2 adds source_bytes_read. */
static void get_counters(struct dec *d, uint16_t major, struct queue_counters *c)
{
	c->backup_files = get_le(d, 8);
	c->backup_bytes = get_le(d, 8);
	c->copied_files = get_le(d, 8);
	c->copied_bytes = get_le(d, 8);
	c->renamed = get_le(d, 8);
	c->patched_files = get_le(d, 8);
	c->attic_files = get_le(d, 8);
	c->unreadable = get_le(d, 8);
	c->held_mail = get_le(d, 8);
	c->source_bytes_read = major == MAJOR_V1 ? 0 : get_le(d, 8);
}

static int short_record(struct mr_error *err)
{
	mr_error_set(err, EINVAL, "record too short for its fields");
	return -1;
}

static int seq_ok(int64_t seq)
{
	return seq > -QUEUE_SEQ_LIMIT && seq < QUEUE_SEQ_LIMIT;
}

static void lane_bounds(struct lane *l, int64_t front, int64_t back)
{
	if (front < l->front)
		l->front = front;
	if (back > l->back)
		l->back = back;
}

/* Salvage: a damaged ADD leaves a hole in the journal's user numbering;
 * the users after it are numbered on without it, and every record names
 * its user by the journal's number, so keep the translation. In any other
 * mode ids are used as written. Returns the id to apply (UINT32_MAX for a
 * user the salvage never saw added, which then does not apply). */
static uint32_t map_id(struct queue *q, uint32_t id)
{
	if (q->mode != QUEUE_MODE_SALVAGE && q->mode != QUEUE_MODE_CHECK)
		return id;
	if (id >= q->nremap || q->remap[id] == 0)
		return UINT32_MAX;
	return q->remap[id] - 1;
}

/* Salvage: journal id jid is live id q->nusers from now on (before that
 * user is added). 0 or -1 with err. */
static int note_id(struct queue *q, uint32_t jid, struct mr_error *err)
{
	if (q->mode != QUEUE_MODE_SALVAGE && q->mode != QUEUE_MODE_CHECK)
		return 0;
	if (jid > 64u * 1024 * 1024) {
		mr_error_set(err, EINVAL, "user number %u out of range", jid);
		return -1;
	}
	if (jid >= q->nremap) {
		size_t n = (size_t)jid + 1024;
		uint32_t *m = realloc(q->remap, n * sizeof(*m));

		if (m == NULL) {
			mr_error_set(err, ENOMEM, "salvage");
			return -1;
		}
		memset(m + q->nremap, 0, (n - q->nremap) * sizeof(*m));
		q->remap = m;
		q->nremap = n;
	}
	if (q->remap[jid] != 0) {
		mr_error_set(err, EINVAL, "user #%u added twice", jid);
		return -1;
	}
	q->remap[jid] = q->nusers + 1;
	return 0;
}

/* Notes a version 2 snapshot block for the replay of what follows it. */
static int note_block(struct queue *q, uint32_t first, uint32_t count, uint64_t as_of,
		      uint8_t flags, uint64_t next, struct mr_error *err)
{
	struct snap_replay *sr = &q->snap;

	if (sr->last_seen) {
		mr_error_set(err, EINVAL, "snapshot block after the last one");
		return -1;
	}
	if (sr->n == sr->cap) {
		size_t ncap = sr->cap ? sr->cap * 2 : 64;
		struct snap_block *b = realloc(sr->blocks, ncap * sizeof(*b));

		if (b == NULL) {
			mr_error_set(err, ENOMEM, "snapshot replay");
			return -1;
		}
		sr->blocks = b;
		sr->cap = ncap;
	}
	sr->blocks[sr->n].first = first;
	sr->blocks[sr->n].end = first + count;
	sr->blocks[sr->n].as_of = as_of;
	sr->n++;
	if (flags & SNAP_LAST) {
		sr->last_seen = 1;
		sr->final_as_of = as_of;
		sr->next = next;
		q->paused = (flags & SNAP_PAUSED) != 0;
	}
	return 0;
}

static int replay_snapshot(struct queue *q, struct dec *d, uint16_t major, struct mr_error *err)
{
	int64_t pf = get_i64(d), pb = get_i64(d), ef = get_i64(d), eb = get_i64(d);
	uint32_t first = (uint32_t)get_le(d, 4), count = (uint32_t)get_le(d, 4), i;
	uint64_t as_of = 0, next = 0;
	uint8_t flags = 0;
	struct quser *t = NULL;
	int rc = -1;

	if (major != MAJOR_V1) {
		as_of = get_le(d, 8);
		flags = (uint8_t)get_le(d, 1);
		next = get_le(d, 8);
	}
	if (d->bad)
		return short_record(err);
	if (major != MAJOR_V1 && note_block(q, first, count, as_of, flags, next, err) < 0)
		return -1;
	if (!seq_ok(pf) || !seq_ok(pb) || !seq_ok(ef) || !seq_ok(eb) ||
	    (first != q->nusers && q->mode == QUEUE_MODE_SERVE)) {
		mr_error_set(err, EINVAL, "snapshot block does not continue the queue");
		return -1;
	}
	t = malloc(sizeof(*t) + MR_USER_NAME_MAX + 1);
	if (t == NULL) {
		mr_error_set(err, ENOMEM, "snapshot replay");
		return -1;
	}
	lane_bounds(&q->prio, pf, pb);
	lane_bounds(&q->enq, ef, eb);
	for (i = 0; i < count; i++) {
		const uint8_t *name, *reason;
		uint16_t rlen;

		memset(t, 0, sizeof(*t));
		t->id = q->nusers;
		t->name_len = (uint16_t)get_le(d, 2);
		name = get_bytes(d, t->name_len);
		t->state = (uint8_t)get_le(d, 1);
		t->lane = (uint8_t)get_le(d, 1);
		t->run_lane = (uint8_t)get_le(d, 1);
		t->seq = get_i64(d);
		t->requested_at = get_f64(d);
		t->started_at = get_f64(d);
		t->finished_at = get_f64(d);
		t->size_hint = get_le(d, 8);
		t->attempts = (uint32_t)get_le(d, 4);
		get_counters(d, major, &t->counters);
		rlen = (uint16_t)get_le(d, 2);
		reason = get_bytes(d, rlen);
		if (d->bad) {
			short_record(err);
			goto out;
		}
		if (t->name_len > MR_USER_NAME_MAX) {
			mr_error_set(err, EINVAL, "snapshot user name of %u bytes", t->name_len);
			goto out;
		}
		memcpy(t->name, name, t->name_len);
		t->name[t->name_len] = '\0';
		if (note_id(q, first + i, err) < 0)
			goto out;
		if (queue_apply_snapshot_user(q, t, (const char *)reason, rlen, err) < 0)
			goto out;
	}
	rc = 0;
out:
	free(t);
	return rc;
}

/* Applies one record. 0, or -1 with err when it does not fit. */
static int replay_record(struct queue *q, uint16_t major, uint16_t type, const uint8_t *payload,
			 size_t len, struct mr_error *err)
{
	struct dec d = { .p = payload, .len = len };
	struct queue_counters c;
	const uint8_t *bytes;
	uint32_t id;
	uint64_t hint;
	uint16_t n;
	uint8_t lane, state;
	int64_t seq;
	double t;

	switch (type) {
	case REC_ADD:
		id = (uint32_t)get_le(&d, 4);
		hint = get_le(&d, 8);
		n = (uint16_t)get_le(&d, 2);
		bytes = get_bytes(&d, n);
		if (d.bad)
			return short_record(err);
		if (q->mode != QUEUE_MODE_SERVE) {
			if (note_id(q, id, err) < 0)
				return -1;
			id = q->nusers;
		}
		return queue_apply_add(q, id, (const char *)bytes, n, hint, err);
	case REC_REQUEST:
	case REC_RETRY:
		id = (uint32_t)get_le(&d, 4);
		lane = (uint8_t)get_le(&d, 1);
		(void)(uint8_t)get_le(&d, 1); /* kind: informative */
		seq = get_i64(&d);
		t = get_f64(&d);
		if (d.bad)
			return short_record(err);
		return queue_apply_request(q, map_id(q, id), (enum lane_id)lane, seq, t, err);
	case REC_START:
		id = (uint32_t)get_le(&d, 4);
		t = get_f64(&d);
		if (d.bad)
			return short_record(err);
		return queue_apply_start(q, map_id(q, id), t, err);
	case REC_STATE:
		id = (uint32_t)get_le(&d, 4);
		state = (uint8_t)get_le(&d, 1);
		t = get_f64(&d);
		get_counters(&d, major, &c);
		n = (uint16_t)get_le(&d, 2);
		bytes = get_bytes(&d, n);
		if (d.bad)
			return short_record(err);
		return queue_apply_state(q, map_id(q, id), (enum queue_state)state, t, &c,
				   (const char *)bytes, n,
				   err);
	case REC_REQUEUE:
		id = (uint32_t)get_le(&d, 4);
		if (d.bad)
			return short_record(err);
		return queue_apply_requeue(q, map_id(q, id), err);
	case REC_SNAPSHOT:
		return replay_snapshot(q, &d, major, err);
	case REC_PAUSE:
		state = (uint8_t)get_le(&d, 1);
		if (d.bad)
			return short_record(err);
		q->paused = state != 0;
		return 0;
	default:
		mr_error_set(err, EINVAL, "unknown record type %u", type);
		return -1;
	}
}

/* 1 for the record types this version writes and reads. */
static int known_type(uint16_t type)
{
	return type >= REC_ADD && type <= REC_PAUSE;
}

/* How the records of one file are laid out. */
struct layout {
	uint16_t major, minor;
	size_t rec_header;      /* 24, or 16 in version 1 */
};

/* One record as found at an offset. */
struct rec {
	uint32_t len;
	uint16_t type;
	uint64_t seq;           /* 0 in version 1 */
};

/* Reads the record at off. 1 when it is whole and its checksum matches,
 * 0 (why says what is wrong) otherwise. */
static int read_rec(const struct layout *l, const uint8_t *data, size_t off, size_t size,
		    struct rec *r, struct mr_error *why)
{
	const uint8_t *h = data + off;
	uint64_t sum;

	if (size - off < l->rec_header) {
		mr_error_set(why, 0, "short record header");
		return 0;
	}
	r->len = (uint32_t)mr_get_le(h, 4);
	r->type = (uint16_t)mr_get_le(h + 4, 2);
	if (r->len > REC_MAX) {
		mr_error_set(why, 0, "record length %u", r->len);
		return 0;
	}
	if (size - off - l->rec_header < r->len) {
		mr_error_set(why, 0, "short record");
		return 0;
	}
	if (l->major == MAJOR_V1) {
		r->seq = 0;
		sum = record_hash_v1(r->type, h + l->rec_header, r->len);
		if (sum != mr_get_le(h + 8, 8)) {
			mr_error_set(why, 0, "checksum mismatch");
			return 0;
		}
		return 1;
	}
	r->seq = mr_get_le(h + 8, 8);
	if (record_hash(h, h + l->rec_header, r->len) != mr_get_le(h + 16, 8)) {
		mr_error_set(why, 0, "checksum mismatch");
		return 0;
	}
	return 1;
}

/* The first offset at or after from where a whole record starts that
 * could continue the journal (its sequence number after last_seq), or
 * size when none does: what tells damage (valid records follow) from a
 * torn tail (nothing valid follows). */
static size_t find_valid(const struct layout *l, const uint8_t *data, size_t from, size_t size,
			 uint64_t last_seq)
{
	struct mr_error why;
	struct rec r;
	size_t off;

	for (off = from; off < size && size - off >= l->rec_header; off++) {
		const uint8_t *h = data + off;
		uint32_t len = (uint32_t)mr_get_le(h, 4);

		/* Cheap tests first: most offsets fail them. */
		if (len > REC_MAX || size - off - l->rec_header < len || h[6] != 0 || h[7] != 0)
			continue;
		if (l->major != MAJOR_V1) {
			uint64_t seq = mr_get_le(h + 8, 8);

			if (seq <= last_seq || seq - last_seq > ((uint64_t)1 << 40))
				continue;
		}
		if (read_rec(l, data, off, size, &r, &why))
			return off;
	}
	return size;
}

/* 1 when a record written during a compaction is already part of the
 * snapshot: its user's block was taken after it (as_of above its seq). */
static int covered(const struct queue *q, const struct rec *r, const uint8_t *payload)
{
	const struct snap_replay *sr = &q->snap;
	size_t lo = 0, hi = sr->n;
	uint32_t id;

	if (sr->n == 0)
		return 0;
	if (r->type == REC_PAUSE)
		return sr->last_seen && r->seq < sr->final_as_of;
	if (r->type < REC_ADD || r->type > REC_RETRY || r->len < 4)
		return 0;
	id = (uint32_t)mr_get_le(payload, 4);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sr->blocks[mid].end <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < sr->n && sr->blocks[lo].first <= id && r->seq < sr->blocks[lo].as_of;
}

/* Replays records from data[off..size). Returns 0 with the end of the last
 * good record in *end_r; when that is before size, why says which torn
 * tail stopped it (nothing valid after it). Returns -1 with err when a
 * record that passed its checksum does not apply, or when valid records
 * follow a damaged one (errnum EBADMSG, the offset in the message): either
 * way the file must not be cut. In check or salvage mode damage is counted
 * in q->report and the replay goes on with the next valid record, and a
 * record that does not apply is counted and skipped. */
static int replay(struct queue *q, const struct layout *l, const uint8_t *data, size_t off,
		  size_t size, size_t *end_r, struct mr_error *why, struct mr_error *err)
{
	struct queue_journal_report *rep = q->report;
	uint64_t last_seq = 0, max_seq = 0;
	int have_seq = 0;

	mr_error_clear(why);
	while (off < size) {
		struct rec r;
		size_t next;
		int ok = read_rec(l, data, off, size, &r, why);

		if (ok && l->major != MAJOR_V1 && have_seq && r.seq != last_seq + 1) {
			mr_error_set(why, 0, "sequence number %llu where %llu was due",
				     (unsigned long long)r.seq, (unsigned long long)(last_seq + 1));
			ok = 0;
		}
		if (!ok) {
			size_t from = off + 1;

			/* A record of a later sequence number is whole: a gap
			 * before it is what is damaged. */
			struct mr_error e2;

			if (l->major != MAJOR_V1 && have_seq && read_rec(l, data, off, size, &r, &e2) &&
			    r.seq > last_seq)
				from = off;
			next = find_valid(l, data, from, size, have_seq ? last_seq : 0);
			if (next >= size)
				break; /* a torn tail */
			if (rep == NULL) {
				mr_error_set(err, 0, JOURNAL ": damaged at offset %zu (%s), but valid "
					     "records follow from offset %zu: this is no torn tail, "
					     "so nothing was changed. `mailrestore journal check` "
					     "lists the damage; `mailrestore journal salvage` keeps "
					     "every valid record (the damaged file is kept aside)",
					     off, why->msg, next);
				if (err != NULL)
					err->errnum = EBADMSG;
				return -1;
			}
			if (rep->damaged_regions++ == 0) {
				rep->first_damage = off;
				snprintf(rep->first_damage_why, sizeof(rep->first_damage_why), "%s",
					 why->msg);
			}
			rep->damaged_bytes += next - off;
			mr_log("queue: " JOURNAL ": damaged from offset %zu to %zu (%s)", off, next,
			       why->msg);
			off = next;
			have_seq = 0; /* the next valid record continues the chain */
			continue;
		}
		last_seq = r.seq;
		if (r.seq > max_seq)
			max_seq = r.seq;
		have_seq = 1;
		next = off + l->rec_header + r.len;
		if (!known_type(r.type) && l->minor > MINOR) {
			/* Written by a newer minor version: not ours to read. */
			off = next;
			continue;
		}
		if (l->major != MAJOR_V1 && covered(q, &r, data + off + l->rec_header)) {
			/* Already in the snapshot block that holds its user. */
			if (rep != NULL)
				rep->records++;
			off = next;
			continue;
		}
		if (replay_record(q, l->major, r.type, data + off + l->rec_header, r.len,
				  err) < 0) {
			if (rep != NULL) {
				rep->unapplied++;
				mr_log("queue: " JOURNAL ": the record at offset %zu (type %u) does "
				       "not apply, skipped: %s", off, r.type, err->msg);
				off = next;
				continue;
			}
			mr_error_prefix(err, JOURNAL ": the record at offset %zu (type %u) passed "
					"its checksum but does not apply, so the journal is left as "
					"it is", off, r.type);
			return -1;
		}
		if (rep != NULL)
			rep->records++;
		if (r.type == REC_SNAPSHOT && l->major != MAJOR_V1 && q->snap.last_seen &&
		    q->snap.next > 0) {
			/* The records after a snapshot go on with the numbering
			 * of the journal it was taken from. */
			last_seq = q->snap.next - 1;
			if (last_seq > max_seq)
				max_seq = last_seq;
		}
		off = next;
	}
	if (max_seq >= q->next_seq)
		q->next_seq = max_seq + 1;
	*end_r = off;
	return 0;
}

static void header_bytes(uint8_t h[HEADER_SIZE])
{
	memcpy(h, MAGIC, 4);
	mr_put_le(h + 4, MAJOR, 2);
	mr_put_le(h + 6, MINOR, 2);
	mr_put_le(h + 8, HEADER_SIZE, 4);
	mr_put_le(h + 12, HASH_XXH3, 4);
}

/* Writes a fresh header into the empty (or torn-at-birth) journal. */
static int init_journal(struct queue *q, struct mr_error *err)
{
	uint8_t h[HEADER_SIZE];

	header_bytes(h);
	if (mr_io->ftruncate(q->fd, 0) < 0) {
		mr_error_set(err, errno, "ftruncate(" JOURNAL ") failed");
		return -1;
	}
	if (mr_write_all(q->fd, h, sizeof(h)) < 0) {
		mr_error_set(err, errno, "write(" JOURNAL ") failed");
		return -1;
	}
	if (!q->settings.no_fsync) {
		if (mr_io->fsync(q->fd) < 0) {
			mr_error_set(err, errno, "fsync(" JOURNAL ") failed");
			return -1;
		}
		if (mr_fsync_dir_at(q->dirfd, ".", err) < 0)
			return -1;
	}
	q->file_size = HEADER_SIZE;
	return 0;
}

/* Checks the header; returns its size and gives its minor version in
 * minor_r, or -1 with err. */
static int64_t check_header(const uint8_t *data, size_t size, struct layout *l,
			    struct mr_error *err)
{
	uint16_t major, minor;
	uint32_t hsize, hash;

	if (memcmp(data, MAGIC, 4) != 0) {
		mr_error_set(err, 0, JOURNAL ": not a mailrestore journal");
		goto bad;
	}
	major = (uint16_t)mr_get_le(data + 4, 2);
	minor = (uint16_t)mr_get_le(data + 6, 2);
	hsize = (uint32_t)mr_get_le(data + 8, 4);
	hash = (uint32_t)mr_get_le(data + 12, 4);
	if (major != MAJOR && major != MAJOR_V1) {
		mr_error_set(err, 0, JOURNAL ": journal version %u.%u is not supported "
			     "(this mailrestore reads versions %u and %u)", major, minor, MAJOR_V1,
			     MAJOR);
		if (err != NULL)
			err->errnum = EPROTONOSUPPORT;
		return -1;
	}
	if (hsize < HEADER_SIZE || hsize > HEADER_MAX || hsize > size) {
		mr_error_set(err, 0, JOURNAL ": header size %u is invalid", hsize);
		goto bad;
	}
	if (hash != HASH_XXH3) {
		mr_error_set(err, 0, JOURNAL ": checksum kind %u is not supported", hash);
		if (err != NULL)
			err->errnum = EPROTONOSUPPORT;
		return -1;
	}
	l->major = major;
	l->minor = minor;
	l->rec_header = major == MAJOR_V1 ? REC_HEADER_V1 : REC_HEADER;
	return hsize;
bad:
	if (err != NULL)
		err->errnum = EINVAL;
	return -1;
}

/* Salvage: keeps the damaged original under a name of its own (a hard
 * link, so queue.journal stays whole until the clean one replaces it). */
static int keep_aside(struct queue *q, struct mr_error *err)
{
	struct queue_journal_report *rep = q->report;
	long t = (long)time(NULL);
	int i;

	for (i = 0; i < 100; i++) {
		snprintf(rep->aside, sizeof(rep->aside), JOURNAL ".damaged-%ld%s%.0d", t,
			 i ? "-" : "", i);
		if (mr_io->linkat(q->dirfd, JOURNAL, q->dirfd, rep->aside, 0) == 0)
			return mr_fsync_dir_at(q->dirfd, ".", err);
		if (errno != EEXIST) {
			mr_error_set(err, errno, "linkat(" JOURNAL ", %s) failed", rep->aside);
			return -1;
		}
	}
	mr_error_set(err, EEXIST, "linkat(" JOURNAL ", %s) failed", rep->aside);
	return -1;
}

int queue_journal_open(struct queue *q, struct mr_error *err)
{
	uint8_t fresh[HEADER_SIZE];
	uint8_t *data = NULL;
	struct queue_journal_report *rep = q->report;
	int checking = q->mode == QUEUE_MODE_CHECK;
	struct layout l;
	struct stat st;
	struct mr_error why;
	size_t size, end;
	int64_t hsize;
	int rc = -1;

	/* A compaction that crashed before its rename left this behind. */
	if (!checking && mr_io->unlinkat(q->dirfd, JOURNAL_NEW, 0) < 0 && errno != ENOENT) {
		mr_error_set(err, errno, "unlinkat(" JOURNAL_NEW ") failed");
		return -1;
	}
	q->fd = mr_io->openat(q->dirfd, JOURNAL,
			      checking ? O_RDONLY | O_CLOEXEC
				       : O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (q->fd < 0) {
		mr_error_set(err, errno, "openat(" JOURNAL ") failed");
		return -1;
	}
	if (mr_io->fstat(q->fd, &st) < 0) {
		mr_error_set(err, errno, "fstat(" JOURNAL ") failed");
		return -1;
	}
	size = (size_t)st.st_size;
	if (rep != NULL) {
		rep->size = size;
		rep->first_damage = rep->torn_offset = size;
	}
	if (size < HEADER_SIZE) {
		size_t i;
		int zero = 1;

		/* Empty, or a crash while it was being created. */
		header_bytes(fresh);
		if (size > 0 && (data = malloc(size)) == NULL) {
			mr_error_set(err, ENOMEM, "reading " JOURNAL);
			return -1;
		}
		errno = 0;
		if (size > 0 && mr_pread_full(q->fd, data, size, 0) != (ssize_t)size) {
			mr_error_set(err, errno ? errno : EIO, "read(" JOURNAL ") failed");
			goto out;
		}
		for (i = 0; i < size; i++)
			zero &= data[i] == 0;
		if (size > 0 && !zero && memcmp(data, fresh, size) != 0) {
			mr_error_set(err, 0, JOURNAL ": not a mailrestore journal");
			if (err != NULL)
				err->errnum = EINVAL;
			goto out;
		}
		if (rep != NULL) {
			rep->version = MAJOR;
			rep->torn_offset = 0;
			rep->torn_bytes = size;
		}
		rc = checking ? 0 : init_journal(q, err);
		goto out;
	}
	data = malloc(size);
	if (data == NULL) {
		mr_error_set(err, ENOMEM, "reading " JOURNAL " of %zu bytes", size);
		return -1;
	}
	errno = 0;
	if (mr_pread_full(q->fd, data, size, 0) != (ssize_t)size) {
		mr_error_set(err, errno ? errno : EIO, "read(" JOURNAL ") failed");
		goto out;
	}
	hsize = check_header(data, size, &l, err);
	if (hsize < 0)
		goto out;
	if (rep != NULL)
		rep->version = l.major;
	if (replay(q, &l, data, (size_t)hsize, size, &end, &why, err) < 0)
		goto out;
	if (rep != NULL) {
		rep->users = q->nusers;
		if (end < size) {
			rep->torn_offset = end;
			rep->torn_bytes = size - end;
			snprintf(rep->torn_why, sizeof(rep->torn_why), "%s", why.msg);
		}
	}
	q->file_size = end;
	if (checking) {
		rc = 0;
		goto out;
	}
	if (q->mode == QUEUE_MODE_SALVAGE) {
		/* Rewritten only when something in it was not clean. */
		if (rep->damaged_regions == 0 && rep->unapplied == 0 && end == size &&
		    l.major == MAJOR) {
			rc = 0;
			goto out;
		}
		if (keep_aside(q, err) < 0)
			goto out;
		rc = queue_journal_compact(q, err);
		goto out;
	}
	if (end < size) {
		mr_log("queue: " JOURNAL ": dropping a torn tail of %zu bytes from offset %zu (%s)",
		       size - end, end, why.msg);
		if (mr_io->ftruncate(q->fd, (off_t)end) < 0) {
			mr_error_set(err, errno, "ftruncate(" JOURNAL ") failed");
			goto out;
		}
		if (!q->settings.no_fsync && mr_io->fsync(q->fd) < 0) {
			mr_error_set(err, errno, "fsync(" JOURNAL ") failed");
			goto out;
		}
	}
	if (l.major == MAJOR_V1) {
		/* New records carry sequence numbers: rewrite the old file as
		 * a snapshot of this version before appending to it. */
		if (queue_journal_compact(q, err) < 0) {
			mr_error_prefix(err, "converting " JOURNAL " from version 1");
			goto out;
		}
		mr_log("queue: " JOURNAL ": converted from version 1 to version %u", MAJOR);
	}
	rc = 0;
out:
	free(q->snap.blocks);
	memset(&q->snap, 0, sizeof(q->snap));
	free(q->remap);
	q->remap = NULL;
	q->nremap = 0;
	free(data);
	return rc;
}

/* ---- group commit ---------------------------------------------------- */

static int need_compaction(const struct queue *q)
{
	return q->file_size > COMPACT_FACTOR * (q->live_bytes + HEADER_SIZE) + COMPACT_SLACK;
}

/* Lets the buffer fill while more records keep arriving, up to
 * commit_delay in all; stops as soon as a quarter of it passes with nothing
 * new, so a lone request pays little. Called with q->mu held. */
static void gather(struct queue *q)
{
	double delay = q->settings.commit_delay, slice = delay / 4;
	double deadline = mr_monotonic() + delay;

	while (q->buf.len < GATHER_MAX) {
		double left = deadline - mr_monotonic(), wait;
		uint64_t before = q->append_lsn;
		struct timespec ts;
		long ns;

		if (left <= 0)
			break;
		wait = left < slice ? left : slice;
		/* The condition variable waits on the realtime clock. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = ts.tv_nsec + (long)(wait * 1e9);
		ts.tv_sec += ns / 1000000000L;
		ts.tv_nsec = ns % 1000000000L;
		while (q->append_lsn == before && q->buf.len < GATHER_MAX) {
			if (pthread_cond_timedwait(&q->gather_cv, &q->mu, &ts) == ETIMEDOUT)
				break;
		}
		if (q->append_lsn == before)
			break;
	}
}

/* Writes one batch as the committer (q->committing set by the caller). */
static int write_batch(struct queue *q, struct mr_error *err)
{
	struct jbuf w = q->buf;
	uint64_t end = q->append_lsn;
	struct mr_error e;
	int rc = 0;

	q->buf = q->spare;
	q->spare = (struct jbuf){ 0 };
	pthread_mutex_unlock(&q->mu);
	mr_error_clear(&e);
	if (mr_write_all(q->fd, w.p, w.len) < 0) {
		mr_error_set(&e, errno, "write(" JOURNAL ") failed");
		rc = -1;
	} else if (!q->settings.no_fsync && mr_io->fsync(q->fd) < 0) {
		mr_error_set(&e, errno, "fsync(" JOURNAL ") failed");
		rc = -1;
	}
	pthread_mutex_lock(&q->mu);
	if (rc == 0) {
		q->durable_lsn = end;
		q->file_size += w.len;
		q->stats.batches++;
		q->stats.bytes_written += w.len;
	} else {
		set_broken(q, &e);
		if (err != NULL)
			*err = e;
	}
	w.len = 0;
	if (q->spare.p == NULL)
		q->spare = w;
	else
		free(w.p);
	return rc;
}

int queue_journal_commit_locked(struct queue *q, uint64_t ticket, struct mr_error *err)
{
	if (ticket > q->append_lsn)
		ticket = q->append_lsn;
	for (;;) {
		int rc;

		if (q->broken) {
			if (err != NULL)
				*err = q->broken_err;
			return -1;
		}
		if (q->durable_lsn >= ticket)
			return 0;
		if (q->committing) {
			pthread_cond_wait(&q->commit_cv, &q->mu);
			continue;
		}
		q->committing = 1;
		if (q->waiters > 1 && !q->settings.no_fsync)
			gather(q);
		rc = write_batch(q, err);
		if (rc == 0 && need_compaction(q) && !q->compacting && q->compactor_started) {
			/* The compactor thread takes it: no caller waits. */
			q->compact_wanted = 1;
			pthread_cond_signal(&q->compact_cv);
		}
		q->committing = 0;
		pthread_cond_broadcast(&q->commit_cv);
		if (rc < 0)
			return -1;
	}
}

/* ---- compaction ------------------------------------------------------ */

/* Users encoded per turn under the lock: a turn stays far below a
 * millisecond whatever the number of users. */
#define SNAP_TURN 1024u

/* Between two turns. The mutex is not fair: a thread woken when a turn
 * gives the lock back needs some microseconds to run, and a compaction
 * that locks again at once (sched_yield() does not wait for it) takes
 * the lock first, turn after turn; a login then waited 5 to 7 ms at a
 * million users while no single turn held the lock 0.5 ms. A short sleep
 * lets every waiter in (about 0.1 s more per compaction at 1M users,
 * which runs in the background). */
static void turn_pause(void)
{
	struct timespec ts = { 0, 50000 };

	nanosleep(&ts, NULL);
}

static int snapshot_user(struct jbuf *b, const struct quser *u)
{
	size_t rlen = u->reason ? strlen(u->reason) : 0;

	if (jb_reserve(b, SNAP_USER_FIXED + u->name_len + rlen) < 0)
		return -1;
	put_le(b, u->name_len, 2);
	put_bytes(b, u->name, u->name_len);
	put_le(b, u->state, 1);
	put_le(b, u->lane, 1);
	put_le(b, u->run_lane, 1);
	put_le(b, (uint64_t)u->seq, 8);
	put_f64(b, u->requested_at);
	put_f64(b, u->started_at);
	put_f64(b, u->finished_at);
	put_le(b, u->size_hint, 8);
	put_le(b, u->attempts, 4);
	put_counters(b, &u->counters);
	put_le(b, (uint16_t)rlen, 2);
	put_bytes(b, u->reason, rlen);
	return 0;
}

/* Appends to b one snapshot block of the users from *id on (at most max of
 * them, fewer when the block fills), as the queue is now: called with
 * q->mu held. as_of is q->next_seq: every record below it is reflected.
 * The block is numbered seq. flags SNAP_LAST also records the pause and
 * next, the seq due after the snapshot. 0 or -1 (no memory). */
static int snapshot_block(struct queue *q, struct jbuf *b, uint32_t *id, uint32_t max,
			  uint64_t seq, uint8_t flags, uint64_t next)
{
	int64_t start = rec_begin(b, 4 * 8 + 8 + 8 + 1 + 8);
	uint32_t first = *id, stop;
	size_t count_at;

	if (start < 0)
		return -1;
	stop = q->nusers - first < max ? q->nusers : first + max;
	if (flags & SNAP_LAST)
		stop = first;
	if (q->paused && (flags & SNAP_LAST))
		flags |= SNAP_PAUSED;
	put_le(b, (uint64_t)q->prio.front, 8);
	put_le(b, (uint64_t)q->prio.back, 8);
	put_le(b, (uint64_t)q->enq.front, 8);
	put_le(b, (uint64_t)q->enq.back, 8);
	put_le(b, first, 4);
	count_at = b->len;
	put_le(b, 0, 4);
	put_le(b, q->next_seq, 8);
	put_le(b, flags, 1);
	put_le(b, next, 8);
	while (*id < stop && b->len - (size_t)start < SNAP_BLOCK) {
		if (snapshot_user(b, q->users[*id]) < 0)
			return -1;
		(*id)++;
	}
	mr_put_le(b->p + count_at, *id - first, 4);
	rec_end(b, start, REC_SNAPSHOT, seq);
	return 0;
}

static double thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The lock is taken for one turn of a compaction; *cpu0 gets the
 * thread's CPU time then. */
static double turn_begin(struct queue *q, double *cpu0)
{
	pthread_mutex_lock(&q->mu);
	*cpu0 = thread_cpu();
	return mr_monotonic();
}

/* Ends a turn begun at t0 (the lock held): notes its length, gives the
 * lock back. */
static void turn_end(struct queue *q, double t0, double cpu0)
{
	double d = mr_monotonic() - t0;

	if (d > q->stats.compact_hold_max) {
		q->stats.compact_hold_max = d;
		q->stats.compact_hold_cpu_max = thread_cpu() - cpu0;
	}
	pthread_mutex_unlock(&q->mu);
}

/* Carry below this is written in the final step; above, by catch-up
 * passes while commits go on. */
#define CARRY_FINAL (64u << 10)
#define CATCH_UP_MAX 16

/* Rewrites the journal as a snapshot, in turns. Called without q->mu.
 *
 * 1. Under the lock, mark the compaction: every record appended from now
 *    on is also copied to q->carry. start_seq is the first such record.
 * 2. Turn by turn (SNAP_TURN users under the lock), encode the users into
 *    snapshot blocks, each with as_of = the next seq when it was taken, and
 *    write them to queue.journal.new outside the lock. A user changed
 *    after its block was taken has its records in carry; one changed
 *    before has them reflected in the block, and replay skips its records
 *    below the block's as_of. In the turn that finds every user encoded,
 *    a last block (the pause, the seq due next = start_seq) closes the
 *    snapshot; users added later come from their ADD records in carry.
 *    The snapshot is fsync'd outside the lock.
 * 3. Catch-up: while carry is large, take it (a list of chunks: O(1)
 *    under the lock) and write it outside.
 * 4. Become the committer (no batch goes to the old file any more), take
 *    the rest of carry (the records still in the buffer included) and give
 *    the lock back; write it, fsync, rename over the journal, fsync the
 *    folder. Under the lock: the new file is the journal, the buffered
 *    records at the cut are dropped from the buffer (they are in the file
 *    or in the snapshot), the durable point moves to the cut.
 * A failure before the rename leaves the old journal as it was, with the
 * buffer untouched: nothing is lost, the next commit goes on with it. */
int queue_journal_compact(struct queue *q, struct mr_error *err)
{
	struct jbuf b = { 0 };
	struct carry carry = { 0 };
	uint64_t start_seq, seq = 1, cut_lsn = 0, size = 0;
	double t0 = 0, cpu0 = 0, final0 = 0;
	size_t cut_len = 0;
	uint32_t id = 0;
	struct mr_publish pub = { .fd = -1 };
	int old_fd = -1, rc = -1, committer = 0, last = 0, passes;
	uint8_t h[HEADER_SIZE];

	pthread_mutex_lock(&q->mu);
	while (q->compacting)
		pthread_cond_wait(&q->commit_cv, &q->mu);
	if (q->broken) {
		if (err != NULL)
			*err = q->broken_err;
		pthread_mutex_unlock(&q->mu);
		return -1;
	}
	q->compacting = 1;
	q->compact_wanted = 0;
	carry_free(&q->carry);
	start_seq = q->next_seq;
	pthread_mutex_unlock(&q->mu);

	/* A fixed name: queue_journal_open() removes what a crash left. */
	if (mr_publish_begin(&pub, q->dirfd, "", JOURNAL, JOURNAL_NEW, 0600,
			     MR_PUBLISH_FIXED_TMP | MR_PUBLISH_APPEND | MR_PUBLISH_KEEP_OPEN |
				     (q->settings.no_fsync ? MR_PUBLISH_NO_FSYNC : 0),
			     err) < 0)
		goto fail;
	header_bytes(h);
	if (mr_publish_write(&pub, h, sizeof(h), err) < 0)
		goto fail;
	size = sizeof(h);

	/* Step 2. */
	while (!last) {
		t0 = turn_begin(q, &cpu0);
		b.len = 0;
		if (id < q->nusers &&
		    snapshot_block(q, &b, &id, SNAP_TURN, seq++, 0, 0) < 0)
			goto oom_turn;
		if (id == q->nusers) {
			if (snapshot_block(q, &b, &id, 0, seq++, SNAP_LAST, start_seq) < 0)
				goto oom_turn;
			last = 1;
		}
		turn_end(q, t0, cpu0);
		if (mr_publish_write(&pub, b.p, b.len, err) < 0)
			goto fail;
		size += b.len;
		turn_pause();
	}
	if (!q->settings.no_fsync && mr_io->fsync(pub.fd) < 0) {
		mr_error_set(err, errno, "fsync(" JOURNAL_NEW ") failed");
		goto fail;
	}

	/* Step 3. */
	for (passes = 0;; passes++) {
		t0 = turn_begin(q, &cpu0);
		if (q->carry.bytes < CARRY_FINAL || passes >= CATCH_UP_MAX)
			break;
		carry = q->carry;
		q->carry = (struct carry){ 0 };
		turn_end(q, t0, cpu0);
		if (carry_write(pub.fd, &carry) < 0) {
			mr_error_set(err, errno, "write(" JOURNAL_NEW ") failed");
			goto fail;
		}
		size += carry.bytes;
		carry_free(&carry);
	}

	/* Step 4: the lock is held. */
	while (q->committing) {
		pthread_cond_wait(&q->commit_cv, &q->mu);
		t0 = mr_monotonic();
		cpu0 = thread_cpu();
	}
	q->committing = committer = 1;
	final0 = t0;
	carry = q->carry;
	q->carry = (struct carry){ 0 };
	q->compacting = 0;
	cut_len = q->buf.len;
	cut_lsn = q->append_lsn;
	turn_end(q, t0, cpu0);

	if (carry_write(pub.fd, &carry) < 0) {
		mr_error_set(err, errno, "write(" JOURNAL_NEW ") failed");
		goto fail;
	}
	size += carry.bytes;
	if (mr_publish_commit(&pub, err) < 0) {
		if (!pub.renamed)
			goto fail;
		/* Old or new journal may be the one on disk after a crash:
		 * nothing may count as durable any more. */
		pthread_mutex_lock(&q->mu);
		set_broken(q, err);
		goto out_locked;
	}
	pthread_mutex_lock(&q->mu);
	old_fd = q->fd;
	q->fd = pub.fd;
	pub.fd = -1;
	q->file_size = size;
	/* What the buffer held at the cut is in the new file already. */
	if (cut_len > 0) {
		memmove(q->buf.p, q->buf.p + cut_len, q->buf.len - cut_len);
		q->buf.len -= cut_len;
	}
	if (cut_lsn > q->durable_lsn)
		q->durable_lsn = cut_lsn;
	q->stats.compactions++;
	if (mr_monotonic() - final0 > q->stats.compact_final_max)
		q->stats.compact_final_max = mr_monotonic() - final0;
	rc = 0;
	goto out_locked;
	/* (old_fd is closed after the lock is given back: the last close of
	 * the replaced journal frees all its blocks, which takes a while.) */

oom_turn:
	mr_error_set(err, ENOMEM, "building the queue snapshot");
	turn_end(q, t0, cpu0);
fail:
	pthread_mutex_lock(&q->mu);
out_locked:
	q->compacting = 0;
	carry_free(&q->carry);
	if (committer)
		q->committing = 0;
	pthread_cond_broadcast(&q->commit_cv);
	pthread_mutex_unlock(&q->mu);
	mr_close(old_fd);
	mr_publish_abort(&pub);
	free(b.p);
	carry_free(&carry);
	return rc;
}

/* The compactor thread: waits for a commit to ask (compact_wanted). */
static void *compactor_main(void *arg)
{
	struct queue *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct mr_error err;

		while (!q->compactor_stop && !q->compact_wanted)
			pthread_cond_wait(&q->compact_cv, &q->mu);
		if (q->compactor_stop)
			break;
		q->compact_wanted = 0;
		pthread_mutex_unlock(&q->mu);
		if (queue_journal_compact(q, &err) < 0)
			mr_log("queue: compaction failed, keeping the journal as it is: %s",
			       err.msg);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int queue_journal_start_compactor(struct queue *q, struct mr_error *err)
{
	int e = pthread_create(&q->compactor, NULL, compactor_main, q);

	if (e != 0) {
		mr_error_set(err, e, "pthread_create(queue compactor) failed");
		return -1;
	}
	q->compactor_started = 1;
	return 0;
}

void queue_journal_stop_compactor(struct queue *q)
{
	if (!q->compactor_started)
		return;
	pthread_mutex_lock(&q->mu);
	q->compactor_stop = 1;
	pthread_cond_signal(&q->compact_cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->compactor, NULL);
	q->compactor_started = 0;
}
