/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oidc_client.c - discovery, JWKS and the code exchange (blocking; offload
 * threads only). The cache keeps, per issuer, the endpoints and the JWKS as
 * JSON text: each verification parses its own copy, so no jansson value is
 * shared between threads.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fetch.h"
#include "jwt.h"
#include "log.h"
#include "oidc_client.h"

#define CACHE_SLOTS    16
#define CACHE_TTL      3600   /* seconds: endpoints and keys are re-read hourly */
#define ID_TOKEN_SKEW  120    /* seconds of clock difference tolerated */
#define ID_TOKEN_AGE   600    /* an id_token issued longer ago than this is refused */
#define FLOW_BUDGET_MS 15000L /* all calls of one sign-in step together (a person waits) */
#define CALL_MIN_MS    500L   /* less left than this: do not start another call */

struct cache_slot {
    char issuer[OIDC_URL_MAX + 1];
    struct oidc_meta meta;
    time_t meta_at;
    char *jwks; /* JSON text, or NULL */
    time_t jwks_at;
};

static struct cache_slot cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

int oidc_client_init(void)
{
    return fetch_global_init();
}

void oidc_client_cleanup(void)
{
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        free(cache[i].jwks);
        memset(&cache[i], 0, sizeof cache[i]);
    }
    pthread_mutex_unlock(&cache_lock);
    fetch_global_cleanup();
}

static void fail(struct oidc_error *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct oidc_error *err, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* Milliseconds left before deadline for the next call, or -1 (err filled) when too few. */
static long time_left(long long deadline, struct oidc_error *err)
{
    long long left = deadline - clock_ms();
    if (left < CALL_MIN_MS) {
        fail(err, 502, "provider_unreachable",
             "the identity provider is too slow (over %ld s for one sign-in step)",
             FLOW_BUDGET_MS / 1000);
        return -1;
    }
    return (long)left;
}

/* The slot for issuer (caller holds the lock), or NULL. */
static struct cache_slot *slot_find(const char *issuer)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].issuer[0] && strcmp(cache[i].issuer, issuer) == 0)
            return &cache[i];
    return NULL;
}

/* The slot for issuer, taking an empty or the stalest one (caller holds the lock). */
static struct cache_slot *slot_take(const char *issuer)
{
    struct cache_slot *s = slot_find(issuer), *oldest = &cache[0];
    if (s)
        return s;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (!cache[i].issuer[0]) {
            oldest = &cache[i];
            break;
        }
        if (cache[i].meta_at < oldest->meta_at)
            oldest = &cache[i];
    }
    free(oldest->jwks);
    memset(oldest, 0, sizeof *oldest);
    snprintf(oldest->issuer, sizeof oldest->issuer, "%s", issuer);
    return oldest;
}

static bool is_http_url(const char *s, bool https_only)
{
    if (!s || strlen(s) > OIDC_URL_MAX)
        return false;
    if (strncmp(s, "https://", 8) == 0)
        return s[8] != '\0';
    return !https_only && strncmp(s, "http://", 7) == 0 && s[7] != '\0';
}

/* Copies a required endpoint URL from the discovery document. */
static int endpoint(const json_t *doc, const char *name, bool https_only, char *out,
                    struct oidc_error *err)
{
    const char *url = json_string_value(json_object_get(doc, name));
    if (!is_http_url(url, https_only)) {
        fail(err, 502, "provider_error",
             "the identity provider's discovery document has no usable %s", name);
        return -1;
    }
    snprintf(out, OIDC_URL_MAX + 1, "%s", url);
    return 0;
}

static int secret_post_only(const json_t *doc)
{
    const json_t *methods = json_object_get(doc, "token_endpoint_auth_methods_supported");
    int basic = 0, post = 0;
    if (!json_is_array(methods))
        return 0; /* the default is client_secret_basic */
    for (size_t i = 0; i < json_array_size(methods); i++) {
        const char *m = json_string_value(json_array_get(methods, i));
        if (m && strcmp(m, "client_secret_basic") == 0)
            basic = 1;
        if (m && strcmp(m, "client_secret_post") == 0)
            post = 1;
    }
    return post && !basic;
}

static int fetch_meta(const char *issuer, struct oidc_meta *meta, long long deadline,
                      struct oidc_error *err)
{
    char url[OIDC_URL_MAX + 64];
    struct fetch_result res;
    json_t *doc = NULL;
    const char *doc_issuer;
    bool https_only = strncmp(issuer, "https://", 8) == 0;
    size_t len = strlen(issuer);
    int rc = -1;

    /* OpenID Connect Discovery 1.0 section 4: issuer + "/.well-known/openid-configuration". */
    snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration",
             (int)(len > 0 && issuer[len - 1] == '/' ? len - 1 : len), issuer);
    long left = time_left(deadline, err);

    if (left < 0)
        return -1;
    if (fetch_get(url, left, &res) < 0) {
        fail(err, 502, "provider_unreachable", "the identity provider did not answer: %s",
             res.error);
        return -1;
    }
    if (res.status != 200) {
        fail(err, 502, "provider_error", "the identity provider's discovery document answered %ld",
             res.status);
        goto cleanup;
    }
    doc = json_loadb(res.body, res.len, JSON_REJECT_DUPLICATES, NULL);
    doc_issuer = json_string_value(json_object_get(doc, "issuer"));
    if (!json_is_object(doc) || !doc_issuer || strcmp(doc_issuer, issuer) != 0) {
        fail(err, 502, "provider_error",
             "the identity provider's discovery document is not JSON or names another issuer");
        goto cleanup;
    }
    memset(meta, 0, sizeof *meta);
    if (endpoint(doc, "authorization_endpoint", https_only, meta->authorization_endpoint, err) <
            0 ||
        endpoint(doc, "token_endpoint", https_only, meta->token_endpoint, err) < 0 ||
        endpoint(doc, "jwks_uri", https_only, meta->jwks_uri, err) < 0)
        goto cleanup;
    meta->secret_post = secret_post_only(doc);
    rc = 0;
cleanup:
    json_decref(doc);
    fetch_result_free(&res);
    return rc;
}

static int discover_by(const char *issuer, struct oidc_meta *meta, long long deadline,
                       struct oidc_error *err)
{
    struct cache_slot *s;
    time_t now = time(NULL);

    pthread_mutex_lock(&cache_lock);
    s = slot_find(issuer);
    if (s && s->meta_at && now - s->meta_at < CACHE_TTL) {
        *meta = s->meta;
        pthread_mutex_unlock(&cache_lock);
        return 0;
    }
    pthread_mutex_unlock(&cache_lock);

    if (fetch_meta(issuer, meta, deadline, err) < 0)
        return -1;
    pthread_mutex_lock(&cache_lock);
    s = slot_take(issuer);
    if (strcmp(s->meta.jwks_uri, meta->jwks_uri) != 0) {
        free(s->jwks); /* the keys came from another place */
        s->jwks = NULL;
        s->jwks_at = 0;
    }
    s->meta = *meta;
    s->meta_at = now;
    pthread_mutex_unlock(&cache_lock);
    return 0;
}

int oidc_discover(const char *issuer, struct oidc_meta *meta, struct oidc_error *err)
{
    return discover_by(issuer, meta, clock_ms() + FLOW_BUDGET_MS, err);
}

/* The JWKS as a new JSON value: from the cache unless refresh or stale. */
static json_t *jwks_get(const char *issuer, const char *jwks_uri, bool refresh, long long deadline,
                        struct oidc_error *err)
{
    struct cache_slot *s;
    struct fetch_result res;
    time_t now = time(NULL);
    json_t *doc = NULL;

    pthread_mutex_lock(&cache_lock);
    s = slot_find(issuer);
    if (!refresh && s && s->jwks && now - s->jwks_at < CACHE_TTL)
        doc = json_loads(s->jwks, 0, NULL);
    pthread_mutex_unlock(&cache_lock);
    if (doc)
        return doc;

    long left = time_left(deadline, err);
    if (left < 0)
        return NULL;
    if (fetch_get(jwks_uri, left, &res) < 0) {
        fail(err, 502, "provider_unreachable", "the identity provider's keys could not be read: %s",
             res.error);
        return NULL;
    }
    if (res.status != 200) {
        fail(err, 502, "provider_error", "the identity provider's keys (jwks_uri) answered %ld",
             res.status);
        fetch_result_free(&res);
        return NULL;
    }
    doc = json_loadb(res.body, res.len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc) || !json_is_array(json_object_get(doc, "keys"))) {
        fail(err, 502, "provider_error", "the identity provider's keys are not a JWKS");
        json_decref(doc);
        fetch_result_free(&res);
        return NULL;
    }
    pthread_mutex_lock(&cache_lock);
    s = slot_take(issuer);
    free(s->jwks);
    s->jwks = res.body; /* the cache keeps the text */
    res.body = NULL;
    s->jwks_at = now;
    pthread_mutex_unlock(&cache_lock);
    fetch_result_free(&res);
    return doc;
}

/* "name=value&" with value percent-encoded; returns -1 when out of memory. */
static int form_add(char **form, size_t *len, const char *name, const char *value)
{
    char *esc = fetch_escape(value);
    size_t add;
    char *grown;
    if (!esc)
        return -1;
    add = strlen(name) + strlen(esc) + 2;
    grown = realloc(*form, *len + add + 1);
    if (!grown) {
        free(esc);
        return -1;
    }
    *form = grown;
    *len += (size_t)snprintf(*form + *len, add + 1, "%s%s=%s", *len ? "&" : "", name, esc);
    free(esc);
    return 0;
}

/* POSTs the code to the token endpoint; returns the id_token (a new string) or NULL. */
static char *redeem_code(const struct oidc_exchange *x, const struct oidc_meta *meta,
                         long long deadline, struct oidc_error *err)
{
    char *form = NULL, *user = NULL, *password = NULL, *id_token = NULL;
    size_t len = 0;
    struct fetch_result res = {0};
    json_t *doc = NULL;
    const char *tok;
    bool basic = x->client_secret && !meta->secret_post;

    if (form_add(&form, &len, "grant_type", "authorization_code") < 0 ||
        form_add(&form, &len, "code", x->code) < 0 ||
        form_add(&form, &len, "redirect_uri", x->redirect_uri) < 0 ||
        form_add(&form, &len, "code_verifier", x->code_verifier) < 0)
        goto oom;
    if (!basic && form_add(&form, &len, "client_id", x->client_id) < 0)
        goto oom;
    if (x->client_secret && !basic && form_add(&form, &len, "client_secret", x->client_secret) < 0)
        goto oom;
    if (basic) {
        /* RFC 6749 2.3.1: both parts form-urlencoded before Basic encoding. */
        user = fetch_escape(x->client_id);
        password = fetch_escape(x->client_secret);
        if (!user || !password)
            goto oom;
    }
    long left = time_left(deadline, err);
    if (left < 0)
        goto cleanup;
    if (fetch_post_form(meta->token_endpoint, form, user, password, left, &res) < 0) {
        fail(err, 502, "provider_unreachable", "the identity provider's token endpoint failed: %s",
             res.error);
        goto cleanup;
    }
    doc = json_loadb(res.body, res.len, 0, NULL);
    if (res.status != 200) {
        const char *e = json_string_value(json_object_get(doc, "error"));
        /* invalid_grant: the code was used, expired or not ours - start again. */
        fail(err, res.status >= 400 && res.status < 500 ? 400 : 502, "provider_refused",
             "the identity provider refused the sign-in (%.64s); start again",
             e ? e : "no reason given");
        goto cleanup;
    }
    tok = json_string_value(json_object_get(doc, "id_token"));
    if (!tok) {
        fail(err, 502, "provider_error", "the identity provider returned no id_token");
        goto cleanup;
    }
    id_token = strdup(tok);
    if (!id_token)
        goto oom;
    goto cleanup;
oom:
    fail(err, 503, "busy", "out of memory");
cleanup:
    json_decref(doc);
    fetch_result_free(&res);
    free(form);
    free(user);
    if (password) {
        memset(password, 0, strlen(password));
        free(password);
    }
    return id_token;
}

int oidc_exchange_code(struct oidc_exchange *x, struct oidc_error *err)
{
    struct oidc_meta meta;
    struct jwt_expect ex;
    char *id_token = NULL;
    json_t *jwks = NULL, *claims = NULL;
    char why[160];
    enum jwt_status st;
    int rc = -1;

    long long deadline = clock_ms() + FLOW_BUDGET_MS;

    x->claims = NULL;
    if (discover_by(x->issuer, &meta, deadline, err) < 0)
        return -1;
    id_token = redeem_code(x, &meta, deadline, err);
    if (!id_token)
        return -1;
    jwks = jwks_get(x->issuer, meta.jwks_uri, false, deadline, err);
    if (!jwks)
        goto cleanup;
    st = jwt_verify(id_token, jwks, &claims, why, sizeof why);
    if (st == JWT_UNKNOWN_KID) {
        /* The provider may have rotated its keys since we cached them. */
        json_decref(jwks);
        jwks = jwks_get(x->issuer, meta.jwks_uri, true, deadline, err);
        if (!jwks)
            goto cleanup;
        st = jwt_verify(id_token, jwks, &claims, why, sizeof why);
    }
    if (st != JWT_OK) {
        log_warn("oidc: %s: id_token refused: %s", x->issuer, why);
        fail(err, 401, "invalid_id_token", "the sign-in was refused: %s", why);
        goto cleanup;
    }
    ex = (struct jwt_expect){.issuer = x->issuer,
                             .client_id = x->client_id,
                             .nonce = x->nonce,
                             .now = x->now,
                             .skew = ID_TOKEN_SKEW,
                             .max_age = ID_TOKEN_AGE};
    if (jwt_check_id_token(claims, &ex, why, sizeof why) != JWT_OK) {
        log_warn("oidc: %s: id_token refused: %s", x->issuer, why);
        fail(err, 401, "invalid_id_token", "the sign-in was refused: %s", why);
        goto cleanup;
    }
    x->claims = claims;
    claims = NULL;
    rc = 0;
cleanup:
    json_decref(claims);
    json_decref(jwks);
    free(id_token);
    return rc;
}
