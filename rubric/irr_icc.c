/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_icc.c - the six intraclass correlations of Shrout & Fleiss (1979),
 * from ANOVA sums of squares, with the F-based confidence intervals of
 * Shrout & Fleiss (1979) and McGraw & Wong (1996).
 *
 * Case 1 (one-way random; each unit may have different raters) needs the
 * same number k of ratings on every unit. Cases 2 (two-way random) and 3
 * (two-way mixed, consistency) need every rater to rate every unit. Means
 * and sums of squares take two passes over the ratings: O(ratings).
 *
 *   ICC(1,1) = (BMS - WMS) / (BMS + (k-1) WMS)      ICC(1,k) = (BMS - WMS) / BMS
 *   ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)
 *   ICC(2,k) = (BMS - EMS) / (BMS + (JMS - EMS) / n)
 *   ICC(3,1) = (BMS - EMS) / (BMS + (k-1) EMS)      ICC(3,k) = (BMS - EMS) / BMS
 *
 * Scores are mapped onto [0, 1] first (the ICCs are invariant under affine
 * maps), so the sums of squares neither cancel nor overflow, and residuals
 * are summed directly rather than as a difference of sums. A sum of squares
 * within rounding of zero is zero: then F is infinite (or 0) and the
 * intervals are the formulas' limits, as R psych gives them: [1, 1] when the
 * ratings of each unit agree (after the raters' offsets, for case 3).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "irr_impl.h"

typedef struct {
    double n, k;
    double bms, wms, jms, ems;
} anova;

static double f_crit(double conf, double d1, double d2)
{
    return irr_f_quantile(0.5 + conf / 2.0, d1, d2);
}

/* An F-based interval on a defined ICC (these intervals come with no SE). */
static void set_f_ci(irr_metric *m, double lo, double hi)
{
    if (!m->defined)
        return;
    m->has_ci = 1;
    m->se = NAN;
    m->ci_method = "F";
    m->ci_reason[0] = '\0';
    m->ci_lo = lo;
    m->ci_hi = hi;
}

/* num / den as an F ratio: infinite when only the denominator is 0. */
static double f_ratio(double num, double den)
{
    if (den > 0)
        return num / den;
    return num > 0 ? INFINITY : NAN;
}

/* (F - 1) / (F + k - 1) and 1 - 1/F, with their limits at F = inf. */
static double single_from_f(double f, double k)
{
    return isinf(f) ? 1.0 : (f - 1) / (f + k - 1);
}

static double average_from_f(double f)
{
    return isinf(f) ? 1.0 : 1 - 1 / f;
}

/* Interval for ICC(1,1)/(3,1) (single) and (1,k)/(3,k) (average) from F = BMS / xMS. */
static void ci_from_f(irr_metric *single, irr_metric *average, double f, double df1, double df2,
                      double k, double conf, const char *why)
{
    if (isnan(f)) {
        irr_no_ci(single, "%s", why);
        irr_no_ci(average, "%s", why);
        return;
    }
    double fl = f / f_crit(conf, df1, df2);
    double fu = f * f_crit(conf, df2, df1);
    set_f_ci(single, single_from_f(fl, k), single_from_f(fu, k));
    set_f_ci(average, average_from_f(fl), average_from_f(fu));
}

/* ICC(2,1) and (2,k): Satterthwaite degrees of freedom (McGraw & Wong 1996). */
static void ci_case2(irr_metric *single, irr_metric *average, const anova *a, double conf)
{
    double n = a->n, k = a->k, icc = single->value;
    double v = k - 1; /* the limit of the formula below as EMS -> 0 (F_J -> inf) */
    if (a->ems > 0) {
        double fj = a->jms / a->ems;
        double t = n * (1 + (k - 1) * icc) - k * icc;
        v = (k - 1) * (n - 1) * pow(k * icc * fj + t, 2) /
            ((n - 1) * k * k * icc * icc * fj * fj + t * t);
    }
    if (!(v > 0) || !isfinite(v)) {
        irr_no_ci(single, "the Satterthwaite degrees of freedom are undefined");
        irr_no_ci(average, "the Satterthwaite degrees of freedom are undefined");
        return;
    }
    double f_star = f_crit(conf, n - 1, v), f_star2 = f_crit(conf, v, n - 1);
    double c = k * a->jms + (k * n - k - n) * a->ems;
    double lo = n * (a->bms - f_star * a->ems) / (f_star * c + n * a->bms);
    double hi = n * (f_star2 * a->bms - a->ems) / (c + n * f_star2 * a->bms);
    set_f_ci(single, lo, hi);
    /* The average-measure bounds are the Spearman-Brown step-up of these,
     * k x / (1 + (k-1) x), which has its pole at x = -1/(k-1): across it the
     * stepped-up "interval" is two rays (psych prints it reversed). */
    if (lo <= -1 / (k - 1) && -1 / (k - 1) <= hi)
        irr_no_ci(average, "unbounded: the ICC(2,1) interval contains -1/(k-1), the pole of the "
                           "step-up to k raters");
    else
        set_f_ci(average, k * lo / (1 + (k - 1) * lo), k * hi / (1 + (k - 1) * hi));
}

/* num / den, or undefined (why) when den is 0 within rounding of scale. */
static void set_ratio(irr_metric *m, double num, double den, double scale, const char *why)
{
    if (!(fabs(den) > 1e-12 * scale) || !isfinite(num / den))
        irr_undefined(m, "%s", why);
    else
        irr_defined(m, num / den);
}

irr_status irr_icc_metrics(const irr_table *t, const irr_options *o, const int *want,
                           irr_metric *out)
{
    (void)want; /* all six share the sums of squares */
    size_t n = t->units.count, n_raters = t->raters.count, q = t->n_levels;
    double *x = NULL, *used = NULL, *rater_mean = NULL, *unit_mean = NULL;
    irr_status st = IRR_ERR_NOMEM;
    const char *flat = "no variation: all ratings are the same level";
    const char *between = "no variation between units (between-unit mean square is 0)";

    uint32_t k = n ? t->u_start[1] - t->u_start[0] : 0;
    int equal = 1;
    for (size_t u = 0; u < n; u++)
        if (t->u_start[u + 1] - t->u_start[u] != k)
            equal = 0;
    const char *why1 = NULL, *why23 = NULL;
    if (n < 2)
        why1 = why23 = "needs at least 2 units";
    else if (!equal)
        why1 = why23 = "units have unequal numbers of ratings";
    else if (k < 2)
        why1 = why23 = "needs at least 2 ratings per unit";
    else if (k != n_raters)
        why23 = "needs every rater to rate every unit";

    x = malloc((q ? q : 1) * sizeof *x);
    used = calloc(q ? q : 1, sizeof *used);
    unit_mean = malloc((n ? n : 1) * sizeof *unit_mean);
    rater_mean = calloc(n_raters ? n_raters : 1, sizeof *rater_mean);
    if (!x || !used || !unit_mean || !rater_mean)
        goto cleanup;
    size_t distinct = 0;
    for (size_t i = 0; i < t->n_ul; i++)
        used[t->ul_level[i]] += t->ul_count[i];
    for (size_t c = 0; c < q; c++)
        distinct += used[c] > 0;
    if (!why1 && distinct < 2)
        why1 = why23 = flat;

    anova a = {.n = (double)n, .k = (double)k};
    if (!why1) {
        irr_unit_scale(t, used, x);
        /* Sums of squares at or below this are rounding, not data: the
         * scores lie in [0, 1], so each term is off by a few ulps at most. */
        double zero = 64.0 * DBL_EPSILON * DBL_EPSILON * (double)t->n_ratings;
        double grand = 0, ss_between = 0, ss_within = 0;
        for (size_t e = 0; e < t->n_ratings; e++)
            grand += x[t->e_level[e]];
        grand /= (double)t->n_ratings;
        for (size_t u = 0; u < n; u++) {
            double mean = 0;
            for (uint32_t e = t->u_start[u]; e < t->u_start[u + 1]; e++)
                mean += x[t->e_level[e]];
            mean /= k;
            unit_mean[u] = mean;
            if (t->ul_start[u + 1] - t->ul_start[u] > 1)
                for (uint32_t e = t->u_start[u]; e < t->u_start[u + 1]; e++)
                    ss_within += (x[t->e_level[e]] - mean) * (x[t->e_level[e]] - mean);
            ss_between += k * (mean - grand) * (mean - grand);
        }
        if (ss_between <= zero)
            ss_between = 0;
        a.bms = ss_between / (a.n - 1);
        a.wms = ss_within / (a.n * (a.k - 1));
        if (!why23) {
            for (size_t e = 0; e < t->n_ratings; e++)
                rater_mean[t->e_rater[e]] += x[t->e_level[e]];
            double ss_raters = 0, ss_error = 0;
            for (size_t r = 0; r < n_raters; r++) {
                rater_mean[r] /= a.n;
                ss_raters += a.n * (rater_mean[r] - grand) * (rater_mean[r] - grand);
            }
            /* Residuals summed directly: ss_within - ss_raters would leave
             * rounding where the raters explain all within-unit variation. */
            for (size_t u = 0; u < n; u++)
                for (uint32_t e = t->u_start[u]; e < t->u_start[u + 1]; e++) {
                    double r = x[t->e_level[e]] - unit_mean[u] - rater_mean[t->e_rater[e]] + grand;
                    ss_error += r * r;
                }
            if (ss_raters <= zero)
                ss_raters = 0;
            if (ss_error <= zero)
                ss_error = 0;
            a.jms = ss_raters / (a.k - 1);
            a.ems = ss_error / ((a.n - 1) * (a.k - 1));
        }
    }

    if (why1) {
        irr_undefined(&out[IRR_ICC1_1], "%s", why1);
        irr_undefined(&out[IRR_ICC1_K], "%s", why1);
    } else {
        double scale = a.bms + a.wms;
        set_ratio(&out[IRR_ICC1_1], a.bms - a.wms, a.bms + (a.k - 1) * a.wms, scale, flat);
        set_ratio(&out[IRR_ICC1_K], a.bms - a.wms, a.bms, scale, between);
        if (o->ci)
            ci_from_f(&out[IRR_ICC1_1], &out[IRR_ICC1_K], f_ratio(a.bms, a.wms), a.n - 1,
                      a.n * (a.k - 1), a.k, o->conf_level, flat);
    }
    if (why23) {
        irr_metric_id ids[4] = {IRR_ICC2_1, IRR_ICC2_K, IRR_ICC3_1, IRR_ICC3_K};
        for (int i = 0; i < 4; i++)
            irr_undefined(&out[ids[i]], "%s", why23);
    } else {
        double scale = a.bms + a.jms + a.ems;
        const char *none = "no variation between units and no residual variation (0/0)";
        set_ratio(&out[IRR_ICC2_1], a.bms - a.ems,
                  a.bms + (a.k - 1) * a.ems + a.k * (a.jms - a.ems) / a.n, scale, flat);
        set_ratio(&out[IRR_ICC2_K], a.bms - a.ems, a.bms + (a.jms - a.ems) / a.n, scale,
                  "the denominator BMS + (JMS - EMS) / n is 0");
        set_ratio(&out[IRR_ICC3_1], a.bms - a.ems, a.bms + (a.k - 1) * a.ems, scale, none);
        set_ratio(&out[IRR_ICC3_K], a.bms - a.ems, a.bms, scale, between);
        if (o->ci) {
            if (out[IRR_ICC2_1].defined)
                ci_case2(&out[IRR_ICC2_1], &out[IRR_ICC2_K], &a, o->conf_level);
            ci_from_f(&out[IRR_ICC3_1], &out[IRR_ICC3_K], f_ratio(a.bms, a.ems), a.n - 1,
                      (a.n - 1) * (a.k - 1), a.k, o->conf_level, none);
        }
    }
    st = IRR_OK;
cleanup:
    free(x);
    free(used);
    free(unit_mean);
    free(rater_mean);
    return st;
}
