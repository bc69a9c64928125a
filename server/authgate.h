/* SPDX-License-Identifier: Apache-2.0 */
/*
 * authgate.h - is this credential valid? Answered before a request's body is
 * parsed or sent anywhere.
 *
 * The SQL functions still authenticate and authorize every call themselves
 * (they take the credential's hash, db/README.md); the gate is the cheap
 * front door that keeps unknown, revoked and malformed credentials away from
 * the JSON parser and the database pool:
 *
 *  - A credential is a kind plus the hex SHA-256 of its secret. Today the only
 *    kind is a bearer token; cookie sessions (issue 10) plug in as another
 *    kind: extend auth_credential_from_headers() and the SQL function
 *    auth_lookup(kind, hash) (db/migrations/009_limits.sql), nothing else.
 *  - Each event loop has its own gate: a cache of valid credentials (short
 *    TTL) and a bounded cache of invalid ones, so the hot path (a cache hit)
 *    adds no database round trip. A miss runs auth_lookup on the gate's own
 *    database connection, not on the loop's pool: a flood of unknown
 *    credentials queues behind that one connection (bounded; past the bound
 *    it is answered 503) and never takes a connection from real users.
 *    Concurrent lookups of the same credential share one query.
 *  - Revocation is immediate: the SQL that revokes or disables a credential
 *    calls auth_changed(kind, hash), which NOTIFYs channel accord_auth; one
 *    listening connection per process (authlisten.h) then calls
 *    authgate_invalidate_all(), and every loop's cache is empty at its next
 *    look. While that listener is down, nothing is cached (every check is a
 *    lookup), so a lost notification cannot keep a revoked credential alive.
 *
 * Who is asking: once a request passed the gate, struct request's user_id
 * holds the user's id (request.h); the access log reads it from there.
 */
#ifndef ACCORD_AUTHGATE_H
#define ACCORD_AUTHGATE_H

#include <stdbool.h>

#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "auth.h"

#define AUTH_USER_ID_LEN 36 /* a UUID in text form */

enum auth_kind {
    AUTH_KIND_NONE = 0,
    AUTH_KIND_BEARER,  /* Authorization: Bearer acc_<64 hex> */
    AUTH_KIND_SESSION, /* the session cookie (session.h), when there is no Authorization */
};

struct auth_credential {
    enum auth_kind kind;
    char hash[AUTH_HASH_LEN + 1]; /* hex SHA-256 of the secret */
};

enum auth_found {
    AUTH_FOUND_NONE,      /* the request carries no credential at all */
    AUTH_FOUND_OK,        /* *out is filled */
    AUTH_FOUND_MALFORMED, /* something is there but cannot be a credential we issued */
};

/*
 * Finds the request's credential without any I/O: the Authorization header
 * when there is one (a browser never adds it on its own), else the session
 * cookie. A bearer token that is not shaped like the ones
 * auth_token_generate() makes is MALFORMED: refused without a lookup. A
 * session cookie that is not 64 hex digits is no credential (NONE).
 */
enum auth_found auth_credential_from_headers(const struct evkeyvalq *headers,
                                             struct auth_credential *out);

/* The SQL name of a kind ("bearer", "session"), as auth_lookup() takes it. */
const char *auth_kind_name(enum auth_kind kind);

enum auth_verdict {
    AUTH_VALID,       /* user_id is filled */
    AUTH_INVALID,     /* unknown, revoked or expired: answer 401 */
    AUTH_PENDING,     /* a lookup is under way: the callback will say */
    AUTH_BUSY,        /* too many lookups waiting: answer 503 */
    AUTH_UNAVAILABLE, /* the database cannot be asked now: answer 503 */
};

/* user_id is NUL-terminated and lives until the callback returns; NULL unless AUTH_VALID. */
typedef void (*authgate_cb)(enum auth_verdict verdict, const char *user_id, void *arg);

struct authgate;

/*
 * A gate for the loop on base: its caches and one database connection to
 * conninfo for lookups, with at most max_waiting lookups queued behind it.
 */
struct authgate *authgate_new(struct event_base *base, const char *conninfo, int max_waiting,
                              int worker);

/* Fails the lookups still under way (their callbacks run with AUTH_UNAVAILABLE), then frees. */
void authgate_free(struct authgate *g);

/*
 * Checks cred. On a cache hit returns AUTH_VALID (user_id filled) or
 * AUTH_INVALID at once. Otherwise starts or joins a lookup and returns
 * AUTH_PENDING: cb then runs exactly once, later, from the loop (never from
 * inside this call), with AUTH_VALID, AUTH_INVALID or AUTH_UNAVAILABLE.
 * AUTH_BUSY and AUTH_UNAVAILABLE returned here mean the callback will not run.
 */
enum auth_verdict authgate_check(struct authgate *g, const struct auth_credential *cred,
                                 char user_id[AUTH_USER_ID_LEN + 1], authgate_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Whether the gate's lookup connection is up now (any thread: /readyz, /metrics). */
bool authgate_connected(const struct authgate *g);

/* Every loop's cache forgets everything (any thread; used by authlisten.c). */
void authgate_invalidate_all(void);

/* Whether invalidations can be trusted to arrive (any thread; set by authlisten.c). */
void authgate_set_listening(bool listening);

/* Appends the gate's counters (Prometheus text) to out. */
struct evbuffer;
void authgate_render_metrics(struct evbuffer *out);

#endif
