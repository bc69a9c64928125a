/* SPDX-License-Identifier: Apache-2.0 */
/* replica.c - the staleness monitor and the report split (see replica.h). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "clock.h"
#include "log.h"
#include "pgpool.h"
#include "replica.h"
#include "worker.h"

#define CHECK_MS   1000 /* one primary sample and one standby reading a second */
#define RECHECK_MS 100  /* a second reading when the first came before the standby caught up */
#define SAMPLES    128  /* primary positions kept: two minutes of them */

/* WAL page headers (PostgreSQL's access/xlog_internal.h, MAXALIGNed): the
 * insert position is never just after one unless the last record ended
 * right before it */
#define XLOG_SHORT_PAGE_HEADER 24
#define XLOG_LONG_PAGE_HEADER  40

struct sample {
    int64_t at_ms; /* CLOCK_MONOTONIC: when it was asked for */
    uint64_t lsn;
};

enum replica_state { R_UNKNOWN, R_USABLE, R_BEHIND, R_DOWN, R_NOT_STANDBY };

struct replica_monitor {
    struct pgpool *primary, *replica;
    struct event *timer, *recheck;
    struct sample samples[SAMPLES];
    int n_samples, next;
    int64_t sent_ms; /* when the sample in flight was asked for */
    bool rechecked;  /* this round's second standby reading was made */
    bool stopping;
    enum replica_state state; /* last one logged */
};

/* Read from every loop: set only while a replica is configured. */
static atomic_bool configured;
static atomic_llong fresh_at_ms; /* 0: not confirmed (never, or the standby is out) */
static atomic_long max_lag_ms;
static atomic_long n_from_replica, n_from_primary, n_fallbacks;

/* "16/B374D848" -> 0x16B374D848; -1 when it is not an LSN. */
static int parse_lsn(const char *text, uint64_t *out, const char **rest)
{
    unsigned int hi, lo;
    int used = 0;
    if (!text || sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || used == 0)
        return -1;
    *out = ((uint64_t)hi << 32) | lo;
    if (rest)
        *rest = text + used;
    return 0;
}

/* The bound in ms, or -1 when the replica may not serve. */
static int64_t lag_bound_ms(void)
{
    int64_t fresh = atomic_load(&fresh_at_ms);
    if (!atomic_load(&configured) || fresh == 0)
        return -1;
    return clock_ms() - fresh;
}

static void set_state(struct replica_monitor *m, enum replica_state st, const char *detail)
{
    static const char *const names[] = {"unknown", "in use", "too far behind", "unreachable",
                                        "not a standby"};
    if (st == m->state)
        return;
    if (st == R_USABLE)
        log_info("replica: %s (%s)", names[st], detail);
    else
        log_warn("replica: %s (%s); reports are read from the primary", names[st], detail);
    m->state = st;
}

static void arm(struct replica_monitor *m)
{
    struct timeval tv = {CHECK_MS / 1000, (CHECK_MS % 1000) * 1000};
    if (!m->stopping)
        evtimer_add(m->timer, &tv);
}

static void out_of_use(struct replica_monitor *m, enum replica_state st, const char *detail)
{
    atomic_store(&fresh_at_ms, 0);
    set_state(m, st, detail);
}

static void on_recheck(evutil_socket_t fd, short what, void *arg);

static void on_replay(const struct db_result *res, void *arg)
{
    struct replica_monitor *m = arg;
    uint64_t replayed;
    int64_t best = 0, lag;
    char detail[96];

    if (m->stopping)
        return;
    if (res->status != DB_OK || !res->value) {
        out_of_use(m, R_DOWN, res->message ? res->message : "no connection");
        goto next;
    }
    if (strcmp(res->value, "primary") == 0) {
        /* promoted, or never a standby: it no longer follows the primary */
        out_of_use(m, R_NOT_STANDBY, "pg_is_in_recovery() is false");
        goto next;
    }
    if (parse_lsn(res->value, &replayed, NULL) < 0) {
        out_of_use(m, R_DOWN, "unexpected replay position");
        goto next;
    }
    for (int i = 0; i < m->n_samples; i++)
        if (m->samples[i].lsn <= replayed && m->samples[i].at_ms > best)
            best = m->samples[i].at_ms;
    if (best > atomic_load(&fresh_at_ms))
        atomic_store(&fresh_at_ms, best);
    if (best < m->sent_ms && !m->rechecked) {
        /* the sample's commits were still on their way (a busy primary): one
         * more reading shortly, or the bound would be a whole period older */
        struct timeval tv = {0, RECHECK_MS * 1000};
        m->rechecked = true;
        evtimer_add(m->recheck, &tv);
        return;
    }
    lag = lag_bound_ms();
    if (lag < 0) {
        set_state(m, R_BEHIND, "behind every kept sample");
        goto next;
    }
    snprintf(detail, sizeof detail, "at most %.1f s behind, bound %.0f s", (double)lag / 1000,
             (double)atomic_load(&max_lag_ms) / 1000);
    set_state(m, lag <= atomic_load(&max_lag_ms) ? R_USABLE : R_BEHIND, detail);
next:
    arm(m);
}

/* "LSN BLOCK_SIZE SEGMENT_SIZE": the insert position, moved back over a page
 * header it stands just after (the end of the last record is then the page
 * boundary, and that is where a caught-up standby's replay stops). */
static int parse_sample(const char *text, uint64_t *lsn)
{
    const char *rest;
    unsigned long long block, segment;
    if (parse_lsn(text, lsn, &rest) < 0 || sscanf(rest, "%llu %llu", &block, &segment) != 2 ||
        block == 0 || segment == 0)
        return -1;
    if (*lsn % segment == XLOG_LONG_PAGE_HEADER)
        *lsn -= XLOG_LONG_PAGE_HEADER;
    else if (*lsn % block == XLOG_SHORT_PAGE_HEADER)
        *lsn -= XLOG_SHORT_PAGE_HEADER;
    return 0;
}

/* Asks the standby how far it has replayed (on_replay); no connection: out of use. */
static void ask_replay(struct replica_monitor *m)
{
    static const char *const no_params[1];
    if (pgpool_query(m->replica, STMT_REPLICA_REPLAY_LSN, no_params, on_replay, m) != DB_OK) {
        out_of_use(m, R_DOWN, "no connection");
        arm(m);
    }
}

static void on_sample(const struct db_result *res, void *arg)
{
    struct replica_monitor *m = arg;
    uint64_t lsn;

    if (m->stopping)
        return;
    if (res->status == DB_OK && parse_sample(res->value, &lsn) == 0) {
        /* stamped when asked: a commit acknowledged before then is below lsn */
        m->samples[m->next] = (struct sample){m->sent_ms, lsn};
        m->next = (m->next + 1) % SAMPLES;
        if (m->n_samples < SAMPLES)
            m->n_samples++;
    }
    /* a failed sample only means no newer bound this time */
    ask_replay(m);
}

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    struct replica_monitor *m = arg;
    (void)fd;
    (void)what;
    ask_replay(m);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct replica_monitor *m = arg;
    static const char *const no_params[1];
    (void)fd;
    (void)what;
    m->rechecked = false;
    m->sent_ms = clock_ms();
    if (pgpool_query(m->primary, STMT_PRIMARY_WAL_LSN, no_params, on_sample, m) != DB_OK) {
        struct db_result none = {.status = DB_UNAVAILABLE};
        on_sample(&none, m);
    }
}

struct replica_monitor *replica_monitor_start(struct event_base *base, const struct config *cfg)
{
    struct replica_monitor *m;

    if (!cfg->replica_url[0])
        return NULL;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->primary = pgpool_new(base, config_direct_url(cfg), 1, 4, -1);
    m->replica = pgpool_new(base, cfg->replica_url, 1, 4, -1);
    m->timer = evtimer_new(base, on_timer, m);
    m->recheck = evtimer_new(base, on_recheck, m);
    if (!m->primary || !m->replica || !m->timer || !m->recheck) {
        replica_monitor_free(m);
        return NULL;
    }
    atomic_store(&max_lag_ms, cfg->replica_max_lag * 1000);
    atomic_store(&fresh_at_ms, 0);
    atomic_store(&configured, true);
    log_info("replica: reports may be read from the replica while at most %ld s behind",
             cfg->replica_max_lag);
    arm(m);
    return m;
}

void replica_monitor_free(struct replica_monitor *m)
{
    if (!m)
        return;
    m->stopping = true;
    atomic_store(&configured, false);
    if (m->timer)
        event_free(m->timer);
    if (m->recheck)
        event_free(m->recheck);
    /* pending checks fail here, and their callbacks see `stopping` */
    pgpool_free(m->primary);
    pgpool_free(m->replica);
    free(m);
}

/* ------------------------------------------------------------------------
 * One part of a report */

struct part {
    struct request *r;
    enum replica_source *src;
    enum stmt_id direct, data;
    db_callback cb;
    bool first;
    const char *access[3]; /* token, report, query: point into r or static text */
    char lag[32];
};

static void add_source(struct request *r, const char *from, const char *lag)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Accord-Read-From", from);
    if (lag)
        evhttp_add_header(h, "Accord-Replica-Lag", lag);
}

/* Hands the result to the caller's callback; the part is gone by then. */
static void deliver(struct part *p, const struct db_result *res, enum replica_source from)
{
    struct request *r = p->r;
    db_callback cb = p->cb;
    if (p->first && res->status == DB_OK) {
        add_source(r, from == READ_REPLICA ? "replica" : "primary",
                   from == READ_REPLICA ? p->lag : NULL);
        atomic_fetch_add(from == READ_REPLICA ? &n_from_replica : &n_from_primary, 1);
    }
    *p->src = from;
    free(p);
    cb(res, r);
}

static void on_primary_data(const struct db_result *res, void *arg)
{
    deliver(arg, res, READ_PRIMARY);
}

/* The replica could not answer: the primary builds the data. The first part
 * was authorized and audited already (the data half); a later one runs the
 * one-call statement (it authorizes again, and audits only a first part). */
static void fall_back(struct part *p)
{
    enum db_status st;
    atomic_fetch_add(&n_fallbacks, 1);
    if (p->first)
        st = pgpool_query(p->r->w->pool, p->data, p->r->params + 1, on_primary_data, p);
    else
        st = pgpool_query(p->r->w->pool, p->direct, p->r->params, on_primary_data, p);
    if (st != DB_OK) {
        struct db_result res = {.status = st};
        deliver(p, &res, READ_PRIMARY);
    }
}

static void on_replica_data(const struct db_result *res, void *arg)
{
    struct part *p = arg;
    if (res->status != DB_OK) {
        /* down, cancelled by a replay conflict, or the rows have not arrived */
        log_debug("replica: a report part from the primary: %s",
                  res->message ? res->message : "replica unavailable");
        fall_back(p);
        return;
    }
    deliver(p, res, READ_REPLICA);
}

static void on_access(const struct db_result *res, void *arg)
{
    struct part *p = arg;
    if (res->status != DB_OK) {
        /* refused (401, 403, 400, 404) or the primary is down: that is the answer */
        deliver(p, res, READ_PRIMARY);
        return;
    }
    if (pgpool_query(p->r->w->replica, p->data, p->r->params + 1, on_replica_data, p) != DB_OK)
        fall_back(p);
}

/* Whether the replica may serve now; the bound, for the header, in `lag`. */
static bool replica_usable(const struct request *r, char *lag, size_t lag_size)
{
    int64_t bound = lag_bound_ms();
    if (!r->w->replica || bound < 0 || bound > atomic_load(&max_lag_ms))
        return false;
    snprintf(lag, lag_size, "%.3f", (double)bound / 1000);
    return true;
}

enum db_status replica_query(struct request *r, enum replica_source *src, const char *report,
                             enum stmt_id direct, enum stmt_id data, db_callback cb)
{
    char lag[32];
    struct part *p = NULL;
    enum db_status st;
    bool first = *src == READ_UNDECIDED;

    if (*src == READ_PRIMARY || !replica_usable(r, lag, sizeof lag) ||
        !(p = calloc(1, sizeof *p))) {
        if (*src == READ_REPLICA) /* was on the replica: it is out now */
            atomic_fetch_add(&n_fallbacks, 1);
        st = pgpool_query(r->w->pool, direct, r->params, cb, r);
        if (st == DB_OK && first) {
            add_source(r, "primary", NULL);
            atomic_fetch_add(&n_from_primary, 1);
        }
        *src = READ_PRIMARY;
        return st;
    }
    p->r = r;
    p->src = src;
    p->direct = direct;
    p->data = data;
    p->cb = cb;
    p->first = first;
    memcpy(p->lag, lag, sizeof p->lag);
    if (first) {
        /* the primary authorizes and audits, then the replica builds the data */
        p->access[0] = r->params[0];
        p->access[1] = report;
        p->access[2] = r->params[1];
        st = pgpool_query(r->w->pool, STMT_REPORT_ACCESS, p->access, on_access, p);
        if (st != DB_OK)
            free(p);
        return st;
    }
    if (pgpool_query(r->w->replica, data, r->params + 1, on_replica_data, p) == DB_OK)
        return DB_OK;
    /* refused at once: the primary, without a callback from in here */
    free(p);
    atomic_fetch_add(&n_fallbacks, 1);
    *src = READ_PRIMARY;
    return pgpool_query(r->w->pool, direct, r->params, cb, r);
}

void replica_render_metrics(struct evbuffer *out)
{
    int64_t lag = lag_bound_ms();
    if (!atomic_load(&configured))
        return;
    evbuffer_add_printf(
        out,
        "# HELP accord_replica_lag_seconds Bound on how far the replica is behind (-1: not "
        "confirmed: unreachable, not a standby, or behind every kept sample).\n"
        "# TYPE accord_replica_lag_seconds gauge\n"
        "accord_replica_lag_seconds %.3f\n"
        "# HELP accord_replica_max_lag_seconds The bound reports from the replica stay within.\n"
        "# TYPE accord_replica_max_lag_seconds gauge\n"
        "accord_replica_max_lag_seconds %.3f\n"
        "# HELP accord_replica_in_use 1 while reports are read from the replica.\n"
        "# TYPE accord_replica_in_use gauge\n"
        "accord_replica_in_use %d\n"
        "# HELP accord_replica_reports_total Reports begun, by where their data came from.\n"
        "# TYPE accord_replica_reports_total counter\n"
        "accord_replica_reports_total{from=\"replica\"} %ld\n"
        "accord_replica_reports_total{from=\"primary\"} %ld\n"
        "# HELP accord_replica_fallbacks_total Report parts the replica could not answer.\n"
        "# TYPE accord_replica_fallbacks_total counter\n"
        "accord_replica_fallbacks_total %ld\n",
        lag < 0 ? -1.0 : (double)lag / 1000, (double)atomic_load(&max_lag_ms) / 1000,
        lag >= 0 && lag <= atomic_load(&max_lag_ms), atomic_load(&n_from_replica),
        atomic_load(&n_from_primary), atomic_load(&n_fallbacks));
}
