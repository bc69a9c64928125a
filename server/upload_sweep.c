/* SPDX-License-Identifier: Apache-2.0 */
/* upload_sweep.c - removing expired unfinished uploads (see upload_sweep.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "offload.h"
#include "pgpool.h"
#include "upload_sweep.h"

struct upload_sweep {
    struct worker *w;
    struct event *timer;
    char seconds[24];
    const char *params[1];
    bool busy;    /* a sweep is under way */
    bool stopped; /* freed while busy: the sweep frees it when done */
    json_t *ids;  /* the ids whose part files go */
};

static void arm(struct upload_sweep *s)
{
    long every = s->w->cfg->upload_expiry / 4;
    struct timeval tv = {every < 1 ? 1 : every > 300 ? 300 : every, 0};
    evtimer_add(s->timer, &tv);
}

static void finish(struct upload_sweep *s)
{
    json_decref(s->ids);
    s->ids = NULL;
    s->busy = false;
    if (s->stopped) {
        free(s);
        return;
    }
    arm(s);
}

static void remove_parts(void *arg)
{
    struct upload_sweep *s = arg;
    size_t i;
    json_t *id;
    char path[4200];

    json_array_foreach(s->ids, i, id)
    {
        const char *text = json_string_value(id);
        if (!text || strlen(text) != 36 || strchr(text, '/'))
            continue;
        snprintf(path, sizeof path, "%s/uploads/%s.part", s->w->cfg->data_dir, text);
        if (unlink(path) < 0 && errno != ENOENT)
            log_error("upload sweep: cannot remove %s: %s", path, strerror(errno));
    }
}

static void parts_removed(void *arg)
{
    struct upload_sweep *s = arg;
    if (json_array_size(s->ids) > 0)
        log_info("upload sweep: %zu expired unfinished uploads removed", json_array_size(s->ids));
    finish(s);
}

static void on_swept(const struct db_result *res, void *arg)
{
    struct upload_sweep *s = arg;
    if (res->status != DB_OK || !res->value) {
        if (res->status == DB_ERROR)
            log_error("upload sweep: %s %s", res->sqlstate ? res->sqlstate : "",
                      res->message ? res->message : "");
        finish(s);
        return;
    }
    s->ids = json_loads(res->value, 0, NULL);
    if (!json_is_array(s->ids) || json_array_size(s->ids) == 0 ||
        offload_submit(s->w->offload, s->w->base, remove_parts, parts_removed, s) < 0)
        finish(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct upload_sweep *s = arg;
    (void)fd;
    (void)what;
    if (s->busy || s->w->draining)
        return;
    s->busy = true;
    if (pgpool_query(s->w->pool, STMT_UPLOAD_SWEEP, s->params, on_swept, s) != DB_OK) {
        s->busy = false;
        arm(s);
    }
}

struct upload_sweep *upload_sweep_start(struct worker *w)
{
    struct upload_sweep *s = calloc(1, sizeof *s);
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

void upload_sweep_free(struct upload_sweep *s)
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
