/* SPDX-License-Identifier: Apache-2.0 */
/*
 * password.c - see password.h. The common-passwords list is a sorted array
 * generated at build time (build/gen/common_passwords.c).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "password.h"

/* build/gen/common_passwords.c: lower-case, sorted (C locale), unique. */
extern const char *const common_passwords[];
extern const size_t n_common_passwords;

static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

int password_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

static int cmp_entry(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

static bool in_list(const char *lower)
{
    return bsearch(lower, common_passwords, n_common_passwords, sizeof common_passwords[0],
                   cmp_entry) != NULL;
}

bool password_is_common(const char *pw, size_t len)
{
    char lower[PASSWORD_MAX_BYTES + 1];
    if (len > PASSWORD_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)pw[i]);
    lower[len] = '\0';
    return in_list(lower);
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* Fewer than 4 distinct bytes ("aaaa...", "abab...", "121212...") */
static bool repetitive(const char *s, size_t len)
{
    bool seen[256] = {false};
    int distinct = 0;
    for (size_t i = 0; i < len; i++)
        if (!seen[(unsigned char)s[i]]) {
            seen[(unsigned char)s[i]] = true;
            distinct++;
        }
    return distinct < 4;
}

/* Every step +1 or every step -1 ("abcdefghijkl", "987654321098"; 9-0 wraps). */
static bool sequential(const char *s, size_t len)
{
    int dir = 0;
    for (size_t i = 1; i < len; i++) {
        int a = (unsigned char)s[i - 1], b = (unsigned char)s[i], step = b - a;
        if (a == '9' && b == '0')
            step = 1;
        else if (a == '0' && b == '9')
            step = -1;
        if (step != 1 && step != -1)
            return false;
        if (dir == 0)
            dir = step;
        else if (step != dir)
            return false;
    }
    return true;
}

/* lower is the lower-cased password; its letters-only core, trimmed of digits and symbols. */
static void core_of(const char *lower, char *core, size_t cap)
{
    size_t b = 0, e = strlen(lower);
    while (b < e && !isalpha((unsigned char)lower[b]))
        b++;
    while (e > b && !isalpha((unsigned char)lower[e - 1]))
        e--;
    if (e - b >= cap)
        e = b + cap - 1;
    memcpy(core, lower + b, e - b);
    core[e - b] = '\0';
}

/* s is k >= 2 copies of one list entry or context word ("passwordpassword"). */
static bool repeated_word(const char *s, const char *context)
{
    size_t len = strlen(s);
    char unit[PASSWORD_MAX_BYTES + 1];
    for (size_t u = 1; u <= len / 2; u++) {
        if (len % u)
            continue;
        bool rep = true;
        for (size_t i = u; i < len && rep; i++)
            rep = s[i] == s[i - u];
        if (!rep)
            continue;
        memcpy(unit, s, u);
        unit[u] = '\0';
        if (in_list(unit) || (context && strcmp(unit, context) == 0))
            return true;
    }
    return false;
}

const char *password_problem(const char *pw, size_t len, const char *email)
{
    char lower[PASSWORD_MAX_BYTES + 1], core[PASSWORD_MAX_BYTES + 1], local[321] = "";

    if (len > PASSWORD_MAX_BYTES)
        return "the password is too long (at most 1024 bytes)";
    if (memchr(pw, '\0', len))
        return "the password must not contain a NUL character";
    if (utf8_chars(pw, len) < PASSWORD_MIN_CHARS)
        return "the password must be at least 12 characters long (a few words make a good one)";
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)pw[i]);
    lower[len] = '\0';
    if (email) {
        const char *at = strchr(email, '@');
        size_t n = at ? (size_t)(at - email) : strlen(email);
        if (n >= sizeof local)
            n = sizeof local - 1;
        for (size_t i = 0; i < n; i++)
            local[i] = (char)tolower((unsigned char)email[i]);
        local[n] = '\0';
    }
    core_of(lower, core, sizeof core);
    if (in_list(lower) || (strlen(core) >= 4 && in_list(core)) || repeated_word(lower, NULL) ||
        (strlen(core) >= 4 && repeated_word(core, NULL)))
        return "this password is one of the most commonly used ones: choose another";
    if (repetitive(lower, len) || sequential(lower, len))
        return "the password is too repetitive or sequential: choose another";
    if (strcmp(core, "accord") == 0 || repeated_word(core, "accord") ||
        (strlen(local) >= 4 && strstr(lower, local)))
        return "the password must not be built from your email or the service's name";
    return NULL;
}

int password_hash(const char *pw, size_t len, char out[PASSWORD_HASH_MAX])
{
    return crypto_pwhash_str(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
               ? 0
               : -1;
}

static void make_dummy(void)
{
    unsigned char random[32];
    randombytes_buf(random, sizeof random);
    if (crypto_pwhash_str(dummy_hash, (const char *)random, sizeof random,
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        dummy_hash[0] = '\0';
}

bool password_verify(const char *hash, const char *pw, size_t len)
{
    if (!hash || !*hash) {
        pthread_once(&dummy_once, make_dummy);
        /* the same work as a real verification; the answer is "no" either way */
        if (dummy_hash[0] && crypto_pwhash_str_verify(dummy_hash, pw, len) == 0)
            return false;
        return false;
    }
    return crypto_pwhash_str_verify(hash, pw, len) == 0;
}
