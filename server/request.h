/* SPDX-License-Identifier: Apache-2.0 */
/*
 * request.h - the context one HTTP request carries through its callbacks,
 * and the helpers that answer it.
 *
 * Every request is answered exactly once: by one reply_*() call, which also
 * frees the context. After a reply the handler must not touch the context.
 * Handlers keep no pointer to the evhttp connection across a database round
 * trip: if the client went away meanwhile, libevent frees the detached
 * request when we answer it.
 */
#ifndef ACCORD_REQUEST_H
#define ACCORD_REQUEST_H

#include <stdbool.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>

#include "auth.h"
#include "authgate.h"
#include "pgpool.h"
#include "worker.h"

#define REQUEST_MAX_PATH_IDS 2
#define REQUEST_MAX_PARAMS   8
#define REQUEST_ID_MAX       64

struct route;

struct request {
    struct evhttp_request *req;
    struct worker *w;
    const struct route *route;
    char token_hash[AUTH_CRED_LEN + 1];  /* the credential (auth.h); "" when there was none */
    enum auth_kind auth_kind;            /* how it authenticated (authgate.h) */
    char csrf_token[AUTH_HASH_LEN + 1];  /* AUTH_KIND_SESSION: the session's CSRF token */
    char user_id[37];                    /* who is asking, once the auth gate said so; else "" */
    char request_id[REQUEST_ID_MAX + 1]; /* the client's X-Request-Id, or a new UUID */
    struct timespec started;             /* arrival (CLOCK_MONOTONIC), for the access log */
    char ids[REQUEST_MAX_PATH_IDS][37];  /* UUIDs from the path, lower-case */
    int n_ids;
    char *body;  /* the request body, NUL-terminated (owned), or NULL */
    char *query; /* ROUTE_QUERY: the query string as a JSON object (owned) */
    size_t body_len;
    size_t held_bytes;                      /* body memory charged to this request (conntrack.h) */
    const char *params[REQUEST_MAX_PARAMS]; /* bound parameters: point into this struct */
    char scratch[64];                       /* small parameter text (numbers) */
    int ok_status;                          /* router_call: status of a successful answer */
    void *state;                            /* handler-specific state */
    void (*state_free)(void *state);
    /* a refusal (403, 429) is answered once its audit row is written */
    int refused_status;
    char refused_code[64];
    char *refused_message; /* owned */
};

/*
 * Runs stmt with r->params; cb gets the result with r as its argument. When
 * the pool refuses at once (database down, queue full) answers 503 itself.
 */
void request_query(struct request *r, enum stmt_id stmt, db_callback cb);

/* The token parameter: the hash, or NULL (SQL NULL) when the request had none. */
const char *request_token_param(const struct request *r);

/* Answers with a JSON text (not validated: it comes from the database). */
void reply_json_text(struct request *r, int status, const char *json);
/* Answers with a jansson value (steals the reference). */
void reply_json(struct request *r, int status, json_t *body);
/* Answers {"error":{"code":code,"message":...,"request_id":...}} with the given status. */
void reply_error(struct request *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a failed database call to the right answer (see db/README.md). */
void reply_db_failure(struct request *r, const struct db_result *res);
/* 507 insufficient_storage with Retry-After: the disk is (nearly) full; nothing was kept. */
void reply_storage_full(struct request *r);
/*
 * A streamed answer (chunked transfer encoding), for bodies too large to
 * hold: reply_stream_start sends the status line and headers and registers
 * gone(), called when the client goes away (its connection is freed right
 * after: gone() must end the stream with reply_stream_end unless a callback
 * still in flight will); reply_stream_chunk queues a buffer (drained) and
 * calls sent() once it has gone to the socket (ask for more only then: the
 * server holds one chunk per stream); reply_stream_end finishes the answer
 * and frees the context; reply_stream_abort closes the connection instead,
 * so that a failed stream cannot pass for a whole one.
 */
void reply_stream_start(struct request *r, int status, const char *content_type,
                        void (*gone)(struct evhttp_connection *, void *), void *arg);
void reply_stream_chunk(struct request *r, struct evbuffer *buf,
                        void (*sent)(struct evhttp_connection *, void *), void *arg);
void reply_stream_end(struct request *r, size_t bytes);
void reply_stream_abort(struct request *r, size_t bytes);

/* Answers with no body (e.g. 204). */
void reply_empty(struct request *r, int status);
/* Sends a prepared evbuffer with the given status and content type (the buffer is drained). */
void reply_buffer(struct request *r, int status, const char *content_type, struct evbuffer *buf);

/* The API's error object for this request (new reference; NULL when out of memory). */
json_t *request_error_body(const struct request *r, const char *code, const char *message);

/*
 * Takes the client's X-Request-Id when it is well formed (1 to 64 of
 * A-Z a-z 0-9 - _ . : @ / + =), else makes a random UUID; r->request_id.
 */
void request_assign_id(struct request *r);
/* A browser navigating (it asks for HTML first), not a script: 1 or 0. */
int request_wants_html(struct request *r);

/* Frees the context without answering: only for paths where libevent already answered. */
void request_free(struct request *r);

#endif
