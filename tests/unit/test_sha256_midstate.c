/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sha256_midstate.c - server/sha256_midstate.c: a hash saved after any
 * number of bytes and resumed in a fresh context (as another server would)
 * gives the digests of FIPS 180-2's examples (appendix B: "abc", the 448-bit
 * message and one million 'a').
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sha256_midstate.h"

static const char *ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char *MSG448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char *MSG448_SHA = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char *MILLION_A = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

/*
 * Hashes msg as an upload would: up to `cut`, saved, then resumed in a fresh
 * context that re-reads the bytes after the saved state (they are on disk).
 */
static void hash_split(const unsigned char *msg, size_t len, size_t cut, char hex[65])
{
    struct sha256_midstate a, b;
    unsigned char state[SHA256_MIDSTATE_BYTES];
    uint64_t covered;

    sha256_midstate_init(&a);
    sha256_midstate_update(&a, msg, cut);
    covered = sha256_midstate_save(&a, state);
    CHECK(covered <= cut && covered % 64 == 0 && cut - covered < 64);
    memset(&b, 0xa5, sizeof b); /* nothing of a's context survives */
    CHECK(sha256_midstate_resume(&b, covered, covered ? state : NULL) == 0);
    sha256_midstate_update(&b, msg + covered, len - covered);
    sha256_midstate_final(&b, hex);
}

static void test_published_examples(void)
{
    struct sha256_midstate s;
    char hex[65];

    check_current = "published examples";
    sha256_midstate_init(&s);
    sha256_midstate_update(&s, "abc", 3);
    sha256_midstate_final(&s, hex);
    CHECK(strcmp(hex, ABC) == 0);
    for (size_t cut = 0; cut <= strlen(MSG448); cut++) {
        hash_split((const unsigned char *)MSG448, strlen(MSG448), cut, hex);
        CHECK(strcmp(hex, MSG448_SHA) == 0);
    }
}

static void test_million_a_in_chunks(void)
{
    enum { N = 1000000 };
    unsigned char *msg = malloc(N);
    /* chunk ends on, before and after block boundaries, and one byte */
    static const size_t cuts[] = {0, 1, 63, 64, 65, 4096, 65535, 65536, 500000, 999999, N};
    char hex[65];

    check_current = "one million a, saved and resumed";
    memset(msg, 'a', N);
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        hash_split(msg, N, cuts[i], hex);
        CHECK(strcmp(hex, MILLION_A) == 0);
    }
    /* many stops: every 7,919 bytes, each resumed from the saved state */
    {
        struct sha256_midstate s;
        unsigned char state[SHA256_MIDSTATE_BYTES];
        size_t at = 0;
        sha256_midstate_init(&s);
        while (at < N) {
            size_t next = at + 7919 < N ? at + 7919 : N;
            uint64_t covered;
            sha256_midstate_update(&s, msg + at, next - at);
            covered = sha256_midstate_save(&s, state);
            CHECK(sha256_midstate_resume(&s, covered, covered ? state : NULL) == 0);
            sha256_midstate_update(&s, msg + covered, next - covered);
            at = next;
        }
        sha256_midstate_final(&s, hex);
        CHECK(strcmp(hex, MILLION_A) == 0);
    }
    free(msg);
}

static void test_refusals(void)
{
    struct sha256_midstate s;
    unsigned char state[SHA256_MIDSTATE_BYTES] = {0};

    check_current = "refusals";
    CHECK(sha256_midstate_resume(&s, 100, state) < 0); /* not a whole number of blocks */
    CHECK(sha256_midstate_resume(&s, 128, NULL) < 0);  /* no chaining value */
    CHECK(sha256_midstate_resume(&s, 0, NULL) == 0);
}

int main(void)
{
    test_published_examples();
    test_million_a_in_chunks();
    test_refusals();
    return check_summary("sha256_midstate");
}
