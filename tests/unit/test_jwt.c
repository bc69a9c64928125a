/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_jwt.c - server/jwt.c: base64url (RFC 4648 section 10 vectors), JWS
 * signature verification with keys made here by OpenSSL (RS256, PS256, ES256;
 * fresh random keys each run: every check holds for any key), the refusals
 * (tampering, wrong key, unknown kid, "none", HMAC, short RSA keys, malformed
 * tokens) and the id_token claim rules of OpenID Connect Core 3.1.3.7.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "check.h"
#include "jwt.h"

#define NOW 1900000000LL

static char *b64(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    jwt_b64url_encode(data, len, out);
    return out;
}

static char *b64_bn(const BIGNUM *bn)
{
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    return b64(buf, (size_t)n);
}

/* A JWK (public) for pkey, with kid. */
static json_t *jwk_of(EVP_PKEY *pkey, const char *kid)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e);
        char *ns = b64_bn(n), *es = b64_bn(e);
        json_t *k = json_pack("{s:s,s:s,s:s,s:s}", "kty", "RSA", "kid", kid, "n", ns, "e", es);
        free(ns);
        free(es);
        BN_free(n);
        BN_free(e);
        return k;
    }
    unsigned char pt[65];
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len);
    char *x = b64(pt + 1, 32), *y = b64(pt + 33, 32);
    json_t *k =
        json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "kid", kid, "crv", "P-256", "x", x, "y", y);
    free(x);
    free(y);
    return k;
}

/* header.payload.signature, signed with pkey by alg. */
static char *sign(EVP_PKEY *pkey, const char *alg, json_t *header, json_t *claims)
{
    char *h = json_dumps(header, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    char *hb = b64(h, strlen(h)), *cb = b64(c, strlen(c));
    size_t input_len = strlen(hb) + 1 + strlen(cb);
    char *input = malloc(input_len + 1);
    unsigned char sig[1024], raw[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    char *sb, *token;

    snprintf(input, input_len + 1, "%s.%s", hb, cb);
    EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, pkey);
    if (strcmp(alg, "PS256") == 0) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, input_len);
    EVP_MD_CTX_free(md);
    if (strcmp(alg, "ES256") == 0) { /* DER to r || s */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
        ECDSA_SIG_free(es);
        sb = b64(raw, 64);
    } else {
        sb = b64(sig, sig_len);
    }
    token = malloc(input_len + strlen(sb) + 2);
    sprintf(token, "%s.%s", input, sb);
    free(h);
    free(c);
    free(hb);
    free(cb);
    free(input);
    free(sb);
    return token;
}

static json_t *good_claims(void)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "iss", "https://idp.example.org", "aud", "accord",
                     "sub", "248289761001", "nonce", "n-0S6_WzA2Mj", "iat", (json_int_t)(NOW - 10),
                     "exp", (json_int_t)(NOW + 300));
}

static const struct jwt_expect EXPECT = {.issuer = "https://idp.example.org",
                                         .client_id = "accord",
                                         .nonce = "n-0S6_WzA2Mj",
                                         .now = NOW,
                                         .skew = 120,
                                         .max_age = 600};

static EVP_PKEY *rsa2048, *rsa2048b, *rsa1024, *p256;

/* verify + claims for a token signed by key with alg/kid and the given claims. */
static enum jwt_status run(EVP_PKEY *key, const char *alg, const char *kid, json_t *claims,
                           json_t *jwks)
{
    json_t *header = json_pack("{s:s,s:s,s:s}", "alg", alg, "typ", "JWT", "kid", kid);
    char *token = sign(key, alg, header, claims);
    json_t *out = NULL;
    char err[200];
    enum jwt_status st = jwt_verify(token, jwks, &out, err, sizeof err);
    if (st == JWT_OK)
        st = jwt_check_id_token(out, &EXPECT, err, sizeof err);
    json_decref(out);
    json_decref(header);
    json_decref(claims);
    free(token);
    return st;
}

static void test_base64url(void)
{
    /* RFC 4648 section 10, without padding and in the url alphabet */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    unsigned char out[16];
    char enc[16];
    for (int i = 0; i < 7; i++) {
        jwt_b64url_encode((const unsigned char *)plain[i], strlen(plain[i]), enc);
        CHECK_STR(enc, coded[i]);
        long n = jwt_b64url_decode(coded[i], strlen(coded[i]), out);
        CHECK(n == (long)strlen(plain[i]) && memcmp(out, plain[i], (size_t)n) == 0);
    }
    unsigned char bytes[] = {0xfb, 0xff, 0xfe};
    jwt_b64url_encode(bytes, 3, enc);
    CHECK_STR(enc, "-__-"); /* the url alphabet, not + and / */
    CHECK(jwt_b64url_decode("-__-", 4, out) == 3 && memcmp(out, bytes, 3) == 0);
    CHECK(jwt_b64url_decode("+//+", 4, out) == -1); /* standard alphabet refused */
    CHECK(jwt_b64url_decode("Zg==", 4, out) == -1); /* padding refused */
    CHECK(jwt_b64url_decode("Z", 1, out) == -1);    /* impossible length */
    CHECK(jwt_b64url_decode("Zm 9", 4, out) == -1);
    CHECK(jwt_b64url_decode("Zm9v\n", 5, out) == -1);
}

static void test_signatures(void)
{
    json_t *jwks = json_pack("{s:[o,o,o]}", "keys", jwk_of(rsa2048, "r1"), jwk_of(p256, "e1"),
                             jwk_of(rsa1024, "short"));
    CHECK(run(rsa2048, "RS256", "r1", good_claims(), jwks) == JWT_OK);
    CHECK(run(rsa2048, "PS256", "r1", good_claims(), jwks) == JWT_OK);
    CHECK(run(p256, "ES256", "e1", good_claims(), jwks) == JWT_OK);
    /* another key under a published kid */
    CHECK(run(rsa2048b, "RS256", "r1", good_claims(), jwks) == JWT_BAD_SIGNATURE);
    /* a kid the JWKS does not have: the caller refreshes the JWKS */
    CHECK(run(rsa2048b, "RS256", "r2", good_claims(), jwks) == JWT_UNKNOWN_KID);
    /* an EC kid with an RSA algorithm: no key fits */
    CHECK(run(rsa2048, "RS256", "e1", good_claims(), jwks) == JWT_UNKNOWN_KID);
    /* RSA keys under 2048 bits are refused even when the signature is right */
    CHECK(run(rsa1024, "RS256", "short", good_claims(), jwks) == JWT_BAD_KEY);
    json_decref(jwks);

    /* a JWK that declares another alg or use does not verify this token */
    json_t *k = jwk_of(rsa2048, "r1");
    json_object_set_new(k, "use", json_string("enc"));
    jwks = json_pack("{s:[o]}", "keys", k);
    CHECK(run(rsa2048, "RS256", "r1", good_claims(), jwks) == JWT_UNKNOWN_KID);
    json_decref(jwks);
    k = jwk_of(rsa2048, "r1");
    json_object_set_new(k, "alg", json_string("PS256"));
    jwks = json_pack("{s:[o]}", "keys", k);
    CHECK(run(rsa2048, "RS256", "r1", good_claims(), jwks) == JWT_UNKNOWN_KID);
    CHECK(run(rsa2048, "PS256", "r1", good_claims(), jwks) == JWT_OK);
    json_decref(jwks);
}

static void test_refusals(void)
{
    json_t *jwks = json_pack("{s:[o]}", "keys", jwk_of(rsa2048, "r1"));
    json_t *header = json_pack("{s:s,s:s}", "alg", "RS256", "kid", "r1");
    json_t *claims = good_claims(), *out = NULL;
    char *token = sign(rsa2048, "RS256", header, claims), err[200];
    char *dot2 = strrchr(token, '.');

    CHECK(jwt_verify(token, jwks, &out, err, sizeof err) == JWT_OK);
    json_decref(out);
    out = NULL;
    /* another payload (sub changed) under the original signature */
    json_t *forged = good_claims();
    json_object_set_new(forged, "sub", json_string("admin"));
    char *other = sign(rsa2048b, "RS256", header, forged);
    char *tampered = malloc(strlen(other) + strlen(dot2) + 1);
    sprintf(tampered, "%.*s%s", (int)(strrchr(other, '.') - other), other, dot2);
    CHECK(jwt_verify(tampered, jwks, &out, err, sizeof err) == JWT_BAD_SIGNATURE);
    CHECK(out == NULL);
    free(tampered);
    free(other);
    json_decref(forged);

    /* "none" and HMAC (key confusion) are refused by algorithm */
    static const char *const none_tokens[] = {
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", /* {"alg":"none"}.{"sub":"x"}. */
        "eyJhbGciOiJIUzI1NiIsImtpZCI6InIxIn0.eyJzdWIiOiJ4In0.c2ln", /* HS256 */
        "eyJraWQiOiJyMSJ9.eyJzdWIiOiJ4In0.c2ln",                    /* no alg */
    };
    for (int i = 0; i < 3; i++)
        CHECK(jwt_verify(none_tokens[i], jwks, &out, err, sizeof err) == JWT_BAD_ALG);

    /* malformed */
    static const char *const bad[] = {"",         "abc",         "a.b", "a.b.c.d", "!!.eyJ9.c2ln",
                                      "e30.e30.", "W10.e30.c2ln" /* header [] */};
    for (int i = 0; i < 7; i++)
        CHECK(jwt_verify(bad[i], jwks, &out, err, sizeof err) != JWT_OK);
    CHECK(jwt_verify(NULL, jwks, &out, err, sizeof err) == JWT_MALFORMED);
    char *huge = malloc(JWT_MAX_LEN + 2);
    memset(huge, 'A', JWT_MAX_LEN + 1);
    huge[JWT_MAX_LEN + 1] = '\0';
    CHECK(jwt_verify(huge, jwks, &out, err, sizeof err) == JWT_MALFORMED);
    free(huge);
    /* a signature part cut short */
    dot2[4] = '\0';
    CHECK(jwt_verify(token, jwks, &out, err, sizeof err) == JWT_BAD_SIGNATURE);
    /* a JWKS without keys */
    json_t *empty = json_pack("{s:[]}", "keys");
    CHECK(jwt_verify(none_tokens[0], empty, &out, err, sizeof err) == JWT_BAD_ALG);
    json_decref(empty);
    free(token);
    json_decref(header);
    json_decref(claims);
    json_decref(jwks);
}

static enum jwt_status claims_with(const char *key, json_t *value)
{
    json_t *c = good_claims();
    char err[200];
    if (value)
        json_object_set_new(c, key, value);
    else
        json_object_del(c, key);
    enum jwt_status st = jwt_check_id_token(c, &EXPECT, err, sizeof err);
    json_decref(c);
    return st;
}

static void test_claims(void)
{
    CHECK(claims_with("x", json_true()) == JWT_OK);
    CHECK(claims_with("iss", json_string("https://idp.example.org/")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("iss", NULL) == JWT_BAD_CLAIMS);
    CHECK(claims_with("sub", NULL) == JWT_BAD_CLAIMS);
    CHECK(claims_with("sub", json_string("")) == JWT_BAD_CLAIMS);
    /* aud: ours, as a string or in an array; several audiences need azp = us */
    CHECK(claims_with("aud", json_string("someone-else")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("aud", NULL) == JWT_BAD_CLAIMS);
    CHECK(claims_with("aud", json_pack("[s]", "accord")) == JWT_OK);
    CHECK(claims_with("aud", json_pack("[s,s]", "accord", "other")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("aud", json_pack("[s]", "other")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("aud", json_pack("[]")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("azp", json_string("other")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("azp", json_string("accord")) == JWT_OK);
    json_t *c = good_claims();
    char err[200];
    json_object_set_new(c, "aud", json_pack("[s,s]", "other", "accord"));
    json_object_set_new(c, "azp", json_string("accord"));
    CHECK(jwt_check_id_token(c, &EXPECT, err, sizeof err) == JWT_OK);
    json_decref(c);
    /* exp: past (beyond the skew) refused, within the skew accepted */
    CHECK(claims_with("exp", json_integer(NOW - 121)) == JWT_BAD_CLAIMS);
    CHECK(claims_with("exp", json_integer(NOW - 60)) == JWT_OK);
    CHECK(claims_with("exp", json_string("soon")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("exp", NULL) == JWT_BAD_CLAIMS);
    CHECK(claims_with("exp", json_real((double)NOW + 10.5)) == JWT_OK);
    /* iat: required, not in the future, not older than max_age */
    CHECK(claims_with("iat", NULL) == JWT_BAD_CLAIMS);
    CHECK(claims_with("iat", json_integer(NOW + 3600)) == JWT_BAD_CLAIMS);
    CHECK(claims_with("iat", json_integer(NOW - 3600)) == JWT_BAD_CLAIMS);
    CHECK(claims_with("nbf", json_integer(NOW + 3600)) == JWT_BAD_CLAIMS);
    CHECK(claims_with("nbf", json_integer(NOW - 10)) == JWT_OK);
    /* nonce: exactly this sign-in's */
    CHECK(claims_with("nonce", NULL) == JWT_BAD_CLAIMS);
    CHECK(claims_with("nonce", json_string("n-0S6_WzA2Mk")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("nonce", json_string("n-0S6_WzA2Mj-longer")) == JWT_BAD_CLAIMS);
    CHECK(claims_with("nonce", json_integer(1)) == JWT_BAD_CLAIMS);
}

int main(void)
{
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa2048b = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa2048 || !rsa2048b || !rsa1024 || !p256) {
        fprintf(stderr, "test_jwt: OpenSSL could not make the test keys\n");
        return 1;
    }
    RUN(test_base64url);
    RUN(test_signatures);
    RUN(test_refusals);
    RUN(test_claims);
    EVP_PKEY_free(rsa2048);
    EVP_PKEY_free(rsa2048b);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(p256);
    return check_summary("jwt");
}
