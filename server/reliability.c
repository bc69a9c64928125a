/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reliability.c - reliability_pairs -> quadratic kappa + CI -> routing_update.
 *
 * The computation is O(pairs) (at most a few hundred pairs × criteria), so it
 * runs on the loop between the two queries without blocking it noticeably.
 *
 * Several servers (issue 13): each estimate carries the pair count it saw,
 * so an older one never overwrites a newer (routing_update in
 * 016_servers.sql); and a sweep finds what a dead server did not recompute.
 */
#include <stdbool.h>
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
    char pairs[16], kappa[40], lo[40], hi[40], seen[24];
    const char *params[6];
};

/* Every SWEEP_SECONDS one loop per server asks for credentials left behind. */
#define SWEEP_SECONDS 5
#define SWEEP_BATCH   "20"

struct reliability_sweep {
    struct worker *w;
    struct event *timer;
    const char *params[1];
    bool busy;    /* a query is under way */
    bool stopped; /* freed while busy: the callback frees it */
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

/* The "seen" count of reliability_pairs_seen's answer, as text. */
static int reliability_seen(const char *pairs_json, char *out, size_t cap)
{
    json_t *doc = json_loads(pairs_json, 0, NULL);
    json_t *seen = json_object_get(doc, "seen");
    int rc = -1;
    if (json_is_integer(seen) && json_integer_value(seen) >= 0) {
        snprintf(out, cap, "%lld", (long long)json_integer_value(seen));
        rc = 0;
    }
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
    if (reliability_seen(res->value, rc->seen, sizeof rc->seen) < 0) {
        log_warn("reliability %s: the pairs carry no count", rc->credential);
        free(rc);
        return;
    }
    rc->params[0] = rc->credential;
    rc->params[1] = rc->pairs;
    rc->params[2] = rc->params[3] = rc->params[4] = NULL; /* undefined: SQL NULL */
    rc->params[5] = rc->seen;
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

static void sweep_arm(struct reliability_sweep *s)
{
    struct timeval tv = {SWEEP_SECONDS, 0};
    evtimer_add(s->timer, &tv);
}

static void on_stale(const struct db_result *res, void *arg)
{
    struct reliability_sweep *s = arg;
    json_t *ids = NULL, *id;
    size_t i;

    s->busy = false;
    if (s->stopped) {
        free(s);
        return;
    }
    if (res->status == DB_OK && res->value)
        ids = json_loads(res->value, 0, NULL);
    else if (res->status == DB_ERROR)
        log_warn("reliability sweep: %s %s", res->sqlstate ? res->sqlstate : "",
                 res->message ? res->message : "");
    json_array_foreach(ids, i, id)
    {
        const char *text = json_string_value(id);
        if (text && strlen(text) == 36) {
            log_info("reliability %s: recomputing an estimate that is behind its pairs", text);
            reliability_recompute(s->w, text);
        }
    }
    json_decref(ids);
    sweep_arm(s);
}

static void on_sweep_timer(evutil_socket_t fd, short what, void *arg)
{
    struct reliability_sweep *s = arg;
    (void)fd;
    (void)what;
    s->params[0] = SWEEP_BATCH;
    if (pgpool_query(s->w->pool, STMT_RELIABILITY_STALE, s->params, on_stale, s) == DB_OK)
        s->busy = true;
    else
        sweep_arm(s);
}

struct reliability_sweep *reliability_sweep_start(struct worker *w)
{
    struct reliability_sweep *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->w = w;
    s->timer = evtimer_new(w->base, on_sweep_timer, s);
    if (!s->timer) {
        free(s);
        return NULL;
    }
    sweep_arm(s);
    return s;
}

void reliability_sweep_free(struct reliability_sweep *s)
{
    if (!s)
        return;
    event_free(s->timer);
    if (s->busy)
        s->stopped = true; /* the query's callback frees it */
    else
        free(s);
}
