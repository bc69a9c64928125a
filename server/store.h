/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.h - the content-addressed artifact store on disk.
 *
 * A file's name is the hex SHA-256 of its bytes, under a two-character
 * fan-out directory: ROOT/ab/ab12...ef. Identical uploads share one file.
 * Writes go to ROOT/tmp/, are fsynced, renamed into place and the directory
 * fsynced, so a file is either absent or complete: a crash or an aborted
 * upload leaves at most a temporary file, which store_init() removes.
 *
 * store_put_*() block on the disk: call them from an offload thread.
 */
#ifndef ACCORD_STORE_H
#define ACCORD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "sha256_midstate.h"

/*
 * Creates ROOT, ROOT/tmp and ROOT/uploads (resumable uploads' part files) if
 * needed and empties ROOT/tmp. Returns 0, or -1 with err.
 */
int store_init(const char *root, char *err, size_t err_len) __attribute__((warn_unused_result));

/*
 * Writes the bytes of data (not drained) into the store. On success returns 0
 * and fills sha256_hex (65 bytes) and *bytes; on failure -1 with err.
 */
int store_put_evbuffer(const char *root, struct evbuffer *data, char sha256_hex[65],
                       uint64_t *bytes, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/*
 * Hashes the file at path (streaming SHA-256). Returns 0 and fills sha256_hex
 * (65 bytes) and *bytes, or -1 with err.
 */
int store_hash_file(const char *path, char sha256_hex[65], uint64_t *bytes, char *err,
                    size_t err_len) __attribute__((warn_unused_result));

/*
 * Moves the file src_path (on the same file system as ROOT, e.g. under
 * ROOT/uploads), whose bytes are already fsynced and hash to sha256_hex
 * (taken as they were written: the file is not read again), into the store:
 * checks its size is `bytes`, renames it to ROOT/ab/<sha> and fsyncs that
 * directory. When the store already holds the hash, src_path is unlinked
 * instead. Returns 0 (src_path is gone), or -1 with err and src_path is left
 * as it was.
 */
int store_put_file(const char *root, const char *src_path, const char *sha256_hex, uint64_t bytes,
                   char *err, size_t err_len) __attribute__((warn_unused_result));

/*
 * Writes every byte of data (not drained) to fd from offset, with few large
 * pwritev calls (a slice of up to 8 MiB of the buffer's chains each). With
 * start_flush, each slice's writeback starts at once (sync_file_range), so
 * the disk works while the next slice is copied; the caller's fsync then
 * waits only for what is left. Feeds sha too when not NULL: for
 * STORE_HASH_THREAD_BYTES or more, on a thread of its own that runs beside
 * the writes and is joined before this returns (on failure too; sha then
 * holds all of data, whatever was written). *written counts what was
 * written. Returns 0, or -1 with errno set. Blocks: offload threads only.
 */
#define STORE_HASH_THREAD_BYTES (4u << 20)
int store_write_evbuffer(int fd, struct evbuffer *data, uint64_t offset, bool start_flush,
                         struct sha256_midstate *sha, uint64_t *written)
    __attribute__((warn_unused_result));

/* fsyncs the directory at path (a new file's name). Returns 0, or -1 with errno. */
int store_sync_dir(const char *path) __attribute__((warn_unused_result));

/* The path of the file with this hash. Returns 0, or -1 if it does not fit or the hash is
 * malformed. */
int store_path(const char *root, const char *sha256_hex, char *out, size_t out_len)
    __attribute__((warn_unused_result));

/* The errno of this thread's last failed store_put_*(), e.g. ENOSPC. */
int store_last_errno(void);

/* Whether err means the disk (or the quota) is full: answer 507, not 500. */
bool store_errno_is_full(int err);

/* Bytes free for this process on ROOT's file system. Returns 0, or -1. */
int store_free_bytes(const char *root, uint64_t *out) __attribute__((warn_unused_result));

#endif
