/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_irr.c - reliability statistics against published worked examples,
 * hand-derived cases and the edge cases where a statistic is undefined.
 * Each published case names its source; tolerances match the precision the
 * source prints.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "irr.h"
#include "irr_impl.h" /* distributions and the RNG are tested directly */

/* A units x raters matrix (row-major, NAN = not rated) into a new table.
 * Raters are named "r1", "r2", ...; units "u1", "u2", ... */
static irr_table *table_from_matrix(const double *m, int n_units, int n_raters,
                                    const double *levels, size_t n_levels)
{
    irr_table *t = irr_table_new();
    if (levels)
        CHECK(irr_table_set_levels(t, levels, n_levels) == IRR_OK);
    for (int u = 0; u < n_units; u++) {
        for (int r = 0; r < n_raters; r++) {
            double x = m[u * n_raters + r];
            if (isnan(x))
                continue;
            char unit[16], rater[16];
            snprintf(unit, sizeof unit, "u%d", u + 1);
            snprintf(rater, sizeof rater, "r%d", r + 1);
            CHECK(irr_table_add(t, unit, rater, x) == IRR_OK);
        }
    }
    return t;
}

static irr_metric metric(irr_table *t, irr_metric_id id, int ci)
{
    irr_options o;
    irr_options_init(&o);
    o.ci = ci;
    irr_metric m;
    memset(&m, 0, sizeof m);
    CHECK(irr_metric_compute(t, id, &o, &m) == IRR_OK);
    return m;
}

static double value(irr_table *t, irr_metric_id id)
{
    irr_metric m = metric(t, id, 0);
    if (!m.defined)
        fprintf(stderr, "  %s undefined: %s\n", irr_metric_name(id), m.reason);
    return m.value;
}

#define N NAN

/* Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section
 * C: 4 observers, 12 units, values 1-5, missing data. Published: nominal
 * .743, ordinal .815, interval .849. (Rows here are units, columns observers.) */
static const double kripp[12 * 4] = {
    1, 1, N, 1, /* */ 2, 2, 3, 2, /* */ 3, 3, 3, 3, /* */ 3, 3, 3, 3,
    2, 2, 2, 2, /* */ 1, 2, 3, 4, /* */ 4, 4, 4, 4, /* */ 1, 1, 2, 1,
    2, 2, 2, 2, /* */ N, 5, 5, 5, /* */ N, N, 1, 1, /* */ N, 3, N, N,
};

static void test_krippendorff_2011(void)
{
    irr_table *t = table_from_matrix(kripp, 12, 4, NULL, 0);
    CHECK_NEAR(value(t, IRR_ALPHA_NOMINAL), 0.743, 0.0005);
    CHECK_NEAR(value(t, IRR_ALPHA_ORDINAL), 0.815, 0.0005);
    CHECK_NEAR(value(t, IRR_ALPHA_INTERVAL), 0.849, 0.0005);
    /* Declaring unused levels does not change alpha (only pairable values
     * enter the coincidence marginals). */
    double levels[7] = {0, 1, 2, 3, 4, 5, 6};
    irr_table *t2 = table_from_matrix(kripp, 12, 4, levels, 7);
    CHECK_NEAR(value(t2, IRR_ALPHA_ORDINAL), value(t, IRR_ALPHA_ORDINAL), 1e-12);
    CHECK_NEAR(value(t2, IRR_ALPHA_NOMINAL), value(t, IRR_ALPHA_NOMINAL), 1e-12);
    /* Gwet (2014), Handbook, and his irrCAC package, whose example data
     * cac.raw4raters is this table: AC1 = 0.77544, SE 0.14295, 95% CI
     * (0.461, 1); Brennan-Prediger 0.77273, SE 0.14472. */
    irr_metric ac1 = metric(t, IRR_GWET_AC1, 1);
    CHECK_NEAR(ac1.value, 0.77544, 0.000005);
    CHECK_NEAR(ac1.se, 0.14295, 0.000005);
    CHECK_NEAR(ac1.ci_lo, 0.461, 0.0005);
    CHECK_NEAR(ac1.ci_hi, 1.0, 0);
    irr_metric bp = metric(t, IRR_BRENNAN_PREDIGER, 1);
    CHECK_NEAR(bp.value, 0.77273, 0.000005);
    CHECK_NEAR(bp.se, 0.14472, 0.000005);
    /* Fleiss' kappa needs equal numbers of ratings per unit. */
    irr_metric f = metric(t, IRR_FLEISS_KAPPA, 0);
    CHECK(!f.defined);
    CHECK_STR(f.reason, "units have unequal numbers of ratings");
    irr_metric c = metric(t, IRR_COHEN_KAPPA, 0);
    CHECK(!c.defined);
    CHECK_STR(c.reason, "needs exactly 2 raters, found 4");
    irr_table_free(t);
    irr_table_free(t2);
}

/* Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each (not the same
 * six), 5 diagnoses (1 depression, 2 personality disorder, 3 schizophrenia,
 * 4 neurosis, 5 other); published overall kappa .430. Data as in the R
 * package irr ("diagnoses") and statsmodels' tests. */
static const double fleiss71[30 * 6] = {
    4, 4, 4, 4, 4, 4, 2, 2, 2, 5, 5, 5, 2, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 2, 2, 2, 4, 4, 4,
    1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 5, 5, 1, 1, 3, 3, 3, 4, 1, 1, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5,
    1, 4, 4, 4, 4, 4, 1, 2, 4, 4, 4, 4, 2, 2, 2, 3, 3, 3, 1, 4, 4, 4, 4, 4, 2, 2, 4, 4, 4, 5,
    3, 3, 3, 3, 3, 5, 1, 1, 1, 4, 5, 5, 1, 1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 4, 1, 3, 3, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 2, 4, 4, 4, 4, 4, 2, 2, 4, 5, 5, 5, 1, 1, 4, 4, 4, 4, 1, 4, 4, 4, 4, 5,
    2, 2, 2, 2, 2, 4, 1, 1, 1, 1, 5, 5, 2, 2, 4, 4, 4, 4, 1, 3, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5,
};

static void test_fleiss_1971(void)
{
    irr_table *t = table_from_matrix(fleiss71, 30, 6, NULL, 0);
    CHECK_NEAR(value(t, IRR_FLEISS_KAPPA), 0.430, 0.0005);
    irr_metric m = metric(t, IRR_FLEISS_KAPPA, 1);
    CHECK(m.has_ci);
    CHECK(m.se > 0 && m.ci_lo < m.value && m.value < m.ci_hi);
    /* Every unit has 6 ratings, so the one-way ICC is defined. */
    CHECK(metric(t, IRR_ICC1_1, 0).defined);
    irr_table_free(t);
}

/* Fleiss' kappa, Wikipedia's worked example ("Fleiss' kappa", 10 subjects,
 * 14 raters, 5 categories, kappa = 0.210), also statsmodels' test table. */
static void test_fleiss_wikipedia(void)
{
    static const int counts[10][5] = {
        {0, 0, 0, 0, 14}, {0, 2, 6, 4, 2}, {0, 0, 3, 5, 6}, {0, 3, 9, 2, 0}, {2, 2, 8, 1, 1},
        {7, 7, 0, 0, 0},  {3, 2, 6, 3, 0}, {2, 5, 3, 2, 2}, {6, 5, 2, 1, 0}, {0, 2, 2, 3, 7},
    };
    irr_table *t = irr_table_new();
    for (int u = 0; u < 10; u++) {
        int r = 0;
        for (int c = 0; c < 5; c++) {
            for (int i = 0; i < counts[u][c]; i++) {
                char unit[16], rater[16];
                snprintf(unit, sizeof unit, "s%d", u);
                snprintf(rater, sizeof rater, "x%d", r++);
                CHECK(irr_table_add(t, unit, rater, c + 1) == IRR_OK);
            }
        }
    }
    CHECK_NEAR(value(t, IRR_FLEISS_KAPPA), 0.210, 0.0005);
    irr_table_free(t);
}

/* Shrout & Fleiss (1979), Table 2 data (6 targets x 4 judges) and Table 4:
 * ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71, ICC(1,4)=.44, ICC(2,4)=.62,
 * ICC(3,4)=.91. The F-based intervals are compared with R psych::ICC
 * (psych 2.2.9), which implements the same Shrout-Fleiss/McGraw-Wong bounds. */
static const double sf79[6 * 4] = {
    9, 2, 5, 8, 6, 1, 3, 2, 8, 4, 6, 8, 7, 1, 2, 6, 10, 5, 6, 9, 6, 2, 4, 7,
};

static void test_shrout_fleiss_1979(void)
{
    irr_table *t = table_from_matrix(sf79, 6, 4, NULL, 0);
    CHECK_NEAR(value(t, IRR_ICC1_1), 0.17, 0.005);
    CHECK_NEAR(value(t, IRR_ICC2_1), 0.29, 0.005);
    CHECK_NEAR(value(t, IRR_ICC3_1), 0.71, 0.005);
    CHECK_NEAR(value(t, IRR_ICC1_K), 0.44, 0.005);
    CHECK_NEAR(value(t, IRR_ICC2_K), 0.62, 0.005);
    CHECK_NEAR(value(t, IRR_ICC3_K), 0.91, 0.005);
    static const struct {
        irr_metric_id id;
        double v, lo, hi;
    } psych[6] = {
        {IRR_ICC1_1, 0.165741768405, -0.1329323248748, 0.722560062328},
        {IRR_ICC2_1, 0.289763779528, 0.0187865133747, 0.761084369649},
        {IRR_ICC3_1, 0.714840714841, 0.3424647650339, 0.945858259955},
        {IRR_ICC1_K, 0.442797133679, -0.8844421552381, 0.912415420341},
        {IRR_ICC2_K, 0.620050547599, 0.0711368153025, 0.927232040168},
        {IRR_ICC3_K, 0.909315542377, 0.6756747138163, 0.985891678169},
    };
    for (int i = 0; i < 6; i++) {
        irr_metric m = metric(t, psych[i].id, 1);
        CHECK_NEAR(m.value, psych[i].v, 1e-10);
        CHECK(m.has_ci);
        CHECK_STR(m.ci_method, "F");
        CHECK_NEAR(m.ci_lo, psych[i].lo, 1e-8);
        CHECK_NEAR(m.ci_hi, psych[i].hi, 1e-8);
    }
    irr_table_free(t);
}

/* Cohen's kappa with its asymptotic SE: the SAS PROC FREQ worked example
 * reproduced in statsmodels' tests (3x3 table [[0,4,1],[0,8,0],[0,1,5]]):
 * simple kappa .4842, ASE .1380, 95% CI .2137 .. .7547; weighted kappa
 * (Cicchetti-Allison = linear weights) .4701, ASE .1457, CI .1845 .. .7558. */
static void test_cohen_sas(void)
{
    static const int cells[3][3] = {{0, 4, 1}, {0, 8, 0}, {0, 1, 5}};
    double levels[3] = {1, 2, 3};
    irr_table *t = irr_table_new();
    CHECK(irr_table_set_levels(t, levels, 3) == IRR_OK);
    int unit = 0;
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            for (int c = 0; c < cells[i][j]; c++) {
                char name[16];
                snprintf(name, sizeof name, "p%d", unit++);
                CHECK(irr_table_add(t, name, "A", i + 1) == IRR_OK);
                CHECK(irr_table_add(t, name, "B", j + 1) == IRR_OK);
            }
        }
    }
    irr_metric k = metric(t, IRR_COHEN_KAPPA, 1);
    CHECK_NEAR(k.value, 0.4842, 0.00005);
    CHECK_NEAR(k.se, 0.1380, 0.00005);
    CHECK_NEAR(k.ci_lo, 0.2137, 0.00005);
    CHECK_NEAR(k.ci_hi, 0.7547, 0.00005);
    irr_metric w = metric(t, IRR_COHEN_KAPPA_LINEAR, 1);
    CHECK_NEAR(w.value, 0.4701, 0.00005);
    CHECK_NEAR(w.se, 0.1457, 0.00005);
    CHECK_NEAR(w.ci_lo, 0.1845, 0.00005);
    CHECK_NEAR(w.ci_hi, 0.7558, 0.00005);
    irr_table_free(t);
}

/* Hand-derived: two raters, four units, A = 1 2 3 4, B = 1 2 3 3.
 * p_o = 3/4; marginals A (1/4 each), B (1/4, 1/4, 1/2, 0); p_e = 1/4;
 * kappa = (3/4 - 1/4) / (3/4) = 2/3. Every pair is within one level.
 * Quadratic weights w = 1 - d^2/9: p_o = (3 + 8/9)/4 = 35/36; B's weighted
 * marginal per A level is 3/4, 11/12, 31/36, 7/12, so p_e = 7/9 and
 * kappa = (35/36 - 28/36) / (8/36) = 7/8.
 * Interval alpha: D_o has one pair (3,4) in both orders: 2 * 1 / 1 over
 * n = 8 values; D_e = 2 (8 * sum x^2 - (sum x)^2) / (8 * 7) with sum x = 19,
 * sum x^2 = 53: (2 * (424 - 361)) / 56 = 2.25; alpha = 1 - (2/8)/2.25 = 8/9. */
static void test_hand_two_raters(void)
{
    double m[8] = {1, 1, 2, 2, 3, 3, 4, 3};
    irr_table *t = table_from_matrix(m, 4, 2, NULL, 0);
    CHECK_NEAR(value(t, IRR_PERCENT_EXACT), 0.75, 1e-12);
    CHECK_NEAR(value(t, IRR_PERCENT_ADJACENT), 1.0, 1e-12);
    CHECK_NEAR(value(t, IRR_PERCENT_UNANIMOUS), 0.75, 1e-12);
    CHECK_NEAR(value(t, IRR_COHEN_KAPPA), 2.0 / 3.0, 1e-12);
    CHECK_NEAR(value(t, IRR_COHEN_KAPPA_QUADRATIC), 7.0 / 8.0, 1e-12);
    CHECK_NEAR(value(t, IRR_ALPHA_INTERVAL), 8.0 / 9.0, 1e-12);
    /* Brennan-Prediger: q = 4, p_e = 1/4, p_a = 3/4: (3/4 - 1/4) / (3/4). */
    CHECK_NEAR(value(t, IRR_BRENNAN_PREDIGER), 2.0 / 3.0, 1e-12);
    irr_table_free(t);
}

/* Hand-derived AC1 (Gwet 2008 notation), two raters, two categories, 100
 * units: both 1: 40, A1 B2: 9, A2 B1: 6, both 2: 45. p_a = .85;
 * pi_1 = (49/100 + 46/100) / 2 = .475; p_e = 2 * .475 * .525 = .49875;
 * AC1 = (.85 - .49875) / .50125. Cohen: p_e = .49 * .46 + .51 * .54. */
static void test_hand_ac1(void)
{
    irr_table *t = irr_table_new();
    int cells[2][2] = {{40, 9}, {6, 45}}, unit = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int c = 0; c < cells[i][j]; c++) {
                char name[16];
                snprintf(name, sizeof name, "v%d", unit++);
                irr_table_add(t, name, "A", i + 1);
                irr_table_add(t, name, "B", j + 1);
            }
    CHECK_NEAR(value(t, IRR_GWET_AC1), (0.85 - 0.49875) / 0.50125, 1e-12);
    double pe = 0.49 * 0.46 + 0.51 * 0.54;
    CHECK_NEAR(value(t, IRR_COHEN_KAPPA), (0.85 - pe) / (1 - pe), 1e-12);
    /* With two levels, linear and quadratic weights are the identity. */
    CHECK_NEAR(value(t, IRR_GWET_AC2_LINEAR), value(t, IRR_GWET_AC1), 1e-12);
    CHECK_NEAR(value(t, IRR_GWET_AC2_QUADRATIC), value(t, IRR_GWET_AC1), 1e-12);
    CHECK_NEAR(value(t, IRR_COHEN_KAPPA_LINEAR), value(t, IRR_COHEN_KAPPA), 1e-12);
    /* Nominal alpha with 2 raters and no missing data is Scott's pi corrected
     * for sample size: 1 - (2n - 1) (1 - p_a) / (2n - 1 - sum n_c (n_c - 1)/(2n))...
     * here checked through the identity alpha = 1 - (N-1) D_o / D_e directly:
     * N = 200, disagreeing ordered pairs 2 * 15 = 30, n_1 = 95, n_2 = 105. */
    CHECK_NEAR(value(t, IRR_ALPHA_NOMINAL), 1.0 - 199.0 * 30.0 / (2.0 * 95 * 105), 1e-12);
    irr_table_free(t);
}

static void test_perfect_agreement(void)
{
    double m[12] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4};
    irr_table *t = table_from_matrix(m, 4, 3, NULL, 0);
    irr_result r;
    CHECK(irr_compute(t, NULL, &r) == IRR_OK);
    for (int i = 0; i < IRR_METRIC_COUNT; i++) {
        if (i >= IRR_COHEN_KAPPA && i <= IRR_COHEN_KAPPA_QUADRATIC) {
            CHECK(!r.metrics[i].defined);
            continue;
        }
        CHECK(r.metrics[i].defined);
        CHECK_NEAR(r.metrics[i].value, 1.0, 1e-12);
    }
    irr_result_release(&r);
    irr_table_free(t);
}

static void test_no_variation(void)
{
    double m[6] = {3, 3, 3, 3, 3, 3};
    irr_table *t = table_from_matrix(m, 3, 2, NULL, 0);
    irr_result r;
    CHECK(irr_compute(t, NULL, &r) == IRR_OK);
    CHECK_NEAR(r.metrics[IRR_PERCENT_EXACT].value, 1.0, 0);
    const char *flat = "no variation: all ratings are the same level";
    irr_metric_id undefined[] = {IRR_ALPHA_NOMINAL, IRR_ALPHA_ORDINAL, IRR_ALPHA_INTERVAL,
                                 IRR_FLEISS_KAPPA,  IRR_GWET_AC1,      IRR_BRENNAN_PREDIGER,
                                 IRR_ICC1_1,        IRR_ICC3_K,        IRR_COHEN_KAPPA};
    for (size_t i = 0; i < sizeof undefined / sizeof undefined[0]; i++) {
        CHECK(!r.metrics[undefined[i]].defined);
        CHECK(isnan(r.metrics[undefined[i]].value));
        CHECK(strlen(r.metrics[undefined[i]].reason) > 0);
    }
    CHECK_STR(r.metrics[IRR_ALPHA_ORDINAL].reason, flat);
    CHECK_STR(r.metrics[IRR_ICC2_1].reason, flat);
    CHECK(r.n_levels == 1);
    irr_result_release(&r);

    /* On a declared 4-level scale, one level used: Gwet's AC1 stays defined
     * (p_e = 0, p_a = 1) and Brennan-Prediger too (p_e = 1/4), as in their
     * definitions; kappa and alpha are not. */
    double levels[4] = {1, 2, 3, 4};
    irr_table *t4 = table_from_matrix(m, 3, 2, levels, 4);
    CHECK_NEAR(value(t4, IRR_GWET_AC1), 1.0, 1e-12);
    CHECK_NEAR(value(t4, IRR_BRENNAN_PREDIGER), 1.0, 1e-12);
    CHECK(!metric(t4, IRR_COHEN_KAPPA_QUADRATIC, 0).defined);
    CHECK(!metric(t4, IRR_ALPHA_INTERVAL, 0).defined);
    irr_table_free(t4);
    irr_table_free(t);
}

/* One unit, three raters, values 1 2 3: alpha = 1 - (n-1)/(m-1) = 0 because
 * D_o and D_e are over the same three values; Fleiss: p_a = 0, p_e = 1/3,
 * kappa = -1/2; ICCs need two units. */
static void test_single_unit(void)
{
    double m[3] = {1, 2, 3};
    irr_table *t = table_from_matrix(m, 1, 3, NULL, 0);
    CHECK_NEAR(value(t, IRR_ALPHA_NOMINAL), 0.0, 1e-12);
    CHECK_NEAR(value(t, IRR_ALPHA_INTERVAL), 0.0, 1e-12);
    CHECK_NEAR(value(t, IRR_FLEISS_KAPPA), -0.5, 1e-12);
    irr_metric icc = metric(t, IRR_ICC1_1, 0);
    CHECK(!icc.defined);
    CHECK_STR(icc.reason, "needs at least 2 units");
    /* A CI needs more than one unit: the value stays, the interval is absent. */
    irr_metric a = metric(t, IRR_ALPHA_NOMINAL, 1);
    CHECK(a.defined && !a.has_ci && strlen(a.ci_reason) > 0);
    irr_table_free(t);
}

static void test_raters_never_share(void)
{
    irr_table *t = irr_table_new();
    irr_table_add(t, "u1", "A", 1);
    irr_table_add(t, "u2", "A", 2);
    irr_table_add(t, "u3", "B", 3);
    irr_table_add(t, "u4", "B", 4);
    irr_metric k = metric(t, IRR_COHEN_KAPPA_QUADRATIC, 1);
    CHECK(!k.defined);
    CHECK_STR(k.reason, "the two raters never rated the same unit");
    irr_metric a = metric(t, IRR_ALPHA_ORDINAL, 1);
    CHECK(!a.defined);
    CHECK_STR(a.reason, "no unit has 2 or more ratings");
    CHECK(!metric(t, IRR_PERCENT_EXACT, 0).defined);
    CHECK(!metric(t, IRR_GWET_AC1, 0).defined);
    irr_rater_stats *s = NULL;
    size_t n = 0;
    CHECK(irr_raters_compute(t, NULL, &s, &n) == IRR_OK);
    CHECK(n == 2);
    CHECK(s[0].n_compared == 0 && isnan(s[0].severity));
    free(s);
    irr_table_free(t);
}

/* A rater with one rating; severity against the others and a reference:
 * units u1 (A 2, B 3, C 4), u2 (A 1, B 1), u3 (B 2, C 2).
 * Against the others: A on u1: 2 - 3.5 = -1.5; on u2: 1 - 1 = 0; mean -0.75.
 * C has one unit with others... C rates u1 and u3: 4 - 2.5 = 1.5, 2 - 2 = 0.
 * Against B as reference: A: (2-3, 1-1) -> severity -0.5, exact 1/2,
 * adjacent 2/2; C: (4-3, 2-2) -> 0.5, exact 1/2, adjacent 1. */
static void test_rater_stats(void)
{
    irr_table *t = irr_table_new();
    irr_table_add(t, "u1", "A", 2);
    irr_table_add(t, "u1", "B", 3);
    irr_table_add(t, "u1", "C", 4);
    irr_table_add(t, "u2", "A", 1);
    irr_table_add(t, "u2", "B", 1);
    irr_table_add(t, "u3", "B", 2);
    irr_table_add(t, "u3", "C", 2);
    irr_table_add(t, "u4", "D", 4); /* a rater with one rating, unit alone */
    irr_rater_stats *s = NULL;
    size_t n = 0;
    CHECK(irr_raters_compute(t, NULL, &s, &n) == IRR_OK);
    CHECK(n == 4);
    CHECK_STR(s[0].rater, "A");
    CHECK(s[0].n_ratings == 2);
    CHECK_NEAR(s[0].mean, 1.5, 1e-12);
    CHECK_NEAR(s[0].severity, -0.75, 1e-12);
    /* A's pairs: u1 (2 vs 3, 2 vs 4): 0 exact, 1 adjacent; u2 (1 vs 1): exact. */
    CHECK_NEAR(s[0].exact, 1.0 / 3.0, 1e-12);
    CHECK_NEAR(s[0].adjacent, 2.0 / 3.0, 1e-12);
    CHECK_NEAR(s[2].severity, 0.75, 1e-12);
    CHECK(s[3].n_ratings == 1 && s[3].n_compared == 0 && isnan(s[3].exact));
    free(s);

    CHECK(irr_raters_compute(t, "B", &s, &n) == IRR_OK);
    CHECK_NEAR(s[0].severity, -0.5, 1e-12);
    CHECK_NEAR(s[0].exact, 0.5, 1e-12);
    CHECK_NEAR(s[0].adjacent, 1.0, 1e-12);
    CHECK_NEAR(s[2].severity, 0.5, 1e-12);
    CHECK_NEAR(s[2].exact, 0.5, 1e-12);
    CHECK(s[1].n_compared == 0); /* the reference itself */
    free(s);
    CHECK(irr_raters_compute(t, "nobody", &s, &n) == IRR_ERR_ARG);
    irr_table_free(t);
}

static void test_errors(void)
{
    irr_table *t = irr_table_new();
    CHECK(irr_table_add(t, "u1", "A", 1) == IRR_OK);
    CHECK(irr_table_add(t, "u2", "A", 2) == IRR_OK);
    CHECK(irr_table_add(t, "u1", "B", 2) == IRR_OK);
    CHECK(irr_table_add(t, "u2", "A", 3) == IRR_OK); /* index 3 repeats index 1 */
    CHECK(irr_table_add(t, "u1", "A", 3) == IRR_OK); /* index 4 repeats index 0 */
    CHECK(irr_table_add(t, "u1", "A", NAN) == IRR_ERR_SCORE);
    CHECK(irr_table_add(t, "u1", "A", INFINITY) == IRR_ERR_SCORE);
    double lv[2] = {1, 2};
    CHECK(irr_table_set_levels(t, lv, 2) == IRR_ERR_STATE);
    CHECK(irr_table_prepare(t) == IRR_ERR_DUPLICATE);
    size_t i = 0, first = 0;
    CHECK(irr_table_duplicate(t, &i, &first) == 1);
    CHECK(i == 3 && first == 1);
    irr_result r;
    CHECK(irr_compute(t, NULL, &r) == IRR_ERR_DUPLICATE);
    CHECK(r.levels == NULL);
    irr_table_free(t);

    t = irr_table_new();
    double bad[3] = {1, 3, 2};
    CHECK(irr_table_set_levels(t, bad, 3) == IRR_ERR_LEVELS);
    double good[3] = {1, 2, 3};
    CHECK(irr_table_set_levels(t, good, 3) == IRR_OK);
    CHECK(irr_table_add(t, "u", "r", 4) == IRR_ERR_SCORE);
    CHECK(irr_table_add(t, "u", "r", 2) == IRR_OK);
    CHECK(irr_table_n_ratings(t) == 1);
    irr_table_free(t);

    /* An empty table: nothing is an error, everything undefined. */
    t = irr_table_new();
    CHECK(irr_compute(t, NULL, &r) == IRR_OK);
    for (int k = 0; k < IRR_METRIC_COUNT; k++)
        CHECK(!r.metrics[k].defined);
    irr_result_release(&r);
    irr_table_free(t);
}

/* Names with embedded NULs and commas are distinct byte strings. */
static void test_names(void)
{
    irr_table *t = irr_table_new();
    CHECK(irr_table_addn(t, "a\0b", 3, "r", 1, 1) == IRR_OK);
    CHECK(irr_table_addn(t, "a\0c", 3, "r", 1, 1) == IRR_OK);
    CHECK(irr_table_addn(t, "a", 1, "r", 1, 1) == IRR_OK);
    CHECK(irr_table_n_units(t) == 3);
    CHECK(irr_table_prepare(t) == IRR_OK);
    /* Many units force several rehashes. */
    for (int u = 0; u < 5000; u++) {
        char name[24];
        snprintf(name, sizeof name, "unit-%d", u);
        CHECK(irr_table_add(t, name, "x", u % 3) == IRR_OK);
        CHECK(irr_table_add(t, name, "y", (u + (u % 7 == 0)) % 3) == IRR_OK);
    }
    CHECK(irr_table_n_units(t) == 5003);
    CHECK(irr_table_n_raters(t) == 3);
    CHECK(irr_table_prepare(t) == IRR_OK);
    irr_table_free(t);
}

static void test_distributions(void)
{
    /* Reference values from R 4.2.2: qf(.975, 5, 15), qt(.975, 10),
     * qnorm(.975); and SciPy 1.10 f.ppf(.975, 3.7, 1e6) (R's qf switches to
     * a chi-square approximation for df2 > 4e5 and is off at 1e-6 there). */
    CHECK_NEAR(irr_f_quantile(0.975, 5, 15), 3.57641534928, 1e-9);
    CHECK_NEAR(irr_t_quantile(0.975, 10), 2.22813885199, 1e-9);
    CHECK_NEAR(irr_t_quantile(0.025, 10), -2.22813885199, 1e-9);
    CHECK_NEAR(irr_f_quantile(0.975, 3.7, 1e6), 2.869757458419215, 1e-8);
    CHECK_NEAR(irr_normal_quantile(0.975), 1.95996398454, 1e-10);
    CHECK_NEAR(irr_beta_inc(2, 3, 0.4), 0.5248, 1e-12); /* closed form */
    irr_options o;
    irr_options_init(&o);
    CHECK_NEAR(o.conf_level, 0.95, 0);
    irr_rng rng;
    irr_rng_seed(&rng, 7);
    int seen[5] = {0};
    for (int i = 0; i < 1000; i++)
        seen[irr_rng_below(&rng, 5)]++;
    for (int i = 0; i < 5; i++)
        CHECK(seen[i] > 150 && seen[i] < 250);
}

/* Binomial variates (inversion below n p = 10, Hoermann's BTRD above)
 * against the exact probabilities: 200,000 draws per case, Pearson's
 * chi-square over the cells expecting 5 or more. The bound, df + 6 sd, fails
 * a correct sampler with probability ~1e-6 per case; these seeds pass by a
 * wide margin, and a sampler off by a few percent in any region fails. */
static void test_binomial(void)
{
    static const struct {
        uint64_t n;
        double p;
    } cases[] = {{5, 0.3}, {40, 0.26}, {200, 0.07}, {1000, 0.4}, {1000, 0.93}, {30, 0.999}};
    irr_rng rng;
    irr_rng_seed(&rng, 11);
    double *cell = malloc(1001 * sizeof *cell);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double n = (double)cases[c].n, p = cases[c].p;
        const int draws = 200000;
        for (int k = 0; k <= 1000; k++)
            cell[k] = 0;
        int in_range = 1;
        for (int i = 0; i < draws; i++) {
            uint64_t x = irr_rng_binomial(&rng, cases[c].n, p);
            if (x > cases[c].n)
                in_range = 0;
            else
                cell[x]++;
        }
        CHECK(in_range);
        double chi2 = 0;
        int df = -1;
        for (uint64_t k = 0; k <= cases[c].n; k++) {
            double lp = lgamma(n + 1) - lgamma((double)k + 1) - lgamma(n - (double)k + 1) +
                        (double)k * log(p) + (n - (double)k) * log1p(-p);
            double expect = draws * exp(lp);
            if (expect < 5)
                continue;
            chi2 += (cell[k] - expect) * (cell[k] - expect) / expect;
            df++;
        }
        if (!(chi2 < df + 6 * sqrt(2.0 * df) + 1))
            fprintf(stderr, "  binomial(%g, %g): chi2 %.1f on %d df\n", n, p, chi2, df);
        CHECK(chi2 < df + 6 * sqrt(2.0 * df) + 1);
    }
    free(cell);
    /* Large n: mean and variance (a 1e9-unit chain step). */
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 20000; i++) {
        double x = (double)irr_rng_binomial(&rng, 1000000000, 0.37);
        sum += x;
        sum2 += x * x;
    }
    double mean = sum / 20000, var = sum2 / 20000 - mean * mean, ev = 1e9 * 0.37 * 0.63;
    CHECK(fabs(mean - 0.37e9) < 6 * sqrt(ev / 20000));
    CHECK(fabs(var / ev - 1) < 0.06);
    CHECK(irr_rng_binomial(&rng, 0, 0.5) == 0 && irr_rng_binomial(&rng, 7, 1.0) == 7);
}

/* The bootstrap is reproducible for a seed and different across seeds. */
static void test_bootstrap(void)
{
    irr_table *t = table_from_matrix(kripp, 12, 4, NULL, 0);
    irr_options o;
    irr_options_init(&o);
    o.ci = 1;
    o.seed = 42;
    irr_metric a, b, c;
    CHECK(irr_metric_compute(t, IRR_ALPHA_ORDINAL, &o, &a) == IRR_OK);
    CHECK(irr_metric_compute(t, IRR_ALPHA_ORDINAL, &o, &b) == IRR_OK);
    o.seed = 43;
    CHECK(irr_metric_compute(t, IRR_ALPHA_ORDINAL, &o, &c) == IRR_OK);
    CHECK(a.has_ci && b.has_ci && c.has_ci);
    CHECK_STR(a.ci_method, "bootstrap");
    CHECK(a.ci_lo == b.ci_lo && a.ci_hi == b.ci_hi && a.se == b.se);
    CHECK(a.ci_lo != c.ci_lo || a.ci_hi != c.ci_hi);
    CHECK(a.ci_lo <= a.value && a.value <= a.ci_hi);
    CHECK(a.se > 0.01 && a.se < 0.5);
    irr_table_free(t);
}

/* irr_compute and irr_metric_compute agree, and ordinal alpha equals the
 * coincidence-matrix definition evaluated naively (q x q) on random data. */
static double naive_alpha_ordinal(const double *m, int n_units, int n_raters, int q)
{
    double *o = calloc((size_t)(q * q), sizeof *o);
    for (int u = 0; u < n_units; u++) {
        int mu = 0;
        for (int r = 0; r < n_raters; r++)
            mu += !isnan(m[u * n_raters + r]);
        if (mu < 2)
            continue;
        for (int i = 0; i < n_raters; i++)
            for (int j = 0; j < n_raters; j++) {
                double a = m[u * n_raters + i], b = m[u * n_raters + j];
                if (i != j && !isnan(a) && !isnan(b))
                    o[((int)a - 1) * q + (int)b - 1] += 1.0 / (mu - 1);
            }
    }
    double *nc = calloc((size_t)q, sizeof *nc), n = 0;
    for (int c = 0; c < q; c++) {
        for (int k = 0; k < q; k++)
            nc[c] += o[c * q + k];
        n += nc[c];
    }
    double dobs = 0, dexp = 0;
    for (int c = 0; c < q; c++)
        for (int k = 0; k < q; k++) {
            int lo = c < k ? c : k, hi = c < k ? k : c;
            double s = 0;
            for (int g = lo; g <= hi; g++)
                s += nc[g];
            double delta = (s - (nc[c] + nc[k]) / 2) * (s - (nc[c] + nc[k]) / 2);
            dobs += o[c * q + k] * delta;
            dexp += nc[c] * nc[k] * delta;
        }
    free(o);
    free(nc);
    return 1 - (n - 1) * dobs / dexp;
}

static void test_random_consistency(void)
{
    uint64_t s = 12345;
    for (int round = 0; round < 20; round++) {
        int n_units = 5 + round * 3, n_raters = 2 + round % 5, q = 2 + round % 6;
        double *m = malloc(sizeof(double) * (size_t)(n_units * n_raters));
        for (int i = 0; i < n_units * n_raters; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            int x = (int)((s >> 33) % (uint64_t)(q + 1));
            m[i] = x == q ? NAN : x + 1;
        }
        irr_table *t = table_from_matrix(m, n_units, n_raters, NULL, 0);
        irr_result r;
        CHECK(irr_compute(t, NULL, &r) == IRR_OK);
        for (int k = 0; k < IRR_METRIC_COUNT; k++) {
            irr_metric one = metric(t, (irr_metric_id)k, 0);
            CHECK(one.defined == r.metrics[k].defined);
            if (one.defined)
                CHECK(one.value == r.metrics[k].value);
        }
        if (r.metrics[IRR_ALPHA_ORDINAL].defined && r.n_levels == (size_t)q)
            CHECK_NEAR(r.metrics[IRR_ALPHA_ORDINAL].value,
                       naive_alpha_ordinal(m, n_units, n_raters, q), 1e-10);
        irr_result_release(&r);
        irr_table_free(t);
        free(m);
    }
}

/* ---- issue 8: intervals as the references print them ---- */

static irr_metric metric_with(irr_table *t, irr_metric_id id, const irr_options *o)
{
    irr_metric m;
    memset(&m, 0, sizeof m);
    CHECK(irr_metric_compute(t, id, o, &m) == IRR_OK);
    return m;
}

/* Every metric of a result: a defined value is finite, an interval holds its
 * value, an undefined metric says why. */
static void check_result_sane(const irr_result *r)
{
    for (int i = 0; i < IRR_METRIC_COUNT; i++) {
        const irr_metric *m = &r->metrics[i];
        if (!m->defined) {
            CHECK(isnan(m->value) && strlen(m->reason) > 0);
            continue;
        }
        CHECK(isfinite(m->value));
        if (m->has_ci) {
            CHECK(isfinite(m->ci_lo) && isfinite(m->ci_hi));
            CHECK(m->ci_lo <= m->value && m->value <= m->ci_hi);
            CHECK(!isinf(m->se));
        }
    }
}

/* Issue 8 item 1: two raters at opposite ends of a 7-level scale. Gwet's
 * irrCAC (R and Python, Gwet's own code) gives AC2 (quadratic) -1.37885 with
 * 95% CI [-2.36957, -0.38814]: it clips only the upper end, at 1. The linear
 * AC2 and AC1 bounds are Gwet's (2014, ch. 5) t(n-1) intervals computed by
 * the independent implementation in tests/irr/crosscheck.py. */
static void test_gwet_interval_below_minus_one(void)
{
    double m[8] = {1, 7, 7, 2, 3, 5, 6, 1};
    double levels[7] = {1, 2, 3, 4, 5, 6, 7};
    irr_table *t = table_from_matrix(m, 4, 2, levels, 7);
    irr_metric q = metric(t, IRR_GWET_AC2_QUADRATIC, 1);
    CHECK_NEAR(q.value, -1.37885, 0.000005);
    CHECK(q.has_ci);
    CHECK_NEAR(q.ci_lo, -2.36957, 0.000005);
    CHECK_NEAR(q.ci_hi, -0.38814, 0.000005);
    CHECK(q.ci_lo <= q.value && q.value <= q.ci_hi);
    irr_metric l = metric(t, IRR_GWET_AC2_LINEAR, 1);
    CHECK_NEAR(l.value, -0.8151260504201683, 1e-12);
    CHECK_NEAR(l.se, 0.20394665922596902, 1e-12);
    CHECK_NEAR(l.ci_lo, -1.4641753425488082, 1e-9);
    CHECK_NEAR(l.ci_hi, -0.16607675829152835, 1e-9);
    irr_metric a = metric(t, IRR_GWET_AC1, 1);
    CHECK_NEAR(a.ci_lo, -0.19283667101408342, 1e-9);
    CHECK_NEAR(a.ci_hi, -0.12041634103410932, 1e-9);
    irr_table_free(t);
}

/* Issue 8 item 2: Cohen's kappa 2/3 on six units; statsmodels 0.13.5
 * (cohens_kappa on [[3,0],[1,2]]) prints the Wald interval whole:
 * SE 0.28688765527462345, [0.10437719471926221, 1.2289561386140713], as SAS
 * PROC FREQ does; the upper end is past 1 and stays there. */
static void test_cohen_wald_unbounded(void)
{
    double m[12] = {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 1};
    double levels[2] = {1, 2};
    irr_table *t = table_from_matrix(m, 6, 2, levels, 2);
    irr_metric_id ids[3] = {IRR_COHEN_KAPPA, IRR_COHEN_KAPPA_LINEAR, IRR_COHEN_KAPPA_QUADRATIC};
    for (int i = 0; i < 3; i++) {
        irr_metric k = metric(t, ids[i], 1);
        CHECK_NEAR(k.value, 2.0 / 3.0, 1e-12);
        CHECK_NEAR(k.se, 0.28688765527462345, 1e-12);
        CHECK_NEAR(k.ci_lo, 0.10437719471926221, 1e-9);
        CHECK_NEAR(k.ci_hi, 1.2289561386140713, 1e-9);
    }
    irr_table_free(t);
}

/* Issue 8 item 3: interval alpha does not depend on the unit of the scores.
 * Units (a, b): (1, 1), (2, 3), (3, 3), the data in units of 1e-7,
 * where every peer gives 0.827586. By hand (Krippendorff 2011): n = 6;
 * D_o = 2/6 (one disagreeing pair, both orders); sum x = 13, sum x^2 = 33,
 * so D_e = 2 (6 * 33 - 13^2) / (6 * 5) = 29/15; alpha = 1 - (1/3) / (29/15)
 * = 24/29. Shifted by 1e15 or scaled by 1e-7, 1e200 or 1e-300, every metric
 * (alpha, ICCs, ...) stays the same to rounding. */
static void test_scale_free(void)
{
    double base[6] = {1, 1, 2, 3, 3, 3};
    static const struct {
        double mul, add;
    } forms[] = {{1, 0}, {1e-7, 0}, {1, 1e15}, {1e200, 0}, {1e-300, 0}, {3, -7}};
    irr_result ref;
    irr_table *t0 = table_from_matrix(base, 3, 2, NULL, 0);
    CHECK(irr_compute(t0, NULL, &ref) == IRR_OK);
    CHECK_NEAR(ref.metrics[IRR_ALPHA_INTERVAL].value, 24.0 / 29.0, 1e-12);
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        double m[6];
        for (int i = 0; i < 6; i++)
            m[i] = base[i] * forms[f].mul + forms[f].add;
        irr_table *t = table_from_matrix(m, 3, 2, NULL, 0);
        irr_result r;
        CHECK(irr_compute(t, NULL, &r) == IRR_OK);
        check_result_sane(&r);
        for (int i = 0; i < IRR_METRIC_COUNT; i++) {
            if (r.metrics[i].defined != ref.metrics[i].defined)
                fprintf(stderr, "  form %zu: %s: %s\n", f, irr_metric_name((irr_metric_id)i),
                        r.metrics[i].reason);
            CHECK(r.metrics[i].defined == ref.metrics[i].defined);
            if (r.metrics[i].defined && ref.metrics[i].defined)
                CHECK_NEAR(r.metrics[i].value, ref.metrics[i].value, 1e-12);
        }
        irr_result_release(&r);
        irr_table_free(t);
    }
    irr_result_release(&ref);
    irr_table_free(t0);
}

/* Issue 8 item 4: scores of 1e200 (and the largest doubles) never produce a
 * NaN or an infinity: a metric is a finite number or undefined with a
 * reason; per-rater means and severities stay finite where they can. */
static void test_huge_scores(void)
{
    double m[8] = {1e200, 1, 2, 3, 3, -1e200, 4, 4};
    irr_table *t = table_from_matrix(m, 4, 2, NULL, 0);
    irr_options o;
    irr_options_init(&o);
    o.ci = 1;
    o.by_rater = 1;
    irr_result r;
    CHECK(irr_compute(t, &o, &r) == IRR_OK);
    check_result_sane(&r);
    CHECK(r.metrics[IRR_ALPHA_INTERVAL].defined);
    CHECK(isfinite(r.raters[0].mean) && isfinite(r.raters[0].severity));
    irr_result_release(&r);
    irr_table_free(t);

    double extreme[6] = {DBL_MAX, -DBL_MAX, 0, DBL_MAX, -DBL_MAX, -DBL_MAX};
    t = table_from_matrix(extreme, 3, 2, NULL, 0);
    CHECK(irr_compute(t, &o, &r) == IRR_OK);
    check_result_sane(&r);
    CHECK(r.metrics[IRR_ALPHA_INTERVAL].defined && r.metrics[IRR_ICC1_1].defined);
    irr_result_release(&r);
    irr_table_free(t);

    /* A number beyond a double is refused with its line, not turned into inf. */
    char csv[] = "unit,rater,score\nu1,a,1\nu1,b,1e400\n";
    irr_load_error err;
    t = irr_table_new();
    CHECK(irr_load_csv(t, csv, strlen(csv), &err) == IRR_ERR_INPUT);
    CHECK(err.line == 3);
    CHECK(strstr(err.message, "beyond the range") != NULL);
    irr_table_free(t);
}

/* Issue 8 item 5: ICC intervals at zero residual variance, R psych 2.2.9
 * ICC(x, lmer = FALSE). Units 1..4, raters +0, +1, +2: ICC(3) = 1 with
 * [1, 1]; ICC(1,1) 0.571428571428572 [-0.0262736431603176,
 * 0.959839052514089]; ICC(2,1) 0.625 [0.0408174981787242, 0.963951203836056];
 * ICC(1,k) 0.8 [-0.0831924679120475, 0.986244734507976]; ICC(2,k)
 * 0.833333333333333 [0.1132105515710456, 0.987687842303253]. Perfect
 * agreement: all six 1 with [1, 1]. */
static void test_icc_zero_residual(void)
{
    double m[12];
    for (int u = 0; u < 4; u++)
        for (int r = 0; r < 3; r++)
            m[u * 3 + r] = u + 1 + r;
    irr_table *t = table_from_matrix(m, 4, 3, NULL, 0);
    static const struct {
        irr_metric_id id;
        double v, lo, hi;
    } psych[6] = {
        {IRR_ICC1_1, 0.571428571428572, -0.0262736431603176, 0.959839052514089},
        {IRR_ICC2_1, 0.625, 0.0408174981787242, 0.963951203836056},
        {IRR_ICC3_1, 1, 1, 1},
        {IRR_ICC1_K, 0.8, -0.0831924679120475, 0.986244734507976},
        {IRR_ICC2_K, 0.833333333333333, 0.1132105515710456, 0.987687842303253},
        {IRR_ICC3_K, 1, 1, 1},
    };
    for (int i = 0; i < 6; i++) {
        irr_metric x = metric(t, psych[i].id, 1);
        CHECK_NEAR(x.value, psych[i].v, 1e-12);
        CHECK(x.has_ci);
        CHECK_NEAR(x.ci_lo, psych[i].lo, 1e-10);
        CHECK_NEAR(x.ci_hi, psych[i].hi, 1e-10);
    }
    irr_table_free(t);
    for (int u = 0; u < 4; u++)
        for (int r = 0; r < 3; r++)
            m[u * 3 + r] = u + 1;
    t = table_from_matrix(m, 4, 3, NULL, 0);
    for (int id = IRR_ICC1_1; id <= IRR_ICC3_K; id++) {
        irr_metric x = metric(t, (irr_metric_id)id, 1);
        CHECK_NEAR(x.value, 1, 1e-12);
        CHECK(x.has_ci && x.ci_lo == 1 && x.ci_hi == 1);
    }
    irr_table_free(t);
    /* Every unit the same, raters apart: ICC(3) is 0/0, and says so. */
    double flat_units[6] = {1, 2, 1, 2, 1, 2};
    t = table_from_matrix(flat_units, 3, 2, NULL, 0);
    irr_metric x = metric(t, IRR_ICC3_1, 1);
    CHECK(!x.defined);
    CHECK_STR(x.reason, "no variation between units and no residual variation (0/0)");
    irr_table_free(t);
}

/* Issue 8 item 6: a single unit has no bootstrap interval for any metric;
 * replicates outside [IRR_BOOTSTRAP_MIN, MAX] are refused. */
static void test_bootstrap_limits(void)
{
    double m[3] = {1, 2, 2};
    irr_table *t = table_from_matrix(m, 1, 3, NULL, 0);
    irr_result r;
    irr_options o;
    irr_options_init(&o);
    o.ci = 1;
    CHECK(irr_compute(t, &o, &r) == IRR_OK);
    irr_metric_id boot[] = {IRR_PERCENT_EXACT, IRR_PERCENT_ADJACENT, IRR_PERCENT_UNANIMOUS,
                            IRR_ALPHA_NOMINAL, IRR_ALPHA_ORDINAL,    IRR_ALPHA_INTERVAL};
    for (size_t i = 0; i < sizeof boot / sizeof boot[0]; i++) {
        CHECK(r.metrics[boot[i]].defined && !r.metrics[boot[i]].has_ci);
        CHECK_STR(r.metrics[boot[i]].ci_reason,
                  "bootstrap needs at least 2 units with 2 or more ratings");
    }
    irr_result_release(&r);
    double work = -1;
    CHECK(irr_bootstrap_work(t, &o, &work) == IRR_OK && work == 0); /* nothing to resample */
    o.bootstrap = IRR_BOOTSTRAP_MIN - 1;
    CHECK(irr_compute(t, &o, &r) == IRR_ERR_ARG);
    o.bootstrap = IRR_BOOTSTRAP_MAX + 1;
    CHECK(irr_compute(t, &o, &r) == IRR_ERR_ARG);
    irr_table_free(t);
}

/* Issue 8 item 6: a valid number longer than 63 characters is a number. */
static void test_long_number(void)
{
    char csv[] = "unit,rater,score\n"
                 "u1,a,1.000000000000000000000000000000000000000000000000000000000000000000000\n"
                 "u1,b,0000000000000000000000000000000000000000000000000000000000000000000002\n";
    irr_load_error err;
    irr_table *t = irr_table_new();
    CHECK(irr_load_csv(t, csv, strlen(csv), &err) == IRR_OK);
    size_t n = 0;
    const double *lv = irr_table_levels(t, &n);
    CHECK(n == 2 && lv[0] == 1 && lv[1] == 2);
    irr_table_free(t);
}

/* Issue 8 item 7: one draw feeds every bootstrapped metric, and the result
 * is the same for any number of threads (each replicate has its own stream
 * from (seed, b)); irr_metric_compute gives what irr_compute gives. */
static void test_bootstrap_threads(void)
{
    irr_table *t = table_from_matrix(kripp, 12, 4, NULL, 0);
    irr_options o;
    irr_options_init(&o);
    o.ci = 1;
    o.seed = 99;
    irr_result one, many;
    double work = 0; /* 11 units rated twice, too few to group: 11 draws a replicate */
    CHECK(irr_bootstrap_work(t, &o, &work) == IRR_OK && work == 1000.0 * 11);
    CHECK(irr_compute(t, &o, &one) == IRR_OK);
    for (unsigned threads = 2; threads <= 5; threads++) {
        o.threads = threads;
        CHECK(irr_compute(t, &o, &many) == IRR_OK);
        for (int i = 0; i < IRR_METRIC_COUNT; i++) {
            const irr_metric *a = &one.metrics[i], *b = &many.metrics[i];
            CHECK(a->has_ci == b->has_ci);
            if (a->has_ci && b->has_ci)
                CHECK(a->ci_lo == b->ci_lo && a->ci_hi == b->ci_hi &&
                      (a->se == b->se || (isnan(a->se) && isnan(b->se))));
        }
        irr_metric single = metric_with(t, IRR_ALPHA_ORDINAL, &o);
        CHECK(single.ci_lo == one.metrics[IRR_ALPHA_ORDINAL].ci_lo &&
              single.ci_hi == one.metrics[IRR_ALPHA_ORDINAL].ci_hi);
        irr_result_release(&many);
    }
    check_result_sane(&one);
    irr_result_release(&one);
    irr_table_free(t);
}

/* Many units, few ratings patterns: each replicate draws its pattern counts
 * as a chain of binomials. Same result for any thread count, and the bootstrap SE of
 * percent_exact (a mean of per-unit shares) is the plug-in SE of a mean,
 * sd / sqrt(n), to within its Monte Carlo error (about 1/sqrt(2 * 1000),
 * 2%; allowed 10%, which each seed below meets with a wide margin). */
static void test_bootstrap_patterns(void)
{
    enum { UNITS = 2000 };
    irr_table *t = irr_table_new();
    uint64_t s = 2024;
    double sum = 0, sum2 = 0;
    for (int u = 0; u < UNITS; u++) {
        char unit[16];
        snprintf(unit, sizeof unit, "u%d", u);
        int level[3], same = 0;
        for (int r = 0; r < 3; r++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            level[r] = 1 + (int)((s >> 33) % 3 == 0);
            char rater[16];
            snprintf(rater, sizeof rater, "r%d", r);
            CHECK(irr_table_add(t, unit, rater, level[r]) == IRR_OK);
        }
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                same += i != j && level[i] == level[j];
        sum += same / 6.0;
        sum2 += (same / 6.0) * (same / 6.0);
    }
    double mean = sum / UNITS, sd = sqrt((sum2 - UNITS * mean * mean) / (UNITS - 1));
    double want = sd / sqrt(UNITS);
    /* 4 patterns: drawn as binomials, costed at 32 draws each. */
    irr_options w;
    irr_options_init(&w);
    w.ci = 1;
    double work = 0;
    CHECK(irr_bootstrap_work(t, &w, &work) == IRR_OK && work == 1000.0 * 4 * 32);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        irr_options o;
        irr_options_init(&o);
        o.ci = 1;
        o.seed = seed;
        irr_metric a = metric_with(t, IRR_PERCENT_EXACT, &o);
        CHECK_NEAR(a.value, mean, 1e-12);
        CHECK(a.has_ci && fabs(a.se / want - 1) < 0.10);
        o.threads = 3;
        irr_metric b = metric_with(t, IRR_PERCENT_EXACT, &o);
        CHECK(a.se == b.se && a.ci_lo == b.ci_lo && a.ci_hi == b.ci_hi);
    }
    irr_table_free(t);
}

int main(void)
{
    RUN(test_krippendorff_2011);
    RUN(test_fleiss_1971);
    RUN(test_fleiss_wikipedia);
    RUN(test_shrout_fleiss_1979);
    RUN(test_cohen_sas);
    RUN(test_hand_two_raters);
    RUN(test_hand_ac1);
    RUN(test_perfect_agreement);
    RUN(test_no_variation);
    RUN(test_single_unit);
    RUN(test_raters_never_share);
    RUN(test_rater_stats);
    RUN(test_errors);
    RUN(test_names);
    RUN(test_distributions);
    RUN(test_binomial);
    RUN(test_bootstrap);
    RUN(test_random_consistency);
    RUN(test_gwet_interval_below_minus_one);
    RUN(test_cohen_wald_unbounded);
    RUN(test_scale_free);
    RUN(test_huge_scores);
    RUN(test_icc_zero_residual);
    RUN(test_bootstrap_limits);
    RUN(test_long_number);
    RUN(test_bootstrap_threads);
    RUN(test_bootstrap_patterns);
    return check_summary("irr");
}
