/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_impl.h - what the irr_*.c files share behind irr.h: the table's layout
 * and the internal entry points of each family of metrics. Not for callers.
 *
 * After irr_table_prepare the ratings are laid out by unit (CSR): unit u owns
 * entries u_start[u] .. u_start[u+1]-1, each with a rater id and a level index
 * (position on the sorted scale). Every unit also has its distinct levels
 * with counts (ul_*), sorted by level, which is all that most metrics need.
 */
#ifndef ACCORD_IRR_IMPL_H
#define ACCORD_IRR_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "irr.h"

/* Interned byte strings: id <-> name, ids dense from 0 in order of arrival. */
typedef struct {
    char *bytes; /* names, each followed by a NUL */
    size_t bytes_len, bytes_cap;
    size_t *offset; /* per id: start in bytes */
    uint32_t *len;  /* per id: length */
    uint64_t *hash; /* per id: hash, for rehashing and quick compares */
    uint32_t count, cap;
    uint32_t *slots; /* open addressing: id + 1, 0 = empty */
    size_t n_slots;  /* power of two */
    uint32_t last;   /* id of the last lookup: long-format files repeat units */
} irr_intern;

struct irr_table {
    irr_intern units, raters;

    /* Distinct scores seen (or declared), in order of arrival. */
    double *values;
    uint32_t n_values, values_cap;
    uint32_t *value_slots; /* open addressing over score bits: id + 1 */
    size_t n_value_slots;
    int levels_declared;

    /* Ratings in the order added. */
    uint32_t *r_unit, *r_rater, *r_value;
    size_t n_ratings, ratings_cap;

    /* Prepared layout (valid while prepared != 0). */
    int prepared;
    double *levels; /* the scale, sorted */
    size_t n_levels;
    uint32_t *value_level; /* value id -> level index */
    uint32_t *u_start;     /* n_units + 1 */
    uint32_t *e_rater, *e_level;
    uint32_t *ul_start; /* n_units + 1, into ul_level / ul_count */
    uint32_t *ul_level, *ul_count;
    size_t n_ul;
    uint32_t *rater_count; /* ratings per rater */
    uint32_t max_per_unit; /* largest unit size */
    int has_duplicate;
    size_t dup_index, dup_first;
};

/* Name of an interned id (NUL-terminated) and its length. */
const char *irr_intern_name(const irr_intern *in, uint32_t id, size_t *len);
/* Id of a name, or UINT32_MAX when absent. */
uint32_t irr_intern_find(const irr_intern *in, const char *name, size_t len);

/* Sets m to undefined with a printf-style reason. */
void irr_undefined(irr_metric *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets m to the defined value v (clears CI fields). */
void irr_defined(irr_metric *m, double v);
/* Records that no interval could be given, with a reason. */
void irr_no_ci(irr_metric *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* How an analytic interval is bounded: as its method's reference does. */
typedef enum {
    IRR_CI_UNBOUNDED, /* Wald intervals of Cohen's kappas (SAS, statsmodels) */
    IRR_CI_UPPER_1    /* Gwet's irrCAC: the upper end clipped at 1 only */
} irr_ci_bound;
/* Sets an interval value -/+ crit * se on a defined m, bounded as told. */
void irr_set_ci(irr_metric *m, double se, double crit, irr_ci_bound bound);

/*
 * The scale mapped affinely onto [0, 1]: x[c] = (levels[c] - lo) / (hi - lo)
 * where lo and hi are the smallest and largest level with used[c] != 0
 * (used NULL: every level). Statistics invariant under affine maps (interval
 * alpha, ICCs) compute on x so they do not depend on the unit of the scores
 * and cannot overflow. All x are 0 when fewer than 2 levels are used.
 */
void irr_unit_scale(const irr_table *t, const double *used, double *x);

/* Per-unit contributions to the bootstrapped metrics (units with m >= 2). */
/* Shares of agreeing pairs: out[0] exact, out[1] adjacent, out[2] unanimous. */
void irr_percent_unit(const irr_table *t, size_t u, double out[3]);

typedef enum { IRR_A_NOMINAL, IRR_A_ORDINAL, IRR_A_INTERVAL, IRR_A_KINDS } irr_alpha_kind;
/* The value each level stands for under an alpha metric, from the pairable
 * marginals n_c: ordinal mid-ranks, interval the [0, 1] scale; centred on
 * their pairable mean. Unused for nominal. */
void irr_alpha_values(const irr_table *t, const double *marginal, double n, irr_alpha_kind kind,
                      double *v);
/* A unit's observed disagreement sum d_o (sum over ordered pairs of delta,
 * over m - 1) and, for interval kinds, the sum and sum of squares of its
 * (centred) values v. */
void irr_alpha_unit(const irr_table *t, size_t u, irr_alpha_kind kind, const double *v, double *d_o,
                    double *s1, double *s2);
/* 1 - (n - 1) d_o / expected, or NAN when the expected disagreement is not
 * clearly positive (relative to sum_sq, the scale of the values). */
double irr_alpha_ratio(double n, double d_o, double expected, double scale);

/* The bootstrap of every wanted percent and alpha metric whose value is
 * already in out[] (irr_boot.c). */
irr_status irr_bootstrap_metrics(const irr_table *t, const irr_options *o, const int *want,
                                 irr_metric *out);

/* The metric families. Each fills the metrics of its family (indexed by
 * irr_metric_id) in out[]; want[id] says which to compute. The table is
 * prepared. Return IRR_OK or IRR_ERR_NOMEM. */
irr_status irr_percent_metrics(const irr_table *t, const irr_options *o, const int *want,
                               irr_metric *out);
irr_status irr_cohen_metrics(const irr_table *t, const irr_options *o, const int *want,
                             irr_metric *out);
irr_status irr_chance_metrics(const irr_table *t, const irr_options *o, const int *want,
                              irr_metric *out);
irr_status irr_alpha_metrics(const irr_table *t, const irr_options *o, const int *want,
                             irr_metric *out);
irr_status irr_icc_metrics(const irr_table *t, const irr_options *o, const int *want,
                           irr_metric *out);

/* ---- distributions (irr_dist.c) ---- */

/* Regularised incomplete beta I_x(a, b). */
double irr_beta_inc(double a, double b, double x);
/* Upper quantile: the x with P(F(d1, d2) <= x) = p. */
double irr_f_quantile(double p, double d1, double d2);
/* Quantile of Student's t with df degrees of freedom (df may be fractional). */
double irr_t_quantile(double p, double df);
/* Quantile of the standard normal. */
double irr_normal_quantile(double p);

/* ---- bootstrap (irr_dist.c) ---- */

/* xoshiro256** seeded by splitmix64: small, fast, reproducible. */
typedef struct {
    uint64_t s[4];
} irr_rng;
void irr_rng_seed(irr_rng *rng, uint64_t seed);
/* The next 64 uniform random bits (inline: the bootstrap draws ~10^8). */
static inline uint64_t irr_rng_next(irr_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t irr_rng_below(irr_rng *rng, uint64_t n);

/* A Binomial(n, p) variate: inversion for n p < 10, else Hoermann's BTRD
 * (exact rejection; O(1) expected time for any n). */
uint64_t irr_rng_binomial(irr_rng *rng, uint64_t n, double p);

/* The random stream of bootstrap replicate b under a seed. */
void irr_rng_stream(irr_rng *rng, uint64_t seed, uint64_t b);

/*
 * Turns replicates[0..n) (undefined ones already dropped) into an SE and a
 * percentile interval on m. Sorts replicates in place. n_tried is how many
 * were drawn, for the reason when too few were defined.
 */
void irr_bootstrap_finish(irr_metric *m, double *replicates, size_t n, size_t n_tried,
                          double conf_level);

#endif
