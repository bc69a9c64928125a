/* SPDX-License-Identifier: Apache-2.0 */
/*
 * authgate.c - the credential check in front of every non-public route.
 *
 * Caches are direct-mapped on the credential hash (SHA-256 output is uniform,
 * so its first bits are a fine index): fixed memory, O(1), and an attacker
 * cycling through random tokens can only evict negative entries, never fill
 * memory. An entry is good while it is younger than its TTL and was written in
 * the current invalidation epoch.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "clock.h"
#include "authgate.h"
#include "log.h"
#include "pgpool.h"

#define VALID_SLOTS    2048
#define INVALID_SLOTS  1024
#define VALID_TTL_MS   10000 /* a valid credential is re-checked this often */
#define INVALID_TTL_MS 5000

struct slot {
    uint64_t expires_ms;
    long epoch;
    enum auth_kind kind;
    char hash[AUTH_HASH_LEN + 1];
    char user_id[AUTH_USER_ID_LEN + 1];
};

struct waiter {
    authgate_cb cb;
    void *arg;
    struct waiter *next;
};

/* One auth_lookup in flight, shared by every request that asks for the same credential. */
struct lookup {
    struct authgate *gate;
    struct auth_credential cred;
    long epoch; /* when it started: a result that crossed an invalidation is not cached */
    const char *params[2];
    struct waiter *waiters;
    struct lookup *next;
};

struct authgate {
    struct pgpool *pool;
    struct lookup *lookups;
    struct slot valid[VALID_SLOTS];
    struct slot invalid[INVALID_SLOTS];
};

static atomic_long epoch = 1;
static atomic_bool listening;
static atomic_long n_valid_hits, n_invalid_hits, n_lookups, n_refused_busy, n_invalidations;

enum auth_found auth_credential_from_headers(const struct evkeyvalq *headers,
                                             struct auth_credential *out)
{
    const char *authz = evhttp_find_header(headers, "Authorization");
    const char *token;
    size_t len;

    memset(out, 0, sizeof *out);
    if (!authz) {
        char secret[AUTH_SESSION_SECRET_LEN + 1];
        if (auth_session_cookie(headers, secret) < 0)
            return AUTH_FOUND_NONE;
        if (auth_sha256_hex(secret, AUTH_SESSION_SECRET_LEN, out->hash) < 0)
            return AUTH_FOUND_MALFORMED;
        out->kind = AUTH_KIND_SESSION;
        return AUTH_FOUND_OK;
    }
    if (strncasecmp(authz, "Bearer ", 7) != 0)
        return AUTH_FOUND_MALFORMED;
    token = authz + 7;
    while (*token == ' ')
        token++;
    len = strlen(token);
    while (len > 0 && token[len - 1] == ' ')
        len--;
    /* Only auth_token_generate() makes tokens: "acc_" and 64 lower-case hex digits. */
    if (len != AUTH_TOKEN_LEN || strncmp(token, "acc_", 4) != 0)
        return AUTH_FOUND_MALFORMED;
    for (size_t i = 4; i < len; i++)
        if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
            return AUTH_FOUND_MALFORMED;
    if (auth_sha256_hex(token, len, out->hash) < 0)
        return AUTH_FOUND_MALFORMED;
    out->kind = AUTH_KIND_BEARER;
    return AUTH_FOUND_OK;
}

const char *auth_kind_name(enum auth_kind kind)
{
    switch (kind) {
    case AUTH_KIND_BEARER:
        return "bearer";
    case AUTH_KIND_SESSION:
        return "session";
    default:
        return "none";
    }
}

static size_t slot_index(const char *hash, size_t n)
{
    return (size_t)strtoul((char[9]){hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6],
                                     hash[7], '\0'},
                           NULL, 16) %
           n;
}

static struct slot *find(struct slot *table, size_t n, const struct auth_credential *c)
{
    struct slot *s = &table[slot_index(c->hash, n)];
    if (s->kind != c->kind || s->epoch != atomic_load(&epoch) ||
        s->expires_ms <= (uint64_t)clock_ms() || strcmp(s->hash, c->hash) != 0)
        return NULL;
    return s;
}

static void store(struct slot *table, size_t n, const struct auth_credential *c, long at_epoch,
                  uint64_t ttl_ms, const char *user_id)
{
    struct slot *s = &table[slot_index(c->hash, n)];
    s->kind = c->kind;
    s->epoch = at_epoch;
    s->expires_ms = (uint64_t)clock_ms() + ttl_ms;
    memcpy(s->hash, c->hash, sizeof s->hash);
    snprintf(s->user_id, sizeof s->user_id, "%s", user_id ? user_id : "");
}

struct authgate *authgate_new(struct event_base *base, const char *conninfo, int max_waiting,
                              int worker)
{
    struct authgate *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->pool = pgpool_new(base, conninfo, 1, max_waiting, worker);
    if (!g->pool) {
        free(g);
        return NULL;
    }
    return g;
}

void authgate_free(struct authgate *g)
{
    if (!g)
        return;
    pgpool_free(g->pool); /* fails the lookups: their waiters hear AUTH_UNAVAILABLE */
    free(g);
}

static void on_lookup(const struct db_result *res, void *arg)
{
    struct lookup *l = arg, **pp;
    struct authgate *g = l->gate;
    enum auth_verdict verdict;
    const char *user_id = NULL;
    struct waiter *w, *next;

    for (pp = &g->lookups; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    if (res->status != DB_OK) {
        if (res->status == DB_ERROR)
            log_error("auth lookup failed: %s %s", res->sqlstate ? res->sqlstate : "",
                      res->message ? res->message : "");
        verdict = AUTH_UNAVAILABLE;
    } else if (res->value && strlen(res->value) == AUTH_USER_ID_LEN) {
        verdict = AUTH_VALID;
        user_id = res->value;
        if (l->epoch == atomic_load(&epoch) && atomic_load(&listening))
            store(g->valid, VALID_SLOTS, &l->cred, l->epoch, VALID_TTL_MS, user_id);
    } else {
        verdict = AUTH_INVALID;
        store(g->invalid, INVALID_SLOTS, &l->cred, l->epoch, INVALID_TTL_MS, NULL);
    }
    for (w = l->waiters; w; w = next) {
        next = w->next;
        w->cb(verdict, user_id, w->arg);
        free(w);
    }
    free(l);
}

enum auth_verdict authgate_check(struct authgate *g, const struct auth_credential *cred,
                                 char user_id[AUTH_USER_ID_LEN + 1], authgate_cb cb, void *arg)
{
    struct slot *s;
    struct lookup *l;
    struct waiter *w;

    user_id[0] = '\0';
    if (cred->kind == AUTH_KIND_NONE)
        return AUTH_INVALID;
    if (atomic_load(&listening) && (s = find(g->valid, VALID_SLOTS, cred))) {
        atomic_fetch_add(&n_valid_hits, 1);
        memcpy(user_id, s->user_id, AUTH_USER_ID_LEN + 1);
        return AUTH_VALID;
    }
    if (find(g->invalid, INVALID_SLOTS, cred)) {
        atomic_fetch_add(&n_invalid_hits, 1);
        return AUTH_INVALID;
    }
    w = calloc(1, sizeof *w);
    if (!w)
        return AUTH_BUSY;
    w->cb = cb;
    w->arg = arg;
    for (l = g->lookups; l; l = l->next)
        if (l->cred.kind == cred->kind && strcmp(l->cred.hash, cred->hash) == 0) {
            w->next = l->waiters;
            l->waiters = w;
            return AUTH_PENDING;
        }
    l = calloc(1, sizeof *l);
    if (!l) {
        free(w);
        return AUTH_BUSY;
    }
    l->gate = g;
    l->cred = *cred;
    l->epoch = atomic_load(&epoch);
    l->params[0] = auth_kind_name(cred->kind);
    l->params[1] = l->cred.hash;
    l->waiters = w;
    switch (pgpool_query(g->pool, STMT_AUTH_LOOKUP, l->params, on_lookup, l)) {
    case DB_OK:
        break;
    case DB_BUSY:
        atomic_fetch_add(&n_refused_busy, 1);
        free(w);
        free(l);
        return AUTH_BUSY;
    default:
        free(w);
        free(l);
        return AUTH_UNAVAILABLE;
    }
    atomic_fetch_add(&n_lookups, 1);
    l->next = g->lookups;
    g->lookups = l;
    return AUTH_PENDING;
}

bool authgate_connected(const struct authgate *g)
{
    struct pgpool_stats st;
    if (!g || !g->pool)
        return false;
    pgpool_get_stats(g->pool, &st);
    return st.connections_up > 0;
}

void authgate_invalidate_all(void)
{
    atomic_fetch_add(&epoch, 1);
    atomic_fetch_add(&n_invalidations, 1);
}

void authgate_set_listening(bool on)
{
    atomic_store(&listening, on);
}

void authgate_render_metrics(struct evbuffer *out)
{
    evbuffer_add_printf(
        out,
        "# HELP accord_auth_cache_hits_total Credentials found valid in a loop's cache.\n"
        "# TYPE accord_auth_cache_hits_total counter\n"
        "accord_auth_cache_hits_total %ld\n"
        "# HELP accord_auth_negative_hits_total Credentials found invalid in a loop's cache.\n"
        "# TYPE accord_auth_negative_hits_total counter\n"
        "accord_auth_negative_hits_total %ld\n"
        "# HELP accord_auth_lookups_total Credential lookups sent to the database.\n"
        "# TYPE accord_auth_lookups_total counter\n"
        "accord_auth_lookups_total %ld\n"
        "# HELP accord_auth_lookups_refused_total Lookups refused (503): too many waiting.\n"
        "# TYPE accord_auth_lookups_refused_total counter\n"
        "accord_auth_lookups_refused_total %ld\n"
        "# HELP accord_auth_invalidations_total Cache flushes (revocations, listener restarts).\n"
        "# TYPE accord_auth_invalidations_total counter\n"
        "accord_auth_invalidations_total %ld\n",
        atomic_load(&n_valid_hits), atomic_load(&n_invalid_hits), atomic_load(&n_lookups),
        atomic_load(&n_refused_busy), atomic_load(&n_invalidations));
}
