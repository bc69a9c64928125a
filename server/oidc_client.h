/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oidc_client.h - the network side of OpenID Connect sign-in: the provider's
 * discovery document and JWKS (cached), and the authorization code exchange
 * with id_token verification.
 *
 * Every function here BLOCKS on the network (bounded by fetch.h's limits):
 * call them only from an offload thread. The cache is shared by all threads
 * (a mutex; no lock is held during a fetch).
 */
#ifndef ACCORD_OIDC_CLIENT_H
#define ACCORD_OIDC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define OIDC_URL_MAX 2048

struct oidc_meta {
    char authorization_endpoint[OIDC_URL_MAX + 1];
    char token_endpoint[OIDC_URL_MAX + 1];
    char jwks_uri[OIDC_URL_MAX + 1];
    bool secret_post; /* the provider takes client_secret_post, not client_secret_basic */
};

/* Why a step failed: the HTTP status and code the browser should get, and a message. */
struct oidc_error {
    int status;
    const char *code;
    char message[320];
};

/* Once at start-up and at exit (wraps libcurl's global state and the cache). */
int oidc_client_init(void);
void oidc_client_cleanup(void);

/*
 * The provider's endpoints from {issuer}/.well-known/openid-configuration,
 * cached for an hour. The document's issuer must equal issuer exactly.
 * Returns 0, or -1 with err filled (502: the provider is unreachable or odd).
 */
int oidc_discover(const char *issuer, struct oidc_meta *meta, struct oidc_error *err);

struct oidc_exchange {
    /* in */
    const char *issuer, *client_id, *client_secret; /* secret NULL: a public client */
    const char *code, *code_verifier, *redirect_uri, *nonce;
    long long now; /* seconds since the epoch */
    /* out: the verified id_token's claims (a new reference) */
    json_t *claims;
};

/*
 * Exchanges the code at the token endpoint (PKCE verifier, client
 * authentication) and verifies the id_token: signature with the provider's
 * JWKS (fetched again once when no key fits: the provider rotated keys),
 * iss, aud, azp, exp, iat, nonce. Returns 0, or -1 with err filled.
 */
int oidc_exchange_code(struct oidc_exchange *x, struct oidc_error *err);

#endif
