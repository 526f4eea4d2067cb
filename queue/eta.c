/*
 * eta.c: the time model (see eta.h): a weighted least-squares line of
 * seconds against backup size per phase, its file on disk, and the
 * schedule that turns costs in queue order into the seconds until each
 * user is done.
 */
#include "queue/eta.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#define RATES_MAGIC "MRER"
#define RATES_MAJOR 1
#define RATES_MINOR 0
#define RATES_HEADER 16
#define RATES_HASH_XXH3 1
#define RATES_FIELDS 10
#define RATES_BODY (ETA_PHASES * RATES_FIELDS * 8)
#define RATES_SIZE (RATES_HEADER + RATES_BODY + 8)

/* One phase's sums; every field decays by ETA_DECAY at each new run. */
struct line {
	double w, sx, sy, sxx, sxy, syy;
	double bytes, files, seconds;
	double runs;  /* not decayed: how many runs were ever seen */
};

struct eta_model {
	pthread_mutex_t mu;
	struct line ph[ETA_PHASES];
};

struct eta_model *eta_model_new(void)
{
	struct eta_model *m = calloc(1, sizeof(*m));

	if (m != NULL)
		pthread_mutex_init(&m->mu, NULL);
	return m;
}

void eta_model_free(struct eta_model **m)
{
	if (m == NULL || *m == NULL)
		return;
	pthread_mutex_destroy(&(*m)->mu);
	free(*m);
	*m = NULL;
}

void eta_model_observe(struct eta_model *m, enum eta_phase phase, uint64_t size, uint64_t bytes,
		       uint64_t files, double seconds)
{
	struct line *l;
	/* Sizes in MiB keep the squares far from double's limits. */
	double x = (double)size / 1048576.0;

	if ((unsigned)phase >= ETA_PHASES || !isfinite(seconds) || seconds < 0)
		return;
	pthread_mutex_lock(&m->mu);
	l = &m->ph[phase];
	l->w = l->w * ETA_DECAY + 1;
	l->sx = l->sx * ETA_DECAY + x;
	l->sy = l->sy * ETA_DECAY + seconds;
	l->sxx = l->sxx * ETA_DECAY + x * x;
	l->sxy = l->sxy * ETA_DECAY + x * seconds;
	l->syy = l->syy * ETA_DECAY + seconds * seconds;
	l->bytes = l->bytes * ETA_DECAY + (double)bytes;
	l->files = l->files * ETA_DECAY + (double)files;
	l->seconds = l->seconds * ETA_DECAY + seconds;
	l->runs += 1;
	pthread_mutex_unlock(&m->mu);
}

/* The line's slope (seconds per MiB) and intercept. A slope is only
 * believed when the runs support it: at least three, and the slope at
 * least twice its standard error. Early in a restore the runs seen are the
 * smallest users, all of about one size, and the scatter of their times
 * (other load, the page cache) makes any slope fitted to them noise that,
 * extended to the big users, is wrong by a factor of ten either way; the
 * mean run is the honest answer until bigger users have been measured. A
 * fit that says bigger is faster, or that a user costs less than nothing,
 * falls back the same way (or to a line through zero). */
static void fit(const struct line *l, double *a_r, double *b_r)
{
	double mx, my, var, cov, vy, res, se2, a, b;

	*a_r = 0;
	*b_r = 0;
	if (l->w <= 0)
		return;
	mx = l->sx / l->w;
	my = l->sy / l->w;
	*b_r = my;
	var = l->sxx / l->w - mx * mx;
	cov = l->sxy / l->w - mx * my;
	vy = l->syy / l->w - my * my;
	if (l->runs < 3 || var <= 1e-12 * (mx * mx + 1e-12))
		return;
	a = cov / var;
	b = my - a * mx;
	res = vy - a * cov; /* residual variance */
	if (res < 0)
		res = 0;
	se2 = res / (l->w * var);
	if (a <= 0 || a * a < 4 * se2)
		return;
	if (b < 0) {
		a = l->sxx > 0 ? l->sxy / l->sxx : 0;
		b = 0;
	}
	*a_r = a;
	*b_r = b;
}

double eta_model_cost(struct eta_model *m, enum eta_phase phase, uint64_t size)
{
	double a, b, c = -1;

	if ((unsigned)phase >= ETA_PHASES)
		return -1;
	pthread_mutex_lock(&m->mu);
	if (m->ph[phase].runs > 0) {
		fit(&m->ph[phase], &a, &b);
		c = a * ((double)size / 1048576.0) + b;
		if (c < 0)
			c = 0;
	}
	pthread_mutex_unlock(&m->mu);
	return c;
}

int eta_model_measured(struct eta_model *m)
{
	int r;

	pthread_mutex_lock(&m->mu);
	r = m->ph[ETA_RUN].runs > 0;
	pthread_mutex_unlock(&m->mu);
	return r;
}

void eta_model_rates(struct eta_model *m, enum eta_phase phase, struct eta_rates *rates_r)
{
	const struct line *l;
	double a, b;

	memset(rates_r, 0, sizeof(*rates_r));
	if ((unsigned)phase >= ETA_PHASES)
		return;
	pthread_mutex_lock(&m->mu);
	l = &m->ph[phase];
	fit(l, &a, &b);
	rates_r->runs = l->runs;
	rates_r->seconds_per_byte = a / 1048576.0;
	rates_r->seconds_per_user = b;
	if (l->seconds > 0) {
		rates_r->bytes_per_second = l->bytes / l->seconds;
		rates_r->files_per_second = l->files / l->seconds;
	}
	pthread_mutex_unlock(&m->mu);
}

/* ---- the file ----------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	put_u16(p, (uint16_t)v);
	put_u16(p + 2, (uint16_t)(v >> 16));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)get_u16(p) | ((uint32_t)get_u16(p + 2) << 16);
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static void put_f64(uint8_t *p, double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	put_u64(p, u);
}

static double get_f64(const uint8_t *p)
{
	uint64_t u = get_u64(p);
	double v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

static double *field(struct line *l, int i)
{
	double *f[RATES_FIELDS] = { &l->w,     &l->sx,    &l->sy,    &l->sxx,     &l->sxy,
				    &l->syy,   &l->bytes, &l->files, &l->seconds, &l->runs };

	return f[i];
}

int eta_model_load(struct eta_model *m, int dirfd, struct mr_error *err)
{
	uint8_t buf[RATES_SIZE + 1];
	struct line ph[ETA_PHASES];
	const uint8_t *p;
	ssize_t n;
	int fd, rc = -1, i, k;

	memset(ph, 0, sizeof(ph));
	fd = mr_io->openat(dirfd, ETA_RATES_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == ENOENT)
			rc = 0;
		else
			mr_error_set(err, errno, "open(%s) failed", ETA_RATES_FILE);
		goto out;
	}
	n = mr_read_full(fd, buf, sizeof(buf));
	if (n < 0) {
		mr_error_set(err, errno, "read(%s) failed", ETA_RATES_FILE);
		goto out;
	}
	if (n < RATES_HEADER || memcmp(buf, RATES_MAGIC, 4) != 0) {
		mr_error_set(err, EINVAL, "%s: not a rates file", ETA_RATES_FILE);
		goto out;
	}
	if (get_u16(buf + 4) != RATES_MAJOR || get_u32(buf + 8) != RATES_HEADER ||
	    get_u32(buf + 12) != RATES_HASH_XXH3) {
		mr_error_set(err, EINVAL, "%s: version %u of the rates file is not ours",
			     ETA_RATES_FILE, get_u16(buf + 4));
		goto out;
	}
	if (n != RATES_SIZE ||
	    XXH3_64bits(buf + RATES_HEADER, RATES_BODY) != get_u64(buf + RATES_HEADER + RATES_BODY)) {
		mr_error_set(err, EINVAL, "%s: torn or corrupt (checksum)", ETA_RATES_FILE);
		goto out;
	}
	p = buf + RATES_HEADER;
	for (k = 0; k < ETA_PHASES; k++)
		for (i = 0; i < RATES_FIELDS; i++, p += 8) {
			*field(&ph[k], i) = get_f64(p);
			/* Every sum is of sizes, seconds and counts: never
			 * negative. */
			if (!isfinite(*field(&ph[k], i)) || *field(&ph[k], i) < 0) {
				mr_error_set(err, EINVAL, "%s: a value out of range",
					     ETA_RATES_FILE);
				memset(ph, 0, sizeof(ph));
				goto out;
			}
		}
	rc = 1;
out:
	pthread_mutex_lock(&m->mu);
	memcpy(m->ph, ph, sizeof(ph));
	pthread_mutex_unlock(&m->mu);
	mr_close(fd);
	return rc;
}

int eta_model_save(struct eta_model *m, int dirfd, struct mr_error *err)
{
	static const char tmp[] = ETA_RATES_FILE ".tmp";
	uint8_t buf[RATES_SIZE];
	uint8_t *p = buf + RATES_HEADER;
	int fd = -1, rc = -1, i, k;

	memcpy(buf, RATES_MAGIC, 4);
	put_u16(buf + 4, RATES_MAJOR);
	put_u16(buf + 6, RATES_MINOR);
	put_u32(buf + 8, RATES_HEADER);
	put_u32(buf + 12, RATES_HASH_XXH3);
	pthread_mutex_lock(&m->mu);
	for (k = 0; k < ETA_PHASES; k++)
		for (i = 0; i < RATES_FIELDS; i++, p += 8)
			put_f64(p, *field(&m->ph[k], i));
	pthread_mutex_unlock(&m->mu);
	put_u64(p, XXH3_64bits(buf + RATES_HEADER, RATES_BODY));

	fd = mr_io->openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		mr_error_set(err, errno, "open(%s) failed", tmp);
		goto out;
	}
	if (mr_write_all(fd, buf, sizeof(buf)) < 0) {
		mr_error_set(err, errno, "write(%s) failed", tmp);
		goto out;
	}
	if (mr_io->fsync(fd) < 0) {
		mr_error_set(err, errno, "fsync(%s) failed", tmp);
		goto out;
	}
	if (mr_io->close(fd) < 0) {
		fd = -1;
		mr_error_set(err, errno, "close(%s) failed", tmp);
		goto out;
	}
	fd = -1;
	if (mr_io->renameat(dirfd, tmp, dirfd, ETA_RATES_FILE) < 0) {
		mr_error_set(err, errno, "rename(%s, %s) failed", tmp, ETA_RATES_FILE);
		goto out;
	}
	if (mr_fsync_dir_at(dirfd, ".", err) < 0)
		goto out;
	rc = 0;
out:
	mr_close(fd);
	return rc;
}

/* ---- the schedule --------------------------------------------------------- */

void eta_sched_init(struct eta_sched *s, unsigned workers, const double *running_left,
		    size_t nrunning)
{
	unsigned i;

	if (workers < 1)
		workers = 1;
	if (workers > ETA_MAX_WORKERS)
		workers = ETA_MAX_WORKERS;
	s->workers = workers;
	s->last = 0;
	for (i = 0; i < workers; i++) {
		s->free_at[i] = i < nrunning && running_left[i] > 0 ? running_left[i] : 0;
		if (s->free_at[i] > s->last)
			s->last = s->free_at[i];
	}
}

double eta_sched_add(struct eta_sched *s, double cost)
{
	unsigned i, best = 0;

	for (i = 1; i < s->workers; i++)
		if (s->free_at[i] < s->free_at[best])
			best = i;
	s->free_at[best] += cost > 0 ? cost : 0;
	if (s->free_at[best] > s->last)
		s->last = s->free_at[best];
	return s->free_at[best];
}

double eta_sched_end(const struct eta_sched *s)
{
	return s->last;
}
