/* SPDX-License-Identifier: Apache-2.0 */
/*
 * upload_sweep.c - removing expired unfinished uploads (see upload_sweep.h):
 * one loop over the kinds below; what differs between them is the statement,
 * whether the kind applies to this server, and how the bytes behind each
 * expired row are removed (on an offload thread).
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "offload.h"
#include "pgpool.h"
#include "s3.h"
#include "storage.h"
#include "upload_sweep.h"

struct sweep_kind {
    const char *what; /* for the log: "%zu expired <what> removed" */
    enum stmt_id stmt;
    bool (*applies)(const struct worker *w);
    /* BLOCKS (offload thread: the network threads under S3, where remove()
     * talks to the store, else the disk's): the bytes behind the rows the
     * statement deleted. */
    void (*remove)(const struct worker *w, json_t *gone);
};

static bool always(const struct worker *w)
{
    (void)w;
    return true;
}

static bool object_storage(const struct worker *w)
{
    return w->storage && w->storage->backend == STORAGE_S3;
}

/* tus: gone is [id, ...]; each has DATA/uploads/<id>.part, and under S3 chunks in the store. */
static void remove_part_files(const struct worker *w, json_t *gone)
{
    size_t i;
    json_t *id;
    char path[4200];
    json_array_foreach(gone, i, id)
    {
        const char *text = json_string_value(id);
        if (!text || strlen(text) != 36 || strchr(text, '/'))
            continue;
        snprintf(path, sizeof path, "%s/uploads/%s.part", w->cfg->data_dir, text);
        if (unlink(path) < 0 && errno != ENOENT)
            log_error("upload sweep: cannot remove %s: %s", path, strerror(errno));
        storage_tus_forget(w->storage, text, UINT64_MAX);
    }
}

/* Multipart: gone is [{object_key, store_upload_id}, ...]. */
static void abort_in_store(const struct worker *w, json_t *gone)
{
    size_t i;
    json_t *u;
    json_array_foreach(gone, i, u)
    {
        const char *key = json_string_value(json_object_get(u, "object_key"));
        const char *id = json_string_value(json_object_get(u, "store_upload_id"));
        struct s3_status st;
        if (key && id && s3_multipart_abort(&w->storage->s3, key, id, &st) < 0 &&
            st.outcome != S3_NOT_FOUND)
            log_warn("upload sweep: %s not aborted in the store (%s); the bucket's lifecycle "
                     "rule removes its parts",
                     key, st.message);
    }
}

static const struct sweep_kind kinds[] = {
    {"tus uploads", STMT_UPLOAD_SWEEP, always, remove_part_files},
    {"multipart uploads", STMT_OBJECT_UPLOAD_SWEEP, object_storage, abort_in_store},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

struct upload_sweep {
    struct worker *w;
    struct event *timer;
    char seconds[24];
    const char *params[1];
    size_t kind;  /* the kind under way */
    bool pruned;  /* this pass pruned the part file cache (S3) */
    bool busy;    /* a sweep is under way */
    bool stopped; /* freed while busy: the sweep frees it when done */
    json_t *gone; /* what the kind's statement deleted */
};

static void arm(struct upload_sweep *s)
{
    long every = s->w->cfg->upload_expiry / 4;
    struct timeval tv = {every < 1 ? 1 : every > 300 ? 300 : every, 0};
    evtimer_add(s->timer, &tv);
}

static void on_swept(const struct db_result *res, void *arg);
static void pruned(void *arg);

/*
 * Under S3 a server's part files are a cache (storage_tus.c): an upload
 * finished or cancelled through another server leaves its partial file here,
 * which no row points to any more. Files untouched for --upload-expiry go;
 * should the upload come back to this server, it is rebuilt from the store.
 * At most PRUNE_MAX names a pass. Disk thread.
 */
#define PRUNE_MAX 10000
static void prune_part_cache(void *arg)
{
    struct upload_sweep *s = arg;
    char dir[4200], path[4500];
    time_t before = time(NULL) - s->w->cfg->upload_expiry;
    struct dirent *e;
    struct stat sb;
    DIR *d;
    snprintf(dir, sizeof dir, "%s/uploads", s->w->cfg->data_dir);
    if (!(d = opendir(dir)))
        return;
    for (int n = 0; n < PRUNE_MAX && (e = readdir(d)); n++) {
        size_t len = strlen(e->d_name);
        if (len != 41 || strcmp(e->d_name + 36, ".part") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) == 0 && sb.st_mtime < before && unlink(path) == 0)
            log_info("upload sweep: %s, untouched since the upload went on elsewhere, removed",
                     path);
    }
    closedir(d);
}

/* Runs the next kind that applies from s->kind on; re-arms after the last. */
static void run_from(struct upload_sweep *s)
{
    for (; s->kind < N_KINDS; s->kind++) {
        if (s->w->draining)
            break;
        if (!kinds[s->kind].applies(s->w))
            continue;
        if (pgpool_query(s->w->pool, kinds[s->kind].stmt, s->params, on_swept, s) == DB_OK)
            return;
    }
    if (!s->pruned && !s->w->draining && object_storage(s->w)) {
        s->pruned = true;
        if (offload_submit(s->w->offload, s->w->base, prune_part_cache, pruned, s) == 0)
            return;
    }
    s->busy = false;
    arm(s);
}

static void pruned(void *arg)
{
    struct upload_sweep *s = arg;
    if (s->stopped) {
        free(s);
        return;
    }
    run_from(s);
}

/* One kind is done: free when stopped meanwhile, else go on to the next. */
static void kind_done(struct upload_sweep *s)
{
    json_decref(s->gone);
    s->gone = NULL;
    if (s->stopped) {
        free(s);
        return;
    }
    s->kind++;
    run_from(s);
}

static void remove_work(void *arg)
{
    struct upload_sweep *s = arg;
    kinds[s->kind].remove(s->w, s->gone);
}

static void removed(void *arg)
{
    struct upload_sweep *s = arg;
    log_info("upload sweep: %zu expired %s removed", json_array_size(s->gone), kinds[s->kind].what);
    kind_done(s);
}

static void on_swept(const struct db_result *res, void *arg)
{
    struct upload_sweep *s = arg;
    const struct sweep_kind *k = &kinds[s->kind];
    if (res->status != DB_OK || !res->value) {
        if (res->status == DB_ERROR)
            log_error("upload sweep (%s): %s %s", k->what, res->sqlstate ? res->sqlstate : "",
                      res->message ? res->message : "");
        kind_done(s);
        return;
    }
    s->gone = json_loads(res->value, 0, NULL);
    if (!json_is_array(s->gone) || json_array_size(s->gone) == 0 ||
        offload_submit(object_storage(s->w) ? s->w->offload_net : s->w->offload, s->w->base,
                       remove_work, removed, s) < 0)
        kind_done(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct upload_sweep *s = arg;
    (void)fd;
    (void)what;
    /* (a sweep under way re-arms when done) */
    if (s->busy || s->w->draining)
        return;
    s->busy = true;
    s->kind = 0;
    s->pruned = false;
    run_from(s);
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
