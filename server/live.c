/* SPDX-License-Identifier: Apache-2.0 */
/*
 * live.c - the event loops' live streams (see live.h).
 *
 * Threads: live_post*() run on the main thread (the listener) and only touch
 * a hub's inbox under its mutex; everything else runs on the hub's own loop.
 * The per-user stream counts are process-wide (a user's streams may land on
 * any loop), under one mutex, touched only when a stream opens or ends.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "clock.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "sse.h"

#define LIVE_MAX_HUBS         64
#define LIVE_INBOX_MAX        16384 /* notifications waiting per hub; past it: resync all */
#define LIVE_DIRTY_MAX        4096  /* ids per kind per batch; past it: refresh everything */
#define LIVE_BATCH_USERS      2000  /* streams (re)opened per batch */
#define LIVE_COALESCE_MS      20    /* changes gathered before a batch starts */
#define LIVE_BATCH_DUTY       4 /* a batch that took t waits 3t more after it: <= 1/4 of a connection */
#define LIVE_BATCH_GAP_MAX_MS 500          /* ... but no more than this */
#define LIVE_RETRY_MS         1000         /* after a failed batch */
#define LIVE_RECHECK_S        60           /* every stream's credential checked again */
#define LIVE_MAX_BACKLOG      (256 * 1024) /* bytes a client leaves unread before it is dropped */
#define LIVE_RECONNECT_MS     3000         /* the browser's reconnection delay (retry:) */
#define LIVE_MAX_GRANTS       100          /* as live_batch() */

struct live_grant {
    char credential_id[37];
    bool expert;
    bool sent;
    long long first, second, adjudication;
    bool paused;
};

enum stream_flag {
    S_SNAPSHOT = 1 << 0,    /* needs its user's state (open, resume, grants changed) */
    S_CHECK = 1 << 1,       /* its credential must be checked again */
    S_IN_SNAPSHOT = 1 << 2, /* part of the batch in flight: snapshot */
    S_IN_CHECK = 1 << 3,    /* part of the batch in flight: check */
};

struct live_stream {
    TAILQ_ENTRY(live_stream) link;
    struct live_hub *hub;
    struct request *r;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    char user_id[37];
    char cred_kind[8];                 /* "bearer" or "session" (auth_lookup's kinds) */
    char cred_hash[AUTH_HASH_LEN + 1]; /* hex SHA-256 of the secret */
    long long last_id;                 /* of the last event sent; ids only grow */
    long long since; /* the next snapshot replays own submissions since this id; -1 none */
    unsigned flags;
    bool lead;
    bool ready_sent;
    bool ending;  /* `end` queued; waiting for it to be written */
    size_t bytes; /* sent, for the access log */
    struct live_grant *grants;
    int n_grants;
};

TAILQ_HEAD(stream_list, live_stream);

struct live_note {
    char kind; /* s, c, u (accord_live); A (accord_auth); R (resync all) */
    char credential_id[37];
    char submission_id[37];
    char user_id[37];
    char flags[8];
    char auth[80]; /* accord_auth's payload: "session:HASH", "bearer:HASH", "user:ID" */
};

struct live_hub {
    struct worker *w;
    struct stream_list streams; /* active (not ending) */
    struct stream_list ending;
    int n_streams, n_leads;
    json_t *watched; /* credential id -> number of this hub's grants on it */
    json_t *users;   /* user id -> number of this hub's streams */
    /* dirty, gathered for the next batch */
    json_t *creds, *subs, *routing;
    bool all_creds;
    bool stopping;
    bool query_in_flight;
    bool flush_pending;
    long long batch_started_ms; /* monotonic */
    long long next_batch_ms;    /* no batch starts before (monotonic) */
    char *query_text;           /* the batch in flight's parameter */
    const char *query_params[1];
    json_t *query_req; /* ... and as JSON, to restore it when the batch fails */
    struct event *ev_inbox, *ev_flush, *ev_heartbeat, *ev_recheck;
    /* written by the listener thread */
    pthread_mutex_t mu;
    struct live_note *inbox;
    size_t n_inbox, cap_inbox;
    bool inbox_overflow;
    bool inbox_signal;
};

static pthread_mutex_t hubs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct live_hub *hubs[LIVE_MAX_HUBS];

/* Process-wide stream counts, per user and in all. */
struct user_count {
    struct user_count *next;
    char user_id[37];
    int n;
};
#define USER_BUCKETS 1024
static pthread_mutex_t users_mu = PTHREAD_MUTEX_INITIALIZER;
static struct user_count *user_buckets[USER_BUCKETS];
static int streams_total;

static atomic_long m_opened, m_refused_user, m_refused_total, m_events, m_batches, m_batch_failures,
    m_notes, m_dropped_slow;

static unsigned bucket_of(const char *user_id)
{
    unsigned h = 2166136261u;
    for (const char *p = user_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % USER_BUCKETS;
}

/* 0, or 1 when the user has max_user streams already, 2 when the process has max_total. */
static int streams_reserve(const char *user_id, long max_user, long max_total)
{
    struct user_count **pp, *uc;
    int rc = 0;

    pthread_mutex_lock(&users_mu);
    for (pp = &user_buckets[bucket_of(user_id)]; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->user_id, user_id) == 0)
            break;
    uc = *pp;
    if (uc && uc->n >= max_user) {
        rc = 1;
    } else if (streams_total >= max_total) {
        rc = 2;
    } else if (!uc && !(uc = calloc(1, sizeof *uc))) {
        rc = 2;
    } else {
        if (!*pp) {
            snprintf(uc->user_id, sizeof uc->user_id, "%s", user_id);
            *pp = uc;
        }
        uc->n++;
        streams_total++;
    }
    pthread_mutex_unlock(&users_mu);
    return rc;
}

static void streams_release(const char *user_id)
{
    struct user_count **pp;

    pthread_mutex_lock(&users_mu);
    for (pp = &user_buckets[bucket_of(user_id)]; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->user_id, user_id) == 0) {
            struct user_count *uc = *pp;
            streams_total--;
            if (--uc->n == 0) {
                *pp = uc->next;
                free(uc);
            }
            break;
        }
    pthread_mutex_unlock(&users_mu);
}

int live_streams_open(void)
{
    int n;
    pthread_mutex_lock(&users_mu);
    n = streams_total;
    pthread_mutex_unlock(&users_mu);
    return n;
}

/* json_t counters: key -> integer, removed at zero. */
static void count_add(json_t *map, const char *key, int delta)
{
    json_t *v = json_object_get(map, key);
    json_int_t n = (v ? json_integer_value(v) : 0) + delta;
    if (n <= 0)
        json_object_del(map, key);
    else
        json_object_set_new(map, key, json_integer(n));
}

static void schedule_flush(struct live_hub *h, int ms);

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Sending */

static void stream_finish(struct live_stream *s, bool req_is_ours);

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct live_stream *s = arg;
    (void)evcon;
    /*
     * The client went away. A streaming request is detached from its
     * connection first (then it is ours to free); when the whole server is
     * being freed it is still attached and libevent frees it.
     */
    stream_finish(s, evhttp_request_get_connection(s->req) == NULL);
}

static void set_grants(struct live_stream *s, struct live_grant *grants, int n)
{
    struct live_hub *h = s->hub;
    for (int i = 0; i < s->n_grants; i++)
        count_add(h->watched, s->grants[i].credential_id, -1);
    free(s->grants);
    s->grants = grants;
    s->n_grants = n;
    for (int i = 0; i < n; i++)
        count_add(h->watched, grants[i].credential_id, 1);
}

static void log_stream(struct live_stream *s)
{
    struct timespec now;
    struct log_access a = {
        .method = "GET",
        .route = "/v1/events",
        .status = 200,
        .bytes = s->bytes,
        .user_id = s->user_id,
        .request_id = s->r->request_id,
        .worker = s->hub->w->id,
    };
    clock_gettime(CLOCK_MONOTONIC, &now);
    a.duration_ms = (double)(now.tv_sec - s->r->started.tv_sec) * 1000.0 +
                    (double)(now.tv_nsec - s->r->started.tv_nsec) / 1e6;
    metrics_count_response(200);
    metrics_observe_request(s->r->route, 200, a.duration_ms / 1000.0);
    log_access(&a);
}

/* Leaves the active list (no more events); the stream object lives on until finished. */
static void stream_detach(struct live_stream *s)
{
    struct live_hub *h = s->hub;
    if (s->ending)
        return;
    s->ending = true;
    TAILQ_REMOVE(&h->streams, s, link);
    TAILQ_INSERT_TAIL(&h->ending, s, link);
    h->n_streams--;
    if (s->lead)
        h->n_leads--;
    count_add(h->users, s->user_id, -1);
    set_grants(s, NULL, 0);
}

/*
 * The end of a stream, exactly once: the closing callback is removed, the
 * request finished (when it is still ours) and its context freed.
 */
static void stream_finish(struct live_stream *s, bool req_is_ours)
{
    struct live_hub *h = s->hub;

    stream_detach(s);
    TAILQ_REMOVE(&h->ending, s, link);
    if (s->evcon && req_is_ours && evhttp_request_get_connection(s->req))
        evhttp_connection_set_closecb(s->evcon, NULL, NULL);
    if (req_is_ours)
        evhttp_send_reply_end(s->req); /* frees a detached request */
    log_stream(s);
    streams_release(s->user_id);
    request_free(s->r); /* the worker's in-flight count */
    free(s);
}

static void on_end_written(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    stream_finish(arg, true);
}

static size_t backlog(struct live_stream *s)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* A client that reads nothing: dropped without ceremony (it would not read `end`). */
static void stream_drop(struct live_stream *s)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->req);
    atomic_fetch_add(&m_dropped_slow, 1);
    log_warn("live stream of user %s: %zu bytes unread; disconnecting", s->user_id, backlog(s));
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    stream_finish(s, false);
    evhttp_connection_free(evcon); /* frees the request too */
}

/* Sends buf's content (drained) on s. Returns -1 when s was dropped (do not touch it). */
static int stream_send(struct live_stream *s, struct evbuffer *buf)
{
    size_t n = evbuffer_get_length(buf);
    if (n == 0)
        return 0;
    if (backlog(s) > LIVE_MAX_BACKLOG) {
        evbuffer_drain(buf, n);
        stream_drop(s);
        return -1;
    }
    s->bytes += n;
    evhttp_send_reply_chunk(s->req, buf);
    return 0;
}

/* One event on s; id grows monotonically. Returns -1 when s was dropped. Borrows data. */
static int stream_event(struct live_stream *s, long long id, const char *name, json_t *data)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    int rc = 0;

    if (id > s->last_id)
        s->last_id = id;
    if (buf && text && sse_event(buf, s->last_id, name, text) == 0) {
        atomic_fetch_add(&m_events, 1);
        rc = stream_send(s, buf);
    }
    free(text);
    if (buf)
        evbuffer_free(buf);
    return rc;
}

/* Ends s with `end` {"reason": reason}; it finishes once that is written (or the client goes). */
static void stream_end(struct live_stream *s, const char *reason)
{
    struct evbuffer *buf = evbuffer_new();
    json_t *data = json_pack("{s:s}", "reason", reason);
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;

    stream_detach(s);
    if (buf && text && sse_event(buf, 0, "end", text) == 0 && backlog(s) <= LIVE_MAX_BACKLOG) {
        s->bytes += evbuffer_get_length(buf);
        evhttp_send_reply_chunk_with_cb(s->req, buf, on_end_written, s);
    } else {
        stream_drop(s);
    }
    free(text);
    json_decref(data);
    if (buf)
        evbuffer_free(buf);
}

/* ------------------------------------------------------------------------ */
/* The batch: one query for everything this hub needs now */

static json_t *keys_array(json_t *set)
{
    json_t *arr = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(set, key, v) json_array_append_new(arr, json_string(key));
    return arr;
}

static void dirty_add(struct live_hub *h, json_t *set, const char *id)
{
    if (json_object_size(set) >= LIVE_DIRTY_MAX) {
        /* too many at once: look at everything instead */
        struct live_stream *s;
        TAILQ_FOREACH(s, &h->streams, link)
        {
            s->flags |= S_SNAPSHOT;
            if (s->since < 0)
                s->since = s->last_id > 0 ? s->last_id : -1;
        }
        h->all_creds = true;
        json_object_clear(set);
        return;
    }
    json_object_set_new(set, id, json_true());
}

static void on_batch(const struct db_result *res, void *arg);

static void batch_start(struct live_hub *h)
{
    json_t *req = json_object(), *users = json_array(), *check = json_array(), *creds;
    json_t *by_user = json_object(), *seen_cred = json_object();
    struct live_stream *s;
    int n_users = 0;

    h->flush_pending = false;
    if (h->query_in_flight || h->stopping || !req || !users || !check || !by_user || !seen_cred)
        goto cleanup;
    TAILQ_FOREACH(s, &h->streams, link)
    {
        if ((s->flags & S_SNAPSHOT) && n_users < LIVE_BATCH_USERS) {
            /* one entry per user; replay from the oldest id any of its streams wants */
            json_t *e = json_object_get(by_user, s->user_id);
            s->flags = (s->flags & ~S_SNAPSHOT) | S_IN_SNAPSHOT;
            if (!e) {
                e = json_pack("{s:s,s:n}", "u", s->user_id, "since");
                json_object_set_new(by_user, s->user_id, e);
                json_array_append(users, e);
                n_users++;
            }
            if (s->since > 0) {
                json_t *old = json_object_get(e, "since");
                if (json_is_null(old) || json_integer_value(old) > s->since)
                    json_object_set_new(e, "since", json_integer(s->since));
            }
        }
        if (s->flags & S_CHECK) {
            s->flags = (s->flags & ~S_CHECK) | S_IN_CHECK;
            if (!json_object_get(seen_cred, s->cred_hash)) {
                json_object_set_new(seen_cred, s->cred_hash, json_true());
                json_array_append_new(check,
                                      json_pack("{s:s,s:s}", "k", s->cred_kind, "h", s->cred_hash));
            }
        }
    }
    creds = h->all_creds ? keys_array(h->watched) : keys_array(h->creds);
    h->all_creds = false;
    json_object_set_new(req, "users", users);
    json_object_set_new(req, "check", check);
    json_object_set_new(req, "creds", creds);
    json_object_set_new(req, "subs", keys_array(h->subs));
    json_object_set_new(req, "routing", keys_array(h->routing));
    users = check = NULL;
    json_object_clear(h->creds);
    json_object_clear(h->subs);
    json_object_clear(h->routing);
    if (n_users == 0 && json_array_size(json_object_get(req, "check")) == 0 &&
        json_array_size(json_object_get(req, "creds")) == 0 &&
        json_array_size(json_object_get(req, "subs")) == 0 &&
        json_array_size(json_object_get(req, "routing")) == 0)
        goto cleanup;
    h->query_text = json_dumps(req, JSON_COMPACT);
    if (!h->query_text) {
        schedule_flush(h, LIVE_RETRY_MS);
        goto cleanup;
    }
    h->query_params[0] = h->query_text; /* the pool keeps the array until the callback */
    if (pgpool_query(h->w->pool, STMT_LIVE_BATCH, h->query_params, on_batch, h) != DB_OK) {
        struct db_result fail = {.status = DB_BUSY};
        h->query_req = req;
        req = NULL;
        h->query_in_flight = true;
        on_batch(&fail, h);
        goto cleanup;
    }
    h->query_in_flight = true;
    h->batch_started_ms = clock_ms();
    h->query_req = req;
    req = NULL;
    atomic_fetch_add(&m_batches, 1);
cleanup:
    json_decref(req);
    json_decref(users);
    json_decref(check);
    json_decref(by_user);
    json_decref(seen_cred);
}

/* A failed batch: everything in it is wanted again, a little later. */
static void batch_restore(struct live_hub *h)
{
    struct live_stream *s;
    size_t i;
    json_t *v;

    TAILQ_FOREACH(s, &h->streams, link)
    {
        if (s->flags & S_IN_SNAPSHOT)
            s->flags |= S_SNAPSHOT;
        if (s->flags & S_IN_CHECK)
            s->flags |= S_CHECK;
        s->flags &= ~(unsigned)(S_IN_SNAPSHOT | S_IN_CHECK);
    }
    if (!h->query_req)
        return;
    json_array_foreach(json_object_get(h->query_req, "creds"), i, v)
        dirty_add(h, h->creds, json_string_value(v));
    json_array_foreach(json_object_get(h->query_req, "subs"), i, v)
        dirty_add(h, h->subs, json_string_value(v));
    json_array_foreach(json_object_get(h->query_req, "routing"), i, v)
        dirty_add(h, h->routing, json_string_value(v));
}

static bool grant_counts(struct live_grant *g, json_t *q)
{
    long long first = json_integer_value(json_object_get(q, "first"));
    long long second = json_integer_value(json_object_get(q, "second"));
    long long adjudication = json_integer_value(json_object_get(q, "adjudication"));
    bool paused = strcmp(json_string_value(json_object_get(q, "peer_review")) ?: "", "paused") == 0;
    bool changed = !g->sent || g->first != first || g->second != second ||
                   g->adjudication != adjudication || g->paused != paused;
    g->first = first;
    g->second = second;
    g->adjudication = adjudication;
    g->paused = paused;
    g->sent = true;
    return changed;
}

/* The `queue` event of one grant. */
static json_t *queue_event(const struct live_grant *g, json_t *q)
{
    /* what this pool claims: peers first scores; experts every stage */
    long long waiting = g->expert ? g->first + g->second + g->adjudication : g->first;
    return json_pack("{s:s,s:O,s:s,s:I,s:{s:I,s:I,s:I},s:s}", "credential_id", g->credential_id,
                     "title", json_object_get(q, "title"), "pool", g->expert ? "expert" : "peer",
                     "waiting", (json_int_t)waiting, "stages", "first", (json_int_t)g->first,
                     "second", (json_int_t)g->second, "adjudication", (json_int_t)g->adjudication,
                     "peer_review", g->paused ? "paused" : "active");
}

/* A snapshot's user state onto s. Returns -1 when s ended or was dropped. */
static int apply_user(struct live_stream *s, json_t *u)
{
    struct live_hub *h = s->hub;
    json_t *grants = json_object_get(u, "grants"), *roles = json_object_get(u, "roles"), *v;
    struct live_grant *gs = NULL;
    size_t i, n = json_array_size(grants);
    bool lead = false;

    if (!json_is_true(json_object_get(u, "active"))) {
        stream_end(s, "disabled");
        return -1;
    }
    json_array_foreach(roles, i, v) if (strcmp(json_string_value(v) ?: "", "lead") == 0) lead =
        true;
    if (lead != s->lead)
        h->n_leads += lead ? 1 : -1;
    s->lead = lead;
    if (n > LIVE_MAX_GRANTS)
        n = LIVE_MAX_GRANTS;
    if (n && !(gs = calloc(n, sizeof *gs)))
        n = 0;
    for (i = 0; i < n; i++) {
        json_t *g = json_array_get(grants, i);
        snprintf(gs[i].credential_id, sizeof gs[i].credential_id, "%s",
                 json_string_value(json_object_get(g, "credential_id")) ?: "");
        gs[i].expert = strcmp(json_string_value(json_object_get(g, "pool")) ?: "", "expert") == 0;
    }
    set_grants(s, gs, (int)n);
    return 0;
}

static void on_batch(const struct db_result *res, void *arg)
{
    struct live_hub *h = arg;
    json_t *doc = NULL, *users, *queue, *subs, *routing, *invalid, *by_earner = NULL, *bad = NULL,
           *asked_routing;
    struct live_stream *s, *next;
    json_error_t err;
    long long id;
    size_t i;
    json_t *v;

    h->query_in_flight = false;
    /*
     * Queue counts are counted afresh (O(queue) per credential): under a
     * burst of changes the batches keep to a share of one connection instead
     * of running back to back.
     */
    if (h->batch_started_ms > 0) {
        long long now = clock_ms(), gap = (LIVE_BATCH_DUTY - 1) * (now - h->batch_started_ms);
        h->next_batch_ms = now + (gap < LIVE_BATCH_GAP_MAX_MS ? gap : LIVE_BATCH_GAP_MAX_MS);
    }
    if (res->status != DB_OK || !res->value ||
        !(doc = json_loads(res->value, JSON_REJECT_DUPLICATES, &err))) {
        atomic_fetch_add(&m_batch_failures, 1);
        if (res->status == DB_ERROR)
            log_error("live batch failed: %s %s", res->sqlstate ? res->sqlstate : "",
                      res->message ? res->message : "");
        if (!h->stopping) {
            batch_restore(h);
            schedule_flush(h, LIVE_RETRY_MS);
        }
        goto cleanup;
    }
    id = json_integer_value(json_object_get(doc, "now_ms"));
    if (id <= 0)
        id = now_ms();
    users = json_object_get(doc, "users");
    queue = json_object_get(doc, "queue");
    subs = json_object_get(doc, "subs");
    routing = json_object_get(doc, "routing");
    invalid = json_object_get(doc, "invalid");
    asked_routing = json_object_get(h->query_req, "routing");

    /* credentials no longer valid: the stream ends */
    bad = json_object();
    json_array_foreach(invalid, i, v)
        json_object_set_new(bad, json_string_value(json_object_get(v, "h")) ?: "", json_true());
    /* changed submissions by earner */
    by_earner = json_object();
    json_array_foreach(subs, i, v)
    {
        const char *earner = json_string_value(json_object_get(v, "earner_id"));
        json_t *list;
        if (!earner || !json_object_get(h->users, earner))
            continue;
        if (!(list = json_object_get(by_earner, earner))) {
            list = json_array();
            json_object_set_new(by_earner, earner, list);
        }
        json_array_append(list, v);
    }

    for (s = TAILQ_FIRST(&h->streams); s; s = next) {
        bool snapshot = (s->flags & S_IN_SNAPSHOT) != 0;
        json_t *u = snapshot ? json_object_get(users, s->user_id) : NULL;
        json_t *mine = json_object_get(by_earner, s->user_id);
        next = TAILQ_NEXT(s, link);

        if ((s->flags & S_IN_CHECK) && json_object_get(bad, s->cred_hash)) {
            stream_end(s, "signed_out");
            continue;
        }
        s->flags &= ~(unsigned)(S_IN_SNAPSHOT | S_IN_CHECK);
        if (snapshot && !u) { /* not in this batch after all (bounded): next one */
            s->flags |= S_SNAPSHOT;
            snapshot = false;
        }
        if (snapshot && apply_user(s, u) < 0)
            continue;
        /* own submissions: replayed since Last-Event-ID, then changed ones */
        if (snapshot && s->since > 0) {
            if (json_is_true(json_object_get(u, "more"))) {
                json_t *ev = json_pack("{s:s}", "reason", "too_many_changes");
                int rc = stream_event(s, id, "resync", ev);
                json_decref(ev);
                if (rc < 0)
                    continue;
            } else {
                json_array_foreach(json_object_get(u, "subs"), i, v)
                {
                    json_t *ev = json_deep_copy(v);
                    int rc = stream_event(s, id, "submission", ev);
                    json_decref(ev);
                    if (rc < 0)
                        goto next_stream;
                }
            }
        }
        json_array_foreach(mine, i, v)
        {
            json_t *ev = json_deep_copy(v);
            int rc;
            json_object_del(ev, "earner_id");
            rc = stream_event(s, id, "submission", ev);
            json_decref(ev);
            if (rc < 0)
                goto next_stream;
        }
        /* queue counts of the stream's grants */
        for (int g = 0; g < s->n_grants; g++) {
            json_t *q = json_object_get(queue, s->grants[g].credential_id);
            json_t *ev;
            int rc;
            if (!q || (!grant_counts(&s->grants[g], q) && !snapshot))
                continue;
            ev = queue_event(&s->grants[g], q);
            rc = stream_event(s, id, "queue", ev);
            json_decref(ev);
            if (rc < 0)
                goto next_stream;
        }
        /* routing, for leads: all on a snapshot, else what was asked for */
        if (s->lead) {
            const char *cid;
            json_object_foreach(routing, cid, v)
            {
                bool asked = false;
                size_t k;
                json_t *a;
                json_array_foreach(asked_routing, k, a) if (strcmp(json_string_value(a), cid) == 0)
                    asked = true;
                if (!snapshot && !asked)
                    continue;
                if (stream_event(s, id, "routing", v) < 0)
                    goto next_stream;
            }
        }
        if (snapshot) {
            json_t *ev = json_pack("{s:b,s:i}", "resumed", s->since > 0, "grants", s->n_grants);
            int rc = stream_event(s, id, "ready", ev);
            json_decref(ev);
            if (rc < 0)
                continue;
            s->since = -1;
            s->ready_sent = true;
        }
    next_stream:;
    }
cleanup:
    json_decref(doc);
    json_decref(by_earner);
    json_decref(bad);
    json_decref(h->query_req);
    h->query_req = NULL;
    free(h->query_text);
    h->query_text = NULL;
    if (h->stopping)
        return;
    schedule_flush(h, LIVE_COALESCE_MS);
}

static bool anything_dirty(struct live_hub *h)
{
    struct live_stream *s;
    if (h->all_creds || json_object_size(h->creds) || json_object_size(h->subs) ||
        json_object_size(h->routing))
        return true;
    TAILQ_FOREACH(s, &h->streams, link)
    if (s->flags & (S_SNAPSHOT | S_CHECK))
        return true;
    return false;
}

static void schedule_flush(struct live_hub *h, int ms)
{
    struct timeval tv;
    long long wait = h->next_batch_ms - clock_ms();
    if (h->stopping || h->query_in_flight || h->flush_pending || !anything_dirty(h))
        return;
    if (wait > ms)
        ms = (int)wait;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    h->flush_pending = true;
    event_add(h->ev_flush, &tv);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    batch_start(arg);
}

/* ------------------------------------------------------------------------ */
/* Notifications from the listener */

static void mark_user(struct live_hub *h, const char *user_id, unsigned flags)
{
    struct live_stream *s;
    TAILQ_FOREACH(s, &h->streams, link)
    if (strcmp(s->user_id, user_id) == 0) {
        if ((flags & S_SNAPSHOT) && s->since < 0 && s->last_id > 0)
            s->since = s->last_id;
        s->flags |= flags;
    }
}

static void apply_note(struct live_hub *h, const struct live_note *n)
{
    struct live_stream *s;

    switch (n->kind) {
    case 's':
        if (strchr(n->flags, 'q') && json_object_get(h->watched, n->credential_id))
            dirty_add(h, h->creds, n->credential_id);
        if (strchr(n->flags, 'e') && json_object_get(h->users, n->user_id))
            dirty_add(h, h->subs, n->submission_id);
        if (strchr(n->flags, 'a') && h->n_leads > 0)
            dirty_add(h, h->routing, n->credential_id);
        break;
    case 'c':
        if (json_object_get(h->watched, n->credential_id))
            dirty_add(h, h->creds, n->credential_id);
        if (h->n_leads > 0)
            dirty_add(h, h->routing, n->credential_id);
        break;
    case 'u':
        mark_user(h, n->user_id, S_SNAPSHOT);
        break;
    case 'A':
        if (strncmp(n->auth, "user:", 5) == 0) {
            mark_user(h, n->auth + 5, S_SNAPSHOT | S_CHECK);
        } else {
            const char *colon = strchr(n->auth, ':');
            TAILQ_FOREACH(s, &h->streams, link)
            if (colon && strcmp(s->cred_hash, colon + 1) == 0)
                s->flags |= S_CHECK;
        }
        break;
    case 'R':
        TAILQ_FOREACH(s, &h->streams, link)
        {
            if (s->since < 0 && s->last_id > 0)
                s->since = s->last_id;
            s->flags |= S_SNAPSHOT | S_CHECK;
        }
        break;
    default:
        break;
    }
}

static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
    struct live_hub *h = arg;
    struct live_note *notes;
    size_t n;
    bool overflow;
    (void)fd;
    (void)what;

    pthread_mutex_lock(&h->mu);
    notes = h->inbox;
    n = h->n_inbox;
    overflow = h->inbox_overflow;
    h->inbox = NULL;
    h->n_inbox = h->cap_inbox = 0;
    h->inbox_overflow = false;
    pthread_mutex_unlock(&h->mu);
    if (overflow) {
        struct live_note all = {.kind = 'R'};
        apply_note(h, &all);
        h->all_creds = true;
    }
    for (size_t i = 0; i < n && !h->stopping; i++)
        apply_note(h, &notes[i]);
    free(notes);
    schedule_flush(h, LIVE_COALESCE_MS);
}

static bool is_uuid_text(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23
                ? c != '-'
                : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

/* Parses a notification; false when it is not one this server sends. */
static bool parse_note(const char *channel, const char *payload, struct live_note *n)
{
    char kind[2], seq[24], a[40], b[40], c[40], flags[8];
    int got;

    memset(n, 0, sizeof *n);
    if (strcmp(channel, "accord_auth") == 0) {
        n->kind = 'A';
        snprintf(n->auth, sizeof n->auth, "%s", payload);
        return true;
    }
    if (strcmp(channel, "accord_live") != 0)
        return false;
    if (strcmp(payload, "R") == 0) { /* too much changed at once (live_changes()) */
        n->kind = 'R';
        return true;
    }
    got = sscanf(payload, "%1s %23s %39s %39s %39s %7s", kind, seq, a, b, c, flags);
    if (got < 3)
        return false;
    n->kind = kind[0];
    switch (n->kind) {
    case 's':
        if (got != 6 || !is_uuid_text(a) || !is_uuid_text(b))
            return false;
        memcpy(n->submission_id, a, 37);
        memcpy(n->credential_id, b, 37);
        if (is_uuid_text(c))
            memcpy(n->user_id, c, 37);
        snprintf(n->flags, sizeof n->flags, "%s", flags);
        return true;
    case 'c':
        if (!is_uuid_text(a))
            return false;
        memcpy(n->credential_id, a, 37);
        return true;
    case 'u':
        if (!is_uuid_text(a))
            return false;
        memcpy(n->user_id, a, 37);
        return true;
    default:
        return false;
    }
}

static void post_note(const struct live_note *note)
{
    pthread_mutex_lock(&hubs_mu);
    for (int i = 0; i < LIVE_MAX_HUBS; i++) {
        struct live_hub *h = hubs[i];
        if (!h)
            continue;
        pthread_mutex_lock(&h->mu);
        if (h->n_inbox == h->cap_inbox && !h->inbox_overflow) {
            size_t cap = h->cap_inbox ? h->cap_inbox * 2 : 64;
            struct live_note *more =
                cap <= LIVE_INBOX_MAX ? realloc(h->inbox, cap * sizeof *more) : NULL;
            if (more) {
                h->inbox = more;
                h->cap_inbox = cap;
            } else {
                h->inbox_overflow = true;
            }
        }
        if (!h->inbox_overflow)
            h->inbox[h->n_inbox++] = *note;
        h->inbox_signal = true;
        pthread_mutex_unlock(&h->mu);
    }
    pthread_mutex_unlock(&hubs_mu);
}

void live_post(const char *channel, const char *payload)
{
    struct live_note note;
    atomic_fetch_add(&m_notes, 1);
    if (parse_note(channel, payload ? payload : "", &note))
        post_note(&note);
}

void live_post_resync_all(void)
{
    struct live_note note = {.kind = 'R'};
    post_note(&note);
    live_post_flush();
}

void live_post_flush(void)
{
    pthread_mutex_lock(&hubs_mu);
    for (int i = 0; i < LIVE_MAX_HUBS; i++) {
        struct live_hub *h = hubs[i];
        bool wake;
        if (!h)
            continue;
        pthread_mutex_lock(&h->mu);
        wake = h->inbox_signal;
        h->inbox_signal = false;
        pthread_mutex_unlock(&h->mu);
        if (wake)
            event_active(h->ev_inbox, EV_READ, 0);
    }
    pthread_mutex_unlock(&hubs_mu);
}

/* ------------------------------------------------------------------------ */
/* Timers */

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    struct live_hub *h = arg;
    struct live_stream *s, *next;
    struct evbuffer *buf = evbuffer_new();
    (void)fd;
    (void)what;
    if (!buf)
        return;
    for (s = TAILQ_FIRST(&h->streams); s; s = next) {
        next = TAILQ_NEXT(s, link);
        sse_comment(buf, "heartbeat");
        (void)stream_send(s, buf);
        evbuffer_drain(buf, evbuffer_get_length(buf));
    }
    evbuffer_free(buf);
}

/* Sessions expire and idle out without any notification: every stream is checked again. */
static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    struct live_hub *h = arg;
    struct live_stream *s;
    (void)fd;
    (void)what;
    TAILQ_FOREACH(s, &h->streams, link)
    s->flags |= S_CHECK;
    h->all_creds = h->all_creds || json_object_size(h->watched) > 0; /* leases expire silently */
    schedule_flush(h, LIVE_COALESCE_MS);
}

/* ------------------------------------------------------------------------ */
/* The hub */

struct live_hub *live_hub_new(struct worker *w)
{
    struct live_hub *h = calloc(1, sizeof *h);
    struct timeval hb, rc = {LIVE_RECHECK_S, 0};

    if (!h)
        return NULL;
    h->w = w;
    TAILQ_INIT(&h->streams);
    TAILQ_INIT(&h->ending);
    pthread_mutex_init(&h->mu, NULL);
    h->watched = json_object();
    h->users = json_object();
    h->creds = json_object();
    h->subs = json_object();
    h->routing = json_object();
    h->ev_inbox = event_new(w->base, -1, 0, on_inbox, h);
    h->ev_flush = evtimer_new(w->base, on_flush, h);
    h->ev_heartbeat = event_new(w->base, -1, EV_PERSIST, on_heartbeat, h);
    h->ev_recheck = event_new(w->base, -1, EV_PERSIST, on_recheck, h);
    if (!h->watched || !h->users || !h->creds || !h->subs || !h->routing || !h->ev_inbox ||
        !h->ev_flush || !h->ev_heartbeat || !h->ev_recheck)
        goto fail;
    hb.tv_sec = w->cfg->live_heartbeat;
    hb.tv_usec = 0;
    event_add(h->ev_heartbeat, &hb);
    event_add(h->ev_recheck, &rc);
    pthread_mutex_lock(&hubs_mu);
    for (int i = 0; i < LIVE_MAX_HUBS; i++)
        if (!hubs[i]) {
            hubs[i] = h;
            break;
        }
    pthread_mutex_unlock(&hubs_mu);
    return h;
fail:
    live_hub_free(h);
    return NULL;
}

void live_hub_stop(struct live_hub *h)
{
    struct live_stream *s;
    if (!h)
        return;
    h->stopping = true;
    event_del(h->ev_heartbeat);
    event_del(h->ev_recheck);
    event_del(h->ev_flush);
    while ((s = TAILQ_FIRST(&h->streams)))
        stream_end(s, "shutdown");
}

void live_hub_free(struct live_hub *h)
{
    struct live_stream *s;
    if (!h)
        return;
    pthread_mutex_lock(&hubs_mu);
    for (int i = 0; i < LIVE_MAX_HUBS; i++)
        if (hubs[i] == h)
            hubs[i] = NULL;
    pthread_mutex_unlock(&hubs_mu);
    /* streams the server's end left behind (normally none: evhttp_free closed them) */
    while ((s = TAILQ_FIRST(&h->streams)) || (s = TAILQ_FIRST(&h->ending)))
        stream_finish(s, false);
    if (h->ev_inbox)
        event_free(h->ev_inbox);
    if (h->ev_flush)
        event_free(h->ev_flush);
    if (h->ev_heartbeat)
        event_free(h->ev_heartbeat);
    if (h->ev_recheck)
        event_free(h->ev_recheck);
    json_decref(h->watched);
    json_decref(h->users);
    json_decref(h->creds);
    json_decref(h->subs);
    json_decref(h->routing);
    json_decref(h->query_req);
    free(h->query_text);
    free(h->inbox);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* GET /v1/events */

void handle_events(struct request *r)
{
    struct live_hub *h = r->w->live;
    const struct config *cfg = r->w->cfg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    struct live_stream *s;
    struct evbuffer *buf;
    long long since;

    if (!h || h->stopping || r->w->draining) {
        reply_error(r, 503, "unavailable", "the server is shutting down; reconnect shortly");
        return;
    }
    if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Cache-Control", "no-store");
        reply_buffer(r, 200, "text/event-stream", NULL);
        return;
    }
    switch (streams_reserve(r->user_id, cfg->live_streams_per_user, cfg->live_streams)) {
    case 1:
        atomic_fetch_add(&m_refused_user, 1);
        reply_error(r, 429, "too_many_streams",
                    "you have %ld live update streams open already (the most one person may "
                    "have); close another tab or window",
                    cfg->live_streams_per_user);
        return;
    case 2:
        atomic_fetch_add(&m_refused_total, 1);
        reply_error(r, 503, "busy",
                    "the server serves as many live update streams as it may; "
                    "try again shortly");
        return;
    default:
        break;
    }
    s = calloc(1, sizeof *s);
    buf = evbuffer_new();
    if (!s || !buf) {
        streams_release(r->user_id);
        free(s);
        if (buf)
            evbuffer_free(buf);
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    since = sse_parse_last_id(
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "Last-Event-ID"));
    s->hub = h;
    s->r = r;
    s->req = r->req;
    s->evcon = evhttp_request_get_connection(r->req);
    s->since = since;
    s->last_id = since > 0 ? since : 0;
    s->flags = S_SNAPSHOT;
    snprintf(s->user_id, sizeof s->user_id, "%s", r->user_id);
    if (r->auth_kind == AUTH_KIND_SESSION) {
        snprintf(s->cred_kind, sizeof s->cred_kind, "session");
        memcpy(s->cred_hash, r->token_hash + 2, AUTH_HASH_LEN);
    } else {
        snprintf(s->cred_kind, sizeof s->cred_kind, "bearer");
        memcpy(s->cred_hash, r->token_hash, AUTH_HASH_LEN);
    }
    TAILQ_INSERT_TAIL(&h->streams, s, link);
    h->n_streams++;
    count_add(h->users, s->user_id, 1);
    atomic_fetch_add(&m_opened, 1);

    evhttp_add_header(out, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "X-Accel-Buffering", "no"); /* proxies: do not hold events back */
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "X-Request-Id", r->request_id);
    /*
     * Events come when things change: the connection's idle timeout (which
     * libevent applies to reads too) must outlast a quiet day; the heartbeat
     * and LIVE_MAX_BACKLOG find dead clients. The connection ends with the
     * stream.
     */
    evhttp_add_header(out, "Connection", "close");
    if (s->evcon) {
        evhttp_connection_set_timeout(s->evcon, 24 * 3600);
        evhttp_connection_set_closecb(s->evcon, on_conn_close, s);
    }
    evhttp_send_reply_start(r->req, 200, "OK");
    sse_retry(buf, LIVE_RECONNECT_MS);
    (void)stream_send(s, buf); /* nothing is queued yet: cannot be dropped */
    evbuffer_free(buf);
    schedule_flush(h, 0);
}

void live_render_metrics(struct evbuffer *out)
{
    int total;
    pthread_mutex_lock(&users_mu);
    total = streams_total;
    pthread_mutex_unlock(&users_mu);
    evbuffer_add_printf(out,
                        "# HELP accord_live_streams Live update streams open (GET /v1/events).\n"
                        "# TYPE accord_live_streams gauge\naccord_live_streams %d\n",
                        total);
    evbuffer_add_printf(
        out,
        "# HELP accord_live_streams_opened_total Live update streams opened.\n"
        "# TYPE accord_live_streams_opened_total counter\naccord_live_streams_opened_total %ld\n"
        "# HELP accord_live_streams_refused_total Streams refused: per-user or process limit.\n"
        "# TYPE accord_live_streams_refused_total counter\n"
        "accord_live_streams_refused_total{limit=\"user\"} %ld\n"
        "accord_live_streams_refused_total{limit=\"process\"} %ld\n"
        "# HELP accord_live_streams_dropped_total Streams dropped: the client did not read.\n"
        "# TYPE accord_live_streams_dropped_total counter\naccord_live_streams_dropped_total %ld\n"
        "# HELP accord_live_events_total Events sent on live streams.\n"
        "# TYPE accord_live_events_total counter\naccord_live_events_total %ld\n"
        "# HELP accord_live_notifications_total Notifications the listener received.\n"
        "# TYPE accord_live_notifications_total counter\naccord_live_notifications_total %ld\n"
        "# HELP accord_live_batches_total Batched queries for live streams (all loops).\n"
        "# TYPE accord_live_batches_total counter\naccord_live_batches_total %ld\n"
        "# HELP accord_live_batch_failures_total Batched queries that failed (retried).\n"
        "# TYPE accord_live_batch_failures_total counter\naccord_live_batch_failures_total %ld\n",
        atomic_load(&m_opened), atomic_load(&m_refused_user), atomic_load(&m_refused_total),
        atomic_load(&m_dropped_slow), atomic_load(&m_events), atomic_load(&m_notes),
        atomic_load(&m_batches), atomic_load(&m_batch_failures));
}
