/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_sessions.c - signing in with a password and signing out.
 *
 * POST /v1/sessions {email, password}:
 *   1. the origin check (no signing in from another site: login CSRF);
 *   2. api_sign_in_begin: the throttle (429 with Retry-After, before any
 *      hashing) and the stored argon2id hash;
 *   3. the hashing pool verifies the password (against a dummy hash for an
 *      unknown email, so both answers take as long);
 *   4. api_sign_in_finish: on success a new session (the browser's old one
 *      ends) and 201 with the cookie; on failure the same 401 whether the
 *      email exists or not.
 * DELETE /v1/sessions/current ends the cookie session and clears the cookie.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "log.h"
#include "pwjob.h"
#include "router.h"
#include "session.h"

struct sign_in {
    struct pwjob job;
    char email[321];
    char addr[64];
    char user_id[37];
    char secret[SESSION_SECRET_LEN + 1];
    char secret_hash[AUTH_HASH_LEN + 1];
    char old_hash[AUTH_HASH_LEN + 1];
    char idle[24], lifetime[24];
};

static void sign_in_free(void *arg)
{
    struct sign_in *st = arg;
    sodium_memzero(st, sizeof *st);
    free(st);
}

/* Reads {email, password}: strings within bounds. Answers 400 itself and returns -1. */
static int read_credentials(struct request *r, struct sign_in *st)
{
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *email = json_object_get(doc, "email"), *password = json_object_get(doc, "password");
    int rc = -1;

    /* the body holds the password: parsed, it goes (before any answer frees r) */
    sodium_memzero(r->body, r->body_len);

    if (!json_is_string(email) || !json_is_string(password)) {
        reply_error(r, 400, "bad_request", "email and password are required (strings)");
        goto cleanup;
    }
    if (json_string_length(email) == 0 || json_string_length(email) > 320 ||
        strlen(json_string_value(email)) != json_string_length(email)) {
        reply_error(r, 400, "bad_request", "email must be 1 to 320 characters");
        goto cleanup;
    }
    if (json_string_length(password) == 0 || json_string_length(password) > PASSWORD_MAX_BYTES) {
        reply_error(r, 400, "bad_request", "password must be 1 to %d bytes", PASSWORD_MAX_BYTES);
        goto cleanup;
    }
    memcpy(st->email, json_string_value(email), json_string_length(email) + 1);
    st->job.len = json_string_length(password);
    memcpy(st->job.password, json_string_value(password), st->job.len);
    rc = 0;
cleanup:
    if (password && json_is_string(password))
        sodium_memzero((void *)json_string_value(password), json_string_length(password));
    json_decref(doc);
    return rc;
}

static void on_sign_in_finished(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct sign_in *st = r->state;

    if (res->status == DB_OK && !res->value) {
        reply_error(r, 401, "invalid_credentials", "the email or the password is not right");
        return;
    }
    reply_session_created(r, res, st->secret);
}

static void on_verified(struct request *r)
{
    struct sign_in *st = r->state;
    bool ok = st->job.ok && st->user_id[0];

    if (ok && session_new_secret(st->secret, st->secret_hash) < 0) {
        reply_error(r, 500, "internal", "could not start a session");
        return;
    }
    r->params[0] = st->email;
    r->params[1] = st->addr;
    r->params[2] = st->user_id[0] ? st->user_id : NULL;
    r->params[3] = ok ? "true" : "false";
    r->params[4] = ok ? st->secret_hash : NULL;
    r->params[5] = st->old_hash[0] ? st->old_hash : NULL;
    r->params[6] = st->idle;
    r->params[7] = st->lifetime;
    request_query(r, STMT_SIGN_IN_FINISH, on_sign_in_finished);
}

static void on_sign_in_begun(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct sign_in *st = r->state;
    json_t *doc, *wait, *user, *hash;

    if (res->status != DB_OK) {
        sodium_memzero(st->job.password, sizeof st->job.password);
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    wait = json_object_get(doc, "wait");
    if (json_is_integer(wait)) {
        char seconds[24];
        snprintf(seconds, sizeof seconds, "%lld", (long long)json_integer_value(wait));
        json_decref(doc);
        sodium_memzero(st->job.password, sizeof st->job.password);
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", seconds);
        reply_error(r, 429, "too_many_attempts",
                    "too many sign-in attempts: wait %s seconds and try again", seconds);
        return;
    }
    user = json_object_get(doc, "user_id");
    hash = json_object_get(doc, "hash");
    if (json_is_string(user) && strlen(json_string_value(user)) == 36)
        memcpy(st->user_id, json_string_value(user), 37);
    if (json_is_string(hash) && strlen(json_string_value(hash)) < sizeof st->job.hash)
        strcpy(st->job.hash, json_string_value(hash));
    json_decref(doc);
    st->job.verify = true;
    pwjob_submit(r, &st->job, on_verified);
}

void handle_sign_in(struct request *r)
{
    const char *problem = session_origin_problem(r->req, r->w->cfg);
    struct sign_in *st;
    char old_secret[SESSION_SECRET_LEN + 1];

    if (problem) {
        reply_error(r, 403, "csrf_failed", "%s", problem);
        return;
    }
    st = calloc(1, sizeof *st);
    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = st;
    r->state_free = sign_in_free;
    if (read_credentials(r, st) < 0)
        return;
    session_client_addr(r, st->addr, sizeof st->addr);
    if (session_cookie_secret(r->req, r->w->cfg, old_secret) < 0 ||
        session_secret_hash(old_secret, st->old_hash) < 0)
        st->old_hash[0] = '\0';
    snprintf(st->idle, sizeof st->idle, "%ld", r->w->cfg->session_idle);
    snprintf(st->lifetime, sizeof st->lifetime, "%ld", r->w->cfg->session_lifetime);
    r->params[0] = st->email;
    r->params[1] = st->addr;
    request_query(r, STMT_SIGN_IN_BEGIN, on_sign_in_begun);
}

static void on_signed_out(const struct db_result *res, void *arg)
{
    struct request *r = arg;

    if (res->status != DB_OK) {
        /* an ended session: clear the cookie all the same */
        if (res->status == DB_ERROR && res->sqlstate && strcmp(res->sqlstate, "AC401") == 0)
            session_clear_cookie(r);
        reply_db_failure(r, res);
        return;
    }
    session_clear_cookie(r);
    reply_empty(r, 204);
}

void handle_sign_out(struct request *r)
{
    r->params[0] = r->token_hash;
    request_query(r, STMT_SESSION_END, on_signed_out);
}
