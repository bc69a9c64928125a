/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reply.c - answering a request exactly once, and mapping database failures
 * to HTTP (the SQLSTATE convention of db/README.md).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <uuid/uuid.h>

#include "conntrack.h"
#include "livelisten.h"
#include "log.h"
#include "metrics.h"
#include "read_grant.h"
#include "request.h"
#include "router.h"

static const char *request_method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

const char *request_token_param(const struct request *r)
{
    return r->token_hash[0] ? r->token_hash : NULL;
}

void request_query(struct request *r, enum stmt_id stmt, db_callback cb)
{
    enum db_status st = pgpool_query(r->w->pool, stmt, r->params, cb, r);
    if (st != DB_OK) {
        struct db_result res = {.status = st};
        reply_db_failure(r, &res);
    }
}

void request_free(struct request *r)
{
    struct worker *w = r->w;
    if (r->state_free)
        r->state_free(r->state);
    free(r->body);
    free(r->query);
    free(r->refused_message);
    conntrack_request_done(w, r->held_bytes);
    free(r);
    worker_request_done(w);
}

static bool request_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-_.:@/+=", c) != NULL;
}

void request_assign_id(struct request *r)
{
    const char *given =
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    uuid_t u;

    if (n > 0 && n <= REQUEST_ID_MAX) {
        size_t i = 0;
        while (i < n && request_id_char(given[i]))
            i++;
        if (i == n) {
            memcpy(r->request_id, given, n + 1);
            return;
        }
    }
    uuid_generate_random(u);
    uuid_unparse_lower(u, r->request_id);
}

json_t *request_error_body(const struct request *r, const char *code, const char *message)
{
    json_t *msg = json_string(message);
    if (!msg) /* not UTF-8 (a message quoting client bytes): say so rather than fail */
        msg = json_string("the request could not be processed");
    return json_pack("{s:{s:s,s:o,s:s}}", "error", "code", code, "message", msg, "request_id",
                     r->request_id);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void send_and_free(struct request *r, int status, struct evbuffer *buf)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    double seconds = seconds_since(&r->started);
    struct log_access a = {
        .method = request_method_name(evhttp_request_get_command(r->req)),
        .route = r->route ? r->route->pattern : NULL,
        .status = status,
        .bytes = buf ? evbuffer_get_length(buf) : 0,
        .duration_ms = seconds * 1000.0,
        .user_id = r->user_id,
        .request_id = r->request_id,
        .worker = r->w->id,
    };

    if (r->w->draining)
        evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "X-Request-Id", r->request_id);
    metrics_count_response(status);
    metrics_observe_request(r->route, status, seconds);
    log_access(&a);
    /* a change someone may watch live has committed: tell the other servers (livelisten.h);
     * it may have revoked a right to read evidence, here before the client hears of it */
    if (status < 400 &&
        (evhttp_request_get_command(r->req) &
         (EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE))) {
        read_grant_invalidate_all();
        livelisten_announce();
    }
    evhttp_send_reply(r->req, status, NULL, buf);
    request_free(r);
}

/* Streamed answers (request.h) ------------------------------------------- */

static void stream_log(struct request *r, size_t bytes)
{
    double seconds = seconds_since(&r->started);
    struct log_access a = {
        .method = request_method_name(evhttp_request_get_command(r->req)),
        .route = r->route ? r->route->pattern : NULL,
        .status = r->ok_status,
        .bytes = bytes,
        .duration_ms = seconds * 1000.0,
        .user_id = r->user_id,
        .request_id = r->request_id,
        .worker = r->w->id,
    };
    metrics_count_response(r->ok_status);
    metrics_observe_request(r->route, r->ok_status, seconds);
    log_access(&a);
}

void reply_stream_start(struct request *r, int status, const char *content_type,
                        void (*gone)(struct evhttp_connection *, void *), void *arg)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);

    if (content_type)
        evhttp_add_header(h, "Content-Type", content_type);
    if (r->w->draining)
        evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "X-Request-Id", r->request_id);
    r->ok_status = status;
    if (evcon)
        evhttp_connection_set_closecb(evcon, gone, arg);
    evhttp_send_reply_start(r->req, status, NULL);
}

void reply_stream_chunk(struct request *r, struct evbuffer *buf,
                        void (*sent)(struct evhttp_connection *, void *), void *arg)
{
    evhttp_send_reply_chunk_with_cb(r->req, buf, sent, arg);
}

void reply_stream_end(struct request *r, size_t bytes)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    stream_log(r, bytes);
    evhttp_send_reply_end(r->req); /* frees a request whose client went away */
    request_free(r);
}

void reply_stream_abort(struct request *r, size_t bytes)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
    stream_log(r, bytes);
    if (evcon) {
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        evhttp_connection_free(evcon); /* frees the request with it */
    } else {
        evhttp_send_reply_end(r->req);
    }
    request_free(r);
}

void reply_buffer(struct request *r, int status, const char *content_type, struct evbuffer *buf)
{
    if (content_type)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type", content_type);
    send_and_free(r, status, buf);
}

void reply_json_text(struct request *r, int status, const char *json)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf) {
        evbuffer_add(buf, json, strlen(json));
        evbuffer_add(buf, "\n", 1);
    }
    reply_buffer(r, status, "application/json", buf);
    if (buf)
        evbuffer_free(buf);
}

void reply_json(struct request *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        reply_json_text(r, 500,
                        "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
        return;
    }
    reply_json_text(r, status, text);
    free(text);
}

void reply_empty(struct request *r, int status)
{
    send_and_free(r, status, NULL);
}

int request_wants_html(struct request *r)
{
    const char *accept = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Accept");
    return accept && strncmp(accept, "text/html", 9) == 0;
}

/*
 * A refusal on a ROUTE_NAVIGATION route, to a browser: 303 to the web app's
 * sign-in page with the code only (never the message: a link carrying text
 * the page shows would let anyone put words in accord's mouth). The page
 * explains each code; the request id finds the server's log line.
 */
static int redirect_refusal(struct request *r, const char *code)
{
    char location[256];
    size_t n = strspn(code, "abcdefghijklmnopqrstuvwxyz0123456789_");

    if (!r->route || !(r->route->flags & ROUTE_NAVIGATION) || !request_wants_html(r))
        return 0;
    if (code[n] != '\0' || n > 64)
        code = "error";
    snprintf(location, sizeof location, "/#/sign-in?sso_error=%s&request_id=%s", code,
             r->request_id);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Location", location);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    send_and_free(r, 303, NULL);
    return 1;
}

void reply_error(struct request *r, int status, const char *code, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    if (redirect_refusal(r, code))
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (status == 503)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
    reply_json(r, status, request_error_body(r, code, message));
}

static const char *default_code(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 409:
        return "conflict";
    case 413:
        return "body_too_large";
    case 422:
        return "unprocessable";
    default:
        return "error";
    }
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

static void on_refusal_audited(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK)
        log_warn("%s: the refusal could not be audited: %s", evhttp_request_get_uri(r->req),
                 res->message ? res->message : "database unavailable");
    reply_error(r, r->refused_status, r->refused_code, "%s", r->refused_message);
}

/*
 * A refusal rolled back with its transaction, so it is written in one of its
 * own (audit_refusal) before the answer goes out. Returns false when it could
 * not even be queued (the caller answers at once).
 */
static bool refusal_audit(struct request *r, int status, const char *code, const char *message)
{
    const char *pattern = r->route ? r->route->pattern : evhttp_request_get_uri(r->req);

    if (r->refused_status) /* already refused once: no loop */
        return false;
    r->refused_message = strdup(message ? message : "");
    if (!r->refused_message)
        return false;
    r->refused_status = status;
    snprintf(r->refused_code, sizeof r->refused_code, "%s", code);
    snprintf(r->scratch, sizeof r->scratch, "%d", status);
    r->params[0] = request_token_param(r);
    r->params[1] = method_name(evhttp_request_get_command(r->req));
    r->params[2] = pattern;
    r->params[3] = r->n_ids > 0 ? r->ids[0] : NULL;
    r->params[4] = r->scratch;
    r->params[5] = r->refused_code;
    r->params[6] = r->refused_message;
    if (pgpool_query(r->w->pool, STMT_AUDIT_REFUSAL, r->params, on_refusal_audited, r) != DB_OK) {
        log_warn("%s: the refusal could not be audited (database busy)",
                 evhttp_request_get_uri(r->req));
        return false;
    }
    return true;
}

void reply_storage_full(struct request *r)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "300");
    reply_error(r, 507, "insufficient_storage",
                "the server's disk is full; nothing was kept. Try again later");
}

/*
 * A database error the API functions did not raise on purpose: its text may
 * show the schema or the input's bytes back, so the client gets an id and the
 * log gets the text under that id.
 */
static void reply_db_error_logged(struct request *r, int status, const char *code, const char *what,
                                  const struct db_result *res)
{
    static atomic_ulong seq;
    char id[32];
    snprintf(id, sizeof id, "%lx-%lx", (unsigned long)time(NULL), atomic_fetch_add(&seq, 1) + 1);
    /* the route, not the URI: a query string may carry one-time secrets (OIDC code, state) */
    log_msg(status >= 500 ? LOG_ERROR : LOG_WARN, "error %s: %s: database %s: %s", id,
            r->route ? r->route->pattern : "?", res->sqlstate ? res->sqlstate : "",
            res->message ? res->message : "");
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "X-Error-Id", id);
    reply_error(r, status, code, "%s (error id %s)", what, id);
}

void reply_db_failure(struct request *r, const struct db_result *res)
{
    const char *state = res->sqlstate ? res->sqlstate : "";
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *path;

    if (res->status == DB_UNAVAILABLE) {
        log_warn("database unavailable: answering 503");
        reply_error(r, 503, "unavailable", "the database is unavailable; try again shortly");
        return;
    }
    if (res->status == DB_BUSY) {
        log_warn("database queue full (--db-queue): answering 503");
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
        return;
    }
    /* AC4xx: the API function's own answer. */
    if (state[0] == 'A' && state[1] == 'C' && state[2] == '4' && strlen(state) == 5) {
        int status = atoi(state + 2);
        const char *code = res->detail && *res->detail ? res->detail : default_code(status);
        if ((status == 403 || status == 429) && refusal_audit(r, status, code, res->message))
            return;
        reply_error(r, status, code, "%s", res->message);
        return;
    }
    if (strcmp(state, "23505") == 0) {
        reply_db_error_logged(r, 409, "conflict", "that object exists already", res);
        return;
    }
    if (strcmp(state, "23503") == 0) {
        reply_error(r, 422, "unknown_reference",
                    "the request refers to an object that does not exist");
        return;
    }
    if (strncmp(state, "22", 2) == 0) {
        reply_db_error_logged(r, 400, "bad_request",
                              "a value in the request is malformed or out of range", res);
        return;
    }
    /* the path only: a query string may carry one-time secrets (OIDC code and state) */
    path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path)
        path = "?";
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "53300") == 0) {
        log_warn("%s: database: %s %s", path, state, res->message);
        reply_error(r, 503, "unavailable", "the database could not finish the request; try again");
        return;
    }
    reply_db_error_logged(r, 500, "internal", "internal error (logged on the server)", res);
}
