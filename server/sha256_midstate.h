/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sha256_midstate.h - a SHA-256 that can stop and resume in another process.
 *
 * A tus upload arrives as chunks, possibly through different servers and
 * across restarts, and its hash must not cost a second pass over the file.
 * So the hash advances as each chunk is written, and between chunks its
 * state is kept in the database: the 32-byte chaining value after a whole
 * number of 64-byte blocks (FIPS 180-4's H(i)) and that number of bytes.
 * This is the standard SHA-256 intermediate value, not a library's private
 * layout; bytes after the last whole block are re-read from the part file.
 */
#ifndef ACCORD_SHA256_MIDSTATE_H
#define ACCORD_SHA256_MIDSTATE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>

#define SHA256_MIDSTATE_BYTES 32
#define SHA256_BLOCK_BYTES    64

/* OpenSSL's SHA-256 (its SHA-NI / AVX2 code); only sha256_midstate.c looks inside. */
struct sha256_midstate {
    SHA256_CTX ctx;
};

/* A fresh hash (nothing hashed). */
void sha256_midstate_init(struct sha256_midstate *s);

/*
 * Resumes from the chaining value `state` (32 bytes, big-endian words) after
 * `bytes`, a multiple of 64; state NULL with bytes 0 is a fresh hash.
 * Returns 0, or -1 when bytes is not a multiple of 64 or state is missing.
 */
int sha256_midstate_resume(struct sha256_midstate *s, uint64_t bytes, const unsigned char *state)
    __attribute__((warn_unused_result));

void sha256_midstate_update(struct sha256_midstate *s, const void *data, size_t len);

/*
 * What can be kept: the chaining value (32 bytes, big-endian words) and the
 * bytes it covers (the bytes hashed, rounded down to 64). Returns those bytes.
 */
uint64_t sha256_midstate_save(const struct sha256_midstate *s,
                              unsigned char state[SHA256_MIDSTATE_BYTES]);

/* The digest of everything hashed, as 64 hex digits. s is spent. */
void sha256_midstate_final(struct sha256_midstate *s, char hex[65]);

#endif
