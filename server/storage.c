/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storage.c - the settings of the two backends and the operations every
 * handler uses, each dispatching to store.c (local) or s3.c (S3).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "s3.h"
#include "storage.h"
#include "store.h"

#define DEFAULT_URL_TTL   300L
#define DEFAULT_PART_SIZE (16ULL << 20)
#define MIN_PART_SIZE     (5ULL << 20) /* S3's minimum for every part but the last */
#define MAX_PART_SIZE     (5ULL << 30)

void storage_usage(FILE *out)
{
    fputs(
        "Evidence storage (environment only; the secret never goes on a command line):\n"
        "  ACCORD_STORAGE            local (default: the data directory) or s3\n"
        "  ACCORD_S3_ENDPOINT        how accord reaches the store, e.g. http://127.0.0.1:7480\n"
        "  ACCORD_S3_PUBLIC_ENDPOINT how browsers reach it, in presigned URLs (default: the "
        "endpoint)\n"
        "  ACCORD_S3_REGION          (default us-east-1)\n"
        "  ACCORD_S3_BUCKET          the bucket (it must exist)\n"
        "  ACCORD_S3_ACCESS_KEY      access key id\n"
        "  ACCORD_S3_SECRET_KEY      secret key, or ACCORD_S3_SECRET_KEY_FILE: a file holding it\n"
        "  ACCORD_S3_PATH_STYLE      1 (default: http://host/bucket/key) or 0 "
        "(http://bucket.host/key)\n"
        "  ACCORD_S3_URL_TTL         seconds a presigned URL is valid (default 300; 10-43200)\n"
        "  ACCORD_S3_PART_SIZE       bytes per part of a multipart upload (default 16 MiB;\n"
        "                            5 MiB-5 GiB)\n",
        out);
}

const char *storage_backend_name(const struct storage *s)
{
    return s->backend == STORAGE_S3 ? "s3" : "local";
}

static int env_copy(const char *name, char *out, size_t out_len, bool required, char *err,
                    size_t err_len)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        if (required) {
            snprintf(err, err_len, "ACCORD_STORAGE=s3 needs %s", name);
            return -1;
        }
        return 0;
    }
    if (strlen(v) >= out_len) {
        snprintf(err, err_len, "%s is too long (at most %zu bytes)", name, out_len - 1);
        return -1;
    }
    strcpy(out, v);
    return 0;
}

static int env_number(const char *name, unsigned long long def, unsigned long long min,
                      unsigned long long max, unsigned long long *out, char *err, size_t err_len)
{
    const char *v = getenv(name);
    char *end;
    unsigned long long n;
    *out = def;
    if (!v || !*v)
        return 0;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max) {
        snprintf(err, err_len, "%s: '%s' is not a whole number from %llu to %llu", name, v, min,
                 max);
        return -1;
    }
    *out = n;
    return 0;
}

/* The secret from ACCORD_S3_SECRET_KEY or the first line of ACCORD_S3_SECRET_KEY_FILE. */
static int load_secret(char *out, size_t out_len, char *err, size_t err_len)
{
    const char *path = getenv("ACCORD_S3_SECRET_KEY_FILE");
    FILE *f;
    size_t n;
    if (!path || !*path)
        return env_copy("ACCORD_S3_SECRET_KEY", out, out_len, true, err, err_len);
    f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_len, "ACCORD_S3_SECRET_KEY_FILE %s: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(out, (int)out_len, f))
        out[0] = '\0';
    fclose(f);
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    if (n == 0 || n >= out_len - 1) {
        snprintf(err, err_len, "ACCORD_S3_SECRET_KEY_FILE %s: no secret of 1 to %zu bytes", path,
                 out_len - 2);
        return -1;
    }
    return 0;
}

static int open_s3(struct storage *s, char *err, size_t err_len)
{
    char endpoint[512] = "", public_endpoint[512] = "", path_style[8] = "1";
    unsigned long long ttl, part;
    struct s3_target *t = &s->s3;

    snprintf(t->region, sizeof t->region, "us-east-1");
    if (env_copy("ACCORD_S3_ENDPOINT", endpoint, sizeof endpoint, true, err, err_len) < 0 ||
        env_copy("ACCORD_S3_PUBLIC_ENDPOINT", public_endpoint, sizeof public_endpoint, false, err,
                 err_len) < 0 ||
        env_copy("ACCORD_S3_REGION", t->region, sizeof t->region, false, err, err_len) < 0 ||
        env_copy("ACCORD_S3_BUCKET", t->bucket, sizeof t->bucket, true, err, err_len) < 0 ||
        env_copy("ACCORD_S3_ACCESS_KEY", t->access_key, sizeof t->access_key, true, err, err_len) <
            0 ||
        load_secret(t->secret_key, sizeof t->secret_key, err, err_len) < 0 ||
        env_copy("ACCORD_S3_PATH_STYLE", path_style, sizeof path_style, false, err, err_len) < 0 ||
        env_number("ACCORD_S3_URL_TTL", DEFAULT_URL_TTL, 10, 43200, &ttl, err, err_len) < 0 ||
        env_number("ACCORD_S3_PART_SIZE", DEFAULT_PART_SIZE, MIN_PART_SIZE, MAX_PART_SIZE, &part,
                   err, err_len) < 0)
        return -1;
    if (strcmp(path_style, "0") != 0 && strcmp(path_style, "1") != 0) {
        snprintf(err, err_len, "ACCORD_S3_PATH_STYLE must be 0 or 1");
        return -1;
    }
    t->path_style = path_style[0] == '1';
    if (!s3_bucket_name_ok(t->bucket)) {
        snprintf(err, err_len,
                 "ACCORD_S3_BUCKET '%s' is not an S3 bucket name (3-63 of a-z 0-9 . -)", t->bucket);
        return -1;
    }
    for (const char *p = t->region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            snprintf(err, err_len, "ACCORD_S3_REGION '%s' is not a region name", t->region);
            return -1;
        }
    if (s3_target_set_endpoint(t, endpoint, err, err_len) < 0)
        return -1;
    s->s3_public = *t;
    if (public_endpoint[0] &&
        s3_target_set_endpoint(&s->s3_public, public_endpoint, err, err_len) < 0)
        return -1;
    s->url_ttl = (long)ttl;
    s->part_size = part;
    s3_global_init();
    return 0;
}

int storage_open(struct storage *s, const struct config *cfg, char *err, size_t err_len)
{
    const char *backend = getenv("ACCORD_STORAGE");
    memset(s, 0, sizeof *s);
    snprintf(s->root, sizeof s->root, "%s", cfg->data_dir);
    s->reserve = cfg->storage_reserve > 0 ? (uint64_t)cfg->storage_reserve : 0;
    /* The data directory stays: the local store, and tus part files under either backend. */
    if (store_init(cfg->data_dir, err, err_len) < 0)
        return -1;
    if (!backend || !*backend || strcmp(backend, "local") == 0) {
        s->backend = STORAGE_LOCAL;
        return 0;
    }
    if (strcmp(backend, "s3") != 0) {
        snprintf(err, err_len, "ACCORD_STORAGE must be local or s3, not '%s'", backend);
        return -1;
    }
    s->backend = STORAGE_S3;
    return open_s3(s, err, err_len);
}

int storage_artifact_key(const char *sha256_hex, const char *object_key, char *out, size_t out_len)
{
    if (object_key && *object_key)
        return (size_t)snprintf(out, out_len, "%s", object_key) < out_len ? 0 : -1;
    if (!sha256_hex || strlen(sha256_hex) != 64 || strspn(sha256_hex, "0123456789abcdef") != 64)
        return -1;
    return (size_t)snprintf(out, out_len, "sha256/%s", sha256_hex) < out_len ? 0 : -1;
}

static enum storage_status from_s3(const struct s3_status *st, char *err, size_t err_len)
{
    snprintf(err, err_len, "%s", st->message);
    switch (st->outcome) {
    case S3_OK:
        return STORAGE_OK;
    case S3_NOT_FOUND:
        return STORAGE_GONE;
    case S3_UNAVAILABLE:
        return STORAGE_UNAVAILABLE;
    default:
        return STORAGE_FAILED;
    }
}

static void hex_digest(EVP_MD_CTX *md, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md, d, &len);
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = '\0';
}

/* The SHA-256 of data without copying or draining it. */
static int hash_evbuffer(struct evbuffer *data, char out[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v;
    int rc = -1;
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
        goto cleanup;
    evbuffer_ptr_set(data, &pos, 0, EVBUFFER_PTR_SET);
    while (evbuffer_peek(data, -1, &pos, &v, 1) > 0) {
        if (!EVP_DigestUpdate(md, v.iov_base, v.iov_len))
            goto cleanup;
        if (evbuffer_ptr_set(data, &pos, v.iov_len, EVBUFFER_PTR_ADD) < 0)
            break;
    }
    hex_digest(md, out);
    rc = 0;
cleanup:
    EVP_MD_CTX_free(md);
    return rc;
}

/* Content-addressed: when the store holds these bytes already, nothing is sent. */
static bool s3_has(const struct storage *s, const char *key, uint64_t size)
{
    struct s3_status st;
    uint64_t have = 0;
    return s3_head(&s->s3, key, &have, &st) == 0 && have == size;
}

static enum storage_status local_status(char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    return store_errno_is_full(store_last_errno()) ? STORAGE_FULL : STORAGE_FAILED;
}

enum storage_status storage_put_evbuffer(const struct storage *s, struct evbuffer *data,
                                         const char *media_type, char sha256_hex[65],
                                         uint64_t *bytes, char *err, size_t err_len)
{
    struct s3_status st;
    char key[128];
    uint64_t len = evbuffer_get_length(data);

    if (s->backend == STORAGE_LOCAL) {
        uint64_t free_bytes;
        /* Uploads stop at half the reserve, so the database and logs keep room. */
        if (store_free_bytes(s->root, &free_bytes) == 0 && free_bytes < len + s->reserve / 2) {
            snprintf(err, err_len, "%llu bytes free, an upload of %llu would go into the reserve",
                     (unsigned long long)free_bytes, (unsigned long long)len);
            return STORAGE_FULL;
        }
        if (store_put_evbuffer(s->root, data, sha256_hex, bytes, err, err_len) < 0)
            return local_status(err, err_len);
        return STORAGE_OK;
    }
    if (hash_evbuffer(data, sha256_hex) < 0 ||
        storage_artifact_key(sha256_hex, NULL, key, sizeof key) < 0) {
        snprintf(err, err_len, "cannot hash the upload");
        return STORAGE_FAILED;
    }
    *bytes = len;
    if (s3_has(s, key, len))
        return STORAGE_OK;
    s3_put_evbuffer(&s->s3, key, data, sha256_hex, media_type, &st);
    return from_s3(&st, err, err_len);
}

enum storage_status storage_put_file(const struct storage *s, const char *path,
                                     const char *media_type, const char *sha256_hex, uint64_t bytes,
                                     char *err, size_t err_len)
{
    struct s3_status st;
    struct stat sb;
    char key[128];
    int fd;

    if (s->backend == STORAGE_LOCAL) {
        if (store_put_file(s->root, path, sha256_hex, bytes, err, err_len) < 0)
            return local_status(err, err_len);
        return STORAGE_OK;
    }
    if (storage_artifact_key(sha256_hex, NULL, key, sizeof key) < 0) {
        snprintf(err, err_len, "bad hash");
        return STORAGE_FAILED;
    }
    if (!s3_has(s, key, bytes)) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != bytes) {
            snprintf(err, err_len, "cannot open %s, or it is not %llu bytes: %s", path,
                     (unsigned long long)bytes, strerror(errno));
            if (fd >= 0)
                close(fd);
            return STORAGE_FAILED;
        }
        /* signed with the hash: the store refuses bytes that do not match it */
        s3_put_fd(&s->s3, key, fd, bytes, sha256_hex, media_type, &st);
        close(fd);
        if (st.outcome != S3_OK)
            return from_s3(&st, err, err_len);
    }
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s after storing it: %s", path, strerror(errno));
    return STORAGE_OK;
}

enum storage_status storage_remove(const struct storage *s, const char *sha256_hex, char *err,
                                   size_t err_len)
{
    char path[4096];
    struct s3_status st;
    if (s->backend == STORAGE_LOCAL) {
        if (store_path(s->root, sha256_hex, path, sizeof path) < 0) {
            snprintf(err, err_len, "bad hash");
            return STORAGE_FAILED;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            snprintf(err, err_len, "cannot remove %s: %s", path, strerror(errno));
            return STORAGE_FAILED;
        }
        return STORAGE_OK;
    }
    if (storage_artifact_key(sha256_hex, NULL, path, sizeof path) < 0) {
        snprintf(err, err_len, "bad hash");
        return STORAGE_FAILED;
    }
    s3_delete(&s->s3, path, &st);
    return from_s3(&st, err, err_len);
}

enum storage_status storage_check(const struct storage *s, const char *sha256_hex,
                                  const char *object_key, uint64_t bytes, char *err, size_t err_len)
{
    char key[2048];
    struct s3_status st;
    uint64_t have = 0;
    struct stat sb;

    if (s->backend == STORAGE_LOCAL || !(object_key && *object_key)) {
        if (s->backend == STORAGE_LOCAL) {
            if (object_key && *object_key) {
                snprintf(err, err_len,
                         "the artifact is in object storage, and this server "
                         "uses the local store (ACCORD_STORAGE)");
                return STORAGE_GONE;
            }
            if (store_path(s->root, sha256_hex, key, sizeof key) < 0 || stat(key, &sb) < 0 ||
                (uint64_t)sb.st_size != bytes) {
                snprintf(err, err_len, "%s is missing or has another size", key);
                return STORAGE_GONE;
            }
            return STORAGE_OK;
        }
    }
    if (storage_artifact_key(sha256_hex, object_key, key, sizeof key) < 0) {
        snprintf(err, err_len, "the artifact's row names no object");
        return STORAGE_FAILED;
    }
    if (s3_head(&s->s3, key, &have, &st) < 0)
        return from_s3(&st, err, err_len);
    if (have != bytes) {
        snprintf(err, err_len, "%s has %llu bytes, its row says %llu", key,
                 (unsigned long long)have, (unsigned long long)bytes);
        return STORAGE_GONE;
    }
    return STORAGE_OK;
}

int storage_presign_get(const struct storage *s, const char *key, const char *media_type,
                        const char *disposition, char *out, size_t out_len)
{
    struct s3_param p[2];
    size_t n = 0;
    if (s->backend != STORAGE_S3)
        return -1;
    if (disposition)
        p[n++] = (struct s3_param){"response-content-disposition", disposition};
    if (media_type)
        p[n++] = (struct s3_param){"response-content-type", media_type};
    return s3_presign(&s->s3_public, "GET", key, p, n, time(NULL), s->url_ttl, out, out_len);
}
