/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_boot.c - the unit bootstrap behind the intervals of Krippendorff's
 * alpha (nominal, ordinal, interval) and the percent metrics.
 *
 * One resample feeds every bootstrapped metric: replicate b draws its units
 * once, and each wanted metric is evaluated on that draw. Units are grouped
 * by their ratings pattern (the multiset of levels in the unit): two units
 * with the same pattern contribute the same to every sum, so a replicate
 * only counts how often each pattern was drawn (one increment per draw) and
 * then sums over patterns. On rubric data (few levels, a handful of raters)
 * there are a few hundred patterns for any number of units. Then a replicate
 * does not draw its units one by one: how often each pattern is drawn is
 * multinomial (units, pattern shares), drawn exactly as a chain of binomials
 * (each pattern's count given what the patterns before it took), with
 * Hoermann's BTRD sampler: O(patterns) per replicate, whatever the number of
 * units. With many patterns (continuous scores) units are drawn one by one.
 *
 * Replicate b uses the random stream (seed, b) and writes only its own slot,
 * so the replicates, and the intervals, are the same for any thread count.
 * Replicates are split into contiguous blocks over irr_options.threads
 * POSIX threads; this file does no I/O and keeps no global state.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "irr_impl.h"

enum { B_EXACT, B_ADJACENT, B_UNANIMOUS, B_NOMINAL, B_ORDINAL, B_INTERVAL, B_KINDS };

static const irr_metric_id boot_ids[B_KINDS] = {
    IRR_PERCENT_EXACT, IRR_PERCENT_ADJACENT, IRR_PERCENT_UNANIMOUS,
    IRR_ALPHA_NOMINAL, IRR_ALPHA_ORDINAL,    IRR_ALPHA_INTERVAL,
};

#define MAX_THREADS 64

typedef struct {
    const irr_table *t;
    size_t n_units;      /* pairable units (m >= 2), the population resampled */
    uint32_t *pattern;   /* per pairable unit: its pattern */
    size_t n_patterns;   /* distinct patterns */
    uint32_t *chain;     /* patterns by decreasing count, or NULL (draw units) */
    double *chain_p;     /* chain[j]'s share of the units of chain[j..] */
    uint32_t *rep_unit;  /* per pattern: a table unit that has it */
    double *m;           /* per pattern: ratings in the unit */
    double *c[B_KINDS];  /* per pattern: share (percent) or d_o (alpha) */
    double *s1[B_KINDS]; /* per pattern, ordinal/interval: sum of centred values */
    double *s2[B_KINDS]; /* ... and of their squares */
    int active[B_KINDS]; /* metric wanted, defined, and bootstrapped */
    unsigned n_rep;
    uint64_t seed;
    double *rep[B_KINDS]; /* replicates, [b]; NAN where undefined */
} boot;

typedef struct {
    const boot *bt;
    unsigned first, last; /* replicates [first, last) */
    int failed;
} boot_job;

static uint64_t pattern_hash(const irr_table *t, size_t u)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++) {
        h ^= ((uint64_t)t->ul_level[i] << 32) | t->ul_count[i];
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    return h;
}

static int pattern_equal(const irr_table *t, size_t a, size_t b)
{
    uint32_t na = t->ul_start[a + 1] - t->ul_start[a], nb = t->ul_start[b + 1] - t->ul_start[b];
    return na == nb &&
           memcmp(t->ul_level + t->ul_start[a], t->ul_level + t->ul_start[b],
                  na * sizeof *t->ul_level) == 0 &&
           memcmp(t->ul_count + t->ul_start[a], t->ul_count + t->ul_start[b],
                  na * sizeof *t->ul_count) == 0;
}

/* Groups the pairable units by pattern: O(ratings). */
static irr_status group_patterns(boot *bt)
{
    const irr_table *t = bt->t;
    size_t n_slots = 16;
    while (n_slots < 2 * bt->n_units)
        n_slots *= 2;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    bt->pattern = malloc(bt->n_units * sizeof *bt->pattern);
    bt->rep_unit = malloc(bt->n_units * sizeof *bt->rep_unit);
    if (!slots || !bt->pattern || !bt->rep_unit) {
        free(slots);
        return IRR_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t u = 0; u < t->units.count; u++) {
        if (t->u_start[u + 1] - t->u_start[u] < 2)
            continue;
        size_t i = pattern_hash(t, u) & (n_slots - 1);
        for (; slots[i]; i = (i + 1) & (n_slots - 1))
            if (pattern_equal(t, bt->rep_unit[slots[i] - 1], u))
                break;
        if (!slots[i]) {
            bt->rep_unit[bt->n_patterns] = (uint32_t)u;
            slots[i] = (uint32_t)++bt->n_patterns;
        }
        bt->pattern[k++] = slots[i] - 1;
    }
    free(slots);
    return IRR_OK;
}

typedef struct {
    uint32_t count, pattern;
} pattern_count;

/* Decreasing count, then pattern id: a total order, so the chain (and the
 * replicates) are the same with any qsort. */
static int cmp_count(const void *a, const void *b)
{
    const pattern_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return (x->pattern > y->pattern) - (x->pattern < y->pattern);
}

/* The multinomial as a chain of binomials: pattern chain[j] takes
 * Binomial(left, chain_p[j]) of the draws the patterns before it left.
 * Largest first, so the draws left run out after few binomials. */
static irr_status build_chain(boot *bt)
{
    size_t np = bt->n_patterns;
    pattern_count *pc = calloc(np, sizeof *pc);
    bt->chain = malloc(np * sizeof *bt->chain);
    bt->chain_p = malloc(np * sizeof *bt->chain_p);
    if (!pc || !bt->chain || !bt->chain_p) {
        free(pc);
        return IRR_ERR_NOMEM;
    }
    for (size_t p = 0; p < np; p++)
        pc[p].pattern = (uint32_t)p;
    for (size_t k = 0; k < bt->n_units; k++)
        pc[bt->pattern[k]].count++;
    qsort(pc, np, sizeof *pc, cmp_count);
    double left = (double)bt->n_units;
    for (size_t j = 0; j < np; j++) {
        bt->chain[j] = pc[j].pattern;
        bt->chain_p[j] = j + 1 == np ? 1.0 : pc[j].count / left;
        left -= pc[j].count;
    }
    free(pc);
    return IRR_OK;
}

/* Per-pattern contributions of every active metric. */
static irr_status pattern_contributions(boot *bt)
{
    const irr_table *t = bt->t;
    size_t np = bt->n_patterns, q = t->n_levels;
    double *marginal = calloc(q ? q : 1, sizeof *marginal);
    double *v = malloc((q ? q : 1) * sizeof *v);
    bt->m = malloc(np * sizeof *bt->m);
    irr_status st = IRR_ERR_NOMEM;
    if (!marginal || !v || !bt->m)
        goto cleanup;
    for (int k = 0; k < B_KINDS; k++) {
        if (!bt->active[k])
            continue;
        bt->c[k] = malloc(np * sizeof(double));
        if (!bt->c[k])
            goto cleanup;
        if (k == B_ORDINAL || k == B_INTERVAL) {
            bt->s1[k] = malloc(np * sizeof(double));
            bt->s2[k] = malloc(np * sizeof(double));
            if (!bt->s1[k] || !bt->s2[k])
                goto cleanup;
        }
    }
    /* Full-sample pairable marginals: the alpha metric is held at them. */
    double n = 0;
    for (size_t u = 0; u < t->units.count; u++) {
        if (t->u_start[u + 1] - t->u_start[u] < 2)
            continue;
        n += t->u_start[u + 1] - t->u_start[u];
        for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++)
            marginal[t->ul_level[i]] += t->ul_count[i];
    }
    for (size_t p = 0; p < np; p++) {
        size_t u = bt->rep_unit[p];
        bt->m[p] = t->u_start[u + 1] - t->u_start[u];
        double share[3];
        irr_percent_unit(t, u, share);
        for (int k = B_EXACT; k <= B_UNANIMOUS; k++)
            if (bt->active[k])
                bt->c[k][p] = share[k - B_EXACT];
    }
    for (int k = B_NOMINAL; k <= B_INTERVAL; k++) {
        if (!bt->active[k])
            continue;
        irr_alpha_kind kind = (irr_alpha_kind)(k - B_NOMINAL);
        if (kind != IRR_A_NOMINAL)
            irr_alpha_values(t, marginal, n, kind, v);
        for (size_t p = 0; p < np; p++) {
            double s1, s2;
            irr_alpha_unit(t, bt->rep_unit[p], kind, v, &bt->c[k][p], &s1, &s2);
            if (bt->s1[k]) {
                bt->s1[k][p] = s1;
                bt->s2[k][p] = s2;
            }
        }
    }
    st = IRR_OK;
cleanup:
    free(marginal);
    free(v);
    return st;
}

/* Replicates [first, last): draw, count patterns, evaluate every active metric. */
static void *boot_run(void *arg)
{
    boot_job *job = arg;
    const boot *bt = job->bt;
    const irr_table *t = bt->t;
    size_t np = bt->n_patterns, q = t->n_levels;
    uint32_t *drawn = malloc(np * sizeof *drawn);
    double *counts = malloc((q ? q : 1) * sizeof *counts);
    if (!drawn || !counts) {
        job->failed = 1;
        goto done;
    }
    for (unsigned b = job->first; b < job->last; b++) {
        irr_rng rng;
        irr_rng_stream(&rng, bt->seed, b);
        memset(drawn, 0, np * sizeof *drawn);
        size_t n_units = bt->n_units;
        if (bt->chain) {
            uint64_t left = n_units;
            for (size_t j = 0; j < np && left > 0; j++) {
                uint64_t k = irr_rng_binomial(&rng, left, bt->chain_p[j]);
                drawn[bt->chain[j]] = (uint32_t)k;
                left -= k;
            }
        } else {
            const uint32_t *pattern = bt->pattern;
            for (size_t i = 0; i < n_units; i++)
                drawn[pattern[irr_rng_below(&rng, n_units)]]++;
        }
        double n = 0, sum[B_KINDS] = {0}, s1[B_KINDS] = {0}, s2[B_KINDS] = {0};
        if (bt->active[B_NOMINAL])
            memset(counts, 0, q * sizeof *counts);
        for (size_t p = 0; p < np; p++) {
            double w = drawn[p];
            if (w == 0)
                continue;
            n += w * bt->m[p];
            for (int k = 0; k < B_KINDS; k++) {
                if (!bt->active[k])
                    continue;
                sum[k] += w * bt->c[k][p];
                if (bt->s1[k]) {
                    s1[k] += w * bt->s1[k][p];
                    s2[k] += w * bt->s2[k][p];
                }
            }
            if (bt->active[B_NOMINAL]) {
                uint32_t u = bt->rep_unit[p];
                for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++)
                    counts[t->ul_level[i]] += w * t->ul_count[i];
            }
        }
        for (int k = B_EXACT; k <= B_UNANIMOUS; k++)
            if (bt->active[k])
                bt->rep[k][b] = sum[k] / (double)bt->n_units;
        if (bt->active[B_NOMINAL]) {
            double sq = 0;
            for (size_t c = 0; c < q; c++)
                sq += counts[c] * counts[c];
            bt->rep[B_NOMINAL][b] = irr_alpha_ratio(n, sum[B_NOMINAL], n * n - sq, n * n);
        }
        for (int k = B_ORDINAL; k <= B_INTERVAL; k++)
            if (bt->active[k])
                bt->rep[k][b] =
                    irr_alpha_ratio(n, sum[k], 2 * (n * s2[k] - s1[k] * s1[k]), 2 * n * s2[k]);
    }
done:
    free(drawn);
    free(counts);
    return NULL;
}

/* A binomial (with its share of the per-pattern sums) costs about as much
 * as 20 to 30 single draws. */
#define BINOMIAL_COST 32

static int use_chain(size_t n_patterns, size_t n_units)
{
    return n_patterns * BINOMIAL_COST <= n_units;
}

static irr_status run_replicates(boot *bt, unsigned threads)
{
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > bt->n_rep)
        threads = bt->n_rep;
    boot_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (unsigned i = 0; i < threads; i++) {
        jobs[i].bt = bt;
        jobs[i].first = (unsigned)((uint64_t)bt->n_rep * i / threads);
        jobs[i].last = (unsigned)((uint64_t)bt->n_rep * (i + 1) / threads);
        jobs[i].failed = 0;
    }
    /* The calling thread takes block 0; a thread that cannot start has its
     * block run here too, so the result never depends on thread creation. */
    for (unsigned i = 1; i < threads; i++)
        started[i] = pthread_create(&tid[i], NULL, boot_run, &jobs[i]) == 0;
    boot_run(&jobs[0]);
    int failed = jobs[0].failed;
    for (unsigned i = 1; i < threads; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            boot_run(&jobs[i]);
        failed |= jobs[i].failed;
    }
    return failed ? IRR_ERR_NOMEM : IRR_OK;
}

static void boot_release(boot *bt)
{
    free(bt->pattern);
    free(bt->chain);
    free(bt->chain_p);
    free(bt->rep_unit);
    free(bt->m);
    for (int k = 0; k < B_KINDS; k++) {
        free(bt->c[k]);
        free(bt->s1[k]);
        free(bt->s2[k]);
        free(bt->rep[k]);
    }
}

irr_status irr_bootstrap_metrics(const irr_table *t, const irr_options *o, const int *want,
                                 irr_metric *out)
{
    boot bt;
    memset(&bt, 0, sizeof bt);
    bt.t = t;
    bt.n_rep = o->bootstrap;
    bt.seed = o->seed;
    for (size_t u = 0; u < t->units.count; u++)
        bt.n_units += t->u_start[u + 1] - t->u_start[u] >= 2;
    int any = 0;
    for (int k = 0; k < B_KINDS; k++) {
        irr_metric *m = &out[boot_ids[k]];
        if (!want[boot_ids[k]] || !m->defined)
            continue;
        if (bt.n_units < 2) {
            /* One unit resampled is that unit every time: no spread to show. */
            irr_no_ci(m, "bootstrap needs at least 2 units with 2 or more ratings");
            continue;
        }
        bt.active[k] = 1;
        any = 1;
    }
    if (!any)
        return IRR_OK;
    irr_status st = IRR_ERR_NOMEM;
    for (int k = 0; k < B_KINDS; k++) {
        if (bt.active[k] && !(bt.rep[k] = malloc(bt.n_rep * sizeof(double))))
            goto cleanup;
    }
    if ((st = group_patterns(&bt)) != IRR_OK || (st = pattern_contributions(&bt)) != IRR_OK)
        goto cleanup;
    if (use_chain(bt.n_patterns, bt.n_units) && (st = build_chain(&bt)) != IRR_OK)
        goto cleanup;
    if ((st = run_replicates(&bt, o->threads)) != IRR_OK)
        goto cleanup;
    for (int k = 0; k < B_KINDS; k++) {
        if (!bt.active[k])
            continue;
        size_t n = 0;
        for (unsigned b = 0; b < bt.n_rep; b++)
            if (!isnan(bt.rep[k][b]))
                bt.rep[k][n++] = bt.rep[k][b];
        irr_bootstrap_finish(&out[boot_ids[k]], bt.rep[k], n, bt.n_rep, o->conf_level);
    }
    st = IRR_OK;
cleanup:
    boot_release(&bt);
    return st;
}

irr_status irr_bootstrap_work(irr_table *t, const irr_options *options, double *work)
{
    if (!t || !work)
        return IRR_ERR_ARG;
    *work = 0;
    irr_status st = irr_table_prepare(t);
    if (st != IRR_OK || !options || !options->ci)
        return st;
    boot bt;
    memset(&bt, 0, sizeof bt);
    bt.t = t;
    for (size_t u = 0; u < t->units.count; u++)
        bt.n_units += t->u_start[u + 1] - t->u_start[u] >= 2;
    if (bt.n_units < 2)
        return IRR_OK;
    st = group_patterns(&bt);
    if (st == IRR_OK) {
        double per = use_chain(bt.n_patterns, bt.n_units) ? (double)bt.n_patterns * BINOMIAL_COST
                                                          : (double)bt.n_units;
        *work = (double)options->bootstrap * per;
    }
    boot_release(&bt);
    return st;
}
