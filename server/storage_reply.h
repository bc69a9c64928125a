/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storage_reply.h - HTTP answers about stored bytes: a storage failure as
 * the API's error shape, and the content of an S3-held artifact as a
 * redirect to a short-lived presigned GET.
 */
#ifndef ACCORD_STORAGE_REPLY_H
#define ACCORD_STORAGE_REPLY_H

#include <stdint.h>

#include "request.h"
#include "storage.h"

/*
 * 507 (full), 503 with Retry-After (the store is down: nothing was kept,
 * try again), 410 (the bytes are gone from the store), 500 (logged). what
 * says what failed, for the user ("the upload", "the evidence").
 */
void reply_storage_status(struct request *r, enum storage_status status, const char *what);

/*
 * The answer to GET /v1/artifacts/{id}/content once the database has
 * authorized and audited the read, for an artifact in S3: an offload thread
 * checks that the object is there (HEAD), then 302 to a presigned GET that
 * lives url_ttl seconds and makes the store answer with media_type and
 * disposition. Range requests (video seeking) go to the store with it.
 */
void storage_reply_s3_content(struct request *r, const char *sha256_hex, const char *object_key,
                              uint64_t bytes, const char *media_type, const char *disposition);

#endif
