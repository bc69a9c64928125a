/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pgpool.c - libpq on the event loop.
 *
 * Design (see STYLE.md, "libpq on the event loop"):
 *  - Each connection is a small state machine (enum conn_state). It moves
 *    DOWN -> CONNECTING -> SETUP -> IDLE <-> BUSY, and back to DOWN on any
 *    failure, from where a timer reconnects it with exponential backoff.
 *  - One statement in flight per connection. Every API operation is a single
 *    SQL function call that does its whole transaction, so there is no
 *    transaction state to carry between queries and a broken connection can
 *    simply be replaced.
 *  - SETUP runs a few session settings and prepares every statement; only
 *    then does the connection take work.
 *  - Results are drained with PQconsumeInput + PQisBusy/PQgetResult: never
 *    a call that could block.
 *  - Before a callback runs, the connection is already back to IDLE, so the
 *    callback may start the next query (even on the same connection).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "log.h"
#include "pgpool.h"

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_SETUP, CONN_IDLE, CONN_BUSY };

/* Session settings sent before the statements are prepared. */
static const char *const setup_sql[] = {
    "SET statement_timeout = '30s'",
    "SET idle_in_transaction_session_timeout = '60s'",
    "SET application_name = 'accord'",
};
#define N_SETUP_SQL       (int)(sizeof setup_sql / sizeof setup_sql[0])
#define N_SETUP           (use_prepared ? N_SETUP_SQL + STMT_COUNT : 0)
#define CONNECT_TIMEOUT_S 5
#define BACKOFF_MIN_MS    50
#define BACKOFF_MAX_MS    2000

struct query {
    struct timespec enqueued; /* CLOCK_MONOTONIC: the wait histogram */
    enum stmt_id stmt;
    const char *const *params;
    db_callback cb;
    void *arg;
    struct query *next;
};

struct pgconn {
    struct pgpool *pool;
    PGconn *conn;
    enum conn_state state;
    struct event *ev_io;    /* CONNECTING: what PQconnectPoll asked for; later: persistent read */
    struct event *ev_write; /* pending output after PQflush returned 1 */
    struct event *ev_timer; /* reconnect backoff, or connect timeout */
    int setup_step;         /* SETUP: index of the step in flight */
    int backoff_ms;
    bool reported;         /* this outage has been logged */
    struct query *current; /* BUSY: the query in flight */
    PGresult *result;      /* first result (or first error) of the step in flight */
    int index;
};

struct pgpool {
    struct event_base *base;
    char *conninfo;
    int size, queue_max, worker;
    struct pgconn *conns;
    struct query *queue_head, *queue_tail;
    struct event *ev_kick; /* hands queued queries to idle connections */
    atomic_int queued, up, busy;
    struct histogram wait;
    bool freeing;
};

/*
 * Behind a transaction pooler (PgBouncer 1.18) consecutive statements may run
 * on different server connections, so nothing may live in the session: no
 * prepared statements, no SET. Then every query is sent with its text
 * (PQsendQueryParams: an unnamed statement in one Parse/Bind/Execute/Sync),
 * and the session settings come from the database's defaults (pooler.h).
 * Written once at start, before any pool exists.
 */
static bool use_prepared = true;

void pgpool_use_prepared(bool on)
{
    use_prepared = on;
}

static void conn_start(struct pgconn *c);
static void conn_ready(struct pgconn *c);
static void conn_on_io(evutil_socket_t fd, short what, void *arg);
static void conn_dispatch(struct pgconn *c);

static bool conn_is_up(const struct pgconn *c)
{
    return c->state == CONN_IDLE || c->state == CONN_BUSY;
}

static void set_state(struct pgconn *c, enum conn_state next)
{
    struct pgpool *p = c->pool;
    if (conn_is_up(c))
        atomic_fetch_sub(&p->up, 1);
    if (c->state == CONN_BUSY)
        atomic_fetch_sub(&p->busy, 1);
    c->state = next;
    if (conn_is_up(c))
        atomic_fetch_add(&p->up, 1);
    if (c->state == CONN_BUSY)
        atomic_fetch_add(&p->busy, 1);
}

static void free_events(struct pgconn *c)
{
    if (c->ev_io) {
        event_free(c->ev_io);
        c->ev_io = NULL;
    }
    if (c->ev_write) {
        event_free(c->ev_write);
        c->ev_write = NULL;
    }
}

static void finish_query(struct query *q, const struct db_result *res)
{
    db_callback cb = q->cb;
    void *arg = q->arg;
    free(q);
    cb(res, arg);
}

static void fail_query(struct query *q, enum db_status status)
{
    struct db_result res = {.status = status};
    finish_query(q, &res);
}

static bool any_conn_alive(const struct pgpool *p)
{
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state != CONN_DOWN)
            return true;
    return false;
}

static void fail_queue(struct pgpool *p)
{
    struct query *q = p->queue_head;
    p->queue_head = p->queue_tail = NULL;
    atomic_store(&p->queued, 0);
    while (q) {
        struct query *next = q->next;
        fail_query(q, DB_UNAVAILABLE);
        q = next;
    }
}

static void conn_broken(struct pgconn *c, const char *why);

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pgconn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CONN_DOWN)
        conn_start(c);
    else if (c->state == CONN_CONNECTING || c->state == CONN_SETUP)
        conn_broken(c, "connecting timed out ");
}

/* Any failure: drop the connection, fail its query, retry later. */
static void conn_broken(struct pgconn *c, const char *why)
{
    struct pgpool *p = c->pool;
    struct query *q = c->current;
    struct timeval tv;

    /* Say it once per outage, not at every retry. */
    if (!c->reported && !p->freeing) {
        log_warn("db[%d.%d]: %s%s", p->worker, c->index, why,
                 c->conn ? PQerrorMessage(c->conn) : "");
        c->reported = true;
    }
    c->current = NULL;
    if (c->result) {
        PQclear(c->result);
        c->result = NULL;
    }
    free_events(c);
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    set_state(c, CONN_DOWN);

    if (!p->freeing) {
        tv.tv_sec = c->backoff_ms / 1000;
        tv.tv_usec = (c->backoff_ms % 1000) * 1000;
        event_add(c->ev_timer, &tv);
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    }
    if (q)
        fail_query(q, DB_UNAVAILABLE);
    if (!any_conn_alive(p))
        fail_queue(p);
}

static void conn_flush(struct pgconn *c)
{
    int r = PQflush(c->conn);
    if (r < 0)
        conn_broken(c, "flush failed: ");
    else if (r == 1)
        event_add(c->ev_write, NULL);
}

static void conn_send_setup_step(struct pgconn *c)
{
    int ok;
    if (c->setup_step < N_SETUP_SQL) {
        ok = PQsendQuery(c->conn, setup_sql[c->setup_step]);
    } else {
        const struct statement *s = &statements[c->setup_step - N_SETUP_SQL];
        ok = PQsendPrepare(c->conn, s->name, s->sql, s->nparams, NULL);
    }
    if (!ok) {
        conn_broken(c, "sending setup failed: ");
        return;
    }
    conn_flush(c);
}

static void conn_connected(struct pgconn *c)
{
    struct pgpool *p = c->pool;
    evutil_socket_t fd = PQsocket(c->conn);

    free_events(c);
    if (PQsetnonblocking(c->conn, 1) != 0) {
        conn_broken(c, "cannot make connection non-blocking: ");
        return;
    }
    c->ev_io = event_new(p->base, fd, EV_READ | EV_PERSIST, conn_on_io, c);
    c->ev_write = event_new(p->base, fd, EV_WRITE, conn_on_io, c);
    if (!c->ev_io || !c->ev_write) {
        conn_broken(c, "out of memory");
        return;
    }
    event_add(c->ev_io, NULL);
    set_state(c, CONN_SETUP);
    c->setup_step = 0;
    if (N_SETUP == 0)
        conn_ready(c);
    else
        conn_send_setup_step(c);
}

static void conn_wait_connect(struct pgconn *c, short what)
{
    free_events(c);
    c->ev_io = event_new(c->pool->base, PQsocket(c->conn), what, conn_on_io, c);
    if (!c->ev_io) {
        conn_broken(c, "out of memory");
        return;
    }
    event_add(c->ev_io, NULL);
}

static void conn_poll_connect(struct pgconn *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        conn_wait_connect(c, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        conn_wait_connect(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        conn_connected(c);
        break;
    default:
        conn_broken(c, "cannot connect: ");
        break;
    }
}

static void conn_start(struct pgconn *c)
{
    struct timeval timeout = {CONNECT_TIMEOUT_S, 0};

    c->conn = PQconnectStart(c->pool->conninfo);
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
        set_state(c, CONN_CONNECTING);
        conn_broken(c, "cannot start connecting: ");
        return;
    }
    set_state(c, CONN_CONNECTING);
    event_add(c->ev_timer, &timeout);
    conn_poll_connect(c);
}

static void log_notice(void *arg, const PGresult *res)
{
    struct pgconn *c = arg;
    log_info("db[%d.%d]: %s", c->pool->worker, c->index, PQresultErrorMessage(res));
}

/* Set up: the connection takes work. */
static void conn_ready(struct pgconn *c)
{
    event_del(c->ev_timer);
    c->backoff_ms = BACKOFF_MIN_MS;
    PQsetNoticeReceiver(c->conn, log_notice, c);
    set_state(c, CONN_IDLE);
    if (c->reported)
        log_info("db[%d.%d]: connected again", c->pool->worker, c->index);
    c->reported = false;
    conn_dispatch(c);
}

/* One setup step or query has delivered all its results. */
static void conn_step_done(struct pgconn *c)
{
    PGresult *res = c->result;
    c->result = NULL;

    if (c->state == CONN_SETUP) {
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            const char *step = c->setup_step < N_SETUP_SQL
                                   ? setup_sql[c->setup_step]
                                   : statements[c->setup_step - N_SETUP_SQL].sql;
            log_error("db[%d.%d]: setup step '%s' failed: %s", c->pool->worker, c->index, step,
                      res ? PQresultErrorMessage(res) : "no result");
            PQclear(res);
            conn_broken(c, "setup failed (are the migrations applied?) ");
            return;
        }
        PQclear(res);
        if (++c->setup_step < N_SETUP) {
            conn_send_setup_step(c);
            return;
        }
        conn_ready(c);
        return;
    }

    if (c->state == CONN_BUSY) {
        struct query *q = c->current;
        struct db_result out = {.status = DB_OK};
        c->current = NULL;
        set_state(c, CONN_IDLE);
        if (!res) {
            out.status = DB_UNAVAILABLE;
        } else if (PQresultStatus(res) == PGRES_TUPLES_OK ||
                   PQresultStatus(res) == PGRES_COMMAND_OK) {
            if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
                out.value = PQgetvalue(res, 0, 0);
        } else {
            out.status = DB_ERROR;
            out.sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            out.message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            out.detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
            if (!out.sqlstate)
                out.sqlstate = "XX000";
            if (!out.message)
                out.message = "database error";
        }
        /* The connection is idle before the callback runs: it may queue more work. */
        finish_query(q, &out);
        PQclear(res);
        if (c->state == CONN_IDLE)
            conn_dispatch(c);
        return;
    }
    PQclear(res);
}

static void conn_read(struct pgconn *c)
{
    PGnotify *n;

    if (!PQconsumeInput(c->conn)) {
        conn_broken(c, "connection lost: ");
        return;
    }
    while ((n = PQnotifies(c->conn)) != NULL)
        PQfreemem(n);
    if (c->state == CONN_IDLE) {
        if (PQstatus(c->conn) == CONNECTION_BAD)
            conn_broken(c, "connection lost: ");
        return;
    }
    while (!PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (!r) {
            conn_step_done(c);
            return;
        }
        /* Keep the first result, unless a later one is an error. */
        if (!c->result) {
            c->result = r;
        } else if (PQresultStatus(r) == PGRES_FATAL_ERROR &&
                   PQresultStatus(c->result) != PGRES_FATAL_ERROR) {
            PQclear(c->result);
            c->result = r;
        } else {
            PQclear(r);
        }
    }
    if (PQstatus(c->conn) == CONNECTION_BAD)
        conn_broken(c, "connection lost: ");
}

static void conn_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct pgconn *c = arg;
    (void)fd;

    if (c->state == CONN_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    if (c->state == CONN_DOWN)
        return;
    if (what & EV_WRITE) {
        conn_flush(c);
        if (c->state == CONN_DOWN)
            return;
    }
    if (what & EV_READ)
        conn_read(c);
}

static void conn_send_query(struct pgconn *c, struct query *q)
{
    const struct statement *s = &statements[q->stmt];
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    histogram_observe(&c->pool->wait, (double)(now.tv_sec - q->enqueued.tv_sec) +
                                          (double)(now.tv_nsec - q->enqueued.tv_nsec) / 1e9);
    c->current = q;
    set_state(c, CONN_BUSY);
    if (!(use_prepared
              ? PQsendQueryPrepared(c->conn, s->name, s->nparams, q->params, NULL, NULL, 0)
              : PQsendQueryParams(c->conn, s->sql, s->nparams, NULL, q->params, NULL, NULL, 0))) {
        conn_broken(c, "send failed: ");
        return;
    }
    conn_flush(c);
}

/* An idle connection takes the oldest waiting query, if any. */
static void conn_dispatch(struct pgconn *c)
{
    struct pgpool *p = c->pool;
    struct query *q = p->queue_head;
    if (!q || c->state != CONN_IDLE)
        return;
    p->queue_head = q->next;
    if (!p->queue_head)
        p->queue_tail = NULL;
    atomic_fetch_sub(&p->queued, 1);
    q->next = NULL;
    conn_send_query(c, q);
}

static void pool_on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct pgpool *p = arg;
    (void)fd;
    (void)what;
    for (int i = 0; i < p->size && p->queue_head; i++)
        conn_dispatch(&p->conns[i]);
}

struct pgpool *pgpool_new(struct event_base *base, const char *conninfo, int size, int queue_max,
                          int worker)
{
    struct pgpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base = base;
    p->size = size;
    p->queue_max = queue_max;
    p->worker = worker;
    p->conninfo = strdup(conninfo);
    p->conns = calloc((size_t)size, sizeof *p->conns);
    p->ev_kick = event_new(base, -1, 0, pool_on_kick, p);
    if (!p->conninfo || !p->conns || !p->ev_kick)
        goto fail;
    for (int i = 0; i < size; i++) {
        struct pgconn *c = &p->conns[i];
        c->pool = p;
        c->index = i;
        c->state = CONN_DOWN;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->ev_timer = evtimer_new(base, conn_on_timer, c);
        if (!c->ev_timer)
            goto fail;
    }
    for (int i = 0; i < size; i++)
        conn_start(&p->conns[i]);
    return p;
fail:
    pgpool_free(p);
    return NULL;
}

void pgpool_free(struct pgpool *p)
{
    if (!p)
        return;
    p->freeing = true;
    for (int i = 0; p->conns && i < p->size; i++) {
        struct pgconn *c = &p->conns[i];
        if (c->state != CONN_DOWN)
            conn_broken(c, "closing");
        if (c->ev_timer)
            event_free(c->ev_timer);
    }
    fail_queue(p);
    if (p->ev_kick)
        event_free(p->ev_kick);
    free(p->conns);
    free(p->conninfo);
    free(p);
}

enum db_status pgpool_query(struct pgpool *p, enum stmt_id stmt, const char *const *params,
                            db_callback cb, void *arg)
{
    struct query *q;
    struct pgconn *idle = NULL;

    if (p->freeing || !any_conn_alive(p))
        return DB_UNAVAILABLE;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == CONN_IDLE) {
            idle = &p->conns[i];
            break;
        }
    if (!idle && atomic_load(&p->queued) >= p->queue_max)
        return DB_BUSY;
    q = calloc(1, sizeof *q);
    if (!q)
        return DB_BUSY;
    clock_gettime(CLOCK_MONOTONIC, &q->enqueued);
    q->stmt = stmt;
    q->params = params;
    q->cb = cb;
    q->arg = arg;
    if (p->queue_tail)
        p->queue_tail->next = q;
    else
        p->queue_head = q;
    p->queue_tail = q;
    atomic_fetch_add(&p->queued, 1);
    /*
     * Sending can fail synchronously (and fail the query's callback); the
     * contract says callbacks never run inside pgpool_query, so an idle
     * connection picks the query up from the kick event, later in this
     * same loop turn.
     */
    if (idle)
        event_active(p->ev_kick, EV_TIMEOUT, 0);
    return DB_OK;
}

void pgpool_get_stats(const struct pgpool *p, struct pgpool_stats *out)
{
    out->connections_up = atomic_load(&p->up);
    out->connections_busy = atomic_load(&p->busy);
    out->queued = atomic_load(&p->queued);
    out->size = p->size;
    out->worker = p->worker;
    out->wait = &p->wait;
}
