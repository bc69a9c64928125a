/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_artifact.c - uploading and serving evidence.
 *
 * Upload (POST /v1/artifacts with raw bytes):
 *   1. allowance: the token may upload this kind and the bytes fit the
 *      user's quota (one round trip, so nobody without the right can make us
 *      write to disk);
 *   2. an offload thread writes the bytes to the content-addressed store
 *      (temp file, fsync, rename) while the loop serves others;
 *   3. the artifact row is inserted with the file's hash and size.
 * A JSON body ({kind,url,title?}) registers an external URL instead.
 *
 * Download (GET /v1/artifacts/{id}/content): the database authorizes and
 * audits the read, then the file is sent from the page cache with
 * evbuffer_add_file (sendfile where the kernel has it), honouring one
 * byte range so video players can seek. A video player asks for many ranges:
 * the audit row (one per reader, artifact and minute) is written by the
 * first; while this server knows that row stands, the others are authorized
 * by api_artifact_reread, which writes nothing, or, within a moment of the
 * last authorization and while nothing could have revoked it, by reusing
 * that answer without a round trip (read_grant.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "offload.h"
#include "read_grant.h"
#include "router.h"
#include "storage.h"
#include "storage_reply.h"
#include "store.h"

#define MAX_HEADER_TEXT 255
#define SENDFILE_PIECE  (4 << 20) /* bytes per sendfile(2) call */

struct upload_state {
    struct evbuffer *data;
    char kind[32];
    char media_type[MAX_HEADER_TEXT + 1];
    char filename[MAX_HEADER_TEXT + 1];
    char sha256[65];
    char bytes[24];
    char announced[24], quota[24]; /* allowance parameters */
    uint64_t size;
    enum storage_status stored;
    char store_error[512];
};

/* After a failed insert: the file goes unless another artifact has the same bytes. */
struct orphan_check {
    struct worker *w;
    char sha256[65];
    const char *params[1];
    bool unused;
};

static void orphan_unlink(void *arg)
{
    struct orphan_check *oc = arg;
    char err[512];
    if (oc->unused && storage_remove(oc->w->storage, oc->sha256, err, sizeof err) == STORAGE_OK)
        log_info("artifact file %s removed: its upload failed and nothing else uses it",
                 oc->sha256);
}

static void orphan_done(void *arg)
{
    free(arg);
}

static void on_orphan_checked(const struct db_result *res, void *arg)
{
    struct orphan_check *oc = arg;
    oc->unused = res->status == DB_OK && res->value && strcmp(res->value, "t") == 0;
    if (!oc->unused ||
        offload_submit(oc->w->offload, oc->w->base, orphan_unlink, orphan_done, oc) < 0)
        free(oc);
}

static void remove_if_orphan(struct worker *w, const char *sha256)
{
    struct orphan_check *oc = calloc(1, sizeof *oc);
    if (!oc)
        return;
    oc->w = w;
    snprintf(oc->sha256, sizeof oc->sha256, "%s", sha256);
    oc->params[0] = oc->sha256;
    if (pgpool_query(w->pool, STMT_ARTIFACT_FILE_UNUSED, oc->params, on_orphan_checked, oc) !=
        DB_OK)
        free(oc);
}

static void upload_state_free(void *arg)
{
    struct upload_state *st = arg;
    if (st->data)
        evbuffer_free(st->data);
    free(st);
}

/*
 * Header text we store: bounded, no control characters, and valid UTF-8
 * (jansson's check), or plain ASCII when ascii_only. Checked before a byte is
 * written, so a value the database would refuse never leaves a file behind.
 */
static int copy_header(const char *value, char *out, size_t cap, bool ascii_only)
{
    size_t n = strlen(value);
    json_t *probe;
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f ||
            (ascii_only && (unsigned char)value[i] >= 0x80))
            return -1;
    probe = json_stringn(value, n);
    if (!probe)
        return -1;
    json_decref(probe);
    memcpy(out, value, n + 1);
    return 0;
}

static void on_artifact_stored(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct upload_state *st = r->state;
    if (res->status != DB_OK) {
        remove_if_orphan(r->w, st->sha256);
        reply_db_failure(r, res);
        return;
    }
    reply_json_text(r, 201, res->value ? res->value : "{}");
}

static void upload_write(void *arg)
{
    struct request *r = arg;
    struct upload_state *st = r->state;
    st->stored = storage_put_evbuffer(r->w->storage, st->data, st->media_type, st->sha256,
                                      &st->size, st->store_error, sizeof st->store_error);
}

static void upload_written(void *arg)
{
    struct request *r = arg;
    struct upload_state *st = r->state;

    if (st->stored != STORAGE_OK) {
        log_error("artifact upload: %s", st->store_error);
        reply_storage_status(r, st->stored, "the upload");
        return;
    }
    /* The bytes are on disk; free the memory before the round trip. */
    evbuffer_free(st->data);
    st->data = NULL;
    snprintf(st->bytes, sizeof st->bytes, "%" PRIu64, st->size);
    r->params[0] = request_token_param(r);
    r->params[1] = st->kind;
    r->params[2] = st->media_type;
    r->params[3] = st->filename[0] ? st->filename : NULL;
    r->params[4] = st->bytes;
    r->params[5] = st->sha256;
    request_query(r, STMT_ARTIFACT_UPLOAD, on_artifact_stored);
}

static void on_precheck(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    /* Under S3 the bytes go over the network: the network threads, not the disk's. */
    if (offload_submit(r->w->storage->backend == STORAGE_S3 ? r->w->offload_net : r->w->offload,
                       r->w->base, upload_write, upload_written, r) < 0)
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
}

static int is_json_content_type(const char *ct)
{
    return ct && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

void handle_artifact_create(struct request *r)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    const char *ct = evhttp_find_header(h, "Content-Type");
    const char *kind = evhttp_find_header(h, "X-Artifact-Kind");
    const char *filename = evhttp_find_header(h, "X-Filename");
    struct upload_state *st;
    size_t len = evbuffer_get_length(in);

    if (is_json_content_type(ct)) {
        json_error_t err;
        json_t *doc;
        r->body = malloc(len + 1);
        if (!r->body) {
            reply_error(r, 503, "busy", "out of memory");
            return;
        }
        evbuffer_remove(in, r->body, len);
        r->body[len] = '\0';
        r->body_len = len;
        doc = json_loadb(r->body, len, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(doc)) {
            json_decref(doc);
            reply_error(r, 400, "invalid_json",
                        "registering a URL takes a JSON object {kind, url, title?}");
            return;
        }
        json_decref(doc);
        r->params[1] = r->body;
        router_call(r, STMT_ARTIFACT_REGISTER, 201);
        return;
    }

    st = calloc(1, sizeof *st);
    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = st;
    r->state_free = upload_state_free;
    if (!kind || copy_header(kind, st->kind, sizeof st->kind, true) < 0) {
        reply_error(r, 400, "bad_request",
                    "X-Artifact-Kind must say video, plan, reflection or other (or send JSON "
                    "{kind,url} to register a link)");
        return;
    }
    if (copy_header(ct ? ct : "application/octet-stream", st->media_type, sizeof st->media_type,
                    true) < 0) {
        reply_error(r, 400, "bad_request",
                    "Content-Type must be 1 to %d printable ASCII characters", MAX_HEADER_TEXT);
        return;
    }
    if (filename && copy_header(filename, st->filename, sizeof st->filename, false) < 0) {
        reply_error(r, 400, "bad_request",
                    "X-Filename must be 1 to %d bytes of UTF-8 text without control characters",
                    MAX_HEADER_TEXT);
        return;
    }
    if (len == 0) {
        reply_error(r, 400, "bad_request", "the upload is empty");
        return;
    }
    /* Take the body's chains (no copy); the request keeps an empty buffer. */
    st->data = evbuffer_new();
    if (!st->data || evbuffer_add_buffer(st->data, in) < 0) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    snprintf(st->announced, sizeof st->announced, "%zu", len);
    snprintf(st->quota, sizeof st->quota, "%ld", r->w->cfg->quota_bytes);
    r->params[1] = st->kind;
    r->params[2] = st->announced;
    r->params[3] = st->quota;
    request_query(r, STMT_ARTIFACT_PRECHECK, on_precheck);
}

/* Parses a single "bytes=" range against size. 1: range set; 0: none/ignored; -1: unsatisfiable. */
static int parse_range(const char *header, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p;
    char *end;
    unsigned long long a, b;

    if (!header || strncasecmp(header, "bytes=", 6) != 0)
        return 0;
    p = header + 6;
    if (strchr(p, ','))
        return 0; /* several ranges: answering with the whole file is allowed */
    while (*p == ' ')
        p++;
    if (*p == '-') { /* suffix: the last N bytes */
        errno = 0;
        b = strtoull(p + 1, &end, 10);
        if (errno || end == p + 1 || *end)
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    errno = 0;
    a = strtoull(p, &end, 10);
    if (errno || end == p || *end != '-')
        return 0;
    p = end + 1;
    if (*p == '\0') {
        b = size ? size - 1 : 0;
    } else {
        b = strtoull(p, &end, 10);
        if (errno || *end || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}

/* Types a browser may show in place; anything else is a download (stored XSS otherwise). */
static bool inline_safe(const char *media_type)
{
    static const char *const safe[] = {"video/",     "audio/",          "image/png",
                                       "image/jpeg", "image/gif",       "image/webp",
                                       "image/avif", "application/pdf", "text/plain"};
    size_t n = strcspn(media_type, "; ");
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++) {
        size_t k = strlen(safe[i]);
        if (safe[i][k - 1] == '/' ? (n > k && strncasecmp(media_type, safe[i], k) == 0)
                                  : (n == k && strncasecmp(media_type, safe[i], k) == 0))
            return true;
    }
    return false;
}

/*
 * Content-Disposition per RFC 6266: an ASCII fallback in filename= (quotes,
 * backslashes, controls and non-ASCII become '_') and the exact name in
 * filename*=UTF-8'' (RFC 8187 percent-encoding).
 */
static void disposition_value(bool show_inline, const char *filename, const char *id, char *value,
                              size_t value_len)
{
    static const char hex[] = "0123456789ABCDEF";
    char ascii[256], ext[3 * 256 + 1];
    size_t a = 0, e = 0;
    const char *name = filename && *filename ? filename : id;

    for (const unsigned char *p = (const unsigned char *)name; *p && a < sizeof ascii - 1; p++)
        if ((*p & 0xc0) != 0x80) /* one '_' per character, not per UTF-8 byte */
            ascii[a++] = (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') ? '_' : (char)*p;
    ascii[a] = '\0';
    for (const unsigned char *p = (const unsigned char *)name; *p && e < sizeof ext - 4; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("!#$&+-.^_`|~", *p)) {
            ext[e++] = (char)*p;
        } else {
            ext[e++] = '%';
            ext[e++] = hex[*p >> 4];
            ext[e++] = hex[*p & 15];
        }
    }
    ext[e] = '\0';
    snprintf(value, value_len, "%s; filename=\"%s\"; filename*=UTF-8''%s",
             show_inline ? "inline" : "attachment", ascii, ext);
}

static void add_disposition(struct evkeyvalq *h, bool show_inline, const char *filename,
                            const char *id)
{
    char value[1200];
    disposition_value(show_inline, filename, id, value, sizeof value);
    evhttp_add_header(h, "Content-Disposition", value);
}

/* Sends the evidence the database's answer (meta) describes, honouring a Range. */
static void serve_content(struct request *r, json_t *meta)
{
    const char *sha, *media_type, *url, *filename, *object_key;
    char path[4096], header[128];
    struct evkeyvalq *out_h = evhttp_request_get_output_headers(r->req);
    struct evbuffer *buf = NULL;
    struct evhttp_connection *evcon;
    struct stat sb;
    uint64_t first = 0, last = 0, size;
    int fd = -1, range;

    sha = json_string_value(json_object_get(meta, "sha256"));
    url = json_string_value(json_object_get(meta, "url"));
    media_type = json_string_value(json_object_get(meta, "media_type"));
    filename = json_string_value(json_object_get(meta, "filename"));
    object_key = json_string_value(json_object_get(meta, "object_key"));
    if (!media_type)
        media_type = "application/octet-stream";
    if (url) {
        reply_error(r, 409, "external_artifact", "this artifact is a link, not stored bytes: %s",
                    url);
        goto cleanup;
    }
    if (sha && (r->w->storage->backend == STORAGE_S3 || object_key)) {
        char disposition[1200];
        json_int_t bytes = json_integer_value(json_object_get(meta, "bytes"));
        if (r->w->storage->backend != STORAGE_S3) {
            reply_storage_status(r, STORAGE_GONE, "this evidence");
            goto cleanup;
        }
        /* The store answers with these; an unsafe type is still a download. */
        disposition_value(inline_safe(media_type), filename, r->ids[0], disposition,
                          sizeof disposition);
        storage_reply_s3_content(r, sha, object_key, bytes > 0 ? (uint64_t)bytes : 0,
                                 inline_safe(media_type) ? media_type : "application/octet-stream",
                                 disposition);
        goto cleanup;
    }
    if (!sha || store_path(r->w->cfg->data_dir, sha, path, sizeof path) < 0) {
        log_error("artifact %s: no usable sha256 in its row", r->ids[0]);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0) {
        int open_errno = errno;
        log_error("artifact %s: cannot open %s: %s", r->ids[0], path, strerror(open_errno));
        /* removed outside accord, or kept in object storage by another server */
        reply_storage_status(r, open_errno == ENOENT ? STORAGE_GONE : STORAGE_FAILED,
                             "this evidence");
        goto cleanup;
    }
    size = (uint64_t)sb.st_size;
    range = parse_range(evhttp_find_header(evhttp_request_get_input_headers(r->req), "Range"), size,
                        &first, &last);
    evhttp_add_header(out_h, "Accept-Ranges", "bytes");
    /* Evidence is somebody's upload: never sniffed, never a page with scripts. */
    evhttp_add_header(out_h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out_h, "Content-Security-Policy",
                      "sandbox; default-src 'none'; img-src 'self'; media-src 'self'");
    if (range < 0) {
        snprintf(header, sizeof header, "bytes */%" PRIu64, size);
        evhttp_add_header(out_h, "Content-Range", header);
        reply_error(r, 416, "range_not_satisfiable", "the file has %" PRIu64 " bytes", size);
        goto cleanup;
    }
    if (range == 0) {
        first = 0;
        last = size ? size - 1 : 0;
    }
    buf = evbuffer_new();
    if (!buf) {
        reply_error(r, 503, "busy", "out of memory");
        goto cleanup;
    }
    /* Bytes go from the file to the socket with sendfile(2): without this
     * flag libevent maps the whole range into memory and writes it in 16 KiB
     * pieces (the server's RSS grew by the file). */
    evbuffer_set_flags(buf, EVBUFFER_FLAG_DRAINS_TO_FD);
    /* ... and in large pieces: libevent's default is 16 KiB per send, i.e.
     * 65,536 sendfile calls for a gigabyte */
    evcon = evhttp_request_get_connection(r->req);
    if (evcon && evhttp_connection_get_bufferevent(evcon))
        bufferevent_set_max_single_write(evhttp_connection_get_bufferevent(evcon), SENDFILE_PIECE);
    if (size > 0) {
        /* The buffer takes the descriptor and closes it when sent. */
        if (evbuffer_add_file(buf, fd, (ev_off_t)first, (ev_off_t)(last - first + 1)) < 0) {
            reply_error(r, 500, "storage_failed", "cannot read the stored file");
            goto cleanup;
        }
    } else {
        close(fd);
    }
    fd = -1;
    if (range > 0) {
        snprintf(header, sizeof header, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last,
                 size);
        evhttp_add_header(out_h, "Content-Range", header);
    }
    evhttp_add_header(out_h, "Cache-Control", "private, max-age=0");
    add_disposition(out_h, inline_safe(media_type), filename, r->ids[0]);
    reply_buffer(r, range > 0 ? 206 : 200, media_type, buf);
cleanup:
    if (fd >= 0)
        close(fd);
    if (buf)
        evbuffer_free(buf);
}

/* A duration the answer gives in ms: absent -1, null `unbounded`, else its value. */
static int64_t answer_ms(json_t *meta, const char *name, int64_t unbounded)
{
    json_t *v = json_object_get(meta, name);
    if (json_is_null(v))
        return unbounded;
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static void on_content_authorized(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    const struct read_grant_query *q = r->state;
    json_t *meta = NULL;
    char *answer = NULL;
    int64_t audit_ms, grant_ms;

    if (res->status != DB_OK) {
        /* refused or failed: nothing kept, the next read goes the audited way */
        read_grant_forget(request_token_param(r), r->ids[0]);
        reply_db_failure(r, res);
        return;
    }
    meta = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (!json_is_object(meta)) {
        log_error("artifact %s: an authorization answer it cannot read", r->ids[0]);
        read_grant_forget(request_token_param(r), r->ids[0]);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    /* the audited read says how long its audit row stands (a reread does not);
     * both say how long the clock alone keeps the right (null: nothing but the cap) */
    audit_ms = answer_ms(meta, "audit_ms", -1);
    grant_ms = answer_ms(meta, "grant_ms", READ_GRANT_MAX_MS);
    json_object_del(meta, "audit_ms");
    json_object_del(meta, "grant_ms");
    if (grant_ms > 0)
        answer = json_dumps(meta, JSON_COMPACT);
    read_grant_store(request_token_param(r), r->ids[0], q, audit_ms, grant_ms, answer);
    /* done with the query's state: the object store's reply keeps its own there */
    r->state_free(r->state);
    r->state = NULL;
    r->state_free = NULL;
    serve_content(r, meta);
cleanup:
    free(answer);
    json_decref(meta);
}

void handle_artifact_content(struct request *r)
{
    struct read_grant_query *q;
    const char *answer = NULL;
    enum read_grant_found found = read_grant_find(request_token_param(r), r->ids[0], &answer);
    json_t *meta;

    if (found == READ_GRANT_REUSE) {
        /* authorized a moment ago and nothing could have revoked it since (read_grant.h) */
        if ((meta = json_loads(answer, 0, NULL))) {
            serve_content(r, meta);
            json_decref(meta);
            return;
        }
        found = READ_GRANT_AUDITED; /* out of memory: ask again; the audit row stands */
    }
    if (!(q = malloc(sizeof *q))) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = q;
    r->state_free = free;
    read_grant_begin(q);
    /* same parameters (credential, artifact id); the reread writes no audit row */
    request_query(r, found == READ_GRANT_AUDITED ? STMT_ARTIFACT_REREAD : STMT_ARTIFACT_CONTENT,
                  on_content_authorized);
}
