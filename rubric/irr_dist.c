/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_dist.c - the distributions behind confidence intervals (F, Student t,
 * normal quantiles through the regularised incomplete beta function) and the
 * bootstrap's random numbers and percentile intervals.
 *
 * Written here rather than borrowed so rubric/ needs nothing but libm. The
 * incomplete beta uses its continued fraction (modified Lentz); quantiles
 * are found by bisection on the log scale, which is slow by numerical-library
 * standards (a few hundred CDF evaluations) but is called a handful of times
 * per run and is accurate to ~1e-13 relative for any degrees of freedom.
 */
#include <math.h>
#include <stdlib.h>

#include "irr_impl.h"

/* Continued fraction for I_x(a, b), valid (fast) for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-16;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny)
        d = tiny;
    d = 1.0 / d;
    double f = d;
    for (int m = 1; m < 200000; m++) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + num * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        f *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + num * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        double step = d * c;
        f *= step;
        if (fabs(step - 1.0) < eps)
            break;
    }
    return f;
}

double irr_beta_inc(double a, double b, double x)
{
    if (!(x > 0))
        return 0.0;
    if (!(x < 1))
        return 1.0;
    double log_front = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1.0) / (a + b + 2.0))
        return exp(log_front) * beta_cf(a, b, x) / a;
    return 1.0 - exp(log_front) * beta_cf(b, a, 1.0 - x) / b;
}

/* P(F > x) for F(d1, d2), computed as a lower tail of the mirrored beta. */
static double f_upper(double x, double d1, double d2)
{
    return irr_beta_inc(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * x));
}

static double f_lower(double x, double d1, double d2)
{
    return irr_beta_inc(d1 / 2.0, d2 / 2.0, d1 * x / (d1 * x + d2));
}

double irr_f_quantile(double p, double d1, double d2)
{
    if (!(p > 0) || !(p < 1) || !(d1 > 0) || !(d2 > 0))
        return NAN;
    /* Bisection on log x; compare in the tail that is small, for accuracy. */
    double lo = -700.0, hi = 700.0;
    int upper = p > 0.5;
    for (int i = 0; i < 200 && hi - lo > 1e-14; i++) {
        double mid = 0.5 * (lo + hi);
        double x = exp(mid);
        int below = upper ? f_upper(x, d1, d2) > 1.0 - p : f_lower(x, d1, d2) < p;
        if (below)
            lo = mid;
        else
            hi = mid;
    }
    return exp(0.5 * (lo + hi));
}

double irr_t_quantile(double p, double df)
{
    if (!(p > 0) || !(p < 1) || !(df > 0))
        return NAN;
    if (p == 0.5)
        return 0.0;
    double tail = p > 0.5 ? 2.0 * p - 1.0 : 1.0 - 2.0 * p;
    double t = sqrt(irr_f_quantile(tail, 1.0, df));
    return p > 0.5 ? t : -t;
}

double irr_normal_quantile(double p)
{
    if (!(p > 0) || !(p < 1))
        return NAN;
    double lo = -40.0, hi = 40.0;
    for (int i = 0; i < 200 && hi - lo > 1e-15; i++) {
        double mid = 0.5 * (lo + hi);
        double below =
            p > 0.5 ? 0.5 * erfc(mid / M_SQRT2) > 1.0 - p : 0.5 * erfc(-mid / M_SQRT2) < p;
        if (below)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void irr_rng_seed(irr_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

void irr_rng_stream(irr_rng *rng, uint64_t seed, uint64_t b)
{
    /* Mix the seed first, so (seed, b) and (seed + 1, b - 1) stay apart. */
    uint64_t x = seed;
    uint64_t base = splitmix64(&x);
    irr_rng_seed(rng, base ^ (b * 0xd1b54a32d192ed03ULL));
}

uint64_t irr_rng_below(irr_rng *rng, uint64_t n)
{
    /* Lemire (2019), "Fast random integer generation in an interval": the
     * high half of r * n, rejecting the few low halves that would bias it.
     * No division on the common path. */
    unsigned __int128 m = (unsigned __int128)irr_rng_next(rng) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            m = (unsigned __int128)irr_rng_next(rng) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ---- binomial variates ---- */

/* A uniform double in [0, 1), 53 random bits. */
static double uniform01(irr_rng *rng)
{
    return (double)(irr_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* log(k!) - Stirling's approximation without the correction term: the
 * correction fc(k) of Hoermann (1993), tabulated below 10. */
static double stirling_correction(double k)
{
    static const double table[10] = {
        0.08106146679532726,  0.04134069595540929,  0.02767792568499834, 0.02079067210376509,
        0.01664469118982119,  0.01387612882307075,  0.01189670994589177, 0.01041126526197209,
        0.009255462182712733, 0.008330563433362871,
    };
    if (k < 10)
        return table[(int)k];
    double k1 = k + 1, k2 = k1 * k1;
    return (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / k2) / k2) / k1;
}

/* Inversion from 0 (Kachitvichyanukul & Schmeiser 1988, BINV), for small
 * means: the expected number of steps is about n p + 1. */
static uint64_t binomial_inversion(irr_rng *rng, uint64_t n, double p)
{
    double q = 1 - p, s = p / q, a = ((double)n + 1) * s;
    double r0 = pow(q, (double)n);
    for (;;) {
        double r = r0, u = uniform01(rng);
        uint64_t x = 0;
        while (u > r) {
            u -= r;
            x++;
            if (x > n)
                break; /* rounding left u above the total mass: draw again */
            r *= a / (double)x - s;
        }
        if (x <= n)
            return x;
    }
}

/* Hoermann (1993), "The generation of binomial random variates", BTRD:
 * transformed rejection with decomposition, for n p >= 10 and p <= 1/2. */
static uint64_t binomial_btrd(irr_rng *rng, uint64_t n, double p)
{
    double nd = (double)n, q = 1 - p, spq = sqrt(nd * p * q);
    double b = 1.15 + 2.53 * spq, a = -0.0873 + 0.0248 * b + 0.01 * p;
    double c = nd * p + 0.5, alpha = (2.83 + 5.1 / b) * spq;
    double vr = 0.92 - 4.2 / b, urvr = 0.86 * vr;
    double m = floor((nd + 1) * p), r = p / q, nr = (nd + 1) * r, npq = nd * p * q;
    for (;;) {
        double u, v = uniform01(rng);
        if (v <= urvr) {
            u = v / vr - 0.43;
            return (uint64_t)floor((2 * a / (0.5 - fabs(u)) + b) * u + c);
        }
        if (v >= vr) {
            u = uniform01(rng) - 0.5;
        } else {
            u = v / vr - 0.93;
            u = (u < 0 ? -0.5 : 0.5) - u;
            v = uniform01(rng) * vr;
        }
        double us = 0.5 - fabs(u);
        double kd = floor((2 * a / us + b) * u + c);
        if (kd < 0 || kd > nd)
            continue;
        v = v * alpha / (a / (us * us) + b);
        double km = fabs(kd - m);
        if (km <= 15) {
            /* f(k) / f(m) by the recurrence f(i) / f(i-1) = nr / i - r. */
            double f = 1;
            if (m < kd) {
                for (double i = m + 1; i <= kd; i++)
                    f *= nr / i - r;
            } else if (m > kd) {
                for (double i = kd + 1; i <= m; i++)
                    v *= nr / i - r;
            }
            if (v <= f)
                return (uint64_t)kd;
            continue;
        }
        /* Squeeze on log f(k) / f(m), then the exact test through Stirling. */
        v = log(v);
        double rho = (km / npq) * (((km / 3 + 0.625) * km + 1.0 / 6) / npq + 0.5);
        double t = -km * km / (2 * npq);
        if (v < t - rho)
            return (uint64_t)kd;
        if (v > t + rho)
            continue;
        double nm = nd - m + 1;
        double h = (m + 0.5) * log((m + 1) / (r * nm)) + stirling_correction(m) +
                   stirling_correction(nd - m);
        double nk = nd - kd + 1;
        if (v <= h + (nd + 1) * log(nm / nk) + (kd + 0.5) * log(nk * r / (kd + 1)) -
                     stirling_correction(kd) - stirling_correction(nd - kd))
            return (uint64_t)kd;
    }
}

uint64_t irr_rng_binomial(irr_rng *rng, uint64_t n, double p)
{
    if (n == 0 || !(p > 0))
        return 0;
    if (!(p < 1))
        return n;
    if (p > 0.5)
        return n - irr_rng_binomial(rng, n, 1 - p);
    if ((double)n * p < 10)
        return binomial_inversion(rng, n, p);
    return binomial_btrd(rng, n, p);
}

/* ---- bootstrap intervals ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sample quantile, linear interpolation between order statistics (R type 7). */
static double quantile_sorted(const double *v, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t i = (size_t)floor(h);
    if (i + 1 >= n)
        return v[n - 1];
    return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

void irr_bootstrap_finish(irr_metric *m, double *rep, size_t n, size_t n_tried, double conf_level)
{
    if (n < 2 || (double)n < 0.5 * (double)n_tried) {
        irr_no_ci(m, "bootstrap: the metric was defined in only %zu of %zu replicates", n, n_tried);
        return;
    }
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += rep[i];
    mean /= (double)n;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (rep[i] - mean) * (rep[i] - mean);
    qsort(rep, n, sizeof *rep, cmp_double);
    double tail = (1.0 - conf_level) / 2.0;
    double lo = quantile_sorted(rep, n, tail), hi = quantile_sorted(rep, n, 1.0 - tail);
    if (!(lo <= m->value && m->value <= hi)) {
        /* Possible only when the replicates are badly skewed (a handful of
         * units): an interval that misses its own estimate says nothing. */
        irr_no_ci(m,
                  "bootstrap: the percentile interval [%.4g, %.4g] misses the estimate "
                  "(too few units)",
                  lo, hi);
        return;
    }
    m->has_ci = 1;
    m->se = sqrt(ss / (double)(n - 1));
    m->ci_lo = lo;
    m->ci_hi = hi;
    m->ci_method = "bootstrap";
    m->ci_reason[0] = '\0';
}
