/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_users.c - API tokens made by the server (the database stores only
 * their hash; the token is shown this once), and GET /v1/me.
 *
 *   POST /v1/users/{id}/tokens  an admin issues a token to someone
 *   POST /v1/me/tokens          a person makes their own {name, expires_in?}
 *   GET  /v1/me                 who the caller is and how they authenticated;
 *                               a cookie session also gets its CSRF token
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "log.h"
#include "router.h"

struct token_state {
    char token[AUTH_TOKEN_LEN + 1];
    char hash[AUTH_HASH_LEN + 1];
};

static void token_state_free(void *arg)
{
    struct token_state *st = arg;
    OPENSSL_cleanse(st->token, sizeof st->token);
    free(st);
}

/* Adds "token" to the database's JSON answer. */
static void on_token_stored(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct token_state *st = r->state;
    json_t *body;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    body = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (!body || json_object_set_new(body, "token", json_string(st->token)) < 0) {
        json_decref(body);
        log_error("token: unexpected answer from the database");
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    reply_json(r, 201, body);
}

static struct token_state *new_token(struct request *r)
{
    struct token_state *st = calloc(1, sizeof *st);

    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return NULL;
    }
    r->state = st;
    r->state_free = token_state_free;
    if (auth_token_generate(st->token) < 0 ||
        auth_sha256_hex(st->token, strlen(st->token), st->hash) < 0) {
        log_error("token: the random generator failed");
        reply_error(r, 500, "internal", "could not generate a token");
        return NULL;
    }
    return st;
}

void handle_token_create(struct request *r)
{
    struct token_state *st = new_token(r);
    if (!st)
        return;
    r->params[0] = r->token_hash;
    r->params[1] = r->ids[0];
    r->params[2] = st->hash;
    r->params[3] = r->body;
    request_query(r, STMT_TOKEN_CREATE, on_token_stored);
}

void handle_my_token_create(struct request *r)
{
    struct token_state *st = new_token(r);
    if (!st)
        return;
    r->params[0] = r->token_hash;
    r->params[1] = r->body;
    r->params[2] = st->hash;
    request_query(r, STMT_MY_TOKEN_CREATE, on_token_stored);
}

static void on_me(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *body;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    if (r->auth_kind != AUTH_KIND_SESSION) {
        reply_json_text(r, 200, res->value ? res->value : "{}");
        return;
    }
    /* The browser cannot read its HttpOnly cookie: this is how a reloaded page gets the token. */
    body = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (!body || json_object_set_new(body, "csrf_token", json_string(r->csrf_token)) < 0) {
        json_decref(body);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    reply_json(r, 200, body);
}

void handle_me(struct request *r)
{
    request_query(r, STMT_ME, on_me);
}
