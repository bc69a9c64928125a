/* SPDX-License-Identifier: Apache-2.0 */
/*
 * password.h - people's passwords: the rules a new one must meet, and
 * argon2id hashing (libsodium's crypto_pwhash_str, never hand-rolled).
 *
 * Rules (NIST SP 800-63B 5.1.1.2): at least 12 characters (Unicode code
 * points), at most 1024 bytes, no composition rules; refused when it is, or
 * is built from, one of the most common passwords (server/data/
 * common-passwords.txt, compiled in), when it is repetitive or sequential
 * ("aaaaaaaaaaaa", "abcdefghijkl"), or when it is built from a context word
 * (the service's name, the person's email).
 *
 * Hashing and verifying take tens of milliseconds and 64 MiB by design: call
 * them only off the event loop (an offload thread) or from the CLI.
 */
#ifndef ACCORD_PASSWORD_H
#define ACCORD_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_MIN_CHARS 12
#define PASSWORD_MAX_BYTES 1024
#define PASSWORD_HASH_MAX  128 /* crypto_pwhash_STRBYTES */

/* Initialises libsodium; call once before threads start. Returns 0 or -1. */
int password_init(void) __attribute__((warn_unused_result));

/*
 * Checks a proposed password of len bytes (UTF-8). email may be NULL. Returns
 * NULL when acceptable, else a message for the person (a static string).
 */
const char *password_problem(const char *pw, size_t len, const char *email);

/* argon2id string of pw into out. Returns 0, or -1 (out of memory). */
int password_hash(const char *pw, size_t len, char out[PASSWORD_HASH_MAX])
    __attribute__((warn_unused_result));

/*
 * Verifies pw against an argon2id string. With hash NULL (an unknown email,
 * or a person without a password) verifies against a fixed dummy hash and
 * returns false, so that the answer takes as long as for a wrong password.
 */
bool password_verify(const char *hash, const char *pw, size_t len);

/* Whether pw is on the common-passwords list (case-insensitive); for tests. */
bool password_is_common(const char *pw, size_t len);

#endif
