/* SPDX-License-Identifier: Apache-2.0 */
/*
 * webhook.h - signed webhook deliveries (the Standard Webhooks convention,
 * https://www.standardwebhooks.com): a JSON POST with the headers
 *   webhook-id         the event's id: the receiver's idempotency key, the
 *                      same on every retry
 *   webhook-timestamp  Unix seconds of this attempt
 *   webhook-signature  "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body))
 * where key is the base64-decoded part of the secret after "whsec_".
 *
 * Where a delivery may go is checked on the address actually connected to
 * (libcurl's open-socket callback sees every address it tries, after DNS):
 * loopback, link-local, private, shared, multicast and unspecified addresses
 * are refused unless the server allows them (--webhook-allow-private, for
 * tests and closed networks). No proxy from the environment, no redirects.
 *
 * webhook_deliver BLOCKS (a libcurl transfer): outbox threads only.
 */
#ifndef ACCORD_WEBHOOK_H
#define ACCORD_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#define WEBHOOK_SECRET_MAX 100 /* "whsec_" + base64 of up to 64 bytes */

struct webhook_policy {
    bool https_only;      /* production mode */
    bool allow_private;   /* loopback, private, link-local addresses too */
    long timeout_ms;      /* whole attempt */
    volatile int *cancel; /* non-zero: abort the transfer (shutdown) */
};

struct webhook_outcome {
    long status;      /* HTTP status, 0 when none came */
    char error[256];  /* why, when not 2xx */
    long duration_ms; /* of the attempt */
};

/*
 * One attempt. curl is a reusable easy handle (keeps the connection to a
 * receiver alive between deliveries); NULL makes one for this call.
 * Returns true when the receiver answered 2xx.
 */
bool webhook_deliver(void *curl, const struct webhook_policy *p, const char *url,
                     const char *secret, const char *msg_id, long timestamp, const char *body,
                     struct webhook_outcome *out);

/*
 * The signature header value for (msg_id, timestamp, body) under secret
 * ("whsec_..."). Returns 0, or -1 when the secret is not valid base64.
 */
int webhook_sign(const char *secret, const char *msg_id, long timestamp, const char *body,
                 size_t body_len, char *out, size_t out_cap);

/* A new secret: "whsec_" + base64 of 32 random bytes. Returns 0 or -1. */
int webhook_new_secret(char out[WEBHOOK_SECRET_MAX]);

/* Whether a given secret is acceptable: "whsec_" + base64 of 24 to 64 bytes. */
bool webhook_secret_valid(const char *secret);

/*
 * Checks a URL an admin registers: absolute http(s) (https only when
 * https_only) with a host, no user name or password, at most 2048 bytes;
 * a host that is an IP literal of a refused range is refused unless
 * allow_private. Writes the normalised URL to out. Returns 0, or -1 with a
 * message for people in why.
 */
int webhook_check_url(const char *url, bool https_only, bool allow_private, char *out,
                      size_t out_cap, char *why, size_t why_cap);

/* Whether an address (struct sockaddr) is one webhooks may not reach by default. */
struct sockaddr;
bool webhook_address_refused(const struct sockaddr *sa);

#endif
