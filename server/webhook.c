/* SPDX-License-Identifier: Apache-2.0 */
/*
 * webhook.c - signing (OpenSSL HMAC-SHA256, base64) and one delivery
 * attempt (libcurl), with the address check on the socket libcurl opens.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "webhook.h"

#define WEBHOOK_URL_MAX      2048
#define WEBHOOK_ANSWER_LIMIT (64 * 1024) /* read and dropped: receivers' answers don't matter */

/* Decodes standard base64; returns the length, or -1. */
static int b64_decode(const char *in, unsigned char *out, size_t cap)
{
    size_t len = strlen(in);
    int n, pad = 0;

    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
        return -1;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    if (in[len - 1] == '=')
        pad++;
    if (in[len - 2] == '=')
        pad++;
    return n - pad;
}

bool webhook_secret_valid(const char *secret)
{
    unsigned char key[96];
    int n;
    if (!secret || strncmp(secret, "whsec_", 6) != 0 || strlen(secret) >= WEBHOOK_SECRET_MAX)
        return false;
    n = b64_decode(secret + 6, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    return n >= 24 && n <= 64;
}

int webhook_new_secret(char out[WEBHOOK_SECRET_MAX])
{
    unsigned char key[32];
    if (RAND_bytes(key, sizeof key) != 1)
        return -1;
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

int webhook_sign(const char *secret, const char *msg_id, long timestamp, const char *body,
                 size_t body_len, char *out, size_t out_cap)
{
    unsigned char key[96], mac[EVP_MAX_MD_SIZE];
    char prefix[160];
    int key_len, plen, rc = -1;
    EVP_MAC *hmac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    size_t mac_len = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};

    if (!secret || strncmp(secret, "whsec_", 6) != 0 || out_cap < 4 + 45)
        return -1;
    key_len = b64_decode(secret + 6, key, sizeof key);
    plen = snprintf(prefix, sizeof prefix, "%s.%ld.", msg_id, timestamp);
    if (key_len <= 0 || plen < 0 || (size_t)plen >= sizeof prefix)
        goto cleanup;
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    if (!ctx || EVP_MAC_init(ctx, key, (size_t)key_len, params) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)body, body_len) != 1 ||
        EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) != 1)
        goto cleanup;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
    rc = 0;
cleanup:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

static bool v4_refused(uint32_t a)
{
    return (a >> 24) == 0 ||                    /* 0.0.0.0/8 "this network" */
           (a >> 24) == 10 ||                   /* 10/8 private */
           (a >> 22) == (100u << 2 | 1) ||      /* 100.64/10 shared (CGNAT) */
           (a >> 24) == 127 ||                  /* loopback */
           (a >> 16) == (169u << 8 | 254) ||    /* link-local, cloud metadata */
           (a >> 20) == (172u << 4 | 1) ||      /* 172.16/12 private */
           (a >> 8) == (192u << 16 | 0 << 8) || /* 192.0.0/24 protocol assignments */
           (a >> 16) == (192u << 8 | 168) ||    /* 192.168/16 private */
           (a >> 17) == (198u << 7 | 9) ||      /* 198.18/15 benchmarking */
           (a >> 28) >= 14;                     /* multicast, reserved, broadcast */
}

bool webhook_address_refused(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return v4_refused(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char zero[10] = {0};
        if (memcmp(b, zero, 10) == 0 &&
            ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0))) {
            /* v4-mapped and v4-compatible (and ::, ::1): judged as the IPv4 address */
            uint32_t a =
                (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
            return b[10] == 0 || v4_refused(a);
        }
        return (b[0] & 0xfe) == 0xfc ||                   /* fc00::/7 unique local */
               (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
               (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) || /* fec0::/10 site-local */
               b[0] == 0xff ||                            /* multicast */
               (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b); /* NAT64 */
    }
    return true; /* unix sockets and anything else */
}

struct attempt {
    const struct webhook_policy *p;
    size_t answered;  /* bytes of the answer read */
    char refused[80]; /* the address refused, when one was */
};

static curl_socket_t open_checked(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct attempt *a = arg;
    (void)purpose;
    if (!a->p->allow_private && webhook_address_refused(&addr->addr)) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (addr->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&addr->addr)->sin_addr, host, sizeof host);
        else if (addr->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr->addr)->sin6_addr, host,
                      sizeof host);
        snprintf(a->refused, sizeof a->refused, "%s", host);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t drop_answer(char *data, size_t size, size_t nmemb, void *arg)
{
    struct attempt *a = arg;
    (void)data;
    a->answered += size * nmemb;
    return a->answered > WEBHOOK_ANSWER_LIMIT ? 0 : size * nmemb;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct attempt *a = arg;
    (void)dt, (void)dn, (void)ut, (void)un;
    return a->p->cancel && *a->p->cancel ? 1 : 0;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

bool webhook_deliver(void *curl, const struct webhook_policy *p, const char *url,
                     const char *secret, const char *msg_id, long timestamp, const char *body,
                     struct webhook_outcome *out)
{
    CURL *c = curl ? curl : curl_easy_init();
    struct curl_slist *h = NULL, *h2;
    struct attempt a = {.p = p};
    char line[256], sig[128];
    struct timespec t0;
    CURLcode rc;
    bool ok = false;
    size_t body_len = strlen(body);

    memset(out, 0, sizeof *out);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!c) {
        snprintf(out->error, sizeof out->error, "out of memory");
        return false;
    }
    if (webhook_sign(secret, msg_id, timestamp, body, body_len, sig, sizeof sig) < 0) {
        snprintf(out->error, sizeof out->error, "the webhook's secret is not usable");
        goto cleanup;
    }
    const char *lines[] = {"Content-Type: application/json", "User-Agent: accord-webhook/1",
                           "Expect:", NULL};
    for (int i = 0; lines[i]; i++) {
        if (!(h2 = curl_slist_append(h, lines[i])))
            goto oom;
        h = h2;
    }
    snprintf(line, sizeof line, "webhook-id: %s", msg_id);
    if (!(h2 = curl_slist_append(h, line)))
        goto oom;
    h = h2;
    snprintf(line, sizeof line, "webhook-timestamp: %ld", timestamp);
    if (!(h2 = curl_slist_append(h, line)))
        goto oom;
    h = h2;
    snprintf(line, sizeof line, "webhook-signature: %s", sig);
    if (!(h2 = curl_slist_append(h, line)))
        goto oom;
    h = h2;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, p->https_only ? "https" : "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, p->timeout_ms < 5000 ? p->timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &a);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, drop_answer);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &a);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (a.refused[0])
        snprintf(out->error, sizeof out->error,
                 "refused to connect to %s: loopback, private and link-local addresses are not "
                 "allowed (--webhook-allow-private)",
                 a.refused);
    else if (rc != CURLE_OK && out->status == 0)
        snprintf(out->error, sizeof out->error, "%s", curl_easy_strerror(rc));
    else if (out->status < 200 || out->status > 299)
        snprintf(out->error, sizeof out->error, "the receiver answered %ld", out->status);
    else
        ok = true;
    goto cleanup;
oom:
    snprintf(out->error, sizeof out->error, "out of memory");
cleanup:
    if (c) /* the handle may outlive the list: drop the pointer */
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (c && !curl)
        curl_easy_cleanup(c);
    out->duration_ms = ms_since(&t0);
    return ok;
}

int webhook_check_url(const char *url, bool https_only, bool allow_private, char *out,
                      size_t out_cap, char *why, size_t why_cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL, *full = NULL;
    int rc = -1;

    if (!u) {
        snprintf(why, why_cap, "out of memory");
        return -1;
    }
    if (!url || strlen(url) > WEBHOOK_URL_MAX ||
        curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(why, why_cap, "url must be an absolute https:// URL of at most %d bytes",
                 WEBHOOK_URL_MAX);
        goto cleanup;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "https") != 0 && (https_only || strcmp(scheme, "http") != 0))) {
        snprintf(why, why_cap,
                 https_only ? "url must be https:// (production mode)"
                            : "url must be http:// or https://");
        goto cleanup;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        snprintf(why, why_cap, "url has no host");
        goto cleanup;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        snprintf(why, why_cap, "url must not carry a user name or password: the secret signs");
        goto cleanup;
    }
    if (!allow_private) {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        char lit[64];
        size_t hl = strlen(host);
        bool refused = false;
        if (hl > 2 && host[0] == '[' && hl - 2 < sizeof lit) {
            memcpy(lit, host + 1, hl - 2);
            lit[hl - 2] = '\0';
            refused = inet_pton(AF_INET6, lit, &s6.sin6_addr) == 1 &&
                      webhook_address_refused((struct sockaddr *)&s6);
        } else if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
            refused = webhook_address_refused((struct sockaddr *)&s4);
        } else if (strcasecmp(host, "localhost") == 0 ||
                   (hl > 10 && strcasecmp(host + hl - 10, ".localhost") == 0)) {
            refused = true;
        }
        if (refused) {
            snprintf(why, why_cap,
                     "url points at a loopback, private or link-local address, which webhooks "
                     "may not reach");
            goto cleanup;
        }
    }
    if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK || strlen(full) >= out_cap) {
        snprintf(why, why_cap, "url is too long");
        goto cleanup;
    }
    strcpy(out, full);
    rc = 0;
cleanup:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}
