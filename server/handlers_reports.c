/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_reports.c - the reports that need C: agreement statistics and the
 * ratings CSV. (The assessors and routing reports are plain SQL answers.)
 *
 * GET /v1/reports/agreement: the database hands over the credential's
 * ratings (one round trip); every statistic of rubric/irr.h, with intervals,
 * is computed overall (unit = submission × criterion) and per criterion
 * (unit = submission) on an offload thread, since a bootstrap over thousands
 * of units would otherwise hold the event loop for a noticeable time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "irr.h"
#include "irr_json.h"
#include "log.h"
#include "offload.h"
#include "router.h"

#define MAX_CRITERIA 64

struct agreement_job {
    char *rows_json; /* the database's answer (owned) */
    json_t *answer;  /* built on the offload thread */
    char error[160];
};

static void agreement_job_free(void *arg)
{
    struct agreement_job *job = arg;
    free(job->rows_json);
    json_decref(job->answer);
    free(job);
}

/* Computes every metric on one table and returns its JSON (NULL on failure). */
static json_t *table_json(irr_table *t)
{
    irr_options opt;
    irr_result res;
    json_t *out;
    int bad_name = 0;

    irr_options_init(&opt);
    opt.ci = 1;
    /* The bootstrap is the bulk of the work: spread it over the cores (this
     * runs on an offload thread, never on the event loop). The intervals do
     * not depend on the thread count. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    opt.threads = cores < 1 ? 1 : cores > 8 ? 8 : (unsigned)cores;
    if (irr_compute(t, &opt, &res) != IRR_OK)
        return NULL;
    out = irr_result_json(&res, &opt, &bad_name);
    irr_result_release(&res);
    return out;
}

static void agreement_compute(void *arg)
{
    struct request *r = arg;
    struct agreement_job *job = r->state;
    json_t *doc = json_loads(job->rows_json, 0, NULL);
    json_t *criteria = json_object_get(doc, "criteria"), *rows = json_object_get(doc, "rows");
    json_t *levels = json_object_get(doc, "levels"), *per = NULL, *overall = NULL;
    irr_table *all = NULL, *by[MAX_CRITERIA] = {NULL};
    double scale[128];
    size_t n_crit, n_levels, i;

    if (!json_is_array(criteria) || !json_is_array(rows) || !json_is_array(levels)) {
        snprintf(job->error, sizeof job->error, "unexpected rows from the database");
        goto cleanup;
    }
    n_crit = json_array_size(criteria);
    n_levels = json_array_size(levels);
    if (n_crit > MAX_CRITERIA || n_levels > sizeof scale / sizeof scale[0]) {
        snprintf(job->error, sizeof job->error, "rubric too large for a report");
        goto cleanup;
    }
    for (i = 0; i < n_levels; i++)
        scale[i] = json_number_value(json_array_get(levels, i));
    all = irr_table_new();
    if (!all || (n_levels && irr_table_set_levels(all, scale, n_levels) != IRR_OK))
        goto oom;
    for (i = 0; i < n_crit; i++) {
        by[i] = irr_table_new();
        if (!by[i] || (n_levels && irr_table_set_levels(by[i], scale, n_levels) != IRR_OK))
            goto oom;
    }
    for (i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        json_int_t c = json_integer_value(json_array_get(row, 0));
        const char *sub = json_string_value(json_array_get(row, 1));
        const char *rater = json_string_value(json_array_get(row, 2));
        double level = json_number_value(json_array_get(row, 3));
        char unit[160];
        if (c < 0 || (size_t)c >= n_crit || !sub || !rater)
            continue;
        snprintf(unit, sizeof unit, "%s:%s", sub,
                 json_string_value(json_array_get(criteria, (size_t)c)));
        if (irr_table_add(all, unit, rater, level) != IRR_OK ||
            irr_table_add(by[c], sub, rater, level) != IRR_OK)
            goto oom;
    }
    overall = table_json(all);
    per = json_object();
    if (!overall || !per)
        goto oom;
    for (i = 0; i < n_crit; i++) {
        json_t *one = table_json(by[i]);
        if (!one || json_object_set_new(per, json_string_value(json_array_get(criteria, i)), one))
            goto oom;
    }
    job->answer =
        json_pack("{s:O,s:O,s:O,s:o,s:o}", "credential_id", json_object_get(doc, "credential_id"),
                  "pool", json_object_get(doc, "pool"), "since", json_object_get(doc, "since"),
                  "overall", overall, "criteria", per);
    overall = per = NULL;
    if (!job->answer)
        goto oom;
    goto cleanup;
oom:
    snprintf(job->error, sizeof job->error, "out of memory computing the report");
cleanup:
    json_decref(overall);
    json_decref(per);
    irr_table_free(all);
    for (i = 0; i < MAX_CRITERIA; i++)
        irr_table_free(by[i]);
    json_decref(doc);
}

static void agreement_done(void *arg)
{
    struct request *r = arg;
    struct agreement_job *job = r->state;
    json_t *answer = job->answer;

    if (!answer) {
        log_error("agreement report: %s", job->error);
        reply_error(r, 500, "internal", "could not compute the report (logged on the server)");
        return;
    }
    job->answer = NULL;
    reply_json(r, 200, answer);
}

static void on_agreement_rows(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct agreement_job *job;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    job = calloc(1, sizeof *job);
    if (!job || !(job->rows_json = strdup(res->value ? res->value : "{}"))) {
        free(job);
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = job;
    r->state_free = agreement_job_free;
    if (offload_submit(r->w->offload, r->w->base, agreement_compute, agreement_done, r) < 0)
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
}

void handle_report_agreement(struct request *r)
{
    request_query(r, STMT_REPORT_AGREEMENT_ROWS, on_agreement_rows);
}

static void on_ratings_csv(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *doc;
    const char *csv;
    struct evbuffer *buf;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    csv = json_string_value(json_object_get(doc, "csv"));
    buf = evbuffer_new();
    if (!csv || !buf) {
        json_decref(doc);
        if (buf)
            evbuffer_free(buf);
        reply_error(r, 500, "internal", "could not build the CSV (logged on the server)");
        return;
    }
    evbuffer_add(buf, csv, strlen(csv));
    json_decref(doc);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Disposition",
                      "attachment; filename=\"ratings.csv\"");
    reply_buffer(r, 200, "text/csv; charset=utf-8", buf);
    evbuffer_free(buf);
}

void handle_report_ratings_csv(struct request *r)
{
    request_query(r, STMT_REPORT_RATINGS_CSV, on_ratings_csv);
}
