/* SPDX-License-Identifier: Apache-2.0 */
/* conntrack.c - connection cap and request-body memory bound (see conntrack.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "clock.h"
#include "bodyread.h"
#include "conntrack.h"
#include "intake.h"
#include "log.h"

struct tracked_conn {
    struct bufferevent *bev; /* a reference of ours: valid until released here */
    struct bodyread *big;    /* reads a large body in large pieces (bodyread.h); may be NULL */
    struct conntrack *ct;
    size_t received;    /* charged to the connection: bytes since its last request reached us */
    long last_input_ms; /* CLOCK_MONOTONIC_COARSE, when bytes last arrived */
    bool paused;        /* reading stopped for memory */
    bool admitted;      /* let through to the end of its body although memory is over */
    TAILQ_ENTRY(tracked_conn) in_all;
    TAILQ_ENTRY(tracked_conn) in_paused;
};

struct conntrack {
    struct worker *w;
    struct event *ev_sweep;
    TAILQ_HEAD(, tracked_conn) all;
    TAILQ_HEAD(, tracked_conn) paused; /* oldest first */
    struct tracked_conn *admitted;
    long cap;             /* this worker's share of --max-connections */
    size_t share;         /* this worker's share of --max-body-memory */
    size_t requests_held; /* part of held charged to requests being answered */
    int receiving;
    bool full; /* accepting stopped at the cap */
    /* read by /metrics from any loop */
    atomic_long n_conns;
    atomic_long held; /* received by connections plus charged to requests */
    atomic_long peak;
};

static void charge(struct conntrack *ct, long delta)
{
    long now = atomic_fetch_add_explicit(&ct->held, delta, memory_order_relaxed) + delta;
    if (now > atomic_load_explicit(&ct->peak, memory_order_relaxed))
        atomic_store_explicit(&ct->peak, now, memory_order_relaxed);
}

static void pause_conn(struct tracked_conn *c)
{
    bufferevent_disable(c->bev, EV_READ);
    bodyread_stop(c->big);
    c->paused = true;
    TAILQ_INSERT_TAIL(&c->ct->paused, c, in_paused);
}

/* Takes c off the paused list; `reading` says whether to start reading again. */
static void unpause_conn(struct tracked_conn *c, bool reading)
{
    if (!c->paused)
        return;
    TAILQ_REMOVE(&c->ct->paused, c, in_paused);
    c->paused = false;
    if (reading)
        bufferevent_enable(c->bev, EV_READ);
}

/* Memory was freed: paused connections read again, oldest first, while it lasts. */
static void resume_waiting(struct conntrack *ct)
{
    struct tracked_conn *c;
    while ((c = TAILQ_FIRST(&ct->paused)) &&
           (size_t)atomic_load_explicit(&ct->held, memory_order_relaxed) <= ct->share)
        unpause_conn(c, true);
}

/* The connection's charge is gone (its request reached us, or it closed). */
static void clear_received(struct tracked_conn *c)
{
    struct conntrack *ct = c->ct;
    if (c->received == 0)
        return;
    ct->receiving--;
    c->received = 0;
    bodyread_stop(c->big); /* the next request may be small */
    if (ct->admitted == c)
        ct->admitted = NULL;
    c->admitted = false;
}

/* evhttp has freed the connection: bufferevent_free() cleared its callbacks. */
static bool conn_freed(const struct tracked_conn *c)
{
    void *evcon = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &evcon);
    return evcon == NULL;
}

static void release_conn(struct tracked_conn *c)
{
    struct conntrack *ct = c->ct;
    charge(ct, -(long)c->received);
    clear_received(c);
    unpause_conn(c, false);
    TAILQ_REMOVE(&ct->all, c, in_all);
    atomic_fetch_sub_explicit(&ct->n_conns, 1, memory_order_relaxed);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    bodyread_free(c->big);
    bufferevent_decref(c->bev); /* the last reference: closes the socket */
    free(c);
    if (ct->full && atomic_load_explicit(&ct->n_conns, memory_order_relaxed) < ct->cap) {
        ct->full = false;
        intake_set_full(ct->w, false);
    }
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct tracked_conn *c = arg;
    struct conntrack *ct = c->ct;
    (void)buf;
    if (info->n_added == 0)
        return;
    if (conn_freed(c)) {
        /* bytes after evhttp let go: nobody reads them; the sweep closes the socket */
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    if (c->received == 0)
        ct->receiving++;
    c->received += info->n_added;
    c->last_input_ms = clock_coarse_ms();
    charge(ct, (long)info->n_added);
    /* Over memory, a connection sending more than a small request waits, unless it is alone. */
    if (!c->paused && !c->admitted && c->received > CONNTRACK_SMALL_BYTES &&
        (size_t)atomic_load_explicit(&ct->held, memory_order_relaxed) > ct->share &&
        (size_t)atomic_load_explicit(&ct->held, memory_order_relaxed) > c->received)
        pause_conn(c);
    else if (!c->paused && c->received > CONNTRACK_SMALL_BYTES)
        bodyread_start(c->big); /* a large body: read it in large pieces */
}

/* What a large body may still read in one piece (bodyread.h): never past the worker's share. */
static size_t body_room(void *arg)
{
    const struct tracked_conn *c = arg;
    size_t held = (size_t)atomic_load_explicit(&c->ct->held, memory_order_relaxed);
    return held < c->ct->share ? c->ct->share - held : 0;
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
    struct worker *w = arg;
    struct conntrack *ct = w->conntrack;
    struct tracked_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

    if (!c || !bev) {
        /* evhttp makes its own bufferevent: the connection is served, just not counted */
        free(c);
        if (bev)
            bufferevent_free(bev);
        return NULL;
    }
    c->bev = bev;
    c->big = bodyread_new(base, bev, body_room, c);
    c->ct = ct;
    bufferevent_incref(bev);
    evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
    TAILQ_INSERT_TAIL(&ct->all, c, in_all);
    if (atomic_fetch_add_explicit(&ct->n_conns, 1, memory_order_relaxed) + 1 >= ct->cap &&
        !ct->full) {
        ct->full = true;
        intake_set_full(w, true);
    }
    return bev;
}

/* A connection past the small allowance is still reading: memory will come back. */
static bool someone_reading(const struct conntrack *ct)
{
    const struct tracked_conn *c;
    TAILQ_FOREACH(c, &ct->all, in_all)
    {
        if (!c->paused && c->received > CONNTRACK_SMALL_BYTES)
            return true;
    }
    return false;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct conntrack *ct = arg;
    struct tracked_conn *c, *next;
    bool freed = false;
    (void)fd;
    (void)what;

    for (c = TAILQ_FIRST(&ct->all); c; c = next) {
        next = TAILQ_NEXT(c, in_all);
        if (conn_freed(c)) {
            release_conn(c);
            freed = true;
        }
    }
    if (freed)
        resume_waiting(ct);
    /* at shutdown, a request whose bytes stopped arriving no longer holds the exit */
    if (freed || ct->w->draining)
        worker_check_drained(ct->w);
    /* Everyone who holds memory waits and no answer will free any: the oldest goes on. */
    if (!ct->admitted && ct->requests_held == 0 && !someone_reading(ct) &&
        (c = TAILQ_FIRST(&ct->paused))) {
        unpause_conn(c, true);
        c->admitted = true;
        ct->admitted = c;
    }
}

int conntrack_init(struct worker *w)
{
    const struct config *cfg = w->cfg;
    long loops = cfg->threads > 0 ? cfg->threads : 1;
    struct timeval every = {0, CONNTRACK_SWEEP_MS * 1000};
    struct conntrack *ct = calloc(1, sizeof *ct);

    if (!ct)
        return -1;
    w->conntrack = ct;
    ct->w = w;
    TAILQ_INIT(&ct->all);
    TAILQ_INIT(&ct->paused);
    ct->cap = cfg->max_connections / loops > 0 ? cfg->max_connections / loops : 1;
    ct->share = (size_t)(cfg->max_body_memory / loops);
    ct->ev_sweep = event_new(w->base, -1, EV_PERSIST, on_sweep, ct);
    if (!ct->ev_sweep || event_add(ct->ev_sweep, &every) < 0)
        return -1;
    evhttp_set_bevcb(w->http, on_new_connection, w);
    return 0;
}

static struct tracked_conn *find_conn(struct conntrack *ct, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct tracked_conn *c;
    if (!bev)
        return NULL;
    /* a worker's share of connections is small; a walk costs less than the request's parse */
    TAILQ_FOREACH(c, &ct->all, in_all)
    {
        if (c->bev == bev)
            return c;
    }
    return NULL;
}

size_t conntrack_request_begins(struct worker *w, struct evhttp_request *req)
{
    struct conntrack *ct = w->conntrack;
    struct tracked_conn *c;
    size_t bytes;

    if (!ct || !(c = find_conn(ct, req)))
        return 0;
    bytes = c->received;
    ct->requests_held += bytes;
    /* evhttp stopped reading this connection until it answers; nothing to resume */
    unpause_conn(c, false);
    clear_received(c);
    return bytes;
}

void conntrack_request_done(struct worker *w, size_t bytes)
{
    struct conntrack *ct = w->conntrack;
    if (!ct || bytes == 0)
        return;
    ct->requests_held -= bytes;
    charge(ct, -(long)bytes);
    resume_waiting(ct);
}

int conntrack_receiving(const struct worker *w)
{
    const struct conntrack *ct = w->conntrack;
    const struct tracked_conn *c;
    long now;
    int n = 0;

    if (!ct || ct->receiving == 0)
        return 0;
    now = clock_coarse_ms();
    TAILQ_FOREACH(c, &ct->all, in_all)
    {
        /* a paused connection is not stalled by its client but by us */
        if (c->received > 0 && (c->paused || now - c->last_input_ms < CONNTRACK_ARRIVING_MS))
            n++;
    }
    return n;
}

void conntrack_release(struct worker *w)
{
    struct conntrack *ct = w->conntrack;
    struct tracked_conn *c;
    if (!ct)
        return;
    if (ct->ev_sweep)
        event_free(ct->ev_sweep);
    while ((c = TAILQ_FIRST(&ct->all))) {
        TAILQ_REMOVE(&ct->all, c, in_all);
        bodyread_free(c->big);
        bufferevent_decref(c->bev);
        free(c);
    }
    free(ct);
    w->conntrack = NULL;
}

void conntrack_stats(const struct worker *w, long *connections, long *held_bytes,
                     long *held_peak_bytes)
{
    struct conntrack *ct = w->conntrack;
    *connections = ct ? atomic_load_explicit(&ct->n_conns, memory_order_relaxed) : 0;
    *held_bytes = ct ? atomic_load_explicit(&ct->held, memory_order_relaxed) : 0;
    *held_peak_bytes = ct ? atomic_load_explicit(&ct->peak, memory_order_relaxed) : 0;
}
