/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3.c - one libcurl easy handle per call (offload threads; a handful of
 * calls per upload, so no shared connection cache between threads).
 *
 * libcurl signs each request (CURLOPT_AWS_SIGV4, "aws:amz:REGION:s3"); S3
 * also wants x-amz-content-sha256, which libcurl 7.88 does not add: we send
 * the body's real SHA-256 when we know it (the store then refuses altered
 * bytes), UNSIGNED-PAYLOAD otherwise. Queries are written already sorted and
 * encoded, the form SigV4's canonical query string has.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include "s3.h"

#define ANSWER_MAX      (4L << 20) /* ListParts of 1000 parts is ~200 KB */
#define CONNECT_MS      5000L
#define SMALL_CALL_MS   30000L
#define STALL_SECONDS   30L /* a transfer slower than 1 KiB/s for this long is dead */
#define XML_PARSE_FLAGS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

struct call {
    const struct s3_target *t;
    const char *method;
    const char *key;
    const char *query; /* sorted, encoded; NULL for none */
    const char *payload_sha256;
    const char *media_type;
    /* the request body: one of */
    int fd; /* from fd_offset on */
    uint64_t fd_offset;
    struct evbuffer *evb;
    const char *body;
    uint64_t size, sent;
    bool has_body;
    /* the answer */
    char *answer;
    size_t answer_len;
    EVP_MD_CTX *hash; /* when set, the answer is hashed, not kept */
    bool to_file;     /* when set, a 2xx answer goes into out_fd at out_offset, */
    int out_fd;       /* at most out_max bytes */
    uint64_t out_offset, out_max;
    CURL *curl;
    uint64_t received;
    curl_off_t content_length;
    bool small; /* bounded by SMALL_CALL_MS in all */
};

void s3_global_init(void)
{
    xmlInitParser();
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    size_t want = size * nmemb, n;
    uint64_t left = c->size - c->sent;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (c->evb) {
        int got = evbuffer_remove(c->evb, buf, want);
        if (got < 0)
            return CURL_READFUNC_ABORT;
        n = (size_t)got;
    } else if (c->body) {
        memcpy(buf, c->body + c->sent, want);
        n = want;
    } else {
        ssize_t got = pread(c->fd, buf, want, (off_t)(c->fd_offset + c->sent));
        if (got <= 0)
            return CURL_READFUNC_ABORT; /* the file shrank: never send short */
        n = (size_t)got;
    }
    c->sent += n;
    return n;
}

static bool ok_so_far(const struct call *c)
{
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    return code >= 200 && code < 300;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    size_t n = size * nmemb;
    char *grown;
    c->received += n;
    if (c->hash)
        return EVP_DigestUpdate(c->hash, data, n) ? n : 0;
    if (c->to_file && ok_so_far(c)) {
        if (c->received > c->out_max)
            return 0;
        for (size_t done = 0; done < n;) {
            ssize_t w = pwrite(c->out_fd, data + done, n - done,
                               (off_t)(c->out_offset + c->received - n + done));
            if (w <= 0)
                return 0;
            done += (size_t)w;
        }
        return n;
    }
    if (c->answer_len + n > (size_t)ANSWER_MAX)
        return 0;
    grown = realloc(c->answer, c->answer_len + n + 1);
    if (!grown)
        return 0;
    c->answer = grown;
    memcpy(c->answer + c->answer_len, data, n);
    c->answer_len += n;
    c->answer[c->answer_len] = '\0';
    return n;
}

/* The first element named name under node (depth-first), or NULL. */
static xmlNode *find(xmlNode *node, const char *name)
{
    for (xmlNode *n = node; n; n = n->next) {
        xmlNode *hit;
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
            return n;
        if ((hit = find(n->children, name)))
            return hit;
    }
    return NULL;
}

/* The text of the first element named name, copied into out; 0, or -1 when absent. */
static int find_text(xmlNode *root, const char *name, char *out, size_t out_len)
{
    xmlNode *n = find(root, name);
    xmlChar *text;
    int rc = -1;
    if (!n)
        return -1;
    text = xmlNodeGetContent(n);
    if (text && strlen((const char *)text) < out_len) {
        strcpy(out, (const char *)text);
        rc = 0;
    }
    xmlFree(text);
    return rc;
}

static xmlDoc *parse_answer(const struct call *c)
{
    if (!c->answer || c->answer_len == 0 || c->answer_len > (size_t)ANSWER_MAX)
        return NULL;
    return xmlReadMemory(c->answer, (int)c->answer_len, "s3.xml", NULL, XML_PARSE_FLAGS);
}

__attribute__((format(printf, 3, 4))) static void
status_set(struct s3_status *st, enum s3_outcome outcome, const char *fmt, ...)
{
    va_list ap;
    st->outcome = outcome;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof st->message, fmt, ap);
    va_end(ap);
}

static int perform(struct call *c, struct s3_status *st)
{
    CURL *curl = NULL;
    struct curl_slist *headers = NULL;
    char url[S3_URL_MAX], sigv4[128], header[512], *p;
    CURLcode rc;
    int result = -1;

    memset(st, 0, sizeof *st);
    if (s3_object_url(c->t, c->key, url, sizeof url) < 0 ||
        (c->query &&
         (p = url + strlen(url), (size_t)snprintf(p, sizeof url - (size_t)(p - url), "?%s",
                                                  c->query) >= sizeof url - (size_t)(p - url)))) {
        status_set(st, S3_FAILED, "%s", "the object's URL is too long");
        return -1;
    }
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", c->t->region);
    curl = c->curl = curl_easy_init();
    if (!curl) {
        status_set(st, S3_FAILED, "%s", "out of memory");
        return -1;
    }
    snprintf(header, sizeof header, "x-amz-content-sha256:%s",
             c->payload_sha256 ? c->payload_sha256 : "UNSIGNED-PAYLOAD");
    headers = curl_slist_append(headers, header);
    if (c->media_type) {
        snprintf(header, sizeof header, "Content-Type:%s", c->media_type);
        headers = curl_slist_append(headers, header);
    }
    if (!headers) {
        status_set(st, S3_FAILED, "%s", "out of memory");
        goto cleanup;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(curl, CURLOPT_USERNAME, c->t->access_key);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, c->t->secret_key);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_MS);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, STALL_SECONDS);
    if (c->small)
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, SMALL_CALL_MS);
    /* Large answers (hashed or written to a file) in large reads: fewer calls of on_write. */
    if (c->hash || c->to_file)
        curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, c);
    if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (c->has_body) {
        if (strcmp(c->method, "PUT") == 0)
            curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        else
            curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, c);
        if (strcmp(c->method, "PUT") == 0)
            curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->size);
        else
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->size);
    } else if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(c->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, c->method);
    }

    rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        status_set(st, S3_UNAVAILABLE, "the object store did not answer: %s",
                   curl_easy_strerror(rc));
        goto cleanup;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &st->http);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &c->content_length);
    if (st->http >= 200 && st->http < 300) {
        st->outcome = S3_OK;
        result = 0;
        goto cleanup;
    }
    {
        xmlDoc *doc = c->hash ? NULL : parse_answer(c);
        if (doc) {
            (void)find_text(xmlDocGetRootElement(doc), "Code", st->code, sizeof st->code);
            xmlFreeDoc(doc);
        }
    }
    st->outcome = st->http == 404                                         ? S3_NOT_FOUND
                  : st->http >= 500 || st->http == 429 || st->http == 408 ? S3_UNAVAILABLE
                                                                          : S3_REFUSED;
    snprintf(st->message, sizeof st->message, "%s %s: the object store answered %ld %s", c->method,
             c->key, st->http, st->code[0] ? st->code : "");
cleanup:
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return result;
}

static void call_free(struct call *c)
{
    free(c->answer);
    c->answer = NULL;
}

int s3_put_fd(const struct s3_target *t, const char *key, int fd, uint64_t size,
              const char *sha256_hex, const char *media_type, struct s3_status *st)
{
    return s3_put_range(t, key, fd, 0, size, sha256_hex, media_type, st);
}

int s3_put_range(const struct s3_target *t, const char *key, int fd, uint64_t offset, uint64_t size,
                 const char *sha256_hex, const char *media_type, struct s3_status *st)
{
    struct call c = {.t = t,
                     .method = "PUT",
                     .key = key,
                     .payload_sha256 = sha256_hex,
                     .media_type = media_type,
                     .fd = fd,
                     .fd_offset = offset,
                     .size = size,
                     .has_body = true};
    int rc = perform(&c, st);
    call_free(&c);
    return rc;
}

int s3_get_to_fd(const struct s3_target *t, const char *key, int fd, uint64_t offset, uint64_t max,
                 uint64_t *size, struct s3_status *st)
{
    struct call c = {.t = t,
                     .method = "GET",
                     .key = key,
                     .fd = -1,
                     .to_file = true,
                     .out_fd = fd,
                     .out_offset = offset,
                     .out_max = max};
    int rc = perform(&c, st);
    if (rc == 0)
        *size = c.received;
    else if (c.received > max && st->outcome == S3_UNAVAILABLE) /* we cut it */
        status_set(st, S3_FAILED, "GET %s: more than the %" PRIu64 " bytes expected", key, max);
    call_free(&c);
    return rc;
}

int s3_put_evbuffer(const struct s3_target *t, const char *key, struct evbuffer *data,
                    const char *sha256_hex, const char *media_type, struct s3_status *st)
{
    struct call c = {.t = t,
                     .method = "PUT",
                     .key = key,
                     .payload_sha256 = sha256_hex,
                     .media_type = media_type,
                     .fd = -1,
                     .evb = data,
                     .size = evbuffer_get_length(data),
                     .has_body = true};
    int rc = perform(&c, st);
    call_free(&c);
    return rc;
}

int s3_head(const struct s3_target *t, const char *key, uint64_t *size, struct s3_status *st)
{
    struct call c = {.t = t, .method = "HEAD", .key = key, .fd = -1, .small = true};
    int rc = perform(&c, st);
    if (rc == 0 && size)
        *size = c.content_length >= 0 ? (uint64_t)c.content_length : 0;
    call_free(&c);
    return rc;
}

int s3_delete(const struct s3_target *t, const char *key, struct s3_status *st)
{
    struct call c = {.t = t, .method = "DELETE", .key = key, .fd = -1, .small = true};
    int rc = perform(&c, st);
    call_free(&c);
    return rc;
}

int s3_hash_object(const struct s3_target *t, const char *key, char sha256_hex[65], uint64_t *size,
                   struct s3_status *st)
{
    static const char hex[] = "0123456789abcdef";
    struct call c = {.t = t, .method = "GET", .key = key, .fd = -1};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int rc;

    c.hash = EVP_MD_CTX_new();
    if (!c.hash || !EVP_DigestInit_ex(c.hash, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(c.hash);
        memset(st, 0, sizeof *st);
        status_set(st, S3_FAILED, "%s", "out of memory");
        return -1;
    }
    rc = perform(&c, st);
    if (rc == 0 && EVP_DigestFinal_ex(c.hash, md, &len) && len == 32) {
        for (unsigned i = 0; i < 32; i++) {
            sha256_hex[2 * i] = hex[md[i] >> 4];
            sha256_hex[2 * i + 1] = hex[md[i] & 15];
        }
        sha256_hex[64] = '\0';
        *size = c.received;
    } else if (rc == 0) {
        status_set(st, S3_FAILED, "%s", "SHA-256 failed");
        rc = -1;
    }
    EVP_MD_CTX_free(c.hash);
    call_free(&c);
    return rc;
}

/* "uploadId=<encoded>" (plus more already-sorted pairs after it). */
static int upload_query(char *out, size_t out_len, const char *prefix, const char *upload_id)
{
    char enc[3 * S3_UPLOAD_ID_MAX + 1];
    if (s3_uri_encode(upload_id, false, enc, sizeof enc) < 0)
        return -1;
    return (size_t)snprintf(out, out_len, "%suploadId=%s", prefix, enc) < out_len ? 0 : -1;
}

int s3_multipart_create(const struct s3_target *t, const char *key, const char *media_type,
                        char upload_id[S3_UPLOAD_ID_MAX], struct s3_status *st)
{
    struct call c = {.t = t,
                     .method = "POST",
                     .key = key,
                     .query = "uploads=",
                     .media_type = media_type,
                     .fd = -1,
                     .small = true};
    int rc = perform(&c, st);
    if (rc == 0) {
        xmlDoc *doc = parse_answer(&c);
        if (!doc ||
            find_text(xmlDocGetRootElement(doc), "UploadId", upload_id, S3_UPLOAD_ID_MAX) < 0 ||
            !upload_id[0]) {
            status_set(st, S3_UNAVAILABLE, "%s",
                       "CreateMultipartUpload: no UploadId in the answer");
            rc = -1;
        }
        xmlFreeDoc(doc);
    }
    call_free(&c);
    return rc;
}

/* Reads one ListParts page into parts; *truncated and *next for the next page. */
static int read_parts_page(const struct call *c, struct s3_part *parts, size_t cap, size_t *n,
                           bool *truncated, int *next)
{
    xmlDoc *doc = parse_answer(c);
    xmlNode *root;
    char text[32];
    if (!doc)
        return -1;
    root = xmlDocGetRootElement(doc);
    *truncated =
        find_text(root, "IsTruncated", text, sizeof text) == 0 && strcmp(text, "true") == 0;
    *next = find_text(root, "NextPartNumberMarker", text, sizeof text) == 0 ? atoi(text) : 0;
    for (xmlNode *p = root ? root->children : NULL; p; p = p->next) {
        struct s3_part part = {0};
        char num[16], size[24];
        if (p->type != XML_ELEMENT_NODE || strcmp((const char *)p->name, "Part") != 0)
            continue;
        if (find_text(p->children, "PartNumber", num, sizeof num) < 0 ||
            find_text(p->children, "Size", size, sizeof size) < 0 ||
            find_text(p->children, "ETag", part.etag, sizeof part.etag) < 0)
            continue;
        part.number = atoi(num);
        part.size = strtoull(size, NULL, 10);
        if (part.number < 1 || part.number > S3_MAX_PARTS || *n >= cap)
            continue;
        parts[(*n)++] = part;
    }
    xmlFreeDoc(doc);
    return 0;
}

int s3_multipart_list(const struct s3_target *t, const char *key, const char *upload_id,
                      struct s3_part *parts, size_t cap, size_t *n, struct s3_status *st)
{
    int marker = 0;
    *n = 0;
    for (int page = 0; page < S3_MAX_PARTS / 1000 + 1; page++) {
        char prefix[64], query[1024];
        struct call c = {
            .t = t, .method = "GET", .key = key, .fd = -1, .small = true, .query = query};
        bool truncated = false;
        int next = 0, rc;
        /* sorted: max-parts < part-number-marker < uploadId */
        snprintf(prefix, sizeof prefix, "max-parts=1000&part-number-marker=%d&", marker);
        if (upload_query(query, sizeof query, prefix, upload_id) < 0) {
            memset(st, 0, sizeof *st);
            status_set(st, S3_FAILED, "%s", "the upload id is too long");
            return -1;
        }
        rc = perform(&c, st);
        if (rc == 0 && read_parts_page(&c, parts, cap, n, &truncated, &next) < 0) {
            status_set(st, S3_UNAVAILABLE, "%s", "ListParts: the answer is not XML");
            rc = -1;
        }
        call_free(&c);
        if (rc < 0)
            return -1;
        if (!truncated || next <= marker)
            return 0;
        marker = next;
    }
    return 0;
}

int s3_multipart_complete(const struct s3_target *t, const char *key, const char *upload_id,
                          const struct s3_part *parts, size_t n, struct s3_status *st)
{
    char query[1024];
    size_t cap = 64 + n * (48 + S3_ETAG_MAX), len = 0;
    char *xml = malloc(cap);
    struct call c = {.t = t, .method = "POST", .key = key, .fd = -1, .query = query};
    int rc = -1;

    memset(st, 0, sizeof *st);
    if (!xml || upload_query(query, sizeof query, "", upload_id) < 0) {
        status_set(st, S3_FAILED, "%s", "out of memory");
        free(xml);
        return -1;
    }
    len += (size_t)snprintf(xml + len, cap - len, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(xml + len, cap - len,
                                "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
                                parts[i].number, parts[i].etag);
    len += (size_t)snprintf(xml + len, cap - len, "</CompleteMultipartUpload>");
    c.body = xml;
    c.size = len;
    c.has_body = true;
    c.media_type = "application/xml";
    rc = perform(&c, st);
    /* S3 may answer 200 and put an <Error> in the body (the complete failed late). */
    if (rc == 0) {
        xmlDoc *doc = parse_answer(&c);
        xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
        if (root && strcmp((const char *)root->name, "Error") == 0) {
            (void)find_text(root, "Code", st->code, sizeof st->code);
            st->outcome =
                strcmp(st->code, "NoSuchUpload") == 0 ? S3_NOT_FOUND
                : strcmp(st->code, "InternalError") == 0 || strcmp(st->code, "SlowDown") == 0
                    ? S3_UNAVAILABLE
                    : S3_REFUSED;
            snprintf(st->message, sizeof st->message, "CompleteMultipartUpload: %s", st->code);
            rc = -1;
        }
        xmlFreeDoc(doc);
    }
    call_free(&c);
    free(xml);
    return rc;
}

int s3_multipart_abort(const struct s3_target *t, const char *key, const char *upload_id,
                       struct s3_status *st)
{
    char query[1024];
    struct call c = {
        .t = t, .method = "DELETE", .key = key, .fd = -1, .query = query, .small = true};
    int rc;
    if (upload_query(query, sizeof query, "", upload_id) < 0) {
        memset(st, 0, sizeof *st);
        status_set(st, S3_FAILED, "%s", "the upload id is too long");
        return -1;
    }
    rc = perform(&c, st);
    call_free(&c);
    return rc;
}
