/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3_uploads.c - presigned multipart uploads: the browser sends a large file
 * straight to the object store, in parts, and accord only signs, records and
 * checks (ACCORD_STORAGE=s3; under the local store these answer 409 and tus
 * is the way).
 *
 *   POST   /v1/object-uploads                 {kind, media_type, bytes, filename?, sha256?}
 *          row (authorization, quota) -> store: CreateMultipartUpload
 *          (network thread) -> row open -> 201 {id, part_size, parts, ...}
 *   POST   /v1/object-uploads/{id}/part-urls  {part_numbers: [..]}
 *          -> presigned PUT URLs (url_ttl seconds), only for the owner
 *   POST   /v1/object-uploads/{id}/parts      {part_number, etag}  (generic route)
 *          records a part the store took; GET /v1/object-uploads/{id} lists
 *          them, which is how a client resumes after a dropped connection
 *   POST   /v1/object-uploads/{id}/complete
 *          every part recorded? (409 missing_parts) -> network thread: the
 *          store's parts match the record? (409 part_mismatch, those parts
 *          forgotten) -> CompleteMultipartUpload -> GET the object and hash it
 *          (422 checksum_mismatch when the announced sha256 differs) ->
 *          the artifact row, made only now -> 201 artifact
 *   DELETE /v1/object-uploads/{id}            row -> AbortMultipartUpload
 *
 * The store down at any step: 503 + Retry-After, and the upload is as it was
 * (its parts stay recorded). The store lost the upload: 410, the row goes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "log.h"
#include "offload.h"
#include "pgpool.h"
#include "router.h"
#include "s3.h"
#include "storage.h"
#include "storage_reply.h"
#include "worker.h"

/*
 * A server completes an upload within this, or another may take over. While
 * it works (the read-back of a large file takes seconds) it renews the lease
 * every COMPLETE_RENEW_SECONDS, so a server killed while completing holds the
 * upload for at most a minute (019_objects2.sql).
 */
#define COMPLETE_LEASE_SECONDS "60"
#define COMPLETE_RENEW_SECONDS 20

enum complete_outcome {
    COMPLETE_OK,
    COMPLETE_BAD_PARTS, /* recorded parts the store does not hold as recorded */
    COMPLETE_GONE,      /* the store has no such upload (and no finished object) */
    COMPLETE_CHECKSUM,  /* the object's SHA-256 is not the one announced */
    COMPLETE_STORE,     /* the store failed: see status */
};

struct lease_renewal;

struct objup {
    char id[37];
    char object_key[64];
    char store_upload_id[S3_UPLOAD_ID_MAX];
    char media_type[256];
    char declared_sha[65];
    uint64_t bytes, part_size;
    int parts;
    struct s3_part *recorded;      /* complete: the parts as recorded, by number */
    struct lease_renewal *renewal; /* complete: while the network thread works */
    size_t n_recorded;
    /* results of the network thread */
    enum storage_status status;
    enum complete_outcome outcome;
    char bad_parts[4096]; /* "{2,5}": a PostgreSQL int[] literal */
    char sha256[65];
    uint64_t got_bytes;
    double store_seconds, hash_seconds; /* complete: for the log */
    char error[512];
    /* parameter text */
    char n1[24], n2[24], n3[24], n4[24];
};

/* ----------------------------------------------- the completing lease, renewed */

struct lease_renewal {
    struct worker *w;
    struct event *timer;
    char id[37];
    const char *params[2];
    bool querying; /* a renewal is in flight */
    bool done;     /* the work ended: freed once no renewal is in flight */
};

static void renewal_free_if_done(struct lease_renewal *l)
{
    if (l->done && !l->querying) {
        event_free(l->timer);
        free(l);
    }
}

static void on_renewed(const struct db_result *res, void *arg)
{
    struct lease_renewal *l = arg;
    l->querying = false;
    if (res->status != DB_OK)
        log_warn("object upload %s: the completing lease was not renewed (%s)", l->id,
                 res->message ? res->message : "the database did not answer");
    renewal_free_if_done(l);
}

static void on_renew_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lease_renewal *l = arg;
    struct timeval every = {COMPLETE_RENEW_SECONDS, 0};
    (void)fd;
    (void)what;
    if (!l->querying && pgpool_query(l->w->pool, STMT_OBJECT_UPLOAD_COMPLETE_RENEW, l->params,
                                     on_renewed, l) == DB_OK)
        l->querying = true;
    evtimer_add(l->timer, &every);
}

/* Renews upload id's completing lease until renewal_stop; NULL when out of memory. */
static struct lease_renewal *renewal_start(struct worker *w, const char *id)
{
    struct lease_renewal *l = calloc(1, sizeof *l);
    struct timeval every = {COMPLETE_RENEW_SECONDS, 0};
    if (!l)
        return NULL;
    l->w = w;
    snprintf(l->id, sizeof l->id, "%s", id);
    l->params[0] = l->id;
    l->params[1] = COMPLETE_LEASE_SECONDS;
    l->timer = evtimer_new(w->base, on_renew_timer, l);
    if (!l->timer || evtimer_add(l->timer, &every) < 0) {
        if (l->timer)
            event_free(l->timer);
        free(l);
        return NULL;
    }
    return l;
}

static void renewal_stop(struct lease_renewal *l)
{
    if (!l)
        return;
    l->done = true;
    evtimer_del(l->timer);
    renewal_free_if_done(l);
}

static void objup_free(void *arg)
{
    struct objup *u = arg;
    renewal_stop(u->renewal);
    free(u->recorded);
    free(u);
}

static struct objup *objup_new(struct request *r)
{
    struct objup *u = calloc(1, sizeof *u);
    if (!u) {
        reply_error(r, 503, "busy", "out of memory");
        return NULL;
    }
    r->state = u;
    r->state_free = objup_free;
    return u;
}

static bool s3_only(struct request *r)
{
    if (r->w->storage->backend == STORAGE_S3)
        return true;
    reply_error(r, 409, "object_storage_off",
                "this server keeps evidence on its own disk (ACCORD_STORAGE=local): upload with "
                "tus (POST /v1/uploads) or POST /v1/artifacts");
    return false;
}

static int copy_text(json_t *doc, const char *field, char *out, size_t out_len)
{
    const char *v = json_string_value(json_object_get(doc, field));
    if (!v || strlen(v) >= out_len)
        return -1;
    strcpy(out, v);
    return 0;
}

/* ------------------------------------------------------------------ create */

static void on_opened(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    json_t *doc;
    if (res->status != DB_OK) {
        log_warn("object upload %s: the store made it, the database did not record it; the "
                 "bucket's lifecycle rule for incomplete multipart uploads removes it",
                 u->id);
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (!doc) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    json_object_set_new(doc, "url_ttl", json_integer(r->w->storage->url_ttl));
    reply_json(r, 201, doc);
}

static void create_work(void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    struct s3_status st;
    s3_multipart_create(&r->w->storage->s3, u->object_key, u->media_type, u->store_upload_id, &st);
    u->status = st.outcome == S3_OK            ? STORAGE_OK
                : st.outcome == S3_UNAVAILABLE ? STORAGE_UNAVAILABLE
                                               : STORAGE_FAILED;
    snprintf(u->error, sizeof u->error, "%s", st.message);
}

static void on_discarded(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    if (res->status != DB_OK)
        log_warn("object upload %s: not discarded after the store failed", u->id);
    reply_storage_status(r, u->status, "your upload");
}

static void create_done(void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    if (u->status != STORAGE_OK) {
        log_error("object upload %s: CreateMultipartUpload: %s", u->id, u->error);
        /* nothing of it is kept: the quota it held comes back */
        r->params[0] = u->id;
        request_query(r, STMT_OBJECT_UPLOAD_DISCARD, on_discarded);
        return;
    }
    r->params[0] = u->id;
    r->params[1] = u->store_upload_id;
    request_query(r, STMT_OBJECT_UPLOAD_OPENED, on_opened);
}

static void on_created(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    json_t *doc;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (copy_text(doc, "id", u->id, sizeof u->id) < 0 ||
        copy_text(doc, "object_key", u->object_key, sizeof u->object_key) < 0 ||
        copy_text(doc, "media_type", u->media_type, sizeof u->media_type) < 0) {
        json_decref(doc);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    json_decref(doc);
    if (offload_submit(r->w->offload_net, r->w->base, create_work, create_done, r) < 0) {
        u->status = STORAGE_UNAVAILABLE;
        r->params[0] = u->id;
        request_query(r, STMT_OBJECT_UPLOAD_DISCARD, on_discarded);
    }
}

void handle_object_upload_create(struct request *r)
{
    struct objup *u;
    const struct storage *s = r->w->storage;
    if (!s3_only(r) || !(u = objup_new(r)))
        return;
    snprintf(u->n1, sizeof u->n1, "%" PRIu64, s->part_size);
    snprintf(u->n2, sizeof u->n2, "%" PRIu64, s->part_size * S3_MAX_PARTS);
    snprintf(u->n3, sizeof u->n3, "%ld", r->w->cfg->quota_bytes);
    snprintf(u->n4, sizeof u->n4, "%ld", r->w->cfg->quota_in_flight);
    /* params[0] token, [1] body (router) */
    r->params[2] = u->n1;
    r->params[3] = u->n2;
    r->params[4] = u->n3;
    r->params[5] = u->n4;
    request_query(r, STMT_OBJECT_UPLOAD_CREATE, on_created);
}

/* --------------------------------------------------------------- part URLs */

static void on_part_urls(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    const struct storage *s = r->w->storage;
    json_t *doc = NULL, *parts, *out = NULL, *list;
    const char *key, *upload_id;
    char expires[32], url[S3_URL_MAX];
    time_t now = time(NULL), until = now + s->url_ttl;
    struct tm tm;
    size_t i;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    key = json_string_value(json_object_get(doc, "object_key"));
    upload_id = json_string_value(json_object_get(doc, "store_upload_id"));
    parts = json_object_get(doc, "parts");
    list = json_array();
    if (!key || !upload_id || !json_is_array(parts) || !list) {
        json_decref(list);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    gmtime_r(&until, &tm);
    strftime(expires, sizeof expires, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (i = 0; i < json_array_size(parts); i++) {
        json_t *p = json_array_get(parts, i);
        char number[16];
        struct s3_param q[2] = {{"partNumber", number}, {"uploadId", upload_id}};
        snprintf(number, sizeof number, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(p, "part_number")));
        if (s3_presign(&s->s3_public, "PUT", key, q, 2, now, s->url_ttl, url, sizeof url) < 0) {
            json_decref(list);
            reply_error(r, 500, "internal", "internal error (logged on the server)");
            goto cleanup;
        }
        json_array_append_new(
            list, json_pack("{s:O,s:O,s:s,s:s}", "part_number", json_object_get(p, "part_number"),
                            "bytes", json_object_get(p, "bytes"), "method", "PUT", "url", url));
    }
    out = json_pack("{s:s,s:o}", "expires_at", expires, "parts", list);
    reply_json(r, 200, out);
cleanup:
    json_decref(doc);
}

void handle_object_upload_part_urls(struct request *r)
{
    if (!s3_only(r))
        return;
    request_query(r, STMT_OBJECT_UPLOAD_PART_URLS, on_part_urls);
}

/* ---------------------------------------------------------------- complete */

static void normalize_etag(const char *in, char *out, size_t out_len)
{
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
        in++;
        n -= 2;
    }
    if (n >= out_len)
        n = out_len - 1;
    memcpy(out, in, n);
    out[n] = '\0';
}

static uint64_t expected_size(const struct objup *u, int number)
{
    return number < u->parts ? u->part_size : u->bytes - (uint64_t)(u->parts - 1) * u->part_size;
}

static void store_failed(struct objup *u, const struct s3_status *st)
{
    u->outcome = COMPLETE_STORE;
    u->status = st->outcome == S3_UNAVAILABLE ? STORAGE_UNAVAILABLE : STORAGE_FAILED;
    snprintf(u->error, sizeof u->error, "%s", st->message);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Network thread: check the parts, complete in the store, hash the object. */
static void complete_work(void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    const struct s3_target *t = &r->w->storage->s3;
    struct s3_status st;
    struct s3_part *stored = NULL;
    size_t n_stored = 0, bad_len = 0;
    uint64_t size = 0;
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    stored = calloc((size_t)u->parts + 1, sizeof *stored);
    if (!stored) {
        u->outcome = COMPLETE_STORE;
        u->status = STORAGE_FAILED;
        snprintf(u->error, sizeof u->error, "out of memory");
        return;
    }
    if (s3_multipart_list(t, u->object_key, u->store_upload_id, stored, (size_t)u->parts + 1,
                          &n_stored, &st) < 0) {
        if (st.outcome != S3_NOT_FOUND) {
            store_failed(u, &st);
            goto cleanup;
        }
        /* No such upload: completed by an earlier try that died before the
         * database heard of it (the object is there), or lost. */
        if (s3_head(t, u->object_key, &size, &st) < 0 || size != u->bytes) {
            if (st.outcome == S3_UNAVAILABLE) {
                store_failed(u, &st);
            } else {
                u->outcome = COMPLETE_GONE;
                snprintf(u->error, sizeof u->error, "the store has no upload %s",
                         u->store_upload_id);
            }
            goto cleanup;
        }
    } else {
        bad_len = (size_t)snprintf(u->bad_parts, sizeof u->bad_parts, "{");
        for (size_t i = 0; i < u->n_recorded; i++) {
            const struct s3_part *want = &u->recorded[i];
            const struct s3_part *have = NULL;
            char a[S3_ETAG_MAX], b[S3_ETAG_MAX];
            for (size_t j = 0; j < n_stored; j++)
                if (stored[j].number == want->number)
                    have = &stored[j];
            normalize_etag(want->etag, a, sizeof a);
            if (have)
                normalize_etag(have->etag, b, sizeof b);
            if (!have || strcmp(a, b) != 0 || have->size != expected_size(u, want->number)) {
                if (bad_len + 16 < sizeof u->bad_parts)
                    bad_len += (size_t)snprintf(
                        u->bad_parts + bad_len, sizeof u->bad_parts - bad_len, "%s%d",
                        u->outcome == COMPLETE_BAD_PARTS ? "," : "", want->number);
                u->outcome = COMPLETE_BAD_PARTS;
            } else {
                /* the store's own spelling of the ETag goes into the complete */
                snprintf(u->recorded[i].etag, sizeof u->recorded[i].etag, "%s", have->etag);
            }
        }
        snprintf(u->bad_parts + bad_len, sizeof u->bad_parts - bad_len, "}");
        if (u->outcome == COMPLETE_BAD_PARTS)
            goto cleanup;
        if (s3_multipart_complete(t, u->object_key, u->store_upload_id, u->recorded, u->n_recorded,
                                  &st) < 0) {
            if (st.outcome == S3_NOT_FOUND) {
                u->outcome = COMPLETE_GONE;
                snprintf(u->error, sizeof u->error, "%s", st.message);
            } else {
                store_failed(u, &st);
            }
            goto cleanup;
        }
    }
    /* Integrity: accord hashes what the store now holds, whatever the client said. */
    u->store_seconds = seconds_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (s3_hash_object(t, u->object_key, u->sha256, &u->got_bytes, &st) < 0) {
        if (st.outcome == S3_NOT_FOUND) {
            u->outcome = COMPLETE_GONE;
            snprintf(u->error, sizeof u->error, "%s", st.message);
        } else {
            store_failed(u, &st);
        }
        goto cleanup;
    }
    if ((u->declared_sha[0] && strcmp(u->declared_sha, u->sha256) != 0) ||
        u->got_bytes != u->bytes) {
        u->outcome = COMPLETE_CHECKSUM;
        snprintf(u->error, sizeof u->error,
                 "announced sha256 %s and %" PRIu64 " bytes, got %s and %" PRIu64, u->declared_sha,
                 u->bytes, u->sha256, u->got_bytes);
        if (s3_delete(t, u->object_key, &st) < 0)
            log_warn("object upload %s: the mismatched object stays: %s", u->id, st.message);
        goto cleanup;
    }
    u->hash_seconds = seconds_since(&t0);
    u->outcome = COMPLETE_OK;
cleanup:
    free(stored);
}

static void on_finished(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    reply_json_text(r, 201, res->value ? res->value : "{}");
}

static void on_failed_recorded(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    if (res->status != DB_OK)
        log_warn("object upload %s: the failed complete was not recorded (its lease runs out)",
                 u->id);
    switch (u->outcome) {
    case COMPLETE_BAD_PARTS:
        reply_error(r, 409, "part_mismatch",
                    "the store does not hold parts %s as they were recorded (missing, another "
                    "ETag or another size): send them again, record them, and complete again",
                    u->bad_parts);
        return;
    case COMPLETE_GONE:
        reply_error(r, 410, "upload_gone",
                    "the object store no longer has this upload (aborted or expired there); "
                    "start a new upload");
        return;
    case COMPLETE_CHECKSUM:
        reply_error(r, 422, "checksum_mismatch",
                    "the stored file's SHA-256 is %s, not the sha256 announced when the upload "
                    "was created; it was discarded: start a new upload",
                    u->sha256);
        return;
    default:
        reply_storage_status(r, u->status, "your upload");
        return;
    }
}

static void complete_done(void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;

    renewal_stop(u->renewal);
    u->renewal = NULL;

    if (u->outcome == COMPLETE_OK) {
        log_info("object upload %s: %d parts, %" PRIu64 " bytes: the store's checks and "
                 "complete %.2f s, accord's read-back and SHA-256 %.2f s",
                 u->id, u->parts, u->got_bytes, u->store_seconds, u->hash_seconds);
        snprintf(u->n1, sizeof u->n1, "%" PRIu64, u->got_bytes);
        r->params[0] = request_token_param(r);
        r->params[1] = u->id;
        r->params[2] = u->sha256;
        r->params[3] = u->n1;
        request_query(r, STMT_OBJECT_UPLOAD_COMPLETE_FINISH, on_finished);
        return;
    }
    log_warn("object upload %s: complete failed: %s", u->id, u->error);
    r->params[0] = u->id;
    r->params[1] = u->outcome == COMPLETE_BAD_PARTS ? u->bad_parts : "{}";
    r->params[2] =
        u->outcome == COMPLETE_GONE || u->outcome == COMPLETE_CHECKSUM ? "true" : "false";
    request_query(r, STMT_OBJECT_UPLOAD_COMPLETE_FAILED, on_failed_recorded);
}

static void on_complete_begun(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    json_t *doc = NULL, *parts;
    size_t i;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    parts = json_object_get(doc, "parts_done");
    snprintf(u->id, sizeof u->id, "%s", r->ids[0]);
    if (copy_text(doc, "object_key", u->object_key, sizeof u->object_key) < 0 ||
        copy_text(doc, "store_upload_id", u->store_upload_id, sizeof u->store_upload_id) < 0 ||
        !json_is_array(parts)) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    (void)copy_text(doc, "sha256", u->declared_sha, sizeof u->declared_sha);
    u->bytes = (uint64_t)json_integer_value(json_object_get(doc, "bytes"));
    u->part_size = (uint64_t)json_integer_value(json_object_get(doc, "part_size"));
    u->parts = (int)json_integer_value(json_object_get(doc, "parts"));
    u->n_recorded = json_array_size(parts);
    u->recorded = calloc(u->n_recorded + 1, sizeof *u->recorded);
    if (!u->recorded || u->parts < 1 || u->n_recorded != (size_t)u->parts) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        goto cleanup;
    }
    for (i = 0; i < u->n_recorded; i++) {
        json_t *p = json_array_get(parts, i);
        u->recorded[i].number = (int)json_integer_value(json_object_get(p, "part_number"));
        if (copy_text(p, "etag", u->recorded[i].etag, sizeof u->recorded[i].etag) < 0) {
            reply_error(r, 500, "internal", "internal error (logged on the server)");
            goto cleanup;
        }
    }
    if (offload_submit(r->w->offload_net, r->w->base, complete_work, complete_done, r) == 0) {
        if (!(u->renewal = renewal_start(r->w, u->id)))
            log_warn("object upload %s: the completing lease will not be renewed", u->id);
    } else {
        u->outcome = COMPLETE_STORE;
        u->status = STORAGE_UNAVAILABLE;
        snprintf(u->error, sizeof u->error, "no network thread");
        complete_done(r);
    }
cleanup:
    json_decref(doc);
}

void handle_object_upload_complete(struct request *r)
{
    struct objup *u;
    if (!s3_only(r) || !(u = objup_new(r)))
        return;
    r->params[2] = COMPLETE_LEASE_SECONDS;
    request_query(r, STMT_OBJECT_UPLOAD_COMPLETE_BEGIN, on_complete_begun);
}

/* ------------------------------------------------------------------ delete */

static void abort_work(void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    struct s3_status st;
    if (u->store_upload_id[0] &&
        s3_multipart_abort(&r->w->storage->s3, u->object_key, u->store_upload_id, &st) < 0 &&
        st.outcome != S3_NOT_FOUND)
        log_warn("object upload %s deleted, but the store did not abort it (%s): the bucket's "
                 "lifecycle rule for incomplete multipart uploads removes its parts",
                 u->id, st.message);
}

static void abort_done(void *arg)
{
    reply_empty(arg, 204);
}

static void on_deleted(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct objup *u = r->state;
    json_t *doc;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    doc = res->value ? json_loads(res->value, 0, NULL) : NULL;
    snprintf(u->id, sizeof u->id, "%s", r->ids[0]);
    (void)copy_text(doc, "object_key", u->object_key, sizeof u->object_key);
    (void)copy_text(doc, "store_upload_id", u->store_upload_id, sizeof u->store_upload_id);
    json_decref(doc);
    if (r->w->storage->backend != STORAGE_S3 ||
        offload_submit(r->w->offload_net, r->w->base, abort_work, abort_done, r) < 0)
        reply_empty(r, 204);
}

void handle_object_upload_delete(struct request *r)
{
    if (!objup_new(r))
        return;
    request_query(r, STMT_OBJECT_UPLOAD_DELETE, on_deleted);
}
