/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_irr_csv.c - libFuzzer target: arbitrary bytes through the CSV loader
 * and, when they load, through every statistic (with intervals and per-rater
 * rows), as `accord irr` would run them. Finds crashes, leaks and undefined
 * behaviour in code that reads untrusted files. Run with `make fuzz`.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "irr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    irr_table *table = irr_table_new();
    irr_load_error err;
    irr_options opt;
    irr_result res;

    if (!buf || !table)
        goto cleanup;
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (irr_load_csv(table, buf, size, &err) != IRR_OK)
        goto cleanup;
    irr_options_init(&opt);
    opt.ci = 1;
    opt.bootstrap = IRR_BOOTSTRAP_MIN; /* the fewest allowed: every resampling path, cheaply */
    opt.threads = 2;                   /* the threaded path too */
    opt.by_rater = 1;
    if (irr_compute(table, &opt, &res) == IRR_OK) {
        /* The contract (issue 8): finite numbers only, each value inside its
         * interval, a reason for every undefined metric. */
        for (int i = 0; i < IRR_METRIC_COUNT; i++) {
            const irr_metric *m = &res.metrics[i];
            if (!m->defined) {
                if (!m->reason[0])
                    abort();
                continue;
            }
            if (!isfinite(m->value))
                abort();
            if (m->has_ci && (!isfinite(m->ci_lo) || !isfinite(m->ci_hi) ||
                              !(m->ci_lo <= m->value && m->value <= m->ci_hi)))
                abort();
        }
        irr_result_release(&res);
    }
cleanup:
    irr_table_free(table);
    free(buf);
    return 0;
}
