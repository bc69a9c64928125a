/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwt.c - id_token verification with OpenSSL (signatures, keys, base64) and
 * jansson (JSON). Nothing here is hand-rolled crypto: this file only picks
 * the key, rebuilds it from its JWK parameters, and asks OpenSSL.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "jwt.h"

#define JWT_MAX_KEYS     64
#define JWT_MIN_RSA_BITS 2048

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

long jwt_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    char *std;
    size_t pad = (4 - len % 4) % 4;
    int n;

    if (len % 4 == 1 || len > JWT_MAX_LEN)
        return -1;
    std = malloc(len + pad + 1);
    if (!std)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!isalnum((unsigned char)c)) {
            free(std);
            return -1;
        }
        std[i] = c;
    }
    for (size_t i = 0; i < pad; i++)
        std[len + i] = '=';
    std[len + pad] = '\0';
    /* EVP_DecodeBlock counts the padding's zero bytes in its result. */
    n = len ? EVP_DecodeBlock(out, (const unsigned char *)std, (int)(len + pad)) : 0;
    free(std);
    if (n < 0 || (size_t)n < pad)
        return -1;
    return (long)(n - (int)pad);
}

void jwt_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
}

/* Decodes a base64url part into a new buffer; *out_len its length. */
static unsigned char *b64_part(const char *in, size_t len, size_t *out_len)
{
    unsigned char *buf = malloc(3 * (len + 3) / 4 + 1);
    long n;
    if (!buf)
        return NULL;
    n = jwt_b64url_decode(in, len, buf);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    *out_len = (size_t)n;
    return buf;
}

/* A base64url JSON object part. */
static json_t *json_part(const char *in, size_t len)
{
    size_t n = 0;
    unsigned char *raw = b64_part(in, len, &n);
    json_t *doc;
    if (!raw)
        return NULL;
    doc = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* A JWK's base64url member as a BIGNUM. */
static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    size_t n = 0;
    unsigned char *raw;
    BIGNUM *bn;
    if (!s)
        return NULL;
    raw = b64_part(s, strlen(s), &n);
    if (!raw)
        return NULL;
    bn = n ? BN_bin2bn(raw, (int)n, NULL) : NULL;
    free(raw);
    return bn;
}

static EVP_PKEY *rsa_key(const json_t *jwk)
{
    BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!n || !e || BN_num_bits(n) < JWT_MIN_RSA_BITS || BN_num_bits(n) > 16384)
        goto cleanup;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto cleanup;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
cleanup:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *ec_key(const json_t *jwk)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *xs = json_string_value(json_object_get(jwk, "x"));
    const char *ys = json_string_value(json_object_get(jwk, "y"));
    unsigned char point[65], *x = NULL, *y = NULL;
    size_t xlen = 0, ylen = 0;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!crv || strcmp(crv, "P-256") != 0 || !xs || !ys)
        return NULL;
    x = b64_part(xs, strlen(xs), &xlen);
    y = b64_part(ys, strlen(ys), &ylen);
    if (!x || !y || xlen != 32 || ylen != 32)
        goto cleanup;
    point[0] = 0x04; /* uncompressed: 04 || x || y */
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
        goto cleanup;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
cleanup:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

enum alg { ALG_RS256, ALG_PS256, ALG_ES256 };

static int parse_alg(const char *name, enum alg *alg)
{
    if (!name)
        return -1;
    if (strcmp(name, "RS256") == 0)
        *alg = ALG_RS256;
    else if (strcmp(name, "PS256") == 0)
        *alg = ALG_PS256;
    else if (strcmp(name, "ES256") == 0)
        *alg = ALG_ES256;
    else
        return -1;
    return 0;
}

/* Does this JWK fit a token signed with alg (and kid, when the header names one)? */
static int key_fits(const json_t *jwk, const char *alg_name, enum alg alg, const char *kid)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    const json_t *kalg = json_object_get(jwk, "alg");
    const char *kkid = json_string_value(json_object_get(jwk, "kid"));

    if (!json_is_object(jwk) || !kty)
        return 0;
    if (kid && (!kkid || strcmp(kid, kkid) != 0))
        return 0;
    if (use && strcmp(use, "sig") != 0)
        return 0;
    if (kalg && (!json_is_string(kalg) || strcmp(json_string_value(kalg), alg_name) != 0))
        return 0;
    if (alg == ALG_ES256)
        return strcmp(kty, "EC") == 0;
    return strcmp(kty, "RSA") == 0;
}

/* JWS ES256 signatures are r || s (32 bytes each); OpenSSL wants DER. */
static unsigned char *es256_der(const unsigned char *sig, size_t len, size_t *der_len)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    int n;

    if (len != 64)
        return NULL;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    n = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (n <= 0)
        return NULL;
    *der_len = (size_t)n;
    return der;
}

static int verify_with(EVP_PKEY *pkey, enum alg alg, const char *input, size_t input_len,
                       const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    int ok = 0;

    if (!md || EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pkey) != 1)
        goto cleanup;
    if (alg == ALG_PS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
        goto cleanup;
    if (alg == ALG_ES256) {
        der = es256_der(sig, sig_len, &der_len);
        if (!der)
            goto cleanup;
        sig = der;
        sig_len = der_len;
    }
    ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;
cleanup:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return ok;
}

enum jwt_status jwt_verify(const char *token, const json_t *jwks, json_t **claims, char *err,
                           size_t errlen)
{
    const char *dot1, *dot2;
    size_t len;
    json_t *header = NULL, *payload = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    const char *alg_name, *kid;
    const json_t *keys = json_object_get(jwks, "keys");
    enum alg alg;
    enum jwt_status st = JWT_MALFORMED;

    *claims = NULL;
    set_err(err, errlen, "ok");
    len = token ? strlen(token) : 0;
    if (len == 0 || len > JWT_MAX_LEN) {
        set_err(err, errlen, "the id_token is missing or longer than %d bytes", JWT_MAX_LEN);
        return JWT_MALFORMED;
    }
    dot1 = strchr(token, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.')) {
        set_err(err, errlen, "the id_token is not a compact JWS (three parts)");
        return JWT_MALFORMED;
    }
    header = json_part(token, (size_t)(dot1 - token));
    if (!header) {
        set_err(err, errlen, "the id_token's header is not base64url JSON");
        goto cleanup;
    }
    /* The algorithm first: an unsigned ("none") token has no signature part. */
    alg_name = json_string_value(json_object_get(header, "alg"));
    if (json_object_get(header, "crit") || parse_alg(alg_name, &alg) < 0) {
        set_err(err, errlen, "the id_token's algorithm %.32s is not accepted (RS256, PS256, ES256)",
                alg_name ? alg_name : "(none)");
        st = JWT_BAD_ALG;
        goto cleanup;
    }
    payload = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    sig = b64_part(dot2 + 1, strlen(dot2 + 1), &sig_len);
    if (!payload || !sig || sig_len == 0) {
        set_err(err, errlen, "the id_token's parts are not base64url JSON objects and a signature");
        goto cleanup;
    }
    kid = json_string_value(json_object_get(header, "kid"));
    if (json_object_get(header, "kid") && !kid) {
        set_err(err, errlen, "the id_token's kid is not a string");
        goto cleanup;
    }
    st = JWT_UNKNOWN_KID;
    set_err(err, errlen, "no key of the provider's JWKS fits the id_token (kid %s)",
            kid ? kid : "absent");
    for (size_t i = 0; json_is_array(keys) && i < json_array_size(keys) && i < JWT_MAX_KEYS; i++) {
        const json_t *jwk = json_array_get(keys, i);
        EVP_PKEY *pkey;
        int ok;
        if (!key_fits(jwk, alg_name, alg, kid))
            continue;
        pkey = alg == ALG_ES256 ? ec_key(jwk) : rsa_key(jwk);
        if (!pkey) {
            if (st == JWT_UNKNOWN_KID) {
                st = JWT_BAD_KEY;
                set_err(err, errlen,
                        "the provider's key %s is unusable (malformed, or RSA under %d bits)",
                        kid ? kid : "", JWT_MIN_RSA_BITS);
            }
            continue;
        }
        ok = verify_with(pkey, alg, token, (size_t)(dot2 - token), sig, sig_len);
        EVP_PKEY_free(pkey);
        if (ok) {
            st = JWT_OK;
            break;
        }
        st = JWT_BAD_SIGNATURE;
        set_err(err, errlen, "the id_token's signature does not verify with the provider's key");
        if (kid)
            break; /* the named key said no */
    }
    if (st == JWT_OK) {
        *claims = payload;
        payload = NULL;
        set_err(err, errlen, "ok");
    }
cleanup:
    json_decref(header);
    json_decref(payload);
    free(sig);
    return st;
}

/* A NumericDate claim (integer or real seconds). */
static int numeric_date(const json_t *claims, const char *name, long long *out)
{
    const json_t *v = json_object_get(claims, name);
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (d < 0 || d > 1e12)
        return -1;
    *out = (long long)d;
    return 0;
}

enum jwt_status jwt_check_id_token(const json_t *claims, const struct jwt_expect *ex, char *err,
                                   size_t errlen)
{
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *nonce = json_string_value(json_object_get(claims, "nonce"));
    const json_t *aud = json_object_get(claims, "aud");
    const json_t *azp = json_object_get(claims, "azp");
    long long exp, iat, nbf;
    int aud_ok = 0;

    if (!iss || strcmp(iss, ex->issuer) != 0) {
        set_err(err, errlen, "the id_token's issuer is not the provider's");
        return JWT_BAD_CLAIMS;
    }
    if (!sub || !*sub || strlen(sub) > 255) {
        set_err(err, errlen, "the id_token has no valid subject");
        return JWT_BAD_CLAIMS;
    }
    if (json_is_string(aud)) {
        aud_ok = strcmp(json_string_value(aud), ex->client_id) == 0;
    } else if (json_is_array(aud) && json_array_size(aud) > 0) {
        for (size_t i = 0; i < json_array_size(aud); i++) {
            const char *a = json_string_value(json_array_get(aud, i));
            if (a && strcmp(a, ex->client_id) == 0)
                aud_ok = 1;
        }
        /* Several audiences: the token must say it was issued to us (azp). */
        if (json_array_size(aud) > 1 && !azp)
            aud_ok = 0;
    }
    if (!aud_ok) {
        set_err(err, errlen, "the id_token was not issued to this client (aud)");
        return JWT_BAD_CLAIMS;
    }
    if (azp && (!json_is_string(azp) || strcmp(json_string_value(azp), ex->client_id) != 0)) {
        set_err(err, errlen, "the id_token was issued to another party (azp)");
        return JWT_BAD_CLAIMS;
    }
    if (numeric_date(claims, "exp", &exp) < 0 || exp + ex->skew <= ex->now) {
        set_err(err, errlen, "the id_token has expired");
        return JWT_BAD_CLAIMS;
    }
    if (numeric_date(claims, "iat", &iat) < 0 || iat > ex->now + ex->skew ||
        iat + ex->max_age + ex->skew < ex->now) {
        set_err(err, errlen, "the id_token's issue time is missing, in the future or too old");
        return JWT_BAD_CLAIMS;
    }
    if (json_object_get(claims, "nbf") &&
        (numeric_date(claims, "nbf", &nbf) < 0 || nbf > ex->now + ex->skew)) {
        set_err(err, errlen, "the id_token is not valid yet (nbf)");
        return JWT_BAD_CLAIMS;
    }
    if (!nonce || !ex->nonce || strlen(nonce) != strlen(ex->nonce) ||
        CRYPTO_memcmp(nonce, ex->nonce, strlen(nonce)) != 0) {
        set_err(err, errlen, "the id_token's nonce is not this sign-in's (a replayed token?)");
        return JWT_BAD_CLAIMS;
    }
    set_err(err, errlen, "ok");
    return JWT_OK;
}
