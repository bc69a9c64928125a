/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_chance.c - chance-corrected agreement for many raters in Gwet's
 * framework: Fleiss' kappa (Fleiss 1971), Gwet's AC1 and AC2 (Gwet 2008;
 * Handbook of Inter-Rater Reliability, 4th ed. 2014, ch. on multiple raters,
 * missing ratings allowed) and Brennan & Prediger (1981), with Gwet's
 * linearised variances.
 *
 * Notation (Gwet 2014): unit i has r_i ratings, r_ik of them at level k;
 * r*_ik = sum_l w_kl r_il. Over the n' units with r_i >= 2,
 *   p_a = 1/n' sum_i sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1));
 * pi_k = 1/n sum_i r_ik / r_i over all n units; and chance agreement is
 *   Fleiss:  p_e = sum_kl w_kl pi_k pi_l  (w = identity here)
 *   AC1/AC2: p_e = T_w / (q (q-1)) sum_k pi_k (1 - pi_k), T_w = sum_kl w_kl
 *   BP:      p_e = 1 / q
 * coefficient = (p_a - p_e) / (1 - p_e). With equal r_i = m this Fleiss' kappa
 * is exactly Fleiss' 1971 statistic. Weights are by position on the scale,
 * and r*_ik has closed forms, so a unit costs O(distinct levels in it).
 */
#include <math.h>
#include <stdlib.h>

#include "irr_impl.h"

typedef enum { C_FLEISS, C_AC1, C_AC2_LINEAR, C_AC2_QUADRATIC, C_BP, C_KINDS } chance_kind;

static const irr_metric_id chance_ids[C_KINDS] = {IRR_FLEISS_KAPPA, IRR_GWET_AC1,
                                                  IRR_GWET_AC2_LINEAR, IRR_GWET_AC2_QUADRATIC,
                                                  IRR_BRENNAN_PREDIGER};

typedef enum { W_IDENTITY, W_LINEAR, W_QUADRATIC } weight_kind;

static weight_kind kind_weight(chance_kind k)
{
    return k == C_AC2_LINEAR ? W_LINEAR : k == C_AC2_QUADRATIC ? W_QUADRATIC : W_IDENTITY;
}

/* T_w = sum over all q x q cells of the weight. */
static double weight_total(weight_kind w, double q)
{
    switch (w) {
    case W_LINEAR:
        return q * q - q * (q + 1) / 3.0;
    case W_QUADRATIC:
        return q * q - q * q * (q + 1) / (6.0 * (q - 1));
    case W_IDENTITY:
        break;
    }
    return q;
}

/* p_a|i of one unit: sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1)), r_i >= 2. */
static double unit_agreement(const irr_table *t, size_t u, weight_kind w)
{
    uint32_t b = t->ul_start[u], e = t->ul_start[u + 1];
    double r = t->u_start[u + 1] - t->u_start[u];
    double q1 = (double)t->n_levels - 1.0;
    double sum = 0;
    if (w == W_IDENTITY) {
        for (uint32_t i = b; i < e; i++)
            sum += (double)t->ul_count[i] * (t->ul_count[i] - 1.0);
    } else if (w == W_QUADRATIC) {
        double m1 = 0, m2 = 0;
        for (uint32_t i = b; i < e; i++) {
            double l = t->ul_level[i];
            m1 += t->ul_count[i] * l;
            m2 += t->ul_count[i] * l * l;
        }
        for (uint32_t i = b; i < e; i++) {
            double k = t->ul_level[i];
            double star = r - (r * k * k - 2 * k * m1 + m2) / (q1 * q1);
            sum += t->ul_count[i] * (star - 1.0);
        }
    } else {
        /* Levels are sorted: sum_l |k - l| r_il from running sums. */
        double total = 0, total_moment = 0, below = 0, below_moment = 0;
        for (uint32_t i = b; i < e; i++) {
            total += t->ul_count[i];
            total_moment += t->ul_count[i] * (double)t->ul_level[i];
        }
        for (uint32_t i = b; i < e; i++) {
            double k = t->ul_level[i], c = t->ul_count[i];
            double dist = (k * below - below_moment) +
                          ((total_moment - below_moment - k * c) - k * (total - below - c));
            double star = r - dist / q1;
            sum += c * (star - 1.0);
            below += c;
            below_moment += k * c;
        }
    }
    return sum / (r * (r - 1.0));
}

irr_status irr_chance_metrics(const irr_table *t, const irr_options *o, const int *want,
                              irr_metric *out)
{
    size_t n = t->units.count, q = t->n_levels;
    double *pi = NULL, *pa_unit = NULL;
    irr_status st = IRR_ERR_NOMEM;
    pi = calloc(q ? q : 1, sizeof *pi);
    pa_unit = malloc((n ? n : 1) * sizeof *pa_unit);
    if (!pi || !pa_unit)
        goto cleanup;

    size_t n2 = 0;
    uint32_t m_first = n ? t->u_start[1] - t->u_start[0] : 0;
    int equal_m = 1;
    for (size_t u = 0; u < n; u++) {
        double r = t->u_start[u + 1] - t->u_start[u];
        if (r != m_first)
            equal_m = 0;
        if (r >= 2)
            n2++;
        for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++)
            pi[t->ul_level[i]] += t->ul_count[i] / r / (double)n;
    }

    for (int k = 0; k < C_KINDS; k++) {
        irr_metric *m = &out[chance_ids[k]];
        weight_kind w = kind_weight((chance_kind)k);
        if (!want[chance_ids[k]])
            continue;
        if (k == C_FLEISS && !equal_m) {
            irr_undefined(m, "units have unequal numbers of ratings");
            continue;
        }
        if (n2 == 0) {
            irr_undefined(m, "no unit has 2 or more ratings");
            continue;
        }
        if (q < 2) {
            irr_undefined(m, "no variation: all ratings are the same level");
            continue;
        }
        double pe = 0;
        if (k == C_FLEISS) {
            for (size_t c = 0; c < q; c++)
                pe += pi[c] * pi[c];
        } else if (k == C_BP) {
            pe = 1.0 / (double)q;
        } else {
            for (size_t c = 0; c < q; c++)
                pe += pi[c] * (1.0 - pi[c]);
            pe *= weight_total(w, (double)q) / ((double)q * (q - 1.0));
        }
        if (1.0 - pe < 1e-12) {
            irr_undefined(m, "no variation: all ratings are the same level");
            continue;
        }
        double pa = 0;
        for (size_t u = 0; u < n; u++) {
            pa_unit[u] = t->u_start[u + 1] - t->u_start[u] >= 2 ? unit_agreement(t, u, w) : 0;
            pa += pa_unit[u];
        }
        pa /= (double)n2;
        double coef = (pa - pe) / (1.0 - pe);
        irr_defined(m, coef);
        if (!o->ci)
            continue;
        if (n < 2) {
            irr_no_ci(m, "needs at least 2 units");
            continue;
        }
        /* Gwet 2014: var = 1/(n (n-1)) sum_i (kappa*_i - kappa)^2, where
         * kappa*_i = kappa_i - 2 (1 - kappa) (p_e|i - p_e) / (1 - p_e). */
        double scale = weight_total(w, (double)q) / ((double)q * (q - 1.0));
        double ss = 0;
        for (size_t u = 0; u < n; u++) {
            double r = t->u_start[u + 1] - t->u_start[u];
            double kappa_i = r >= 2 ? (double)n / (double)n2 * (pa_unit[u] - pe) / (1.0 - pe) : 0;
            double pe_i = pe;
            if (k != C_BP) {
                double s = 0;
                for (uint32_t i = t->ul_start[u]; i < t->ul_start[u + 1]; i++) {
                    double share = t->ul_count[i] / r;
                    double p = pi[t->ul_level[i]];
                    s += share * (k == C_FLEISS ? p : 1.0 - p);
                }
                pe_i = k == C_FLEISS ? s : scale * s;
            }
            double star = kappa_i - 2.0 * (1.0 - coef) * (pe_i - pe) / (1.0 - pe);
            ss += (star - coef) * (star - coef);
        }
        double se = sqrt(ss / ((double)n * (double)(n - 1)));
        /* Bounded as irrCAC bounds it: the upper end at 1, the lower not. */
        irr_set_ci(m, se, irr_t_quantile(0.5 + o->conf_level / 2, (double)(n - 1)), IRR_CI_UPPER_1);
    }
    st = IRR_OK;
cleanup:
    free(pi);
    free(pa_unit);
    return st;
}
