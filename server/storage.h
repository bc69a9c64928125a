/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storage.h - where evidence bytes live: the interface the handlers use, and
 * its two backends, chosen at start by ACCORD_STORAGE.
 *
 *   local  the content-addressed directory of store.h (the default): bytes
 *          pass through accord, which serves them itself (ranges, sendfile).
 *   s3     an S3-compatible bucket (AWS S3, Ceph RGW, MinIO, GCS's XML API):
 *          an artifact is the object sha256/<hex> (content-addressed, from
 *          POST /v1/artifacts and tus) or uploads/<upload id> (a presigned
 *          multipart upload, s3_uploads.c). Large bytes go between the
 *          browser and the store with presigned URLs; accord signs, records
 *          and checks.
 *
 * Which object holds an artifact: its row's object_key when set (multipart
 * uploads), else sha256/<hex> (S3) or ROOT/ab/<hex> (local). So a local store
 * moves to S3 by copying ROOT/ab/<hex> to sha256/<hex>.
 *
 * Functions marked BLOCKS run on offload threads only.
 */
#ifndef ACCORD_STORAGE_H
#define ACCORD_STORAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "config.h"
#include "s3_sign.h"

enum storage_backend { STORAGE_LOCAL, STORAGE_S3 };

/* What an operation came to, as the HTTP answer needs it. */
enum storage_status {
    STORAGE_OK,
    STORAGE_FULL,        /* 507: the disk (or the reserve) is full */
    STORAGE_UNAVAILABLE, /* 503 + Retry-After: the store did not answer; nothing was kept */
    STORAGE_GONE,        /* 410: the bytes are not in the store any more */
    STORAGE_FAILED,      /* 500: logged */
};

/* Seconds a client should wait after STORAGE_UNAVAILABLE. */
#define STORAGE_RETRY_AFTER "30"

struct storage {
    enum storage_backend backend;
    char root[1024];            /* the data directory: the local store; tus part files under S3 */
    uint64_t reserve;           /* bytes kept free on root's disk (--storage-reserve) */
    struct s3_target s3;        /* how accord reaches the store */
    struct s3_target s3_public; /* how browsers reach it: presigned URLs name this host */
    long url_ttl;               /* seconds a presigned URL is valid */
    uint64_t part_size;         /* multipart uploads: bytes per part (the last may be shorter) */
};

/*
 * Reads ACCORD_STORAGE and, for s3, ACCORD_S3_* (storage_usage lists them) and
 * prepares the backend: the local directory (store_init), or the S3 settings
 * (checked; the store itself may be down at start: calls then answer 503).
 * Returns 0, or -1 with err naming the setting.
 */
int storage_open(struct storage *s, const struct config *cfg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The settings above, for --help. */
void storage_usage(FILE *out);

const char *storage_backend_name(const struct storage *s);

/* The S3 key of an artifact: object_key when set, else sha256/<hex>. Returns 0 or -1. */
int storage_artifact_key(const char *sha256_hex, const char *object_key, char *out, size_t out_len)
    __attribute__((warn_unused_result));

/*
 * Stores the bytes of data (local: not drained; S3: drained as sent) under
 * their SHA-256: fills sha256_hex and *bytes. BLOCKS.
 */
enum storage_status storage_put_evbuffer(const struct storage *s, struct evbuffer *data,
                                         const char *media_type, char sha256_hex[65],
                                         uint64_t *bytes, char *err, size_t err_len);

/*
 * Moves the finished file at path (under root, e.g. a tus part file), of
 * `bytes` bytes whose SHA-256 is sha256_hex (taken as they were written: the
 * file is not read to hash it again), into the store under that hash; path
 * is gone on success, untouched on failure. S3 checks the hash as it
 * receives the bytes. BLOCKS.
 */
enum storage_status storage_put_file(const struct storage *s, const char *path,
                                     const char *media_type, const char *sha256_hex, uint64_t bytes,
                                     char *err, size_t err_len);

/* Removes the content-addressed bytes sha256_hex (an orphan after a failed insert). BLOCKS. */
enum storage_status storage_remove(const struct storage *s, const char *sha256_hex, char *err,
                                   size_t err_len);

/*
 * Whether the artifact's bytes are in the store with the size its row says:
 * STORAGE_OK, STORAGE_GONE (absent or another size), STORAGE_UNAVAILABLE.
 * BLOCKS.
 */
enum storage_status storage_check(const struct storage *s, const char *sha256_hex,
                                  const char *object_key, uint64_t bytes, char *err,
                                  size_t err_len);

/*
 * A presigned GET of key for browsers, valid url_ttl seconds, that makes the
 * store answer with this Content-Type and Content-Disposition. Returns 0 or -1.
 */
int storage_presign_get(const struct storage *s, const char *key, const char *media_type,
                        const char *disposition, char *out, size_t out_len)
    __attribute__((warn_unused_result));

/*
 * tus part files (handlers_upload.c) on several servers. A part file lives on
 * the disk of the server that took the chunks; under S3 each chunk is also
 * put in the store, as tus/<upload id>/<offset>, before the database counts
 * it, so that any server can rebuild the part file and go on (the first
 * chunk on A, the rest on B). The local backend keeps part files on the data
 * directory only: several servers need it shared (it holds the store too).
 */

/*
 * Makes the part file at path hold the upload's first offset bytes: nothing
 * to do when it has them; cut back when it has more (bytes never counted);
 * rebuilt from the chunks in the store when it has fewer (S3).
 * STORAGE_GONE: the bytes are not here (local: another server's disk) or not
 * all in the store; STORAGE_UNAVAILABLE: the store did not answer. BLOCKS.
 */
enum storage_status storage_tus_resume(const struct storage *s, const char *upload_id,
                                       const char *path, uint64_t offset, char *err,
                                       size_t err_len);

/* The chunk [from, from + len) of the part file, written and fsynced, into the store (S3). BLOCKS.
 */
enum storage_status storage_tus_chunk(const struct storage *s, const char *upload_id,
                                      const char *path, uint64_t from, uint64_t len, char *err,
                                      size_t err_len);

/*
 * The upload is stored or gone: its chunks leave the store (S3; best effort,
 * logged; length: the upload's length, or UINT64_MAX when unknown). BLOCKS.
 */
void storage_tus_forget(const struct storage *s, const char *upload_id, uint64_t length);

#endif
