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

#define AUTH_TOKEN_LEN 68 /* "acc_" + 64 hex digits */
#define AUTH_HASH_LEN  64 /* hex SHA-256 */

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

#endif
