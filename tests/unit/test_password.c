/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_password.c - server/password.c: the rules a new password must meet
 * (NIST SP 800-63B 5.1.1.2) and the argon2id round trip.
 */
#include <string.h>

#include "check.h"
#include "password.h"

static const char *problem(const char *pw, const char *email)
{
    return password_problem(pw, strlen(pw), email);
}

static void test_length(void)
{
    CHECK(problem("elevenchars", NULL) != NULL);   /* 11 */
    CHECK(problem("a quiet river", NULL) == NULL); /* 13, spaces welcome */
    CHECK(problem("river at dawn", NULL) == NULL); /* no digits, no capitals: fine */
    /* characters, not bytes: 12 code points of 2 bytes each */
    CHECK(problem("\xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab\xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab"
                  "\xc3\xa0\xc3\xa2\xc3\xa4\xc3\xa7",
                  NULL) == NULL);
    CHECK(problem("\xc3\xa9\xc3\xa8\xc3\xaa\xc3\xab\xc3\xa9\xc3\xa8", NULL) != NULL); /* 6 */
    char longpw[PASSWORD_MAX_BYTES + 2];
    memset(longpw, 'x', sizeof longpw - 1);
    longpw[sizeof longpw - 1] = '\0';
    CHECK(password_problem(longpw, strlen(longpw), NULL) != NULL);
    CHECK(password_problem("a quiet river\0x", 15, NULL) != NULL); /* NUL inside */
}

static void test_common(void)
{
    CHECK(password_is_common("password", 8));
    CHECK(password_is_common("PassWord", 8));
    CHECK(password_is_common("winniethepooh", 13));
    CHECK(!password_is_common("a quiet river", 13));
    CHECK(problem("winniethepooh", NULL) != NULL);
    CHECK(problem("password1234", NULL) != NULL);
    CHECK(problem("Password2024!", NULL) != NULL);
    CHECK(problem("2024iloveyou!!", NULL) != NULL);
    CHECK(problem("qwertyqwerty", NULL) != NULL);
    CHECK(problem("monkeymonkeymonkey", NULL) != NULL);
    CHECK(problem("dragon is my friend", NULL) == NULL); /* a common word inside a phrase is fine */
}

static void test_repetitive_sequential(void)
{
    CHECK(problem("aaaaaaaaaaaa", NULL) != NULL);
    CHECK(problem("abababababab", NULL) != NULL);
    CHECK(problem("121212121212", NULL) != NULL);
    CHECK(problem("abcdefghijklm", NULL) != NULL);
    CHECK(problem("987654321098", NULL) != NULL);
    CHECK(problem("348729105683", NULL) == NULL); /* digits only, but not a pattern */
}

static void test_context(void)
{
    CHECK(problem("accord-2026!!", NULL) != NULL);
    CHECK(problem("accordaccord", NULL) != NULL);
    CHECK(problem("mbrown123456", "mbrown@lincoln.example") != NULL);
    CHECK(problem("MBrownMBrown", "mbrown@lincoln.example") != NULL);
    CHECK(problem("mbrown123456", "other@lincoln.example") == NULL);
}

static void test_hash_round_trip(void)
{
    char hash[PASSWORD_HASH_MAX], hash2[PASSWORD_HASH_MAX];
    CHECK(password_hash("a quiet river", 13, hash) == 0);
    CHECK(strncmp(hash, "$argon2id$", 10) == 0);
    CHECK(password_verify(hash, "a quiet river", 13));
    CHECK(!password_verify(hash, "a quiet rivet", 13));
    CHECK(!password_verify(hash, "a quiet river", 12));
    CHECK(password_hash("a quiet river", 13, hash2) == 0);
    CHECK(strcmp(hash, hash2) != 0);                    /* salted */
    CHECK(!password_verify(NULL, "a quiet river", 13)); /* the dummy: never true */
    CHECK(!password_verify("", "", 0));
    CHECK(!password_verify("$argon2id$garbage", "x", 1));
}

int main(void)
{
    if (password_init() < 0)
        return 1;
    RUN(test_length);
    RUN(test_common);
    RUN(test_repetitive_sequential);
    RUN(test_context);
    RUN(test_hash_round_trip);
    return check_summary("password");
}
