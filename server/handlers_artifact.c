/*
 * handlers_artifact.c - uploading and serving evidence.
 *
 * Upload (POST /v1/artifacts with raw bytes):
 *   1. precheck: the token may upload this kind (one round trip, so nobody
 *      without the right can make us write to disk);
 *   2. an offload thread writes the bytes to the content-addressed store
 *      (temp file, fsync, rename) while the loop serves others;
 *   3. the artifact row is inserted with the file's hash and size.
 * A JSON body ({kind,url,title?}) registers an external URL instead.
 *
 * Download (GET /v1/artifacts/{id}/content): the database authorizes and
 * audits the read, then the file is sent from the page cache with
 * evbuffer_add_file (sendfile where the kernel has it), honouring one
 * byte range so video players can seek.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "offload.h"
#include "router.h"
#include "store.h"

#define MAX_HEADER_TEXT 255

struct upload_state {
    struct evbuffer *data;
    char kind[32];
    char media_type[MAX_HEADER_TEXT + 1];
    char filename[MAX_HEADER_TEXT + 1];
    char sha256[65];
    char bytes[24];
    uint64_t size;
    int store_failed;
    char store_error[256];
};

static void upload_state_free(void *arg)
{
    struct upload_state *st = arg;
    if (st->data)
        evbuffer_free(st->data);
    free(st);
}

/* Header text we store: bounded and printable ASCII, so it can go into JSON and headers. */
static int copy_header(const char *value, char *out, size_t cap)
{
    size_t n = strlen(value);
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
            return -1;
    memcpy(out, value, n + 1);
    return 0;
}

static void on_artifact_stored(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    reply_json_text(r, 201, res->value ? res->value : "{}");
}

static void upload_write(void *arg)
{
    struct request *r = arg;
    struct upload_state *st = r->state;
    if (store_put_evbuffer(r->w->cfg->data_dir, st->data, st->sha256, &st->size, st->store_error,
                           sizeof st->store_error) < 0)
        st->store_failed = 1;
}

static void upload_written(void *arg)
{
    struct request *r = arg;
    struct upload_state *st = r->state;

    if (st->store_failed) {
        log_error("artifact upload: %s", st->store_error);
        reply_error(r, 500, "storage_failed", "the server could not store the file; try again");
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
    if (offload_submit(r->w->offload, r->w->base, upload_write, upload_written, r) < 0)
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
    if (!kind || copy_header(kind, st->kind, sizeof st->kind) < 0) {
        reply_error(r, 400, "bad_request",
                    "X-Artifact-Kind must say video, plan, reflection or other (or send JSON "
                    "{kind,url} to register a link)");
        return;
    }
    if (copy_header(ct ? ct : "application/octet-stream", st->media_type, sizeof st->media_type) <
        0) {
        reply_error(r, 400, "bad_request", "Content-Type must be 1 to %d printable characters",
                    MAX_HEADER_TEXT);
        return;
    }
    if (filename && copy_header(filename, st->filename, sizeof st->filename) < 0) {
        reply_error(r, 400, "bad_request", "X-Filename must be 1 to %d printable characters",
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
    r->params[1] = st->kind;
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

static void on_content_authorized(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *meta = NULL;
    const char *sha, *media_type, *url;
    char path[4096], header[128];
    struct evkeyvalq *out_h = evhttp_request_get_output_headers(r->req);
    struct evbuffer *buf = NULL;
    struct stat sb;
    uint64_t first = 0, last = 0, size;
    int fd = -1, range;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    meta = res->value ? json_loads(res->value, 0, NULL) : NULL;
    sha = json_string_value(json_object_get(meta, "sha256"));
    url = json_string_value(json_object_get(meta, "url"));
    media_type = json_string_value(json_object_get(meta, "media_type"));
    if (url) {
        reply_error(r, 409, "external_artifact", "this artifact is a link, not stored bytes: %s",
                    url);
        goto cleanup;
    }
    if (!sha || store_path(r->w->cfg->data_dir, sha, path, sizeof path) < 0) {
        log_error("artifact %s: no usable sha256 in its row", r->ids[0]);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0) {
        log_error("artifact %s: cannot open %s: %s", r->ids[0], path, strerror(errno));
        reply_error(r, 500, "storage_failed", "the stored file is missing (logged on the server)");
        goto cleanup;
    }
    size = (uint64_t)sb.st_size;
    range = parse_range(evhttp_find_header(evhttp_request_get_input_headers(r->req), "Range"), size,
                        &first, &last);
    evhttp_add_header(out_h, "Accept-Ranges", "bytes");
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
    reply_buffer(r, range > 0 ? 206 : 200, media_type ? media_type : "application/octet-stream",
                 buf);
cleanup:
    if (fd >= 0)
        close(fd);
    if (buf)
        evbuffer_free(buf);
    json_decref(meta);
}

void handle_artifact_content(struct request *r)
{
    request_query(r, STMT_ARTIFACT_CONTENT, on_content_authorized);
}
