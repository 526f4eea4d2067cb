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
#define RATES_MAJOR 3
#define RATES_MINOR 0
#define RATES_HEADER 16
#define RATES_HASH_XXH3 1
/* Per phase: runs, n, bytes, files, seconds, per_written, ratio, nb_sum, nb_w, then ETA_BINS triples {w, x, y}, then ETA_WINDOW triples {x, z, y}. */
#define RATES_SCALARS 9
#define RATES_FIELDS (RATES_SCALARS + 3 * ETA_BINS + 3 * ETA_WINDOW)
#define RATES_BODY (ETA_PHASES * RATES_FIELDS * 8)
#define RATES_SIZE (RATES_HEADER + RATES_BODY + 8)
#define MIB 1048576.0
/* A bin's mean run counts against the line as if the line had this many
 * runs in the bin (see fit). */
#define ETA_BIN_PRIOR 8.0
/* A run that took over this many times what the shape said of its size
 * counts as this many times it, in its bin and in the level (see
 * eta_model_observe). */
#define ETA_FAR_RUN 3.0
/* Two such runs that ended within this share of the shorter one's
 * seconds (at least ETA_TOGETHER_MIN_S) stalled together: the disk, not
 * their sizes (see eta_model_observe_at). The stall pairs of the bench's
 * traces ended 0.6 to 51 ms apart, after runs of 0.44 to 1.1 s. */
#define ETA_TOGETHER 0.1
#define ETA_TOGETHER_MIN_S 0.005
/* Past the largest size seen, cost grows as a power of size fitted to the
 * bins (see fit), never below this power, never above the line. */
#define ETA_POWER_MIN 0.7
/* The bins must span this factor of sizes to show a power. */
#define ETA_POWER_SPAN 10.0
/* The bins must span this many MiB to show a cost per MiB far past the
 * largest (see shape_cost). */
#define ETA_SLOPE_SPAN_MIB 1.0
/* The writes of the window must span this many MiB to show a cost per
 * MiB written (see fit). */
#define ETA_WRITES_SPAN_MIB 4.0

/* One phase: the latest runs, oldest first, and the line fitted to them. */
struct line {
	double runs;                 /* every run ever seen (not only the window) */
	double n;                    /* runs in the window, 0..ETA_WINDOW */
	double x[ETA_WINDOW];        /* the user's size, MiB (0: no backup) */
	double z[ETA_WINDOW];        /* what the run wrote, MiB */
	double y[ETA_WINDOW];        /* the run's seconds */
	double bytes, files, seconds; /* decayed by ETA_DECAY at each run */
	double per_written;          /* seconds per MiB written that the runs
	                              * showed (0: not yet; see fit) */
	double ratio;                /* MiB written per MiB of backup that the
	                              * runs showed (0: not yet; see fit) */
	double nb_sum, nb_w;         /* seconds of runs without a backup and
	                              * their weight, decayed at each such run */
	/* Every run with a backup by its size (bin k: 2^k KiB and up),
	 * decayed at each run of the bin: the shape of cost against size
	 * over every size seen, not only the window's. */
	double hw[ETA_BINS], hx[ETA_BINS], hy[ETA_BINS];
	double a, b;                 /* the fit: seconds = a * MiB + b */
	/* The shape through the size bins seen (see fit): np points, sizes
	 * rising, each bin's mean run pulled toward the line by
	 * ETA_BIN_PRIOR runs' worth, the level applied. */
	double px[ETA_BINS], py[ETA_BINS];
	int np;
	double pp, pb;               /* past the largest bin: cost above pb
	                              * grows as size to the power pp (1: the
	                              * line alone; see fit) */
	double a0;                   /* the prior slope in force */
	double ak;                   /* a0 times the level (see shape_cost) */
	double ymean;                /* the window's mean run, recent ones weighing more */
	/* The latest run, when it was far above its shape in a thin bin (see
	 * eta_model_observe_at; not kept in the file): when it ended, its
	 * seconds, its bin and what its bin and window slot got above the
	 * shape's figure. */
	int far_last;
	double far_end, far_seconds, far_cut;
	int far_bin;
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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The line through the window with weights w[] and the prior on the
 * slope: a = (Sxy + lambda * a0) / (Sxx + lambda), the least-squares slope
 * pulled toward the prior a0 = ETA_PRIOR_S_PER_MIB as hard as the runs'
 * scatter (lambda) outweighs their spread in size (Sxx). Runs of about one
 * size (the smallest users, first in the background order) leave the
 * prior; runs over a range of sizes, or exact ones, give their own slope.
 * A user never costs less than nothing: a line that says so is laid
 * through zero. */
static void wls(const double *x, const double *y, int n, const double *w, double lambda,
		double a0, double *a_r, double *b_r)
{
	double sw = 0, mx = 0, my = 0, sxx = 0, sxy = 0, a, b;
	int i;

	for (i = 0; i < n; i++) {
		sw += w[i];
		mx += w[i] * x[i];
		my += w[i] * y[i];
	}
	*a_r = a0;
	*b_r = 0;
	if (sw <= 0)
		return;
	mx /= sw;
	my /= sw;
	for (i = 0; i < n; i++) {
		sxx += w[i] * (x[i] - mx) * (x[i] - mx);
		sxy += w[i] * (x[i] - mx) * (y[i] - my);
	}
	a = sxx + lambda > 0 ? (sxy + lambda * a0) / (sxx + lambda) : a0;
	if (a < 0)
		a = 0;
	b = my - a * mx;
	if (b < 0) {
		double sxx0 = 0, sxy0 = 0;

		for (i = 0; i < n; i++) {
			sxx0 += w[i] * x[i] * x[i];
			sxy0 += w[i] * x[i] * y[i];
		}
		b = 0;
		a = sxx0 + lambda > 0 ? (sxy0 + lambda * a0) / (sxx0 + lambda) : a;
	}
	*a_r = a;
	*b_r = b;
}

/* A line through n runs (x, y) with recency weights rw: a run far off
 * the line weighs less (Huber weights from the median residual, a few
 * rounds): the first runs after a start, slowed by cold caches and the
 * start-up's own work, or a run that shared the disk with a backup job, do
 * not pull every estimate with them, while a machine that really got
 * slower moves the line as soon as its runs are the recent ones. The
 * prior's pull (lambda) is the runs' weighted residual variance over the
 * prior's own (its value squared): noisy runs of one size cannot move it,
 * and a slope made of a change of load during a run of growing sizes is
 * mostly held back. Also gives the runs' own slope (no prior) and its
 * variance (-1: the runs give none), and their scatter around it (the
 * weighted mean square). */
static void robust_fit(const double *x, const double *y, const double *rw, int n, double a0,
		       double *a_r, double *b_r, double *free_a_r, double *var_r, double *s2_r)
{
	double w[ETA_WINDOW], r[ETA_WINDOW];
	double a, b, da = a0, db = 0, scale, k, lambda, tau2 = a0 * a0;
	int i, round;

	*var_r = -1;
	*s2_r = 0;
	for (i = 0; i < n; i++)
		w[i] = rw[i];
	/* A first line: the prior slope through the mean run. */
	wls(x, y, n, w, 1e300, a0, &a, &b);
	for (round = 0; round < 5 && n >= 2; round++) {
		double my = 0, sw = 0, s2 = 0, mx = 0, sxx = 0, v = 0;

		for (i = 0; i < n; i++) {
			r[i] = fabs(y[i] - (a * x[i] + b));
			my += y[i] / n;
		}
		qsort(r, (size_t)n, sizeof(r[0]), cmp_double);
		scale = 1.4826 * (n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2);
		/* identical runs leave no scatter: a floor of 5 % of a run */
		if (scale < 0.05 * my + 1e-9)
			scale = 0.05 * my + 1e-9;
		/* only far runs: a sum of many users needs their mean, slow
		 * ones included (the syncfs of a busy disk), not a median */
		k = 3.0 * scale;
		for (i = 0; i < n; i++) {
			double e = fabs(y[i] - (a * x[i] + b));

			w[i] = rw[i] * (e <= k ? 1.0 : k / e);
		}
		/* the scatter around the runs' own line */
		wls(x, y, n, w, 0, a0, &da, &db);
		for (i = 0; i < n; i++) {
			sw += w[i];
			mx += w[i] * x[i];
		}
		mx = sw > 0 ? mx / sw : 0;
		for (i = 0; i < n; i++) {
			double e = y[i] - (da * x[i] + db);

			s2 += w[i] * e * e;
			sxx += w[i] * (x[i] - mx) * (x[i] - mx);
			/* the slope's variance, robust to unequal scatter */
			v += w[i] * w[i] * (x[i] - mx) * (x[i] - mx) * e * e;
		}
		*var_r = sxx > 0 && n > 2 ? v / (sxx * sxx) * n / (n - 2) : -1;
		*s2_r = sw > 0 ? s2 / sw : 0;
		lambda = sw > 0 ? s2 / sw / tau2 : 0;
		wls(x, y, n, w, lambda, a0, &a, &b);
	}
	*a_r = a;
	*b_r = b;
	*free_a_r = da;
}

/* How far the recent runs y are above (k > 1) or below what the shape
 * says of them (f):
 * the ratio of their sums (a wait is a sum of runs), recent runs weighing
 * more and runs far off weighing less (Huber, as in robust_fit). */
static double level(const double *f, const double *y, const double *rw, int n)
{
	double r[ETA_WINDOW], w[ETA_WINDOW], k = 1, sy, sf, my = 0, scale;
	int i, round;

	for (i = 0; i < n; i++) {
		w[i] = rw[i];
		my += y[i] / n;
	}
	for (round = 0; round < 3; round++) {
		sy = sf = 0;
		for (i = 0; i < n; i++) {
			sy += w[i] * y[i];
			sf += w[i] * f[i];
		}
		if (sf <= 0)
			return 1;
		k = sy / sf;
		for (i = 0; i < n; i++)
			r[i] = fabs(y[i] - k * f[i]);
		qsort(r, (size_t)n, sizeof(r[0]), cmp_double);
		scale = 1.4826 * (n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2);
		if (scale < 0.05 * my + 1e-9)
			scale = 0.05 * my + 1e-9;
		for (i = 0; i < n; i++) {
			double e = fabs(y[i] - k * f[i]);

			w[i] = rw[i] * (e <= 3 * scale ? 1.0 : 3 * scale / e);
		}
	}
	return k;
}

/* The cost of a user with a backup of x MiB on the shape (see fit). */
static double shape_cost(const struct line *l, double x)
{
	double line, power, span, far, w;
	int i;

	if (l->np == 0)
		return l->a * x + l->b;
	if (x <= l->px[0]) {
		/* below the smallest users seen: the line's slope down to
		 * them, never below the line's cost per user */
		double c = l->py[0] - l->a * (l->px[0] - x), floor = l->py[0] < l->b ? l->py[0] : l->b;

		return c > floor ? c : floor;
	}
	for (i = 1; i < l->np; i++)
		if (x <= l->px[i])
			return l->py[i - 1] + (x - l->px[i - 1]) / (l->px[i] - l->px[i - 1]) *
						      (l->py[i] - l->py[i - 1]);
	/* Bins that span less than ETA_SLOPE_SPAN_MIB (users whose cost is
	 * their fixed part) show a slope for about their span past the
	 * largest; further out the prior slope (from what every run wrote)
	 * takes over: three tiny bins of 28 to 110 KiB, the last one slow,
	 * made a slope of 0.09 s per MiB and told a 10 MiB login 0.93 s for
	 * a run of 0.15. */
	span = l->px[l->np - 1] - l->px[0];
	far = x - l->px[l->np - 1];
	w = span < ETA_SLOPE_SPAN_MIB && far > span ? span / far : 1;
	line = l->py[l->np - 1] + (w * l->a + (1 - w) * l->ak) * far;
	if (l->pp >= 1 || l->py[l->np - 1] <= l->pb)
		return line;
	power = l->pb + (l->py[l->np - 1] - l->pb) * pow(x / l->px[l->np - 1], l->pp);
	return power < line ? power : line;
}

static int bin_of(uint64_t size)
{
	int k = 0;

	for (size >>= 10; size > 1 && k < ETA_BINS - 1; size >>= 1)
		k++;
	return k;
}

/* 1 when the bin of a size holds fewer runs than ETA_BIN_PRIOR: there a
 * stalled run is clipped to ETA_FAR_RUN times its size's cost (see
 * eta_model_observe). */
static int thin_bin(const struct line *l, uint64_t size)
{
	return l->hw[bin_of(size)] < ETA_BIN_PRIOR;
}

/* How cost grows past the largest size seen: the line's slope carried on
 * from the largest bin told a user of 120 MiB 1.3 s for runs of 0.6 to
 * 0.7 s when the biggest seen were 10 MiB, because bigger mailboxes hold
 * bigger messages and cost less per MiB (the tail users here: 0.005 to
 * 0.015 s per MiB, the median users 0.02). The bins' cost above a fixed
 * part pb, against size, on a log-log line (weights: the bins' runs),
 * gives a power pp; shape_cost takes the lower of that power and the line.
 * pb is the line's cost per user, at most half the smallest bin's (a fixed
 * part above the smallest users' cost would leave them out). Bins that
 * span less than ETA_POWER_SPAN show no power (pp 1: the line alone), and
 * pp stays within [ETA_POWER_MIN, 1]: a sum of per-byte work is never
 * flatter than that here, and never steeper than the line. */
static void fit_power(struct line *l, const double *bw)
{
	double lx[ETA_BINS], ly[ETA_BINS], lw[ETA_BINS];
	double sw = 0, mx = 0, my = 0, sxx = 0, sxy = 0, p;
	int i, q = 0;

	l->pp = 1;
	l->pb = l->np > 0 && l->b > 0.5 * l->py[0] ? 0.5 * l->py[0] : l->b;
	for (i = 0; i < l->np; i++)
		if (l->py[i] > l->pb && l->px[i] > 0) {
			lx[q] = log(l->px[i]);
			ly[q] = log(l->py[i] - l->pb);
			lw[q++] = bw[i];
		}
	if (q < 2 || lx[q - 1] - lx[0] < log(ETA_POWER_SPAN))
		return;
	for (i = 0; i < q; i++) {
		sw += lw[i];
		mx += lw[i] * lx[i];
		my += lw[i] * ly[i];
	}
	mx /= sw;
	my /= sw;
	for (i = 0; i < q; i++) {
		sxx += lw[i] * (lx[i] - mx) * (lx[i] - mx);
		sxy += lw[i] * (lx[i] - mx) * (ly[i] - my);
	}
	p = sxx > 0 ? sxy / sxx : 1;
	l->pp = p < ETA_POWER_MIN ? ETA_POWER_MIN : p > 1 ? 1 : p;
}

/* The cost of a phase for users with a backup: a shape over every size
 * seen, times the level of the recent runs. Runs without a backup (size 0)
 * cost what their source holds, which their size does not say; they are
 * kept apart (nb_sum, nb_w).
 *
 * The shape, seconds = a * MiB + b, is fitted to the size bins (hw, hx,
 * hy): the latest runs alone are users of about one size (the background
 * goes smallest first), and a slope fitted to them swung from 0 to 3x the
 * true one as the machine's load moved, so a 100 MiB user was told 0.1 s
 * or 7 s. The bins keep the sizes already seen; the slope is pulled toward
 * the prior as hard as the runs' scatter outweighs the bins' spread in
 * size (as in robust_fit). The level (see level()) then follows a machine
 * whose load changes, for big and small users alike.
 *
 * The prior slope: until the runs span sizes enough, the slope comes from
 * what every run wrote. The smallest users run first and tell nothing of a
 * cost per MiB, but users without a backup (first too: their size is 0)
 * copy their whole source, and their writes and seconds show a cost per
 * MiB written; times the MiB written per MiB of backup (the slope of
 * writes against size: small users write their indexes whatever their
 * size, which a plain ratio would count per MiB), it is a cost per MiB of
 * backup. Kept (per_written) once the runs showed it (three standard
 * errors), for the runs after it; ETA_PRIOR_S_PER_MIB until then. */
static void fit(struct line *l)
{
	double rw[ETA_WINDOW], xs[ETA_WINDOW], ys[ETA_WINDOW], zs[ETA_WINDOW], rws[ETA_WINDOW];
	double fs[ETA_WINDOW];
	double bx[ETA_BINS], by[ETA_BINS], bw[ETA_BINS];
	double a, b, fa, var, s2 = 0, ratio, sw = 0, my = 0, k, zmin, zmax;
	int i, n = (int)l->n, m = 0, nb = 0;

	l->a0 = ETA_PRIOR_S_PER_MIB;
	l->a = 0;
	l->b = 0;
	l->np = 0;
	l->pp = 1;
	l->ymean = 0;
	if (n == 0)
		return;
	for (i = n - 1; i >= 0; i--)
		rw[i] = i == n - 1 ? 1.0 : rw[i + 1] * ETA_DECAY;
	for (i = 0; i < n; i++) {
		sw += rw[i];
		my += rw[i] * l->y[i];
		if (l->x[i] > 0) {
			xs[m] = l->x[i];
			ys[m] = l->y[i];
			zs[m] = l->z[i];
			rws[m++] = rw[i];
		}
	}
	l->ymean = my / sw;
	if (m > 2) {
		robust_fit(xs, zs, rws, m, l->ratio > 0 ? l->ratio : 1.0, &a, &b, &fa, &var, &s2);
		if (var >= 0 && fa > 0 && fa * fa >= 9 * var)
			l->ratio = fa;
	}
	/* one MiB written per MiB of backup until the runs show theirs */
	ratio = l->ratio > 0 ? l->ratio : 1.0;
	robust_fit(l->z, l->y, rw, n, ETA_PRIOR_S_PER_MIB / ratio, &a, &b, &fa, &var, &s2);
	zmin = zmax = l->z[0];
	for (i = 1; i < n; i++) {
		zmin = l->z[i] < zmin ? l->z[i] : zmin;
		zmax = l->z[i] > zmax ? l->z[i] : zmax;
	}
	/* Runs that all wrote about as little (small users) show their fixed
	 * cost, not one per MiB: a slope from them was a third of the true
	 * one. */
	if (var >= 0 && fa > 0 && fa * fa >= 9 * var && zmax - zmin >= ETA_WRITES_SPAN_MIB)
		l->per_written = fa;
	if (l->per_written > 0)
		l->a0 = l->per_written * ratio;
	if (m == 0) {
		/* only users without a backup so far: what a run costs
		 * besides its writes */
		l->a = l->a0;
		l->b = b;
		return;
	}
	/* the runs' scatter, for the prior's pull on the shape */
	robust_fit(xs, ys, rws, m, l->a0, &a, &b, &fa, &var, &s2);
	for (i = 0; i < ETA_BINS; i++)
		if (l->hw[i] > 0) {
			bw[nb] = l->hw[i];
			bx[nb] = l->hx[i] / l->hw[i];
			by[nb++] = l->hy[i] / l->hw[i];
		}
	wls(bx, by, nb, bw, s2 / (l->a0 * l->a0), l->a0, &a, &b);
	/* Cost is not a line in size: a mailbox of many small messages in
	 * several folders costs twice what a tiny user with one attachment of
	 * the same size does, and the biggest users write MiBs cheaply. Where
	 * bins were seen (the smallest users from the background, any size
	 * from logins, a random sample of the line ahead), their runs say
	 * more than a line through all of them; the points are the bins'
	 * means pulled toward the line by ETA_BIN_PRIOR runs (one slow run
	 * does not make its bin), the cost between two points is read off
	 * the segment between them, and past the largest the line's slope
	 * or a power of size goes on from it (fit_power). bx rises with the
	 * bin. */
	l->a = a;
	l->b = b;
	l->np = nb;
	for (i = 0; i < nb; i++) {
		l->px[i] = bx[i];
		l->py[i] = (bw[i] * by[i] + ETA_BIN_PRIOR * (a * bx[i] + b)) / (bw[i] + ETA_BIN_PRIOR);
	}
	/* the level of the recent runs against that shape, a stalled run
	 * counting as what its bin got (see eta_model_observe_at) */
	for (i = 0; i < m; i++)
		fs[i] = shape_cost(l, xs[i]);
	k = level(fs, ys, rws, m);
	l->a = k * a;
	l->ak = k * l->a0;
	l->b = k * b;
	for (i = 0; i < nb; i++)
		l->py[i] *= k;
	fit_power(l, bw);
}

/* 1 when a far run that ended at `ended` after `seconds` and the latest
 * far run of l ended together (see eta_model_observe_at). */
static int stalled_together(const struct line *l, double ended, double seconds)
{
	double shorter = seconds < l->far_seconds ? seconds : l->far_seconds;
	double within = ETA_TOGETHER * shorter;

	if (!l->far_last || ended < 0)
		return 0;
	if (within < ETA_TOGETHER_MIN_S)
		within = ETA_TOGETHER_MIN_S;
	return fabs(ended - l->far_end) <= within;
}

void eta_model_observe(struct eta_model *m, enum eta_phase phase, uint64_t size, uint64_t bytes,
		       uint64_t files, double seconds)
{
	eta_model_observe_at(m, phase, size, bytes, files, seconds, -1);
}

void eta_model_observe_at(struct eta_model *m, enum eta_phase phase, uint64_t size,
			  uint64_t bytes, uint64_t files, double seconds, double ended)
{
	struct line *l;
	double x, y = seconds, f = 0;
	int last, far;

	if ((unsigned)phase >= ETA_PHASES || !isfinite(seconds) || seconds < 0)
		return;
	if (!isfinite(ended))
		ended = -1;
	pthread_mutex_lock(&m->mu);
	l = &m->ph[phase];
	/* What the shape says of this size where its bin is thin (fewer
	 * runs than ETA_BIN_PRIOR), past every size seen included. */
	x = (double)size / MIB;
	if (size > 0 && l->np > 0 && thin_bin(l, size))
		f = shape_cost(l, x);
	/* A run far above what its size costs counts as ETA_FAR_RUN times
	 * that in a bin of few runs (f is 0 elsewhere), in its bin and in the
	 * window: both workers' runs stall together now and then (0.6 to 1 s
	 * on a cold disk, the target's journal), and one stalled login of
	 * four in a bin of 2 to 4 MiB told the 129 waiting users of that size
	 * twice their cost. Among many runs the stalls are part of the mean.
	 * The first run past every size seen is clipped too: a stalled login
	 * of 10.5 MiB (0.82 s where the shape said 0.2) set the slope that
	 * told a 120 MiB login 9 s for a run of 0.6. A size that really
	 * costs more shows it within a few runs, each allowed 3x the shape
	 * before it.
	 *
	 * Two such runs that ended together waited on the disk, not on their
	 * sizes (both on one syncfs of the target, or one on the other's
	 * activation): both count as their shape's figure. Two logins of 64 and 115 KiB among the first runs
	 * stalled 0.84 s each; at 3x apiece, the line through the four thin
	 * bins then told every tiny user 4x its cost. Runs that cost more
	 * for their size end when their own work does, together only by
	 * chance. */
	far = f > 0 && seconds > ETA_FAR_RUN * f;
	if (far)
		y = ETA_FAR_RUN * f;
	if (far && stalled_together(l, ended, seconds)) {
		/* the latest run is the window's last and its bin's newest */
		l->hy[l->far_bin] -= l->far_cut;
		l->y[(int)l->n - 1] -= l->far_cut;
		y = f;
	}
	l->far_last = far;
	l->far_end = ended;
	l->far_seconds = seconds;
	l->far_cut = y - f;
	l->far_bin = bin_of(size);
	if (l->n >= ETA_WINDOW) {
		memmove(l->x, l->x + 1, (ETA_WINDOW - 1) * sizeof(l->x[0]));
		memmove(l->z, l->z + 1, (ETA_WINDOW - 1) * sizeof(l->z[0]));
		memmove(l->y, l->y + 1, (ETA_WINDOW - 1) * sizeof(l->y[0]));
		l->n = ETA_WINDOW - 1;
	}
	/* Sizes in MiB keep the squares far from double's limits. */
	last = (int)l->n;
	l->x[last] = x;
	l->z[last] = (double)bytes / MIB;
	l->y[last] = y;
	l->n += 1;
	if (size == 0) {
		l->nb_sum = l->nb_sum * ETA_DECAY + seconds;
		l->nb_w = l->nb_w * ETA_DECAY + 1;
	} else {
		int k = l->far_bin;

		l->hw[k] = l->hw[k] * ETA_DECAY + 1;
		l->hx[k] = l->hx[k] * ETA_DECAY + x;
		l->hy[k] = l->hy[k] * ETA_DECAY + y;
	}
	l->bytes = l->bytes * ETA_DECAY + (double)bytes;
	l->files = l->files * ETA_DECAY + (double)files;
	l->seconds = l->seconds * ETA_DECAY + seconds;
	l->runs += 1;
	fit(l);
	pthread_mutex_unlock(&m->mu);
}

/* A user without a backup (size 0) costs what such users cost so far, or
 * before any, what a run costs on average: its size says nothing. */
double eta_model_cost(struct eta_model *m, enum eta_phase phase, uint64_t size)
{
	const struct line *l;
	double c = -1;

	if ((unsigned)phase >= ETA_PHASES)
		return -1;
	pthread_mutex_lock(&m->mu);
	l = &m->ph[phase];
	if (l->n > 0 && size == 0)
		c = l->nb_w > 0 ? l->nb_sum / l->nb_w : l->ymean;
	else if (l->n > 0)
		c = shape_cost(l, (double)size / MIB);
	if (l->n > 0 && c < 0)
		c = 0;
	pthread_mutex_unlock(&m->mu);
	return c;
}

int eta_model_measured(struct eta_model *m)
{
	int r;

	pthread_mutex_lock(&m->mu);
	r = m->ph[ETA_RUN].n > 0;
	pthread_mutex_unlock(&m->mu);
	return r;
}

void eta_model_rates(struct eta_model *m, enum eta_phase phase, struct eta_rates *rates_r)
{
	const struct line *l;

	memset(rates_r, 0, sizeof(*rates_r));
	if ((unsigned)phase >= ETA_PHASES)
		return;
	pthread_mutex_lock(&m->mu);
	l = &m->ph[phase];
	rates_r->runs = l->runs;
	if (l->n > 0) {
		rates_r->seconds_per_byte = l->a / MIB;
		rates_r->seconds_per_user = l->b;
	}
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
	double *f[RATES_SCALARS] = { &l->runs,        &l->n,     &l->bytes, &l->files,
				     &l->seconds,     &l->per_written, &l->ratio, &l->nb_sum,
				     &l->nb_w };

	if (i < RATES_SCALARS)
		return f[i];
	i -= RATES_SCALARS;
	if (i < 3 * ETA_BINS)
		return i % 3 == 0 ? &l->hw[i / 3] : i % 3 == 1 ? &l->hx[i / 3] : &l->hy[i / 3];
	i -= 3 * ETA_BINS;
	return i % 3 == 0 ? &l->x[i / 3] : i % 3 == 1 ? &l->z[i / 3] : &l->y[i / 3];
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
			/* Sizes, seconds and counts: never negative. */
			if (!isfinite(*field(&ph[k], i)) || *field(&ph[k], i) < 0)
				goto range;
		}
	for (k = 0; k < ETA_PHASES; k++) {
		if (ph[k].n > ETA_WINDOW || ph[k].n != (double)(int)ph[k].n || ph[k].runs < ph[k].n)
			goto range;
		fit(&ph[k]);
	}
	rc = 1;
	goto out;
range:
	mr_error_set(err, EINVAL, "%s: a value out of range", ETA_RATES_FILE);
	memset(ph, 0, sizeof(ph));
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
	s->ndeferred = 0;
	s->preempt_at = ETA_PREEMPT_S;
	for (i = 0; i < workers; i++) {
		s->free_at[i] = i < nrunning && running_left[i] > 0 ? running_left[i] : 0;
		s->background[i] = 0;
		if (s->free_at[i] > s->last)
			s->last = s->free_at[i];
	}
}

void eta_sched_background(struct eta_sched *s, unsigned i)
{
	if (i < s->workers)
		s->background[i] = 1;
}

static double place(struct eta_sched *s, unsigned i, double start, double cost)
{
	s->free_at[i] = start + (cost > 0 ? cost : 0);
	if (s->free_at[i] > s->last)
		s->last = s->free_at[i];
	return s->free_at[i];
}

static unsigned first_free(const struct eta_sched *s)
{
	unsigned i, best = 0;

	for (i = 1; i < s->workers; i++)
		if (s->free_at[i] < s->free_at[best])
			best = i;
	return best;
}

double eta_sched_add(struct eta_sched *s, double cost)
{
	unsigned i, k;

	/* Jobs that gave way come back first: the smallest users of the
	 * background, and their work copies are there. */
	for (k = 0; k < s->ndeferred; k++) {
		i = first_free(s);
		place(s, i, s->free_at[i], s->deferred[k]);
	}
	s->ndeferred = 0;
	for (i = 0; i < s->workers; i++)
		s->background[i] = 0;
	i = first_free(s);
	return place(s, i, s->free_at[i], cost);
}

double eta_sched_add_priority(struct eta_sched *s, double cost)
{
	unsigned i, best = 0;
	double start, best_start = -1;

	for (i = 0; i < s->workers; i++) {
		start = s->background[i] && s->free_at[i] > s->preempt_at ? s->preempt_at
									     : s->free_at[i];
		if (best_start < 0 || start < best_start) {
			best = i;
			best_start = start;
		}
	}
	if (s->background[best] && s->free_at[best] > best_start) {
		if (s->ndeferred < ETA_MAX_WORKERS)
			s->deferred[s->ndeferred++] = s->free_at[best] - best_start;
		s->preempt_at += ETA_PREEMPT_S;
	}
	s->background[best] = 0;
	return place(s, best, best_start, cost);
}

double eta_sched_end(const struct eta_sched *s)
{
	double end = s->last, at[ETA_MAX_WORKERS];
	unsigned i, k, best;

	/* jobs that gave way and never came back in the walk still run */
	if (s->ndeferred == 0)
		return end;
	for (i = 0; i < s->workers; i++)
		at[i] = s->free_at[i];
	for (k = 0; k < s->ndeferred; k++) {
		for (best = 0, i = 1; i < s->workers; i++)
			if (at[i] < at[best])
				best = i;
		at[best] += s->deferred[k];
		if (at[best] > end)
			end = at[best];
	}
	return end;
}

/* ---- logins yet to come ---------------------------------------------------- */

void eta_jumps_init(struct eta_jumps *j, double now, double waiting)
{
	memset(j, 0, sizeof(*j));
	j->at = now;
	j->waiting = waiting > 0 ? waiting : 0;
}

/* The counts decayed to `now`, the line's users since the last note
 * added to the exposure. */
static void jumps_advance(const struct eta_jumps *j, double now, double *n_r, double *exp_r)
{
	double dt = now > j->at ? now - j->at : 0, k = exp(-dt / ETA_JUMP_TAU);

	*n_r = j->n * k;
	/* the waiting users over dt, decayed as they accrued */
	*exp_r = j->exposure * k + j->waiting * ETA_JUMP_TAU * (1 - k);
}

void eta_jumps_note(struct eta_jumps *j, double now, double waiting, unsigned jumped)
{
	double n, e;

	jumps_advance(j, now, &n, &e);
	j->n = n + jumped;
	j->exposure = e;
	if (now > j->at)
		j->at = now;
	j->waiting = waiting > 0 ? waiting : 0;
}

double eta_jumps_hazard(const struct eta_jumps *j, double now)
{
	double n, e;

	jumps_advance(j, now, &n, &e);
	if (n <= 0)
		return 0;
	return n / (e + j->waiting * ETA_JUMP_PRIOR_S + 1e-9);
}

double eta_jumps_stretch(double hazard, double behind, unsigned workers)
{
	double rho;

	if (!(hazard > 0) || !(behind > 0))
		return 1;
	rho = hazard * behind / (workers > 0 ? workers : 1);
	if (rho > ETA_JUMP_MAX)
		rho = ETA_JUMP_MAX;
	return 1 / (1 - rho);
}
