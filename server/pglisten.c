/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pglisten.c - the process's LISTEN connection (see pglisten.h).
 *
 * States: DOWN (reconnect timer pending) -> CONNECTING (PQconnectPoll) ->
 * LISTENING (LISTEN sent) -> UP. Any failure goes back to DOWN and retries
 * after a backoff. Commands run one at a time: the head of the queue is in
 * flight while `busy`.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pglisten.h"

#define MAX_REGS          16
#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000
#define CONNECT_TIMEOUT_S 5

enum listen_state { L_DOWN, L_CONNECTING, L_LISTENING, L_UP };

struct reg {
    char channel[64];
    pglisten_notify_fn fn;
    pglisten_state_fn state;
    void *arg;
};

struct command {
    char *sql;
    char *params[PGLISTEN_MAX_PARAMS];
    int nparams;
    pglisten_result_fn cb;
    void *arg;
};

struct pglisten {
    struct event_base *base;
    char *conninfo;
    PGconn *conn;
    enum listen_state state;
    struct event *ev_io;
    struct event *ev_timer;
    int backoff_ms;
    bool reported; /* the current outage was logged */
    struct reg regs[MAX_REGS];
    int n_regs;
    char *listen_sql;
    /* commands: queue[0] is in flight while busy */
    struct command queue[PGLISTEN_MAX_QUEUE];
    int n_queue;
    bool busy;
    PGresult *result; /* the in-flight command's last result */
    bool failed;      /* ... and whether any of its results was an error */
};

static void on_io(evutil_socket_t fd, short what, void *arg);

static void command_clear(struct command *c)
{
    free(c->sql);
    for (int i = 0; i < c->nparams; i++)
        free(c->params[i]);
    memset(c, 0, sizeof *c);
}

/* Removes the head of the queue and tells its caller. */
static void command_done(struct pglisten *l, const PGresult *res)
{
    struct command c = l->queue[0];
    memmove(&l->queue[0], &l->queue[1], (size_t)(l->n_queue - 1) * sizeof l->queue[0]);
    l->n_queue--;
    memset(&l->queue[l->n_queue], 0, sizeof l->queue[0]);
    if (c.cb)
        c.cb(res, c.arg);
    command_clear(&c);
}

static void tell_state(struct pglisten *l, bool up)
{
    for (int i = 0; i < l->n_regs; i++)
        if (l->regs[i].state)
            l->regs[i].state(up, l->regs[i].arg);
}

static void drop_io(struct pglisten *l)
{
    if (l->ev_io) {
        event_free(l->ev_io);
        l->ev_io = NULL;
    }
}

static void go_down(struct pglisten *l, const char *why)
{
    struct timeval tv = {l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000};
    bool was_up = l->state == L_UP;

    if (!l->reported) {
        log_warn("database listener: %s%s", why, l->conn ? PQerrorMessage(l->conn) : "");
        l->reported = true;
    }
    drop_io(l);
    if (l->conn) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
    PQclear(l->result);
    l->result = NULL;
    l->busy = false;
    l->state = L_DOWN;
    event_add(l->ev_timer, &tv);
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    while (l->n_queue > 0)
        command_done(l, NULL);
    if (was_up)
        tell_state(l, false);
}

/* Sends the head of the queue when nothing is in flight. */
static void send_next(struct pglisten *l)
{
    struct command *c = &l->queue[0];

    if (l->state != L_UP || l->busy || l->n_queue == 0)
        return;
    if (!PQsendQueryParams(l->conn, c->sql, c->nparams, NULL, (const char *const *)c->params, NULL,
                           NULL, 0) ||
        PQflush(l->conn) < 0) {
        go_down(l, "cannot send a command: ");
        return;
    }
    l->busy = true;
    l->failed = false;
}

static void on_command_complete(struct pglisten *l)
{
    PGresult *res = l->result;
    bool failed = l->failed || !res;

    l->result = NULL;
    l->busy = false;
    if (l->state == L_LISTENING) {
        PQclear(res);
        if (failed) {
            go_down(l, "LISTEN failed: ");
            return;
        }
        l->state = L_UP;
        l->backoff_ms = BACKOFF_MIN_MS;
        if (l->reported)
            log_info("database listener: listening again");
        l->reported = false;
        tell_state(l, true);
    } else {
        command_done(l, failed ? NULL : res);
        PQclear(res);
    }
    send_next(l);
}

static void drain(struct pglisten *l)
{
    PGresult *res;
    PGnotify *n;

    if (!PQconsumeInput(l->conn)) {
        go_down(l, "connection lost: ");
        return;
    }
    while (l->busy && !PQisBusy(l->conn)) {
        res = PQgetResult(l->conn);
        if (!res) {
            on_command_complete(l);
            if (!l->conn)
                return; /* went down */
            continue;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            log_warn("database listener: a command failed: %s", PQresultErrorMessage(res));
            l->failed = true;
        }
        PQclear(l->result);
        l->result = res;
    }
    while (l->conn && (n = PQnotifies(l->conn))) {
        for (int i = 0; i < l->n_regs; i++)
            if (strcmp(l->regs[i].channel, n->relname) == 0)
                l->regs[i].fn(n->relname, n->extra ? n->extra : "", l->regs[i].arg);
        PQfreemem(n);
    }
}

static int wait_for(struct pglisten *l, short what)
{
    drop_io(l);
    l->ev_io = event_new(l->base, PQsocket(l->conn), what, on_io, l);
    return l->ev_io && event_add(l->ev_io, NULL) == 0 ? 0 : -1;
}

static void on_connected(struct pglisten *l)
{
    if (PQsetnonblocking(l->conn, 1) != 0 || !PQsendQuery(l->conn, l->listen_sql) ||
        PQflush(l->conn) != 0) {
        go_down(l, "cannot send LISTEN: ");
        return;
    }
    drop_io(l);
    l->ev_io = event_new(l->base, PQsocket(l->conn), EV_READ | EV_PERSIST, on_io, l);
    if (!l->ev_io || event_add(l->ev_io, NULL) < 0) {
        go_down(l, "out of memory");
        return;
    }
    event_del(l->ev_timer);
    l->state = L_LISTENING;
    l->busy = true;
    l->failed = false;
}

static void poll_connect(struct pglisten *l)
{
    switch (PQconnectPoll(l->conn)) {
    case PGRES_POLLING_READING:
        if (wait_for(l, EV_READ) < 0)
            go_down(l, "out of memory");
        break;
    case PGRES_POLLING_WRITING:
        if (wait_for(l, EV_WRITE) < 0)
            go_down(l, "out of memory");
        break;
    case PGRES_POLLING_OK:
        on_connected(l);
        break;
    default:
        go_down(l, "cannot connect: ");
        break;
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct pglisten *l = arg;
    (void)fd;
    (void)what;
    if (l->state == L_CONNECTING)
        poll_connect(l);
    else if (l->state == L_LISTENING || l->state == L_UP)
        drain(l);
}

static void start_connect(struct pglisten *l)
{
    struct timeval timeout = {CONNECT_TIMEOUT_S, 0};
    l->conn = PQconnectStart(l->conninfo);
    if (!l->conn || PQstatus(l->conn) == CONNECTION_BAD) {
        go_down(l, "cannot start connecting: ");
        return;
    }
    l->state = L_CONNECTING;
    event_add(l->ev_timer, &timeout); /* the connect timeout */
    poll_connect(l);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pglisten *l = arg;
    (void)fd;
    (void)what;
    if (l->state == L_DOWN)
        start_connect(l);
    else if (l->state == L_CONNECTING)
        go_down(l, "connecting timed out ");
}

struct pglisten *pglisten_new(struct event_base *base, const char *conninfo)
{
    struct pglisten *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->base = base;
    l->conninfo = strdup(conninfo);
    l->ev_timer = evtimer_new(base, on_timer, l);
    l->backoff_ms = BACKOFF_MIN_MS;
    if (!l->conninfo || !l->ev_timer) {
        pglisten_free(l);
        return NULL;
    }
    return l;
}

static bool channel_ok(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n >= sizeof((struct reg *)0)->channel)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((c[i] >= 'a' && c[i] <= 'z') || c[i] == '_' || (i > 0 && c[i] >= '0' && c[i] <= '9')))
            return false;
    return true;
}

int pglisten_channel(struct pglisten *l, const char *channel, pglisten_notify_fn fn,
                     pglisten_state_fn state, void *arg)
{
    struct reg *r;
    if (l->n_regs == MAX_REGS || !channel_ok(channel) || !fn || l->state != L_DOWN || l->conn)
        return -1;
    r = &l->regs[l->n_regs++];
    snprintf(r->channel, sizeof r->channel, "%s", channel);
    r->fn = fn;
    r->state = state;
    r->arg = arg;
    return 0;
}

void pglisten_start(struct pglisten *l)
{
    size_t cap = 1;
    char *sql;

    for (int i = 0; i < l->n_regs; i++)
        cap += strlen(l->regs[i].channel) + 10;
    sql = calloc(1, cap);
    if (!sql) {
        log_error("database listener: out of memory");
        return;
    }
    for (int i = 0; i < l->n_regs; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen = seen || strcmp(l->regs[i].channel, l->regs[j].channel) == 0;
        if (!seen) /* names checked by channel_ok: plain identifiers */
            snprintf(sql + strlen(sql), cap - strlen(sql), "LISTEN %s;", l->regs[i].channel);
    }
    free(l->listen_sql);
    l->listen_sql = sql;
    start_connect(l);
}

bool pglisten_up(const struct pglisten *l)
{
    return l && l->state == L_UP;
}

int pglisten_query(struct pglisten *l, const char *sql, int nparams, const char *const *params,
                   pglisten_result_fn cb, void *arg)
{
    struct command *c;
    if (!l || l->state != L_UP || l->n_queue == PGLISTEN_MAX_QUEUE || nparams < 0 ||
        nparams > PGLISTEN_MAX_PARAMS)
        return -1;
    c = &l->queue[l->n_queue];
    memset(c, 0, sizeof *c);
    c->sql = strdup(sql);
    for (int i = 0; i < nparams; i++)
        if (params[i] && !(c->params[i] = strdup(params[i]))) {
            c->nparams = i;
            command_clear(c);
            return -1;
        }
    c->nparams = nparams;
    if (!c->sql) {
        command_clear(c);
        return -1;
    }
    c->cb = cb;
    c->arg = arg;
    l->n_queue++;
    send_next(l);
    return 0;
}

void pglisten_free(struct pglisten *l)
{
    if (!l)
        return;
    l->state = L_DOWN; /* callbacks of the commands failed below cannot queue more */
    drop_io(l);
    PQclear(l->result);
    while (l->n_queue > 0)
        command_done(l, NULL);
    if (l->ev_timer)
        event_free(l->ev_timer);
    if (l->conn)
        PQfinish(l->conn);
    free(l->listen_sql);
    free(l->conninfo);
    free(l);
}
