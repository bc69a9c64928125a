/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwt.h - verifying an OpenID Connect id_token (a compact JWS) against the
 * provider's JWKS, and checking its claims (OpenID Connect Core 3.1.3.7).
 *
 * Pure functions of their inputs (no I/O, no clock): the caller passes the
 * time, so tests can pin it. Signatures are verified by OpenSSL; JSON is
 * parsed by jansson; base64url is decoded with OpenSSL's EVP_DecodeBlock.
 * Algorithms: RS256, PS256 (RSA keys of at least 2048 bits) and ES256
 * (P-256). "none" and HMAC algorithms are refused.
 */
#ifndef ACCORD_JWT_H
#define ACCORD_JWT_H

#include <stddef.h>

#include <jansson.h>

#define JWT_MAX_LEN 16384 /* a larger token is refused unparsed */

enum jwt_status {
    JWT_OK = 0,
    JWT_MALFORMED,   /* not three base64url parts of JSON objects */
    JWT_BAD_ALG,     /* alg missing, "none", HMAC or unsupported */
    JWT_UNKNOWN_KID, /* no key in the JWKS fits the header: refresh the JWKS and retry once */
    JWT_BAD_KEY,     /* the matching JWK is unusable (wrong type, too short, malformed) */
    JWT_BAD_SIGNATURE,
    JWT_BAD_CLAIMS, /* iss, aud, azp, exp, iat, nonce or sub wrong (see the message) */
};

/*
 * Verifies the signature of token with a key from jwks (a JWKS object
 * {"keys":[...]}) chosen by the header's kid and alg. On JWT_OK sets *claims
 * to the payload (a new reference). err gets a short reason otherwise.
 */
enum jwt_status jwt_verify(const char *token, const json_t *jwks, json_t **claims, char *err,
                           size_t errlen);

struct jwt_expect {
    const char *issuer;    /* iss must equal it exactly */
    const char *client_id; /* must be in aud; azp, when present, must equal it */
    const char *nonce;     /* nonce must equal it */
    long long now;         /* seconds since the epoch */
    long long skew;        /* clock skew allowed, seconds */
    long long max_age;     /* iat may be at most this old, seconds */
};

/* Checks the id_token claims against ex. Returns JWT_OK or JWT_BAD_CLAIMS (err says which). */
enum jwt_status jwt_check_id_token(const json_t *claims, const struct jwt_expect *ex, char *err,
                                   size_t errlen);

/*
 * base64url (RFC 4648 section 5, no padding) to bytes: out must hold
 * 3 * (len + 3) / 4 bytes. Returns the length, or -1 for anything that is not
 * canonical base64url.
 */
long jwt_b64url_decode(const char *in, size_t len, unsigned char *out);

/* bytes to base64url without padding: out must hold 4 * ((len + 2) / 3) + 1 bytes. */
void jwt_b64url_encode(const unsigned char *in, size_t len, char *out);

#endif
