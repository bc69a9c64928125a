/* SPDX-License-Identifier: Apache-2.0 */
/* storage_sweep.c - expired multipart uploads: rows, then the store (storage_sweep.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "offload.h"
#include "pgpool.h"
#include "s3.h"
#include "storage.h"
#include "storage_sweep.h"

struct storage_sweep {
    struct worker *w;
    struct event *timer;
    char seconds[24];
    const char *params[1];
    bool busy;
    bool stopped;
    json_t *gone; /* [{object_key, store_upload_id}] to abort in the store */
};

static void arm(struct storage_sweep *s)
{
    long every = s->w->cfg->upload_expiry / 4;
    struct timeval tv = {every < 1 ? 1 : every > 300 ? 300 : every, 0};
    evtimer_add(s->timer, &tv);
}

static void finish(struct storage_sweep *s)
{
    json_decref(s->gone);
    s->gone = NULL;
    s->busy = false;
    if (s->stopped) {
        free(s);
        return;
    }
    arm(s);
}

static void abort_uploads(void *arg)
{
    struct storage_sweep *s = arg;
    size_t i;
    json_t *u;
    json_array_foreach(s->gone, i, u)
    {
        const char *key = json_string_value(json_object_get(u, "object_key"));
        const char *id = json_string_value(json_object_get(u, "store_upload_id"));
        struct s3_status st;
        if (key && id && s3_multipart_abort(&s->w->storage->s3, key, id, &st) < 0 &&
            st.outcome != S3_NOT_FOUND)
            log_warn("storage sweep: %s not aborted in the store (%s); the bucket's lifecycle "
                     "rule removes its parts",
                     key, st.message);
    }
}

static void aborted(void *arg)
{
    struct storage_sweep *s = arg;
    log_info("storage sweep: %zu expired multipart uploads removed", json_array_size(s->gone));
    finish(s);
}

static void on_swept(const struct db_result *res, void *arg)
{
    struct storage_sweep *s = arg;
    if (res->status != DB_OK || !res->value) {
        if (res->status == DB_ERROR)
            log_error("storage sweep: %s %s", res->sqlstate ? res->sqlstate : "",
                      res->message ? res->message : "");
        finish(s);
        return;
    }
    s->gone = json_loads(res->value, 0, NULL);
    if (!json_is_array(s->gone) || json_array_size(s->gone) == 0 ||
        offload_submit(s->w->offload_net, s->w->base, abort_uploads, aborted, s) < 0)
        finish(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct storage_sweep *s = arg;
    (void)fd;
    (void)what;
    /* (a sweep under way re-arms when done; the local store has nothing to expire) */
    if (s->busy || s->w->draining || !s->w->storage || s->w->storage->backend != STORAGE_S3)
        return;
    s->busy = true;
    if (pgpool_query(s->w->pool, STMT_OBJECT_UPLOAD_SWEEP, s->params, on_swept, s) != DB_OK) {
        s->busy = false;
        arm(s);
    }
}

struct storage_sweep *storage_sweep_start(struct worker *w)
{
    struct storage_sweep *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->w = w;
    snprintf(s->seconds, sizeof s->seconds, "%ld", w->cfg->upload_expiry);
    s->params[0] = s->seconds;
    s->timer = evtimer_new(w->base, on_timer, s);
    if (!s->timer) {
        free(s);
        return NULL;
    }
    arm(s);
    return s;
}

void storage_sweep_free(struct storage_sweep *s)
{
    if (!s)
        return;
    event_free(s->timer);
    if (s->busy) {
        s->stopped = true;
        return;
    }
    free(s);
}
