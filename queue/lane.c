/*
 * lane.c: the ordering structures behind queue.c.
 *
 * A lane (priority or plain enqueue) is a window of sequence-number slots
 * with a Fenwick tree (binary indexed tree) counting the pending users in
 * them: a user's position is the prefix count before its slot and the next
 * user to run is the first set slot, both O(log n) without scanning. Bumps
 * take ever smaller sequence numbers and new requests ever larger ones; when
 * one falls outside the window, the window is rebuilt around the pending
 * entries (amortized O(1) per insert).
 *
 * The waiting heap orders users nobody asked for by (size_hint, name), so
 * the smallest users come back first. Deletion is lazy: an entry whose user
 * has left the waiting state is skipped when it surfaces.
 */
#include "queue/queue_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void queue_lane_init(struct lane *l)
{
	memset(l, 0, sizeof(*l));
	l->front = -1;
	l->back = 0;
}

void queue_lane_free(struct lane *l)
{
	free(l->slot);
	free(l->bit);
	queue_lane_init(l);
}

static void bit_add(struct lane *l, size_t idx, int delta)
{
	size_t i;

	for (i = idx + 1; i <= l->cap; i += i & (~i + 1))
		l->bit[i] = (uint32_t)((int64_t)l->bit[i] + delta);
}

/* Pending entries in slots [0, idx). */
static uint64_t bit_prefix(const struct lane *l, size_t idx)
{
	uint64_t sum = 0;
	size_t i;

	for (i = idx; i > 0; i -= i & (~i + 1))
		sum += l->bit[i];
	return sum;
}

/* Slot index of the k-th (0-based) pending entry; k < count. */
static size_t bit_kth(const struct lane *l, uint64_t k)
{
	size_t pos = 0, step;
	uint64_t rem = k + 1;

	for (step = l->cap; step > 0; step >>= 1) {
		if (pos + step <= l->cap && l->bit[pos + step] < rem) {
			pos += step;
			rem -= l->bit[pos];
		}
	}
	return pos;
}

/* Rebuilds the window so that it covers every pending entry and seq. */
static int regrow(struct lane *l, int64_t seq, struct mr_error *err)
{
	int64_t lo = seq, hi = seq, span, noff;
	size_t ncap = 1024, i;
	uint32_t *nslot = NULL, *nbit = NULL;

	if (l->count > 0) {
		int64_t first = (int64_t)bit_kth(l, 0) - l->offset;
		int64_t last = (int64_t)bit_kth(l, l->count - 1) - l->offset;

		if (first < lo)
			lo = first;
		if (last > hi)
			hi = last;
	}
	span = hi - lo + 1;
	if (span > QUEUE_SPAN_LIMIT) {
		mr_error_set(err, ERANGE, "queue lane window %lld..%lld is too wide",
			     (long long)lo, (long long)hi);
		return -1;
	}
	while ((int64_t)ncap < span * 2)
		ncap <<= 1;
	/* A quarter of the room in front (bumps), the rest behind (requests). */
	noff = (int64_t)(ncap / 4) - lo;
	nslot = calloc(ncap, sizeof(*nslot));
	nbit = calloc(ncap + 1, sizeof(*nbit));
	if (nslot == NULL || nbit == NULL) {
		free(nslot);
		free(nbit);
		mr_error_set(err, ENOMEM, "queue lane of %zu slots", ncap);
		return -1;
	}
	for (i = 0; i < l->cap; i++) {
		if (l->slot[i] != 0)
			nslot[(size_t)((int64_t)i - l->offset + noff)] = l->slot[i];
	}
	/* Linear-time Fenwick build. */
	for (i = 1; i <= ncap; i++) {
		size_t j = i + (i & (~i + 1));

		nbit[i] += nslot[i - 1] != 0;
		if (j <= ncap)
			nbit[j] += nbit[i];
	}
	free(l->slot);
	free(l->bit);
	l->slot = nslot;
	l->bit = nbit;
	l->cap = ncap;
	l->offset = noff;
	return 0;
}

static int in_window(const struct lane *l, int64_t seq)
{
	int64_t idx = seq + l->offset;

	return l->cap > 0 && idx >= 0 && idx < (int64_t)l->cap;
}

int queue_lane_insert(struct lane *l, int64_t seq, uint32_t id, struct mr_error *err)
{
	size_t idx;

	if (seq <= -QUEUE_SEQ_LIMIT || seq >= QUEUE_SEQ_LIMIT) {
		mr_error_set(err, ERANGE, "queue sequence number %lld out of range", (long long)seq);
		return -1;
	}
	if (!in_window(l, seq) && regrow(l, seq, err) < 0)
		return -1;
	idx = (size_t)(seq + l->offset);
	if (l->slot[idx] != 0) {
		mr_error_set(err, EEXIST, "queue sequence number %lld is taken", (long long)seq);
		return -1;
	}
	l->slot[idx] = id + 1;
	bit_add(l, idx, 1);
	l->count++;
	queue_lane_note_seq(l, seq);
	return 0;
}

void queue_lane_remove(struct lane *l, int64_t seq)
{
	size_t idx = (size_t)(seq + l->offset);

	l->slot[idx] = 0;
	bit_add(l, idx, -1);
	l->count--;
}

uint64_t queue_lane_rank(const struct lane *l, int64_t seq)
{
	return bit_prefix(l, (size_t)(seq + l->offset));
}

uint64_t queue_lane_count_upto(const struct lane *l, int64_t seq)
{
	int64_t idx = seq + l->offset;

	if (l->cap == 0 || idx < 0)
		return 0;
	if (idx >= (int64_t)l->cap)
		return l->count;
	return bit_prefix(l, (size_t)idx + 1);
}

uint32_t queue_lane_kth(const struct lane *l, uint64_t k)
{
	if (k >= l->count)
		return 0;
	return l->slot[bit_kth(l, k)];
}

void queue_lane_note_seq(struct lane *l, int64_t seq)
{
	if (seq >= l->back)
		l->back = seq + 1;
	if (seq <= l->front)
		l->front = seq - 1;
}

/* ---- the waiting heap ---------------------------------------------- */

static int heap_less(const struct queue *q, uint32_t a, uint32_t b)
{
	const struct quser *ua = q->users[a], *ub = q->users[b];

	if (ua->size_hint != ub->size_hint)
		return ua->size_hint < ub->size_hint;
	return strcmp(ua->name, ub->name) < 0;
}

int queue_heap_push(struct queue *q, uint32_t id)
{
	size_t i;

	if (q->heap_len == q->heap_cap) {
		size_t ncap = q->heap_cap ? q->heap_cap * 2 : 1024;
		uint32_t *n = realloc(q->heap, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		q->heap = n;
		q->heap_cap = ncap;
	}
	i = q->heap_len++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!heap_less(q, id, q->heap[parent]))
			break;
		q->heap[i] = q->heap[parent];
		i = parent;
	}
	q->heap[i] = id;
	q->users[id]->in_heap = 1;
	return 0;
}

uint32_t queue_heap_peek(const struct queue *q)
{
	return q->heap_len ? q->heap[0] + 1 : 0;
}

uint32_t queue_heap_pop(struct queue *q)
{
	uint32_t top, last;
	size_t i = 0;

	if (q->heap_len == 0)
		return 0;
	top = q->heap[0];
	last = q->heap[--q->heap_len];
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= q->heap_len)
			break;
		if (c + 1 < q->heap_len && heap_less(q, q->heap[c + 1], q->heap[c]))
			c++;
		if (!heap_less(q, q->heap[c], last))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (q->heap_len > 0)
		q->heap[i] = last;
	q->users[top]->in_heap = 0;
	return top + 1;
}
