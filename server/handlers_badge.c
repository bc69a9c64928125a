/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_badge.c - badges on the wire (issue 12): the public page and
 * credential at an award's URL, the earner's downloads, the issuer Profile.
 *
 * A badge is signed once: the first read of a badge without a stored JWT
 * builds the OpenBadgeCredential (badge.h), signs it with the active key
 * and stores it (badge_store_jwt); later reads serve the stored JWT. Building
 * and signing, and the page (which checks the signature), run on an offload
 * thread, never on the event loop: an RSA signature costs about a
 * millisecond. A stored JWT served as JWT or JSON is answered on the loop.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "badge.h"
#include "jws.h"
#include "keys.h"
#include "log.h"
#include "offload.h"
#include "router.h"

enum badge_format { FORMAT_HTML, FORMAT_JSON, FORMAT_JWT };

struct badge_job {
    const struct config *cfg;
    enum badge_format format;
    bool download;
    char *row_text; /* the database's row (owned) */
    char id[37];
    /* results of the offload work */
    char kid[37];  /* set when a new JWT was signed with this key */
    char *new_jwt; /* to store */
    char *body;
    size_t body_len;
    int status; /* 0 = ok, else an error status with error[] */
    char error[200];
};

static void badge_job_free(void *arg)
{
    struct badge_job *job = arg;
    free(job->row_text);
    free(job->new_jwt);
    free(job->body);
    free(job);
}

/*
 * The representation the client asked for: the JWT for application/vc+jwt
 * (or application/jwt), else whichever of HTML and JSON comes first in
 * Accept; JSON when there is no Accept (API clients).
 */
static enum badge_format negotiate(struct request *r)
{
    const char *accept = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Accept");
    const char *html, *json;
    if (!accept)
        return FORMAT_JSON;
    if (strstr(accept, "application/vc+jwt") || strstr(accept, "application/jwt"))
        return FORMAT_JWT;
    html = strstr(accept, "text/html");
    json = strstr(accept, "application/json");
    if (!json)
        json = strstr(accept, "application/ld+json");
    if (html && (!json || html < json))
        return FORMAT_HTML;
    return FORMAT_JSON;
}

static void set_text(struct badge_job *job, const char *text)
{
    job->body = strdup(text);
    job->body_len = job->body ? strlen(text) : 0;
}

static void job_fail(struct badge_job *job, int status, const char *msg)
{
    job->status = status;
    snprintf(job->error, sizeof job->error, "%s", msg);
}

/*
 * The active private key, read from its file once per key (OpenSSL 3's PEM
 * decoders cost milliseconds). Shared by the offload threads: an EVP_PKEY is
 * reference-counted and signing with it from several threads is safe. A
 * rotation changes the active key id, and the next signature reads the new
 * file; the old key is freed when its last user is done.
 */
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char key_cache_kid[37];
static EVP_PKEY *key_cache;

static EVP_PKEY *active_key(const char *dir, const char *kid)
{
    char path[1100];
    EVP_PKEY *key = NULL;

    pthread_mutex_lock(&key_cache_lock);
    if (key_cache && strcmp(key_cache_kid, kid) == 0 && EVP_PKEY_up_ref(key_cache) == 1)
        key = key_cache;
    pthread_mutex_unlock(&key_cache_lock);
    if (key || keys_path(dir, kid, path, sizeof path) < 0)
        return key;
    key = jws_key_read_private(path);
    if (key && EVP_PKEY_up_ref(key) == 1) {
        pthread_mutex_lock(&key_cache_lock);
        EVP_PKEY_free(key_cache);
        key_cache = key; /* the cache's reference */
        memcpy(key_cache_kid, kid, 37);
        pthread_mutex_unlock(&key_cache_lock);
    }
    return key;
}

/* Signs the credential with the active key (its file in the key directory). */
static char *sign(struct badge_job *job, const json_t *row, const json_t *credential)
{
    const char *active = json_string_value(json_object_get(row, "active_kid"));
    char path[1100];
    EVP_PKEY *key = NULL;
    json_t *header = NULL, *payload = NULL;
    char *jwt = NULL;

    if (!active || strlen(active) != 36) {
        job_fail(job, 503, "no badge signing key is active; an operator runs `accord keys rotate`");
        return NULL;
    }
    key = active_key(job->cfg->key_dir, active);
    if (!key) {
        if (keys_path(job->cfg->key_dir, active, path, sizeof path) < 0)
            path[0] = '\0';
        log_error("badge %s: cannot read the signing key %s", job->id, path);
        job_fail(job, 503, "the badge signing key is not readable (logged on the server)");
        return NULL;
    }
    header = badge_jwt_header(job->cfg, active);
    payload = badge_jwt_payload(credential, row);
    /* when it was signed: a verifier refuses a signature made after its key was retired */
    if (payload)
        json_object_set_new(payload, "iat", json_integer((json_int_t)time(NULL)));
    if (header && payload)
        jwt = jws_sign_rs256(key, header, payload);
    if (!jwt)
        job_fail(job, 500, "could not sign the badge (logged on the server)");
    else
        memcpy(job->kid, active, 37);
    json_decref(header);
    json_decref(payload);
    EVP_PKEY_free(key);
    return jwt;
}

/* Checks the JWT against the public key that signed it; says what it found. */
static void check_sentence(const json_t *row, const char *jwt, const char *kid, char *out,
                           size_t cap, const struct config *cfg) __attribute__((nonnull));
static void check_sentence(const json_t *row, const char *jwt, const char *kid, char *out,
                           size_t cap, const struct config *cfg)
{
    const char *pem = json_string_value(json_object_get(row, "signed_key_pem"));
    const char *state = json_string_value(json_object_get(row, "signed_key_state"));
    char err[120] = "";
    EVP_PKEY *key = pem ? jws_key_from_public_pem(pem) : NULL;
    json_t *payload = NULL;

    if (!key) {
        /* just signed: check against the signing key's public half */
        char path[1100];
        EVP_PKEY *priv = keys_path(cfg->key_dir, kid, path, sizeof path) == 0
                             ? jws_key_read_private(path)
                             : NULL;
        char *pub = priv ? jws_key_public_pem(priv) : NULL;
        key = pub ? jws_key_from_public_pem(pub) : NULL;
        free(pub);
        EVP_PKEY_free(priv);
        state = "active";
    }
    payload = key ? jws_verify_rs256(key, jwt, err, sizeof err) : NULL;
    if (payload && cap >= 2000)
        snprintf(out, cap,
                 "The RS256 signature of this badge's VC-JWT was checked against the issuer's "
                 "%s public key %s/v1/keys/%s (published in %s/.well-known/jwks.json): valid. "
                 "The status comes from the issuer's revocation list.",
                 state ? state : "published", cfg->public_url, kid, cfg->public_url);
    else
        snprintf(out, cap, "The signature could not be checked: %s.",
                 err[0] ? err : "the signing key is not available");
    json_decref(payload);
    EVP_PKEY_free(key);
}

static void badge_work(void *arg)
{
    struct request *r = arg;
    struct badge_job *job = r->state;
    json_t *row = json_loads(job->row_text, 0, NULL), *credential = NULL, *payload = NULL;
    const char *stored = json_string_value(json_object_get(row, "jwt"));
    const char *kid = json_string_value(json_object_get(row, "signed_kid"));
    char *jwt = NULL;

    if (!json_is_object(row)) {
        job_fail(job, 500, "could not build the badge (logged on the server)");
        log_error("badge %s: the database row is not a badge", job->id);
        goto cleanup;
    }
    if (!stored) {
        /* built only to be signed: a stored JWT is served as it is */
        if (!(credential = badge_credential(job->cfg, row))) {
            job_fail(job, 500, "could not build the badge (logged on the server)");
            log_error("badge %s: the database row is not a badge", job->id);
            goto cleanup;
        }
        if (!(job->new_jwt = sign(job, row, credential)))
            goto cleanup;
        stored = job->new_jwt;
        kid = job->kid;
    }
    payload = jws_payload(stored);
    if (!payload) {
        job_fail(job, 500, "the stored badge is malformed (logged on the server)");
        log_error("badge %s: the stored JWT does not decode", job->id);
        goto cleanup;
    }
    switch (job->format) {
    case FORMAT_JWT:
        set_text(job, stored);
        break;
    case FORMAT_JSON:
        /* the page's JSON is the credential; the download is the whole signed payload */
        if (!job->download) {
            static const char *const claims[] = {"iss", "jti", "sub", "nbf", "exp", "iat"};
            for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++)
                json_object_del(payload, claims[i]);
        }
        jwt = json_dumps(payload, JSON_INDENT(2) | JSON_ENSURE_ASCII);
        if (jwt)
            set_text(job, jwt);
        break;
    case FORMAT_HTML: {
        char check[2000];
        check_sentence(row, stored, kid ? kid : "", check, sizeof check, job->cfg);
        job->body = badge_html(job->cfg, row, payload, check, &job->body_len);
        break;
    }
    }
    if (!job->body && !job->status)
        job_fail(job, 503, "out of memory");
cleanup:
    free(jwt);
    json_decref(payload);
    json_decref(credential);
    json_decref(row);
}

static void send_badge(struct request *r)
{
    struct badge_job *job = r->state;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    struct evbuffer *buf;
    const char *ctype;
    char disp[120];

    if (job->status) {
        reply_error(r, job->status, job->status == 503 ? "unavailable" : "internal", "%s",
                    job->error);
        return;
    }
    buf = evbuffer_new();
    if (!buf) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    evbuffer_add(buf, job->body, job->body_len);
    switch (job->format) {
    case FORMAT_JWT:
        ctype = "application/vc+jwt";
        break;
    case FORMAT_JSON:
        evbuffer_add(buf, "\n", 1);
        ctype = "application/json";
        break;
    default:
        ctype = "text/html; charset=utf-8";
        evhttp_add_header(h, "Content-Security-Policy",
                          "default-src 'none'; base-uri 'none'; form-action 'none'; "
                          "frame-ancestors 'none'");
        evhttp_add_header(h, "Referrer-Policy", "no-referrer");
        break;
    }
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    if (job->download) {
        snprintf(disp, sizeof disp, "attachment; filename=\"badge-%s.%s\"", job->id,
                 job->format == FORMAT_JWT ? "jwt" : "json");
        evhttp_add_header(h, "Content-Disposition", disp);
        evhttp_add_header(h, "Cache-Control", "no-store");
    } else {
        evhttp_add_header(h, "Vary", "Accept");
        /* the status may change (revocation): caches must ask again */
        evhttp_add_header(h, "Cache-Control", "no-cache");
    }
    reply_buffer(r, 200, ctype, buf);
    evbuffer_free(buf);
}

static void on_stored(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct badge_job *job = r->state;
    if (res->status != DB_OK) {
        /* the badge is still valid as signed; the next read signs again */
        log_warn("badge %s: storing its JWT failed: %s", job->id,
                 res->message ? res->message : "database unavailable");
    }
    send_badge(r);
}

static void badge_done(void *arg)
{
    struct request *r = arg;
    struct badge_job *job = r->state;
    if (job->status || !job->new_jwt) {
        send_badge(r);
        return;
    }
    r->params[0] = job->id;
    r->params[1] = job->kid;
    r->params[2] = job->new_jwt;
    request_query(r, STMT_BADGE_STORE_JWT, on_stored);
}

static void on_row(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct badge_job *job = r->state;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    if (!res->value || !(job->row_text = strdup(res->value))) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    if (job->format != FORMAT_HTML) {
        /* a stored JWT served as JWT or JSON costs no cryptography: answer here */
        json_t *row = json_loads(job->row_text, 0, NULL);
        bool signed_already = json_is_string(json_object_get(row, "jwt"));
        json_decref(row);
        if (signed_already) {
            badge_work(r);
            badge_done(r);
            return;
        }
    }
    if (offload_submit(r->w->offload, r->w->base, badge_work, badge_done, r) < 0)
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
}

static void start(struct request *r, enum stmt_id stmt, enum badge_format format, bool download)
{
    struct badge_job *job;
    if (!r->w->cfg->public_url_set) {
        reply_error(r, 503, "not_configured",
                    "badges are not issued: the server has no ACCORD_PUBLIC_URL");
        return;
    }
    job = calloc(1, sizeof *job);
    if (!job) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    job->cfg = r->w->cfg;
    job->format = format;
    job->download = download;
    memcpy(job->id, r->ids[0], 37);
    r->state = job;
    r->state_free = badge_job_free;
    if (stmt == STMT_BADGE_PUBLIC) /* the page needs the whole row; the JWT and JSON do not */
        r->params[1] = format == FORMAT_HTML ? "true" : "false";
    request_query(r, stmt, on_row);
}

void handle_award_public(struct request *r)
{
    start(r, STMT_BADGE_PUBLIC, negotiate(r), false);
}

void handle_my_award_jwt(struct request *r)
{
    start(r, STMT_MY_BADGE, FORMAT_JWT, true);
}

void handle_my_award_json(struct request *r)
{
    start(r, STMT_MY_BADGE, FORMAT_JSON, true);
}

void handle_issuer(struct request *r)
{
    json_t *p;
    if (!r->w->cfg->public_url_set) {
        reply_error(r, 503, "not_configured",
                    "badges are not issued: the server has no ACCORD_PUBLIC_URL");
        return;
    }
    p = badge_issuer_profile(r->w->cfg);
    if (p)
        json_object_set_new(p, "@context", json_pack("[s,s]", BADGE_CONTEXT_VC, BADGE_CONTEXT_OB));
    reply_json(r, 200, p);
}

static void on_achievement(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *doc, *ach;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    ach = badge_achievement(r->w->cfg, json_object_get(doc, "achievement"));
    json_decref(doc);
    if (!ach) {
        reply_error(r, 500, "internal", "could not build the achievement (logged on the server)");
        log_error("achievement %s: the database row is not an achievement", r->ids[0]);
        return;
    }
    json_object_set_new(ach, "@context", json_pack("[s,s]", BADGE_CONTEXT_VC, BADGE_CONTEXT_OB));
    reply_json(r, 200, ach);
}

/* An achievement at its id URL: plain JSON, no signature, cheap enough for the loop. */
void handle_achievement(struct request *r)
{
    if (!r->w->cfg->public_url_set) {
        reply_error(r, 503, "not_configured",
                    "badges are not issued: the server has no ACCORD_PUBLIC_URL");
        return;
    }
    request_query(r, STMT_ACHIEVEMENT_PUBLIC, on_achievement);
}
