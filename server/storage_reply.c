/* SPDX-License-Identifier: Apache-2.0 */
/* storage_reply.c - see storage_reply.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "offload.h"
#include "storage_reply.h"
#include "worker.h"

void reply_storage_status(struct request *r, enum storage_status status, const char *what)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    char message[256];
    switch (status) {
    case STORAGE_OK:
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    case STORAGE_FULL:
        reply_storage_full(r);
        return;
    case STORAGE_UNAVAILABLE:
        /* reply_error's own 503 says "1 s"; a store outage lasts longer. */
        evhttp_add_header(h, "Retry-After", STORAGE_RETRY_AFTER);
        snprintf(message, sizeof message,
                 "the evidence store is unavailable; %s was not changed. Try again in a minute",
                 what);
        reply_json(r, 503, request_error_body(r, "storage_unavailable", message));
        return;
    case STORAGE_GONE:
        reply_error(r, 410, "evidence_gone",
                    "%s is no longer in the evidence store (removed outside accord); ask the "
                    "owner to upload it again",
                    what);
        return;
    case STORAGE_FAILED:
        reply_error(r, 500, "storage_failed", "the server could not reach %s (logged)", what);
        return;
    }
}

struct content_job {
    char sha256[65];
    char *object_key;
    uint64_t bytes;
    char *media_type;
    char *disposition;
    enum storage_status status;
    char error[512];
};

static void content_job_free(void *arg)
{
    struct content_job *j = arg;
    free(j->object_key);
    free(j->media_type);
    free(j->disposition);
    free(j);
}

static void content_check(void *arg)
{
    struct request *r = arg;
    struct content_job *j = r->state;
    j->status =
        storage_check(r->w->storage, j->sha256, j->object_key, j->bytes, j->error, sizeof j->error);
}

static void content_checked(void *arg)
{
    struct request *r = arg;
    struct content_job *j = r->state;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    char key[2048], url[S3_URL_MAX];

    if (j->status != STORAGE_OK) {
        log_warn("artifact %s: %s", r->ids[0], j->error);
        reply_storage_status(r, j->status, "this evidence");
        return;
    }
    if (storage_artifact_key(j->sha256, j->object_key, key, sizeof key) < 0 ||
        storage_presign_get(r->w->storage, key, j->media_type, j->disposition, url, sizeof url) <
            0) {
        log_error("artifact %s: cannot presign its object", r->ids[0]);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    /* The URL is a credential for url_ttl seconds: not cached, not sent on as a Referer. */
    evhttp_add_header(h, "Location", url);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    reply_empty(r, 302);
}

void storage_reply_s3_content(struct request *r, const char *sha256_hex, const char *object_key,
                              uint64_t bytes, const char *media_type, const char *disposition)
{
    struct content_job *j = calloc(1, sizeof *j);
    if (!j) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = j;
    r->state_free = content_job_free;
    snprintf(j->sha256, sizeof j->sha256, "%s", sha256_hex ? sha256_hex : "");
    j->bytes = bytes;
    j->object_key = object_key ? strdup(object_key) : NULL;
    j->media_type = strdup(media_type);
    j->disposition = strdup(disposition);
    if ((object_key && !j->object_key) || !j->media_type || !j->disposition) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    if (offload_submit(r->w->offload_net, r->w->base, content_check, content_checked, r) < 0)
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
}
