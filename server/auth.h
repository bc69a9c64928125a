/* SPDX-License-Identifier: Apache-2.0 */
/*
 * auth.h - bearer tokens: generation and the hash that the database stores.
 *
 * A token is 32 random bytes from OpenSSL's CSPRNG, rendered as 64 hex digits
 * with an "acc_" prefix (so a leaked one is recognisable in logs and scanners).
 * The database only ever sees SHA-256(token) in hex: a stolen table does not
 * yield usable tokens.
 */
#ifndef ACCORD_AUTH_H
#define ACCORD_AUTH_H

#include <stddef.h>

#include <event2/keyvalq_struct.h>

#define AUTH_TOKEN_LEN 68 /* "acc_" + 64 hex digits */
#define AUTH_HASH_LEN  64 /* hex SHA-256 */
/*
 * The credential the api_* functions take (db/README.md): the hex SHA-256 of
 * a bearer token, or "s:" and the hex SHA-256 of a session cookie's secret.
 */
#define AUTH_CRED_LEN (2 + AUTH_HASH_LEN)

/* Fills out[AUTH_TOKEN_LEN + 1]. Returns 0, or -1 if the CSPRNG failed. */
int auth_token_generate(char out[AUTH_TOKEN_LEN + 1]) __attribute__((warn_unused_result));

/* Hex SHA-256 of len bytes at data into out[AUTH_HASH_LEN + 1]. Returns 0 or -1. */
int auth_sha256_hex(const void *data, size_t len, char out[AUTH_HASH_LEN + 1])
    __attribute__((warn_unused_result));

/*
 * Extracts the token from an Authorization header value ("Bearer <token>")
 * and hashes it into out. Returns 0, or -1 when the header is absent or not a
 * well-formed bearer credential (the caller answers 401).
 */
int auth_bearer_hash(const char *authorization, char out[AUTH_HASH_LEN + 1])
    __attribute__((warn_unused_result));

/*
 * The session cookie's secret (session.h: 64 hex digits) from the request
 * headers into secret. Either cookie name is read ("accord_session", or
 * "__Host-accord_session", which browsers accept only from https). Returns 0,
 * or -1 when there is none or it is not 64 lower-case hex digits.
 */
#define AUTH_SESSION_SECRET_LEN 64
int auth_session_cookie(const struct evkeyvalq *headers, char secret[AUTH_SESSION_SECRET_LEN + 1]);

#endif
