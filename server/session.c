/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session.c - see session.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth.h"
#include "log.h"
#include "session.h"

const char *session_cookie_name(const struct config *cfg)
{
    /* __Host-: the browser accepts it only with Secure, Path=/ and no Domain. */
    return cfg->secure_cookies ? "__Host-accord_session" : "accord_session";
}

int session_cookie_secret(struct evhttp_request *req, const struct config *cfg,
                          char secret[SESSION_SECRET_LEN + 1])
{
    (void)cfg; /* either name is read: see auth_session_cookie() */
    return auth_session_cookie(evhttp_request_get_input_headers(req), secret);
}

int session_secret_hash(const char *secret, char out[AUTH_HASH_LEN + 1])
{
    return auth_sha256_hex(secret, strlen(secret), out);
}

int session_credential(const char *secret, char out[AUTH_CRED_LEN + 1])
{
    out[0] = 's';
    out[1] = ':';
    return session_secret_hash(secret, out + 2);
}

int session_csrf_token(const char *secret, char out[AUTH_HASH_LEN + 1])
{
    char buf[16 + SESSION_SECRET_LEN + 1];
    int n = snprintf(buf, sizeof buf, "accord-csrf:%s", secret);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    return auth_sha256_hex(buf, (size_t)n, out);
}

int session_new_secret(char secret[SESSION_SECRET_LEN + 1], char hash[AUTH_HASH_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char bytes[SESSION_SECRET_LEN / 2];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return -1;
    for (size_t i = 0; i < sizeof bytes; i++) {
        secret[2 * i] = digits[bytes[i] >> 4];
        secret[2 * i + 1] = digits[bytes[i] & 15];
    }
    secret[SESSION_SECRET_LEN] = '\0';
    OPENSSL_cleanse(bytes, sizeof bytes);
    return session_secret_hash(secret, hash);
}

const char *session_origin_problem(struct evhttp_request *req, const struct config *cfg)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *origin = evhttp_find_header(h, "Origin");
    const char *site = evhttp_find_header(h, "Sec-Fetch-Site");

    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return "a request from another site may not use this session (Sec-Fetch-Site)";
    if (origin && strcmp(origin, cfg->public_origin) != 0)
        return "a request from another origin may not use this session (Origin)";
    return NULL;
}

int session_csrf_check(struct request *r)
{
    const char *problem = session_origin_problem(r->req, r->w->cfg);
    const char *token;

    if (problem) {
        reply_error(r, 403, "csrf_failed", "%s", problem);
        return -1;
    }
    token = evhttp_find_header(evhttp_request_get_input_headers(r->req), SESSION_CSRF_HEADER);
    if (!token || strlen(token) != AUTH_HASH_LEN ||
        CRYPTO_memcmp(token, r->csrf_token, AUTH_HASH_LEN) != 0) {
        reply_error(r, 403, "csrf_failed",
                    "a request that changes something with a session cookie needs the "
                    "session's %s header (from signing in, or GET /v1/me)",
                    SESSION_CSRF_HEADER);
        return -1;
    }
    return 0;
}

void session_client_addr(struct request *r, char *out, size_t cap)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
    char *host = NULL; /* libevent's, not to be freed */
    ev_uint16_t port = 0;

    if (conn)
        evhttp_connection_get_peer(conn, &host, &port);
    snprintf(out, cap, "%s", host && *host ? host : "unknown");
}

void session_set_cookie(struct request *r, const char *secret)
{
    const struct config *cfg = r->w->cfg;
    char value[256];
    snprintf(value, sizeof value, "%s=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Lax%s",
             session_cookie_name(cfg), secret, cfg->session_lifetime,
             cfg->secure_cookies ? "; Secure" : "");
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Set-Cookie", value);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
}

void session_clear_cookie(struct request *r)
{
    const struct config *cfg = r->w->cfg;
    char value[160];
    snprintf(value, sizeof value, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax%s",
             session_cookie_name(cfg), cfg->secure_cookies ? "; Secure" : "");
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Set-Cookie", value);
}

struct start_state {
    struct request *r;
    session_done done;
    void *arg;
    char user_id[37];
    char method[16];
    char secret[SESSION_SECRET_LEN + 1];
    char hash[AUTH_HASH_LEN + 1];
    char old_hash[AUTH_HASH_LEN + 1];
    char idle[24], lifetime[24];
    char addr[64];
    const char *params[7];
};

static void on_session_created(const struct db_result *res, void *arg)
{
    struct start_state *st = arg;
    struct request *r = st->r;
    session_done done = st->done;
    void *done_arg = st->arg;
    char csrf[AUTH_HASH_LEN + 1];

    if (res->status == DB_OK && session_csrf_token(st->secret, csrf) == 0) {
        session_set_cookie(r, st->secret);
        OPENSSL_cleanse(st->secret, sizeof st->secret);
        free(st);
        done(r, res, csrf, done_arg);
        return;
    }
    OPENSSL_cleanse(st->secret, sizeof st->secret);
    free(st);
    if (res->status == DB_OK) {
        struct db_result fail = {.status = DB_UNAVAILABLE};
        done(r, &fail, NULL, done_arg);
        return;
    }
    done(r, res, NULL, done_arg);
}

void session_start(struct request *r, const char *user_id, const char *method, session_done done,
                   void *arg)
{
    struct start_state *st = calloc(1, sizeof *st);
    char old_secret[SESSION_SECRET_LEN + 1];
    enum db_status qs;

    if (!st || session_new_secret(st->secret, st->hash) < 0) {
        struct db_result fail = {.status = DB_UNAVAILABLE};
        free(st);
        log_error("session: out of memory or the random generator failed");
        done(r, &fail, NULL, arg);
        return;
    }
    st->r = r;
    st->done = done;
    st->arg = arg;
    snprintf(st->user_id, sizeof st->user_id, "%s", user_id);
    snprintf(st->method, sizeof st->method, "%s", method);
    snprintf(st->idle, sizeof st->idle, "%ld", r->w->cfg->session_idle);
    snprintf(st->lifetime, sizeof st->lifetime, "%ld", r->w->cfg->session_lifetime);
    session_client_addr(r, st->addr, sizeof st->addr);
    if (session_cookie_secret(r->req, r->w->cfg, old_secret) < 0 ||
        session_secret_hash(old_secret, st->old_hash) < 0)
        st->old_hash[0] = '\0';
    st->params[0] = st->user_id;
    st->params[1] = st->hash;
    st->params[2] = st->old_hash[0] ? st->old_hash : NULL;
    st->params[3] = st->method;
    st->params[4] = st->idle;
    st->params[5] = st->lifetime;
    st->params[6] = st->addr;
    qs = pgpool_query(r->w->pool, STMT_SESSION_CREATE, st->params, on_session_created, st);
    if (qs != DB_OK) {
        struct db_result fail = {.status = qs};
        free(st);
        done(r, &fail, NULL, arg);
    }
}

void reply_session_created(struct request *r, const struct db_result *res, const char *secret)
{
    char csrf[AUTH_HASH_LEN + 1];

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    if (session_csrf_token(secret, csrf) < 0) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    session_set_cookie(r, secret);
    reply_session_started(r, res, csrf, NULL);
}

void reply_session_started(struct request *r, const struct db_result *res, const char *csrf_token,
                           void *arg)
{
    json_error_t err;
    json_t *body;

    (void)arg;
    if (res->status != DB_OK || !csrf_token) {
        reply_db_failure(r, res);
        return;
    }
    body = res->value ? json_loads(res->value, 0, &err) : NULL;
    if (!body || json_object_set_new(body, "csrf_token", json_string(csrf_token)) < 0) {
        json_decref(body);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        log_error("session: unexpected answer from the database");
        return;
    }
    reply_json(r, 201, body);
}
