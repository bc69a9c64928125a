/* SPDX-License-Identifier: Apache-2.0 */
/*
 * auth.c - token generation and hashing on top of OpenSSL's libcrypto
 * (never hand-rolled crypto).
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth.h"

static void to_hex(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

int auth_token_generate(char out[AUTH_TOKEN_LEN + 1])
{
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return -1;
    memcpy(out, "acc_", 4);
    to_hex(bytes, sizeof bytes, out + 4);
    return 0;
}

int auth_sha256_hex(const void *data, size_t len, char out[AUTH_HASH_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL) != 1 || digest_len != 32)
        return -1;
    to_hex(digest, digest_len, out);
    return 0;
}

int auth_bearer_hash(const char *authorization, char out[AUTH_HASH_LEN + 1])
{
    const char *token;
    size_t len;

    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return -1;
    token = authorization + 7;
    while (*token == ' ')
        token++;
    len = strlen(token);
    while (len > 0 && token[len - 1] == ' ')
        len--;
    /* Real tokens are 68 characters; anything far off is not worth hashing. */
    if (len == 0 || len > 256)
        return -1;
    return auth_sha256_hex(token, len, out);
}

static bool is_session_secret(const char *s, size_t len)
{
    if (len != AUTH_SESSION_SECRET_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* name=value pairs separated by ';' (RFC 6265 5.4), values unquoted. */
static int find_cookie(const char *header, const char *name, char *out)
{
    size_t nlen = strlen(name);
    const char *p = header;

    for (;;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=' &&
            is_session_secret(p + nlen + 1, len - nlen - 1)) {
            memcpy(out, p + nlen + 1, AUTH_SESSION_SECRET_LEN);
            out[AUTH_SESSION_SECRET_LEN] = '\0';
            return 0;
        }
        if (!end)
            return -1;
        p = end + 1;
    }
}

int auth_session_cookie(const struct evkeyvalq *headers, char secret[AUTH_SESSION_SECRET_LEN + 1])
{
    const struct evkeyval *kv;

    TAILQ_FOREACH(kv, headers, next)
    {
        if (strcasecmp(kv->key, "Cookie") != 0)
            continue;
        if (find_cookie(kv->value, "__Host-accord_session", secret) == 0 ||
            find_cookie(kv->value, "accord_session", secret) == 0)
            return 0;
    }
    secret[0] = '\0';
    return -1;
}
