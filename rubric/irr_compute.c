/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_compute.c - the entry points that turn a table into results: every
 * metric, one metric, or per-rater severity and agreement; plus the small
 * helpers that fill an irr_metric the same way everywhere.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irr_impl.h"

static const char *const metric_names[IRR_METRIC_COUNT] = {
    [IRR_PERCENT_EXACT] = "percent_exact",
    [IRR_PERCENT_ADJACENT] = "percent_adjacent",
    [IRR_PERCENT_UNANIMOUS] = "percent_unanimous",
    [IRR_COHEN_KAPPA] = "cohen_kappa",
    [IRR_COHEN_KAPPA_LINEAR] = "cohen_kappa_linear",
    [IRR_COHEN_KAPPA_QUADRATIC] = "cohen_kappa_quadratic",
    [IRR_FLEISS_KAPPA] = "fleiss_kappa",
    [IRR_ALPHA_NOMINAL] = "krippendorff_alpha_nominal",
    [IRR_ALPHA_ORDINAL] = "krippendorff_alpha_ordinal",
    [IRR_ALPHA_INTERVAL] = "krippendorff_alpha_interval",
    [IRR_ICC1_1] = "icc1_1",
    [IRR_ICC1_K] = "icc1_k",
    [IRR_ICC2_1] = "icc2_1",
    [IRR_ICC2_K] = "icc2_k",
    [IRR_ICC3_1] = "icc3_1",
    [IRR_ICC3_K] = "icc3_k",
    [IRR_GWET_AC1] = "gwet_ac1",
    [IRR_GWET_AC2_LINEAR] = "gwet_ac2_linear",
    [IRR_GWET_AC2_QUADRATIC] = "gwet_ac2_quadratic",
    [IRR_BRENNAN_PREDIGER] = "brennan_prediger",
};

const char *irr_metric_name(irr_metric_id id)
{
    if ((unsigned)id >= IRR_METRIC_COUNT)
        return NULL;
    return metric_names[id];
}

int irr_metric_lookup(const char *name, irr_metric_id *id)
{
    if (!name)
        return 0;
    for (int i = 0; i < IRR_METRIC_COUNT; i++) {
        if (strcmp(metric_names[i], name) == 0) {
            if (id)
                *id = (irr_metric_id)i;
            return 1;
        }
    }
    return 0;
}

void irr_options_init(irr_options *o)
{
    memset(o, 0, sizeof *o);
    o->conf_level = 0.95;
    o->bootstrap = 1000;
    o->threads = 1;
    o->seed = 1;
}

/* ---- filling an irr_metric ---- */

static void metric_clear(irr_metric *m)
{
    memset(m, 0, sizeof *m);
    m->value = NAN;
    m->se = NAN;
    m->ci_lo = m->ci_hi = NAN;
}

void irr_undefined(irr_metric *m, const char *fmt, ...)
{
    metric_clear(m);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof m->reason, fmt, ap);
    va_end(ap);
}

void irr_defined(irr_metric *m, double v)
{
    metric_clear(m);
    m->defined = 1;
    m->value = v;
}

void irr_no_ci(irr_metric *m, const char *fmt, ...)
{
    m->has_ci = 0;
    m->se = m->ci_lo = m->ci_hi = NAN;
    m->ci_method = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->ci_reason, sizeof m->ci_reason, fmt, ap);
    va_end(ap);
}

void irr_set_ci(irr_metric *m, double se, double crit, irr_ci_bound bound)
{
    if (!isfinite(se) || !isfinite(crit)) {
        irr_no_ci(m, "the standard error is undefined for these data");
        return;
    }
    m->has_ci = 1;
    m->se = se;
    m->ci_lo = m->value - crit * se;
    m->ci_hi = m->value + crit * se;
    /* irrCAC: ucb <- min(1, coeff + stderr * qt(...)); the lower end stays. */
    if (bound == IRR_CI_UPPER_1)
        m->ci_hi = fmin(1.0, m->ci_hi);
    m->ci_method = "analytic";
    m->ci_reason[0] = '\0';
}

void irr_unit_scale(const irr_table *t, const double *used, double *x)
{
    size_t q = t->n_levels, lo = q, hi = q;
    for (size_t c = 0; c < q; c++) {
        if (used && !(used[c] > 0))
            continue;
        if (lo == q)
            lo = c;
        hi = c;
    }
    if (lo == q || lo == hi) {
        for (size_t c = 0; c < q; c++)
            x[c] = 0;
        return;
    }
    /* Halves keep every difference finite for any finite scores; the
     * subtraction of nearby values (1e15 + 3 - (1e15 + 1)) is exact. */
    double base = t->levels[lo] / 2, range = t->levels[hi] / 2 - base;
    for (size_t c = 0; c < q; c++)
        x[c] = (t->levels[c] / 2 - base) / range;
}

/* Whatever a family computed, nothing non-finite leaves the library: such a
 * metric is undefined (or has no interval), with the reason. */
static void sanitize(irr_metric *m)
{
    if (m->defined && !isfinite(m->value)) {
        irr_undefined(m, "not computable: an intermediate value overflowed");
        return;
    }
    if (!m->defined || !m->has_ci)
        return;
    if (!isfinite(m->ci_lo) || !isfinite(m->ci_hi) || isinf(m->se)) {
        irr_no_ci(m, "the interval is not computable for these data");
        return;
    }
    /* A limit interval ([-1/(k-1)] twice, say) may miss its value by an ulp. */
    double slack = 1e-12 * fmax(1.0, fabs(m->value));
    if (m->value < m->ci_lo && m->ci_lo - m->value <= slack)
        m->ci_lo = m->value;
    if (m->value > m->ci_hi && m->value - m->ci_hi <= slack)
        m->ci_hi = m->value;
    if (!(m->ci_lo <= m->value && m->value <= m->ci_hi))
        irr_no_ci(m, "the interval is not computable for these data");
}

/* ---- computing ---- */

typedef irr_status (*family_fn)(const irr_table *, const irr_options *, const int *, irr_metric *);

static irr_status compute_wanted(irr_table *t, const irr_options *o, const int *want,
                                 irr_metric *out)
{
    static const struct {
        family_fn fn;
        irr_metric_id first, last;
    } families[] = {
        {irr_percent_metrics, IRR_PERCENT_EXACT, IRR_PERCENT_UNANIMOUS},
        {irr_cohen_metrics, IRR_COHEN_KAPPA, IRR_COHEN_KAPPA_QUADRATIC},
        {irr_chance_metrics, IRR_FLEISS_KAPPA, IRR_FLEISS_KAPPA},
        {irr_alpha_metrics, IRR_ALPHA_NOMINAL, IRR_ALPHA_INTERVAL},
        {irr_icc_metrics, IRR_ICC1_1, IRR_ICC3_K},
        {irr_chance_metrics, IRR_GWET_AC1, IRR_BRENNAN_PREDIGER},
    };
    if (o->ci && (o->bootstrap < IRR_BOOTSTRAP_MIN || o->bootstrap > IRR_BOOTSTRAP_MAX ||
                  !(o->conf_level > 0 && o->conf_level < 1)))
        return IRR_ERR_ARG;
    irr_status st = irr_table_prepare(t);
    if (st != IRR_OK)
        return st;
    for (int i = 0; i < IRR_METRIC_COUNT; i++) {
        if (want[i])
            irr_undefined(&out[i], "not computed");
    }
    int done_chance = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        int any = 0;
        for (int i = families[f].first; i <= (int)families[f].last; i++)
            any |= want[i];
        if (!any)
            continue;
        if (families[f].fn == irr_chance_metrics) {
            if (done_chance)
                continue;
            done_chance = 1;
        }
        st = families[f].fn(t, o, want, out);
        if (st != IRR_OK)
            return st;
    }
    if (o->ci) {
        st = irr_bootstrap_metrics(t, o, want, out);
        if (st != IRR_OK)
            return st;
    }
    for (int i = 0; i < IRR_METRIC_COUNT; i++)
        if (want[i])
            sanitize(&out[i]);
    return IRR_OK;
}

irr_status irr_metric_compute(irr_table *t, irr_metric_id id, const irr_options *options,
                              irr_metric *metric)
{
    if (!t || !metric || (unsigned)id >= IRR_METRIC_COUNT)
        return IRR_ERR_ARG;
    irr_options defaults;
    irr_options_init(&defaults);
    const irr_options *o = options ? options : &defaults;
    int want[IRR_METRIC_COUNT] = {0};
    irr_metric all[IRR_METRIC_COUNT];
    want[id] = 1;
    irr_status st = compute_wanted(t, o, want, all);
    if (st == IRR_OK)
        *metric = all[id];
    return st;
}

void irr_result_release(irr_result *r)
{
    if (!r)
        return;
    free(r->levels);
    free(r->raters);
    memset(r, 0, sizeof *r);
}

irr_status irr_compute(irr_table *t, const irr_options *options, irr_result *r)
{
    if (!t || !r)
        return IRR_ERR_ARG;
    memset(r, 0, sizeof *r);
    irr_options defaults;
    irr_options_init(&defaults);
    const irr_options *o = options ? options : &defaults;
    int want[IRR_METRIC_COUNT];
    for (int i = 0; i < IRR_METRIC_COUNT; i++)
        want[i] = 1;
    irr_status st = compute_wanted(t, o, want, r->metrics);
    if (st != IRR_OK)
        goto fail;
    r->n_units = t->units.count;
    r->n_raters = t->raters.count;
    r->n_ratings = t->n_ratings;
    r->n_levels = t->n_levels;
    r->levels = malloc((t->n_levels ? t->n_levels : 1) * sizeof *r->levels);
    if (!r->levels) {
        st = IRR_ERR_NOMEM;
        goto fail;
    }
    if (t->n_levels)
        memcpy(r->levels, t->levels, t->n_levels * sizeof *r->levels);
    if (o->by_rater || o->reference) {
        st = irr_raters_compute(t, o->reference, &r->raters, &r->n_rater_stats);
        if (st != IRR_OK)
            goto fail;
    }
    return IRR_OK;
fail:
    irr_result_release(r);
    return st;
}

/* ---- per-rater severity and agreement ---- */

typedef struct {
    double score_sum, diff_sum;
    size_t compared;
    double exact, adjacent; /* pair counts (against others) or unit counts */
    double pairs;
} rater_acc;

irr_status irr_raters_compute(irr_table *t, const char *reference, irr_rater_stats **stats,
                              size_t *n_stats)
{
    if (!t || !stats || !n_stats)
        return IRR_ERR_ARG;
    *stats = NULL;
    *n_stats = 0;
    irr_status st = irr_table_prepare(t);
    if (st != IRR_OK)
        return st;
    uint32_t ref = UINT32_MAX;
    if (reference) {
        ref = irr_intern_find(&t->raters, reference, strlen(reference));
        if (ref == UINT32_MAX)
            return IRR_ERR_ARG;
    }
    size_t n_raters = t->raters.count, n_units = t->units.count;
    double *lv = NULL;
    rater_acc *acc = calloc(n_raters ? n_raters : 1, sizeof *acc);
    uint32_t *count = calloc(t->n_levels ? t->n_levels : 1, sizeof *count);
    irr_rater_stats *out = calloc(n_raters ? n_raters : 1, sizeof *out);
    st = IRR_ERR_NOMEM;
    if (!acc || !count || !out)
        goto cleanup;
    /* Scores relative to the lowest level: means and differences of scores
     * near 1e15 keep their digits. */
    lv = malloc((t->n_levels ? t->n_levels : 1) * sizeof *lv);
    double base = t->n_levels ? t->levels[0] : 0;
    if (!lv)
        goto cleanup;
    for (size_t c = 0; c < t->n_levels; c++)
        lv[c] = t->levels[c] - base;
    for (size_t u = 0; u < n_units; u++) {
        uint32_t b = t->u_start[u], e_end = t->u_start[u + 1];
        uint32_t m = e_end - b;
        for (uint32_t e = b; e < e_end; e++)
            acc[t->e_rater[e]].score_sum += lv[t->e_level[e]];
        if (m < 2)
            continue;
        if (ref != UINT32_MAX) {
            uint32_t ref_level = UINT32_MAX;
            for (uint32_t e = b; e < e_end; e++)
                if (t->e_rater[e] == ref)
                    ref_level = t->e_level[e];
            if (ref_level == UINT32_MAX)
                continue;
            for (uint32_t e = b; e < e_end; e++) {
                uint32_t r = t->e_rater[e], c = t->e_level[e];
                if (r == ref)
                    continue;
                acc[r].compared++;
                acc[r].diff_sum += lv[c] - lv[ref_level];
                acc[r].exact += c == ref_level;
                acc[r].adjacent += c + 1 >= ref_level && c <= ref_level + 1;
                acc[r].pairs += 1;
            }
            continue;
        }
        double sum = 0;
        for (uint32_t e = b; e < e_end; e++) {
            sum += lv[t->e_level[e]];
            count[t->e_level[e]]++;
        }
        for (uint32_t e = b; e < e_end; e++) {
            uint32_t r = t->e_rater[e], c = t->e_level[e];
            double x = lv[c];
            acc[r].compared++;
            acc[r].diff_sum += x - (sum - x) / (m - 1);
            double same = count[c] - 1.0;
            double near =
                same + (c > 0 ? count[c - 1] : 0) + (c + 1 < t->n_levels ? count[c + 1] : 0);
            acc[r].exact += same;
            acc[r].adjacent += near;
            acc[r].pairs += m - 1;
        }
        for (uint32_t e = b; e < e_end; e++)
            count[t->e_level[e]] = 0;
    }
    for (size_t r = 0; r < n_raters; r++) {
        irr_rater_stats *s = &out[r];
        s->rater = irr_intern_name(&t->raters, (uint32_t)r, &s->rater_len);
        s->n_ratings = t->rater_count[r];
        s->mean = s->n_ratings ? base + acc[r].score_sum / (double)s->n_ratings : NAN;
        s->n_compared = acc[r].compared;
        if (acc[r].compared) {
            s->severity = acc[r].diff_sum / (double)acc[r].compared;
            s->exact = acc[r].exact / acc[r].pairs;
            s->adjacent = acc[r].adjacent / acc[r].pairs;
        } else {
            s->severity = s->exact = s->adjacent = NAN;
        }
    }
    *stats = out;
    *n_stats = n_raters;
    out = NULL;
    st = IRR_OK;
cleanup:
    free(lv);
    free(acc);
    free(count);
    free(out);
    return st;
}
