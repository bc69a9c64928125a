/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_upload.c - resumable uploads: tus 1.0 core + creation.
 *
 * libevent 2.1 holds a whole body in memory, so a 2 GB video cannot be one
 * POST. It arrives as PATCH chunks, each within --max-body:
 *
 *   OPTIONS /v1/uploads        what we speak (no token)
 *   POST    /v1/uploads        Upload-Length + Upload-Metadata -> 201 Location
 *   HEAD    /v1/uploads/{id}   Upload-Offset (GET: the same as JSON)
 *   PATCH   /v1/uploads/{id}   Upload-Offset + bytes -> 204 new Upload-Offset
 *   DELETE  /v1/uploads/{id}   termination: the upload and its part file go
 *
 * Expiration: every answer about an unfinished upload says Upload-Expires
 * (last change + --upload-expiry); upload_sweep.c removes expired ones.
 * Quotas: creating an upload first asks api_upload_allowance.
 *
 * One PATCH: api_upload_begin (authorize, offset check, write lease, the
 * hash's saved state) -> offload: the chunk at its offset into
 * DATA/uploads/<id>.part, hashed as it is written, fsynced -> api_upload_advance
 * (offset and the hash's state, or the file's SHA-256 on the last chunk) ->
 * when complete, offload: storage_put_file (a rename; the file is not read
 * again) -> api_upload_finish (the artifact) -> 204 with X-Artifact-Id.
 *
 * Durability: a 204's Upload-Offset counts only bytes that are fsynced, and
 * it is committed in the database only after that fsync. Speed: the chunk
 * goes to the file in slices of up to 8 MiB with one pwritev each, and each
 * slice's writeback starts at once (sync_file_range), so the disk writes
 * while the next slice is copied and hashed; the fsync before the answer
 * waits only for the rest. The disk is only ever touched on offload threads.
 * Memory: a chunk is the request body libevent read (one per upload in
 * flight); it is freed on the offload thread once on disk, and returned to
 * the system a second after the last large chunk (not between an upload's
 * chunks, whose next body would fault the same pages in again).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "clock.h"
#include "log.h"
#include "offload.h"
#include "storage.h"
#include "storage_reply.h"
#include "router.h"
#include "sha256_midstate.h"
#include "store.h"

#define TUS_VERSION        "1.0.0"
#define UPLOAD_MAX_SIZE    (8ULL << 30) /* Tus-Max-Size: 8 GiB */
#define UPLOAD_MAX_SIZE_S  "8589934592"
#define MAX_METADATA_LEN   4096 /* the Upload-Metadata header */
#define MAX_META_VALUE     255  /* a decoded metadata value */
#define PATCH_CONTENT_TYPE "application/offset+octet-stream"
/*
 * Memory of chunks this large goes back to the system (malloc_trim) once no
 * such chunk has finished for TRIM_IDLE_MS: not between the chunks of an
 * upload in progress, whose next body would fault the pages in again.
 */
#define TRIM_AFTER_BYTES (1u << 20)
#define TRIM_IDLE_MS     1000

struct tus_state {
    char id[37];
    struct evbuffer *chunk; /* PATCH: the body, taken from the request */
    uint64_t from, len, length;
    char lease[37];
    char sha256[65]; /* of the whole file, once complete */
    uint64_t hashed; /* bytes hash_state covers (a multiple of 64) */
    unsigned char hash_state[SHA256_MIDSTATE_BYTES]; /* SHA-256's chaining value after them */
    char hash_state_hex[65], n4[24];
    bool damaged; /* the part file holds fewer bytes than the upload's offset */
    char kind[32], media_type[MAX_META_VALUE + 1], filename[MAX_META_VALUE + 1];
    char n1[24], n2[24]; /* numeric parameters as text */
    char n3[24];
    int disk_failed;            /* set on the offload thread */
    bool disk_full;             /* ... because the disk is (nearly) full: 507 */
    enum storage_status stored; /* the finished file into the store (storage.h) */
    char disk_error[512];       /* set on the offload thread */
};

static void tus_state_free(void *arg)
{
    struct tus_state *st = arg;
    if (st->chunk)
        evbuffer_free(st->chunk);
    free(st);
}

static struct tus_state *tus_state_new(struct request *r)
{
    struct tus_state *st = calloc(1, sizeof *st);
    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return NULL;
    }
    r->state = st;
    r->state_free = tus_state_free;
    return st;
}

static void add_header(struct request *r, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

static void add_u64_header(struct request *r, const char *name, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    add_header(r, name, text);
}

/* Upload-Expires (RFC 7231 date): the upload's last change (updated_at, RFC 3339 UTC) + expiry. */
static void add_expires(struct request *r, json_t *upload)
{
    const char *updated = json_string_value(json_object_get(upload, "updated_at"));
    struct tm tm = {0};
    time_t at;
    char text[64];

    if (!updated || json_object_get(upload, "artifact_id") == NULL ||
        !json_is_null(json_object_get(upload, "artifact_id")) ||
        sscanf(updated, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    at = timegm(&tm) + (time_t)r->w->cfg->upload_expiry;
    if (gmtime_r(&at, &tm) && strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
        add_header(r, "Upload-Expires", text);
}

static const char *in_header(struct request *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

/*
 * Every tus request but OPTIONS names the protocol version. Answers 412 and
 * returns -1 when it is missing or not ours.
 */
static int check_tus_version(struct request *r)
{
    const char *v = in_header(r, "Tus-Resumable");
    if (v && strcmp(v, TUS_VERSION) == 0)
        return 0;
    add_header(r, "Tus-Version", TUS_VERSION);
    reply_error(r, 412, "unsupported_tus_version",
                "this server speaks tus %s: send Tus-Resumable: %s", TUS_VERSION, TUS_VERSION);
    return -1;
}

/* A decimal byte count: digits only, no sign or spaces. 0 ok, -1 malformed, 1 over max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 19 || strspn(s, "0123456789") != n)
        return -1;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits cannot overflow 64 bits */
    *out = v;
    return v > max ? 1 : 0;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * Strict standard base64 (padding required) of len characters into out
 * (cap bytes, NUL-terminated). Returns the decoded length, or -1 when
 * malformed, too long, or it decodes to a control character.
 */
static int b64_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + (size_t)k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64_value(c)) < 0)
                return -1; /* '=' only at the end, then nothing but '=' */
        }
        unsigned long triple = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                               ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        for (int k = 0; k < 3 - pad; k++) {
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)((triple >> (16 - 8 * k)) & 0xff);
        }
    }
    out[o] = '\0';
    for (size_t k = 0; k < o; k++)
        if ((unsigned char)out[k] < 0x20 || out[k] == 0x7f)
            return -1;
    return (int)o;
}

/* Valid UTF-8 (jansson's check), or plain ASCII when ascii_only. */
static bool utf8_text(const char *s, bool ascii_only)
{
    json_t *probe;
    if (ascii_only)
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p >= 0x80)
                return false;
    probe = json_string(s);
    json_decref(probe);
    return probe != NULL;
}

/*
 * Upload-Metadata: "key b64,key b64,..." (a value may be absent). Fills kind,
 * media_type and filename; other keys are ignored. Answers 400 and returns -1
 * when malformed.
 */
static int parse_metadata(struct request *r, struct tus_state *st, const char *h)
{
    const char *p = h;
    size_t total = h ? strlen(h) : 0;

    if (total > MAX_METADATA_LEN) {
        reply_error(r, 400, "bad_metadata", "Upload-Metadata is longer than %d characters",
                    MAX_METADATA_LEN);
        return -1;
    }
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *space;
        size_t klen, vlen;
        char *out = NULL;
        size_t cap = 0;

        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        space = memchr(p, ' ', n);
        klen = space ? (size_t)(space - p) : n;
        vlen = space ? n - klen - 1 : 0;
        if (klen == 0) {
            reply_error(r, 400, "bad_metadata",
                        "Upload-Metadata must be 'key base64value' pairs separated by commas");
            return -1;
        }
        if (klen == 4 && memcmp(p, "kind", 4) == 0) {
            out = st->kind;
            cap = sizeof st->kind;
        } else if (klen == 8 && memcmp(p, "filetype", 8) == 0) {
            out = st->media_type;
            cap = sizeof st->media_type;
        } else if (klen == 8 && memcmp(p, "filename", 8) == 0) {
            out = st->filename;
            cap = sizeof st->filename;
        }
        if (out && vlen > 0 &&
            (b64_decode(space + 1, vlen, out, cap) < 0 || !utf8_text(out, out != st->filename))) {
            reply_error(r, 400, "bad_metadata",
                        "Upload-Metadata %.*s must be base64 of 1 to %zu printable characters",
                        (int)klen, p, cap - 1);
            return -1;
        }
        p = end ? end + 1 : NULL;
    }
    if (!st->kind[0]) {
        reply_error(r, 400, "bad_metadata",
                    "Upload-Metadata must name the kind (base64 of video, plan, reflection or "
                    "other)");
        return -1;
    }
    return 0;
}

/* ---- OPTIONS ---------------------------------------------------------- */

void handle_upload_options(struct request *r)
{
    add_header(r, "Tus-Resumable", TUS_VERSION);
    add_header(r, "Tus-Version", TUS_VERSION);
    add_header(r, "Tus-Extension", "creation,termination,expiration");
    add_header(r, "Tus-Max-Size", UPLOAD_MAX_SIZE_S);
    reply_empty(r, 204);
}

/* ---- POST: create ----------------------------------------------------- */

static void on_created(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *doc = NULL;
    const char *id;
    char location[64];

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    id = json_string_value(json_object_get(doc, "id"));
    if (!id || strlen(id) != 36) {
        log_error("upload create: no id in %s", res->value ? res->value : "(null)");
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    snprintf(location, sizeof location, "/v1/uploads/%s", id);
    add_header(r, "Location", location);
    add_header(r, "Upload-Offset", "0");
    add_expires(r, doc);
    reply_json_text(r, 201, res->value);
cleanup:
    json_decref(doc);
}

/* The quota allows it: create. */
static void on_allowed(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    r->params[0] = request_token_param(r);
    r->params[1] = st->kind;
    r->params[2] = st->media_type[0] ? st->media_type : NULL;
    r->params[3] = st->filename[0] ? st->filename : NULL;
    r->params[4] = st->n1;
    request_query(r, STMT_UPLOAD_CREATE, on_created);
}

void handle_upload_create(struct request *r)
{
    struct tus_state *st;
    uint64_t length = 0;
    int rc;

    add_header(r, "Tus-Resumable", TUS_VERSION);
    if (check_tus_version(r) < 0)
        return;
    if (in_header(r, "Upload-Defer-Length")) {
        reply_error(r, 400, "bad_request",
                    "Upload-Defer-Length is not supported: send Upload-Length");
        return;
    }
    rc = parse_u64(in_header(r, "Upload-Length"), UPLOAD_MAX_SIZE, &length);
    if (rc < 0 || length == 0) {
        reply_error(r, 400, "bad_request", "Upload-Length must be a number of bytes from 1 to %s",
                    UPLOAD_MAX_SIZE_S);
        return;
    }
    if (rc > 0) {
        add_header(r, "Tus-Max-Size", UPLOAD_MAX_SIZE_S);
        reply_error(r, 413, "upload_too_large",
                    "Upload-Length %" PRIu64 " is over the limit of %s bytes", length,
                    UPLOAD_MAX_SIZE_S);
        return;
    }
    st = tus_state_new(r);
    if (!st)
        return;
    if (parse_metadata(r, st, in_header(r, "Upload-Metadata")) < 0)
        return;
    snprintf(st->n1, sizeof st->n1, "%" PRIu64, length);
    snprintf(st->n2, sizeof st->n2, "%ld", r->w->cfg->quota_bytes);
    snprintf(st->n3, sizeof st->n3, "%ld", r->w->cfg->quota_in_flight);
    r->params[0] = request_token_param(r);
    r->params[1] = st->n1;
    r->params[2] = st->n2;
    r->params[3] = st->n3;
    request_query(r, STMT_UPLOAD_ALLOWANCE, on_allowed);
}

/* ---- GET / HEAD: where is it ------------------------------------------ */

static void on_upload_got(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *doc = NULL;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (!json_is_integer(json_object_get(doc, "offset")) ||
        !json_is_integer(json_object_get(doc, "length"))) {
        log_error("upload %s: unexpected row %s", r->ids[0], res->value ? res->value : "(null)");
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    add_u64_header(r, "Upload-Offset",
                   (uint64_t)json_integer_value(json_object_get(doc, "offset")));
    add_u64_header(r, "Upload-Length",
                   (uint64_t)json_integer_value(json_object_get(doc, "length")));
    add_expires(r, doc);
    add_header(r, "Cache-Control", "no-store");
    reply_json_text(r, 200, res->value);
cleanup:
    json_decref(doc);
}

void handle_upload_get(struct request *r)
{
    add_header(r, "Tus-Resumable", TUS_VERSION);
    /* HEAD is the tus request; GET is the plain JSON view of the same thing. */
    if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD && check_tus_version(r) < 0)
        return;
    request_query(r, STMT_UPLOAD_GET, on_upload_got);
}

/* ---- PATCH: append a chunk -------------------------------------------- */

static void part_path(const struct request *r, const struct tus_state *st, char *out, size_t cap)
{
    snprintf(out, cap, "%s/uploads/%s.part", r->w->cfg->data_dir, st->id);
}

/* Offload thread: records why the disk step failed (errno of the failed call). */
static void disk_fail(struct tus_state *st, const char *what, const char *path)
{
    st->disk_full = store_errno_is_full(errno);
    snprintf(st->disk_error, sizeof st->disk_error, "%s %.300s: %s", what, path, strerror(errno));
}

/*
 * Offload thread: the hash as the last chunk left it, plus the bytes after
 * its saved state (less than a block; all of them for an upload begun before
 * the state was kept), read back from the part file. Returns 0 or -1.
 */
static int resume_hash(int fd, struct tus_state *st, const char *path, struct sha256_midstate *sha)
{
    enum { BUF = 64 * 1024 };
    unsigned char *buf = NULL;
    uint64_t at = st->hashed;
    int rc = -1;

    if (st->hashed > st->from ||
        sha256_midstate_resume(sha, st->hashed, st->hashed ? st->hash_state : NULL) < 0) {
        snprintf(st->disk_error, sizeof st->disk_error,
                 "the saved hash covers %" PRIu64 " bytes, the upload has %" PRIu64, st->hashed,
                 st->from);
        return -1;
    }
    if (at == st->from)
        return 0;
    buf = malloc(BUF);
    if (!buf) {
        snprintf(st->disk_error, sizeof st->disk_error, "out of memory");
        return -1;
    }
    while (at < st->from) {
        size_t want = st->from - at < BUF ? (size_t)(st->from - at) : BUF;
        ssize_t n = pread(fd, buf, want, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            disk_fail(st, "cannot read", path);
            goto cleanup;
        }
        sha256_midstate_update(sha, buf, (size_t)n);
        at += (uint64_t)n;
    }
    rc = 0;
cleanup:
    free(buf);
    return rc;
}

/*
 * Offload thread: the chunk at its offset, hashed as it is written, fsynced;
 * then the hash's state to keep, or the file's hash when it is the last.
 */
static void patch_write(void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;
    struct sha256_midstate sha;
    struct stat sb;
    char path[4200];
    uint64_t written = 0, free_bytes;
    int fd = -1;

    part_path(r, st, path, sizeof path);
    if (store_free_bytes(r->w->cfg->data_dir, &free_bytes) == 0 &&
        free_bytes < st->len + (uint64_t)r->w->cfg->storage_reserve / 2) {
        snprintf(st->disk_error, sizeof st->disk_error,
                 "%" PRIu64 " bytes free, a chunk of %" PRIu64 " would go into the reserve",
                 free_bytes, st->len);
        st->disk_full = true;
        st->disk_failed = 1;
        goto done;
    }
    /* Under S3 another server may have taken the first chunks: rebuilt from the store. */
    if (r->w->storage->backend == STORAGE_S3) {
        st->stored = storage_tus_resume(r->w->storage, st->id, path, st->from, st->disk_error,
                                        sizeof st->disk_error);
        if (st->stored != STORAGE_OK) {
            st->damaged = st->stored == STORAGE_GONE; /* (not in the store either) */
            st->disk_failed = 1;
            goto done; /* (not through fail: cutting a short file would lengthen it) */
        }
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        disk_fail(st, "cannot open", path);
        goto fail;
    }
    if (fstat(fd, &sb) < 0) {
        disk_fail(st, "cannot stat", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size < st->from) {
        /* Acknowledged bytes are gone (another disk, or the file was cut): never fill a hole. */
        snprintf(st->disk_error, sizeof st->disk_error,
                 "%.300s has %" PRIu64 " bytes, but %" PRIu64 " were acknowledged", path,
                 (uint64_t)sb.st_size, st->from);
        st->damaged = true;
        st->disk_failed = 1;
        goto done;
    }
    /* Bytes past the offset are an unacknowledged chunk's (a crash mid-write): not ours. */
    if ((uint64_t)sb.st_size > st->from && ftruncate(fd, (off_t)st->from) < 0) {
        disk_fail(st, "cannot cut", path);
        goto fail;
    }
    if (resume_hash(fd, st, path, &sha) < 0)
        goto fail;
    if (store_write_evbuffer(fd, st->chunk, st->from, true, &sha, &written) < 0) {
        disk_fail(st, "cannot write", path);
        goto fail;
    }
    if (written != st->len) {
        snprintf(st->disk_error, sizeof st->disk_error,
                 "short copy of a chunk (%" PRIu64 " of %" PRIu64 " bytes)", written, st->len);
        goto fail;
    }
    /* Durable before the database counts it (fdatasync includes the new size). */
    if (fdatasync(fd) < 0) {
        disk_fail(st, "cannot fsync", path);
        goto fail;
    }
    if (st->from == 0) {
        /* ... and so is the part file's name, with its first bytes. */
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/uploads", r->w->cfg->data_dir);
        if (store_sync_dir(dir) < 0) {
            disk_fail(st, "cannot fsync", dir);
            goto fail;
        }
    }
    if (close(fd) < 0) {
        fd = -1;
        disk_fail(st, "cannot close", path);
        goto fail;
    }
    fd = -1;
    /* Under S3 the chunk is in the store before the database counts it. */
    st->stored = storage_tus_chunk(r->w->storage, st->id, path, st->from, st->len, st->disk_error,
                                   sizeof st->disk_error);
    if (st->stored != STORAGE_OK)
        goto fail;
    st->hashed = sha256_midstate_save(&sha, st->hash_state);
    if (st->from + st->len == st->length)
        sha256_midstate_final(&sha, st->sha256);
    goto done;
fail:
    if (fd >= 0)
        close(fd);
    /* What a failed chunk wrote is not counted: the file keeps what HEAD says, no more. */
    if (truncate(path, (off_t)st->from) < 0 && errno != ENOENT)
        log_error("upload %s: cannot cut %s back to %" PRIu64 ": %s", st->id, path, st->from,
                  strerror(errno));
    st->disk_failed = 1;
done:
    /* The bytes are on disk (or refused): the chunk's memory is free now, not at the reply. */
    evbuffer_free(st->chunk);
    st->chunk = NULL;
}

/* When the last large chunk finished (CLOCK_MONOTONIC ms), across workers. */
static _Atomic long last_large_chunk_ms;

static void trim_work(void *arg)
{
    (void)arg;
    malloc_trim(0);
}

static void trim_done(void *arg)
{
    (void)arg;
}

/* Loop: TRIM_IDLE_MS after a large chunk; the memory goes back unless another one came since. */
static void maybe_trim(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    /* (draining: the offload threads may be gone already) */
    if (!w->draining && clock_ms() - atomic_load(&last_large_chunk_ms) >= TRIM_IDLE_MS &&
        offload_submit(w->offload, w->base, trim_work, trim_done, NULL) < 0)
        log_warn("upload: cannot return memory to the system (shutting down)");
}

static void schedule_trim(struct worker *w)
{
    static const struct timeval later = {TRIM_IDLE_MS / 1000, (TRIM_IDLE_MS % 1000) * 1000};
    atomic_store(&last_large_chunk_ms, clock_ms());
    if (event_base_once(w->base, -1, EV_TIMEOUT, maybe_trim, w, &later) < 0)
        log_warn("upload: cannot schedule returning memory to the system");
}

/* Offload thread: the complete part file into the store, under the hash taken as it arrived. */
static void patch_store(void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;
    char path[4200], err[256];

    part_path(r, st, path, sizeof path);
    /* (under S3, a retry of the last step on another server: rebuilt from the store's chunks) */
    if (r->w->storage->backend == STORAGE_S3 && access(path, F_OK) < 0 && errno == ENOENT &&
        storage_check(r->w->storage, st->sha256, NULL, st->length, err, sizeof err) != STORAGE_OK &&
        storage_tus_resume(r->w->storage, st->id, path, st->length, st->disk_error,
                           sizeof st->disk_error) != STORAGE_OK)
        log_warn("upload %s: %s", st->id, st->disk_error);
    st->stored = storage_put_file(r->w->storage, path, st->media_type[0] ? st->media_type : NULL,
                                  st->sha256, st->length, st->disk_error, sizeof st->disk_error);
    if (st->stored == STORAGE_OK) {
        storage_tus_forget(r->w->storage, st->id, st->length);
        st->disk_full = false;
        return;
    }
    st->disk_full = st->stored == STORAGE_FULL;
    /* An earlier try (or a concurrent one) already moved it: the store has it. */
    if (access(path, F_OK) < 0 && errno == ENOENT &&
        storage_check(r->w->storage, st->sha256, NULL, st->length, err, sizeof err) == STORAGE_OK) {
        st->stored = STORAGE_OK;
        return;
    }
    st->disk_failed = 1;
}

static void on_finished(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;
    json_t *doc = NULL;
    const char *artifact_id;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    artifact_id = json_string_value(json_object_get(doc, "artifact_id"));
    if (!artifact_id) {
        log_error("upload %s: finished without an artifact: %s", st->id,
                  res->value ? res->value : "(null)");
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    add_u64_header(r, "Upload-Offset", st->length);
    add_header(r, "X-Artifact-Id", artifact_id);
    reply_empty(r, 204);
cleanup:
    json_decref(doc);
}

static void patch_stored(void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;

    if (st->disk_failed) {
        log_error("upload %s: %s", st->id, st->disk_error);
        if (st->disk_full) {
            reply_storage_full(r);
            return;
        }
        if (st->stored == STORAGE_UNAVAILABLE) {
            reply_storage_status(r, STORAGE_UNAVAILABLE, "the upload");
            return;
        }
        reply_error(r, 500, "storage_failed",
                    "the server could not store the file; PATCH again with Upload-Offset %" PRIu64
                    " and an empty body to retry",
                    st->length);
        return;
    }
    r->params[0] = request_token_param(r);
    r->params[1] = st->id;
    r->params[2] = st->sha256;
    request_query(r, STMT_UPLOAD_FINISH, on_finished);
}

static void finish(struct request *r)
{
    if (offload_submit(r->w->storage->backend == STORAGE_S3 ? r->w->offload_net : r->w->offload,
                       r->w->base, patch_store, patch_stored, r) < 0)
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
}

static void on_advanced(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;

    if (st->disk_failed) {
        /* The lease is released (or runs out); the chunk was not counted. */
        if (st->damaged) {
            reply_error(r, 500, "storage_failed",
                        "the server no longer has the %" PRIu64
                        " bytes of this upload it acknowledged, so it cannot continue it: "
                        "DELETE it and upload the file again",
                        st->from);
            return;
        }
        if (st->disk_full) {
            add_u64_header(r, "Upload-Offset", st->from);
            reply_storage_full(r);
            return;
        }
        if (st->stored == STORAGE_UNAVAILABLE) {
            add_u64_header(r, "Upload-Offset", st->from);
            reply_storage_status(r, STORAGE_UNAVAILABLE, "the chunk");
            return;
        }
        reply_error(r, 500, "storage_failed",
                    "the server could not write the chunk; send it again from Upload-Offset "
                    "%" PRIu64,
                    st->from);
        return;
    }
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    if (st->from + st->len < st->length) {
        json_t *doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
        add_u64_header(r, "Upload-Offset", st->from + st->len);
        add_expires(r, doc);
        json_decref(doc);
        reply_empty(r, 204);
        return;
    }
    finish(r);
}

static void patch_written(void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;
    uint64_t to = st->from + st->len;

    if (st->len >= TRIM_AFTER_BYTES)
        schedule_trim(r->w);
    if (st->disk_failed) {
        log_error("upload %s: %s", st->id, st->disk_error);
        to = st->from; /* advance by nothing: just drop the lease */
    }
    snprintf(st->n1, sizeof st->n1, "%" PRIu64, st->from);
    snprintf(st->n2, sizeof st->n2, "%" PRIu64, to);
    r->params[0] = request_token_param(r);
    r->params[1] = st->id;
    r->params[2] = st->lease;
    r->params[3] = st->n1;
    r->params[4] = st->n2;
    r->params[5] = (!st->disk_failed && to == st->length) ? st->sha256 : NULL;
    r->params[6] = NULL;
    r->params[7] = NULL;
    if (!st->disk_failed) {
        static const char digits[] = "0123456789abcdef";
        snprintf(st->n4, sizeof st->n4, "%" PRIu64, st->hashed);
        for (int i = 0; i < SHA256_MIDSTATE_BYTES; i++) {
            st->hash_state_hex[2 * i] = digits[st->hash_state[i] >> 4];
            st->hash_state_hex[2 * i + 1] = digits[st->hash_state[i] & 15];
        }
        st->hash_state_hex[64] = '\0';
        r->params[6] = st->n4;
        r->params[7] = st->hashed > 0 ? st->hash_state_hex : NULL;
    }
    request_query(r, STMT_UPLOAD_ADVANCE, on_advanced);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* api_upload_begin's "hashed" and "hash_state" (hex, null at 0 bytes). Returns 0 or -1. */
static int parse_hash_state(struct tus_state *st, json_t *doc)
{
    json_t *hashed = json_object_get(doc, "hashed");
    const char *hex = json_string_value(json_object_get(doc, "hash_state"));

    if (!json_is_integer(hashed) || json_integer_value(hashed) < 0)
        return -1;
    st->hashed = (uint64_t)json_integer_value(hashed);
    if (st->hashed == 0)
        return 0;
    if (!hex || strlen(hex) != 2 * SHA256_MIDSTATE_BYTES)
        return -1;
    for (int i = 0; i < SHA256_MIDSTATE_BYTES; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        st->hash_state[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static void on_begun(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;
    json_t *doc = NULL, *length;
    const char *lease, *sha;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    length = json_object_get(doc, "length");
    lease = json_string_value(json_object_get(doc, "lease"));
    sha = json_string_value(json_object_get(doc, "sha256"));
    if (!json_is_integer(length) || json_integer_value(length) < 1) {
        log_error("upload %s: unexpected begin answer %s", st->id,
                  res->value ? res->value : "(null)");
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    st->length = (uint64_t)json_integer_value(length);
    if (json_is_true(json_object_get(doc, "finish"))) {
        /* Every byte is in but the artifact is not: retry the last step. */
        if (!sha || strlen(sha) != 64) {
            log_error("upload %s: complete without a hash", st->id);
            reply_error(r, 500, "internal", "internal error (logged on the server)");
            goto cleanup;
        }
        memcpy(st->sha256, sha, 65);
        finish(r);
        goto cleanup;
    }
    if (st->len == 0) { /* an empty PATCH changes nothing */
        add_u64_header(r, "Upload-Offset", st->from);
        reply_empty(r, 204);
        goto cleanup;
    }
    if (!lease || strlen(lease) != 36) {
        log_error("upload %s: no lease in %s", st->id, res->value);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    memcpy(st->lease, lease, 37);
    if (parse_hash_state(st, doc) < 0) {
        log_error("upload %s: unexpected hash state in %s", st->id, res->value);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    if (offload_submit(r->w->storage->backend == STORAGE_S3 ? r->w->offload_net : r->w->offload,
                       r->w->base, patch_write, patch_written, r) < 0)
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
cleanup:
    json_decref(doc);
}

static int is_patch_content_type(const char *ct)
{
    size_t n = strlen(PATCH_CONTENT_TYPE);
    return ct && strncasecmp(ct, PATCH_CONTENT_TYPE, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

void handle_upload_patch(struct request *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    struct tus_state *st;

    add_header(r, "Tus-Resumable", TUS_VERSION);
    if (check_tus_version(r) < 0)
        return;
    if (!is_patch_content_type(in_header(r, "Content-Type"))) {
        reply_error(r, 415, "unsupported_media_type",
                    "a PATCH carries Content-Type: " PATCH_CONTENT_TYPE);
        return;
    }
    st = tus_state_new(r);
    if (!st)
        return;
    memcpy(st->id, r->ids[0], sizeof st->id);
    if (parse_u64(in_header(r, "Upload-Offset"), UPLOAD_MAX_SIZE, &st->from) != 0) {
        reply_error(r, 400, "bad_request", "Upload-Offset must be a number of bytes from 0 to %s",
                    UPLOAD_MAX_SIZE_S);
        return;
    }
    st->len = evbuffer_get_length(in);
    /* Take the body's chains (no copy) for the offload thread. */
    st->chunk = evbuffer_new();
    if (!st->chunk || evbuffer_add_buffer(st->chunk, in) < 0) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    snprintf(st->n1, sizeof st->n1, "%" PRIu64, st->from);
    snprintf(st->n2, sizeof st->n2, "%" PRIu64, st->len);
    r->params[0] = request_token_param(r);
    r->params[1] = st->id;
    r->params[2] = st->n1;
    r->params[3] = st->n2;
    request_query(r, STMT_UPLOAD_BEGIN, on_begun);
}

/* ---- DELETE: termination ---------------------------------------------- */

static void part_unlink(void *arg)
{
    struct request *r = arg;
    struct tus_state *st = r->state;
    char path[4200];
    part_path(r, st, path, sizeof path);
    if (unlink(path) < 0 && errno != ENOENT)
        log_error("upload %s: cannot remove %s: %s", st->id, path, strerror(errno));
    storage_tus_forget(r->w->storage, st->id, UINT64_MAX);
}

static void part_unlinked(void *arg)
{
    reply_empty(arg, 204);
}

static void on_deleted(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    /* The row is gone: its part file goes before the answer, so a 204 means both. */
    if (offload_submit(r->w->storage->backend == STORAGE_S3 ? r->w->offload_net : r->w->offload,
                       r->w->base, part_unlink, part_unlinked, r) < 0) {
        log_error("upload %s: deleted, but its part file stays (shutting down)", r->ids[0]);
        reply_empty(r, 204);
    }
}

void handle_upload_delete(struct request *r)
{
    struct tus_state *st;
    add_header(r, "Tus-Resumable", TUS_VERSION);
    if (check_tus_version(r) < 0)
        return;
    st = tus_state_new(r);
    if (!st)
        return;
    snprintf(st->id, sizeof st->id, "%s", r->ids[0]);
    request_query(r, STMT_UPLOAD_DELETE, on_deleted);
}
