/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3_sign.h - where an S3 object lives (endpoint, bucket, path or virtual-host
 * style) and presigned URLs for it: AWS Signature Version 4 in the query
 * string ("Authenticating Requests: Using Query Parameters"), computed with
 * OpenSSL's SHA-256 and HMAC.
 *
 * A presigned URL lets whoever holds it make one kind of request (a GET of
 * one object, a PUT of one part of one multipart upload) until it expires;
 * the store checks the signature, so the bytes never pass through accord.
 * Pure functions: no I/O, safe on the event loop and on any thread.
 */
#ifndef ACCORD_S3_SIGN_H
#define ACCORD_S3_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Longest presigned URL we build (AWS allows expiry up to 7 days). */
#define S3_URL_MAX             4096
#define S3_PRESIGN_MAX_EXPIRES (7L * 24 * 3600)

/* The store as one client sees it. */
struct s3_target {
    char scheme[8];  /* "http" or "https" */
    char host[256];  /* as in the Host header: "127.0.0.1:7480", "s3.amazonaws.com" */
    char region[64]; /* "us-east-1" */
    char bucket[64]; /* S3 bucket naming rules: 3-63 of [a-z0-9.-] */
    char access_key[128];
    char secret_key[256];
    bool path_style; /* http://host/bucket/key instead of http://bucket.host/key */
};

/* One query parameter of a presigned request (e.g. partNumber=3, uploadId=...). */
struct s3_param {
    const char *name;
    const char *value;
};

/*
 * Fills t's scheme and host from an endpoint URL ("http://127.0.0.1:7480",
 * "https://s3.eu-west-1.amazonaws.com"; libcurl's URL parser). The endpoint
 * has no path, query or credentials. Returns 0, or -1 with err.
 */
int s3_target_set_endpoint(struct s3_target *t, const char *endpoint, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Whether name follows S3's bucket naming rules (what we accept in settings). */
bool s3_bucket_name_ok(const char *name);

/*
 * The URL of key (path-style or virtual-hosted) without a query: what a
 * signed request goes to. Returns 0, or -1 when it does not fit.
 */
int s3_object_url(const struct s3_target *t, const char *key, char *out, size_t out_len)
    __attribute__((warn_unused_result));

/*
 * A presigned URL for METHOD on key, valid from now for expires seconds
 * (1 .. S3_PRESIGN_MAX_EXPIRES), with params (sorted here) added to the
 * query; only the Host header is signed, the payload is UNSIGNED-PAYLOAD.
 * Returns 0, or -1 when an argument is out of range or the URL does not fit.
 */
int s3_presign(const struct s3_target *t, const char *method, const char *key,
               const struct s3_param *params, size_t n_params, time_t now, long expires, char *out,
               size_t out_len) __attribute__((warn_unused_result));

/*
 * Percent-encodes s per SigV4 (RFC 3986 unreserved characters stay; '/' too
 * when keep_slash). Returns the length written, or -1 when it does not fit.
 */
int s3_uri_encode(const char *s, bool keep_slash, char *out, size_t out_len);

#endif
