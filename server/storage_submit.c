/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storage_submit.c - POST /v1/submissions and /v1/submissions/{id}/resubmit
 * under ACCORD_STORAGE=s3: before the submission is made, a network thread
 * checks (HEAD) that every listed artifact of the caller is still in the
 * store, so evidence deleted behind accord's back is a clear 409
 * evidence_missing (nothing made), not a submission an assessor cannot read.
 * Then the route's own statement runs as for any generic route. Under the
 * local store the statement runs at once, as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "offload.h"
#include "router.h"
#include "storage.h"
#include "storage_reply.h"
#include "worker.h"

struct submit_check {
    const char *saved[REQUEST_MAX_PARAMS]; /* the route's parameters, back after the check */
    json_t *artifacts;                     /* [{id, sha256, object_key, bytes}] */
    enum storage_status status;
    char missing[40 * 10 + 1]; /* up to ten ids, for the message */
    char error[512];
};

static void submit_check_free(void *arg)
{
    struct submit_check *c = arg;
    json_decref(c->artifacts);
    free(c);
}

static void check_work(void *arg)
{
    struct request *r = arg;
    struct submit_check *c = r->state;
    size_t i, n = 0, len = 0;
    json_t *a;

    c->status = STORAGE_OK;
    json_array_foreach(c->artifacts, i, a)
    {
        json_int_t bytes = json_integer_value(json_object_get(a, "bytes"));
        enum storage_status st =
            storage_check(r->w->storage, json_string_value(json_object_get(a, "sha256")),
                          json_string_value(json_object_get(a, "object_key")),
                          bytes > 0 ? (uint64_t)bytes : 0, c->error, sizeof c->error);
        if (st == STORAGE_GONE) {
            if (n++ < 10)
                len +=
                    (size_t)snprintf(c->missing + len, sizeof c->missing - len, "%s%s",
                                     len ? ", " : "", json_string_value(json_object_get(a, "id")));
            c->status = STORAGE_GONE;
        } else if (st != STORAGE_OK) {
            c->status = st; /* the store is down: no verdict on the rest */
            return;
        }
    }
}

static void check_done(void *arg)
{
    struct request *r = arg;
    struct submit_check *c = r->state;

    if (c->status == STORAGE_GONE) {
        reply_error(r, 409, "evidence_missing",
                    "the bytes of artifact %s are no longer in the evidence store (removed "
                    "outside accord): upload the file again and submit with the new artifact; "
                    "nothing was submitted",
                    c->missing);
        return;
    }
    if (c->status != STORAGE_OK) {
        log_warn("submission: evidence check: %s", c->error);
        reply_storage_status(r, c->status, "your submission");
        return;
    }
    memcpy(r->params, c->saved, sizeof r->params);
    router_call(r, r->route->stmt, r->route->ok_status);
}

static void on_stored(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct submit_check *c = r->state;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    c->artifacts = res->value ? json_loads(res->value, 0, NULL) : NULL;
    if (!json_is_array(c->artifacts) || json_array_size(c->artifacts) == 0 ||
        offload_submit(r->w->offload_net, r->w->base, check_work, check_done, r) < 0) {
        memcpy(r->params, c->saved, sizeof r->params);
        router_call(r, r->route->stmt, r->route->ok_status);
    }
}

void handle_submission_evidence_checked(struct request *r)
{
    struct submit_check *c;
    if (r->w->storage->backend != STORAGE_S3 || !r->body) {
        router_call(r, r->route->stmt, r->route->ok_status);
        return;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = c;
    r->state_free = submit_check_free;
    memcpy(c->saved, r->params, sizeof c->saved);
    r->params[0] = request_token_param(r);
    r->params[1] = r->body;
    request_query(r, STMT_ARTIFACTS_STORED, on_stored);
}
