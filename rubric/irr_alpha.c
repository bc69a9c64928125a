/*
 * irr_alpha.c - Krippendorff's alpha, nominal, ordinal and interval
 * (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"), with a
 * unit-level bootstrap.
 *
 * alpha = 1 - D_o / D_e over the pairable values (units with >= 2 ratings).
 * In coincidence-matrix terms, with n pairable values:
 *   D_o = 1/n sum_u sum_{i != j in u} delta(v_i, v_j) / (m_u - 1)
 *   D_e = 1/(n (n-1)) sum_{c,k} n_c n_k delta(c, k)
 * Both sums are evaluated without the q x q matrix:
 *   nominal: sum over ordered pairs that differ = m^2 - sum_c n_c^2;
 *   interval: delta = (v_c - v_k)^2, so a sum over ordered pairs is
 *     2 m sum_i (v_i - mean)^2;
 *   ordinal: delta(c,k) = (sum_{g=c..k} n_g - (n_c + n_k)/2)^2, which equals
 *     (R_k - R_c)^2 with the mid-rank R_c = sum_{g<c} n_g + n_c/2 of the
 *     coincidence marginals, so ordinal alpha is interval alpha on R_c.
 * Everything is one pass over the per-unit level counts: O(ratings + levels).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "irr_impl.h"

typedef enum { A_NOMINAL, A_ORDINAL, A_INTERVAL } alpha_kind;

/* Per pairable unit: m, its disagreement sum, and (interval kinds) the sum
 * and sum of squares of its centred values - all the bootstrap needs. */
typedef struct {
    size_t n_units;
    uint32_t *unit; /* table unit id of each pairable unit */
    double *m, *d_o, *s1, *s2;
    double n;         /* pairable values */
    double *marginal; /* n_c over pairable values */
} alpha_data;

static void alpha_data_release(alpha_data *a)
{
    free(a->unit);
    free(a->m);
    free(a->d_o);
    free(a->s1);
    free(a->s2);
    free(a->marginal);
}

static irr_status alpha_data_init(const irr_table *t, alpha_data *a)
{
    size_t n_units = t->units.count, q = t->n_levels;
    memset(a, 0, sizeof *a);
    size_t cap = n_units ? n_units : 1;
    a->unit = malloc(cap * sizeof *a->unit);
    a->m = malloc(cap * sizeof *a->m);
    a->d_o = malloc(cap * sizeof *a->d_o);
    a->s1 = malloc(cap * sizeof *a->s1);
    a->s2 = malloc(cap * sizeof *a->s2);
    a->marginal = calloc(q ? q : 1, sizeof *a->marginal);
    if (!a->unit || !a->m || !a->d_o || !a->s1 || !a->s2 || !a->marginal) {
        alpha_data_release(a);
        return IRR_ERR_NOMEM;
    }
    for (size_t u = 0; u < n_units; u++) {
        uint32_t m = t->u_start[u + 1] - t->u_start[u];
        if (m < 2)
            continue;
        a->unit[a->n_units++] = (uint32_t)u;
        a->n += m;
        for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++)
            a->marginal[t->ul_level[i]] += t->ul_count[i];
    }
    return IRR_OK;
}

/* The value each level stands for under the metric (NULL for nominal). */
static void alpha_values(const irr_table *t, const alpha_data *a, alpha_kind kind, double *v)
{
    double below = 0;
    for (size_t c = 0; c < t->n_levels; c++) {
        if (kind == A_ORDINAL) {
            v[c] = below + a->marginal[c] / 2.0;
            below += a->marginal[c];
        } else {
            v[c] = t->levels[c];
        }
    }
}

/* Fills per-unit d_o (and s1, s2 for interval kinds); returns the expected
 * disagreement numerator sum_{c,k} n_c n_k delta(c,k) for the full sample. */
static double alpha_units(const irr_table *t, alpha_data *a, alpha_kind kind, const double *v)
{
    double expected = 0;
    if (kind == A_NOMINAL) {
        double sq = 0;
        for (size_t c = 0; c < t->n_levels; c++)
            sq += a->marginal[c] * a->marginal[c];
        expected = a->n * a->n - sq;
    } else {
        double grand = 0;
        for (size_t c = 0; c < t->n_levels; c++)
            grand += a->marginal[c] * v[c];
        grand /= a->n;
        for (size_t c = 0; c < t->n_levels; c++)
            expected += a->marginal[c] * (v[c] - grand) * (v[c] - grand);
        expected *= 2 * a->n;
        /* Keep the bootstrap's sums centred on the grand mean, for accuracy. */
        for (size_t k = 0; k < a->n_units; k++) {
            uint32_t u = a->unit[k];
            double s1 = 0, s2 = 0;
            for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++) {
                double x = v[t->ul_level[i]] - grand;
                s1 += t->ul_count[i] * x;
                s2 += t->ul_count[i] * x * x;
            }
            a->s1[k] = s1;
            a->s2[k] = s2;
        }
    }
    for (size_t k = 0; k < a->n_units; k++) {
        uint32_t u = a->unit[k];
        double m = t->u_start[u + 1] - t->u_start[u];
        double pairs = 0;
        if (kind == A_NOMINAL) {
            double sq = 0;
            for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++)
                sq += (double)t->ul_count[i] * t->ul_count[i];
            pairs = m * m - sq;
        } else {
            /* sum (x - unit mean)^2, two-pass to avoid cancellation. */
            double ss = 0;
            double um = 0;
            for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++)
                um += t->ul_count[i] * v[t->ul_level[i]];
            um /= m;
            for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++) {
                double d = v[t->ul_level[i]] - um;
                ss += t->ul_count[i] * d * d;
            }
            pairs = 2 * m * ss;
        }
        a->m[k] = m;
        a->d_o[k] = pairs / (m - 1);
    }
    return expected;
}

static const char *alpha_reason_empty = "no unit has 2 or more ratings";
static const char *alpha_reason_flat = "no variation: all ratings are the same level";

/* One bootstrap replicate over resampled pairable units; NAN if undefined. */
static double alpha_replicate(const irr_table *t, const alpha_data *a, alpha_kind kind,
                              irr_rng *rng, double *counts)
{
    size_t n_units = a->n_units;
    double n = 0, d_o = 0, s1 = 0, s2 = 0, expected;
    if (kind == A_NOMINAL) {
        memset(counts, 0, t->n_levels * sizeof *counts);
        for (size_t i = 0; i < n_units; i++) {
            size_t k = irr_rng_below(rng, n_units);
            uint32_t u = a->unit[k];
            n += a->m[k];
            d_o += a->d_o[k];
            for (uint32_t j = t->ul_start[u]; j < t->ul_start[u + 1]; j++)
                counts[t->ul_level[j]] += t->ul_count[j];
        }
        double sq = 0;
        for (size_t c = 0; c < t->n_levels; c++)
            sq += counts[c] * counts[c];
        expected = n * n - sq;
    } else {
        for (size_t i = 0; i < n_units; i++) {
            size_t k = irr_rng_below(rng, n_units);
            n += a->m[k];
            d_o += a->d_o[k];
            s1 += a->s1[k];
            s2 += a->s2[k];
        }
        expected = 2 * (n * s2 - s1 * s1);
    }
    if (!(expected > 1e-12 * n * n))
        return NAN;
    return 1.0 - (n - 1) * d_o / expected;
}

irr_status irr_alpha_metrics(const irr_table *t, const irr_options *o, const int *want,
                             irr_metric *out)
{
    static const irr_metric_id ids[3] = {IRR_ALPHA_NOMINAL, IRR_ALPHA_ORDINAL, IRR_ALPHA_INTERVAL};
    alpha_data a;
    double *v = NULL, *rep = NULL, *counts = NULL;
    irr_status st = alpha_data_init(t, &a);
    if (st != IRR_OK)
        return st;
    st = IRR_ERR_NOMEM;
    v = malloc((t->n_levels ? t->n_levels : 1) * sizeof *v);
    counts = malloc((t->n_levels ? t->n_levels : 1) * sizeof *counts);
    rep = malloc((o->bootstrap ? o->bootstrap : 1) * sizeof *rep);
    if (!v || !counts || !rep)
        goto cleanup;
    for (int k = 0; k < 3; k++) {
        irr_metric *m = &out[ids[k]];
        alpha_kind kind = (alpha_kind)k;
        if (!want[ids[k]])
            continue;
        if (a.n_units == 0) {
            irr_undefined(m, "%s", alpha_reason_empty);
            continue;
        }
        alpha_values(t, &a, kind, v);
        double expected = alpha_units(t, &a, kind, v);
        double d_o = 0;
        for (size_t i = 0; i < a.n_units; i++)
            d_o += a.d_o[i];
        if (!(expected > 1e-12 * a.n * a.n)) {
            irr_undefined(m, "%s", alpha_reason_flat);
            continue;
        }
        irr_defined(m, 1.0 - (a.n - 1) * d_o / expected);
        if (!o->ci)
            continue;
        if (a.n_units < 2) {
            irr_no_ci(m, "bootstrap needs at least 2 units with 2 or more ratings");
            continue;
        }
        irr_rng rng;
        irr_rng_seed(&rng, o->seed);
        size_t n_rep = 0;
        for (unsigned b = 0; b < o->bootstrap; b++) {
            double r = alpha_replicate(t, &a, kind, &rng, counts);
            if (!isnan(r))
                rep[n_rep++] = r;
        }
        irr_bootstrap_finish(m, rep, n_rep, o->bootstrap, o->conf_level);
    }
    st = IRR_OK;
cleanup:
    alpha_data_release(&a);
    free(v);
    free(rep);
    free(counts);
    return st;
}
