/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_reports.c - the reports that need C: agreement statistics and the
 * ratings CSV. (The assessors and routing reports are plain SQL answers.)
 *
 * GET /v1/reports/agreement: the database hands over the credential's scored
 * reviews in one round trip (api_report_agreement_data: a header line, then
 * "submission assessor level,level,..." per review); every statistic of
 * rubric/irr.h, with intervals, is computed overall (unit = submission x
 * criterion) and per criterion (unit = submission) on the report pool
 * (report_pool.h): never on the event loop, never on the threads that write
 * uploads, at most REPORTS_MAX_PENDING at a time per server (then 503 with
 * Retry-After), on a thread that yields the CPU to requests (SCHED_BATCH,
 * nice 10); and one report's data query at a time per event loop, so that
 * reports never hold every connection of a loop's pool. An answer is kept (report_cache.h) under
 * its query and the stamp of the credential's newest score; the database says when the stamp is
 * unchanged and the kept answer is sent again without recomputing.
 *
 * GET /v1/reports/ratings.csv: streamed in pages of RATINGS_PAGE submissions
 * (api_report_ratings_page), each sent as one chunk of a chunked reply; the
 * next page is asked for only once the previous one has been handed to the
 * socket, so the server holds one page per download, whatever the size.
 *
 * Both may read their data from a read replica (replica.h).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "irr.h"
#include "irr_json.h"
#include "log.h"
#include "offload.h"
#include "replica.h"
#include "report_cache.h"
#include "router.h"

#define MAX_CRITERIA        64
#define REPORTS_MAX_PENDING 2
#define RATINGS_PAGE        "1000"
#define REPORT_NICE         10 /* the report thread's (and its bootstrap threads') nice value */
#define REPORT_WAITING_MAX  4  /* agreement reports waiting for their loop's report query */

static atomic_int reports_pending;

/*
 * One agreement report reads its data at a time per event loop: a loop's
 * pool is a couple of connections (--db-pool, 2), and two reports' data
 * queries (a second each at 10^5 scores) held both while uploads and every
 * other request of the loop queued behind them. Others wait here, in order
 * (at most REPORT_WAITING_MAX, then 503 with Retry-After).
 */
static _Thread_local int report_queries;
static _Thread_local struct request *report_waiting_head, *report_waiting_tail;
static _Thread_local int report_waiting;

struct agreement_job {
    char *data;   /* the database's answer (owned): header line, then rows */
    char *cached; /* the kept answer for this query, if any (owned) */
    char *stamp;  /* the stamp of the data (owned) */
    bool cacheable;
    bool counted;  /* holds a reports_pending slot */
    bool querying; /* holds its loop's report query */
    struct request *next_waiting;
    enum replica_source source; /* replica.h */
    json_t *answer;             /* built on the report pool */
    char error[160];
};

static void agreement_job_free(void *arg)
{
    struct agreement_job *job = arg;
    if (job->counted)
        atomic_fetch_sub(&reports_pending, 1);
    free(job->data);
    free(job->cached);
    free(job->stamp);
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
     * runs on the report pool, never on the event loop). The intervals do
     * not depend on the thread count. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    opt.threads = cores < 1 ? 1 : cores > 8 ? 8 : (unsigned)cores;
    if (irr_compute(t, &opt, &res) != IRR_OK)
        return NULL;
    out = irr_result_json(&res, &opt, &bad_name);
    irr_result_release(&res);
    return out;
}

/* One scored review: "submission assessor l1,l2,..." (a level may be empty). */
struct review_line {
    const char *sub, *rater; /* NUL-terminated in place */
    char *levels;            /* "l1,l2,..." */
};

static size_t split_lines(char *text, struct review_line **out)
{
    size_t n = 0, cap = 0;
    struct review_line *v = NULL;
    char *p = text;

    while (p && *p) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        char *a = strchr(p, ' '), *b = a ? strchr(a + 1, ' ') : NULL;
        if (a && b) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 1024;
                struct review_line *nv = realloc(v, ncap * sizeof *nv);
                if (!nv) {
                    free(v);
                    *out = NULL;
                    return (size_t)-1;
                }
                v = nv;
                cap = ncap;
            }
            *a = *b = '\0';
            v[n].sub = p;
            v[n].rater = a + 1;
            v[n].levels = b + 1;
            n++;
        }
        p = eol ? eol + 1 : NULL;
    }
    *out = v;
    return n;
}

/* The level of criterion c in "l1,l2,..." (0: there is one, -1: none). */
static int level_of(const char *levels, size_t c, double *level)
{
    const char *p = levels;
    for (size_t i = 0; i < c; i++) {
        p = strchr(p, ',');
        if (!p)
            return -1;
        p++;
    }
    if (*p == ',' || *p == '\0')
        return -1;
    *level = strtod(p, NULL);
    return 0;
}

/*
 * A report's computation yields the CPU to everything else: on a 2-core
 * machine its bootstrap (every core) made a 4 KiB upload next to two reports
 * take 5.4x its time alone. The report thread runs SCHED_BATCH (never
 * preempts others on waking) at nice REPORT_NICE; the bootstrap's threads,
 * created from it, inherit both. Named "accord-report", so that one can see
 * it (top -H, /proc/PID/task). Once per thread; failures only logged (the
 * report is still right, only less polite).
 */
static void report_thread_yields(void)
{
    static _Thread_local bool done;
    struct sched_param sp = {0};

    if (done)
        return;
    done = true;
    pthread_setname_np(pthread_self(), "accord-report");
    if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp) != 0)
        log_warn("reports: cannot run the report thread as SCHED_BATCH");
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), REPORT_NICE) != 0)
        log_warn("reports: cannot lower the report thread's priority");
}

static void agreement_compute(void *arg)
{
    struct request *r = arg;
    struct agreement_job *job = r->state;
    char *rows = strchr(job->data, '\n');
    json_t *doc = NULL, *criteria, *levels, *per = NULL, *overall = NULL;
    irr_table *all = NULL, *by[MAX_CRITERIA] = {NULL};
    struct review_line *lines = NULL;
    double scale[128];
    size_t n_crit = 0, n_levels, n_lines, i, c;

    report_thread_yields();
    if (rows)
        *rows++ = '\0';
    doc = json_loads(job->data, 0, NULL);
    criteria = json_object_get(doc, "criteria");
    levels = json_object_get(doc, "levels");
    if (!json_is_array(criteria) || !json_is_array(levels)) {
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
    for (c = 0; c < n_crit; c++) {
        by[c] = irr_table_new();
        if (!by[c] || (n_levels && irr_table_set_levels(by[c], scale, n_levels) != IRR_OK))
            goto oom;
    }
    n_lines = split_lines(rows ? rows : (char *)"", &lines);
    if (n_lines == (size_t)-1)
        goto oom;
    /* criterion by criterion, then submission and assessor: the order the
     * tables were always filled in (the bootstrap's draws follow it) */
    for (c = 0; c < n_crit; c++) {
        const char *key = json_string_value(json_array_get(criteria, c));
        for (i = 0; i < n_lines; i++) {
            char unit[160];
            double level;
            if (level_of(lines[i].levels, c, &level) < 0)
                continue;
            snprintf(unit, sizeof unit, "%s:%s", lines[i].sub, key ? key : "");
            if (irr_table_add(all, unit, lines[i].rater, level) != IRR_OK ||
                irr_table_add(by[c], lines[i].sub, lines[i].rater, level) != IRR_OK)
                goto oom;
        }
    }
    overall = table_json(all);
    per = json_object();
    if (!overall || !per)
        goto oom;
    for (c = 0; c < n_crit; c++) {
        json_t *one = table_json(by[c]);
        if (!one || json_object_set_new(per, json_string_value(json_array_get(criteria, c)), one))
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
    free(lines);
    json_decref(overall);
    json_decref(per);
    irr_table_free(all);
    for (c = 0; c < MAX_CRITERIA; c++)
        irr_table_free(by[c]);
    json_decref(doc);
}

static void set_cache_header(struct request *r, const char *how)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "X-Report-Cache", how);
}

static void agreement_done(void *arg)
{
    struct request *r = arg;
    struct agreement_job *job = r->state;
    char *text;

    if (!job->answer) {
        log_error("agreement report: %s", job->error);
        reply_error(r, 500, "internal", "could not compute the report (logged on the server)");
        return;
    }
    text = json_dumps(job->answer, JSON_COMPACT);
    if (!text) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    if (job->cacheable)
        report_cache_put(r->query ? r->query : "", job->stamp, text);
    set_cache_header(r, "miss");
    reply_json_text(r, 200, text);
    free(text);
}

static void report_query_begin(struct request *r);

/* The loop's report query is free again: the next waiting report reads its data. */
static void report_query_done(struct agreement_job *job)
{
    struct request *next = report_waiting_head;

    if (!job->querying)
        return;
    job->querying = false;
    report_queries--;
    if (!next)
        return;
    report_waiting_head = ((struct agreement_job *)next->state)->next_waiting;
    if (!report_waiting_head)
        report_waiting_tail = NULL;
    report_waiting--;
    report_query_begin(next);
}

static void on_agreement_data(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct agreement_job *job = r->state;
    const char *nl;
    json_t *head;

    report_query_done(job);
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    nl = res->value ? strchr(res->value, '\n') : NULL;
    head = nl ? json_loadb(res->value, (size_t)(nl - res->value), 0, NULL) : NULL;
    if (!head || !json_is_string(json_object_get(head, "stamp"))) {
        json_decref(head);
        log_error("agreement report: unexpected answer from the database");
        reply_error(r, 500, "internal", "could not compute the report (logged on the server)");
        return;
    }
    if (json_is_true(json_object_get(head, "unchanged")) && job->cached) {
        json_decref(head);
        set_cache_header(r, "hit");
        reply_json_text(r, 200, job->cached);
        return;
    }
    free(job->stamp); /* the kept answer's, passed to the database */
    job->stamp = strdup(json_string_value(json_object_get(head, "stamp")));
    job->cacheable = json_is_true(json_object_get(head, "cacheable"));
    json_decref(head);
    if (!job->stamp || !(job->data = strdup(res->value))) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    /* a bound on report work per server: the pool is one thread, and this
     * many may wait for it */
    if (atomic_fetch_add(&reports_pending, 1) >= REPORTS_MAX_PENDING) {
        atomic_fetch_sub(&reports_pending, 1);
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "5");
        reply_error(r, 503, "busy", "reports are being computed; try again shortly");
        return;
    }
    job->counted = true;
    if (offload_submit(r->w->reports, r->w->base, agreement_compute, agreement_done, r) < 0)
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
}

static void report_query_begin(struct request *r)
{
    struct agreement_job *job = r->state;
    enum db_status st;

    report_queries++;
    job->querying = true;
    st = replica_query(r, &job->source, "agreement", STMT_REPORT_AGREEMENT_DATA,
                       STMT_REPLICA_AGREEMENT_DATA, on_agreement_data);
    if (st != DB_OK) {
        struct db_result res = {.status = st};
        report_query_done(job);
        reply_db_failure(r, &res);
    }
}

void handle_report_agreement(struct request *r)
{
    struct agreement_job *job = calloc(1, sizeof *job);

    if (!job) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = job;
    r->state_free = agreement_job_free;
    /* the stamp of a kept answer: the database says whether it still holds */
    report_cache_get(r->query ? r->query : "", &job->stamp, &job->cached);
    r->params[2] = job->stamp;
    if (report_queries == 0) {
        report_query_begin(r);
        return;
    }
    if (report_waiting >= REPORT_WAITING_MAX) {
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "5");
        reply_error(r, 503, "busy", "reports are being computed; try again shortly");
        return;
    }
    if (report_waiting_tail)
        ((struct agreement_job *)report_waiting_tail->state)->next_waiting = r;
    else
        report_waiting_head = r;
    report_waiting_tail = r;
    report_waiting++;
}

/* ---- ratings.csv ------------------------------------------------------- */

struct ratings_stream {
    struct request *r;
    char after[37]; /* the last submission of the page sent */
    bool started;   /* the chunked reply has begun */
    bool waiting;   /* a chunk is on its way to the socket */
    bool querying;  /* a page is being read */
    bool gone;      /* the client went away */
    size_t bytes;
    enum replica_source source; /* replica.h: where the pages are read */
};

static void ratings_next(struct ratings_stream *st);

static void ratings_finish(struct ratings_stream *st)
{
    reply_stream_end(st->r, st->bytes);
}

static void on_chunk_sent(struct evhttp_connection *evcon, void *arg)
{
    struct ratings_stream *st = arg;
    (void)evcon;
    st->waiting = false;
    if (st->after[0])
        ratings_next(st);
    else
        ratings_finish(st);
}

static void on_client_gone(struct evhttp_connection *evcon, void *arg)
{
    struct ratings_stream *st = arg;
    (void)evcon;
    st->gone = true;
    if (!st->querying)
        ratings_finish(st); /* nothing in flight: end (frees the detached request) */
}

static void on_ratings_page(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct ratings_stream *st = r->state;
    const char *nl;
    struct evbuffer *buf;

    st->querying = false;
    if (st->gone) {
        ratings_finish(st);
        return;
    }
    if (res->status != DB_OK) {
        if (!st->started) {
            reply_db_failure(r, res);
            return;
        }
        /* headers are out: cut the download short, so it cannot pass for whole */
        log_error("ratings.csv: a page failed after %zu bytes; closing the download", st->bytes);
        reply_stream_abort(r, st->bytes);
        return;
    }
    nl = res->value ? strchr(res->value, '\n') : NULL;
    if (!nl || nl - res->value > 36) {
        if (!st->started) {
            reply_error(r, 500, "internal", "could not build the CSV (logged on the server)");
            return;
        }
        reply_stream_abort(r, st->bytes);
        return;
    }
    memcpy(st->after, res->value, (size_t)(nl - res->value));
    st->after[nl - res->value] = '\0';
    if (!st->started) {
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Disposition",
                          "attachment; filename=\"ratings.csv\"");
        reply_stream_start(r, 200, "text/csv; charset=utf-8", on_client_gone, st);
        st->started = true;
    }
    buf = evbuffer_new();
    if (!buf || evbuffer_add(buf, nl + 1, strlen(nl + 1)) < 0) {
        if (buf)
            evbuffer_free(buf);
        reply_stream_abort(r, st->bytes);
        return;
    }
    if (evbuffer_get_length(buf) == 0) {
        /* libevent sends no empty chunk (and would never call back) */
        evbuffer_free(buf);
        if (st->after[0])
            ratings_next(st);
        else
            ratings_finish(st);
        return;
    }
    st->bytes += evbuffer_get_length(buf);
    st->waiting = true;
    reply_stream_chunk(r, buf, on_chunk_sent, st);
    evbuffer_free(buf);
}

static void ratings_next(struct ratings_stream *st)
{
    struct request *r = st->r;
    enum db_status q;

    r->params[2] = st->after[0] ? st->after : NULL;
    r->params[3] = RATINGS_PAGE;
    st->querying = true;
    q = replica_query(r, &st->source, "ratings.csv", STMT_REPORT_RATINGS_PAGE,
                      STMT_REPLICA_RATINGS_PAGE, on_ratings_page);
    if (q != DB_OK) {
        struct db_result res = {.status = q};
        st->querying = false;
        if (!st->started)
            reply_db_failure(r, &res);
        else
            reply_stream_abort(r, st->bytes); /* the database went away mid-download */
    }
}

void handle_report_ratings_csv(struct request *r)
{
    struct ratings_stream *st = calloc(1, sizeof *st);

    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    st->r = r;
    r->state = st;
    r->state_free = free;
    ratings_next(st);
}
