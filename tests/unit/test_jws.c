/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_jws.c - server/jws.c: base64url, RS256 keys, signing and verifying
 * compact JWS, with OpenSSL doing the cryptography.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jws.h"

static void test_b64url_round_trip(void)
{
    unsigned char data[64];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 250); /* bytes that give '+' and '/' in base64 */
    for (size_t len = 0; len <= sizeof data; len++) {
        char *text = jws_b64url_encode(data, len);
        size_t n = 999;
        unsigned char *back = text ? jws_b64url_decode(text, strlen(text), &n) : NULL;
        CHECK(text && !strpbrk(text, "+/="));
        CHECK(back && n == len && memcmp(back, data, len) == 0);
        free(text);
        free(back);
    }
}

static void test_b64url_refuses_other_alphabets(void)
{
    size_t n;
    CHECK(jws_b64url_decode("ab+c", 4, &n) == NULL);
    CHECK(jws_b64url_decode("ab/c", 4, &n) == NULL);
    CHECK(jws_b64url_decode("abc=", 4, &n) == NULL);
    CHECK(jws_b64url_decode("abcde", 5, &n) == NULL); /* 5 mod 4 == 1 is never base64 */
    CHECK(jws_b64url_decode("a*cd", 4, &n) == NULL);
}

static void test_sign_verify(void)
{
    EVP_PKEY *key = jws_key_generate(), *pub = NULL, *other = jws_key_generate();
    char *pem = key ? jws_key_public_pem(key) : NULL;
    json_t *header = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "kid", "k1", "typ", "JWT");
    json_t *payload = json_pack("{s:s,s:i}", "name", "Morning Meeting", "nbf", 1700000000);
    json_t *jwk = key ? jws_key_public_jwk(key) : NULL, *got;
    char *jwt = NULL, err[120];

    CHECK(key && other && pem && strstr(pem, "BEGIN PUBLIC KEY"));
    pub = pem ? jws_key_from_public_pem(pem) : NULL;
    CHECK(pub != NULL);
    CHECK(jwk && strcmp(json_string_value(json_object_get(jwk, "kty")), "RSA") == 0 &&
          json_object_get(jwk, "d") == NULL);
    CHECK(jwk && strcmp(json_string_value(json_object_get(jwk, "e")), "AQAB") == 0);
    jwt = key ? jws_sign_rs256(key, header, payload) : NULL;
    CHECK(jwt != NULL);
    if (jwt && pub) {
        got = jws_verify_rs256(pub, jwt, err, sizeof err);
        CHECK(got && json_equal(got, payload));
        json_decref(got);
        /* RS256 (PKCS #1 v1.5) is deterministic: signing again gives the same bytes */
        char *again = jws_sign_rs256(key, header, payload);
        CHECK(again && strcmp(again, jwt) == 0);
        free(again);
        /* another key, a changed payload, a changed signature: refused */
        CHECK(jws_verify_rs256(other, jwt, err, sizeof err) == NULL);
        char *dot = strchr(jwt, '.');
        dot[1] = dot[1] == 'e' ? 'f' : 'e';
        CHECK(jws_verify_rs256(pub, jwt, err, sizeof err) == NULL);
        dot[1] = dot[1] == 'e' ? 'f' : 'e';
        char *last = strrchr(jwt, '.');
        last[1] = last[1] == 'A' ? 'B' : 'A';
        CHECK(jws_verify_rs256(pub, jwt, err, sizeof err) == NULL);
        CHECK(jws_verify_rs256(pub, "a.b", err, sizeof err) == NULL);
        CHECK(jws_verify_rs256(pub, "a.b.c.d", err, sizeof err) == NULL);
    }
    json_t *none = json_pack("{s:s}", "alg", "none");
    char *unsigned_jwt = key ? jws_sign_rs256(key, none, payload) : NULL;
    CHECK(unsigned_jwt && pub && jws_verify_rs256(pub, unsigned_jwt, err, sizeof err) == NULL);
    free(unsigned_jwt);
    json_decref(none);
    free(jwt);
    free(pem);
    json_decref(jwk);
    json_decref(header);
    json_decref(payload);
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(other);
}

int main(void)
{
    RUN(test_b64url_round_trip);
    RUN(test_b64url_refuses_other_alphabets);
    RUN(test_sign_verify);
    return check_summary("jws");
}
