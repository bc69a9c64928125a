/* SPDX-License-Identifier: Apache-2.0 */
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
 * Interval values are first mapped onto [0, 1] and every value is centred on
 * the pairable mean, so the sums of squares neither cancel (scores of 1e15 +
 * small) nor overflow (scores of 1e200), and alpha does not depend on the
 * unit of the scores. "No variation" is decided by counting the distinct
 * pairable levels, not by comparing a sum with a threshold.
 */
#include <math.h>
#include <stdlib.h>

#include "irr_impl.h"

void irr_alpha_values(const irr_table *t, const double *marginal, double n, irr_alpha_kind kind,
                      double *v)
{
    size_t q = t->n_levels;
    if (kind == IRR_A_ORDINAL) {
        double below = 0;
        for (size_t c = 0; c < q; c++) {
            v[c] = below + marginal[c] / 2.0;
            below += marginal[c];
        }
    } else {
        irr_unit_scale(t, marginal, v);
    }
    double grand = 0;
    for (size_t c = 0; c < q; c++)
        grand += marginal[c] * v[c];
    grand /= n;
    for (size_t c = 0; c < q; c++)
        v[c] -= grand;
}

void irr_alpha_unit(const irr_table *t, size_t u, irr_alpha_kind kind, const double *v, double *d_o,
                    double *s1, double *s2)
{
    uint32_t b = t->ul_start[u], e = t->ul_start[u + 1];
    double m = t->u_start[u + 1] - t->u_start[u];
    if (kind == IRR_A_NOMINAL) {
        double sq = 0;
        for (uint32_t i = b; i < e; i++)
            sq += (double)t->ul_count[i] * t->ul_count[i];
        *d_o = (m * m - sq) / (m - 1);
        *s1 = *s2 = 0;
        return;
    }
    double sum = 0, sum2 = 0, ss = 0;
    for (uint32_t i = b; i < e; i++) {
        double x = v[t->ul_level[i]];
        sum += t->ul_count[i] * x;
        sum2 += t->ul_count[i] * x * x;
    }
    /* sum (x - unit mean)^2, two-pass to avoid cancellation; exactly 0 for a
     * unit whose ratings agree. */
    if (e - b > 1) {
        double um = sum / m;
        for (uint32_t i = b; i < e; i++) {
            double d = v[t->ul_level[i]] - um;
            ss += t->ul_count[i] * d * d;
        }
    }
    *d_o = 2 * m * ss / (m - 1);
    *s1 = sum;
    *s2 = sum2;
}

double irr_alpha_ratio(double n, double d_o, double expected, double scale)
{
    /* Rounding leaves about 1e-16 * scale where there is no variation. */
    if (!(expected > 1e-12 * scale))
        return NAN;
    return 1.0 - (n - 1) * d_o / expected;
}

irr_status irr_alpha_metrics(const irr_table *t, const irr_options *o, const int *want,
                             irr_metric *out)
{
    (void)o; /* intervals: irr_bootstrap_metrics */
    static const irr_metric_id ids[IRR_A_KINDS] = {IRR_ALPHA_NOMINAL, IRR_ALPHA_ORDINAL,
                                                   IRR_ALPHA_INTERVAL};
    size_t q = t->n_levels;
    double *marginal = calloc(q ? q : 1, sizeof *marginal);
    double *v = malloc((q ? q : 1) * sizeof *v);
    irr_status st = IRR_ERR_NOMEM;
    if (!marginal || !v)
        goto cleanup;
    double n = 0;
    size_t n_units = 0, distinct = 0;
    for (size_t u = 0; u < t->units.count; u++) {
        uint32_t m = t->u_start[u + 1] - t->u_start[u];
        if (m < 2)
            continue;
        n_units++;
        n += m;
        for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++)
            marginal[t->ul_level[i]] += t->ul_count[i];
    }
    for (size_t c = 0; c < q; c++)
        distinct += marginal[c] > 0;
    for (int k = 0; k < IRR_A_KINDS; k++) {
        irr_metric *m = &out[ids[k]];
        irr_alpha_kind kind = (irr_alpha_kind)k;
        if (!want[ids[k]])
            continue;
        if (n_units == 0) {
            irr_undefined(m, "no unit has 2 or more ratings");
            continue;
        }
        if (distinct < 2) {
            irr_undefined(m, "no variation: all ratings are the same level");
            continue;
        }
        double expected = 0, d_o = 0, s1, s2;
        if (kind == IRR_A_NOMINAL) {
            double sq = 0;
            for (size_t c = 0; c < q; c++)
                sq += marginal[c] * marginal[c];
            expected = n * n - sq;
        } else {
            irr_alpha_values(t, marginal, n, kind, v);
            for (size_t c = 0; c < q; c++)
                expected += marginal[c] * v[c] * v[c];
            expected *= 2 * n;
        }
        for (size_t u = 0; u < t->units.count; u++) {
            if (t->u_start[u + 1] - t->u_start[u] < 2)
                continue;
            double unit_d_o;
            irr_alpha_unit(t, u, kind, v, &unit_d_o, &s1, &s2);
            d_o += unit_d_o;
        }
        irr_defined(m, 1.0 - (n - 1) * d_o / expected);
    }
    st = IRR_OK;
cleanup:
    free(marginal);
    free(v);
    return st;
}
