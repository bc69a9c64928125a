/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jws.c - RS256 compact JWS with OpenSSL's EVP interface (see jws.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "jws.h"
#include "jwt.h"

char *jws_b64url_encode(const unsigned char *data, size_t len)
{
    char *out;
    if (len > (size_t)1 << 30 || !(out = malloc(4 * ((len + 2) / 3) + 1)))
        return NULL;
    jwt_b64url_encode(data, len, out);
    return out;
}

/*
 * Not jwt_b64url_decode(): that one refuses parts over JWT_MAX_LEN (16 KB),
 * right for a provider's id_token, too small for a badge whose rubric has many
 * criteria. The same mapping onto OpenSSL's decoder, bounded at 1 GB.
 */
unsigned char *jws_b64url_decode(const char *text, size_t text_len, size_t *len)
{
    size_t pad = (4 - text_len % 4) % 4, n = text_len + pad;
    char *std;
    unsigned char *out;
    int got;

    if (pad == 3 || text_len > (size_t)1 << 30)
        return NULL;
    std = malloc(n + 1);
    out = malloc(n / 4 * 3 + 1);
    if (!std || !out)
        goto fail;
    for (size_t i = 0; i < text_len; i++) {
        char c = text[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (c == '+' || c == '/' || c == '=')
            goto fail; /* not base64url */
        std[i] = c;
    }
    memset(std + text_len, '=', pad);
    std[n] = '\0';
    got = EVP_DecodeBlock(out, (unsigned char *)std, (int)n);
    if (got < 0 || (size_t)got < pad)
        goto fail;
    free(std);
    *len = (size_t)got - pad;
    return out;
fail:
    free(std);
    free(out);
    return NULL;
}

EVP_PKEY *jws_key_generate(void)
{
    return EVP_RSA_gen(2048);
}

int jws_key_write_private(EVP_PKEY *key, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f;
    int ok;
    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
        return -1;
    }
    ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    ok = (fflush(f) == 0 && fsync(fileno(f)) == 0) && ok;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        unlink(path);
        return -1;
    }
    return 0;
}

EVP_PKEY *jws_key_read_private(const char *path)
{
    FILE *f = fopen(path, "re");
    EVP_PKEY *key;
    if (!f)
        return NULL;
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return key;
}

char *jws_key_public_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    long n;
    if (!bio)
        return NULL;
    if (PEM_write_bio_PUBKEY(bio, key) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0) {
        out = malloc((size_t)n + 1);
        if (out) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(bio);
    return out;
}

EVP_PKEY *jws_key_from_public_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key;
    if (!bio)
        return NULL;
    key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return key;
}

static json_t *bn_b64url(EVP_PKEY *key, const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char *bytes = NULL;
    char *text = NULL;
    json_t *out = NULL;
    int n;

    if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
        return NULL;
    n = BN_num_bytes(bn);
    bytes = malloc((size_t)n > 0 ? (size_t)n : 1);
    if (bytes && BN_bn2bin(bn, bytes) == n && (text = jws_b64url_encode(bytes, (size_t)n)))
        out = json_string(text);
    free(text);
    free(bytes);
    BN_free(bn);
    return out;
}

json_t *jws_key_public_jwk(EVP_PKEY *key)
{
    json_t *n = bn_b64url(key, OSSL_PKEY_PARAM_RSA_N);
    json_t *e = bn_b64url(key, OSSL_PKEY_PARAM_RSA_E);
    if (!n || !e) {
        json_decref(n);
        json_decref(e);
        return NULL;
    }
    return json_pack("{s:s,s:o,s:o}", "kty", "RSA", "n", n, "e", e);
}

static char *b64url_json(const json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    char *out = text ? jws_b64url_encode((const unsigned char *)text, strlen(text)) : NULL;
    free(text);
    return out;
}

char *jws_sign_rs256(EVP_PKEY *key, const json_t *header, const json_t *payload)
{
    char *h = b64url_json(header), *p = b64url_json(payload), *input = NULL, *sig = NULL,
         *out = NULL;
    unsigned char *raw = NULL;
    size_t rawlen = 0, inlen, hlen, plen, siglen;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!h || !p || !ctx)
        goto cleanup;
    hlen = strlen(h);
    plen = strlen(p);
    inlen = hlen + 1 + plen;
    input = malloc(inlen + 1);
    if (!input)
        goto cleanup;
    memcpy(input, h, hlen);
    input[hlen] = '.';
    memcpy(input + hlen + 1, p, plen + 1);
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &rawlen, (unsigned char *)input, inlen) != 1 ||
        !(raw = malloc(rawlen)) ||
        EVP_DigestSign(ctx, raw, &rawlen, (unsigned char *)input, inlen) != 1 ||
        !(sig = jws_b64url_encode(raw, rawlen)))
        goto cleanup;
    siglen = strlen(sig);
    out = malloc(inlen + 1 + siglen + 1);
    if (out) {
        memcpy(out, input, inlen);
        out[inlen] = '.';
        memcpy(out + inlen + 1, sig, siglen + 1);
    }
cleanup:
    EVP_MD_CTX_free(ctx);
    free(h);
    free(p);
    free(input);
    free(raw);
    free(sig);
    return out;
}

static json_t *decode_part(const char *start, size_t len)
{
    size_t n;
    unsigned char *raw = jws_b64url_decode(start, len, &n);
    json_t *doc = raw ? json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(raw);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

json_t *jws_payload(const char *jws)
{
    const char *d1 = strchr(jws, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2)
        return NULL;
    return decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
}

json_t *jws_verify_rs256(EVP_PKEY *key, const char *jws, char *err, size_t errlen)
{
    const char *d1 = strchr(jws, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    json_t *header = NULL, *payload = NULL;
    unsigned char *sig = NULL;
    size_t siglen;
    EVP_MD_CTX *ctx = NULL;
    const char *alg;

    if (!d2 || strchr(d2 + 1, '.')) {
        snprintf(err, errlen, "not a compact JWS");
        return NULL;
    }
    header = decode_part(jws, (size_t)(d1 - jws));
    alg = json_string_value(json_object_get(header, "alg"));
    if (!alg || strcmp(alg, "RS256") != 0) {
        snprintf(err, errlen, "the header's alg is not RS256");
        goto cleanup;
    }
    sig = jws_b64url_decode(d2 + 1, strlen(d2 + 1), &siglen);
    ctx = EVP_MD_CTX_new();
    if (!sig || !ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)jws, (size_t)(d2 - jws)) != 1) {
        snprintf(err, errlen, "the signature does not match the key");
        goto cleanup;
    }
    payload = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!payload)
        snprintf(err, errlen, "the payload is not a JSON object");
cleanup:
    EVP_MD_CTX_free(ctx);
    free(sig);
    json_decref(header);
    return payload;
}
