/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_agree.c - raw agreement (percent exact, adjacent, unanimous) and
 * Cohen's kappa for two raters, unweighted and weighted (Cohen 1960, 1968),
 * with the large-sample variance of Fleiss, Cohen & Everitt (1969).
 *
 * Cohen's kappa is computed without the q x q contingency table: the sums
 * over cells weighted by p_ij are sums over the rated pairs themselves, and
 * the weighted marginals w_i. = sum_j p_.j w_ij have closed forms for the
 * identity, linear and quadratic weights (prefix sums, moments). So it is
 * O(ratings + levels) even for interval data with thousands of levels.
 */
#include <math.h>
#include <stdlib.h>

#include "irr_impl.h"

/* ---- percent agreement ---- */

void irr_percent_unit(const irr_table *t, size_t u, double out[3])
{
    double m = t->u_start[u + 1] - t->u_start[u];
    double same = 0, near = 0;
    uint32_t b = t->ul_start[u], e = t->ul_start[u + 1];
    for (uint32_t i = b; i < e; i++) {
        double n = t->ul_count[i];
        same += n * (n - 1);
        if (i + 1 < e && t->ul_level[i + 1] == t->ul_level[i] + 1)
            near += 2 * n * t->ul_count[i + 1];
    }
    out[0] = same / (m * (m - 1));
    out[1] = (same + near) / (m * (m - 1));
    out[2] = e - b == 1;
}

/* The values; their bootstrap intervals come from irr_bootstrap_metrics. */
irr_status irr_percent_metrics(const irr_table *t, const irr_options *o, const int *want,
                               irr_metric *out)
{
    (void)o;
    double sum[3] = {0, 0, 0};
    size_t n = 0;
    for (size_t u = 0; u < t->units.count; u++) {
        if (t->u_start[u + 1] - t->u_start[u] < 2)
            continue;
        double share[3];
        irr_percent_unit(t, u, share);
        for (int k = 0; k < 3; k++)
            sum[k] += share[k];
        n++;
    }
    for (int k = 0; k < 3; k++) {
        irr_metric *m = &out[IRR_PERCENT_EXACT + k];
        if (!want[IRR_PERCENT_EXACT + k])
            continue;
        if (n == 0)
            irr_undefined(m, "no unit has 2 or more ratings");
        else
            irr_defined(m, sum[k] / (double)n);
    }
    return IRR_OK;
}

/* ---- Cohen's kappa ---- */

typedef enum { W_IDENTITY, W_LINEAR, W_QUADRATIC } weight_kind;

static double weight(weight_kind w, double i, double j, double q)
{
    switch (w) {
    case W_LINEAR:
        return 1.0 - fabs(i - j) / (q - 1);
    case W_QUADRATIC:
        return 1.0 - (i - j) * (i - j) / ((q - 1) * (q - 1));
    case W_IDENTITY:
        break;
    }
    return i == j;
}

/* wbar[i] = sum_j p[j] w(i, j), for every level i, in O(q). */
static void weighted_marginal(weight_kind w, const double *p, size_t q, double *wbar)
{
    if (w == W_IDENTITY) {
        for (size_t i = 0; i < q; i++)
            wbar[i] = p[i];
        return;
    }
    double mean = 0, mean2 = 0;
    for (size_t j = 0; j < q; j++) {
        mean += (double)j * p[j];
        mean2 += (double)j * (double)j * p[j];
    }
    if (w == W_QUADRATIC) {
        double d = (double)(q - 1) * (double)(q - 1);
        for (size_t i = 0; i < q; i++) {
            double x = (double)i;
            wbar[i] = 1.0 - (x * x - 2 * x * mean + mean2) / d;
        }
        return;
    }
    /* Linear: sum_j p_j |i - j| from the mass and first moment below i. */
    double below = 0, below_moment = 0;
    for (size_t i = 0; i < q; i++) {
        double x = (double)i;
        double abs_dev =
            x * below - below_moment + (mean - below_moment - x * p[i]) - x * (1.0 - below - p[i]);
        wbar[i] = 1.0 - abs_dev / (double)(q - 1);
        below += p[i];
        below_moment += x * p[i];
    }
}

irr_status irr_cohen_metrics(const irr_table *t, const irr_options *o, const int *want,
                             irr_metric *out)
{
    static const irr_metric_id ids[3] = {IRR_COHEN_KAPPA, IRR_COHEN_KAPPA_LINEAR,
                                         IRR_COHEN_KAPPA_QUADRATIC};
    size_t q = t->n_levels, n_units = t->units.count;
    uint32_t *a = NULL, *b = NULL;
    double *pa = NULL, *pb = NULL, *wa = NULL, *wb = NULL;
    irr_status st = IRR_OK;

    const char *why = NULL;
    if (t->raters.count != 2) {
        for (int k = 0; k < 3; k++)
            irr_undefined(&out[ids[k]], "needs exactly 2 raters, found %u", t->raters.count);
        return IRR_OK;
    }
    st = IRR_ERR_NOMEM;
    a = malloc((n_units ? n_units : 1) * sizeof *a);
    b = malloc((n_units ? n_units : 1) * sizeof *b);
    pa = calloc(q ? q : 1, sizeof *pa);
    pb = calloc(q ? q : 1, sizeof *pb);
    wa = malloc((q ? q : 1) * sizeof *wa);
    wb = malloc((q ? q : 1) * sizeof *wb);
    if (!a || !b || !pa || !pb || !wa || !wb)
        goto cleanup;
    size_t n = 0;
    for (size_t u = 0; u < n_units; u++) {
        uint32_t s = t->u_start[u];
        if (t->u_start[u + 1] - s != 2)
            continue;
        int first_is_0 = t->e_rater[s] == 0;
        a[n] = t->e_level[first_is_0 ? s : s + 1];
        b[n] = t->e_level[first_is_0 ? s + 1 : s];
        n++;
    }
    if (n == 0)
        why = "the two raters never rated the same unit";
    else if (q < 2)
        why = "no variation: all ratings are the same level";
    for (size_t i = 0; i < n; i++) {
        pa[a[i]] += 1.0 / (double)n;
        pb[b[i]] += 1.0 / (double)n;
    }
    for (int k = 0; k < 3; k++) {
        irr_metric *m = &out[ids[k]];
        weight_kind w = (weight_kind)k;
        if (!want[ids[k]])
            continue;
        if (why) {
            irr_undefined(m, "%s", why);
            continue;
        }
        weighted_marginal(w, pb, q, wa);
        weighted_marginal(w, pa, q, wb);
        double po = 0, pe = 0;
        for (size_t i = 0; i < n; i++)
            po += weight(w, a[i], b[i], (double)q);
        po /= (double)n;
        for (size_t i = 0; i < q; i++)
            pe += pa[i] * wa[i];
        if (1.0 - pe < 1e-12) {
            irr_undefined(m, "no variation: chance agreement is 1 (each rater used one level)");
            continue;
        }
        irr_defined(m, (po - pe) / (1.0 - pe));
        if (!o->ci)
            continue;
        if (n < 2) {
            irr_no_ci(m, "needs at least 2 units rated by both raters");
            continue;
        }
        /* Fleiss, Cohen & Everitt 1969, eq. for var(kappa_w), non-null. */
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            double d =
                weight(w, a[i], b[i], (double)q) * (1.0 - pe) - (wa[a[i]] + wb[b[i]]) * (1.0 - po);
            sum += d * d;
        }
        sum /= (double)n;
        double c = po * pe - 2.0 * pe + po;
        double var = (sum - c * c) / ((double)n * pow(1.0 - pe, 4));
        /* Wald interval, unbounded as SAS PROC FREQ and statsmodels print it. */
        irr_set_ci(m, sqrt(var > 0 ? var : 0), irr_normal_quantile(0.5 + o->conf_level / 2),
                   IRR_CI_UNBOUNDED);
    }
    st = IRR_OK;
cleanup:
    free(a);
    free(b);
    free(pa);
    free(pb);
    free(wa);
    free(wb);
    return st;
}
