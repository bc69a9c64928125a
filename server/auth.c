/*
 * auth.c - token generation and hashing on top of OpenSSL's libcrypto
 * (never hand-rolled crypto).
 */
#include <string.h>
#include <strings.h>

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
