/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr.h - inter-rater reliability statistics: the contract.
 *
 * The input is the long table of ratings (unit, rater, score): one row per
 * rating, any pattern of missing data. A caller builds an irr_table, one
 * rating at a time (irr_table_add) or from arrays (irr_table_add_many), then
 * asks for every metric (irr_compute), one metric (irr_metric_compute) or
 * per-rater severity and agreement (irr_raters_compute). Nothing here does
 * I/O or keeps global state; the command `accord irr`, the server and the
 * benchmark call the same functions and get the same numbers.
 *
 * Definitions follow the original papers:
 *   percent_exact / percent_adjacent  share of agreeing rater pairs within a
 *       unit (adjacent: within one level), averaged over units with >= 2
 *       ratings; percent_unanimous: share of those units where all agree.
 *   cohen_kappa[_linear|_quadratic]   Cohen 1960 / 1968; exactly two raters,
 *       units rated by both; weights by position i on the level scale:
 *       linear 1 - |i-j|/(q-1), quadratic 1 - (i-j)^2/(q-1)^2. SE: Fleiss,
 *       Cohen & Everitt 1969 (non-null variance); CI: normal.
 *   fleiss_kappa   Fleiss 1971; every unit has the same number m >= 2 of
 *       ratings. SE: Gwet's (2008, 2014) linearised variance, which holds
 *       away from kappa = 0 (Fleiss, Nee & Landis 1979 give the variance under
 *       the null hypothesis only, which is wrong for an interval); CI: t(n-1).
 *   krippendorff_alpha_{nominal,ordinal,interval}   Krippendorff 2011,
 *       "Computing Krippendorff's Alpha-Reliability"; units with < 2 ratings
 *       are unpairable. The ordinal metric uses the coincidence marginals n_c.
 *       Computed in O(ratings) without a q x q matrix: the ordinal distance
 *       delta(c,k) equals (R_k - R_c)^2 with R_c = sum_{g<c} n_g + n_c/2, so
 *       ordinal alpha is interval alpha on the values R_c. CI: bootstrap.
 *   icc1_1, icc1_k  Shrout & Fleiss 1979 case 1 (one-way); every unit has the
 *       same number k of ratings. icc2_*, icc3_* (two-way random / mixed,
 *       consistency for 3): every rater rates every unit. CI: the F-based
 *       intervals of Shrout & Fleiss 1979 / McGraw & Wong 1996 (no SE).
 *   gwet_ac1, gwet_ac2_{linear,quadratic}, brennan_prediger   Gwet 2008 and
 *       Gwet 2014 (Handbook, ch. on multiple raters, missing ratings allowed);
 *       Brennan & Prediger 1981 with q = number of levels. SE: Gwet's
 *       linearised variance (sampling fraction 0); CI: t(n-1).
 * Intervals are each method's published formula, bounded only where that
 * method's reference implementation bounds it (server/API.md lists them):
 *   Cohen's kappas: Wald (normal) intervals, unbounded, as SAS PROC FREQ and
 *       statsmodels print them (a bound can pass -1 or 1).
 *   Fleiss, AC1, AC2, Brennan-Prediger: t(n-1) intervals with only the upper
 *       end clipped at 1, as Gwet's irrCAC does (the coefficients can lie
 *       below -1, e.g. AC2 on opposed raters, so the lower end is not clipped).
 *   ICCs: the F intervals, which lie in the coefficient's range by
 *       construction; at zero residual (or within-unit) variance the limits of
 *       those formulas, as R psych gives them (e.g. [1, 1]).
 *   Bootstrap: percentile intervals of the replicates.
 * A value always lies inside its interval; when a bootstrap percentile
 * interval would miss the estimate (tiny samples), no interval is given.
 * Bootstrap (alpha and the percent metrics): units with 2 or more ratings are
 * resampled with replacement. Every replicate is drawn once and feeds every
 * bootstrapped metric; units with the same ratings pattern share their
 * contribution, and a replicate draws how often each pattern is taken (a
 * multinomial, exactly, as a chain of binomials), so it costs O(patterns),
 * not O(units), on rubric data. For alpha the metric (ordinal ranks) is held
 * at its full-sample values.
 * Replicate b uses its own random stream derived from (seed, b), so the
 * intervals are identical for a given seed whatever irr_options.threads is.
 * SE = standard deviation of the replicates, CI = percentile interval.
 * Statistics do not depend on the unit of the scores: values are shifted and
 * scaled to [0, 1] before sums of squares (interval alpha, ICCs), so adding
 * 1e15 or multiplying by 1e-7 changes nothing beyond rounding, and huge
 * finite scores do not overflow. Any intermediate that still is not finite
 * makes the metric undefined with a reason; results never hold NaN or inf.
 *
 * "Undefined" is a result, not an error: a metric whose definition does not
 * apply (wrong design, no variation, ...) has defined == 0 and a reason such
 * as "no variation: all ratings are the same level". Never a made-up number.
 */
#ifndef ACCORD_IRR_H
#define ACCORD_IRR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    IRR_OK = 0,
    IRR_ERR_NOMEM,     /* allocation failed; the table is unchanged */
    IRR_ERR_SCORE,     /* score not finite, or not on the declared levels */
    IRR_ERR_LEVELS,    /* levels not finite, not strictly increasing, or empty */
    IRR_ERR_STATE,     /* levels declared after ratings were added */
    IRR_ERR_DUPLICATE, /* the same (unit, rater) pair twice: see irr_table_duplicate */
    IRR_ERR_TOO_MANY,  /* more than UINT32_MAX - 1 ratings, units or raters */
    IRR_ERR_ARG,       /* bad argument (NULL, unknown metric, reference not a rater) */
    IRR_ERR_INPUT      /* irr_load_csv: malformed CSV, header or score (see irr_load_error) */
} irr_status;

/* A static English description of a status. */
const char *irr_status_str(irr_status status);

/* ---- the table of ratings ---------------------------------------------- */

typedef struct irr_table irr_table;

/* A new empty table, or NULL when out of memory. Free with irr_table_free. */
irr_table *irr_table_new(void);
void irr_table_free(irr_table *table);

/*
 * Declares the full ordered scale (e.g. 1,2,3,4), before any rating is added:
 * weighted kappas and AC2 weight by position on it, Brennan-Prediger uses its
 * length, and scores off the scale are refused (IRR_ERR_SCORE). Without it the
 * scale is the distinct observed scores, sorted. levels[] is copied.
 */
irr_status irr_table_set_levels(irr_table *table, const double *levels, size_t n_levels);

/*
 * Adds one rating. unit and rater are byte strings of the given lengths (they
 * need not be NUL-terminated and may contain any bytes); they are copied.
 * Ratings are numbered 0, 1, 2, ... in the order added (the "index" used by
 * irr_table_duplicate). A duplicate (unit, rater) pair is detected when the
 * table is next computed on, not here, so adding stays O(1).
 */
irr_status irr_table_addn(irr_table *table, const char *unit, size_t unit_len, const char *rater,
                          size_t rater_len, double score);
/* The same for NUL-terminated strings. */
irr_status irr_table_add(irr_table *table, const char *unit, const char *rater, double score);
/* n ratings from parallel arrays of NUL-terminated strings and scores. */
irr_status irr_table_add_many(irr_table *table, const char *const *units, const char *const *raters,
                              const double *scores, size_t n);

/* Makes room for n_ratings more ratings (a hint: adding works without it). */
irr_status irr_table_reserve(irr_table *table, size_t n_ratings);

/* Counts so far. */
size_t irr_table_n_ratings(const irr_table *table);
size_t irr_table_n_units(const irr_table *table);
size_t irr_table_n_raters(const irr_table *table);

/* 1 when a rater of that (NUL-terminated) name has a rating in the table. */
int irr_table_has_rater(const irr_table *table, const char *name);

/*
 * Checks the table and builds its per-unit layout (done implicitly by every
 * compute function; cheap to call again, redone only after new ratings).
 * IRR_ERR_DUPLICATE: then irr_table_duplicate tells which ratings collide.
 */
irr_status irr_table_prepare(irr_table *table);

/*
 * After IRR_ERR_DUPLICATE: the index of the earliest-added rating that
 * repeats an earlier (unit, rater) pair, and the index of that earlier one.
 * Returns 0 when there is no known duplicate.
 */
int irr_table_duplicate(const irr_table *table, size_t *index, size_t *first_index);

/* The scale in use after a successful prepare (declared or observed):
 * *n_levels values, owned by the table, valid until it changes. */
const double *irr_table_levels(const irr_table *table, size_t *n_levels);

/* ---- loading the long CSV ------------------------------------------------ */

typedef struct {
    size_t line;       /* 1-based line the problem is on; 0 when not about a line */
    char message[240]; /* what is wrong, for a person ("duplicate rating ...") */
} irr_load_error;

/*
 * Adds the ratings of a CSV document (RFC 4180) with the header
 * `unit,rater,score` to table (declare levels first if wanted), then
 * prepares it. buf[0..len) is modified in place (quoted fields are unescaped)
 * and may be freed afterwards. Blank lines are skipped. IRR_ERR_INPUT for a
 * bad header, a record without exactly three fields, malformed quoting or a
 * score that is not a finite number; IRR_ERR_SCORE for a score off the
 * declared levels; IRR_ERR_DUPLICATE for a repeated (unit, rater) pair. On
 * any error err says which line and why, and the table may hold the ratings
 * before it (free it). err may be NULL.
 */
irr_status irr_load_csv(irr_table *table, char *buf, size_t len, irr_load_error *err);

/* ---- results ------------------------------------------------------------ */

typedef enum {
    IRR_PERCENT_EXACT,
    IRR_PERCENT_ADJACENT,
    IRR_PERCENT_UNANIMOUS,
    IRR_COHEN_KAPPA,
    IRR_COHEN_KAPPA_LINEAR,
    IRR_COHEN_KAPPA_QUADRATIC,
    IRR_FLEISS_KAPPA,
    IRR_ALPHA_NOMINAL,
    IRR_ALPHA_ORDINAL,
    IRR_ALPHA_INTERVAL,
    IRR_ICC1_1,
    IRR_ICC1_K,
    IRR_ICC2_1,
    IRR_ICC2_K,
    IRR_ICC3_1,
    IRR_ICC3_K,
    IRR_GWET_AC1,
    IRR_GWET_AC2_LINEAR,
    IRR_GWET_AC2_QUADRATIC,
    IRR_BRENNAN_PREDIGER,
    IRR_METRIC_COUNT
} irr_metric_id;

/* The output name of a metric ("krippendorff_alpha_ordinal"), or NULL. */
const char *irr_metric_name(irr_metric_id id);
/* The metric with that output name; returns 0 when there is none. */
int irr_metric_lookup(const char *name, irr_metric_id *id);

typedef struct {
    int defined;      /* 1: value holds the statistic; 0: see reason */
    double value;     /* NAN when undefined */
    char reason[112]; /* why undefined (empty when defined) */
    /* Filled only when asked for (irr_options.ci) and defined: */
    int has_ci;            /* 1: ci_lo, ci_hi hold the interval */
    double se;             /* standard error; NAN when the method gives none (ICC) */
    double ci_lo, ci_hi;   /* confidence interval at irr_options.conf_level */
    const char *ci_method; /* "analytic", "F" or "bootstrap" (static), or NULL */
    char ci_reason[112];   /* why there is no interval, when has_ci == 0 */
} irr_metric;

/* Bootstrap replicates allowed (irr_options.bootstrap): fewer than 200 give
 * percentile bounds that move with the seed by more than their own width's
 * worth of meaning (Efron & Tibshirani 1993, ch. 13 and 19, ask 1000 for
 * percentile intervals, 200 at the least for an SE); more than a million buy
 * no precision and cost memory (8 bytes per replicate and metric). */
#define IRR_BOOTSTRAP_MIN 200u
#define IRR_BOOTSTRAP_MAX 1000000u
/* The most bootstrap work (irr_bootstrap_work, in single draws) a caller
 * should ask for: about a minute on one core. `accord irr` refuses more. */
#define IRR_BOOTSTRAP_WORK_MAX 20000000000.0

typedef struct {
    int ci;                /* 1: standard errors and confidence intervals */
    double conf_level;     /* default 0.95 */
    unsigned bootstrap;    /* replicates, IRR_BOOTSTRAP_MIN..MAX, default 1000 */
    unsigned threads;      /* bootstrap threads, default 1; results do not depend on it */
    uint64_t seed;         /* bootstrap seed: same seed, same intervals */
    int by_rater;          /* irr_compute: fill irr_result.raters */
    const char *reference; /* NUL-terminated rater name, or NULL: severity and
                              agreement against this rater instead of the others */
} irr_options;

/* Defaults: no CI, 95%, 1000 replicates, 1 thread, seed 1, no per-rater rows.
 * Computing with ci set and bootstrap or conf_level out of range is IRR_ERR_ARG. */
void irr_options_init(irr_options *options);

/*
 * Per-rater severity and agreement. Against the others (no reference): over
 * each unit this rater rated that has other ratings, the score minus the mean
 * of the other raters' scores (severity), and the share of (this rating,
 * other rating) pairs that agree exactly / within one level. Against a
 * reference rater R: over units rated by both, score minus R's score, and the
 * share of those units with exact / within-one-level agreement. The
 * reference's own row has n_compared == 0.
 */
typedef struct {
    const char *rater; /* name, NUL-terminated, owned by the table */
    size_t rater_len;  /* its length in bytes (names may contain NUL) */
    size_t n_ratings;  /* ratings by this rater */
    double mean;       /* mean score */
    size_t n_compared; /* units that entered severity and agreement */
    double severity;   /* mean signed difference; NAN when n_compared == 0 */
    double exact;      /* share 0..1; NAN when n_compared == 0 */
    double adjacent;   /* share 0..1 within one level; NAN when n_compared == 0 */
} irr_rater_stats;

typedef struct {
    size_t n_units, n_raters, n_ratings;
    size_t n_levels;
    double *levels;                       /* owned: copy of the scale */
    irr_metric metrics[IRR_METRIC_COUNT]; /* indexed by irr_metric_id */
    size_t n_rater_stats;                 /* n_raters when by_rater, else 0 */
    irr_rater_stats *raters;              /* owned, in order of first appearance */
} irr_result;

/*
 * Every metric (and per-rater rows when options->by_rater). options may be
 * NULL for the defaults. On IRR_OK the caller owns *result and releases it
 * with irr_result_release; rater names in it point into the table, so the
 * table must outlive the result's use. On error *result is zeroed and owns
 * nothing. An empty table is not an error: every metric is undefined.
 */
irr_status irr_compute(irr_table *table, const irr_options *options, irr_result *result);
void irr_result_release(irr_result *result);

/* One metric, with its CI when options->ci. The cheap path for the server
 * ("quadratic kappa / ordinal alpha with a 95% CI over peer/expert pairs"). */
irr_status irr_metric_compute(irr_table *table, irr_metric_id id, const irr_options *options,
                              irr_metric *metric);

/*
 * Per-rater rows (see irr_rater_stats), against reference when it is not NULL
 * (IRR_ERR_ARG when no such rater). *stats is malloc'd, *n_stats rows, in
 * order of first appearance; the caller frees it with free(). Names point
 * into the table.
 */
irr_status irr_raters_compute(irr_table *table, const char *reference, irr_rater_stats **stats,
                              size_t *n_stats);

/*
 * The bootstrap's work for a table, in single draws: replicates x (resampled
 * units, or 32 per ratings pattern when patterns are few enough to be drawn
 * as binomials); 0 without ci or with fewer than 2 units rated twice.
 * Prepares the table (IRR_ERR_DUPLICATE... as irr_table_prepare; *work is 0
 * then). Lets a caller warn or refuse before a run that would take hours.
 */
irr_status irr_bootstrap_work(irr_table *table, const irr_options *options, double *work);

#endif
