/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_oidc.c - single sign-on with OpenID Connect (authorization code
 * flow with PKCE S256, state and nonce).
 *
 *   GET /v1/auth/oidc/providers        the enabled providers (sign-in buttons)
 *   GET /v1/auth/oidc/{id}/start       -> 302 to the provider (?return_to=, ?invitation=)
 *   GET /v1/auth/oidc/callback         <- the provider; -> signed in, 303 on
 *
 * start: fresh random state, nonce, PKCE verifier and a browser-binding value
 * (all 32 bytes from OpenSSL's CSPRNG); the database keeps the state's and
 * the binding's hashes, the nonce and the verifier (oidc_login_begin); the
 * browser gets the binding in a short-lived cookie and is sent to the
 * provider's authorization endpoint (discovered off-loop).
 *
 * callback: the database consumes the state (single use, 10 minutes, same
 * browser: oidc_login_take); an offload thread redeems the code and verifies
 * the id_token (oidc_client.h); the database decides who the person is
 * (oidc_login_finish); signin.h starts their session.
 *
 * Outbound HTTP runs on the worker's network offload threads, never on the
 * event loop; at most OIDC_MAX_INFLIGHT such jobs exist at once (then 503).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth.h"
#include "jwt.h"
#include "log.h"
#include "offload.h"
#include "oidc_client.h"
#include "router.h"
#include "signin.h"

#define OIDC_MAX_INFLIGHT 64
#define OIDC_COOKIE       "accord_oidc"
#define OIDC_COOKIE_PATH  "/v1/auth/oidc"
#define RANDOM_B64_LEN    43 /* 32 bytes in base64url */
#define RETURN_TO_MAX     1024
#define CODE_MAX          2048

static atomic_int inflight;

struct oidc_flow {
    char state[RANDOM_B64_LEN + 1], nonce[RANDOM_B64_LEN + 1];
    char verifier[RANDOM_B64_LEN + 1], browser[RANDOM_B64_LEN + 1];
    char state_hash[AUTH_HASH_LEN + 1], browser_hash[AUTH_HASH_LEN + 1];
    char invitation_hash[AUTH_HASH_LEN + 1]; /* "" without an invitation link */
    char redirect_uri[600];
    char return_to[RETURN_TO_MAX + 1];
    char *code;
    char *iss; /* the authorization response's iss (RFC 9207), or NULL */
    /* from the database */
    json_t *login; /* oidc_login_begin's or oidc_login_take's answer */
    /* from the offload thread */
    struct oidc_meta meta;
    struct oidc_exchange x;
    struct oidc_error err;
    int rc;
    char *claims_text;
};

static void flow_free(void *arg)
{
    struct oidc_flow *f = arg;
    if (!f)
        return;
    free(f->code);
    free(f->iss);
    json_decref(f->login); /* holds the client secret: gone with the request */
    json_decref(f->x.claims);
    free(f->claims_text);
    OPENSSL_cleanse(f, sizeof *f);
    free(f);
}

static struct oidc_flow *flow_new(struct request *r)
{
    struct oidc_flow *f = calloc(1, sizeof *f);
    if (!f) {
        reply_error(r, 503, "busy", "out of memory");
        return NULL;
    }
    r->state = f;
    r->state_free = flow_free;
    return f;
}

static int random_b64(char out[RANDOM_B64_LEN + 1])
{
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return -1;
    jwt_b64url_encode(bytes, sizeof bytes, out);
    return 0;
}

/* Submits a network job, bounded by OIDC_MAX_INFLIGHT. Returns 0, or answers 503 and returns -1. */
static int submit_net(struct request *r, void (*work)(void *), void (*done)(void *))
{
    if (atomic_fetch_add(&inflight, 1) >= OIDC_MAX_INFLIGHT) {
        atomic_fetch_sub(&inflight, 1);
        reply_error(r, 503, "busy", "too many sign-ins at once; try again in a moment");
        return -1;
    }
    if (offload_submit(r->w->offload_net, r->w->base, work, done, r) < 0) {
        atomic_fetch_sub(&inflight, 1);
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
        return -1;
    }
    return 0;
}

static void reply_oidc_error(struct request *r, const struct oidc_error *e)
{
    reply_error(r, e->status ? e->status : 502, e->code ? e->code : "provider_error", "%s",
                e->message);
}

/* The query string's parameters (each at most once); 0, or answers 400 and returns -1. */
static int read_params(struct request *r, struct evkeyvalq *params)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyval *kv;
    int n = 0;

    TAILQ_INIT(params);
    if (query && strlen(query) > 8192) {
        reply_error(r, 400, "bad_request", "the query string is longer than 8192 bytes");
        return -1;
    }
    if (query && *query && evhttp_parse_query_str(query, params) < 0) {
        reply_error(r, 400, "bad_request", "the query string is malformed");
        return -1;
    }
    TAILQ_FOREACH(kv, params, next)
    {
        struct evkeyval *other;
        if (++n > 16) {
            reply_error(r, 400, "bad_request", "too many query parameters");
            return -1;
        }
        for (other = TAILQ_NEXT(kv, next); other; other = TAILQ_NEXT(other, next))
            if (strcmp(other->key, kv->key) == 0) {
                reply_error(r, 400, "bad_request", "query parameter '%.32s' is given twice",
                            kv->key);
                return -1;
            }
    }
    return 0;
}

/* A path on this server to land on: "/..." but not "//host" or "/\host" (no open redirect). */
static int safe_return_to(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > RETURN_TO_MAX || s[0] != '/' || s[1] == '/' || s[1] == '\\')
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')
            return 0;
    return 1;
}

static bool public_https(const struct request *r)
{
    return strncmp(r->w->cfg->public_url, "https://", 8) == 0;
}

/* ---------------------------------------------------------------- start */

static void start_discover(void *arg)
{
    struct request *r = arg;
    struct oidc_flow *f = r->state;
    const char *issuer = json_string_value(json_object_get(f->login, "issuer"));
    f->rc = issuer ? oidc_discover(issuer, &f->meta, &f->err) : -1;
}

static int append_param(struct evbuffer *b, const char *name, const char *value)
{
    char *esc = evhttp_uriencode(value, -1, 0);
    int rc = esc ? evbuffer_add_printf(b, "&%s=%s", name, esc) : -1;
    free(esc);
    return rc < 0 ? -1 : 0;
}

static void start_discovered(void *arg)
{
    struct request *r = arg;
    struct oidc_flow *f = r->state;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    struct evbuffer *url = evbuffer_new();
    const char *client_id = json_string_value(json_object_get(f->login, "client_id"));
    unsigned char digest[32];
    unsigned int dlen = 0;
    char challenge[RANDOM_B64_LEN + 1], cookie[256];
    char *location = NULL;

    atomic_fetch_sub(&inflight, 1);
    if (f->rc < 0) {
        if (url)
            evbuffer_free(url);
        reply_oidc_error(r, &f->err);
        return;
    }
    /* PKCE S256: the challenge is base64url(SHA-256(verifier)). */
    if (!url || !client_id ||
        EVP_Digest(f->verifier, strlen(f->verifier), digest, &dlen, EVP_sha256(), NULL) != 1)
        goto oom;
    jwt_b64url_encode(digest, dlen, challenge);
    if (evbuffer_add_printf(url, "%s%sresponse_type=code", f->meta.authorization_endpoint,
                            strchr(f->meta.authorization_endpoint, '?') ? "&" : "?") < 0 ||
        append_param(url, "client_id", client_id) < 0 ||
        append_param(url, "redirect_uri", f->redirect_uri) < 0 ||
        append_param(url, "scope", "openid email profile") < 0 ||
        append_param(url, "state", f->state) < 0 || append_param(url, "nonce", f->nonce) < 0 ||
        append_param(url, "code_challenge", challenge) < 0 ||
        append_param(url, "code_challenge_method", "S256") < 0 || evbuffer_add(url, "", 1) < 0)
        goto oom;
    location = (char *)evbuffer_pullup(url, -1);
    snprintf(cookie, sizeof cookie, "%s=%s; Path=%s; Max-Age=600; HttpOnly; SameSite=Lax%s",
             OIDC_COOKIE, f->browser, OIDC_COOKIE_PATH, public_https(r) ? "; Secure" : "");
    evhttp_add_header(out, "Location", location);
    evhttp_add_header(out, "Set-Cookie", cookie);
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer"); /* the URL may hold an invitation */
    evbuffer_free(url);
    reply_empty(r, 302);
    return;
oom:
    if (url)
        evbuffer_free(url);
    reply_error(r, 503, "busy", "out of memory");
}

static void on_login_begun(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct oidc_flow *f = r->state;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    f->login = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (!f->login) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    submit_net(r, start_discover, start_discovered);
}

void handle_oidc_start(struct request *r)
{
    struct evkeyvalq params;
    struct oidc_flow *f = flow_new(r);
    const char *return_to, *invitation;

    if (!f)
        return;
    if (read_params(r, &params) < 0)
        goto cleanup;
    return_to = evhttp_find_header(&params, "return_to");
    if (!return_to)
        return_to = "/";
    if (!safe_return_to(return_to)) {
        reply_error(r, 400, "invalid_return_to",
                    "return_to must be a path on this server (starting with one '/', at most %d "
                    "bytes)",
                    RETURN_TO_MAX);
        goto cleanup;
    }
    snprintf(f->return_to, sizeof f->return_to, "%s", return_to);
    invitation = evhttp_find_header(&params, "invitation");
    if (invitation && (strlen(invitation) != 64 || strspn(invitation, "0123456789abcdef") != 64)) {
        reply_error(r, 400, "invalid_invitation",
                    "invitation must be the secret of an invitation link (64 hex digits)");
        goto cleanup;
    }
    if (invitation && auth_sha256_hex(invitation, 64, f->invitation_hash) < 0) {
        reply_error(r, 503, "busy", "out of memory");
        goto cleanup;
    }
    if (random_b64(f->state) < 0 || random_b64(f->nonce) < 0 || random_b64(f->verifier) < 0 ||
        random_b64(f->browser) < 0 ||
        auth_sha256_hex(f->state, strlen(f->state), f->state_hash) < 0 ||
        auth_sha256_hex(f->browser, strlen(f->browser), f->browser_hash) < 0) {
        log_error("oidc: the random generator failed");
        reply_error(r, 500, "internal", "could not start the sign-in");
        goto cleanup;
    }
    snprintf(f->redirect_uri, sizeof f->redirect_uri, "%s/v1/auth/oidc/callback",
             r->w->cfg->public_url);
    r->params[0] = r->ids[0];
    r->params[1] = f->state_hash;
    r->params[2] = f->browser_hash;
    r->params[3] = f->nonce;
    r->params[4] = f->verifier;
    r->params[5] = f->redirect_uri;
    r->params[6] = f->return_to;
    r->params[7] = f->invitation_hash[0] ? f->invitation_hash : NULL;
    request_query(r, STMT_OIDC_LOGIN_BEGIN, on_login_begun);
cleanup:
    evhttp_clear_headers(&params);
}

/* ------------------------------------------------------------- callback */

/* The value of cookie name in the Cookie header(s), copied into out; 0 or -1. */
static int find_cookie(struct evhttp_request *req, const char *name, char *out, size_t cap)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    size_t nlen = strlen(name);

    TAILQ_FOREACH(kv, h, next)
    {
        const char *p;
        if (strcasecmp(kv->key, "Cookie") != 0)
            continue;
        for (p = kv->value; p && *p;) {
            while (*p == ' ' || *p == ';')
                p++;
            if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
                const char *v = p + nlen + 1;
                size_t vlen = strcspn(v, ";");
                if (vlen == 0 || vlen >= cap)
                    return -1;
                memcpy(out, v, vlen);
                out[vlen] = '\0';
                return 0;
            }
            p = strchr(p, ';');
        }
    }
    return -1;
}

static void on_login_finished(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *doc;
    const char *user_id, *return_to;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    user_id = json_string_value(json_object_get(doc, "user_id"));
    return_to = json_string_value(json_object_get(doc, "return_to"));
    if (!user_id || !return_to) {
        json_decref(doc);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    /* the session cookie replaces the binding cookie, which is spent */
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Set-Cookie",
                      OIDC_COOKIE "=; Path=" OIDC_COOKIE_PATH
                                  "; Max-Age=0; HttpOnly; SameSite=Lax");
    signin_session_redirect(r, user_id, return_to, "oidc");
    json_decref(doc);
}

static void callback_exchange(void *arg)
{
    struct request *r = arg;
    struct oidc_flow *f = r->state;
    f->rc = oidc_exchange_code(&f->x, &f->err);
}

/* Only what the database needs to decide who this is. */
static char *claims_for_db(const json_t *claims)
{
    static const char *const keep[] = {"iss",  "sub",        "email",       "email_verified",
                                       "name", "given_name", "family_name", "tid"};
    json_t *out = json_object();
    char *text;
    if (!out)
        return NULL;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        json_t *v = json_object_get(claims, keep[i]);
        if (json_is_string(v) && strlen(json_string_value(v)) > 320)
            continue;
        if ((json_is_string(v) || json_is_boolean(v)) && json_object_set(out, keep[i], v) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return text;
}

static void callback_exchanged(void *arg)
{
    struct request *r = arg;
    struct oidc_flow *f = r->state;

    atomic_fetch_sub(&inflight, 1);
    if (f->rc < 0) {
        reply_oidc_error(r, &f->err);
        return;
    }
    f->claims_text = claims_for_db(f->x.claims);
    if (!f->claims_text) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->params[0] = f->state_hash;
    r->params[1] = f->claims_text;
    request_query(r, STMT_OIDC_LOGIN_FINISH, on_login_finished);
}

static void on_login_taken(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct oidc_flow *f = r->state;
    json_t *l;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    l = f->login = res->value ? json_loads(res->value, 0, NULL) : NULL;
    f->x.issuer = json_string_value(json_object_get(l, "issuer"));
    f->x.client_id = json_string_value(json_object_get(l, "client_id"));
    f->x.client_secret = json_string_value(json_object_get(l, "client_secret"));
    f->x.nonce = json_string_value(json_object_get(l, "nonce"));
    f->x.code_verifier = json_string_value(json_object_get(l, "code_verifier"));
    f->x.redirect_uri = json_string_value(json_object_get(l, "redirect_uri"));
    f->x.code = f->code;
    f->x.now = (long long)time(NULL);
    if (!f->x.issuer || !f->x.client_id || !f->x.nonce || !f->x.code_verifier ||
        !f->x.redirect_uri) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    /* RFC 9207: a provider that names itself in the response must be the one we asked
       (a mix-up attack sends another provider's code here) */
    if (f->iss && strcmp(f->iss, f->x.issuer) != 0) {
        reply_error(r, 400, "issuer_mismatch",
                    "the answer came from another identity provider than the one you chose; "
                    "start again");
        return;
    }
    submit_net(r, callback_exchange, callback_exchanged);
}

void handle_oidc_callback(struct request *r)
{
    struct evkeyvalq params;
    struct oidc_flow *f = flow_new(r);
    const char *state, *code, *error, *iss;

    if (!f)
        return;
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    /* the URL carries a code: never leak it to the next page's Referer */
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Referrer-Policy", "no-referrer");
    if (read_params(r, &params) < 0)
        goto cleanup;
    state = evhttp_find_header(&params, "state");
    code = evhttp_find_header(&params, "code");
    error = evhttp_find_header(&params, "error");
    if (error) {
        /* e.g. access_denied: the person said no at the provider */
        char shown[65];
        size_t n = 0;
        for (const char *p = error; *p && n < sizeof shown - 1; p++)
            if ((*p >= 'a' && *p <= 'z') || *p == '_')
                shown[n++] = *p;
        shown[n] = '\0';
        reply_error(r, 401, "provider_refused",
                    "the identity provider did not sign you in (%s); start again", shown);
        goto cleanup;
    }
    if (!state || !code || strlen(state) > 128 || strlen(code) > CODE_MAX || !*code) {
        reply_error(r, 400, "bad_request",
                    "the callback needs state (at most 128 bytes) and code (at most %d bytes)",
                    CODE_MAX);
        goto cleanup;
    }
    f->code = strdup(code);
    iss = evhttp_find_header(&params, "iss");
    if (iss)
        f->iss = strdup(strlen(iss) <= OIDC_URL_MAX ? iss : "(too long)");
    if (!f->code || (iss && !f->iss) || auth_sha256_hex(state, strlen(state), f->state_hash) < 0) {
        reply_error(r, 503, "busy", "out of memory");
        goto cleanup;
    }
    if (find_cookie(r->req, OIDC_COOKIE, f->browser, sizeof f->browser) < 0 ||
        auth_sha256_hex(f->browser, strlen(f->browser), f->browser_hash) < 0)
        f->browser_hash[0] = '\0';
    r->params[0] = f->state_hash;
    r->params[1] = f->browser_hash[0] ? f->browser_hash : NULL;
    request_query(r, STMT_OIDC_LOGIN_TAKE, on_login_taken);
cleanup:
    evhttp_clear_headers(&params);
}
