/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3.h - the S3 calls accord makes itself (libcurl, signed by libcurl's
 * CURLOPT_AWS_SIGV4): objects (PUT, HEAD, DELETE, a hashing GET) and
 * multipart uploads (create, list parts, complete, abort).
 *
 * Every call BLOCKS: run them on an offload thread, never on an event loop.
 * Every call is bounded: a connect timeout, a stall timeout for transfers
 * (LOW_SPEED), a total timeout for small calls and a cap on answer bodies.
 * Answers' XML is read with libxml2 (no network, no entity expansion).
 */
#ifndef ACCORD_S3_H
#define ACCORD_S3_H

#include <stdint.h>

#include <event2/buffer.h>

#include "s3_sign.h"

/* What became of a call, as callers need to tell it apart. */
enum s3_outcome {
    S3_OK,
    S3_NOT_FOUND,   /* 404: NoSuchKey, NoSuchUpload, NoSuchBucket */
    S3_UNAVAILABLE, /* no answer, a timeout, 5xx, 503 SlowDown: try again later */
    S3_REFUSED,     /* another 4xx: our request or our settings are wrong */
    S3_FAILED,      /* a local failure (memory, a file) */
};

struct s3_status {
    enum s3_outcome outcome;
    long http;         /* the store's status, 0 without an answer */
    char code[64];     /* the store's error Code ("NoSuchKey"), "" */
    char message[256]; /* for the log: what happened, never shown to users */
};

#define S3_UPLOAD_ID_MAX 256
#define S3_MAX_PARTS     10000 /* S3's limit on parts per multipart upload */
#define S3_ETAG_MAX      80

struct s3_part {
    int number;
    uint64_t size;
    char etag[S3_ETAG_MAX]; /* as the store quotes it: "\"9b2cf5...\"" */
};

/* Once, on the main thread before any other thread calls (libxml2's parser). */
void s3_global_init(void);

/*
 * PUT key from the open file fd (size bytes from offset 0) or from data
 * (drained), with its SHA-256 as x-amz-content-sha256 so that the store
 * refuses bytes that changed on the way.
 */
int s3_put_fd(const struct s3_target *t, const char *key, int fd, uint64_t size,
              const char *sha256_hex, const char *media_type, struct s3_status *st);
int s3_put_evbuffer(const struct s3_target *t, const char *key, struct evbuffer *data,
                    const char *sha256_hex, const char *media_type, struct s3_status *st);

/* PUT key from size bytes of fd at offset (a chunk of a file). */
int s3_put_range(const struct s3_target *t, const char *key, int fd, uint64_t offset, uint64_t size,
                 const char *sha256_hex, const char *media_type, struct s3_status *st);

/*
 * GET key into the file fd at offset (pwrite): *size bytes. An object of more
 * than max bytes fails (S3_UNAVAILABLE: the transfer is cut), with nothing
 * written past offset + max.
 */
int s3_get_to_fd(const struct s3_target *t, const char *key, int fd, uint64_t offset, uint64_t max,
                 uint64_t *size, struct s3_status *st);

/* HEAD key: *size when found. */
int s3_head(const struct s3_target *t, const char *key, uint64_t *size, struct s3_status *st);

int s3_delete(const struct s3_target *t, const char *key, struct s3_status *st);

/* GET key, hashing it as it streams (nothing is kept): its SHA-256 and size. */
int s3_hash_object(const struct s3_target *t, const char *key, char sha256_hex[65], uint64_t *size,
                   struct s3_status *st);

int s3_multipart_create(const struct s3_target *t, const char *key, const char *media_type,
                        char upload_id[S3_UPLOAD_ID_MAX], struct s3_status *st);

/* Every part the store holds for upload_id (pages through ListParts); at most cap. */
int s3_multipart_list(const struct s3_target *t, const char *key, const char *upload_id,
                      struct s3_part *parts, size_t cap, size_t *n, struct s3_status *st);

/* parts in ascending order of number, each with the store's ETag. */
int s3_multipart_complete(const struct s3_target *t, const char *key, const char *upload_id,
                          const struct s3_part *parts, size_t n, struct s3_status *st);

int s3_multipart_abort(const struct s3_target *t, const char *key, const char *upload_id,
                       struct s3_status *st);

/* All the functions above return 0 when st->outcome is S3_OK, else -1. */

#endif
