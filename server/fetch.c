/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fetch.c - libcurl easy handles, one per call (these run on offload
 * threads, a handful of times per sign-in: connection reuse is not worth
 * shared state between threads).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "fetch.h"

int fetch_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void fetch_global_cleanup(void)
{
    curl_global_cleanup();
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct fetch_result *r = arg;
    size_t n = size * nmemb;
    char *grown;

    if (r->len + n > FETCH_MAX_BODY) {
        snprintf(r->error, sizeof r->error, "the answer is larger than %d bytes", FETCH_MAX_BODY);
        return 0; /* aborts the transfer */
    }
    grown = realloc(r->body, r->len + n + 1);
    if (!grown)
        return 0;
    r->body = grown;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static int perform(CURL *c, const char *url, struct curl_slist *headers, long timeout_ms,
                   struct fetch_result *out)
{
    CURLcode rc;

    if (timeout_ms <= 0 || timeout_ms > FETCH_TIMEOUT_MS)
        timeout_ms = FETCH_TIMEOUT_MS;
    memset(out, 0, sizeof *out);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < FETCH_CONNECT_MS ? timeout_ms : FETCH_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)FETCH_MAX_BODY);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "accord-oidc/1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        if (!out->error[0])
            snprintf(out->error, sizeof out->error, "%s", curl_easy_strerror(rc));
        free(out->body);
        out->body = NULL;
        out->len = 0;
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (!out->body) {
        out->body = calloc(1, 1);
        if (!out->body) {
            snprintf(out->error, sizeof out->error, "out of memory");
            return -1;
        }
    }
    return 0;
}

int fetch_get(const char *url, long timeout_ms, struct fetch_result *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL, *h2;
    int rc = -1;

    memset(out, 0, sizeof *out);
    h2 = curl_slist_append(h, "Accept: application/json");
    if (!c || !h2) {
        snprintf(out->error, sizeof out->error, "out of memory");
        goto cleanup;
    }
    h = h2;
    rc = perform(c, url, h, timeout_ms, out);
cleanup:
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return rc;
}

int fetch_post_form(const char *url, const char *form, const char *basic_user,
                    const char *basic_password, long timeout_ms, struct fetch_result *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL, *h2;
    int rc = -1;

    memset(out, 0, sizeof *out);
    h2 = curl_slist_append(h, "Accept: application/json");
    if (!c || !h2) {
        snprintf(out->error, sizeof out->error, "out of memory");
        goto cleanup;
    }
    h = h2;
    h2 = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
    if (!h2) {
        snprintf(out->error, sizeof out->error, "out of memory");
        goto cleanup;
    }
    h = h2;
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
    if (basic_user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, basic_user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, basic_password ? basic_password : "");
    }
    rc = perform(c, url, h, timeout_ms, out);
cleanup:
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return rc;
}

char *fetch_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? strdup(e) : NULL;
    curl_free(e);
    return copy;
}

void fetch_result_free(struct fetch_result *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
