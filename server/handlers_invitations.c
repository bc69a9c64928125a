/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_invitations.c - invitations: one-time links to an account.
 *
 * POST /v1/invitations: the server makes the link's secret (32 random bytes,
 * 64 hex digits); the database stores its SHA-256 only. The answer's url is
 * <public url>/invite#<secret>: the secret sits in the fragment, which
 * browsers never send to a server or put in a Referer, so it stays out of
 * logs. The invitation page reads it and calls:
 *   POST /v1/invitations/open   {secret}            what the invitation says
 *   POST /v1/invitations/accept {secret, password}  sets the password (hashed
 *        off the loop), accepts, and signs the person in (201 + cookie).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
#include "pwjob.h"
#include "router.h"
#include "session.h"

#define SECRET_LEN 64

struct invitation_state {
    struct pwjob job;
    char secret[SECRET_LEN + 1];
    char secret_hash[AUTH_HASH_LEN + 1];
    char session_secret[SESSION_SECRET_LEN + 1];
    char session_hash[AUTH_HASH_LEN + 1];
    char old_hash[AUTH_HASH_LEN + 1];
    char idle[24], lifetime[24];
    char addr[64];
    char url[600]; /* the link, when it is mailed */
};

static void invitation_state_free(void *arg)
{
    struct invitation_state *st = arg;
    sodium_memzero(st, sizeof *st);
    free(st);
}

static struct invitation_state *new_state(struct request *r)
{
    struct invitation_state *st = calloc(1, sizeof *st);
    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return NULL;
    }
    r->state = st;
    r->state_free = invitation_state_free;
    return st;
}

static void on_invitation_created(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct invitation_state *st = r->state;
    char url[sizeof r->w->cfg->public_url + 16 + SECRET_LEN];
    json_t *body;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    snprintf(url, sizeof url, "%s/invite#%s", r->w->cfg->public_url, st->secret);
    body = res->value ? json_loads(res->value, 0, NULL) : NULL;
    /* mailed: the link is also in the outbox (SMTP configured), so the page can
       say whether the person still needs it handed to them */
    if (!body || json_object_set_new(body, "url", json_string(url)) < 0 ||
        json_object_set_new(body, "mailed", json_boolean(r->w->cfg->smtp_url[0] != '\0')) < 0) {
        json_decref(body);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    reply_json(r, 201, body);
}

void handle_invitation_create(struct request *r)
{
    struct invitation_state *st = new_state(r);
    if (!st)
        return;
    /* a session secret is 64 hex digits of CSPRNG output too */
    if (session_new_secret(st->secret, st->secret_hash) < 0) {
        reply_error(r, 500, "internal", "could not make an invitation secret");
        return;
    }
    r->params[0] = r->token_hash;
    r->params[1] = r->body;
    r->params[2] = st->secret_hash;
    /* with SMTP settings the link is mailed too (issue 14: the outbox, in this transaction) */
    if (r->w->cfg->smtp_url[0]) {
        snprintf(st->url, sizeof st->url, "%s/invite#%s", r->w->cfg->public_url, st->secret);
        r->params[3] = st->url;
        request_query(r, STMT_INVITATION_CREATE_MAIL, on_invitation_created);
        return;
    }
    request_query(r, STMT_INVITATION_CREATE, on_invitation_created);
}

/*
 * Reads {secret, password?} from the body. A secret that cannot be one of
 * ours is simply unknown (404), like an unknown one. Answers itself and
 * returns -1 on error.
 */
static int read_secret(struct request *r, struct invitation_state *st, bool want_password)
{
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *secret = json_object_get(doc, "secret");
    int rc = -1;

    /* the body holds the password: parsed, it goes (before any answer frees r) */
    sodium_memzero(r->body, r->body_len);
    json_t *password = json_object_get(doc, "password");
    const char *s;

    if (!json_is_string(secret)) {
        reply_error(r, 400, "bad_request", "secret is required (the part of the link after #)");
        goto cleanup;
    }
    s = json_string_value(secret);
    if (strlen(s) != SECRET_LEN || strspn(s, "0123456789abcdef") != SECRET_LEN) {
        reply_error(r, 404, "invitation_unknown",
                    "this invitation link is not valid: ask for a new one");
        goto cleanup;
    }
    memcpy(st->secret, s, SECRET_LEN + 1);
    if (auth_sha256_hex(st->secret, SECRET_LEN, st->secret_hash) < 0) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    if (want_password) {
        if (!json_is_string(password)) {
            reply_error(r, 400, "bad_request", "password is required (a string)");
            goto cleanup;
        }
        if (json_string_length(password) > PASSWORD_MAX_BYTES) {
            reply_error(r, 422, "weak_password", "the password is too long (at most %d bytes)",
                        PASSWORD_MAX_BYTES);
            goto cleanup;
        }
        st->job.len = json_string_length(password);
        memcpy(st->job.password, json_string_value(password), st->job.len);
    }
    rc = 0;
cleanup:
    if (password && json_is_string(password))
        sodium_memzero((void *)json_string_value(password), json_string_length(password));
    json_decref(doc);
    return rc;
}

void handle_invitation_open(struct request *r)
{
    struct invitation_state *st = new_state(r);
    if (!st || read_secret(r, st, false) < 0)
        return;
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    r->params[0] = st->secret_hash;
    router_call(r, STMT_INVITATION_OPEN, 200);
}

static void on_accepted(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct invitation_state *st = r->state;

    reply_session_created(r, res, st->session_secret);
}

static void on_hashed(struct request *r)
{
    struct invitation_state *st = r->state;

    if (!st->job.ok) {
        reply_error(r, 503, "busy", "could not hash the password; try again");
        return;
    }
    if (session_new_secret(st->session_secret, st->session_hash) < 0) {
        reply_error(r, 500, "internal", "could not start a session");
        return;
    }
    r->params[0] = st->secret_hash;
    r->params[1] = st->job.hash;
    r->params[2] = st->session_hash;
    r->params[3] = st->old_hash[0] ? st->old_hash : NULL;
    r->params[4] = st->idle;
    r->params[5] = st->lifetime;
    r->params[6] = st->addr;
    request_query(r, STMT_INVITATION_ACCEPT, on_accepted);
}

/* The invitation is usable: check the password against its email, then hash it. */
static void on_opened_for_accept(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct invitation_state *st = r->state;
    json_t *doc;
    const char *problem;

    if (res->status != DB_OK) {
        sodium_memzero(st->job.password, sizeof st->job.password);
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    problem = password_problem(st->job.password, st->job.len,
                               json_string_value(json_object_get(doc, "email")));
    json_decref(doc);
    if (problem) {
        sodium_memzero(st->job.password, sizeof st->job.password);
        reply_error(r, 422, "weak_password", "%s", problem);
        return;
    }
    st->job.verify = false;
    pwjob_submit(r, &st->job, on_hashed);
}

void handle_invitation_accept(struct request *r)
{
    const char *problem = session_origin_problem(r->req, r->w->cfg);
    struct invitation_state *st;
    char old_secret[SESSION_SECRET_LEN + 1];

    if (problem) {
        reply_error(r, 403, "csrf_failed", "%s", problem);
        return;
    }
    st = new_state(r);
    if (!st || read_secret(r, st, true) < 0)
        return;
    session_client_addr(r, st->addr, sizeof st->addr);
    if (session_cookie_secret(r->req, r->w->cfg, old_secret) < 0 ||
        session_secret_hash(old_secret, st->old_hash) < 0)
        st->old_hash[0] = '\0';
    snprintf(st->idle, sizeof st->idle, "%ld", r->w->cfg->session_idle);
    snprintf(st->lifetime, sizeof st->lifetime, "%ld", r->w->cfg->session_lifetime);
    r->params[0] = st->secret_hash;
    request_query(r, STMT_INVITATION_OPEN, on_opened_for_accept);
}
