/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storage_tus.c - tus part files on several servers (storage.h): under S3
 * every chunk is kept in the store as tus/<upload id>/<offset>, so a server
 * that did not take the first chunks rebuilds the part file from there.
 *
 * The chunks of an upload are a chain: the chunk at offset o has some length
 * n, the next one is at o + n. Leases (api_upload_begin) let one server write
 * an upload at a time, and a chunk is in the store before the database counts
 * it, so the chain from 0 reaches the counted offset. A chunk sent again at
 * the same offset replaces the one before. Whatever a chain walk cannot
 * reach (a server killed between its PUT and a shorter retry elsewhere) is
 * left to the bucket's lifecycle rule for tus/ (README: Scaling out).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "s3.h"
#include "storage.h"

#define HASH_BUFFER (1u << 20)
#define MAX_CHUNKS  100000 /* a bound on any chain walk */

static int chunk_key(const char *upload_id, uint64_t offset, char *out, size_t out_len)
{
    if (strlen(upload_id) != 36 || strspn(upload_id, "0123456789abcdef-") != 36)
        return -1;
    return (size_t)snprintf(out, out_len, "tus/%s/%" PRIu64, upload_id, offset) < out_len ? 0 : -1;
}

static enum storage_status from_s3(const struct s3_status *st)
{
    return st->outcome == S3_NOT_FOUND     ? STORAGE_GONE
           : st->outcome == S3_UNAVAILABLE ? STORAGE_UNAVAILABLE
                                           : STORAGE_FAILED;
}

/* The SHA-256 of len bytes of fd at from (x-amz-content-sha256: the store checks the bytes). */
static int hash_range(int fd, uint64_t from, uint64_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(HASH_BUFFER), d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    uint64_t done = 0;
    int rc = -1;
    if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
        goto cleanup;
    while (done < len) {
        size_t want = len - done < HASH_BUFFER ? (size_t)(len - done) : HASH_BUFFER;
        ssize_t got = pread(fd, buf, want, (off_t)(from + done));
        if (got <= 0 || !EVP_DigestUpdate(md, buf, (size_t)got))
            goto cleanup;
        done += (uint64_t)got;
    }
    if (!EVP_DigestFinal_ex(md, d, &dlen) || dlen != 32)
        goto cleanup;
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = '\0';
    rc = 0;
cleanup:
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

/* Fills the part file from pos up to offset with the chain's chunks. */
static enum storage_status rebuild(const struct storage *s, const char *upload_id, int fd,
                                   uint64_t pos, uint64_t offset, char *err, size_t err_len)
{
    char key[128];
    struct s3_status st;
    for (int n = 0; pos < offset; n++) {
        uint64_t got = 0;
        if (n >= MAX_CHUNKS || chunk_key(upload_id, pos, key, sizeof key) < 0) {
            snprintf(err, err_len, "upload %s: no chain of chunks to %" PRIu64, upload_id, offset);
            return STORAGE_GONE;
        }
        if (s3_get_to_fd(&s->s3, key, fd, pos, offset - pos, &got, &st) < 0) {
            snprintf(err, err_len, "rebuilding upload %s at %" PRIu64 ": %s", upload_id, pos,
                     st.message);
            /* (S3_FAILED: a chunk longer than what is counted, not the chain's) */
            return st.outcome == S3_FAILED ? STORAGE_GONE : from_s3(&st);
        }
        if (got == 0) {
            snprintf(err, err_len, "upload %s: an empty chunk at %" PRIu64, upload_id, pos);
            return STORAGE_GONE;
        }
        pos += got;
    }
    return STORAGE_OK;
}

enum storage_status storage_tus_resume(const struct storage *s, const char *upload_id,
                                       const char *path, uint64_t offset, char *err, size_t err_len)
{
    enum storage_status rc = STORAGE_FAILED;
    struct stat sb;
    uint64_t have = 0;
    /* (made only when it can be filled: never an empty stand-in for bytes elsewhere) */
    int fd = open(
        path, O_RDWR | O_CLOEXEC | (offset == 0 || s->backend == STORAGE_S3 ? O_CREAT : 0), 0640);

    if (fd < 0 && errno != ENOENT) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (fd >= 0) {
        if (fstat(fd, &sb) < 0) {
            snprintf(err, err_len, "cannot stat %s: %s", path, strerror(errno));
            goto cleanup;
        }
        have = (uint64_t)sb.st_size;
    }
    if (have == offset) {
        rc = STORAGE_OK;
        goto cleanup;
    }
    if (have > offset) { /* bytes the database never counted */
        if (ftruncate(fd, (off_t)offset) < 0) {
            snprintf(err, err_len, "cannot cut %s to %" PRIu64 ": %s", path, offset,
                     strerror(errno));
            goto cleanup;
        }
        rc = STORAGE_OK;
        goto cleanup;
    }
    if (s->backend != STORAGE_S3) {
        snprintf(err, err_len,
                 "%s has %" PRIu64 " of the %" PRIu64 " bytes counted: the rest is on another "
                 "server's disk (servers with ACCORD_STORAGE=local share one data directory)",
                 path, have, offset);
        rc = STORAGE_GONE;
        goto cleanup;
    }
    /* What this server took itself ends where a chunk of the chain begins; else from 0. */
    rc = rebuild(s, upload_id, fd, have, offset, err, err_len);
    if (rc == STORAGE_GONE && have > 0) {
        if (ftruncate(fd, 0) < 0) {
            snprintf(err, err_len, "cannot empty %s: %s", path, strerror(errno));
            rc = STORAGE_FAILED;
            goto cleanup;
        }
        rc = rebuild(s, upload_id, fd, 0, offset, err, err_len);
    }
    if (rc == STORAGE_OK && fsync(fd) < 0) {
        snprintf(err, err_len, "cannot fsync %s: %s", path, strerror(errno));
        rc = STORAGE_FAILED;
    }
    if (rc != STORAGE_OK && ftruncate(fd, 0) < 0)
        log_warn("upload %s: cannot empty %s after a failed rebuild", upload_id, path);
    if (rc == STORAGE_OK)
        log_info("upload %s: part file rebuilt from the store (%" PRIu64 " bytes)", upload_id,
                 offset);
cleanup:
    if (fd >= 0)
        close(fd);
    return rc;
}

enum storage_status storage_tus_chunk(const struct storage *s, const char *upload_id,
                                      const char *path, uint64_t from, uint64_t len, char *err,
                                      size_t err_len)
{
    char key[128], sha[65];
    struct s3_status st;
    enum storage_status rc = STORAGE_FAILED;
    int fd;

    if (s->backend != STORAGE_S3 || len == 0)
        return STORAGE_OK;
    if (chunk_key(upload_id, from, key, sizeof key) < 0) {
        snprintf(err, err_len, "bad upload id");
        return STORAGE_FAILED;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return STORAGE_FAILED;
    }
    if (hash_range(fd, from, len, sha) < 0) {
        snprintf(err, err_len, "cannot read back %s", path);
        goto cleanup;
    }
    if (s3_put_range(&s->s3, key, fd, from, len, sha, "application/octet-stream", &st) < 0) {
        snprintf(err, err_len, "%s", st.message);
        rc = from_s3(&st);
        goto cleanup;
    }
    rc = STORAGE_OK;
cleanup:
    close(fd);
    return rc;
}

void storage_tus_forget(const struct storage *s, const char *upload_id, uint64_t length)
{
    char key[128];
    struct s3_status st;
    uint64_t pos = 0;
    if (s->backend != STORAGE_S3)
        return;
    for (int n = 0; n < MAX_CHUNKS && pos < length; n++) {
        uint64_t size = 0;
        if (chunk_key(upload_id, pos, key, sizeof key) < 0)
            return;
        if (s3_head(&s->s3, key, &size, &st) < 0) {
            if (st.outcome != S3_NOT_FOUND)
                log_warn("upload %s: its chunks in the store stay from %" PRIu64 " on (%s); the "
                         "bucket's lifecycle rule for tus/ removes them",
                         upload_id, pos, st.message);
            return;
        }
        if (s3_delete(&s->s3, key, &st) < 0 && st.outcome != S3_NOT_FOUND) {
            log_warn("upload %s: chunk %s stays in the store (%s)", upload_id, key, st.message);
            return;
        }
        if (size == 0)
            return;
        pos += size;
    }
}
