/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3_sign.c - SigV4 query-string presigning, step by step as AWS specifies it
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html):
 * canonical request -> string to sign -> signing key (HMAC chain over date,
 * region, service, "aws4_request") -> signature. tests/unit/test_s3_sign.c
 * checks it against the example in that document.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "s3_sign.h"

#define ALGORITHM  "AWS4-HMAC-SHA256"
#define MAX_PARAMS 16

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int s3_uri_encode(const char *s, bool keep_slash, char *out, size_t out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            if (n + 1 >= out_len)
                return -1;
            out[n++] = (char)*p;
        } else {
            if (n + 3 >= out_len)
                return -1;
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (n >= out_len)
        return -1;
    out[n] = '\0';
    return (int)n;
}

bool s3_bucket_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 63 || name[0] == '.' || name[0] == '-' || name[n - 1] == '.' ||
        name[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '.' || name[i] == '-'))
            return false;
    return true;
}

int s3_target_set_endpoint(struct s3_target *t, const char *endpoint, char *err, size_t err_len)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *user = NULL;
    int rc = -1;

    if (!u) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, err_len, "the S3 endpoint must be a URL like http://127.0.0.1:7480");
        goto cleanup;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(err, err_len, "the S3 endpoint must be http:// or https://");
        goto cleanup;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0); /* absent: the scheme's default */
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    if ((path && strcmp(path, "/") != 0) || query || user) {
        snprintf(err, err_len,
                 "the S3 endpoint is scheme://host[:port] only (the bucket is its own setting)");
        goto cleanup;
    }
    snprintf(t->scheme, sizeof t->scheme, "%s", scheme);
    if ((size_t)snprintf(t->host, sizeof t->host, "%s%s%s", host, port ? ":" : "",
                         port ? port : "") >= sizeof t->host) {
        snprintf(err, err_len, "the S3 endpoint's host name is too long");
        goto cleanup;
    }
    rc = 0;
cleanup:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

/* The Host header and the canonical URI of key. */
static int object_location(const struct s3_target *t, const char *key, char *host, size_t host_len,
                           char *uri, size_t uri_len)
{
    char enc[2048];
    if (s3_uri_encode(key, true, enc, sizeof enc) < 0)
        return -1;
    if (t->path_style) {
        if ((size_t)snprintf(host, host_len, "%s", t->host) >= host_len ||
            (size_t)snprintf(uri, uri_len, "/%s/%s", t->bucket, enc) >= uri_len)
            return -1;
    } else {
        if ((size_t)snprintf(host, host_len, "%s.%s", t->bucket, t->host) >= host_len ||
            (size_t)snprintf(uri, uri_len, "/%s", enc) >= uri_len)
            return -1;
    }
    return 0;
}

int s3_object_url(const struct s3_target *t, const char *key, char *out, size_t out_len)
{
    char host[512], uri[2200];
    if (object_location(t, key, host, sizeof host, uri, sizeof uri) < 0)
        return -1;
    return (size_t)snprintf(out, out_len, "%s://%s%s", t->scheme, host, uri) < out_len ? 0 : -1;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const char *data, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) || len != 32)
        return -1;
    hex_encode(md, 32, out);
    return 0;
}

static int hmac(const unsigned char *key, size_t key_len, const char *data, unsigned char out[32])
{
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, strlen(data), out,
              &len) ||
        len != 32)
        return -1;
    return 0;
}

/* A query pair, both halves already encoded, for sorting by encoded name. */
struct pair {
    char name[128];
    char value[1024];
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static int add_pair(struct pair *pairs, size_t *n, const char *name, const char *value)
{
    if (*n >= MAX_PARAMS || s3_uri_encode(name, false, pairs[*n].name, sizeof pairs[*n].name) < 0 ||
        s3_uri_encode(value, false, pairs[*n].value, sizeof pairs[*n].value) < 0)
        return -1;
    (*n)++;
    return 0;
}

int s3_presign(const struct s3_target *t, const char *method, const char *key,
               const struct s3_param *params, size_t n_params, time_t now, long expires, char *out,
               size_t out_len)
{
    struct pair pairs[MAX_PARAMS];
    size_t n = 0, q = 0;
    char host[512], uri[2200], date[9], stamp[17], scope[256], credential[512], expires_s[24];
    char query[S3_URL_MAX], canonical[S3_URL_MAX + 1024], canonical_hash[65], to_sign[512];
    char signature[65];
    unsigned char k[32], k2[32];
    char secret[300];
    struct tm tm;
    int written;

    if (expires < 1 || expires > S3_PRESIGN_MAX_EXPIRES || !gmtime_r(&now, &tm) ||
        object_location(t, key, host, sizeof host, uri, sizeof uri) < 0)
        return -1;
    strftime(date, sizeof date, "%Y%m%d", &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(expires_s, sizeof expires_s, "%ld", expires);
    if ((size_t)snprintf(scope, sizeof scope, "%s/%s/s3/aws4_request", date, t->region) >=
            sizeof scope ||
        (size_t)snprintf(credential, sizeof credential, "%s/%s", t->access_key, scope) >=
            sizeof credential)
        return -1;

    /* 1. The canonical query string: every parameter but the signature, sorted. */
    if (add_pair(pairs, &n, "X-Amz-Algorithm", ALGORITHM) < 0 ||
        add_pair(pairs, &n, "X-Amz-Credential", credential) < 0 ||
        add_pair(pairs, &n, "X-Amz-Date", stamp) < 0 ||
        add_pair(pairs, &n, "X-Amz-Expires", expires_s) < 0 ||
        add_pair(pairs, &n, "X-Amz-SignedHeaders", "host") < 0)
        return -1;
    for (size_t i = 0; i < n_params; i++)
        if (add_pair(pairs, &n, params[i].name, params[i].value ? params[i].value : "") < 0)
            return -1;
    qsort(pairs, n, sizeof pairs[0], pair_cmp);
    query[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        written = snprintf(query + q, sizeof query - q, "%s%s=%s", i ? "&" : "", pairs[i].name,
                           pairs[i].value);
        if (written < 0 || (size_t)written >= sizeof query - q)
            return -1;
        q += (size_t)written;
    }

    /* 2. The canonical request: only Host is signed; the payload is not. */
    written = snprintf(canonical, sizeof canonical, "%s\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD",
                       method, uri, query, host);
    if (written < 0 || (size_t)written >= sizeof canonical ||
        sha256_hex(canonical, (size_t)written, canonical_hash) < 0)
        return -1;

    /* 3. The string to sign. */
    if ((size_t)snprintf(to_sign, sizeof to_sign, ALGORITHM "\n%s\n%s\n%s", stamp, scope,
                         canonical_hash) >= sizeof to_sign)
        return -1;

    /* 4. The signing key and the signature. */
    if ((size_t)snprintf(secret, sizeof secret, "AWS4%s", t->secret_key) >= sizeof secret ||
        hmac((const unsigned char *)secret, strlen(secret), date, k) < 0 ||
        hmac(k, sizeof k, t->region, k2) < 0 || hmac(k2, sizeof k2, "s3", k) < 0 ||
        hmac(k, sizeof k, "aws4_request", k2) < 0 || hmac(k2, sizeof k2, to_sign, k) < 0) {
        OPENSSL_cleanse(secret, sizeof secret);
        return -1;
    }
    OPENSSL_cleanse(secret, sizeof secret);
    hex_encode(k, sizeof k, signature);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(k2, sizeof k2);

    written = snprintf(out, out_len, "%s://%s%s?%s&X-Amz-Signature=%s", t->scheme, host, uri, query,
                       signature);
    return written >= 0 && (size_t)written < out_len ? 0 : -1;
}
