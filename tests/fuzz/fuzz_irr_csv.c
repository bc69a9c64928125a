/*
 * fuzz_irr_csv.c - libFuzzer target: arbitrary bytes through the CSV loader
 * and, when they load, through every statistic (with intervals and per-rater
 * rows), as `accord irr` would run them. Finds crashes, leaks and undefined
 * behaviour in code that reads untrusted files. Run with `make fuzz`.
 */
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
    opt.bootstrap = 20; /* enough to exercise the resampling paths, cheap per input */
    opt.by_rater = 1;
    if (irr_compute(table, &opt, &res) == IRR_OK)
        irr_result_release(&res);
cleanup:
    irr_table_free(table);
    free(buf);
    return 0;
}
