/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_bench.c - timings of the reliability statistics on a million ratings.
 *
 * Generates (deterministically) 100,000 units x 10 raters, levels 1-4, 5% of
 * ratings missing, as CSV text; then times parsing (irr_load_csv, which also
 * prepares the table), every metric on its own, all metrics together, ordinal
 * alpha alone from memory, and a 1,000-replicate bootstrap of ordinal alpha
 * on 10,000 units. A second, complete data set (no missing ratings) times the
 * metrics that need one: Fleiss' kappa, the ICCs (on 500 units, the size
 * the R reference can handle) and Cohen's kappa (raters r0 and r1).
 *
 * usage: irr_bench [OUTDIR]   with OUTDIR, the data sets are written there
 * (full.csv, complete.csv) and the timings to OUTDIR/c_times.txt, one
 * "key milliseconds" per line, for tests/bench/irr.sh to compare.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "irr.h"

#define N_UNITS  100000
#define N_RATERS 10

typedef struct {
    char *buf;
    size_t len, cap;
} text;

static void text_add(text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        if (!t->buf) {
            fprintf(stderr, "irr_bench: out of memory\n");
            exit(1);
        }
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Units x raters CSV: each unit has a true level, raters add noise. */
static text make_csv(int n_units, int n_raters, int missing_percent)
{
    text t = {0};
    text_add(&t, "unit,rater,score\n", 17);
    char line[64];
    for (int u = 0; u < n_units; u++) {
        int truth = (int)(next_random() % 4);
        for (int r = 0; r < n_raters; r++) {
            uint64_t x = next_random();
            if ((int)(x % 100) < missing_percent)
                continue;
            int noise = (int)((x >> 8) % 10);
            int level = truth + (noise == 0 ? -1 : noise == 1 ? 1 : 0);
            level = level < 0 ? 0 : level > 3 ? 3 : level;
            int n = snprintf(line, sizeof line, "u%d,r%d,%d\n", u, r, level + 1);
            text_add(&t, line, (size_t)n);
        }
    }
    return t;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static FILE *times_out;

static void report(const char *key, const char *what, double ms)
{
    printf("  %-44s %10.2f ms\n", what, ms);
    if (times_out)
        fprintf(times_out, "%s %.4f\n", key, ms);
}

static irr_table *load(const text *csv, double *ms)
{
    char *copy = malloc(csv->len + 1);
    memcpy(copy, csv->buf, csv->len);
    irr_table *t = irr_table_new();
    irr_load_error err;
    double t0 = now_ms();
    irr_status st = irr_load_csv(t, copy, csv->len, &err);
    *ms = now_ms() - t0;
    free(copy);
    if (st != IRR_OK) {
        fprintf(stderr, "irr_bench: line %zu: %s\n", err.line, err.message);
        exit(1);
    }
    return t;
}

/* Best of a few runs: the machine is shared, the minimum is the cost. */
static double time_metric(irr_table *t, irr_metric_id id, const irr_options *o, int runs)
{
    double best = 1e300;
    for (int i = 0; i < runs; i++) {
        irr_metric m;
        double t0 = now_ms();
        irr_metric_compute(t, id, o, &m);
        double ms = now_ms() - t0;
        best = ms < best ? ms : best;
    }
    return best;
}

static void write_file(const char *dir, const char *name, const text *t)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(t->buf, 1, t->len, f) != t->len || fclose(f) != 0) {
        fprintf(stderr, "irr_bench: cannot write %s\n", path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : NULL;
    if (dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/c_times.txt", dir);
        times_out = fopen(path, "w");
    }
    irr_options o;
    irr_options_init(&o);

    text full = make_csv(N_UNITS, N_RATERS, 5);
    text complete = make_csv(N_UNITS, N_RATERS, 0);
    text boot = make_csv(10000, N_RATERS, 5);
    if (dir) {
        write_file(dir, "full.csv", &full);
        write_file(dir, "complete.csv", &complete);
        write_file(dir, "boot.csv", &boot);
    }

    /* Best of three loads: the machine is shared, the minimum is the cost. */
    double parse_ms = 1e300;
    irr_table *t = NULL;
    for (int i = 0; i < 3; i++) {
        double ms1;
        irr_table_free(t);
        t = load(&full, &ms1);
        parse_ms = ms1 < parse_ms ? ms1 : parse_ms;
    }
    printf("accord irr on %zu ratings (%zu units x %zu raters, levels 1-4, 5%% missing), "
           "%.1f MB of CSV\n",
           irr_table_n_ratings(t), irr_table_n_units(t), irr_table_n_raters(t),
           (double)full.len / 1e6);
    report("parse", "parse + prepare (irr_load_csv)", parse_ms);
    for (int id = 0; id < IRR_METRIC_COUNT; id++) {
        char key[64];
        snprintf(key, sizeof key, "metric_%s", irr_metric_name((irr_metric_id)id));
        report(key, irr_metric_name((irr_metric_id)id), time_metric(t, (irr_metric_id)id, &o, 3));
    }
    irr_table_free(t);

    /* The acceptance number: from bytes to every metric, in one go. */
    double all_ms, compute_ms = 1e300;
    t = load(&full, &all_ms);
    for (int i = 0; i < 3; i++) {
        irr_result r;
        irr_table_free(t);
        t = load(&full, &all_ms); /* a fresh table: nothing cached */
        double t0 = now_ms();
        irr_compute(t, &o, &r);
        double ms1 = now_ms() - t0;
        compute_ms = ms1 < compute_ms ? ms1 : compute_ms;
        irr_result_release(&r);
    }
    report("all_metrics", "all 20 metrics (irr_compute)", compute_ms);
    report("total", "parse + all metrics (target < 400)", parse_ms + compute_ms);
    report("alpha_ordinal_mem", "ordinal alpha from memory (target < 10)",
           time_metric(t, IRR_ALPHA_ORDINAL, &o, 5));
    irr_table_free(t);

    double ms;
    t = load(&boot, &ms);
    irr_options ob = o;
    ob.ci = 1;
    ob.bootstrap = 1000;
    report("boot_alpha", "ordinal alpha + 1000-replicate bootstrap, 10k units",
           time_metric(t, IRR_ALPHA_ORDINAL, &ob, 1));
    irr_table_free(t);

    printf("complete data (%d units x %d raters, no missing):\n", N_UNITS, N_RATERS);
    t = load(&complete, &ms);
    report("fleiss_complete", "fleiss_kappa", time_metric(t, IRR_FLEISS_KAPPA, &o, 3));
    report("icc_complete", "six ICCs (one pass of sums of squares)",
           time_metric(t, IRR_ICC2_1, &o, 3));
    irr_table_free(t);

    /* ICC on the first 500 units and Cohen on raters r0, r1: the sizes the
     * references below are asked to handle. */
    text small = {0}, pair = {0};
    text_add(&small, "unit,rater,score\n", 17);
    text_add(&pair, "unit,rater,score\n", 17);
    const char *p = complete.buf + 17, *end = complete.buf + complete.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p) + 1;
        int unit = atoi(p + 1);
        const char *rater = strchr(p, ',') + 1;
        if (unit < 500)
            text_add(&small, p, n);
        if (rater[1] == '0' || rater[1] == '1')
            if (rater[2] == ',')
                text_add(&pair, p, n);
        p += n;
    }
    t = load(&small, &ms);
    report("icc_500", "six ICCs, 500 units x 10 raters", time_metric(t, IRR_ICC2_1, &o, 3));
    irr_table_free(t);
    t = load(&pair, &ms);
    report("cohen_pair", "cohen_kappa_quadratic, 100k units x 2 raters",
           time_metric(t, IRR_COHEN_KAPPA_QUADRATIC, &o, 3));
    irr_table_free(t);

    free(full.buf);
    free(complete.buf);
    free(boot.buf);
    free(small.buf);
    free(pair.buf);
    if (times_out)
        fclose(times_out);
    return 0;
}
