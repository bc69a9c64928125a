/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jws.h - the JOSE pieces of a VC-JWT, all cryptography by OpenSSL: RS256
 * keys (generate, PEM in and out, the public JWK), base64url, and compact
 * JWS signing and verification. No I/O except reading/writing key files.
 */
#ifndef ACCORD_JWS_H
#define ACCORD_JWS_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

/* base64url without padding (RFC 7515). Returns a malloc'd string or NULL. */
char *jws_b64url_encode(const unsigned char *data, size_t len);
/* Decodes base64url (no padding); returns malloc'd bytes (*len set) or NULL if malformed. */
unsigned char *jws_b64url_decode(const char *text, size_t text_len, size_t *len);

/* A new RSA 2048 key, or NULL. */
EVP_PKEY *jws_key_generate(void);
/* Writes the private key as PEM to a new file with mode 0600 (fails if it exists). */
int jws_key_write_private(EVP_PKEY *key, const char *path);
/* Reads a private key PEM file; NULL on failure. */
EVP_PKEY *jws_key_read_private(const char *path);
/* The public key as PEM text (malloc'd) or NULL. */
char *jws_key_public_pem(EVP_PKEY *key);
/* The public key from PEM text, or NULL. */
EVP_PKEY *jws_key_from_public_pem(const char *pem);
/* The public JWK {"kty":"RSA","n":...,"e":...}, or NULL. */
json_t *jws_key_public_jwk(EVP_PKEY *key);

/*
 * Signs header and payload (JSON objects, serialised compactly) with RS256:
 * returns the compact JWS "h.p.s" (malloc'd) or NULL.
 */
char *jws_sign_rs256(EVP_PKEY *key, const json_t *header, const json_t *payload);

/*
 * Checks an RS256 compact JWS against a public key. Returns its payload
 * (new reference) when the signature is valid, else NULL with why in err.
 */
json_t *jws_verify_rs256(EVP_PKEY *key, const char *jws, char *err, size_t errlen);

/* The payload of a compact JWS, without checking anything (NULL if malformed). */
json_t *jws_payload(const char *jws);

#endif
