/* SPDX-License-Identifier: Apache-2.0 */
/*
 * livelisten.c - LISTEN accord_live, accord_auth on the main loop.
 *
 * States: DOWN (timer pending) -> CONNECTING (PQconnectPoll) -> LISTENING.
 * Any failure goes back to DOWN and retries after a backoff (as authlisten.c).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "live.h"
#include "livelisten.h"
#include "log.h"

#define LISTEN_SQL        "LISTEN accord_live; LISTEN accord_auth"
#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000
#define CONNECT_TIMEOUT_S 5

enum listen_state { L_DOWN, L_CONNECTING, L_LISTENING };

struct livelisten {
    struct event_base *base;
    char *conninfo;
    PGconn *conn;
    enum listen_state state;
    struct event *ev_io;
    struct event *ev_timer;
    int backoff_ms;
    bool reported;
};

static void on_io(evutil_socket_t fd, short what, void *arg);

static void drop_io(struct livelisten *l)
{
    if (l->ev_io) {
        event_free(l->ev_io);
        l->ev_io = NULL;
    }
}

static void go_down(struct livelisten *l, const char *why)
{
    struct timeval tv = {l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000};

    if (!l->reported) {
        log_warn("live listener: %s%s", why, l->conn ? PQerrorMessage(l->conn) : "");
        l->reported = true;
    }
    drop_io(l);
    if (l->conn) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
    l->state = L_DOWN;
    event_add(l->ev_timer, &tv);
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static int wait_for(struct livelisten *l, short what)
{
    drop_io(l);
    l->ev_io = event_new(l->base, PQsocket(l->conn), what, on_io, l);
    return l->ev_io && event_add(l->ev_io, NULL) == 0 ? 0 : -1;
}

static void drain(struct livelisten *l)
{
    PGresult *res;
    PGnotify *n;

    if (!PQconsumeInput(l->conn)) {
        go_down(l, "connection lost: ");
        return;
    }
    while (!PQisBusy(l->conn) && (res = PQgetResult(l->conn))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            PQclear(res);
            go_down(l, "LISTEN failed: ");
            return;
        }
        PQclear(res);
    }
    while ((n = PQnotifies(l->conn))) {
        live_post(n->relname, n->extra);
        PQfreemem(n);
    }
    live_post_flush();
}

static void on_listening(struct livelisten *l)
{
    if (PQsetnonblocking(l->conn, 1) != 0 || !PQsendQuery(l->conn, LISTEN_SQL) ||
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
    l->backoff_ms = BACKOFF_MIN_MS;
    if (l->reported)
        log_info("live listener: listening again");
    l->reported = false;
    /* Whatever changed while nobody listened: every stream looks again. */
    live_post_resync_all();
}

static void poll_connect(struct livelisten *l)
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
        on_listening(l);
        break;
    default:
        go_down(l, "cannot connect: ");
        break;
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct livelisten *l = arg;
    (void)fd;
    (void)what;
    if (l->state == L_CONNECTING)
        poll_connect(l);
    else if (l->state == L_LISTENING)
        drain(l);
}

static void start_connect(struct livelisten *l)
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
    struct livelisten *l = arg;
    (void)fd;
    (void)what;
    if (l->state == L_DOWN)
        start_connect(l);
    else if (l->state == L_CONNECTING)
        go_down(l, "connecting timed out ");
}

struct livelisten *livelisten_start(struct event_base *base, const char *conninfo)
{
    struct livelisten *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->base = base;
    l->conninfo = strdup(conninfo);
    l->ev_timer = evtimer_new(base, on_timer, l);
    l->backoff_ms = BACKOFF_MIN_MS;
    if (!l->conninfo || !l->ev_timer) {
        livelisten_free(l);
        return NULL;
    }
    start_connect(l);
    return l;
}

void livelisten_free(struct livelisten *l)
{
    if (!l)
        return;
    drop_io(l);
    if (l->ev_timer)
        event_free(l->ev_timer);
    if (l->conn)
        PQfinish(l->conn);
    free(l->conninfo);
    free(l);
}
