/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reliability.c - reliability_pairs -> quadratic kappa + CI -> routing_update.
 *
 * The computation is O(pairs) (at most a few hundred pairs × criteria), so it
 * runs on the loop between the two queries without blocking it noticeably.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "irr.h"
#include "log.h"
#include "reliability.h"

struct recompute {
    struct worker *w;
    char credential[37];
    char pairs[16], kappa[40], lo[40], hi[40];
    const char *params[5];
};

int reliability_estimate(const char *pairs_json, int *pairs, int *defined, double *kappa,
                         double *lo, double *hi, char *why, size_t why_len)
{
    json_t *doc = json_loads(pairs_json, 0, NULL);
    json_t *rows = json_object_get(doc, "rows"), *levels = json_object_get(doc, "levels");
    irr_table *t = NULL;
    irr_options opt;
    irr_metric m;
    double *scale = NULL;
    size_t n_levels, i;
    int rc = -1;

    *defined = 0;
    if (!json_is_array(rows) || !json_is_array(levels))
        goto cleanup;
    t = irr_table_new();
    n_levels = json_array_size(levels);
    scale = calloc(n_levels ? n_levels : 1, sizeof *scale);
    if (!t || !scale)
        goto cleanup;
    for (i = 0; i < n_levels; i++)
        scale[i] = json_number_value(json_array_get(levels, i));
    if (n_levels && irr_table_set_levels(t, scale, n_levels) != IRR_OK)
        goto cleanup;
    for (i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        const char *unit = json_string_value(json_array_get(row, 0));
        const char *rater = json_string_value(json_array_get(row, 1));
        json_t *score = json_array_get(row, 2);
        if (!unit || !rater || !json_is_number(score) ||
            irr_table_add(t, unit, rater, json_number_value(score)) != IRR_OK)
            goto cleanup;
    }
    *pairs = json_is_integer(json_object_get(doc, "pairs"))
                 ? (int)json_integer_value(json_object_get(doc, "pairs"))
                 : (int)(json_array_size(rows) / 2);
    irr_options_init(&opt);
    opt.ci = 1;
    if (irr_metric_compute(t, IRR_COHEN_KAPPA_QUADRATIC, &opt, &m) != IRR_OK)
        goto cleanup;
    if (m.defined && m.has_ci) {
        *defined = 1;
        *kappa = m.value;
        *lo = m.ci_lo;
        *hi = m.ci_hi;
    } else {
        snprintf(why, why_len, "%s", m.defined ? m.ci_reason : m.reason);
    }
    rc = 0;
cleanup:
    irr_table_free(t);
    free(scale);
    json_decref(doc);
    return rc;
}

static void on_routing_updated(const struct db_result *res, void *arg)
{
    struct recompute *rc = arg;
    if (res->status != DB_OK)
        log_warn("reliability %s: routing_update failed: %s", rc->credential,
                 res->message ? res->message : "database unavailable");
    else
        log_debug("reliability %s: %s", rc->credential, res->value ? res->value : "");
    free(rc);
}

static void on_pairs(const struct db_result *res, void *arg)
{
    struct recompute *rc = arg;
    int pairs = 0, defined = 0;
    double kappa = 0, lo = 0, hi = 0;
    char why[128] = "";
    enum db_status st;

    if (res->status != DB_OK || !res->value ||
        reliability_estimate(res->value, &pairs, &defined, &kappa, &lo, &hi, why, sizeof why) < 0) {
        log_warn("reliability %s: cannot read the pairs: %s", rc->credential,
                 res->message ? res->message : "unexpected answer");
        free(rc);
        return;
    }
    snprintf(rc->pairs, sizeof rc->pairs, "%d", pairs);
    rc->params[0] = rc->credential;
    rc->params[1] = rc->pairs;
    rc->params[2] = rc->params[3] = rc->params[4] = NULL; /* undefined: SQL NULL */
    if (defined) {
        snprintf(rc->kappa, sizeof rc->kappa, "%.17g", kappa);
        snprintf(rc->lo, sizeof rc->lo, "%.17g", lo);
        snprintf(rc->hi, sizeof rc->hi, "%.17g", hi);
        rc->params[2] = rc->kappa;
        rc->params[3] = rc->lo;
        rc->params[4] = rc->hi;
    } else {
        log_debug("reliability %s: kappa undefined over %d pairs: %s", rc->credential, pairs, why);
    }
    st = pgpool_query(rc->w->pool, STMT_ROUTING_UPDATE, rc->params, on_routing_updated, rc);
    if (st != DB_OK) {
        log_warn("reliability %s: database unavailable for routing_update", rc->credential);
        free(rc);
    }
}

void reliability_recompute(struct worker *w, const char *credential_id)
{
    struct recompute *rc = calloc(1, sizeof *rc);
    if (!rc || strlen(credential_id) != 36) {
        free(rc);
        return;
    }
    rc->w = w;
    memcpy(rc->credential, credential_id, 37);
    rc->params[0] = rc->credential;
    if (pgpool_query(w->pool, STMT_RELIABILITY_PAIRS, rc->params, on_pairs, rc) != DB_OK) {
        log_warn("reliability %s: database unavailable", credential_id);
        free(rc);
    }
}
