/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_s3_sign.c - SigV4 presigned URLs (server/s3_sign.c) against AWS's
 * published example: "Authenticating Requests: Using Query Parameters (AWS
 * Signature Version 4)", Amazon S3 API Reference, section "An Example",
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
 * (GET examplebucket/test.txt, 2013-05-24T00:00:00Z, 86400 s, us-east-1).
 * radosgw checks the same code's URLs in tests/http/t_s3.py.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "s3_sign.h"

static struct s3_target example(bool path_style)
{
    struct s3_target t;
    char err[128];
    memset(&t, 0, sizeof t);
    CHECK(s3_target_set_endpoint(&t, "https://s3.amazonaws.com", err, sizeof err) == 0);
    snprintf(t.region, sizeof t.region, "us-east-1");
    snprintf(t.bucket, sizeof t.bucket, "examplebucket");
    snprintf(t.access_key, sizeof t.access_key, "AKIAIOSFODNN7EXAMPLE");
    snprintf(t.secret_key, sizeof t.secret_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    t.path_style = path_style;
    return t;
}

static void test_aws_example(void)
{
    struct s3_target t = example(false);
    char url[S3_URL_MAX];
    check_current = "aws_example";
    /* 2013-05-24T00:00:00Z */
    CHECK(s3_presign(&t, "GET", "test.txt", NULL, 0, (time_t)1369353600, 86400, url, sizeof url) ==
          0);
    CHECK(strcmp(url, "https://examplebucket.s3.amazonaws.com/test.txt"
                      "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                      "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_"
                      "request"
                      "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                      "&X-Amz-Signature="
                      "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404") == 0);
}

static void test_params_sorted_and_path_style(void)
{
    struct s3_target t = example(true);
    struct s3_param p[] = {{"uploadId", "2~a b/c"}, {"partNumber", "7"}};
    char url[S3_URL_MAX];
    check_current = "params";
    CHECK(s3_presign(&t, "PUT", "uploads/x", p, 2, (time_t)1369353600, 60, url, sizeof url) == 0);
    {
        const char *want = "https://s3.amazonaws.com/examplebucket/uploads/x?X-Amz-Algorithm=";
        CHECK(strncmp(url, want, strlen(want)) == 0);
    }
    /* "partNumber" sorts before "uploadId" and after the X-Amz-* names ('X' < 'p'). */
    CHECK(strstr(url,
                 "X-Amz-SignedHeaders=host&partNumber=7&uploadId=2~a%20b%2Fc&X-Amz-Signature=") !=
          NULL);
    /* The signature changes with every signed part. */
    {
        char other[S3_URL_MAX];
        struct s3_param q[] = {{"uploadId", "2~a b/c"}, {"partNumber", "8"}};
        CHECK(s3_presign(&t, "PUT", "uploads/x", q, 2, (time_t)1369353600, 60, other,
                         sizeof other) == 0);
        CHECK(strcmp(strstr(url, "X-Amz-Signature="), strstr(other, "X-Amz-Signature=")) != 0);
    }
}

static void test_refusals(void)
{
    struct s3_target t = example(false);
    char url[S3_URL_MAX], small[40], err[128];
    check_current = "refusals";
    CHECK(s3_presign(&t, "GET", "k", NULL, 0, 0, 0, url, sizeof url) < 0);
    CHECK(s3_presign(&t, "GET", "k", NULL, 0, 0, S3_PRESIGN_MAX_EXPIRES + 1, url, sizeof url) < 0);
    CHECK(s3_presign(&t, "GET", "k", NULL, 0, 0, 60, small, sizeof small) < 0);
    CHECK(s3_target_set_endpoint(&t, "ftp://x", err, sizeof err) < 0);
    CHECK(s3_target_set_endpoint(&t, "http://h:1/bucket", err, sizeof err) < 0);
    CHECK(s3_target_set_endpoint(&t, "http://u:p@h:1", err, sizeof err) < 0);
    CHECK(s3_target_set_endpoint(&t, "http://127.0.0.1:7480", err, sizeof err) == 0);
    CHECK(strcmp(t.host, "127.0.0.1:7480") == 0 && strcmp(t.scheme, "http") == 0);
    CHECK(s3_bucket_name_ok("accord-evidence"));
    CHECK(!s3_bucket_name_ok("Accord"));
    CHECK(!s3_bucket_name_ok("ab"));
    CHECK(!s3_bucket_name_ok("a/b/c"));
}

int main(void)
{
    test_aws_example();
    test_params_sorted_and_path_style();
    test_refusals();
    return check_summary("s3_sign");
}
