/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sha256_midstate.c - OpenSSL's SHA256_CTX, whose chaining value can be read
 * and set (see sha256_midstate.h).
 *
 * OpenSSL 3 marks the SHA256_* functions deprecated in favour of EVP, but an
 * EVP digest's state cannot be saved or restored, and SHA256_CTX's layout
 * (h[8], the bit count in Nl/Nh, the partial block in data/num) is public
 * and stable since 0.9.8. The same assembly does the work either way.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <string.h>

#include "sha256_midstate.h"

void sha256_midstate_init(struct sha256_midstate *s)
{
    SHA256_Init(&s->ctx);
}

int sha256_midstate_resume(struct sha256_midstate *s, uint64_t bytes, const unsigned char *state)
{
    uint64_t bits = bytes * 8;
    SHA256_Init(&s->ctx);
    if (bytes == 0)
        return 0;
    if (!state || bytes % SHA256_BLOCK_BYTES != 0 || bytes > (UINT64_MAX >> 3))
        return -1;
    for (int i = 0; i < 8; i++)
        s->ctx.h[i] = (SHA_LONG)state[4 * i] << 24 | (SHA_LONG)state[4 * i + 1] << 16 |
                      (SHA_LONG)state[4 * i + 2] << 8 | (SHA_LONG)state[4 * i + 3];
    s->ctx.Nl = (SHA_LONG)(bits & 0xffffffffu);
    s->ctx.Nh = (SHA_LONG)(bits >> 32);
    s->ctx.num = 0;
    return 0;
}

void sha256_midstate_update(struct sha256_midstate *s, const void *data, size_t len)
{
    SHA256_Update(&s->ctx, data, len);
}

uint64_t sha256_midstate_save(const struct sha256_midstate *s,
                              unsigned char state[SHA256_MIDSTATE_BYTES])
{
    uint64_t bits = (uint64_t)s->ctx.Nh << 32 | s->ctx.Nl;
    /* h covers every whole block; num bytes of a partial one wait in data */
    for (int i = 0; i < 8; i++) {
        state[4 * i] = (unsigned char)(s->ctx.h[i] >> 24);
        state[4 * i + 1] = (unsigned char)(s->ctx.h[i] >> 16);
        state[4 * i + 2] = (unsigned char)(s->ctx.h[i] >> 8);
        state[4 * i + 3] = (unsigned char)s->ctx.h[i];
    }
    return bits / 8 - s->ctx.num;
}

void sha256_midstate_final(struct sha256_midstate *s, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_Final(digest, &s->ctx);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}
