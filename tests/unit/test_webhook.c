/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_webhook.c - server/webhook.c and the outbox's back-off:
 *   - the signature against the published Standard Webhooks example
 *     (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md
 *     and its libraries' tests: secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,
 *     msg_p5jXN8AQM9LWM0D4loKWxJek, 1614265330, {"test": 2432232314});
 *   - which addresses a delivery may not reach (IPv4, IPv6, v4-mapped);
 *   - the URL check for registration; secrets;
 *   - back-off: within [d/2, d) of the doubled base, capped, for many seeds,
 *     and the same draws for the same seed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "outbox.h"
#include "webhook.h"

static void test_published_signature(void)
{
    char sig[128];
    const char *body = "{\"test\": 2432232314}";
    CHECK(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                       1614265330, body, strlen(body), sig, sizeof sig) == 0);
    CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* any change of id, time or body changes it */
    CHECK(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                       1614265331, body, strlen(body), sig, sizeof sig) == 0);
    CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
    CHECK(webhook_sign("whsec_!!!", "m", 1, "x", 1, sig, sizeof sig) < 0);
    CHECK(webhook_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, "x", 1, sig, sizeof sig) < 0);
}

static int refused4(const char *a)
{
    struct sockaddr_in s = {.sin_family = AF_INET};
    inet_pton(AF_INET, a, &s.sin_addr);
    return webhook_address_refused((struct sockaddr *)&s);
}

static int refused6(const char *a)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return webhook_address_refused((struct sockaddr *)&s);
}

static void test_addresses(void)
{
    const char *bad4[] = {"127.0.0.1",      "127.255.0.9", "10.1.2.3",        "172.16.0.1",
                          "172.31.255.255", "192.168.0.1", "169.254.169.254", "100.64.0.1",
                          "0.0.0.0",        "224.0.0.1",   "255.255.255.255", "198.18.0.1",
                          "192.0.0.8"};
    const char *good4[] = {"8.8.8.8",     "172.32.0.1",    "172.15.255.255", "100.128.0.1",
                           "192.169.0.1", "93.184.216.34", "11.0.0.1"};
    const char *bad6[] = {"::1",          "::",      "fe80::1",          "fc00::1",
                          "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                          "::127.0.0.1",  "fec0::1", "64:ff9b::a00:1"};
    const char *good6[] = {"2001:4860:4860::8888", "2606:4700::1111", "::ffff:8.8.8.8"};
    for (size_t i = 0; i < sizeof bad4 / sizeof *bad4; i++)
        CHECK(refused4(bad4[i]));
    for (size_t i = 0; i < sizeof good4 / sizeof *good4; i++)
        CHECK(!refused4(good4[i]));
    for (size_t i = 0; i < sizeof bad6 / sizeof *bad6; i++)
        CHECK(refused6(bad6[i]));
    for (size_t i = 0; i < sizeof good6 / sizeof *good6; i++)
        CHECK(!refused6(good6[i]));
}

static void test_urls(void)
{
    char out[2100], why[200];
    CHECK(webhook_check_url("https://hr.example.org/accord?x=1", true, false, out, sizeof out, why,
                            sizeof why) == 0);
    CHECK_STR(out, "https://hr.example.org/accord?x=1");
    CHECK(webhook_check_url("http://hr.example.org/a", true, false, out, sizeof out, why,
                            sizeof why) < 0); /* production: https only */
    CHECK(webhook_check_url("http://hr.example.org/a", false, false, out, sizeof out, why,
                            sizeof why) == 0);
    CHECK(webhook_check_url("ftp://hr.example.org/a", false, false, out, sizeof out, why,
                            sizeof why) < 0);
    CHECK(webhook_check_url("https://u:p@hr.example.org/", false, false, out, sizeof out, why,
                            sizeof why) < 0);
    CHECK(webhook_check_url("https://127.0.0.1/", false, false, out, sizeof out, why, sizeof why) <
          0);
    CHECK(webhook_check_url("https://127.0.0.1/", false, true, out, sizeof out, why, sizeof why) ==
          0);
    CHECK(webhook_check_url("https://[::1]:8443/", false, false, out, sizeof out, why, sizeof why) <
          0);
    CHECK(webhook_check_url("https://LOCALHOST/", false, false, out, sizeof out, why, sizeof why) <
          0);
    CHECK(webhook_check_url("not a url", false, false, out, sizeof out, why, sizeof why) < 0);
    CHECK(webhook_check_url("https://", false, false, out, sizeof out, why, sizeof why) < 0);
}

static void test_secrets(void)
{
    char s1[WEBHOOK_SECRET_MAX], s2[WEBHOOK_SECRET_MAX];
    CHECK(webhook_new_secret(s1) == 0 && webhook_new_secret(s2) == 0);
    CHECK(webhook_secret_valid(s1) && strcmp(s1, s2) != 0);
    CHECK(webhook_secret_valid("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    CHECK(!webhook_secret_valid("whsec_c2hvcnQ=")); /* 5 bytes: too short */
    CHECK(!webhook_secret_valid("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    CHECK(!webhook_secret_valid(NULL));
}

static void test_backoff(void)
{
    /* every seed: retry n waits within [d/2, d) of d = base * 2^(n-1), capped */
    for (uint64_t seed = 0; seed < 1000; seed++) {
        uint64_t st = seed;
        for (long n = 1; n <= 20; n++) {
            double d = 0.1;
            for (long i = 1; i < n && d < 60; i++)
                d *= 2;
            if (d > 60)
                d = 60;
            double b = outbox_backoff(&st, n, 100, 60);
            CHECK(b >= d / 2 && b < d);
        }
    }
    /* the same seed, the same draws; another seed, others */
    uint64_t a = 42, b = 42, c = 43;
    double x = outbox_backoff(&a, 3, 1000, 3600), y = outbox_backoff(&b, 3, 1000, 3600);
    CHECK(x == y);
    CHECK(outbox_backoff(&c, 3, 1000, 3600) != x);
}

int main(void)
{
    RUN(test_published_signature);
    RUN(test_addresses);
    RUN(test_urls);
    RUN(test_secrets);
    RUN(test_backoff);
    return check_summary("webhook");
}
