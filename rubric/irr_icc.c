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
 */
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

/* Interval for ICC(1,1)/(3,1) (single) and (1,k)/(3,k) (average) from F = BMS / xMS. */
static void ci_from_f(irr_metric *single, irr_metric *average, double f, double df1, double df2,
                      double k, double conf)
{
    if (!isfinite(f) || !(f > 0)) {
        irr_no_ci(single, "the F ratio is undefined (no within-unit variation)");
        irr_no_ci(average, "the F ratio is undefined (no within-unit variation)");
        return;
    }
    double fl = f / f_crit(conf, df1, df2);
    double fu = f * f_crit(conf, df2, df1);
    set_f_ci(single, (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1));
    set_f_ci(average, 1 - 1 / fl, 1 - 1 / fu);
}

/* ICC(2,1) and (2,k): Satterthwaite degrees of freedom (McGraw & Wong 1996). */
static void ci_case2(irr_metric *single, irr_metric *average, const anova *a, double conf)
{
    double n = a->n, k = a->k, icc = single->value;
    if (!(a->ems > 0)) {
        irr_no_ci(single, "the F ratio is undefined (no residual variation)");
        irr_no_ci(average, "the F ratio is undefined (no residual variation)");
        return;
    }
    double fj = a->jms / a->ems;
    double t = n * (1 + (k - 1) * icc) - k * icc;
    double v = (k - 1) * (n - 1) * pow(k * icc * fj + t, 2) /
               ((n - 1) * k * k * icc * icc * fj * fj + t * t);
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
    /* The average-measure bounds are the Spearman-Brown step-up of these. */
    set_f_ci(average, k * lo / (1 + (k - 1) * lo), k * hi / (1 + (k - 1) * hi));
}

/* ratio or undefined when the denominator vanishes. */
static void set_ratio(irr_metric *m, double num, double den, const char *why)
{
    if (!(fabs(den) > 1e-300) || !isfinite(num / den))
        irr_undefined(m, "%s", why);
    else
        irr_defined(m, num / den);
}

irr_status irr_icc_metrics(const irr_table *t, const irr_options *o, const int *want,
                           irr_metric *out)
{
    (void)want; /* all six share the sums of squares */
    size_t n = t->units.count, n_raters = t->raters.count;
    const double *lv = t->levels;
    double *rater_sum = NULL;
    irr_status st = IRR_OK;
    const char *flat = "no variation: all ratings are the same level";

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

    anova a = {.n = (double)n, .k = (double)k};
    if (!why1) {
        /* Two passes: grand and unit means, then deviations. */
        double grand = 0, ss_between = 0, ss_within = 0;
        for (size_t e = 0; e < t->n_ratings; e++)
            grand += lv[t->e_level[e]];
        grand /= (double)t->n_ratings;
        for (size_t u = 0; u < n; u++) {
            double mean = 0;
            for (uint32_t e = t->u_start[u]; e < t->u_start[u + 1]; e++)
                mean += lv[t->e_level[e]];
            mean /= k;
            for (uint32_t e = t->u_start[u]; e < t->u_start[u + 1]; e++)
                ss_within += (lv[t->e_level[e]] - mean) * (lv[t->e_level[e]] - mean);
            ss_between += k * (mean - grand) * (mean - grand);
        }
        a.bms = ss_between / (a.n - 1);
        a.wms = ss_within / (a.n * (a.k - 1));
        if (ss_between + ss_within == 0)
            why1 = why23 = flat;
        if (!why23) {
            rater_sum = calloc(n_raters, sizeof *rater_sum);
            if (!rater_sum) {
                st = IRR_ERR_NOMEM;
                goto cleanup;
            }
            for (size_t e = 0; e < t->n_ratings; e++)
                rater_sum[t->e_rater[e]] += lv[t->e_level[e]];
            double ss_raters = 0;
            for (size_t r = 0; r < n_raters; r++) {
                double d = rater_sum[r] / a.n - grand;
                ss_raters += a.n * d * d;
            }
            double ss_error = ss_within - ss_raters;
            if (ss_error < 0)
                ss_error = 0; /* rounding when raters explain all within-unit variation */
            a.jms = ss_raters / (a.k - 1);
            a.ems = ss_error / ((a.n - 1) * (a.k - 1));
        }
    }

    if (why1) {
        irr_undefined(&out[IRR_ICC1_1], "%s", why1);
        irr_undefined(&out[IRR_ICC1_K], "%s", why1);
    } else {
        set_ratio(&out[IRR_ICC1_1], a.bms - a.wms, a.bms + (a.k - 1) * a.wms, flat);
        set_ratio(&out[IRR_ICC1_K], a.bms - a.wms, a.bms,
                  "no variation between units (between-unit mean square is 0)");
        if (o->ci)
            ci_from_f(&out[IRR_ICC1_1], &out[IRR_ICC1_K], a.bms / a.wms, a.n - 1, a.n * (a.k - 1),
                      a.k, o->conf_level);
    }
    if (why23) {
        irr_metric_id ids[4] = {IRR_ICC2_1, IRR_ICC2_K, IRR_ICC3_1, IRR_ICC3_K};
        for (int i = 0; i < 4; i++)
            irr_undefined(&out[ids[i]], "%s", why23);
    } else {
        set_ratio(&out[IRR_ICC2_1], a.bms - a.ems,
                  a.bms + (a.k - 1) * a.ems + a.k * (a.jms - a.ems) / a.n, flat);
        set_ratio(&out[IRR_ICC2_K], a.bms - a.ems, a.bms + (a.jms - a.ems) / a.n, flat);
        set_ratio(&out[IRR_ICC3_1], a.bms - a.ems, a.bms + (a.k - 1) * a.ems, flat);
        set_ratio(&out[IRR_ICC3_K], a.bms - a.ems, a.bms,
                  "no variation between units (between-unit mean square is 0)");
        if (o->ci) {
            if (out[IRR_ICC2_1].defined)
                ci_case2(&out[IRR_ICC2_1], &out[IRR_ICC2_K], &a, o->conf_level);
            ci_from_f(&out[IRR_ICC3_1], &out[IRR_ICC3_K], a.bms / a.ems, a.n - 1,
                      (a.n - 1) * (a.k - 1), a.k, o->conf_level);
        }
    }
cleanup:
    free(rater_sum);
    return st;
}
