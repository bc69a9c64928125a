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
#include <uuid/uuid.h>

#include "live.h"
#include "livelisten.h"
#include "log.h"

#define LISTEN_SQL        "LISTEN accord_live; LISTEN accord_auth"
#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000
#define CONNECT_TIMEOUT_S 5
#define REPORT_EVERY_S    30 /* live_server_report(): a report older than 90 s does not count */
#define REPORT_SQL        "SELECT live_server_report($1::uuid, $2::int)"

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
    /* this process's open streams, told to the database (live_server_report) */
    char server_id[37];
    struct event *ev_report; /* activated by live.c's hook (any thread), and every 30 s */
    bool busy;               /* a command is in progress on the connection */
    bool report_wanted;      /* send a report when the connection is free */
    int report_sent;         /* the count in the report in flight, or -1 */
    int report_done;         /* the count last reported, or -1 (none since connecting) */
    char report_text[16];
};

static void on_io(evutil_socket_t fd, short what, void *arg);
static void send_report(struct livelisten *l);

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
    l->busy = false;
    l->report_sent = l->report_done = -1;
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
    while (l->busy && !PQisBusy(l->conn)) {
        res = PQgetResult(l->conn);
        if (!res) { /* the command is complete */
            l->busy = false;
            if (l->report_sent >= 0) {
                /* streams opened while nobody announced changes: they look again */
                if (l->report_done <= 0 && l->report_sent > 0)
                    live_post_resync_all();
                l->report_done = l->report_sent;
                l->report_sent = -1;
            }
            break;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            PQclear(res);
            go_down(l, l->report_sent >= 0 ? "report failed: " : "LISTEN failed: ");
            return;
        }
        PQclear(res);
    }
    while ((n = PQnotifies(l->conn))) {
        live_post(n->relname, n->extra);
        PQfreemem(n);
    }
    live_post_flush();
    if (!l->busy && l->report_wanted)
        send_report(l);
}

static void send_report(struct livelisten *l)
{
    const char *params[2] = {l->server_id, l->report_text};
    int n = live_streams_open();

    l->report_wanted = true;
    if (l->state != L_LISTENING || l->busy)
        return; /* when the connection is free */
    l->report_wanted = false;
    if (n == l->report_done && n == 0)
        return; /* nothing to say: no row says this server watches */
    snprintf(l->report_text, sizeof l->report_text, "%d", n);
    if (!PQsendQueryParams(l->conn, REPORT_SQL, 2, NULL, params, NULL, NULL, 0) ||
        PQflush(l->conn) != 0) {
        go_down(l, "cannot send a report: ");
        return;
    }
    l->busy = true;
    l->report_sent = n;
}

static void on_report(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_report(arg);
}

/* live.c's hook: the first stream opened or the last one ended (any thread). */
static void on_watch_change(void *arg)
{
    struct livelisten *l = arg;
    event_active(l->ev_report, EV_READ, 0);
}

static void on_listening(struct livelisten *l)
{
    if (PQsetnonblocking(l->conn, 1) != 0 || !PQsendQuery(l->conn, LISTEN_SQL) ||
        PQflush(l->conn) != 0) {
        go_down(l, "cannot send LISTEN: ");
        return;
    }
    l->busy = true;
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
    l->report_wanted = true; /* once LISTEN is done */
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
    struct timeval every = {REPORT_EVERY_S, 0};
    uuid_t id;
    if (!l)
        return NULL;
    l->base = base;
    l->conninfo = strdup(conninfo);
    l->ev_timer = evtimer_new(base, on_timer, l);
    l->ev_report = event_new(base, -1, EV_PERSIST, on_report, l);
    l->backoff_ms = BACKOFF_MIN_MS;
    l->report_sent = l->report_done = -1;
    uuid_generate_random(id);
    uuid_unparse_lower(id, l->server_id);
    if (!l->conninfo || !l->ev_timer || !l->ev_report) {
        livelisten_free(l);
        return NULL;
    }
    event_add(l->ev_report, &every);
    live_set_watch_hook(on_watch_change, l);
    start_connect(l);
    return l;
}

/*
 * At shutdown this server stops watching at once (else its last report would
 * keep the triggers announcing for up to 90 s): one blocking call, on a
 * connection that is up, after whatever it was doing.
 */
static void report_gone(struct livelisten *l)
{
    const char *params[2] = {l->server_id, "0"};
    PGresult *res;

    if (l->state != L_LISTENING || l->report_done <= 0 || PQsetnonblocking(l->conn, 0) != 0)
        return;
    while ((res = PQgetResult(l->conn)))
        PQclear(res);
    PQclear(PQexecParams(l->conn, REPORT_SQL, 2, NULL, params, NULL, NULL, 0));
}

void livelisten_free(struct livelisten *l)
{
    if (!l)
        return;
    live_set_watch_hook(NULL, NULL);
    report_gone(l);
    drop_io(l);
    if (l->ev_timer)
        event_free(l->ev_timer);
    if (l->ev_report)
        event_free(l->ev_report);
    if (l->conn)
        PQfinish(l->conn);
    free(l->conninfo);
    free(l);
}
