/* SPDX-License-Identifier: Apache-2.0 */
/* livelisten.c - the announcer and the catch-up of the live streams (see livelisten.h). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "live.h"
#include "livelisten.h"
#include "log.h"
#include "pglisten.h"
#include "read_grant.h"

#define LIVE_ANNOUNCE_MS    50   /* at most one NOTIFY per this, per process */
#define LIVE_CATCHUP_MIN_MS 50   /* at most one catch-up per this, per process */
#define LIVE_CATCHUP_SLOW_S 1    /* a catch-up at least this often (other tools, lost NOTIFYs) */
#define LIVE_CHANGES_MAX    5000 /* changes per catch-up; past it every stream looks again */
#define CATCHUP_SQL         "SELECT live_changes($1, $2::int)"
#define ANNOUNCE_SQL        "NOTIFY accord_live"

struct livelisten {
    struct event_base *base;
    struct pglisten *pl;
    char *snapshot; /* of the last catch-up; NULL: none since connecting */
    bool catchup_in_flight, catchup_wanted;
    long long catchup_started_ms;
    long long announced_ms;
    struct event *ev_catchup; /* the coalescing timer */
    struct event *ev_slow;    /* every LIVE_CATCHUP_SLOW_S */
    struct event *ev_announce;
};

static _Atomic(struct livelisten *) the_listener;
static atomic_bool change_pending;

static void add_ms(struct event *ev, long long ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
}

/* ------------------------------------------------------------------------ */
/* The catch-up */

static void catchup_start(struct livelisten *ll);

static void on_changes(const PGresult *res, void *arg)
{
    struct livelisten *ll = arg;
    json_t *doc = NULL, *changes, *v;
    const char *snap;
    bool first = ll->snapshot == NULL;
    size_t i;

    ll->catchup_in_flight = false;
    if (!res || PQntuples(res) != 1 || !(doc = json_loads(PQgetvalue(res, 0, 0), 0, NULL)) ||
        !(snap = json_string_value(json_object_get(doc, "snapshot")))) {
        /* the connection went down (the next one starts afresh) or the query failed */
        if (res)
            log_warn("live catch-up: an answer it cannot read");
        read_grant_invalidate_all(); /* what changed is unknown */
        goto cleanup;
    }
    free(ll->snapshot);
    ll->snapshot = strdup(snap);
    changes = json_object_get(doc, "changes");
    json_array_foreach(changes, i, v) live_post("accord_live", json_string_value(v));
    /* something committed elsewhere (another server, psql) may have revoked a
     * right to read evidence: read_grant.h */
    if (first || json_array_size(changes) > 0)
        read_grant_invalidate_all();
    if (first) { /* whatever changed before this snapshot: every stream looks again */
        live_post_resync_all();
        /* from now on every change is seen: grants may be reused */
        read_grant_set_listening(ll->snapshot != NULL);
    } else {
        live_post_flush();
    }
cleanup:
    json_decref(doc);
    if (ll->catchup_wanted)
        catchup_start(ll);
}

static void catchup_start(struct livelisten *ll)
{
    long long now = clock_ms(), wait = ll->catchup_started_ms + LIVE_CATCHUP_MIN_MS - now;
    char limit[16];
    const char *params[2] = {ll->snapshot, limit};

    ll->catchup_wanted = true;
    if (ll->catchup_in_flight || !pglisten_up(ll->pl))
        return;
    if (wait > 0) {
        if (!event_pending(ll->ev_catchup, EV_TIMEOUT, NULL))
            add_ms(ll->ev_catchup, wait);
        return;
    }
    snprintf(limit, sizeof limit, "%d", LIVE_CHANGES_MAX);
    ll->catchup_wanted = false;
    ll->catchup_started_ms = now;
    if (pglisten_query(ll->pl, CATCHUP_SQL, 2, params, on_changes, ll) == 0)
        ll->catchup_in_flight = true;
    else
        ll->catchup_wanted = true; /* the queue is full: the slow timer tries again */
}

static void on_catchup_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    catchup_start(arg);
}

static void on_live(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    (void)payload; /* announcements carry nothing: the catch-up reads what changed */
    /* an accord server committed a write, maybe one the catch-up does not
     * watch (a calibration session closed): read_grant.h */
    read_grant_invalidate_all();
    catchup_start(arg);
}

static void on_auth(const char *channel, const char *payload, void *arg)
{
    (void)arg;
    live_post(channel, payload);
    live_post_flush();
}

static void on_state(bool up, void *arg)
{
    struct livelisten *ll = arg;
    read_grant_set_listening(false); /* until the first catch-up after connecting */
    free(ll->snapshot);
    ll->snapshot = NULL;
    ll->catchup_in_flight = false;
    if (up)
        catchup_start(ll);
}

/* ------------------------------------------------------------------------ */
/* The announcer */

static void on_announced(const PGresult *res, void *arg)
{
    (void)res; /* a lost announcement is made up for by the catch-ups' slow timer */
    (void)arg;
}

static void on_announce(evutil_socket_t fd, short what, void *arg)
{
    struct livelisten *ll = arg;
    long long now = clock_ms(), wait = ll->announced_ms + LIVE_ANNOUNCE_MS - now;
    (void)fd;
    (void)what;
    if (wait > 0) {
        add_ms(ll->ev_announce, wait);
        return;
    }
    /* changes from here on need another announcement */
    atomic_store(&change_pending, false);
    ll->announced_ms = now;
    if (pglisten_query(ll->pl, ANNOUNCE_SQL, 0, NULL, on_announced, ll) < 0)
        catchup_start(ll); /* not listening: at least this server's streams look */
}

void livelisten_announce(void)
{
    struct livelisten *ll;
    if (atomic_load_explicit(&change_pending, memory_order_relaxed) ||
        atomic_exchange(&change_pending, true))
        return;
    if ((ll = atomic_load(&the_listener)))
        event_active(ll->ev_announce, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------------------ */

static void on_slow(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    catchup_start(arg);
}

struct livelisten *livelisten_start(struct event_base *base, struct pglisten *pl)
{
    struct livelisten *ll = calloc(1, sizeof *ll);
    struct timeval slow = {LIVE_CATCHUP_SLOW_S, 0};

    if (!ll)
        return NULL;
    ll->base = base;
    ll->pl = pl;
    ll->ev_catchup = evtimer_new(base, on_catchup_timer, ll);
    ll->ev_slow = event_new(base, -1, EV_PERSIST, on_slow, ll);
    ll->ev_announce = evtimer_new(base, on_announce, ll);
    if (!ll->ev_catchup || !ll->ev_slow || !ll->ev_announce ||
        pglisten_channel(pl, "accord_live", on_live, on_state, ll) < 0 ||
        pglisten_channel(pl, "accord_auth", on_auth, NULL, ll) < 0) {
        livelisten_free(ll);
        return NULL;
    }
    event_add(ll->ev_slow, &slow);
    atomic_store(&the_listener, ll);
    return ll;
}

void livelisten_free(struct livelisten *ll)
{
    if (!ll)
        return;
    atomic_store(&the_listener, NULL);
    if (ll->ev_catchup)
        event_free(ll->ev_catchup);
    if (ll->ev_slow)
        event_free(ll->ev_slow);
    if (ll->ev_announce)
        event_free(ll->ev_announce);
    free(ll->snapshot);
    free(ll);
}
