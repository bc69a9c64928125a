/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fetch.h - bounded outbound HTTP(S) with libcurl, for the OpenID Connect
 * client (discovery document, JWKS, token endpoint).
 *
 * These calls BLOCK: call them only from an offload thread, never from an
 * event loop. Every call is bounded: http and https only, no redirects, a
 * connect timeout, a total timeout and a cap on the response body; TLS peers
 * are verified against the system's CA store.
 */
#ifndef ACCORD_FETCH_H
#define ACCORD_FETCH_H

#include <stddef.h>

#define FETCH_MAX_BODY   (256 * 1024)
#define FETCH_TIMEOUT_MS 10000L
#define FETCH_CONNECT_MS 5000L

struct fetch_result {
    long status; /* HTTP status, 0 when no answer came */
    char *body;  /* NUL-terminated (owned), NULL when no answer */
    size_t len;
    char error[256]; /* why, when status is 0 or the body was too large */
};

/* Once, before any thread fetches (libcurl's global state). Returns 0 or -1. */
int fetch_global_init(void);
void fetch_global_cleanup(void);

/*
 * GET url, Accept: application/json, within timeout_ms (at most
 * FETCH_TIMEOUT_MS). Returns 0 when an answer came (any status), else -1.
 */
int fetch_get(const char *url, long timeout_ms, struct fetch_result *out);

/*
 * POST an application/x-www-form-urlencoded body to url; when basic_user is
 * not NULL, with HTTP Basic authentication (RFC 6749 2.3.1: both parts
 * form-urlencoded first, which the caller does). Returns like fetch_get.
 */
int fetch_post_form(const char *url, const char *form, const char *basic_user,
                    const char *basic_password, long timeout_ms, struct fetch_result *out);

/* Percent-encodes s for a URL query or form (a new string, or NULL). */
char *fetch_escape(const char *s);

void fetch_result_free(struct fetch_result *r);

#endif
